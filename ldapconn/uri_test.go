package ldapconn_test

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"
	"go.uber.org/goleak"

	"github.com/fairpool/ldappool/ldapconn"
)

// toxiproxy (the fault suite's proxy) can leave one goroutine of a toxic
// blocked forever on a link that closed while a toxic was added or removed:
// its own bug, seen about once in ten runs of the suite. Those goroutines
// are ignored by the stack frame every toxic runs under; the pool's own
// goroutines and connections are still checked (closeAndCheck in
// faultproxy_test.go).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/Shopify/toxiproxy/v2/toxics.(*ToxicStub).Run"))
}

func TestParseServers(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []ldapconn.Server
	}{
		{"default port", "ldap://a", []ldapconn.Server{{URL: "ldap://a:389", Host: "a:389", Network: "tcp"}}},
		{"comma and ldaps", "ldap://a:1389, ldaps://b", []ldapconn.Server{
			{URL: "ldap://a:1389", Host: "a:1389", Network: "tcp"}, {URL: "ldaps://b:636", Host: "b:636", Network: "tcp", TLS: true}}},
		{"white space", "ldap://a ldap://b\tldap://c", []ldapconn.Server{
			{URL: "ldap://a:389", Host: "a:389", Network: "tcp"}, {URL: "ldap://b:389", Host: "b:389", Network: "tcp"}, {URL: "ldap://c:389", Host: "c:389", Network: "tcp"}}},
		{"upper-case scheme", "LDAP://[::1]:10389", []ldapconn.Server{{URL: "ldap://[::1]:10389", Host: "[::1]:10389", Network: "tcp"}}},
		{"IPv6 in canonical form", "ldap://[0:0:0:0:0:0:0:1]", []ldapconn.Server{{URL: "ldap://[::1]:389", Host: "[::1]:389", Network: "tcp"}}},
		{"IPv4-mapped IPv6", "ldap://[::FFFF:192.0.2.1]", []ldapconn.Server{{URL: "ldap://[::ffff:192.0.2.1]:389", Host: "[::ffff:192.0.2.1]:389", Network: "tcp"}}},
		{"IPv6 zone", "ldap://[fe80::1%25eth0]:389", []ldapconn.Server{{URL: "ldap://[fe80::1%25eth0]:389", Host: "[fe80::1%eth0]:389", Network: "tcp"}}},
		{"IPv6 zone, default port", "ldaps://[fe80::1%253]", []ldapconn.Server{{URL: "ldaps://[fe80::1%253]:636", Host: "[fe80::1%3]:636", Network: "tcp", TLS: true}}},
		{"IPv4", "ldap://192.0.2.1:1636", []ldapconn.Server{{URL: "ldap://192.0.2.1:1636", Host: "192.0.2.1:1636", Network: "tcp"}}},
		{"port with leading zeros", "ldap://a:0389", []ldapconn.Server{{URL: "ldap://a:389", Host: "a:389", Network: "tcp"}}},
		{"empty port", "ldap://a:", []ldapconn.Server{{URL: "ldap://a:389", Host: "a:389", Network: "tcp"}}},
		{"trailing slash", "ldap://a/", []ldapconn.Server{{URL: "ldap://a:389", Host: "a:389", Network: "tcp"}}},
		{"fully qualified name", "ldap://a.example.org.", []ldapconn.Server{{URL: "ldap://a.example.org.:389", Host: "a.example.org.:389", Network: "tcp"}}},
		{"ldapi", "ldapi://%2Fvar%2Frun%2Fslapd%2Fldapi", []ldapconn.Server{
			{URL: "ldapi://%2Fvar%2Frun%2Fslapd%2Fldapi", Host: "/var/run/slapd/ldapi", Network: "unix"}}},
		{"ldapi, default socket", "LDAPI:///", []ldapconn.Server{
			{URL: "ldapi://%2Fvar%2Frun%2Fslapd%2Fldapi", Host: "/var/run/slapd/ldapi", Network: "unix"}}},
		{"ldapi, go-ldap's form", "ldapi:///var/run/ldapi", []ldapconn.Server{
			{URL: "ldapi://%2Fvar%2Frun%2Fldapi", Host: "/var/run/ldapi", Network: "unix"}}},
		{"ldapi, lower-case escapes and odd bytes", "ldapi://%2ftmp%2fa%20b%2Cc%40d, ldap://a", []ldapconn.Server{
			{URL: "ldapi://%2Ftmp%2Fa%20b%2Cc%40d", Host: "/tmp/a b,c@d", Network: "unix"},
			{URL: "ldap://a:389", Host: "a:389", Network: "tcp"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ldapconn.ParseServers(tt.in)
			if err != nil {
				t.Fatalf("ParseServers(%q): %v", tt.in, err)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("ParseServers(%q) = %+v; want %+v", tt.in, got, tt.want)
			}
			for _, s := range got {
				again, err := ldapconn.ParseServers(s.URL)
				if err != nil || len(again) != 1 || again[0] != s {
					t.Fatalf("ParseServers(%q) = %+v, %v; want the same server back", s.URL, again, err)
				}
			}
		})
	}
}

