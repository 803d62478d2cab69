//go:build unix

package ldapconn_test

import (
	"syscall"
	"time"
)

// processCPU returns the CPU time, user and system, that this process has
// used so far: the client's side of a benchmark (and the in-process proxy's),
// not slapd's, which is another process.
func processCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
