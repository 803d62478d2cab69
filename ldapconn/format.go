package ldapconn

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// Every type that holds a password prints through a description that holds
// none. A String or GoString method is not enough: fmt calls neither for
// verbs such as %d or %x, and for a verb a type does not support it prints
// the value's fields, unexported ones included, after "%!d(". So these types
// implement fmt.Formatter, which fmt calls for every verb, slog.LogValuer,
// which both slog handlers call, and, where json.Marshal would see an
// exported Password field, json.Marshaler.

// formatSafe writes desc, a description that holds no secret, as fmt would
// write a string for verb and its flags, and goSyntax for %#v.
func formatSafe(f fmt.State, verb rune, desc, goSyntax string) {
	if verb == 'v' && f.Flag('#') {
		io.WriteString(f, goSyntax)
		return
	}
	fmt.Fprintf(f, fmt.FormatString(f, verb), desc)
}

// Format prints the DN only, for every verb, so that no verb or flag can
// print the password, even with Credentials inside another value. fmt cannot
// call methods of an unexported struct field, so Credentials kept in one are
// printed field by field; keep them in an exported field or a pointer.
func (c Credentials) Format(f fmt.State, verb rune) { formatSafe(f, verb, c.String(), c.GoString()) }

// LogValue logs the DN only ("anonymous" for Anonymous).
func (c Credentials) LogValue() slog.Value { return slog.StringValue(c.String()) }

// MarshalJSON writes the DN only: the password is left out, so Credentials
// read back from the JSON have none and a bind with them fails with
// ErrEmptyPassword.
func (c Credentials) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct{ DN string }{c.DN})
}

// Format prints the pool's state table (String) for every verb but %#v,
// which prints the servers and the service identity's key. It is on the value
// so that a dereferenced *Pool prints no more than the pointer.
func (p Pool) Format(f fmt.State, verb rune) {
	formatSafe(f, verb, p.String(), fmt.Sprintf("&ldapconn.Pool{Servers: %q, Service: %q}", p.serverURLs(), p.service.Name))
}

// LogValue logs the servers, the service identity's key and the pool's
// occupancy.
func (p Pool) LogValue() slog.Value {
	st := p.Stats()
	return slog.GroupValue(
		slog.Any("servers", p.serverURLs()),
		slog.String("service", p.service.Name),
		slog.Int("open", st.Open),
		slog.Int("idle", st.Idle),
		slog.Int("in_use", st.InUse),
		slog.Int("waiters", st.Waiters),
	)
}

func (p *Pool) serverURLs() []string {
	urls := make([]string, len(p.health.servers))
	for i, s := range p.health.servers {
		urls[i] = s.URL
	}
	return urls
}

// String describes the lease by its identity's key (DN#tag), its server and
// whether it was released.
func (l *Lease) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "lease of %s on %s", l.Key(), l.Server())
	if l.use.isReleased() {
		b.WriteString(" (released)")
	}
	return b.String()
}

// Format prints String for every verb but %#v, which prints the same in Go
// syntax; neither holds the password the connection is bound with.
func (l *Lease) Format(f fmt.State, verb rune) {
	formatSafe(f, verb, l.String(),
		fmt.Sprintf("&ldapconn.Lease{Key: %q, Server: %q, Released: %t}", l.Key(), l.Server(), l.use.isReleased()))
}

// LogValue logs the lease's key, server and whether it was released.
func (l *Lease) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("key", l.Key()),
		slog.String("server", l.Server()),
		slog.Bool("released", l.use.isReleased()),
	)
}

func (c *client) String() string { return "ldap.Client of the " + c.l.String() }

// Format prints the client as its lease, without the password.
func (c *client) Format(f fmt.State, verb rune) {
	formatSafe(f, verb, c.String(), fmt.Sprintf("&ldapconn.client{l: %#v}", c.l))
}

// LogValue logs the client as its lease.
func (c *client) LogValue() slog.Value { return c.l.LogValue() }

// String describes c by its fields that are set, as ParseConfig's
// parameters ("servers=... bind_dn=... bind_password=REDACTED max_size=8").
func (c Config) String() string {
	var b strings.Builder
	b.WriteString("{")
	for _, f := range configFields() {
		v, ok := f.get(&c)
		if !ok {
			continue
		}
		if b.Len() > 1 {
			b.WriteString(" ")
		}
		if f.text || f.secret {
			v = f.written(f.name, v)
		} else {
			v = f.name + "=" + v
		}
		b.WriteString(v)
	}
	b.WriteString("}")
	return b.String()
}

// Format prints String for every verb, and "ldapconn.Config" before it for
// %#v, so that no verb or flag prints BindPassword.
func (c Config) Format(f fmt.State, verb rune) {
	formatSafe(f, verb, c.String(), "ldapconn.Config"+c.String())
}

// LogValue logs the fields that are set, BindPassword as REDACTED.
func (c Config) LogValue() slog.Value {
	var attrs []slog.Attr
	for _, f := range configFields() {
		if v, ok := f.get(&c); ok {
			if f.secret {
				v = "REDACTED"
			}
			attrs = append(attrs, slog.String(f.name, v))
		}
	}
	return slog.GroupValue(attrs...)
}

// plainConfig is Config without its methods, for the marshallers.
type plainConfig Config

// MarshalJSON writes c without BindPassword, so that a Config read back from
// the JSON has none; NewPoolFromConfig then refuses its BindDN rather than
// binding with a placeholder.
func (c Config) MarshalJSON() ([]byte, error) {
	c.BindPassword = ""
	return json.Marshal(plainConfig(c))
}

// MarshalYAML gives YAML libraries (gopkg.in/yaml.v3, goccy/go-yaml) c
// without BindPassword, as MarshalJSON does; the package imports none.
func (c Config) MarshalYAML() (any, error) {
	c.BindPassword = ""
	return plainConfig(c), nil
}
