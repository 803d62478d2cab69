//go:build !race

package lease_test

// raceEnabled: the race detector changes what allocates.
const raceEnabled = false
