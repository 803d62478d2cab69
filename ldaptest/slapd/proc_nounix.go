//go:build !unix

package slapd

import "os"

// Without Unix signals, Stop kills and Freeze and Thaw fail.
var sigTerm, sigStop, sigCont os.Signal
