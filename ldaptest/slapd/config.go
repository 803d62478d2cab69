package slapd

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-ldap/ldap/v3"

	"github.com/fairpool/ldappool/ldaptest"
)

// confTLS names the TLS files of a server; each is "" when not used.
type confTLS struct {
	certFile, keyFile string // the server's certificate and key: TLS on
	clientCAFile      string // CAs of client certificates: ask clients for one
}

// slapdConf returns an old-style slapd.conf for a server in dir with its
// mdb database in db, TLS when tls.certFile is set, and unauthenticated
// binds accepted when unauthBind is.
func slapdConf(dir, db string, tls confTLS, unauthBind bool) ([]byte, error) {
	var b bytes.Buffer
	var err error
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	// quote quotes a value for slapd.conf, whose tokenizer has no escapes.
	quote := func(s string) string {
		if strings.ContainsAny(s, "\"\\\n") && err == nil {
			err = fmt.Errorf("slapd: cannot quote %q in slapd.conf", s)
		}
		return `"` + s + `"`
	}

	line("# Throwaway slapd configuration written by package slapd for tests.")
	for _, schema := range []string{"core", "cosine", "inetorgperson"} {
		line("include %s", quote(filepath.Join(schemaDir, schema+".schema")))
	}
	line("pidfile %s", quote(filepath.Join(dir, "slapd.pid")))
	line("argsfile %s", quote(filepath.Join(dir, "slapd.args")))
	// Debian builds the backends as modules; other builds may link mdb in.
	if _, statErr := os.Stat(filepath.Join(modulePath, "back_mdb.so")); statErr == nil {
		line("modulepath %s", quote(modulePath))
		line("moduleload back_mdb")
	}
	line("sizelimit unlimited")
	line("timelimit unlimited")
	if tls.certFile != "" {
		line("TLSCertificateFile %s", quote(tls.certFile))
		line("TLSCertificateKeyFile %s", quote(tls.keyFile))
	}
	if tls.clientCAFile != "" {
		// "try": a client without a certificate is still served.
		line("TLSCACertificateFile %s", quote(tls.clientCAFile))
		line("TLSVerifyClient try")
	}
	if unauthBind {
		line("allow bind_anon_dn")
	}
	line("")
	// The root DSE and the schema are public, as on most servers.
	line(`access to dn.base="" by * read`)
	line(`access to dn.base="cn=Subschema" by * read`)
	line("")
	line("database mdb")
	line("maxsize 268435456")
	line("suffix %s", quote(ldaptest.BaseDN))
	line("rootdn %s", quote(ldaptest.AdminDN))
	line("rootpw %s", quote(ldaptest.AdminPassword))
	line("directory %s", quote(db))
	line("index objectClass eq")
	line("index uid eq")
	line("sizelimit unlimited")
	line("timelimit unlimited")
	// Users bind with their own password (auth by anonymous) and may change
	// it; every authenticated identity reads the rest. The rootdn bypasses
	// all of this.
	line("access to attrs=userPassword")
	line("\tby self write")
	line("\tby anonymous auth")
	line("\tby * none")
	line("access to *")
	line("\tby users read")
	line("\tby * none")
	return b.Bytes(), err
}

// seedLDIF returns the seeded directory as LDIF for slapadd: the base entry,
// the people container, and the users. AdminDN is the rootdn and has no
// entry.
func seedLDIF() []byte {
	var b bytes.Buffer
	b.Grow(ldaptest.Users * 260)
	dc, ou := firstRDNValue(ldaptest.BaseDN), firstRDNValue(ldaptest.PeopleDN)
	writeEntry(&b, ldaptest.BaseDN,
		"objectClass", "top",
		"objectClass", "dcObject",
		"objectClass", "organization",
		"dc", dc,
		"o", dc,
	)
	writeEntry(&b, ldaptest.PeopleDN,
		"objectClass", "top",
		"objectClass", "organizationalUnit",
		"ou", ou,
	)
	for i := range ldaptest.Users {
		u := ldaptest.SeedUser(i)
		writeEntry(&b, u.DN,
			"objectClass", "top",
			"objectClass", "person",
			"objectClass", "organizationalPerson",
			"objectClass", "inetOrgPerson",
			"uid", u.UID,
			"cn", u.CN,
			"sn", u.SN,
			"mail", u.Mail,
			"userPassword", u.Password,
		)
	}
	return b.Bytes()
}

// firstRDNValue returns the value of the first attribute of dn's first RDN
// ("example" for "dc=example,dc=org").
func firstRDNValue(dn string) string {
	parsed, err := ldap.ParseDN(dn)
	if err != nil || len(parsed.RDNs) == 0 || len(parsed.RDNs[0].Attributes) == 0 {
		panic(fmt.Sprintf("slapd: bad seed DN %q: %v", dn, err))
	}
	return parsed.RDNs[0].Attributes[0].Value
}

// writeEntry writes one LDIF entry; attrs alternates names and values.
func writeEntry(b *bytes.Buffer, dn string, attrs ...string) {
	writeAttr(b, "dn", dn)
	for i := 0; i+1 < len(attrs); i += 2 {
		writeAttr(b, attrs[i], attrs[i+1])
	}
	b.WriteByte('\n')
}

// writeAttr writes one LDIF line, base64-encoding values that are not
// LDIF SAFE-STRINGs (RFC 2849). Lines are not folded; slapadd does not
// need it.
func writeAttr(b *bytes.Buffer, name, value string) {
	if safeString(value) {
		fmt.Fprintf(b, "%s: %s\n", name, value)
		return
	}
	fmt.Fprintf(b, "%s:: %s\n", name, base64.StdEncoding.EncodeToString([]byte(value)))
}

func safeString(s string) bool {
	if s == "" {
		return true
	}
	if c := s[0]; c == ' ' || c == ':' || c == '<' || s[len(s)-1] == ' ' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == 0 || c == '\n' || c == '\r' || c >= 0x80 {
			return false
		}
	}
	return true
}
