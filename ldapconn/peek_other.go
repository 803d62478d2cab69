//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package ldapconn

import "net"

// peeker cannot peek on this platform: go-ldap's own reader is the only
// sign that the peer closed a connection.
type peeker struct{}

func newPeeker(net.Conn) *peeker { return new(peeker) }

func (*peeker) peerClosed() bool { return false }
