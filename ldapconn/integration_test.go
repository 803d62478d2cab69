package ldapconn_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/fairpool/ldappool/ldapconn"
	"github.com/fairpool/ldappool/ldaptest"
	"github.com/fairpool/ldappool/ldaptest/slapd"
)

// target is a real LDAP server the same assertions run against.
type target struct {
	name string
	url  func(t *testing.T) string
}

var targets = []target{
	{"embedded", func(t *testing.T) string { return embedded(t).URL() }},
	{"slapd", func(t *testing.T) string { return slapd.Start(t).URL() }},
}

func TestOnRealServers(t *testing.T) {
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			url := tg.url(t)
			p := newPool(t, closedPort(t)+", "+url, admin)

			// Search as the service, failing over from the dead first server.
			res, err := p.Search(t.Context(), searchUID("user42"))
			if err != nil {
				t.Fatalf("Search: %v", err)
			}
			if got := cnOf(t, res); got != "User 42" {
				t.Fatalf("cn = %q; want User 42", got)
			}
			if s := p.Servers(); s[0].Up || !s[1].Up {
				t.Fatalf("servers %+v; want the first down and the second up", s)
			}

			// A user's identity, segregated from the service's.
			user := ldapconn.Credentials{DN: ldaptest.UserDN(9), Password: ldaptest.UserPassword(9)}
			err = p.DoAs(t.Context(), user, func(c ldap.Client) error {
				ok, err := c.Compare(ldaptest.UserDN(9), "uid", "user9")
				if err == nil && !ok {
					err = errors.New("compare of the user's own uid was false")
				}
				return err
			})
			if err != nil {
				t.Fatalf("DoAs user9: %v", err)
			}
			if keys := p.Stats().Keys; len(keys) != 2 {
				t.Fatalf("keys = %v; want service and user apart", keys)
			}

			// A wrong password is the caller's error, once.
			_, err = p.LeaseAs(t.Context(), ldapconn.Credentials{DN: ldaptest.UserDN(9), Password: "bad"})
			if !errors.Is(err, ldapconn.ErrInvalidCredentials) {
				t.Fatalf("wrong password: %v", err)
			}
			if !p.Servers()[1].Up {
				t.Fatal("a wrong password marked the server down")
			}
			if err := p.Authenticate(t.Context(), ldaptest.UserDN(9), ldaptest.UserPassword(9)); err != nil {
				t.Fatalf("Authenticate: %v", err)
			}

			// The compare validator on every lease.
			cp := newPool(t, url, admin, ldapconn.WithValidator(ldapconn.Compare(ldaptest.UserDN(1), "uid", "user1")),
				ldapconn.WithValidateOnLease())
			for range 2 {
				if _, err := cp.Search(t.Context(), searchUID("user1")); err != nil {
					t.Fatalf("search with the compare validator: %v", err)
				}
			}
			if st := cp.Stats(); st.Validations != 1 || st.ValidationErrors != 0 {
				t.Fatalf("validations %d (failed %d); want 1 passing check of the reused connection", st.Validations, st.ValidationErrors)
			}
		})
	}
}

func TestTLS(t *testing.T) {
	certPEM, keyPEM, roots, err := slapd.SelfSigned("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	serverTLS := &tls.Config{Certificates: []tls.Certificate{cert}}
	clientTLS := &tls.Config{RootCAs: roots}
	s := slapd.Start(t, slapd.WithTLS(certPEM, keyPEM))
	startTLS := embedded(t, ldaptest.WithTLS(serverTLS))
	ldaps := embedded(t, ldaptest.WithLDAPS(serverTLS))
	tests := []struct {
		name string
		url  string
		opts []ldapconn.Option
	}{
		{"slapd ldaps", s.LDAPSURL(), nil},
		{"slapd StartTLS", s.URL(), []ldapconn.Option{ldapconn.WithStartTLS()}},
		{"embedded ldaps", ldaps.URL(), nil},
		{"embedded StartTLS", startTLS.URL(), []ldapconn.Option{ldapconn.WithStartTLS()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPool(t, tt.url, append(tt.opts, admin, ldapconn.WithTLSConfig(clientTLS))...)
			l, err := p.Lease(t.Context())
			if err != nil {
				t.Fatalf("Lease: %v", err)
			}
			defer l.Release()
			if state, ok := l.Client().TLSConnectionState(); !ok || !state.HandshakeComplete {
				t.Fatal("the connection is not TLS")
			}
			if _, err := l.Client().Search(searchUID("user3")); err != nil {
				t.Fatalf("Search over TLS: %v", err)
			}
		})
	}
	t.Run("untrusted certificate", func(t *testing.T) {
		p := newPool(t, s.LDAPSURL(), admin)
		if _, err := p.Lease(t.Context()); err == nil {
			t.Fatal("Lease trusted a self-signed certificate without being told to")
		}
	})
}

// load runs searches through Do from clients goroutines until stop is
// closed or each has done max, and counts what failed.
func load(p *ldapconn.Pool, clients, max int, stop <-chan struct{}) (ops, failed *atomic.Int64, errs chan error, progress chan struct{}, wait func()) {
	ops, failed = new(atomic.Int64), new(atomic.Int64)
	errs = make(chan error, 16)
	progress = make(chan struct{}, 1)
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for i := range max {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				_, err := p.Search(ctx, searchUID(fmt.Sprint("user", (c*max+i)%ldaptest.Users)))
				cancel()
				ops.Add(1)
				select {
				case progress <- struct{}{}:
				default:
				}
				if err != nil {
					failed.Add(1)
					select {
					case errs <- err:
					default:
					}
				}
			}
		})
	}
	return ops, failed, errs, progress, wg.Wait
}

