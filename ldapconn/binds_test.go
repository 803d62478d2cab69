package ldapconn_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"

	"github.com/fairpool/ldappool/ldapconn"
	"github.com/fairpool/ldappool/ldaptest"
	"github.com/fairpool/ldappool/ldaptest/slapd"
)

// whoAmI asks the server who the connection is bound as (RFC 4532).
func whoAmI(t *testing.T, c ldap.Client) string {
	t.Helper()
	res, err := c.Extended(ldap.NewExtendedRequest(ldap.ControlTypeWhoAmI, nil))
	if err != nil {
		t.Fatalf("WhoAmI: %v", err)
	}
	if res.Value == nil {
		return ""
	}
	return res.Value.Data.String()
}

// leaseWhoAmI leases a service connection and returns who it is bound as.
func leaseWhoAmI(t *testing.T, p *ldapconn.Pool) string {
	t.Helper()
	l, err := p.Lease(t.Context())
	if err != nil {
		t.Fatalf("Lease: %v", err)
	}
	defer l.Release()
	return whoAmI(t, l.Client())
}

// clientTLS returns a client certificate for cn, and slapd options that
// serve TLS and trust that certificate, and the client's TLS settings.
func clientTLS(t *testing.T, cn string) ([]slapd.Option, *tls.Config) {
	t.Helper()
	certPEM, keyPEM, roots, err := slapd.SelfSigned("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	clientPEM, clientKey, err := slapd.SelfSignedClient(cn)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(clientPEM, clientKey)
	if err != nil {
		t.Fatal(err)
	}
	return []slapd.Option{slapd.WithTLS(certPEM, keyPEM), slapd.WithClientCA(clientPEM)},
		&tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}}
}

func TestBindAndTransportOptionsRefused(t *testing.T) {
	withCert := &tls.Config{Certificates: []tls.Certificate{{}}}
	fn := func(context.Context, *ldap.Conn) error { return nil }
	tests := []struct {
		name    string
		servers string
		opts    []ldapconn.Option
		want    string // the error's start
	}{
		{"unauthenticated bind without a DN", "ldap://a", []ldapconn.Option{ldapconn.WithUnauthenticatedBind("")},
			`ldapconn: WithUnauthenticatedBind(""): the DN must not be empty`},
		{"NTLM without a user", "ldap://a", []ldapconn.Option{ldapconn.WithNTLMBind("EXAMPLE", "", "s3cr3t")},
			`ldapconn: WithNTLMBind("EXAMPLE", "", REDACTED): the user must not be empty`},
		{"NTLM with an empty password", "ldap://a", []ldapconn.Option{ldapconn.WithNTLMBind("EXAMPLE", "svc", "")},
			`ldapconn: WithNTLMBind("EXAMPLE", "svc", ""): empty password`},
		{"bind func without a name", "ldap://a", []ldapconn.Option{ldapconn.WithBindFunc("", fn)},
			`ldapconn: WithBindFunc("", fn): the name must not be empty`},
		{"nil bind func", "ldap://a", []ldapconn.Option{ldapconn.WithBindFunc("x", nil)},
			`ldapconn: WithBindFunc("x", nil): the function must not be nil`},
		{"two bind options", "ldap://a", []ldapconn.Option{ldapconn.WithBind("cn=admin", "s3cr3t"), ldapconn.WithNTLMBind("EXAMPLE", "svc", "s3cr3t")},
			`ldapconn: WithNTLMBind("EXAMPLE", "svc", REDACTED): only one bind option may be given, and WithBind("cn=admin", REDACTED) was given too`},
		{"EXTERNAL over plain LDAP", "ldaps://a, ldap://b", []ldapconn.Option{ldapconn.WithExternalBind(), ldapconn.WithTLSConfig(withCert)},
			"ldapconn: WithExternalBind(): SASL EXTERNAL needs TLS with a client certificate, or an ldapi:// socket; ldap://b:389 is plain LDAP"},
		{"EXTERNAL without a client certificate", "ldaps://a", []ldapconn.Option{ldapconn.WithExternalBind()},
			"ldapconn: WithExternalBind(): SASL EXTERNAL over TLS to ldaps://a:636 needs a client certificate"},
		{"EXTERNAL over StartTLS without a client certificate", "ldap://a", []ldapconn.Option{ldapconn.WithExternalBind(),
			ldapconn.WithStartTLS(), ldapconn.WithTLSConfig(&tls.Config{})},
			"ldapconn: WithExternalBind(): SASL EXTERNAL over TLS to ldap://a:389 needs a client certificate"},
		{"TLS settings with a plain server", "ldaps://a, ldap://b", []ldapconn.Option{ldapconn.WithTLSConfig(&tls.Config{})},
			"ldapconn: WithTLSConfig(...): ldap://b:389 is plain LDAP and would bind in cleartext; use ldaps:// or WithStartTLS, or pass WithAllowCleartext() to mean it"},
		{"nil dialer", "ldap://a", []ldapconn.Option{ldapconn.WithDialer(nil)},
			"ldapconn: WithDialer(nil): must not be nil"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ldapconn.NewPool(tt.servers, tt.opts...)
			var oe *ldapconn.OptionError
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) || !errors.As(err, &oe) {
				t.Fatalf("NewPool error = %v; want an *OptionError starting %q", err, tt.want)
			}
			if p != nil {
				t.Fatal("NewPool returned a pool with its error")
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Fatalf("NewPool error shows the password: %v", err)
			}
		})
	}
}

