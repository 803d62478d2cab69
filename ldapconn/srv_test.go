package ldapconn

import (
	"context"
	"errors"
	"net"
	"testing"
)

func TestLookupServers(t *testing.T) {
	saved := lookupSRV
	t.Cleanup(func() { lookupSRV = saved })
	var asked string
	lookupSRV = func(_ context.Context, service, proto, name string) (string, []*net.SRV, error) {
		asked = "_" + service + "._" + proto + "." + name
		switch name {
		case "example.org":
			return "", []*net.SRV{{Target: "ldap1.example.org.", Port: 389}, {Target: "ldap2.example.org.", Port: 3389}}, nil
		case "none.example.org":
			return "", []*net.SRV{{Target: ".", Port: 0}}, nil
		}
		return "", nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
	}
	got, err := LookupServers(context.Background(), "example.org", false)
	if want := "ldap://ldap1.example.org:389,ldap://ldap2.example.org:3389"; err != nil || got != want || asked != "_ldap._tcp.example.org" {
		t.Fatalf("LookupServers = %q, %v (asked %s); want %q", got, err, asked, want)
	}
	if got, err := LookupServers(context.Background(), "example.org", true); err != nil || asked != "_ldaps._tcp.example.org" ||
		got != "ldaps://ldap1.example.org:389,ldaps://ldap2.example.org:3389" {
		t.Fatalf("LookupServers(ldaps) = %q, %v (asked %s)", got, err, asked)
	}
	if _, err := LookupServers(context.Background(), "none.example.org", false); !errors.Is(err, ErrServerDown) {
		t.Fatalf("LookupServers with only '.' = %v; want ErrServerDown", err)
	}
	var dnsErr *net.DNSError
	if _, err := LookupServers(context.Background(), "missing.example.org", false); !errors.As(err, &dnsErr) {
		t.Fatalf("LookupServers of a missing name = %v; want the *net.DNSError", err)
	}
}
