package ldapconn

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// lookupSRV is net.DefaultResolver.LookupSRV; tests replace it.
var lookupSRV = net.DefaultResolver.LookupSRV

// LookupServers finds a domain's directory servers in DNS (RFC 2782 SRV
// records, as Active Directory and many OpenLDAP deployments publish them)
// and returns them as a server list for NewPool: "_ldap._tcp.domain" gives
// ldap:// servers and, with ldaps true, "_ldaps._tcp.domain" gives ldaps://
// ones, in the records' priority and weight order, which the default
// Failover strategy then follows.
//
// The lookup is done once, when called: a pool keeps the list it was made
// with, so to follow a change in DNS make a new pool. An answer with no
// usable record is an error wrapping ErrServerDown.
func LookupServers(ctx context.Context, domain string, ldaps bool) (string, error) {
	service, scheme := "ldap", "ldap"
	if ldaps {
		service, scheme = "ldaps", "ldaps"
	}
	_, records, err := lookupSRV(ctx, service, "tcp", domain)
	if err != nil {
		return "", fmt.Errorf("ldapconn: LookupServers(%q): %w", domain, err)
	}
	var uris []string
	for _, r := range records {
		host := strings.TrimSuffix(r.Target, ".")
		if host == "" { // "." means the service is not offered (RFC 2782)
			continue
		}
		uris = append(uris, scheme+"://"+net.JoinHostPort(host, strconv.Itoa(int(r.Port))))
	}
	if len(uris) == 0 {
		return "", fmt.Errorf("ldapconn: LookupServers(%q): %w", domain,
			errors.Join(ErrServerDown, fmt.Errorf("no %s server published for %s", service, domain)))
	}
	if _, err := ParseServers(strings.Join(uris, ",")); err != nil {
		return "", fmt.Errorf("ldapconn: LookupServers(%q): %w", domain, err)
	}
	return strings.Join(uris, ","), nil
}
