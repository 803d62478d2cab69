package ldapconn_test

// Tests written by porting services' code onto the pool: a self-service
// portal that acts as the signed-in user (LeaseAs, DoAs) with a DN built
// from what the user typed. A DN the directory cannot parse is the user's
// mistake, answered by the server like a wrong password: it must not be
// retried, nor take the server out of the pool for everyone else.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/fairpool/ldappool/ldapconn"
	"github.com/fairpool/ldappool/ldaptest"
	"github.com/fairpool/ldappool/ldaptest/slapd"
)

// slapd answers a bind with a DN it cannot parse with invalidDNSyntax (34).
// LeaseAs and DoAs return that answer, as Authenticate does, after one bind:
// no retry (WithRetry), no server marked down, no ErrServerDown telling the
// caller to try again later, and the service identity's calls meanwhile
// never wait for a backoff. Before, each such LeaseAs was retried and marked
// the only server down, so one user's typo turned into "every server is
// down" errors and backoff waits for the whole pool.
func TestAdoptingMalformedDNIsTheCallersError(t *testing.T) {
	s := slapd.Start(t)
	p := newPool(t, s.URL(), admin, ldapconn.WithMaxSize(3), ldapconn.WithRetry(3, 200*time.Millisecond))
	ctx := contractCtx(t)
	warm(t, p, 2) // idle service connections, which a LeaseAs may rebind
	bad := []ldapconn.Credentials{
		{DN: "not a dn", Password: "x"},
		{DN: "uid=x,,ou=people,dc=example,dc=org", Password: "x"},
	}
	calls := map[string]func(ldapconn.Credentials) error{
		"LeaseAs": func(c ldapconn.Credentials) error {
			l, err := p.LeaseAs(ctx, c)
			if err == nil {
				l.Release()
				return errors.New("LeaseAs succeeded")
			}
			return err
		},
		"DoAs": func(c ldapconn.Credentials) error {
			return p.DoAs(ctx, c, func(ldap.Client) error { return errors.New("fn ran") })
		},
		"Authenticate": func(c ldapconn.Credentials) error { return p.Authenticate(ctx, c.DN, c.Password) },
	}
	for name, call := range calls {
		for _, c := range bad {
			err := call(c)
			if !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidDNSyntax) {
				t.Errorf("%s(%q): %v; want the server's answer, invalidDNSyntax (34)", name, c.DN, err)
			}
			if ldapconn.IsRetryable(err) || errors.Is(err, ldapconn.ErrServerDown) || ldapconn.IsBroken(err) {
				t.Errorf("%s(%q): %v: retryable %v, server down %v, broken %v; want none: the server answered",
					name, c.DN, err, ldapconn.IsRetryable(err), errors.Is(err, ldapconn.ErrServerDown), ldapconn.IsBroken(err))
			}
			for _, st := range p.Servers() {
				if !st.Up || st.Failures != 0 {
					t.Fatalf("after %s(%q): server %s up %v, failures %d (%s); want it up: it answered the bind",
						name, c.DN, st.URL, st.Up, st.Failures, st.LastError)
				}
			}
		}
	}
	// Many at once, beside the service's own searches and real users'
	// LeaseAs: none of those fails or waits for a backoff.
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch i % 3 {
			case 0:
				if err := calls["LeaseAs"](bad[i%2]); !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidDNSyntax) {
					errs <- fmt.Errorf("LeaseAs(%q): %v", bad[i%2].DN, err)
				}
			case 1:
				sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				defer cancel()
				if _, err := p.Search(sctx, searchUID(fmt.Sprint("user", i))); err != nil {
					errs <- fmt.Errorf("service Search beside malformed binds: %v", err)
				}
			case 2:
				user := ldapconn.Credentials{DN: ldaptest.UserDN(i), Password: ldaptest.UserPassword(i)}
				if err := p.DoAs(ctx, user, func(c ldap.Client) error {
					_, err := c.Search(searchUID(fmt.Sprint("user", i)))
					return err
				}); err != nil {
					errs <- fmt.Errorf("DoAs as a real user beside malformed binds: %v", err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, st := range p.Servers() {
		if !st.Up || st.Failures != 0 {
			t.Errorf("server %s up %v, failures %d (%s); want it up", st.URL, st.Up, st.Failures, st.LastError)
		}
	}
}

// Code ported from go-ldap checks a user's password by binding on a
// connection of its own (a Lease, or DoAs), as it did on its own
// connection. A wrong password there is told apart the way the README
// promises for every call (errors.Is(err, ErrInvalidCredentials), as
// IsInvalidCredentials and ldap.IsErrorWithCode(err, 49) already said), the
// error names the DN but never the password, and the connection goes back
// bound as the pool's identity.
func TestAdoptingWrongPasswordOnALeaseMatchesErrInvalidCredentials(t *testing.T) {
	srv := embedded(t)
	p := newPool(t, srv.URL(), admin, ldapconn.WithMaxSize(1))
	ctx := contractCtx(t)
	const wrong = "not-the-password-42"
	binds := map[string]func(c ldap.Client) error{
		"Bind": func(c ldap.Client) error { return c.Bind(ldaptest.UserDN(4), wrong) },
		"SimpleBind": func(c ldap.Client) error {
			_, err := c.SimpleBind(&ldap.SimpleBindRequest{Username: ldaptest.UserDN(4), Password: wrong})
			return err
		},
	}
	check := func(how string, err error) {
		t.Helper()
		if !errors.Is(err, ldapconn.ErrInvalidCredentials) || !ldapconn.IsInvalidCredentials(err) ||
			!ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
			t.Errorf("%s with a wrong password: %v; want it to match ErrInvalidCredentials, IsInvalidCredentials and code 49", how, err)
		}
		if ldapconn.IsRetryable(err) {
			t.Errorf("%s with a wrong password: IsRetryable = true; want false (retries lock accounts)", how)
		}
		if err != nil && strings.Contains(err.Error(), wrong) {
			t.Errorf("%s: the error shows the password: %v", how, err)
		}
	}
	for name, bind := range binds {
		l, err := p.Lease(ctx)
		if err != nil {
			t.Fatal(err)
		}
		check("Lease's "+name, bind(l.Client()))
		l.Release()
		check("DoAs's "+name, p.DoAs(ctx, ldapconn.Credentials{DN: ldaptest.UserDN(5), Password: ldaptest.UserPassword(5)}, bind))
	}
	// The right password still binds, and the pool's connection is the
	// service identity's again after each lease.
	l, err := p.Lease(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Client().Bind(ldaptest.UserDN(4), ldaptest.UserPassword(4)); err != nil {
		t.Fatalf("Bind with the right password: %v", err)
	}
	l.Release()
	if _, err := p.Search(ctx, searchUID("user1")); err != nil {
		t.Fatal(err)
	}
	if got := srv.BoundDNs(); !slices.Equal(got, []string{ldaptest.AdminDN}) {
		t.Fatalf("bound DNs = %v; want the one connection bound back to the service", got)
	}
}
