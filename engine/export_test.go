package engine

import "fmt"

// The package's tests check the supervisor's invariants after every message
// of every pool they make; a broken one stops the test binary with the cause.
func init() {
	invariantCheck = func(err error) { panic(fmt.Sprintf("engine: invariant broken %v", err)) }
}
