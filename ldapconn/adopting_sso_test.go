package ldapconn_test

// Tests written by porting services' code onto the pool: an SSO gateway's login flow. Each login
// authenticates an end user (right and wrong passwords, unknown users, empty
// passwords), then looks the user up with the service identity, from many
// goroutines at once, while the directory is killed and restarted.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/fairpool/ldappool/ldapconn"
	"github.com/fairpool/ldappool/ldaptest"
	"github.com/fairpool/ldappool/ldaptest/slapd"
)

type ssoKind int

const (
	ssoRight ssoKind = iota
	ssoWrong
	ssoUnknown
	ssoEmpty
)

func (k ssoKind) String() string {
	return [...]string{"right password", "wrong password", "unknown user", "empty password"}[k]
}

// ssoLogin is one login: Authenticate, then (when it succeeded) the user's
// entry and groups read as the service identity. It returns the
// Authenticate error and the lookup error.
func ssoLogin(ctx context.Context, p *ldapconn.Pool, kind ssoKind, i int) (authErr, lookupErr error) {
	dn, pw := ldaptest.UserDN(i), ldaptest.UserPassword(i)
	switch kind {
	case ssoWrong:
		pw = pw + "x"
	case ssoUnknown:
		dn = fmt.Sprintf("uid=nobody%d,%s", i, ldaptest.PeopleDN)
	case ssoEmpty:
		pw = ""
	}
	authErr = p.Authenticate(ctx, dn, pw)
	if authErr != nil {
		return authErr, nil
	}
	res, err := p.Search(ctx, ldapconn.NewSearch(ldaptest.PeopleDN, fmt.Sprintf("(uid=user%d)", i), "cn", "mail"))
	if err == nil && len(res.Entries) != 1 {
		err = fmt.Errorf("user%d: %d entries; want 1", i, len(res.Entries))
	}
	if err == nil {
		// Groups: seeded users belong to none; the query still has to run.
		_, err = p.Search(ctx, ldapconn.NewSearch(ldaptest.BaseDN,
			"(&(objectClass=groupOfNames)(member="+ldap.EscapeFilter(dn)+"))", "cn"))
	}
	return nil, err
}

// ssoCheck returns what is wrong with a login's outcome, or "".
// Authenticate may fail while the directory is down, with an error that says
// so (retryable); the lookups may not: Search waits through a restart
// (README: "Do and Search waiting through a restart").
func ssoCheck(kind ssoKind, authErr, lookupErr error) string {
	if lookupErr != nil {
		return fmt.Sprintf("lookup after a good login failed: %v", lookupErr)
	}
	transient := authErr != nil && ldapconn.IsRetryable(authErr) && !errors.Is(authErr, ldapconn.ErrInvalidCredentials)
	switch kind {
	case ssoRight:
		if authErr != nil && !transient {
			return fmt.Sprintf("right password refused: %v", authErr)
		}
	case ssoWrong, ssoUnknown:
		if authErr == nil {
			return "LOGIN SUCCEEDED"
		}
		if !errors.Is(authErr, ldapconn.ErrInvalidCredentials) && !transient {
			return fmt.Sprintf("error neither invalid credentials nor retryable: %v", authErr)
		}
		if ldapconn.IsRetryable(authErr) && errors.Is(authErr, ldapconn.ErrInvalidCredentials) {
			return fmt.Sprintf("invalid credentials reported retryable: %v", authErr)
		}
	case ssoEmpty:
		if authErr == nil {
			return "LOGIN SUCCEEDED (anonymous bind)"
		}
		if !errors.Is(authErr, ldapconn.ErrEmptyPassword) || !errors.Is(authErr, ldapconn.ErrBadRequest) {
			return fmt.Sprintf("empty password: %v; want ErrEmptyPassword", authErr)
		}
	}
	return ""
}

