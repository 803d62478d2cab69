package ldapconn

import (
	"fmt"
	"net/url"
	"strings"
)

const (
	ldapiPrefix = "ldapi://"
	// defaultLDAPISocket is the socket of "ldapi://" without a path:
	// Debian's slapd listens there, and go-ldap's DialURL takes the same.
	defaultLDAPISocket = "/var/run/slapd/ldapi"
	// maxSocketPath is the longest unix socket path: sun_path holds 108
	// bytes on Linux, its terminating NUL included.
	maxSocketPath = 107
)

// parseLDAPI reads an ldapi:// URI, without a port, user part, DN, query or
// fragment. url.Parse cannot: it refuses "%2F" in a host, and OpenLDAP
// writes the socket path there, percent-encoded. go-ldap's DialURL takes the
// path in the URL's path instead ("ldapi:///var/run/slapd/ldapi"); that form
// is read too, since a DN in the URI is not supported anyway.
func parseLDAPI(raw string) (Server, error) {
	host, rest := raw[len(ldapiPrefix):], ""
	if i := strings.IndexAny(host, "/?#"); i >= 0 {
		host, rest = host[:i], host[i:]
	}
	if host == "" && strings.HasPrefix(rest, "/") {
		host, rest = rest, "" // go-ldap's form, or "ldapi:///"
		if i := strings.IndexAny(host, "?#"); i >= 0 {
			host, rest = host[:i], host[i:]
		}
		if host == "/" {
			host = ""
		}
	}
	switch {
	case strings.Contains(raw, "@"): // a path's '@' is written %40
		return Server{}, badURI(raw, "credentials do not belong in the URI; use WithBind")
	case rest != "" && rest != "/":
		return Server{}, badURI(raw, "a DN, query or fragment in the URI is not supported")
	}
	path, err := url.PathUnescape(host)
	if err != nil {
		return Server{}, badURI(raw, err.Error())
	}
	if path == "" {
		path = defaultLDAPISocket
	}
	switch {
	case !strings.HasPrefix(path, "/"):
		return Server{}, badURI(raw, fmt.Sprintf("socket path %q is not absolute", path))
	case len(path) > maxSocketPath:
		return Server{}, badURI(raw, fmt.Sprintf("socket path is %d bytes; a unix socket's is at most %d", len(path), maxSocketPath))
	case strings.IndexByte(path, 0) >= 0:
		return Server{}, badURI(raw, "socket path holds a NUL byte")
	}
	return Server{URL: ldapiPrefix + escapeSocketPath(path), Host: path, Network: "unix"}, nil
}

// escapeSocketPath percent-encodes every byte of path but letters, digits
// and "-._~", so that the URL it goes in has no '/', ',', white space or
// '@' to be read otherwise, and decodes to path again.
func escapeSocketPath(path string) string {
	var b strings.Builder
	for _, c := range []byte(path) {
		if isAlnum(c) || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
