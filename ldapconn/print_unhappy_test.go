package ldapconn_test

// What a service prints and logs on its unhappy paths (written by porting
// services' code onto the pool).

import (
	"context"
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/fairpool/ldappool/ldapconn"
	"github.com/fairpool/ldappool/ldaptest"
)

// The values a service ends up printing on its unhappy paths (a closed pool's
// errors, a broken write's ErrOutcomeUnknown, a bind-password source's
// error, a Config read from the environment), under every fmt verb, slog and json: no password, and each
// fmt and slog rendering names what it is about (the DN, the server, the
// pool). TestNoPasswordIsPrinted covers the happy-path values; this adds
// the closed pool's errors, ErrOutcomeUnknown, a password source's error
// and ConfigFromEnv's Config and error.
func TestUnhappyPathValuesPrintNoPassword(t *testing.T) {
	const envPassword = "env-Pa55word-never-printed"
	srv := embedded(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	user := ldapconn.Credentials{DN: ldaptest.UserDN(4), Password: ldaptest.UserPassword(4)}
	p, err := ldapconn.NewPool(srv.URL(), admin, ldapconn.WithPoolName("sso"), quiet)
	if err != nil {
		t.Fatal(err)
	}
	l, err := p.LeaseAs(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	// The connection drops under a write: ErrOutcomeUnknown. (The embedded
	// server refuses writes, so the write is sent, then its answer lost.)
	srv.DropConnections()
	outcomeErr := p.DoAs(ctx, user, func(c ldap.Client) error {
		srv.DropConnections()
		return c.Modify(ldap.NewModifyRequest(user.DN, nil))
	})
	l.Release()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	closedErrs := map[string]error{}
	_, closedErrs["Search after Close"] = p.Search(ctx, searchUID("user1"))
	closedErrs["Authenticate after Close"] = p.Authenticate(ctx, user.DN, user.Password)
	closedErrs["DoAs after Close"] = p.DoAs(ctx, user, func(ldap.Client) error { return nil })
	_, closedErrs["LeaseAs after Close"] = p.LeaseAs(ctx, user)

	src := ldapconn.WithBindPasswordFunc(ldaptest.AdminDN, func(context.Context) (string, error) {
		return "", errors.New("vault: sealed")
	})
	sp := newPool(t, srv.URL(), src, quiet)
	_, sourceErr := sp.Search(ctx, searchUID("user1"))

	t.Setenv("A6_SERVERS", srv.URL())
	t.Setenv("A6_BIND_DN", ldaptest.AdminDN)
	t.Setenv("A6_BIND_PASSWORD", envPassword)
	t.Setenv("A6_MAX_SIZE", "3")
	envCfg, err := ldapconn.ConfigFromEnv("A6")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("A6_MAX_SIZE", "three")
	_, envErr := ldapconn.ConfigFromEnv("A6")

	values := map[string]struct {
		v    any
		want []string // each rendering must hold one of these
	}{
		"ErrOutcomeUnknown error":  {outcomeErr, []string{"outcome"}},
		"Pool after Close":         {p, []string{"127.0.0.1", "sso"}},
		"Stats after Close":        {p.Stats(), []string{"open 0/10", "\"Open\":0", "Open:0"}},
		"AuthStats after Close":    {p.AuthStats(), []string{"open 0/2", "\"Open\":0", "Open:0"}},
		"ServerStatus after Close": {p.Servers(), []string{"127.0.0.1"}},
		"bind source error":        {sourceErr, []string{ldaptest.AdminDN}},
		"Config from env":          {envCfg, []string{"127.0.0.1"}},
		"ConfigFromEnv error":      {envErr, []string{"A6_MAX_SIZE"}},
	}
	for name, err := range closedErrs {
		values[name] = struct {
			v    any
			want []string
		}{err, []string{"closed"}}
		if !errors.Is(err, ldapconn.ErrClosed) {
			t.Errorf("%s = %v; want ErrClosed", name, err)
		}
	}
	if !errors.Is(outcomeErr, ldapconn.ErrOutcomeUnknown) {
		t.Errorf("DoAs with a write on a dropped connection = %v; want ErrOutcomeUnknown", outcomeErr)
	}
	secrets := []string{ldaptest.AdminPassword, user.Password, envPassword}
	for name, tv := range values {
		for how, out := range renderings(tv.v) {
			for _, s := range secrets {
				for _, form := range []string{s, hex.EncodeToString([]byte(s))} {
					if strings.Contains(out, form) {
						t.Errorf("%s rendered with %s shows the password %q:\n%s", name, how, s, out)
					}
				}
			}
			if how == "%T" || how == "%x" || how == "%X" || how == "% x" || how == "%d" || how == "%10.3v" || how == "json.Marshal" || len(tv.want) == 0 {
				continue
			}
			useful := false
			for _, w := range tv.want {
				useful = useful || strings.Contains(strings.ToLower(out), strings.ToLower(w))
			}
			if !useful {
				t.Errorf("%s rendered with %s says none of %q:\n%s", name, how, tv.want, out)
			}
		}
	}
}

// A Lease copied out of its pointer (go vet's copylocks flags fmt.Print(*l);
// reflect copies it here) prints no password, of the identity it is bound
// as or of the pool's service identity, under any verb or slog: the
// identity is held by pointer, and so are the credentials in the pool's
// settings and keys. (Under %s and %q fmt prints a pointer field as a bad
// verb, which shows the struct behind it: the pool's settings are one
// such struct away from a Lease.)
func TestLeaseValuePrintsNoPassword(t *testing.T) {
	srv := embedded(t)
	p := newPool(t, srv.URL(), admin, quiet)
	user := ldapconn.Credentials{DN: ldaptest.UserDN(4), Password: ldaptest.UserPassword(4)}
	l, err := p.LeaseAs(t.Context(), user)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	// reflect copies the value as *l would, without go vet's copylocks
	// complaint that `fmt.Printf("%+v", *l)` draws.
	// The Pool too, printed as a value: its settings hold the service
	// identity's password. %s and %q of a struct print what its pointer
	// fields point to (fmt's answer to a verb that does not fit a pointer),
	// the pool's settings for a Lease.
	for what, v := range map[string]any{
		"Lease": reflect.ValueOf(l).Elem().Interface(),
		"Pool":  reflect.ValueOf(p).Elem().Interface(),
	} {
		for how, out := range renderings(v) {
			for _, s := range []string{ldaptest.AdminPassword, user.Password} {
				if i := strings.Index(out, s); i >= 0 {
					t.Errorf("a %s value rendered with %s shows the password %q: ...%s", what, how, s, out[max(0, i-200):i])
				}
			}
		}
	}
}
