package ldapconn_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/fairpool/ldappool/ldapconn"
	"github.com/fairpool/ldappool/ldaptest"
)

// rotating is a password source whose password a test changes.
type rotating struct {
	mu    sync.Mutex
	pw    string
	err   error
	calls atomic.Int64
}

func (r *rotating) set(pw string, err error) { r.mu.Lock(); r.pw, r.err = pw, err; r.mu.Unlock() }

func (r *rotating) fetch(context.Context) (string, error) {
	r.calls.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pw, r.err
}

// A password source is asked at each dial: a rotation is picked up by the
// next dial, the service key stays the same across it, and a source that
// fails or returns nothing fails the dial without marking the server down.
func TestBindPasswordFuncRotation(t *testing.T) {
	srv := embedded(t)
	src := &rotating{pw: ldaptest.AdminPassword}
	p := newPool(t, srv.URL(), ldapconn.WithBindPasswordFunc(ldaptest.AdminDN, src.fetch), ldapconn.WithMaxSize(2),
		quiet)

	lease := func() (string, error) {
		t.Helper()
		l, err := p.Lease(t.Context())
		if err != nil {
			return "", err
		}
		key := l.Key()
		l.Discard(errors.New("test: dial anew next time"))
		return key, nil
	}
	key, err := lease()
	if err != nil {
		t.Fatalf("Lease with the source's password: %v", err)
	}
	if !strings.HasPrefix(key, ldaptest.AdminDN+"#") {
		t.Fatalf("service key %q; want %q#tag", key, ldaptest.AdminDN)
	}
	if n := src.calls.Load(); n != 1 {
		t.Fatalf("the source was asked %d times for one dial; want 1", n)
	}

	src.set(wrongPassword, nil) // rotated at the directory's side first
	if _, err := lease(); !errors.Is(err, ldapconn.ErrInvalidCredentials) {
		t.Fatalf("Lease after the source changed to a wrong password: %v; want ErrInvalidCredentials", err)
	} else if strings.Contains(err.Error(), wrongPassword) {
		t.Fatalf("the error shows the password: %v", err)
	}

	boom := errors.New("vault sealed")
	src.set("", boom)
	_, err = lease()
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), ldaptest.AdminDN) {
		t.Fatalf("Lease with a failing source: %v; want an error naming the DN and wrapping the source's", err)
	}
	src.set("", nil)
	if _, err := lease(); !errors.Is(err, ldapconn.ErrEmptyPassword) {
		t.Fatalf("Lease with a source that returned nothing: %v; want ErrEmptyPassword", err)
	}
	for _, s := range p.Servers() {
		if !s.Up {
			t.Fatalf("the source's failures marked %s down: %v", s.URL, s.LastError)
		}
	}

	src.set(ldaptest.AdminPassword, nil)
	again, err := lease()
	if err != nil {
		t.Fatalf("Lease after the password came back: %v", err)
	}
	if again != key {
		t.Fatalf("the service key changed with the password: %q, then %q", key, again)
	}
}

// A connection the caller bound as someone else is bound back to the service
// identity on release with the source's current password, and an idle
// connection of another identity is rebound with it.
func TestBindPasswordFuncRebind(t *testing.T) {
	srv := embedded(t)
	src := &rotating{pw: ldaptest.AdminPassword}
	p := newPool(t, srv.URL(), ldapconn.WithBindPasswordFunc(ldaptest.AdminDN, src.fetch), ldapconn.WithMaxSize(1))

	l, err := p.Lease(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Client().Bind(ldaptest.UserDN(3), ldaptest.UserPassword(3)); err != nil {
		t.Fatal(err)
	}
	before := src.calls.Load()
	l.Release()
	if n := src.calls.Load(); n != before+1 {
		t.Fatalf("the release's rebind asked the source %d times; want once", n-before)
	}
	if got := srv.BoundDNs(); !slices.Equal(got, []string{ldaptest.AdminDN}) {
		t.Fatalf("after release the connection is bound as %q; want the service DN", got)
	}

	user := ldapconn.Credentials{DN: ldaptest.UserDN(4), Password: ldaptest.UserPassword(4)}
	la, err := p.LeaseAs(t.Context(), user)
	if err != nil {
		t.Fatal(err)
	}
	la.Release()
	if _, err := p.Search(t.Context(), searchUID("user4")); err != nil {
		t.Fatalf("Search after the only connection was rebound to a user: %v", err)
	}
	if got := srv.BoundDNs(); !slices.Equal(got, []string{ldaptest.AdminDN}) {
		t.Fatalf("the connection is bound as %q; want the service DN", got)
	}

	// The service DN with an empty password is not a way to the service
	// identity's connections.
	_, err = p.LeaseAs(t.Context(), ldapconn.Credentials{DN: ldaptest.AdminDN})
	if !errors.Is(err, ldapconn.ErrEmptyPassword) {
		t.Fatalf("LeaseAs(service DN, empty password) = %v; want ErrEmptyPassword", err)
	}
}

func TestBindPasswordFuncRefused(t *testing.T) {
	tests := []struct {
		name string
		opt  ldapconn.Option
		want string
	}{
		{"nil source", ldapconn.WithBindPasswordFunc("cn=svc", nil),
			`ldapconn: WithBindPasswordFunc("cn=svc", nil): the password source must not be nil`},
		{"no DN", ldapconn.WithBindPasswordFunc("", func(context.Context) (string, error) { return "x", nil }),
			`ldapconn: WithBindPasswordFunc("", func): a password source needs a bind DN`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ldapconn.NewPool("ldap://127.0.0.1", tt.opt)
			if err == nil || err.Error() != tt.want || !errors.Is(err, ldapconn.ErrBadRequest) {
				t.Fatalf("NewPool = %v; want %s, matching ErrBadRequest", err, tt.want)
			}
		})
	}
	// One bind option per pool: which identity was meant cannot be guessed.
	_, err := ldapconn.NewPool("ldap://127.0.0.1", ldapconn.WithBindPasswordFunc("cn=svc", nil),
		ldapconn.WithBind("cn=svc", "pw"))
	var oe *ldapconn.OptionError
	if !errors.As(err, &oe) || !strings.Contains(err.Error(), "only one bind option") {
		t.Fatalf("WithBind after WithBindPasswordFunc = %v; want an *OptionError: only one bind option", err)
	}
}

// quiet keeps the log of refused service passwords, which these tests cause
// on purpose, out of the test output.
var quiet = ldapconn.WithLogger(slog.New(slog.DiscardHandler))
