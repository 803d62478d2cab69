package ldaptest

import (
	"strings"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
)

// attribute is one attribute of an entry. Every attribute of the seed matches
// case-insensitively, so filters and compares fold case.
type attribute struct {
	name   string
	values []string
}

// entry is one entry of the in-memory directory.
type entry struct {
	dn       string // as returned in search results
	norm     string // normalized DN, the key in directory.entries
	password string // userPassword: used by bind, never returned or matched
	attrs    []attribute
}

// get returns the values of the named attribute, nil when the entry has none.
// userPassword is not an attribute here: it can be neither read nor matched.
func (e *entry) get(name string) []string {
	for _, a := range e.attrs {
		if strings.EqualFold(a.name, name) {
			return a.values
		}
	}
	return nil
}

// selectAttrs returns the attributes a search asked for: all of them for an
// empty list or "*", none for "1.1", and with no values when typesOnly.
func (e *entry) selectAttrs(requested []string, typesOnly bool) []attribute {
	all := len(requested) == 0
	for _, r := range requested {
		if r == "*" {
			all = true
		}
	}
	var out []attribute
	for _, a := range e.attrs {
		if !all && !containsFold(requested, a.name) {
			continue
		}
		if typesOnly {
			a.values = nil
		}
		out = append(out, a)
	}
	return out
}

// directory is the seeded, read-only tree. It is built once and never
// modified, so it needs no lock.
type directory struct {
	rootDSE  *entry
	entries  map[string]*entry   // by normalized DN
	children map[string][]*entry // normalized parent DN -> children, in seed order
}

// newDirectory builds the seeded directory described in seed.go.
func newDirectory(startTLS bool) *directory {
	d := &directory{entries: map[string]*entry{}, children: map[string][]*entry{}}
	root := &entry{attrs: []attribute{
		{"objectClass", []string{"top"}},
		{"namingContexts", []string{BaseDN}},
		{"supportedLDAPVersion", []string{"3"}},
	}}
	if startTLS {
		root.attrs = append(root.attrs, attribute{"supportedExtension", []string{startTLSOID}})
	}
	d.rootDSE = root

	d.add(BaseDN, "", attribute{"objectClass", []string{"top", "dcObject", "organization"}},
		attribute{"dc", []string{"example"}}, attribute{"o", []string{"Example"}})
	d.add(PeopleDN, "", attribute{"objectClass", []string{"top", "organizationalUnit"}},
		attribute{"ou", []string{"people"}})
	d.add(AdminDN, AdminPassword, attribute{"objectClass", []string{"simpleSecurityObject", "organizationalRole"}},
		attribute{"cn", []string{"admin"}}, attribute{"description", []string{"LDAP administrator"}})
	for i := range Users {
		u := SeedUser(i)
		d.add(u.DN, u.Password,
			attribute{"objectClass", []string{"top", "person", "organizationalPerson", "inetOrgPerson"}},
			attribute{"uid", []string{u.UID}}, attribute{"cn", []string{u.CN}},
			attribute{"sn", []string{u.SN}}, attribute{"mail", []string{u.Mail}})
	}
	return d
}

func (d *directory) add(dn, password string, attrs ...attribute) {
	norm, err := normalizeDN(dn)
	if err != nil {
		panic("ldaptest: bad seed DN " + dn)
	}
	e := &entry{dn: dn, norm: norm, password: password, attrs: attrs}
	d.entries[norm] = e
	parent := ""
	if i := strings.IndexByte(norm, ','); i >= 0 {
		parent = norm[i+1:]
	}
	d.children[parent] = append(d.children[parent], e)
}

// lookup returns the entry named dn; the empty DN names the root DSE.
func (d *directory) lookup(dn string) (*entry, bool) {
	norm, err := normalizeDN(dn)
	if err != nil {
		return nil, false
	}
	if norm == "" {
		return d.rootDSE, true
	}
	e, ok := d.entries[norm]
	return e, ok
}

// bind checks a simple bind and returns the result code and the DN now bound
// ("" for anonymous, including after a failed bind).
func (d *directory) bind(dn, password string) (code uint16, bound string) {
	switch {
	case dn == "" && password == "":
		return ldap.LDAPResultSuccess, ""
	case password == "":
		// RFC 4513 5.1.2: unauthenticated binds are refused, as slapd does.
		return ldap.LDAPResultUnwillingToPerform, ""
	}
	e, ok := d.lookup(dn)
	if !ok || e.password == "" || e.password != password {
		return ldap.LDAPResultInvalidCredentials, ""
	}
	return ldap.LDAPResultSuccess, e.dn
}

