package slapd

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"time"
)

// SelfSigned makes a self-signed RSA 2048 server certificate for hosts (IP
// addresses or DNS names; "127.0.0.1" and "localhost" when none are given),
// valid from an hour ago for a day. It returns the certificate and its
// PKCS #8 private key in PEM, for WithTLS, and a pool holding the
// certificate, for a client's tls.Config RootCAs. RSA is used because
// Debian's slapd is built against GnuTLS, which takes RSA keys in any PEM
// form.
//
// Note that go-ldap's StartTLS does not set tls.Config.ServerName from the
// URL: set it ("127.0.0.1") yourself. DialURL with ldaps:// does.
func SelfSigned(hosts ...string) (certPEM, keyPEM []byte, pool *x509.CertPool, err error) {
	if len(hosts) == 0 {
		hosts = []string{"127.0.0.1", "localhost"}
	}
	return selfSigned(hosts[0], hosts, x509.ExtKeyUsageServerAuth)
}

// SelfSignedClient makes a self-signed RSA 2048 client certificate whose
// subject is "CN=cn,O=ldappool slapd test", valid from an hour ago for a
// day, and returns it and its PKCS #8 private key in PEM. The certificate is
// its own CA: give certPEM to WithClientCA, and the pair to the client
// (tls.X509KeyPair). Over TLS with it, a SASL EXTERNAL bind authenticates as
// "cn=<cn>,o=ldappool slapd test".
func SelfSignedClient(cn string) (certPEM, keyPEM []byte, err error) {
	certPEM, keyPEM, _, err = selfSigned(cn, nil, x509.ExtKeyUsageClientAuth)
	return certPEM, keyPEM, err
}

// selfSigned makes a self-signed CA certificate for cn and hosts, with one
// extended key usage.
func selfSigned(cn string, hosts []string, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte, pool *x509.CertPool, err error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("slapd: self-signed key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("slapd: self-signed serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"ldappool slapd test"}, CommonName: cn},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{usage},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("slapd: self-signed certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("slapd: self-signed certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("slapd: self-signed key: %w", err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	return certPEM, keyPEM, pool, nil
}
