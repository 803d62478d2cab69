package ldapconn

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// ErrBadURI is wrapped by the error for a server URI that cannot be used. It
// matches ErrBadRequest too.
var ErrBadURI error = &kindOf{"ldapconn: bad server URI", ErrBadRequest}

// Server is one directory server of a pool's list.
type Server struct {
	// URL is the URI normalised to scheme://host:port: scheme in lower
	// case, the port always written, an IPv6 address in brackets in its
	// canonical form with its zone escaped as URLs require
	// ("ldap://[fe80::1%25eth0]:389"); for ldapi://, the socket path with
	// every byte but letters, digits and "-._~" percent-encoded
	// ("ldapi://%2Fvar%2Frun%2Fslapd%2Fldapi"). ParseServers(URL) returns
	// this Server again.
	URL string
	// Host is the address to dial, as net.Dial takes it on Network: host:port
	// ("[fe80::1%eth0]:389"), or a unix socket's path.
	Host    string
	Network string // "tcp", or "unix" for ldapi://
	TLS     bool   // ldaps://: TLS from the first byte
}

func (s Server) String() string { return s.URL }

// ParseServers reads a server list as Python ldappool and Keystone take it:
// URIs separated by commas or white space, ldap:// or ldaps://, with an
// optional port (389 and 636 by default). A host is a DNS name or IPv4
// address (letters, digits, '-', '.', '_'), or an IPv6 address in brackets,
// with an optional zone. An ldapi:// URI is a unix socket whose absolute
// path is percent-encoded in the host, as OpenLDAP writes it
// ("ldapi://%2Fvar%2Frun%2Fslapd%2Fldapi"), or in the path, as go-ldap
// takes it ("ldapi:///var/run/slapd/ldapi"); "ldapi://" alone is
// /var/run/slapd/ldapi. Every URI must parse; the error names the first that
// does not and wraps ErrBadURI. A URI with a user part is refused, and the
// error shows it as REDACTED.
func ParseServers(list string) ([]Server, error) {
	fields := strings.FieldsFunc(list, func(r rune) bool {
		return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r'
	})
	return parseURIs(fields)
}

func parseURIs(uris []string) ([]Server, error) {
	if len(uris) == 0 {
		return nil, fmt.Errorf("%w: the server list is empty", ErrBadURI)
	}
	servers := make([]Server, 0, len(uris))
	seen := map[string]bool{}
	for _, raw := range uris {
		raw = strings.TrimSpace(raw)
		s, err := parseURI(raw)
		if err != nil {
			return nil, err
		}
		if seen[s.URL] {
			return nil, badURI(raw, "listed twice")
		}
		seen[s.URL] = true
		servers = append(servers, s)
	}
	return servers, nil
}

func parseURI(raw string) (Server, error) {
	if raw == "" {
		return Server{}, badURI(raw, "empty")
	}
	if len(raw) >= len(ldapiPrefix) && strings.EqualFold(raw[:len(ldapiPrefix)], ldapiPrefix) {
		return parseLDAPI(raw)
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse's error quotes the raw URI, and its reason may quote a
		// piece of the user part ("invalid URL escape", "invalid port"):
		// only the reason is kept, and only when there is no user part.
		var ue *url.Error
		if redact(raw) != raw || !errors.As(err, &ue) {
			return Server{}, badURI(raw, "not a URI")
		}
		return Server{}, badURI(raw, ue.Err.Error())
	}
	scheme := strings.ToLower(u.Scheme)
	var port string
	switch scheme {
	case "ldap":
		port = "389"
	case "ldaps":
		port = "636"
	default:
		// Without "://", what url.Parse takes for a scheme is a host
		// ("a:389") or the user name of a user part.
		if strings.Index(raw, "://") != len(u.Scheme) {
			r := redact(raw)
			return Server{}, fmt.Errorf("%w %q: no scheme; write ldap://%s or ldaps://%s", ErrBadURI, r, r, r)
		}
		return Server{}, badURI(raw, fmt.Sprintf("scheme %q is not ldap, ldaps or ldapi", u.Scheme))
	}
	switch {
	case u.User != nil:
		return Server{}, badURI(raw, "credentials do not belong in the URI; use WithBind")
	case u.Opaque != "" || u.Host == "":
		return Server{}, badURI(raw, "no host")
	case (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return Server{}, badURI(raw, "a DN, query or fragment in the URI is not supported")
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return Server{}, badURI(raw, fmt.Sprintf("port %q is not 1 to 65535", p))
		}
		port = strconv.Itoa(n)
	}
	host, urlHost, err := parseHost(u)
	if err != nil {
		return Server{}, badURI(raw, err.Error())
	}
	return Server{
		URL:     scheme + "://" + net.JoinHostPort(urlHost, port),
		Host:    net.JoinHostPort(host, port),
		Network: "tcp",
		TLS:     scheme == "ldaps",
	}, nil
}

// parseHost returns u's host as net.Dial takes it and as a URL writes it:
// the two differ only for an IPv6 zone, which a URL escapes ("%25eth0").
func parseHost(u *url.URL) (dial, inURL string, err error) {
	name := u.Hostname()
	if !strings.HasPrefix(u.Host, "[") {
		if strings.Count(u.Host, ":") > 1 {
			return "", "", fmt.Errorf("host %q is not a host name; write an IPv6 address in brackets", u.Host)
		}
		if !isHostName(name) {
			return "", "", fmt.Errorf("host %q is not a host name or IPv4 address", name)
		}
		return name, name, nil
	}
	addr, err := netip.ParseAddr(name)
	if err != nil || !addr.Is6() {
		return "", "", fmt.Errorf("host %q is not an IPv6 address", name)
	}
	zone := addr.Zone()
	if zone == "" {
		return addr.String(), addr.String(), nil
	}
	if !isZone(zone) {
		return "", "", fmt.Errorf("IPv6 zone %q is not an interface name or number", zone)
	}
	ip := addr.WithZone("").String()
	return ip + "%" + zone, ip + "%25" + zone, nil
}

// isHostName reports whether s is a DNS name or an IPv4 address: labels of
// ASCII letters, digits, '-' and '_', separated by dots, with an optional
// final dot. Other characters (a name in Unicode needs its xn-- form for
// the resolver anyway) are refused so that the normalised URL parses again.
func isHostName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" {
			return false
		}
		for _, c := range []byte(label) {
			if !isAlnum(c) && c != '-' && c != '_' {
				return false
			}
		}
	}
	return true
}

// isZone reports whether s may be an IPv6 zone: an interface name or index
// made of characters a URL need not escape.
func isZone(s string) bool {
	for _, c := range []byte(s) {
		if !isAlnum(c) && c != '-' && c != '_' && c != '.' && c != '~' {
			return false
		}
	}
	return s != ""
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

func badURI(raw, why string) error {
	return fmt.Errorf("%w %q: %s", ErrBadURI, redact(raw), why)
}

// redact returns raw fit to quote in an error: everything that may be a
// user part, from after "://" (or the start) up to the last '@', becomes
// REDACTED. It errs on the side of hiding: a password may hold '/', '?' or
// '#', which end the user part for a URL parser but not for the person who
// typed it.
func redact(raw string) string {
	at := strings.LastIndexByte(raw, '@')
	if at < 0 {
		return raw
	}
	start := 0
	if i := strings.Index(raw, "://"); i >= 0 && i < at {
		start = i + len("://")
	}
	return raw[:start] + "REDACTED" + raw[at:]
}