// search returns the entries under base in scope that match filter, at most
// sizeLimit of them when sizeLimit > 0, and the result code.
func (d *directory) search(base string, scope int64, filter string, sizeLimit int64) ([]*entry, uint16) {
	f, err := ldap.CompileFilter(filter)
	if err != nil {
		return nil, ldap.LDAPResultProtocolError
	}
	e, ok := d.lookup(base)
	if !ok || (e == d.rootDSE && scope != ldap.ScopeBaseObject) {
		// slapd has no entry above the naming context either.
		return nil, ldap.LDAPResultNoSuchObject
	}
	var candidates []*entry
	switch scope {
	case ldap.ScopeBaseObject:
		candidates = []*entry{e}
	case ldap.ScopeSingleLevel:
		candidates = d.children[e.norm]
	case ldap.ScopeWholeSubtree:
		candidates = d.subtree(e, nil)
	default:
		return nil, ldap.LDAPResultProtocolError
	}
	var out []*entry
	for _, c := range candidates {
		if !matches(f, c) {
			continue
		}
		if sizeLimit > 0 && int64(len(out)) == sizeLimit {
			return out, ldap.LDAPResultSizeLimitExceeded
		}
		out = append(out, c)
	}
	return out, ldap.LDAPResultSuccess
}

// subtree appends e and all its descendants to out, parents first.
func (d *directory) subtree(e *entry, out []*entry) []*entry {
	out = append(out, e)
	for _, c := range d.children[e.norm] {
		out = d.subtree(c, out)
	}
	return out
}

// compare answers a compare request with its result code.
func (d *directory) compare(dn, attr, value string) uint16 {
	e, ok := d.lookup(dn)
	switch {
	case !ok:
		return ldap.LDAPResultNoSuchObject
	case strings.EqualFold(attr, "userPassword"):
		return ldap.LDAPResultInsufficientAccessRights
	}
	values := e.get(attr)
	if values == nil {
		return ldap.LDAPResultNoSuchAttribute
	}
	if containsFold(values, value) {
		return ldap.LDAPResultCompareTrue
	}
	return ldap.LDAPResultCompareFalse
}

// matches evaluates a compiled filter (see ldap.CompileFilter) against e.
// Extensible matches are not supported and match nothing.
func matches(f *ber.Packet, e *entry) bool {
	switch f.Tag {
	case ldap.FilterAnd:
		for _, c := range f.Children {
			if !matches(c, e) {
				return false
			}
		}
		return true
	case ldap.FilterOr:
		for _, c := range f.Children {
			if matches(c, e) {
				return true
			}
		}
		return false
	case ldap.FilterNot:
		return len(f.Children) == 1 && !matches(f.Children[0], e)
	case ldap.FilterPresent:
		return e.get(f.Data.String()) != nil
	}
	if len(f.Children) != 2 {
		return false
	}
	values := e.get(f.Children[0].Data.String())
	switch f.Tag {
	case ldap.FilterEqualityMatch, ldap.FilterApproxMatch:
		return containsFold(values, f.Children[1].Data.String())
	case ldap.FilterGreaterOrEqual, ldap.FilterLessOrEqual:
		want := strings.ToLower(f.Children[1].Data.String())
		for _, v := range values {
			c := strings.Compare(strings.ToLower(v), want)
			if (f.Tag == ldap.FilterGreaterOrEqual && c >= 0) || (f.Tag == ldap.FilterLessOrEqual && c <= 0) {
				return true
			}
		}
	case ldap.FilterSubstrings:
		for _, v := range values {
			if substringsMatch(f.Children[1].Children, strings.ToLower(v)) {
				return true
			}
		}
	}
	return false
}

// substringsMatch reports whether v (lower case) matches the initial, any and
// final parts of a substrings filter, in order and without overlap.
func substringsMatch(parts []*ber.Packet, v string) bool {
	for _, p := range parts {
		s := strings.ToLower(p.Data.String())
		switch p.Tag {
		case ldap.FilterSubstringsInitial:
			if !strings.HasPrefix(v, s) {
				return false
			}
			v = v[len(s):]
		case ldap.FilterSubstringsAny:
			i := strings.Index(v, s)
			if i < 0 {
				return false
			}
			v = v[i+len(s):]
		case ldap.FilterSubstringsFinal:
			if !strings.HasSuffix(v, s) {
				return false
			}
			v = ""
		}
	}
	return true
}

// normalizeDN returns the case-folded RFC 4514 form of dn used as a key.
func normalizeDN(dn string) (string, error) {
	parsed, err := ldap.ParseDN(dn)
	if err != nil {
		return "", err
	}
	return strings.ToLower(parsed.String()), nil
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}
