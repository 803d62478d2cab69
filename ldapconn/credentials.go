package ldapconn

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/fairpool/ldappool/engine"
)

// Credentials is a bind identity: a DN and its password, or anonymous when
// both are empty.
type Credentials struct {
	DN       string
	Password string
}

// Anonymous is the identity of a connection that never binds.
var Anonymous = Credentials{}

func (c Credentials) check() error {
	if c.DN != "" && c.Password == "" {
		return fmt.Errorf("%w for %q: an unauthenticated bind would succeed without checking anything", ErrEmptyPassword, c.DN)
	}
	if c.DN == "" && c.Password != "" {
		return errPasswordWithoutDN
	}
	return nil
}

// String prints the DN only.
func (c Credentials) String() string {
	if c.DN == "" {
		return "anonymous"
	}
	return c.DN
}

// GoString prints the DN only, so that %#v cannot print the password.
func (c Credentials) GoString() string { return fmt.Sprintf("ldapconn.Credentials{DN: %q}", c.DN) }

// keyring derives pool keys from credentials with an HMAC under a random
// per-pool secret: the key names a connection's identity in logs, stats and
// the state table (DN#tag), different passwords for one DN get different
// keys, and nothing printed lets the password be read back or guessed
// offline.
type keyring struct{ secret [32]byte }

func newKeyring() *keyring {
	k := &keyring{}
	rand.Read(k.secret[:])
	return k
}

func (k *keyring) key(c Credentials) engine.Key {
	if c == Anonymous {
		return engine.Key{Name: "anonymous", Credentials: c}
	}
	m := hmac.New(sha256.New, k.secret[:])
	m.Write([]byte(c.DN))
	m.Write([]byte{0})
	m.Write([]byte(c.Password))
	// The key holds a copy of c by pointer: a value printed field by field
	// (fmt's %v of a struct, or its %s, which prints what a pointer field
	// points to when the verb does not fit the pointer) shows an address.
	return engine.Key{Name: c.DN + "#" + hex.EncodeToString(m.Sum(nil)[:4]), Credentials: &c}
}

// heldCredentials holds credentials behind a pointer, for the same reason:
// the pool's settings keep the service identity's so. The zero value holds
// Anonymous.
type heldCredentials struct{ c *Credentials }

func hold(c Credentials) heldCredentials { return heldCredentials{&c} }

func (h heldCredentials) get() Credentials {
	if h.c == nil {
		return Anonymous
	}
	return *h.c
}
