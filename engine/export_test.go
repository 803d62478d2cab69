package engine

import "fmt"

// The package's tests check the supervisor's invariants after every message
// of every pool they make; a broken one stops the test binary with the cause.
func init() {
	invariantCheck = func(err error) { panic(fmt.Sprintf("engine: invariant broken %v", err)) }
}

// CheckInvariants turns the check on or off for pools made from now on, and
// returns what restores the setting. Benchmarks turn it off: it walks every
// slot after every message. Call it while no pool is being made.
func CheckInvariants(on bool) (restore func()) {
	saved := invariantCheck
	if !on {
		invariantCheck = nil
	}
	return func() { invariantCheck = saved }
}
