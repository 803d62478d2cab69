package ldapconn

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strconv"
)

// tlsConfig builds the TLS settings of c's TLS fields, or nil when c has
// none, which leaves the pool's default (the system's roots, the URI's host
// as the server name).
func (c Config) tlsConfig() (*tls.Config, error) {
	if c.TLSCAFile == "" && c.TLSCertFile == "" && c.TLSKeyFile == "" && c.TLSServerName == "" && !c.TLSInsecureSkipVerify {
		return nil, nil
	}
	cfg := &tls.Config{
		ServerName:         c.TLSServerName,
		InsecureSkipVerify: c.TLSInsecureSkipVerify, // the field's doc comment says why not to
	}
	if c.TLSCAFile != "" {
		pem, err := os.ReadFile(c.TLSCAFile)
		if err != nil {
			return nil, fileError("TLSCAFile", c.TLSCAFile, err.Error())
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fileError("TLSCAFile", c.TLSCAFile, "no PEM certificate in the file")
		}
	}
	switch {
	case c.TLSCertFile != "" && c.TLSKeyFile != "":
		cert, err := tls.LoadX509KeyPair(c.TLSCertFile, c.TLSKeyFile)
		if err != nil {
			return nil, &OptionError{
				Option: fmt.Sprintf("Config.TLSCertFile(%q), Config.TLSKeyFile(%q)", c.TLSCertFile, c.TLSKeyFile),
				Reason: err.Error(),
			}
		}
		cfg.Certificates = []tls.Certificate{cert}
	case c.TLSCertFile != "":
		return nil, fileError("TLSCertFile", c.TLSCertFile, "a client certificate needs TLSKeyFile too")
	case c.TLSKeyFile != "":
		return nil, fileError("TLSKeyFile", c.TLSKeyFile, "a client key needs TLSCertFile too")
	}
	return cfg, nil
}

func fileError(field, path, why string) error {
	return &OptionError{Option: "Config." + field + "(" + strconv.Quote(path) + ")", Reason: why}
}
