//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package ldapconn

import (
	"net"
	"syscall"
)

// peerClosed reports whether the peer of c has closed its end and nothing is
// left to read: a non-blocking MSG_PEEK read returns 0 bytes. It takes the
// descriptor through RawConn.Control, which does not wait for go-ldap's
// reader, blocked in its own Read, and consumes nothing.
func peerClosed(c net.Conn) bool {
	if tc, ok := c.(interface{ NetConn() net.Conn }); ok {
		c = tc.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	closed := false
	_ = rc.Control(func(fd uintptr) {
		var b [1]byte
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		closed = n == 0 && err == nil || err == syscall.ECONNRESET
	})
	return closed
}
