package ldapconn

import (
	"context"
	"fmt"
	"net"
)

// Dialer opens a connection to addr on network ("tcp" with host:port, or
// "unix" with a socket path), as net.Dialer.DialContext does. ctx bounds the
// dial only, and carries the connect timeout (WithConnectTimeout); the
// connection must outlive it.
type Dialer func(ctx context.Context, network, addr string) (net.Conn, error)

// WithDialer makes the pool open its TCP and unix-socket connections with d:
// through a SOCKS proxy or an SSH tunnel, from a chosen source address, with
// socket options set, or counted in tests. The pool still does TLS itself
// (ldaps:// and WithStartTLS) over what d returns. Default: a net.Dialer.
func WithDialer(d Dialer) Option {
	return optionFunc(func(c *config) { c.dialer, c.dialerSet = d, true })
}

// WithAllowCleartext lets a pool given WithTLSConfig (a CA, a client
// certificate) also dial plain ldap:// servers without WithStartTLS. Without
// it NewPool refuses such a list: a TLS configuration says the connections
// were meant to be secured, and a server left plain would bind, password
// included, in cleartext without anyone noticing.
func WithAllowCleartext() Option { return optionFunc(func(c *config) { c.allowCleartext = true }) }

// usesTLS reports whether connections to srv are secured with TLS: ldaps://,
// or ldap:// with StartTLS. An ldapi:// socket never is; it is local, and
// the pool sends no StartTLS on it.
func (c *config) usesTLS(srv Server) bool {
	return srv.TLS || c.startTLS && srv.Network != "unix"
}

// checkTransport checks the options against the server list: a TLS
// configuration with a plain ldap:// server (WithAllowCleartext), and SASL
// EXTERNAL, which needs a client certificate or a unix socket to have an
// identity to take.
func (c *config) checkTransport(servers []Server) error {
	if c.dialer == nil && c.dialerSet {
		return &OptionError{Option: "WithDialer(nil)", Reason: "must not be nil"}
	}
	external := c.method != nil && c.method.external
	for _, srv := range servers {
		plain := !c.usesTLS(srv) && srv.Network != "unix"
		switch {
		case external && plain:
			return &OptionError{Option: c.method.option, Reason: fmt.Sprintf(
				"SASL EXTERNAL needs TLS with a client certificate, or an ldapi:// socket; %s is plain LDAP: use ldaps:// or WithStartTLS", srv)}
		case external && c.usesTLS(srv) && !c.hasClientCertificate():
			return &OptionError{Option: c.method.option, Reason: fmt.Sprintf(
				"SASL EXTERNAL over TLS to %s needs a client certificate: set Certificates or GetClientCertificate in WithTLSConfig", srv)}
		case plain && c.tls != nil && !c.allowCleartext:
			return &OptionError{Option: "WithTLSConfig(...)", Reason: fmt.Sprintf(
				"%s is plain LDAP and would bind in cleartext; use ldaps:// or WithStartTLS, or pass WithAllowCleartext() to mean it", srv)}
		}
	}
	return nil
}

func (c *config) hasClientCertificate() bool {
	return c.tls != nil && (len(c.tls.Certificates) > 0 || c.tls.GetClientCertificate != nil)
}

// dialServer opens the socket to srv, with the pool's Dialer if it has one.
func (c *config) dialServer(ctx context.Context, srv Server) (net.Conn, error) {
	if c.dialer == nil {
		d := net.Dialer{Timeout: c.connectTimeout}
		return d.DialContext(ctx, srv.Network, srv.Host)
	}
	ctx, cancel := context.WithTimeout(ctx, c.connectTimeout)
	defer cancel()
	return c.dialer(ctx, srv.Network, srv.Host)
}
