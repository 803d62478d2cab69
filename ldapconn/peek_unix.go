//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package ldapconn

import (
	"net"
	"syscall"
)

// peeker tells whether the peer of one socket has closed its end and
// nothing is left to read: a non-blocking MSG_PEEK read returns 0 bytes. It
// takes the descriptor through RawConn.Control, which does not wait for
// go-ldap's reader, blocked in its own Read, and consumes nothing. It is
// made once a connection, so that a peek allocates nothing; only the pool's
// supervisor peeks (Alive), one peek at a time.
type peeker struct {
	rc     syscall.RawConn // nil: not a socket, never peeked
	closed bool
	peekFd func(fd uintptr) // p.peek, bound once
}

func newPeeker(c net.Conn) *peeker {
	if tc, ok := c.(interface{ NetConn() net.Conn }); ok {
		c = tc.NetConn()
	}
	p := new(peeker)
	if sc, ok := c.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			p.rc = rc
			p.peekFd = p.peek
		}
	}
	return p
}

func (p *peeker) peek(fd uintptr) {
	var b [1]byte
	n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	p.closed = n == 0 && err == nil || err == syscall.ECONNRESET
}

// peerClosed reports whether the peer closed the socket.
func (p *peeker) peerClosed() bool {
	if p.rc == nil {
		return false
	}
	p.closed = false
	if p.rc.Control(p.peekFd) != nil {
		return false
	}
	return p.closed
}
