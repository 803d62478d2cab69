package ldapconn_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/fairpool/ldappool/ldapconn"
)

// FuzzParseServers checks ParseServers on any list: it never panics; every
// server it returns parses again, from its URL alone, to the same server;
// every error wraps ErrBadURI and never shows a password from a user part.
func FuzzParseServers(f *testing.F) {
	for _, seed := range []string{
		"ldap://a",
		"ldap://a:1389, ldaps://b",
		"LDAP://[::1]:10389",
		"ldap://[fe80::1%25eth0]:389",
		"ldap://[::ffff:192.0.2.1]",
		"ldap://a.example.org.",
		"ldap://::",
		"ldap://]",
		"ldap://[",
		"ldap://[::1",
		"ldap://a..b",
		"ldap://a:0389",
		"ldap://cn=admin:s3cr3t@a",
		"ldap://u:s3cr3t%zz@a",
		"ldap://u:s3cr3t/x@a:x",
		"u:s3cr3t@a",
		"ldap://a,ldap://a:389",
		"ldap://a/dc=example?cn#x",
		"ldapi://%2Fvar%2Frun%2Fslapd%2Fldapi",
		"ldapi:///",
		"LDAPI://%2ftmp%2fa%20b, ldap://a",
		"ldapi:///var/run/ldapi",
		"ldapi://u:s3cr3t@%2Fa",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, list string) {
		servers, err := ldapconn.ParseServers(list)
		if err != nil {
			if !errors.Is(err, ldapconn.ErrBadURI) {
				t.Fatalf("ParseServers(%q) error %v does not wrap ErrBadURI", list, err)
			}
			for _, pw := range passwords(list) {
				if strings.Contains(err.Error(), pw) && !coincidence(list, pw) {
					t.Fatalf("ParseServers(%q) error shows the password %q: %v", list, pw, err)
				}
			}
			return
		}
		if len(servers) == 0 {
			t.Fatalf("ParseServers(%q) returned no servers and no error", list)
		}
		for _, s := range servers {
			again, err := ldapconn.ParseServers(s.URL)
			if err != nil || len(again) != 1 || again[0] != s {
				t.Fatalf("ParseServers(%q) gave %+v, but its URL parses to %+v, %v", list, s, again, err)
			}
			if strings.Contains(s.URL, "@") {
				t.Fatalf("ParseServers(%q) gave a URL with a user part: %q", list, s.URL)
			}
		}
	})
}

// passwords returns what a person would take for the password in each URI of
// list that has a user part: after the first ':' following "://" (or the
// start), up to the last '@'.
func passwords(list string) []string {
	var pws []string
	for _, uri := range strings.FieldsFunc(list, func(r rune) bool { return strings.ContainsRune(", \t\n\r", r) }) {
		at := strings.LastIndexByte(uri, '@')
		if at < 0 {
			continue
		}
		user := uri[:at]
		if i := strings.Index(user, "://"); i >= 0 {
			user = user[i+len("://"):]
		}
		if _, pw, ok := strings.Cut(user, ":"); ok && pw != "" {
			pws = append(pws, pw)
		}
	}
	return pws
}

// coincidence reports whether pw may be in the error for another reason: it
// is too short to tell, it is elsewhere in list too, or the error shows it
// even when it is removed from the list.
func coincidence(list, pw string) bool {
	if len(pw) < 4 || strings.Count(list, pw) > 1 {
		return true
	}
	_, err := ldapconn.ParseServers(strings.Replace(list, pw, "", 1))
	return err != nil && strings.Contains(err.Error(), pw)
}
