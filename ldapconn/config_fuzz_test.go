package ldapconn_test

import (
	"errors"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fairpool/ldappool/ldapconn"
)

// FuzzParseConfig checks ParseConfig on any string: it never panics; what
// it accepts either gives options and a pool, or an error matching
// ErrBadRequest; and no error shows a bind_password value (of 4 characters
// or more, found nowhere else in the URL, so that an error quoting another
// part cannot show it by coincidence). Seeds are in
// testdata/fuzz/FuzzParseConfig.
func FuzzParseConfig(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		secrets := urlPasswords(s)
		check := func(what string, err error) {
			t.Helper()
			if err == nil {
				return
			}
			if !errors.Is(err, ldapconn.ErrBadRequest) {
				t.Fatalf("%s of %q: %v does not match ErrBadRequest", what, s, err)
			}
			for _, pw := range secrets {
				if strings.Contains(err.Error(), pw) {
					t.Fatalf("%s of %q: the error shows the password %q: %v", what, s, pw, err)
				}
			}
		}
		c, err := ldapconn.ParseConfig(s)
		check("ParseConfig", err)
		if err != nil {
			return
		}
		// Files are read by Options: a fuzzed path must not name a device
		// that never ends, so each becomes a file that does not exist.
		dir := t.TempDir()
		for _, p := range []*string{&c.BindPasswordFile, &c.TLSCAFile, &c.TLSCertFile, &c.TLSKeyFile} {
			if *p != "" {
				*p = filepath.Join(dir, "missing")
			}
		}
		_, err = c.Options()
		check("Options", err)
		if err != nil {
			return
		}
		// A pool of the Config, over a port where nothing listens, so that
		// WithMinIdle dials nowhere on the network.
		c.Servers = "ldap://127.0.0.1:1"
		p, err := ldapconn.NewPoolFromConfig(c)
		check("NewPoolFromConfig", err)
		if err == nil {
			p.Close(t.Context())
		}
	})
}

// urlPasswords returns the bind_password values of s's query that are 4
// characters or more and appear, raw or escaped, nowhere else in s.
func urlPasswords(s string) []string {
	_, query, ok := strings.Cut(s, "?")
	if !ok {
		return nil
	}
	var pws []string
	for pair := range strings.SplitSeq(query, "&") {
		key, raw, _ := strings.Cut(pair, "=")
		if k, err := url.QueryUnescape(key); err != nil || k != "bind_password" {
			continue
		}
		pw, err := url.QueryUnescape(raw)
		if err != nil || len(pw) < 4 {
			continue
		}
		rest := strings.Replace(s, "bind_password="+raw, "", 1)
		unescaped, _ := url.QueryUnescape(rest)
		if !strings.Contains(rest, pw) && !strings.Contains(unescaped, pw) && !strings.Contains(pw, "REDACTED") {
			pws = append(pws, pw)
		}
	}
	return pws
}