func TestBindAndTransportOptionsAccepted(t *testing.T) {
	withCert := &tls.Config{Certificates: []tls.Certificate{{}}}
	tests := []struct {
		name    string
		servers string
		opts    []ldapconn.Option
	}{
		{"TLS settings and cleartext, meant", "ldaps://a, ldap://b", []ldapconn.Option{ldapconn.WithTLSConfig(&tls.Config{}), ldapconn.WithAllowCleartext()}},
		{"TLS settings and StartTLS", "ldap://a", []ldapconn.Option{ldapconn.WithTLSConfig(&tls.Config{}), ldapconn.WithStartTLS()}},
		{"TLS settings and a unix socket", "ldaps://a, ldapi://", []ldapconn.Option{ldapconn.WithTLSConfig(&tls.Config{})}},
		{"EXTERNAL over a unix socket", "ldapi://", []ldapconn.Option{ldapconn.WithExternalBind()}},
		{"EXTERNAL over TLS with a certificate", "ldaps://a, ldap://b, ldapi://", []ldapconn.Option{ldapconn.WithExternalBind(),
			ldapconn.WithStartTLS(), ldapconn.WithTLSConfig(withCert)}},
		{"EXTERNAL with a certificate callback", "ldaps://a", []ldapconn.Option{ldapconn.WithExternalBind(),
			ldapconn.WithTLSConfig(&tls.Config{GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return nil, nil }})}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ldapconn.NewPool(tt.servers, tt.opts...)
			if err != nil {
				t.Fatalf("NewPool: %v", err)
			}
			if err := p.Close(context.Background()); err != nil {
				t.Fatalf("Close: %v", err)
			}
		})
	}
}

// An unauthenticated bind is sent as one, DN and empty password, to a
// server: slapd accepts it when told to, and the connection is anonymous;
// the embedded server refuses it, as slapd does by default.
func TestUnauthenticatedBind(t *testing.T) {
	const dn = "cn=monitoring,dc=example,dc=org"
	t.Run("slapd allowing it", func(t *testing.T) {
		s := slapd.Start(t, slapd.WithUnauthenticatedBinds())
		p := newPool(t, s.URL(), ldapconn.WithUnauthenticatedBind(dn))
		if who := leaseWhoAmI(t, p); who != "" {
			t.Fatalf("WhoAmI = %q; want anonymous", who)
		}
		if _, ok := p.Stats().Keys["unauthenticated("+dn+")"]; !ok {
			t.Fatalf("keys %v; want unauthenticated(%s)", p.Stats().Keys, dn)
		}
	})
	t.Run("embedded refusing it", func(t *testing.T) {
		p := newPool(t, embedded(t).URL(), ldapconn.WithUnauthenticatedBind(dn))
		_, err := p.Lease(t.Context())
		if !ldap.IsErrorWithCode(err, ldap.LDAPResultUnwillingToPerform) || errors.Is(err, ldapconn.ErrEmptyPassword) {
			t.Fatalf("Lease: %v; want the server's unwillingToPerform", err)
		}
	})
}

