package ldapconn_test

// Tests written by porting services' code onto the pool: what callers see
// while every server of the list is down.

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/fairpool/ldappool/ldapconn"
	"github.com/fairpool/ldappool/ldaptest"
)

// refusingURL returns an ldap:// URL on 127.0.0.1 where nothing listens: a
// port taken from the kernel and let go.
func refusingURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "ldap://" + addr
}

// Every server of a two-server list refuses connections, and stays in its
// backoff for seconds: a caller whose deadline ends while the pool waits for
// a server's next attempt must still be told that the directory is down
// (README: "no reachable server matches ErrServerDown"; errors.md: test
// ErrServerDown before context.DeadlineExceeded), not only that its time ran
// out, which errors.md answers with "give the call a longer deadline, or
// size the pool". An SSO gateway maps the first to "directory unavailable"
// and the second to a timeout of its own.
func TestAdoptingEveryServerDownIsServerDownAtTheCallersDeadline(t *testing.T) {
	servers := refusingURL(t) + "," + refusingURL(t)
	// The first backoff is the retry delay: 5 s (at least 2.5 s with its
	// jitter), far past each call's 300 ms.
	p := newPool(t, servers, admin, quiet, ldapconn.WithRetry(1, 5*time.Second))
	creds := ldapconn.Credentials{DN: ldaptest.UserDN(1), Password: ldaptest.UserPassword(1)}
	calls := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"Search", func(ctx context.Context) error { _, err := p.Search(ctx, searchUID("user1")); return err }},
		{"Authenticate", func(ctx context.Context) error {
			return p.Authenticate(ctx, ldaptest.UserDN(1), ldaptest.UserPassword(1))
		}},
		{"Compare", func(ctx context.Context) error {
			_, err := p.Compare(ctx, ldaptest.UserDN(1), "uid", "user1")
			return err
		}},
		{"Do", func(ctx context.Context) error { return p.Do(ctx, func(ldap.Client) error { return nil }) }},
		{"DoAs", func(ctx context.Context) error { return p.DoAs(ctx, creds, func(ldap.Client) error { return nil }) }},
		{"Lease", func(ctx context.Context) error {
			l, err := p.Lease(ctx)
			if err == nil {
				l.Release()
			}
			return err
		}},
		{"LeaseAs", func(ctx context.Context) error {
			l, err := p.LeaseAs(ctx, creds)
			if err == nil {
				l.Release()
			}
			return err
		}},
		{"Ping", p.Ping},
	}
	// Twice over: the first calls dial and find every server refusing; the
	// second ones come while every server is in its backoff.
	for round := range 2 {
		for _, c := range calls {
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			err := c.call(ctx)
			cancel()
			var down *ldapconn.AllServersDownError
			switch {
			case err == nil:
				t.Fatalf("round %d: %s succeeded with every server refusing", round, c.name)
			case !errors.Is(err, ldapconn.ErrServerDown) || !errors.As(err, &down):
				t.Errorf("round %d: %s = %v; want an error matching ErrServerDown (every server is down)", round, c.name, err)
			case len(down.Servers) != 2 || down.Servers[0].Up || down.Servers[1].Up:
				t.Errorf("round %d: %s: AllServersDownError.Servers = %+v; want both servers, down", round, c.name, down.Servers)
			case !ldapconn.IsRetryable(err):
				t.Errorf("round %d: %s = %v; IsRetryable false", round, c.name, err)
			case errors.Is(err, context.Canceled) || errors.Is(err, ldapconn.ErrClosed):
				t.Errorf("round %d: %s = %v; not a cancelled call nor a closed pool", round, c.name, err)
			}
		}
	}
}
