//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package ldapconn

import (
	"testing"
	"time"
)

// The peek sees a peer's close waiting unread in the socket, and nothing
// else: not an open socket, not one with data waiting, and it consumes
// nothing.
func TestPeerClosedSeesAnUnreadClose(t *testing.T) {
	client, server := tcpPair(t)
	p := newPeeker(client)
	if p.peerClosed() {
		t.Fatal("peerClosed on an open, quiet socket")
	}
	if _, err := server.Write([]byte{0x30}); err != nil {
		t.Fatal(err)
	}
	// On loopback a write is in the peer's socket when it returns.
	if p.peerClosed() {
		t.Fatal("peerClosed on a socket with a byte waiting")
	}
	b := make([]byte, 1)
	if n, err := client.Read(b); n != 1 || err != nil || b[0] != 0x30 {
		t.Fatalf("the byte after peeks: %d %v % x; want it unconsumed", n, err, b[:n])
	}
	server.Close()
	deadline := time.Now().Add(5 * time.Second)
	for !p.peerClosed() {
		if time.Now().After(deadline) {
			t.Fatal("peerClosed never saw the peer's close")
		}
		time.Sleep(time.Millisecond)
	}
}

// BenchmarkPeerClosed is the supervisor's peek of one idle socket.
func BenchmarkPeerClosed(b *testing.B) {
	client, _ := tcpPair(b)
	p := newPeeker(client)
	b.ReportAllocs()
	for b.Loop() {
		if p.peerClosed() {
			b.Fatal("closed")
		}
	}
}
