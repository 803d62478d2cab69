package ldapconn_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fairpool/ldappool/ldapconn"
)

// A server that refuses connections is retried only after its backoff, which
// starts at the retry delay and grows. A lease that comes within the backoff
// waits for the next attempt, within its own context, instead of failing at
// once: one refused connect must not fail every caller for the backoff.
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
		short, cancel := context.WithTimeout(t.Context(), first/2)
		defer cancel()
		if _, err := p.Lease(short); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Lease with a context shorter than the backoff = %v; want its deadline", err)
		}
		if s := p.Servers()[0]; s.Failures != 1 {
			t.Fatalf("failures = %d; the server was dialed within its backoff", s.Failures)
		}
		start := time.Now()
		lease() // waits for the end of the backoff, then dials once
		if waited := time.Since(start); waited < first/2 || waited > first {
			t.Fatalf("the lease waited %v; want until the backoff's end, %v after the first failure", waited, first)
		}
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
