package ldapconn

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/go-ldap/ldap/v3"

	"github.com/fairpool/ldappool/engine"
)

// WithBindPasswordFunc sets the pool's service identity to dn with a
// password that source returns, asked anew at every dial and every rebind to
// the service identity, so that a rotated password (a secret manager, a file
// rewritten by an agent) is picked up without a restart. Connections already
// bound stay bound: a directory does not unbind sessions when a password
// changes, and WithMaxLifetime retires them in time.
//
// source is called from the pool's dial workers, several at once, under the
// dial's context: it must be safe for concurrent use, and should cache what
// is slow to fetch. An error from it fails that dial, and the lease waiting
// for it, with an error that wraps source's error and names the DN; the
// servers are not marked down. An empty password is refused as
// ErrEmptyPassword, never sent. Like every bind option, it may not be
// combined with another (WithBind, WithExternalBind, ...).
//
// The pool keys the service identity's connections by the DN and a per-pool
// tag, not by the password, so a rotation keeps the key ("DN#tag") in logs
// and stats the same and the connections already pooled are still the
// service identity's.
func WithBindPasswordFunc(dn string, source func(ctx context.Context) (string, error)) Option {
	return optionFunc(func(c *config) {
		c.service = hold(Credentials{DN: dn})
		c.source = &passwordSource{dn: dn, fetch: source}
		c.bindOptions = append(c.bindOptions, fmt.Sprintf("WithBindPasswordFunc(%q, func)", dn))
	})
}

// passwordSource is the service identity of WithBindPasswordFunc: it is the
// Credentials of the service key, a pointer so that keys stay comparable.
type passwordSource struct {
	dn    string
	fetch func(ctx context.Context) (string, error)
}

func (s *passwordSource) check() error {
	written := fmt.Sprintf("WithBindPasswordFunc(%q, func)", s.dn)
	switch {
	case s.fetch == nil:
		return &OptionError{Option: fmt.Sprintf("WithBindPasswordFunc(%q, nil)", s.dn), Reason: "the password source must not be nil"}
	case s.dn == "":
		return &OptionError{Option: written, Reason: "a password source needs a bind DN"}
	}
	return nil
}

// bindTo binds lc as the DN with the source's current password: how a
// connection of the service identity is rebound and bound back.
func (s *passwordSource) bindTo(ctx context.Context, lc *ldap.Conn) error {
	creds, err := s.credentials(ctx)
	if err != nil {
		return err
	}
	return bind(lc, creds)
}

// credentials asks the source for the password.
func (s *passwordSource) credentials(ctx context.Context) (Credentials, error) {
	pw, err := s.fetch(ctx)
	if err != nil {
		return Credentials{}, &passwordSourceError{dn: s.dn, err: err}
	}
	if pw == "" {
		return Credentials{}, &passwordSourceError{dn: s.dn, err: ErrEmptyPassword}
	}
	return Credentials{DN: s.dn, Password: pw}, nil
}

// passwordSourceError is a dial that failed because the password source
// did: it names the DN and unwraps to the source's error.
type passwordSourceError struct {
	dn  string
	err error
}

func (e *passwordSourceError) Error() string {
	return fmt.Sprintf("ldapconn: bind password source for %q: %v", e.dn, e.err)
}

func (e *passwordSourceError) Unwrap() error { return e.err }

// sourceKey is the pool key of a password source's identity: an HMAC of the
// DN alone, under the per-pool secret, with a separator byte that a
// password key (DN, 0, password) never has in its place, so that a password
// rotation does not change it and it is never the key of a DN and password
// that LeaseAs is given.
func (k *keyring) sourceKey(s *passwordSource) engine.Key {
	m := hmac.New(sha256.New, k.secret[:])
	m.Write([]byte(s.dn))
	m.Write([]byte{1})
	return engine.Key{Name: s.dn + "#" + hex.EncodeToString(m.Sum(nil)[:4]), Credentials: s}
}

// maxPasswordFile bounds what a password file may hold: a password is
// short, and a path given by mistake (a device, a log) must not be read
// into memory whole.
const maxPasswordFile = 64 << 10

// passwordFile returns a password source that reads path at each call,
// without one trailing newline ("\n" or "\r\n"), as echo and editors leave.
func passwordFile(path string) func(context.Context) (string, error) {
	return func(context.Context) (string, error) {
		f, err := os.Open(path)
		if err != nil {
			return "", err
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, maxPasswordFile+1))
		if err != nil {
			return "", fmt.Errorf("read %s: %w", path, err)
		}
		if len(b) > maxPasswordFile {
			return "", fmt.Errorf("%s: %w", path, errPasswordFileTooLong)
		}
		return strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r"), nil
	}
}

var errPasswordFileTooLong = errors.New("longer than a password file may be (64 KiB)")
