//go:build !race

package ldapconn_test

// raceEnabled: the race detector changes what allocates.
const raceEnabled = false
