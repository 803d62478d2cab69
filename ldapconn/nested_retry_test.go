package ldapconn_test

// Nesting the pool's calls the way a service's helpers end up nesting them
// (written by porting services' code onto the pool).

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/fairpool/ldappool/ldapconn"
	"github.com/fairpool/ldappool/ldaptest"
	"github.com/fairpool/ldappool/ldaptest/slapd"
)

// A provisioning job creates a user with a helper that uses pool.Do (the
// helper is shared with other code), from inside a Do of its own that then
// reads the directory back, as ErrOutcomeUnknown's doc asks ("Check the
// directory before trying the write again"), and returns the helper's error
// when the check fails too. slapd is killed with SIGKILL right after the Add
// was applied, and restarted. The outer Do's own connection broke under the
// check, but its function's error says a write's outcome is unknown, so Do
// does not run it again (doc of Do; README: "never sending a write twice").
// (A function that drops the nested error is run again: Do knows only of
// the writes sent on its own client; see Do's doc.)
func TestNestedOutcomeUnknownIsNotRunAgain(t *testing.T) {
	for _, size := range []int{1, 2} {
		t.Run(fmt.Sprint("WithMaxSize(", size, ")"), func(t *testing.T) {
			s := slapd.Start(t)
			p := newPool(t, s.URL(), admin, ldapconn.WithMaxSize(size), quiet)
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			cn := fmt.Sprintf("adopt6-nested-%d", size)
			dn := "cn=" + cn + "," + ldaptest.PeopleDN

			var outerCalls, adds atomic.Int32
			killed := make(chan error, 1)
			createUser := func(ctx context.Context) error { // the shared helper
				return p.Do(ctx, func(c ldap.Client) error {
					req := ldap.NewAddRequest(dn, nil)
					req.Attribute("objectClass", []string{"organizationalRole"})
					req.Attribute("cn", []string{cn})
					n := adds.Add(1)
					if err := c.Add(req); err != nil {
						return err
					}
					if n == 1 {
						// The directory crashes after applying the Add, before
						// the job's next request.
						if err := s.Kill(); err != nil {
							return fmt.Errorf("kill: %w", err)
						}
						go func() { killed <- s.Restart() }()
					}
					_, err := c.Search(searchUID("user1"))
					return err
				})
			}
			err := p.Do(ctx, func(c ldap.Client) error {
				outerCalls.Add(1)
				err := createUser(ctx)
				if errors.Is(err, ldapconn.ErrOutcomeUnknown) {
					// As the doc says: check the directory before trying again.
					res, serr := c.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases,
						0, 0, false, "(objectClass=*)", []string{"cn"}, nil))
					if serr != nil {
						return fmt.Errorf("%w (and the check failed: %v)", err, serr)
					}
					if len(res.Entries) == 1 {
						return nil
					}
				}
				return err
			})
			if rerr := <-killed; rerr != nil {
				t.Fatalf("restart: %v", rerr)
			}
			t.Logf("outer Do returned %v; outer function ran %d times; Add sent %d times", err, outerCalls.Load(), adds.Load())
			if ldap.IsErrorWithCode(err, ldap.LDAPResultEntryAlreadyExists) {
				t.Errorf("Do = %v: the server says the entry exists: the Add was sent twice", err)
			}
			if errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Do = %v: it hung until the test's 10 s deadline (see TestNestedSearchAfterARetryDoesNotHang)", err)
			}
			if n := adds.Load(); n != 1 {
				t.Errorf("the Add was sent %d times; want once (outer function ran %d times)", n, outerCalls.Load())
			}
		})
	}
}

// A Do whose connection broke under a read runs its function once more;
// the function nests a Search, which the doc of Do allows ("fn may call
// Search, Compare or Do of the same pool, which take another share").
// Nothing but the broken connection is in the way: the server is up and
// answers at once.
//
// The retry takes a share again (a whole connection would leave the nested
// Search nothing at WithMaxSize(1) until the context ended).
func TestNestedSearchAfterARetryDoesNotHang(t *testing.T) {
	for _, size := range []int{1, 2} {
		t.Run(fmt.Sprint("WithMaxSize(", size, ")"), func(t *testing.T) {
			srv := embedded(t)
			p := newPool(t, srv.URL(), admin, ldapconn.WithMaxSize(size), quiet)
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			var calls atomic.Int32
			start := time.Now()
			err := p.Do(ctx, func(c ldap.Client) error {
				if calls.Add(1) == 1 {
					srv.DropConnections() // a restart, an idle cut
				}
				if _, err := c.Search(searchUID("user1")); err != nil {
					return err
				}
				_, err := p.Search(ctx, searchUID("user2"))
				return err
			})
			t.Logf("Do = %v after %v; the function ran %d times", err, time.Since(start).Round(time.Millisecond), calls.Load())
			if err != nil {
				t.Errorf("Do = %v (deadline hit: %v); want the retried function's nested Search to succeed", err, ctx.Err() != nil)
			}
		})
	}
}