// SASL EXTERNAL over slapd's unix socket: the server takes the identity from
// the process's user; the dials go through the pool's Dialer on "unix".
func TestExternalBindOverLDAPI(t *testing.T) {
	s := slapd.Start(t, slapd.WithLDAPI())
	var dials atomic.Int64
	dialer := func(ctx context.Context, network, addr string) (net.Conn, error) {
		if network != "unix" {
			t.Errorf("dial %s %s; want unix", network, addr)
		}
		dials.Add(1)
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	p := newPool(t, s.LDAPIURL(), ldapconn.WithExternalBind(), ldapconn.WithDialer(dialer), ldapconn.WithMaxSize(1))
	if who := leaseWhoAmI(t, p); !strings.HasSuffix(who, ",cn=peercred,cn=external,cn=auth") {
		t.Fatalf("WhoAmI = %q; want a peercred identity", who)
	}
	res, err := p.Search(t.Context(), searchUID("user3"))
	if err != nil {
		t.Fatalf("Search over ldapi: %v", err)
	}
	if cn := cnOf(t, res); cn != "User 3" {
		t.Fatalf("cn = %q; want User 3", cn)
	}
	if n := dials.Load(); n != 1 {
		t.Fatalf("%d dials; want 1 through the Dialer", n)
	}
	if _, ok := p.Stats().Keys["EXTERNAL()"]; !ok {
		t.Fatalf("keys %v; want EXTERNAL()", p.Stats().Keys)
	}
	peercred := leaseWhoAmI(t, p)

	// The pool is full: a lease as the admin rebinds the one connection, and
	// the next service lease rebinds it back with EXTERNAL, not as anyone else.
	admin := ldapconn.Credentials{DN: ldaptest.AdminDN, Password: ldaptest.AdminPassword}
	if err := p.DoAs(t.Context(), admin, func(c ldap.Client) error {
		if who := whoAmI(t, c); who != "dn:"+ldaptest.AdminDN {
			t.Errorf("WhoAmI as admin = %q", who)
		}
		return nil
	}); err != nil {
		t.Fatalf("DoAs admin: %v", err)
	}
	if who := leaseWhoAmI(t, p); who != peercred {
		t.Fatalf("WhoAmI after a rebind = %q; want %q", who, peercred)
	}
	if st := p.Stats(); st.Rebinds != 2 || dials.Load() != 1 {
		t.Fatalf("%d rebinds, %d dials; want 2 rebinds of the one connection", st.Rebinds, dials.Load())
	}

	// A caller who binds as someone else gets the connection bound back
	// with EXTERNAL on release.
	l, err := p.Lease(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Client().Bind(ldaptest.AdminDN, ldaptest.AdminPassword); err != nil {
		t.Fatal(err)
	}
	l.Release()
	if who := leaseWhoAmI(t, p); who != peercred {
		t.Fatalf("WhoAmI after the caller's bind = %q; want %q", who, peercred)
	}
}

// SASL EXTERNAL over TLS with a client certificate, ldaps and StartTLS: the
// server takes the identity from the certificate's subject.
func TestExternalBindWithClientCertificate(t *testing.T) {
	opts, cfg := clientTLS(t, "pool")
	s := slapd.Start(t, opts...)
	for _, tt := range []struct {
		name string
		url  string
		opts []ldapconn.Option
	}{
		{"ldaps", s.LDAPSURL(), nil},
		{"StartTLS", s.URL(), []ldapconn.Option{ldapconn.WithStartTLS()}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := newPool(t, tt.url, append(tt.opts, ldapconn.WithExternalBind(), ldapconn.WithTLSConfig(cfg))...)
			if who := leaseWhoAmI(t, p); who != "dn:cn=pool,o=ldappool slapd test" {
				t.Fatalf("WhoAmI = %q; want the certificate's subject", who)
			}
			if _, err := p.Search(t.Context(), searchUID("user4")); err != nil {
				t.Fatalf("Search: %v", err)
			}
		})
	}
}

// WithBindFunc binds the service identity its own way, here a simple bind
// whose password is read at each dial, through a counting Dialer.
func TestBindFunc(t *testing.T) {
	srv := embedded(t)
	var binds, dials atomic.Int64
	bindFn := func(ctx context.Context, c *ldap.Conn) error {
		binds.Add(1)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return c.Bind(ldaptest.AdminDN, ldaptest.AdminPassword)
	}
	dialer := func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	p := newPool(t, srv.URL(), ldapconn.WithBindFunc("vault", bindFn), ldapconn.WithDialer(dialer), ldapconn.WithNoPool())
	for i := range 3 {
		if _, err := p.Search(t.Context(), searchUID("user5")); err != nil {
			t.Fatalf("Search %d: %v", i, err)
		}
	}
	if b, d := binds.Load(), dials.Load(); b != 3 || d != 3 {
		t.Fatalf("%d binds, %d dials; want 3 of each without pooling", b, d)
	}
	l, err := p.Lease(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	key := l.Key()
	l.Release()
	if key != "func(vault)" {
		t.Fatalf("lease key %q; want func(vault)", key)
	}
	// Connections closed by the pool may not have ended at the server yet.
	if dns := srv.BoundDNs(); len(dns) == 0 || slices.ContainsFunc(dns, func(dn string) bool { return dn != ldaptest.AdminDN }) {
		t.Fatalf("bound DNs %v; want only the admin's", dns)
	}

	t.Run("refused", func(t *testing.T) {
		bad := func(_ context.Context, c *ldap.Conn) error { return c.Bind(ldaptest.AdminDN, "wrong-s3cr3t") }
		p := newPool(t, srv.URL(), ldapconn.WithBindFunc("vault", bad))
		_, err := p.Lease(t.Context())
		if !errors.Is(err, ldapconn.ErrInvalidCredentials) || !strings.Contains(err.Error(), `"func(vault)"`) {
			t.Fatalf("Lease: %v; want ErrInvalidCredentials naming func(vault)", err)
		}
		if strings.Contains(err.Error(), "s3cr3t") {
			t.Fatalf("the error shows the password: %v", err)
		}
		if !p.Servers()[0].Up {
			t.Fatal("a refused bind marked the server down")
		}
	})
}

// WithNTLMBind sends an NTLM negotiate message (Microsoft's Sicily bind) for
// the domain; a refusal with result 49 matches ErrInvalidCredentials. No
// server at hand speaks NTLM, so a fake one reads the first request.
func TestNTLMBindSendsANegotiateMessage(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- err
			return
		}
		defer c.Close()
		req, err := ber.ReadPacket(c)
		if err != nil {
			got <- err
			return
		}
		auth := req.Children[1].Children[2] // BindRequest's authentication choice
		if auth.ClassType != ber.ClassContext || auth.Tag != 10 || !bytes.HasPrefix(auth.Data.Bytes(), []byte("NTLMSSP\x00\x01")) {
			got <- fmt.Errorf("authentication [%d] %q; want [10] an NTLMSSP negotiate message", auth.Tag, auth.Data.Bytes())
		} else {
			got <- nil
		}
		resp := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "LDAP Response")
		resp.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, req.Children[0].Value, "MessageID"))
		bind := ber.Encode(ber.ClassApplication, ber.TypeConstructed, ldap.ApplicationBindResponse, nil, "Bind Response")
		bind.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, ldap.LDAPResultInvalidCredentials, "resultCode"))
		bind.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "", "matchedDN"))
		bind.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "", "diagnosticMessage"))
		resp.AppendChild(bind)
		c.Write(resp.Bytes())
		ber.ReadPacket(c) // until the client closes
	}()
	p := newPool(t, "ldap://"+ln.Addr().String(), ldapconn.WithNTLMBind("EXAMPLE", "svc", "s3cr3t"))
	_, err = p.Lease(t.Context())
	if serr := <-got; serr != nil {
		t.Fatalf("the server read: %v", serr)
	}
	if !errors.Is(err, ldapconn.ErrInvalidCredentials) || !strings.Contains(err.Error(), `"NTLM(EXAMPLE\\svc)"`) {
		t.Fatalf("Lease: %v; want ErrInvalidCredentials naming NTLM(EXAMPLE\\svc)", err)
	}
	if strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("the error shows the password: %v", err)
	}
}