func TestAdoptingSSOLoginsThroughKillNine(t *testing.T) {
	for _, second := range []bool{false, true} {
		name := "one server"
		if second {
			name = "with a second server"
		}
		t.Run(name, func(t *testing.T) {
			s := slapd.Start(t)
			servers := s.URL()
			if second {
				servers += "," + slapd.Start(t).URL()
			}
			p := newPool(t, servers, admin, ldapconn.WithMaxSize(4), ldapconn.WithAuthPool(2), quiet)
			const goroutines, maxLogins, kills = 8, 400, 2
			var (
				stop     atomic.Bool
				logins   atomic.Int64
				mu       sync.Mutex
				problems []string
				counts   = map[string]int{}
				wg       sync.WaitGroup
				progress = make(chan struct{}, 1) // a token after each login (waitOps)
			)
			for g := range goroutines {
				wg.Go(func() {
					for n := 0; n < maxLogins && !stop.Load(); n++ {
						kind := ssoKind((g + n) % 4)
						i := (g*97 + n) % ldaptest.Users
						ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
						authErr, lookupErr := ssoLogin(ctx, p, kind, i)
						cancel()
						logins.Add(1)
						select {
						case progress <- struct{}{}:
						default:
						}
						mu.Lock()
						if authErr != nil && kind == ssoRight {
							counts[fmt.Sprintf("%v: %v", kind, authErr)]++
						}
						if what := ssoCheck(kind, authErr, lookupErr); what != "" {
							problems = append(problems, fmt.Sprintf("%v for user%d: %s", kind, i, what))
						}
						mu.Unlock()
					}
				})
			}
			for k := range kills {
				waitOps(t, &logins, progress, logins.Load()+40)
				if err := s.Kill(); err != nil {
					t.Fatalf("kill %d: %v", k, err)
				}
				if err := s.Restart(); err != nil {
					t.Fatalf("restart %d: %v", k, err)
				}
			}
			waitOps(t, &logins, progress, logins.Load()+40)
			stop.Store(true)
			wg.Wait()
			t.Logf("%d logins; transient refusals of right passwords: %v", logins.Load(), counts)
			if len(problems) > 0 {
				t.Errorf("%d logins went wrong; the first ones:\n%s", len(problems), strings.Join(problems[:min(len(problems), 15)], "\n"))
			}
		})
	}
}

// An empty password is refused at every entry point that takes one, and
// never reaches the server (LDAP would take it as an anonymous bind); a
// password of white space is a password, checked by the server; an empty DN
// with a password, or both empty, never authenticates.
func TestAdoptingEmptyPasswordNeverBindsAnonymously(t *testing.T) {
	srv := embedded(t)
	p := newPool(t, srv.URL(), admin, quiet)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	dn := ldaptest.UserDN(3)
	before := srv.Stats().Binds
	checks := map[string]error{
		"Authenticate(dn, \"\")": p.Authenticate(ctx, dn, ""),
		"DoAs(dn, \"\")":         p.DoAs(ctx, ldapconn.Credentials{DN: dn}, func(ldap.Client) error { return nil }),
	}
	if l, err := p.LeaseAs(ctx, ldapconn.Credentials{DN: dn}); err == nil {
		l.Release()
		checks["LeaseAs(dn, \"\")"] = errors.New("LeaseAs succeeded")
	} else {
		checks["LeaseAs(dn, \"\")"] = err
	}
	for name, err := range checks {
		if !errors.Is(err, ldapconn.ErrEmptyPassword) || !errors.Is(err, ldapconn.ErrBadRequest) || ldapconn.IsRetryable(err) {
			t.Errorf("%s = %v; want ErrEmptyPassword (ErrBadRequest, not retryable)", name, err)
		}
		if err != nil && !strings.Contains(err.Error(), dn) {
			t.Errorf("%s = %v; want the error to name the DN", name, err)
		}
	}
	if got := srv.Stats().Binds - before; got != 0 {
		t.Errorf("%d binds reached the server for empty passwords; want none", got)
	}
	for name, err := range map[string]error{
		"Authenticate(\"\", \"\")":     p.Authenticate(ctx, "", ""),
		"Authenticate(\"\", password)": p.Authenticate(ctx, "", ldaptest.UserPassword(3)),
		"Authenticate(\" \", \"\")":    p.Authenticate(ctx, " ", ""),
		"Authenticate(dn, \" \")":      p.Authenticate(ctx, dn, " "),
		"Authenticate(dn, \"\\x00\")":  p.Authenticate(ctx, dn, "\x00"),
		"Authenticate(dn+\" \", \"\")": p.Authenticate(ctx, dn+" ", ""),
	} {
		if err == nil {
			t.Errorf("%s succeeded; want it refused", name)
		} else if ldapconn.IsRetryable(err) {
			t.Errorf("%s = %v: retryable; want a refusal", name, err)
		}
	}
}
