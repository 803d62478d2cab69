package ldapconn

import (
	"context"
	"net"
	"testing"
)

// The per-operation costs of a connection's own machinery, apart from
// go-ldap and the pool: the idle-socket peek the supervisor makes when it
// takes an idle connection out (Alive), and the message-ID claim every
// operation makes (wireConn).

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(tb testing.TB) (client, server net.Conn) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		tb.Fatal("accept failed")
	}
	tb.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// discardConn is a net.Conn whose writes go nowhere.
type discardConn struct{ net.Conn }

func (discardConn) Write(b []byte) (int, error) { return len(b), nil }

// BenchmarkClaim is one operation's message-ID claim: claim, the request's
// write, settle.
func BenchmarkClaim(b *testing.B) {
	w := newWireConn(discardConn{})
	req := encodeAbandon(7, 3)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		c, err := w.claimNext(ctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = w.Write(req)
		if w.settle(c) != 7 {
			b.Fatal("wrong id")
		}
	}
}