// waitOps blocks until the load has done n operations, failing the test
// after 20 seconds.
func waitOps(t *testing.T, ops *atomic.Int64, progress <-chan struct{}, n int64) {
	t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for ops.Load() < n {
		select {
		case <-progress:
		case <-deadline.C:
			t.Fatalf("only %d of %d operations in 20s", ops.Load(), n)
		}
	}
}

// A server killed and restarted under load: callers using Do see no error;
// the pool fails over to the second server and back.
func TestServerKilledAndRestartedUnderLoad(t *testing.T) {
	primary, secondary := slapd.Start(t), slapd.Start(t)
	p := newPool(t, primary.URL()+","+secondary.URL(), admin,
		ldapconn.WithFailbackAfter(500*time.Millisecond),
		ldapconn.WithMaxSize(4))
	stop := make(chan struct{})
	ops, failed, errs, progress, wait := load(p, 8, 100000, stop)
	defer func() {
		close(stop)
		wait()
	}()
	waitOps := func(n int64) { waitOps(t, ops, progress, n) }
	waitOps(200)
	if err := primary.Kill(); err != nil {
		t.Fatal(err)
	}
	waitOps(ops.Load() + 500)
	if p.Servers()[1].Open == 0 {
		t.Fatalf("no connection moved to the secondary: %+v", p.Servers())
	}
	if err := primary.Restart(); err != nil {
		t.Fatal(err)
	}
	// Back to the primary once the fallback connections age out.
	for deadline := time.Now().Add(20 * time.Second); p.Servers()[0].Open == 0; {
		if time.Now().After(deadline) {
			t.Fatalf("no failback to the restarted primary in 20s: %+v", p.Servers())
		}
		waitOps(ops.Load() + 50)
	}
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d of %d operations failed across the restart; want none. First: %v", n, ops.Load(), <-errs)
	}
	t.Logf("%d operations, none failed; servers %+v", ops.Load(), p.Servers())
}

// A server frozen with SIGSTOP: operations do not hang (they are hedged to
// the second server, or time out after the operation timeout and run
// again there), the work moves to the second server, and the pool fails
// back when it resumes.
func TestFrozenServer(t *testing.T) {
	primary, secondary := slapd.Start(t), slapd.Start(t)
	const opTimeout = 300 * time.Millisecond
	p := newPool(t, primary.URL()+","+secondary.URL(), admin,
		ldapconn.WithOperationTimeout(opTimeout), ldapconn.WithConnectTimeout(opTimeout),
		ldapconn.WithFailbackAfter(500*time.Millisecond),
		ldapconn.WithMaxSize(4))
	for range 4 {
		if _, err := p.Search(t.Context(), searchUID("user1")); err != nil {
			t.Fatal(err)
		}
	}
	if err := primary.Freeze(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { primary.Thaw() })
	var slowest time.Duration
	before := p.Servers()[1].Operations
	for i := range 20 {
		start := time.Now()
		_, err := p.Search(t.Context(), searchUID(fmt.Sprint("user", i)))
		slowest = max(slowest, time.Since(start))
		if err != nil && !ldapconn.IsBroken(err) {
			t.Fatalf("search %d on a frozen primary: %v; want success or a timeout", i, err)
		}
	}
	// One timeout, a retry that checks the connection against the server's
	// health, and a dial to the secondary: bounded by a few timeouts, not
	// by the freeze.
	if slowest > 4*opTimeout+time.Second {
		t.Fatalf("slowest search took %v with a %v operation timeout", slowest, opTimeout)
	}
	if st := p.Servers(); st[1].Operations-before < 15 || st[1].Open == 0 {
		t.Fatalf("servers %+v: the secondary ran %d operations during the 20 searches; want most of them there",
			st, st[1].Operations-before)
	}
	if err := primary.Thaw(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); !p.Servers()[0].Up || p.Servers()[0].Open == 0; {
		if time.Now().After(deadline) {
			t.Fatalf("no failback to the thawed primary in 20s: %+v", p.Servers())
		}
		if _, err := p.Search(t.Context(), searchUID("user2")); err != nil {
			t.Fatalf("search after thaw: %v", err)
		}
	}
}
