//go:build !linux

package slapd

import "syscall"

// sysProcAttr returns nil: only Linux can tie slapd's life to ours.
func sysProcAttr() *syscall.SysProcAttr { return nil }
