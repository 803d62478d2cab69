package ldapconn

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// ErrBadURI is wrapped by the error for a server URI that cannot be used.
var ErrBadURI = errors.New("ldapconn: bad server URI")

// Server is one directory server of a pool's list.
type Server struct {
	URL  string // as given, normalised: scheme://host:port
	Host string // host:port to dial
	TLS  bool   // ldaps://: TLS from the first byte
}

func (s Server) String() string { return s.URL }

// ParseServers reads a server list as Python ldappool and Keystone take it:
// URIs separated by commas or white space, ldap:// or ldaps://, with an
// optional port (389 and 636 by default). Every URI must parse; the error
// names the first that does not and wraps ErrBadURI.
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
		s, err := parseURI(strings.TrimSpace(raw))
		if err != nil {
			return nil, err
		}
		if seen[s.URL] {
			return nil, fmt.Errorf("%w %q: listed twice", ErrBadURI, raw)
		}
		seen[s.URL] = true
		servers = append(servers, s)
	}
	return servers, nil
}

func parseURI(raw string) (Server, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Server{}, fmt.Errorf("%w %q: %v", ErrBadURI, raw, err)
	}
	var port string
	switch strings.ToLower(u.Scheme) {
	case "ldap":
		port = "389"
	case "ldaps":
		port = "636"
	case "":
		return Server{}, fmt.Errorf("%w %q: no scheme; write ldap://%s or ldaps://%s", ErrBadURI, raw, raw, raw)
	default:
		return Server{}, fmt.Errorf("%w %q: scheme %q is not ldap or ldaps", ErrBadURI, raw, u.Scheme)
	}
	if u.Hostname() == "" {
		return Server{}, fmt.Errorf("%w %q: no host", ErrBadURI, raw)
	}
	if u.User != nil {
		return Server{}, fmt.Errorf("%w %q: credentials do not belong in the URI; use WithBind", ErrBadURI, redact(u))
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return Server{}, fmt.Errorf("%w %q: port %q is not 1 to 65535", ErrBadURI, raw, p)
		}
		port = p
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return Server{}, fmt.Errorf("%w %q: a DN or query in the URI is not supported", ErrBadURI, raw)
	}
	host := u.Hostname()
	hostport := host + ":" + port
	if strings.Contains(host, ":") {
		hostport = "[" + host + "]:" + port
	}
	scheme := strings.ToLower(u.Scheme)
	return Server{URL: scheme + "://" + hostport, Host: hostport, TLS: scheme == "ldaps"}, nil
}

func redact(u *url.URL) string {
	c := *u
	c.User = url.User("REDACTED")
	return c.String()
}
