//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package ldapconn

import "net"

// peerClosed cannot peek on this platform: go-ldap's own reader is the only
// sign that the peer closed a connection.
func peerClosed(net.Conn) bool { return false }