// The nestings a service's code falls into, each at WithMaxSize 1 and 2, with
// several goroutines at once: none may wait on itself. Do inside Do,
// Search/Compare/Ping inside Do (doc of Do: "fn may call Authenticate ...
// Search, Compare or Do of the same pool, which take another share"),
// Authenticate inside Do and inside a Lease (README: "Authenticate inside Do
// cannot deadlock"; doc of Authenticate: "safe to call inside Do or while
// holding a Lease").
func TestNestingAtSizesOneAndTwoDoesNotDeadlock(t *testing.T) {
	nestings := []struct {
		name string
		run  func(ctx context.Context, p *ldapconn.Pool, g int) error
	}{
		{"Do in Do in Do", func(ctx context.Context, p *ldapconn.Pool, g int) error {
			return p.Do(ctx, func(ldap.Client) error {
				return p.Do(ctx, func(ldap.Client) error {
					return p.Do(ctx, func(c ldap.Client) error {
						_, err := c.Search(searchUID(fmt.Sprint("user", g)))
						return err
					})
				})
			})
		}},
		{"Search, Compare and Ping in Do", func(ctx context.Context, p *ldapconn.Pool, g int) error {
			return p.Do(ctx, func(c ldap.Client) error {
				if _, err := p.Search(ctx, searchUID(fmt.Sprint("user", g))); err != nil {
					return err
				}
				if ok, err := p.Compare(ctx, ldaptest.UserDN(g), "uid", fmt.Sprint("user", g)); err != nil || !ok {
					return fmt.Errorf("Compare = %v, %v", ok, err)
				}
				return p.Ping(ctx)
			})
		}},
		{"Authenticate in Do in Do", func(ctx context.Context, p *ldapconn.Pool, g int) error {
			return p.Do(ctx, func(ldap.Client) error {
				return p.Do(ctx, func(ldap.Client) error {
					if err := p.Authenticate(ctx, ldaptest.UserDN(g), "wrong"); !errors.Is(err, ldapconn.ErrInvalidCredentials) {
						return fmt.Errorf("wrong password: %v", err)
					}
					return p.Authenticate(ctx, ldaptest.UserDN(g), ldaptest.UserPassword(g))
				})
			})
		}},
		{"Authenticate in a Lease", func(ctx context.Context, p *ldapconn.Pool, g int) error {
			l, err := p.Lease(ctx)
			if err != nil {
				return err
			}
			defer l.Release()
			if err := p.Authenticate(ctx, ldaptest.UserDN(g), ldaptest.UserPassword(g)); err != nil {
				return err
			}
			_, err = l.Client().Search(searchUID("user1"))
			return err
		}},
	}
	for _, size := range []int{1, 2} {
		for _, n := range nestings {
			t.Run(fmt.Sprintf("%s WithMaxSize(%d)", n.name, size), func(t *testing.T) {
				srv := embedded(t)
				p := newPool(t, srv.URL(), admin, ldapconn.WithMaxSize(size), ldapconn.WithAuthPool(1), quiet)
				ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
				defer cancel()
				const goroutines = 6
				errs := make(chan error, goroutines)
				for g := range goroutines {
					go func() { errs <- n.run(ctx, p, g) }()
				}
				for range goroutines {
					if err := <-errs; err != nil {
						t.Errorf("%s: %v (deadline hit: %v)", n.name, err, ctx.Err() != nil)
					}
				}
			})
		}
	}
}

// A Search on the pool made while the same goroutine holds a Lease. Nothing
// in the README or the doc promises it at WithMaxSize(1) (the Lease holds the
// only connection), so this test only asks that the wait end with the
// caller's deadline, an error that says so, and the pool usable afterwards;
// at WithMaxSize(2) the Search must succeed.
//
// With two servers as with one: the hedge lane, which keeps one of the
// WithMaxSize connections to the second server, is not there at size 2.
func TestSearchInsideTheOnlyLeaseWaitsForTheDeadline(t *testing.T) {
	for _, c := range []struct {
		size    int
		servers int
	}{{1, 1}, {2, 1}, {1, 2}, {2, 2}} {
		size := c.size
		t.Run(fmt.Sprint("WithMaxSize(", size, "), ", c.servers, " servers"), func(t *testing.T) {
			url := embedded(t).URL()
			if c.servers == 2 {
				url += "," + embedded(t).URL()
			}
			p := newPool(t, url, admin, ldapconn.WithMaxSize(size), quiet)
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			l, err := p.Lease(ctx)
			if err != nil {
				t.Fatal(err)
			}
			inner, innerCancel := context.WithTimeout(ctx, 300*time.Millisecond)
			_, err = p.Search(inner, searchUID("user3"))
			innerCancel()
			l.Release()
			switch {
			case size > 1 && err != nil:
				t.Errorf("Search inside a Lease at WithMaxSize(%d) = %v; want it to succeed", size, err)
			case size == 1 && err != nil && !errors.Is(err, context.DeadlineExceeded):
				t.Errorf("Search inside the only Lease = %v; want the caller's deadline", err)
			case size == 1:
				t.Logf("Search inside the only Lease: %v", err)
			}
			if _, err := p.Search(ctx, searchUID("user3")); err != nil {
				t.Errorf("Search after the Lease was released = %v", err)
			}
		})
	}
}
