package slapd

import "syscall"

// sysProcAttr makes the kernel kill slapd when the test binary dies (a
// panic, a -timeout, a SIGKILL), so no server outlives its test.
// Pdeathsig follows the OS thread that started slapd; Go keeps its threads
// alive unless a goroutine exits while locked to one, which this package
// never does.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
