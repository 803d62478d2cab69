package ldapconn_test

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"
	"go.uber.org/goleak"

	"github.com/fairpool/ldappool/engine"
	"github.com/fairpool/ldappool/ldapconn"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestParseServers(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		err  string
	}{
		{"ldap://a", []string{"ldap://a:389"}, ""},
		{"ldap://a:1389, ldaps://b", []string{"ldap://a:1389", "ldaps://b:636"}, ""},
		{"ldap://a ldap://b\tldap://c", []string{"ldap://a:389", "ldap://b:389", "ldap://c:389"}, ""},
		{"LDAP://[::1]:10389", []string{"ldap://[::1]:10389"}, ""},
		{"", nil, "the server list is empty"},
		{"a.example.org", nil, `"a.example.org": no scheme`},
		{"http://a", nil, `scheme "http" is not ldap or ldaps`},
		{"ldap://", nil, "no host"},
		{"ldap://a,ldap://a:389", nil, "listed twice"},
		{"ldap://cn=admin:secret@a", nil, "credentials do not belong in the URI"},
		{"ldap://a/dc=example", nil, "a DN or query in the URI is not supported"},
		{"ldap://a:99999999999999999999", nil, "ldapconn: bad server URI"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ldapconn.ParseServers(tt.in)
			if tt.err != "" {
				if !errors.Is(err, ldapconn.ErrBadURI) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ParseServers(%q) error = %v; want ErrBadURI containing %q", tt.in, err, tt.err)
				}
				if strings.Contains(err.Error(), "secret") {
					t.Fatalf("error shows the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseServers(%q): %v", tt.in, err)
			}
			var urls []string
			for _, s := range got {
				urls = append(urls, s.URL)
			}
			if fmt.Sprint(urls) != fmt.Sprint(tt.want) {
				t.Fatalf("ParseServers(%q) = %v; want %v", tt.in, urls, tt.want)
			}
		})
	}
}

func TestNewPoolRejectsBadInput(t *testing.T) {
	tests := []struct {
		servers string
		opt     ldapconn.Option
		want    string
	}{
		{"ldap://a", ldapconn.WithBind("cn=admin", ""), "ldapconn: WithBind: ldapconn: empty password"},
		{"ldap://a", ldapconn.WithOperationTimeout(0), "ldapconn: WithOperationTimeout(0s): must be positive"},
		{"ldap://a", ldapconn.WithRetry(0, 0), "ldapconn: WithRetry(0): tries must be at least 1"},
		{"ldap://a", ldapconn.WithStrategy(9), "ldapconn: WithStrategy(Strategy(9)): unknown strategy"},
		{"ldap://a", ldapconn.WithPoolOptions(engine.WithMaxSize(-1)), "engine: WithMaxSize(-1): size must be at least 1"},
		{"ldapx://a", ldapconn.WithNoPool(), `ldapconn: bad server URI "ldapx://a"`},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			p, err := ldapconn.NewPool(tt.servers, tt.opt)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("NewPool error = %v; want one starting %q", err, tt.want)
			}
			if p != nil {
				t.Fatal("NewPool returned a pool with its error")
			}
		})
	}
}

func TestIsBroken(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"closed", ldap.NewError(ldap.ErrorNetwork, errors.New("ldap: connection closed")), true},
		{"timeout", ldap.NewError(ldap.ErrorNetwork, errors.New("ldap: connection timed out")), true},
		{"net.OpError", &net.OpError{Op: "read", Err: errors.New("reset")}, true},
		{"busy 51", ldap.NewError(ldap.LDAPResultBusy, errors.New("busy")), true},
		{"unavailable 52", ldap.NewError(ldap.LDAPResultUnavailable, errors.New("unavailable")), true},
		{"invalid credentials 49", ldap.NewError(ldap.LDAPResultInvalidCredentials, errors.New("49")), false},
		{"no such object 32", ldap.NewError(ldap.LDAPResultNoSuchObject, errors.New("32")), false},
	}
	for _, tt := range tests {
		if got := ldapconn.IsBroken(tt.err); got != tt.want {
			t.Errorf("IsBroken(%s) = %v; want %v", tt.name, got, tt.want)
		}
	}
}

func TestCredentialsNeverPrintThePassword(t *testing.T) {
	c := ldapconn.Credentials{DN: "cn=svc", Password: "hunter2"}
	for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
		if s := fmt.Sprintf(f, c); strings.Contains(s, "hunter2") {
			t.Fatalf("%s printed the password: %s", f, s)
		}
	}
}