func TestParseServersRefuses(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // in the error, after ErrBadURI's text
	}{
		{"empty list", "", "the server list is empty"},
		{"only separators", " ,, \t", "the server list is empty"},
		{"no scheme", "a.example.org", `"a.example.org": no scheme`},
		{"no scheme, a port", "a.example.org:389", `"a.example.org:389": no scheme; write ldap://a.example.org:389 or`},
		{"no scheme, a user part", "u:s3cr3t@a", `"REDACTED@a": no scheme; write ldap://REDACTED@a or`},
		{"other scheme", "http://a", `"http://a": scheme "http" is not ldap, ldaps or ldapi`},
		{"other scheme, no slashes", "http:a", `"http:a": no scheme`},
		{"no host", "ldap://", `"ldap://": no host`},
		{"opaque", "ldap:a", `"ldap:a": no host`},
		{"no host, a path", "ldap:///dc=example", `"ldap:///dc=example": no host`},
		{"two colons", "ldap://::", `"ldap://::": host "::" is not a host name; write an IPv6 address in brackets`},
		{"bare IPv6", "ldap://::1", `"ldap://::1": host "::1" is not a host name; write an IPv6 address in brackets`},
		{"closing bracket", "ldap://]", `"ldap://]": host "]" is not a host name`},
		{"opening bracket", "ldap://[", `"ldap://[": missing ']' in host`},
		{"unclosed IPv6", "ldap://[::1", `"ldap://[::1": missing ']' in host`},
		{"empty brackets", "ldap://[]", `"ldap://[]"`},
		{"IPv4 in brackets", "ldap://[192.0.2.1]", `"ldap://[192.0.2.1]"`},
		{"name in brackets", "ldap://[a]", `"ldap://[a]"`},
		{"empty zone", "ldap://[fe80::1%25]", `"ldap://[fe80::1%25]"`},
		{"unescaped zone", "ldap://[fe80::1%eth0]", `"ldap://[fe80::1%eth0]"`},
		{"odd zone", "ldap://[fe80::1%25a!b]", `IPv6 zone "a!b" is not an interface name`},
		{"empty label", "ldap://a..b", `host "a..b" is not a host name`},
		{"only a dot", "ldap://.", `host "." is not a host name`},
		{"escaped host", "ldap://%61", `"ldap://%61": invalid URL escape`},
		{"Unicode host", "ldap://b\u00fccher.example", `host "bücher.example" is not a host name`},
		{"port zero", "ldap://a:0", `port "0" is not 1 to 65535`},
		{"port too big", "ldap://a:65536", `port "65536" is not 1 to 65535`},
		{"huge port", "ldap://a:99999999999999999999", `port "99999999999999999999" is not 1 to 65535`},
		{"named port", "ldap://a:ldap", `invalid port ":ldap"`},
		{"listed twice", "ldap://a,ldap://a:389", `"ldap://a:389": listed twice`},
		{"listed twice, IPv6", "ldap://[::1] ldap://[0::1]:389", `"ldap://[0::1]:389": listed twice`},
		{"credentials", "ldap://cn=admin:secret@a", `"ldap://REDACTED@a": credentials do not belong in the URI`},
		{"DN", "ldap://a/dc=example", "a DN, query or fragment in the URI is not supported"},
		{"query", "ldap://a?cn", "a DN, query or fragment in the URI is not supported"},
		{"empty query", "ldap://a?", "a DN, query or fragment in the URI is not supported"},
		{"fragment", "ldap://a#x", "a DN, query or fragment in the URI is not supported"},
		{"control character", "ldap://a\x00", `"ldap://a\x00": net/url: invalid control character`},
		{"ldapi, go-ldap's form with a query", "ldapi:///var/run/ldapi?x", "a DN, query or fragment in the URI is not supported"},
		{"ldapi, relative path", "ldapi://ldapi", `socket path "ldapi" is not absolute`},
		{"ldapi, path too long", "ldapi://%2F" + strings.Repeat("a", 107), "socket path is 108 bytes; a unix socket's is at most 107"},
		{"ldapi, NUL", "ldapi://%2Fa%00", "socket path holds a NUL byte"},
		{"ldapi, bad escape", "ldapi://%2Fa%zz", `invalid URL escape "%zz"`},
		{"ldapi, credentials", "ldapi://u:s3cr3t@%2Fa", `"ldapi://REDACTED@%2Fa": credentials do not belong in the URI`},
		{"ldapi, DN", "ldapi://%2Fa/dc=example", "a DN, query or fragment in the URI is not supported"},
		{"ldapi, query", "ldapi://%2Fa?x", "a DN, query or fragment in the URI is not supported"},
		{"ldapi, listed twice", "ldapi://, ldapi://%2fvar%2frun%2fslapd%2fldapi", "listed twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ldapconn.ParseServers(tt.in)
			if !errors.Is(err, ldapconn.ErrBadURI) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseServers(%q) = %v, %v; want ErrBadURI containing %q", tt.in, got, err, tt.want)
			}
			if strings.Count(err.Error(), "ldapconn:") != 1 {
				t.Fatalf("ParseServers(%q) error %q repeats the package prefix", tt.in, err)
			}
		})
	}
}

