package ldapconn

import (
	"context"
	"fmt"

	"github.com/go-ldap/ldap/v3"

	"github.com/fairpool/ldappool/engine"
)

// identity is what a pooled connection is bound as, and what an engine.Key
// carries for the connector: Credentials (a simple bind, or anonymous), or
// the service identity's bind method (WithExternalBind and the others
// below). Dial, rebind and the revert on release all bind through it, so a
// connection is always bound back the way it was first bound.
type identity interface {
	bindTo(ctx context.Context, lc *ldap.Conn) error
}

func (c Credentials) bindTo(_ context.Context, lc *ldap.Conn) error { return bind(lc, c) }

// bindMethod is a service bind other than WithBind's simple bind. One is
// made per option and compared by pointer, so an engine.Key holding it stays
// comparable.
type bindMethod struct {
	option   string // the option as written, for errors; never a secret
	name     string // the pool key's name; never a secret
	external bool   // SASL EXTERNAL: needs TLS with a client certificate, or ldapi://
	invalid  string // why the option's arguments cannot be used; "" when they can
	bind     func(ctx context.Context, lc *ldap.Conn) error
}

// bindTo runs the method; a refusal (result 49, and the others refusal
// names) is the caller's error, as for WithBind: never retried, and it stops
// background dials.
func (m *bindMethod) bindTo(ctx context.Context, lc *ldap.Conn) error {
	return refusal(m.name, m.bind(ctx, lc))
}

// key is the pool key of connections bound by m. Its name ends in ')', and
// a key of Credentials never does ("anonymous", or DN#tag with a hex tag),
// so the service's connections never mix with those of LeaseAs.
func (m *bindMethod) key() engine.Key { return engine.Key{Name: m.name, Credentials: m} }

// bindOption sets the service identity's bind method. Only one bind option
// may be given: config.validate refuses a second.
func bindOption(m *bindMethod) Option {
	return optionFunc(func(c *config) {
		c.method = m
		c.bindOptions = append(c.bindOptions, m.option)
	})
}

// WithExternalBind makes the service identity bind with SASL EXTERNAL (RFC
// 4422 appendix A, go-ldap's ExternalBind): the server takes the identity
// from the TLS client certificate in WithTLSConfig, or, on an ldapi://
// socket, from the connecting process's user. NewPool refuses it unless
// every server is ldaps://, ldapi:// or ldap:// with WithStartTLS, and,
// when any is TLS, unless WithTLSConfig holds a client certificate
// (Certificates or GetClientCertificate).
func WithExternalBind() Option {
	return bindOption(&bindMethod{
		option:   "WithExternalBind()",
		name:     "EXTERNAL()",
		external: true,
		bind:     func(_ context.Context, lc *ldap.Conn) error { return lc.ExternalBind() },
	})
}

// WithUnauthenticatedBind makes the service identity bind with a DN and no
// password: RFC 4513 section 5.1.2's unauthenticated bind (go-ldap's
// UnauthenticatedBind). The server checks nothing; where it accepts such
// binds at all (slapd only with "allow bind_anon_dn", Active Directory
// unless configured otherwise) the connection is anonymous with a name
// attached for logging. It is an explicit opt-in because the same request
// from a user who forgot a password must never pass for a login: WithBind,
// LeaseAs and Authenticate refuse an empty password. The DN must not be
// empty; use no bind option for anonymous.
func WithUnauthenticatedBind(dn string) Option {
	m := &bindMethod{
		option: fmt.Sprintf("WithUnauthenticatedBind(%q)", dn),
		name:   "unauthenticated(" + dn + ")",
		bind:   func(_ context.Context, lc *ldap.Conn) error { return lc.UnauthenticatedBind(dn) },
	}
	if dn == "" {
		m.invalid = "the DN must not be empty; leave out the bind option for an anonymous pool"
	}
	return bindOption(m)
}

// WithNTLMBind makes the service identity bind with NTLM as user in domain:
// go-ldap's NTLMBind, Microsoft's "Sicily" NTLM bind that Active Directory
// takes. An empty password is refused, as WithBind refuses one. NTLM
// authenticates without sending the password, but its challenge-response is
// open to offline guessing and relay: prefer ldaps:// or WithStartTLS.
func WithNTLMBind(domain, user, password string) Option {
	m := &bindMethod{
		option: fmt.Sprintf("WithNTLMBind(%q, %q, REDACTED)", domain, user),
		name:   "NTLM(" + domain + `\` + user + ")",
		bind: func(_ context.Context, lc *ldap.Conn) error {
			return lc.NTLMBind(domain, user, password)
		},
	}
	switch {
	case user == "":
		m.invalid = "the user must not be empty"
	case password == "":
		m.option = fmt.Sprintf("WithNTLMBind(%q, %q, \"\")", domain, user)
		m.invalid = "empty password: a server may accept it without checking anything"
	}
	return bindOption(m)
}

// WithBindFunc makes the service identity bind by calling fn on each new
// connection, after TLS, and again whenever the pool binds a connection back
// to the service identity. It is the way to any bind the other options do
// not offer: GSSAPI (Kerberos) with a go-ldap gssapi.Client,
//
//	ldapconn.WithBindFunc("GSSAPI", func(ctx context.Context, c *ldap.Conn) error {
//		return c.GSSAPIBind(client, "ldap/dc1.example.org", "")
//	})
//
// DIGEST-MD5, or a simple bind whose password is read from a secret store at
// each dial. name identifies the method in the pool key, logs and stats: it
// must not be empty and must not hold a secret. fn runs under the dial's
// context and the operation timeout; an error from it with result 49
// matches ErrInvalidCredentials.
func WithBindFunc(name string, fn func(ctx context.Context, c *ldap.Conn) error) Option {
	m := &bindMethod{option: fmt.Sprintf("WithBindFunc(%q, fn)", name), name: "func(" + name + ")", bind: fn}
	switch {
	case name == "":
		m.invalid = "the name must not be empty"
	case fn == nil:
		m.option = fmt.Sprintf("WithBindFunc(%q, nil)", name)
		m.invalid = "the function must not be nil"
	}
	return bindOption(m)
}

// checkBind refuses a bind option with unusable arguments, and more than one
// bind option: which of two identities was meant cannot be guessed.
func (c *config) checkBind() error {
	if len(c.bindOptions) > 1 {
		return &OptionError{Option: c.bindOptions[1], Reason: "only one bind option may be given, and " + c.bindOptions[0] + " was given too"}
	}
	if c.method != nil && c.method.invalid != "" {
		return &OptionError{Option: c.method.option, Reason: c.method.invalid}
	}
	return nil
}
