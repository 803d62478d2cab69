package ldapconn_test

import (
	"errors"
	"net"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fairpool/ldappool/ldapconn"
)

// A server that refuses connections is retried only after its backoff, which
// starts at the retry delay and grows; until then leases fail at once.
func TestBackoffOfADownServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "ldap://" + l.Addr().String()
	l.Close()
	synctest.Test(t, func(t *testing.T) {
		p := newPool(t, down, admin, ldapconn.WithRetry(1, 100*time.Millisecond), ldapconn.WithMaxBackoff(time.Second))
		var all *ldapconn.AllServersDownError
		lease := func() {
			if _, err := p.Lease(t.Context()); !errors.As(err, &all) {
				t.Fatalf("Lease = %v; want AllServersDownError", err)
			}
		}
		lease()
		s := p.Servers()[0]
		// cenkalti/backoff randomizes each interval by ±50%.
		if s.Up || s.Failures != 1 || s.RetryIn < 50*time.Millisecond || s.RetryIn > 150*time.Millisecond {
			t.Fatalf("after one failure: %+v; want down, retry in 50-150ms", s)
		}
		first := s.RetryIn
		lease() // within the backoff: no dial
		if s := p.Servers()[0]; s.Failures != 1 {
			t.Fatalf("failures = %d; a lease within the backoff dialed the server", s.Failures)
		}
		time.Sleep(first)
		lease()
		s = p.Servers()[0]
		if s.Failures != 2 || s.RetryIn < 75*time.Millisecond || s.RetryIn > 225*time.Millisecond {
			t.Fatalf("after two failures: %+v; want retry in 75-225ms (x1.5)", s)
		}
		for range 20 {
			time.Sleep(p.Servers()[0].RetryIn)
			lease()
		}
		// The cap bounds the interval before its ±50% randomization.
		if s := p.Servers()[0]; s.RetryIn > 1500*time.Millisecond || s.RetryIn < 500*time.Millisecond {
			t.Fatalf("retry in %v; want the 1s cap, randomized by ±50%%", s.RetryIn)
		}
	})
}