func TestNewPoolListRefusesAnEmptyURI(t *testing.T) {
	_, err := ldapconn.NewPoolList([]string{"ldap://a", " "})
	if !errors.Is(err, ldapconn.ErrBadURI) || !strings.Contains(err.Error(), `"": empty`) {
		t.Fatalf("NewPoolList with an empty URI = %v; want ErrBadURI naming it", err)
	}
}

// Whatever is wrong with a URI that holds a password, the error never shows
// the password, not even when url.Parse itself fails and would quote it.
func TestBadURIErrorsNeverShowThePassword(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{"valid otherwise", "ldap://cn=admin:s3cr3t@a"},
		{"ldaps", "ldaps://u:s3cr3t@[::1]:636"},
		{"user part only", "ldap://s3cr3t@a"},
		{"bad escape in password", "ldap://u:s3cr3t%zz@a"},
		{"bad escape is the password", "ldap://u:%cr3@a"},
		{"bad escape after it", "ldap://u:s3cr3t@a%zz"},
		{"slash in password", "ldap://u:s3cr3t/x@a"},
		{"slash after the colon", "ldap://u:/s3cr3t@a"},
		{"question mark in password", "ldap://u:s3?cr3t@a"},
		{"hash in password", "ldap://u:s3#cr3t@a"},
		{"bad port", "ldap://u:s3cr3t@a:x"},
		{"no host", "ldap://u:s3cr3t@"},
		{"bad host", "ldap://u:s3cr3t@]"},
		{"unclosed bracket", "ldap://u:s3cr3t@[::1"},
		{"other scheme", "http://u:s3cr3t@a"},
		{"no scheme", "u:s3cr3t@a"},
		{"no slashes", "ldap:u:s3cr3t@a"},
		{"with a DN", "ldap://u:s3cr3t@a/dc=example"},
		{"control character", "ldap://u:s3cr3t\x01@a"},
		{"second in a list", "ldap://a ldap://u:s3cr3t@b"},
		{"listed twice", "ldap://a ldap://u:s3cr3t@a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ldapconn.ParseServers(tt.in)
			if !errors.Is(err, ldapconn.ErrBadURI) {
				t.Fatalf("ParseServers(%q) error = %v; want ErrBadURI", tt.in, err)
			}
			if strings.Contains(err.Error(), "cr3") {
				t.Fatalf("ParseServers(%q) error shows the password: %v", tt.in, err)
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
