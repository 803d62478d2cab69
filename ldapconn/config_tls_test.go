package ldapconn_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fairpool/ldappool/ldapconn"
	"github.com/fairpool/ldappool/ldaptest"
)

// testPKI is a CA and the certificates it signed, as PEM files in a
// temporary directory, and as the server's TLS settings.
type testPKI struct {
	caFile, certFile, keyFile string // the CA, and a client certificate and key
	server                    tls.Certificate
	pool                      *x509.CertPool
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	now := time.Now()
	caKey := newKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ldappool test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	caDER := sign(t, caTmpl, caTmpl, caKey, caKey)
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	leaf := func(serial int64, name string, usage x509.ExtKeyUsage, ips ...net.IP) ([]byte, *ecdsa.PrivateKey) {
		key := newKey(t)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: ips, DNSNames: []string{name},
		}
		return sign(t, tmpl, ca, key, caKey), key
	}
	serverDER, serverKey := leaf(2, "ldap.test", x509.ExtKeyUsageServerAuth, net.IPv4(127, 0, 0, 1))
	clientDER, clientKey := leaf(3, "svc", x509.ExtKeyUsageClientAuth)
	pki := testPKI{
		caFile:   writePEM(t, dir, "ca.pem", "CERTIFICATE", caDER),
		certFile: writePEM(t, dir, "client.pem", "CERTIFICATE", clientDER),
		keyFile:  writePEM(t, dir, "client-key.pem", "PRIVATE KEY", marshalKey(t, clientKey)),
		server:   tls.Certificate{Certificate: [][]byte{serverDER}, PrivateKey: serverKey},
		pool:     x509.NewCertPool(),
	}
	pki.pool.AddCert(ca)
	return pki
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func sign(t *testing.T, tmpl, parent *x509.Certificate, key, parentKey *ecdsa.PrivateKey) []byte {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func marshalKey(t *testing.T, key *ecdsa.PrivateKey) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// A Config's TLS files (the CA, a client certificate and its key, a server
// name) secure ldaps:// and StartTLS connections to the embedded server,
// which asks for a client certificate signed by the CA.
func TestConfigTLSFiles(t *testing.T) {
	pki := newTestPKI(t)
	serverTLS := &tls.Config{Certificates: []tls.Certificate{pki.server},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pki.pool}
	ldaps := embedded(t, ldaptest.WithLDAPS(serverTLS))
	startTLS := embedded(t, ldaptest.WithTLS(serverTLS))
	base := ldapconn.Config{BindDN: ldaptest.AdminDN, BindPassword: ldaptest.AdminPassword,
		TLSCAFile: pki.caFile, TLSCertFile: pki.certFile, TLSKeyFile: pki.keyFile}

	ok := []struct {
		name string
		edit func(*ldapconn.Config)
	}{
		{"ldaps", func(c *ldapconn.Config) { c.Servers = ldaps.URL() }},
		{"ldaps by the certificate's DNS name", func(c *ldapconn.Config) { c.Servers = ldaps.URL(); c.TLSServerName = "ldap.test" }},
		{"StartTLS", func(c *ldapconn.Config) { c.Servers = startTLS.URL(); c.StartTLS = true }},
	}
	for _, tt := range ok {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			tt.edit(&c)
			p := newPoolFromConfig(t, c)
			l, err := p.Lease(t.Context())
			if err != nil {
				t.Fatalf("Lease: %v", err)
			}
			defer l.Release()
			if state, ok := l.Client().TLSConnectionState(); !ok || !state.HandshakeComplete {
				t.Fatal("the connection is not TLS")
			}
			if _, err := l.Client().Search(searchUID("user5")); err != nil {
				t.Fatalf("Search over TLS: %v", err)
			}
		})
	}

	refused := []struct {
		name string
		edit func(*ldapconn.Config)
	}{
		{"no client certificate", func(c *ldapconn.Config) { c.TLSCertFile, c.TLSKeyFile = "", "" }},
		{"system roots", func(c *ldapconn.Config) { c.TLSCAFile = "" }},
		{"wrong server name", func(c *ldapconn.Config) { c.TLSServerName = "other.test" }},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			c.Servers = ldaps.URL()
			tt.edit(&c)
			p := newPoolFromConfig(t, c)
			if _, err := p.Search(t.Context(), searchUID("user5")); !errors.Is(err, ldapconn.ErrServerDown) {
				t.Fatalf("Search = %v; want the TLS handshake to fail (ErrServerDown)", err)
			}
		})
	}
}

// A connection a caller upgraded with StartTLS on its lease (README: never
// back as if clean) is closed at Release, not pooled: the next lease gets a
// fresh plain connection, whatever the pool's own settings.
func TestCallersStartTLSIsNeverPooled(t *testing.T) {
	pki := newTestPKI(t)
	srv := embedded(t, ldaptest.WithTLS(&tls.Config{Certificates: []tls.Certificate{pki.server}}))
	p := newPool(t, srv.URL(), admin, ldapconn.WithMaxSize(1))
	l, err := p.Lease(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Client().StartTLS(&tls.Config{RootCAs: pki.pool, ServerName: "ldap.test"}); err != nil {
		t.Fatalf("StartTLS on a lease: %v", err)
	}
	if _, ok := l.Client().TLSConnectionState(); !ok {
		t.Fatal("the lease's connection is not TLS after StartTLS")
	}
	l.Release()
	if st := p.Stats(); st.Idle != 0 || st.Discards != 1 {
		t.Fatalf("after Release: idle %d, discards %d; want the upgraded connection closed, not pooled", st.Idle, st.Discards)
	}
	l, err = p.Lease(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	if _, ok := l.Client().TLSConnectionState(); ok {
		t.Fatal("the next lease got a TLS connection; want a fresh plain one")
	}
	if _, err := l.Client().Search(searchUID("user5")); err != nil {
		t.Fatalf("Search on the next lease: %v", err)
	}
}
