package ldaptest_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"go.uber.org/goleak"

	"github.com/fairpool/ldappool/ldaptest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newServer(t *testing.T, opts ...ldaptest.Option) *ldaptest.Server {
	t.Helper()
	srv, err := ldaptest.NewServer(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return srv
}

func dial(t *testing.T, srv *ldaptest.Server, opts ...ldap.DialOpt) *ldap.Conn {
	t.Helper()
	conn, err := ldap.DialURL(srv.URL(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func search(conn *ldap.Conn, base string, scope int, filter string, attrs ...string) (*ldap.SearchResult, error) {
	return conn.Search(ldap.NewSearchRequest(base, scope, ldap.NeverDerefAliases, 0, 0, false, filter, attrs, nil))
}

func TestURL(t *testing.T) {
	srv := newServer(t)
	if !strings.HasPrefix(srv.URL(), "ldap://127.0.0.1:") || strings.HasSuffix(srv.URL(), ":0") {
		t.Errorf("URL() = %q", srv.URL())
	}
}

func TestBind(t *testing.T) {
	srv := newServer(t)
	tests := []struct {
		name, dn, password string
		code               uint16 // 0: success
	}{
		{"admin", ldaptest.AdminDN, ldaptest.AdminPassword, 0},
		{"user", ldaptest.UserDN(42), ldaptest.UserPassword(42), 0},
		{"last user", ldaptest.UserDN(ldaptest.Users - 1), ldaptest.UserPassword(ldaptest.Users - 1), 0},
		{"DN case and spacing", "UID=User42, OU=People, DC=Example, DC=Org", ldaptest.UserPassword(42), 0},
		{"wrong password", ldaptest.UserDN(42), ldaptest.UserPassword(43), ldap.LDAPResultInvalidCredentials},
		{"unknown DN", "uid=nobody," + ldaptest.PeopleDN, "x", ldap.LDAPResultInvalidCredentials},
		{"entry without password", ldaptest.PeopleDN, "x", ldap.LDAPResultInvalidCredentials},
		{"anonymous", "", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := dial(t, srv)
			var err error
			if tt.dn == "" && tt.password == "" {
				err = conn.UnauthenticatedBind("")
			} else {
				err = conn.Bind(tt.dn, tt.password)
			}
			switch {
			case tt.code == 0 && err != nil:
				t.Fatalf("bind: %v", err)
			case tt.code != 0 && !ldap.IsErrorWithCode(err, tt.code):
				t.Fatalf("bind: got %v, want result code %d", err, tt.code)
			}
		})
	}
}

func TestBoundDNsAndStats(t *testing.T) {
	srv := newServer(t)
	admin, user := dial(t, srv), dial(t, srv)
	if err := admin.Bind(ldaptest.AdminDN, ldaptest.AdminPassword); err != nil {
		t.Fatal(err)
	}
	if err := user.Bind(ldaptest.UserDN(3), ldaptest.UserPassword(3)); err != nil {
		t.Fatal(err)
	}
	want := []string{ldaptest.AdminDN, ldaptest.UserDN(3)}
	if got := srv.BoundDNs(); !slices.Equal(got, want) {
		t.Errorf("BoundDNs() = %q, want %q", got, want)
	}
	// A failed bind leaves the connection anonymous.
	if err := user.Bind(ldaptest.UserDN(3), "wrong"); err == nil {
		t.Fatal("bind with a wrong password succeeded")
	}
	want = []string{"", ldaptest.AdminDN}
	if got := srv.BoundDNs(); !slices.Equal(got, want) {
		t.Errorf("after failed bind BoundDNs() = %q, want %q", got, want)
	}
	if _, err := search(admin, ldaptest.BaseDN, ldap.ScopeWholeSubtree, "(uid=user1)"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Compare(ldaptest.UserDN(1), "uid", "user1"); err != nil {
		t.Fatal(err)
	}
	got := srv.Stats()
	want2 := ldaptest.Stats{Accepted: 2, Open: 2, Binds: 3, Searches: 1, Compares: 1}
	if got != want2 {
		t.Errorf("Stats() = %+v, want %+v", got, want2)
	}
}

func TestRootDSE(t *testing.T) {
	conn := dial(t, newServer(t))
	res, err := search(conn, "", ldap.ScopeBaseObject, "(objectClass=*)", "namingContexts", "supportedLDAPVersion")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Entries) != 1 {
		t.Fatalf("got %d entries, want 1", len(res.Entries))
	}
	e := res.Entries[0]
	if e.DN != "" || e.GetAttributeValue("namingContexts") != ldaptest.BaseDN || e.GetAttributeValue("supportedLDAPVersion") != "3" {
		t.Errorf("root DSE: DN %q namingContexts %q supportedLDAPVersion %q",
			e.DN, e.GetAttributeValue("namingContexts"), e.GetAttributeValue("supportedLDAPVersion"))
	}
}

func TestSearch(t *testing.T) {
	srv := newServer(t)
	conn := dial(t, srv)
	if err := conn.Bind(ldaptest.AdminDN, ldaptest.AdminPassword); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, base string
		scope      int
		filter     string
		attrs      []string
		count      int
		first      string // DN of the first entry, if count > 0
	}{
		{"subtree by uid", ldaptest.BaseDN, ldap.ScopeWholeSubtree, "(uid=user42)", nil, 1, ldaptest.UserDN(42)},
		{"and", ldaptest.BaseDN, ldap.ScopeWholeSubtree, "(&(objectClass=inetOrgPerson)(uid=user42))", nil, 1, ldaptest.UserDN(42)},
		{"equality folds case", ldaptest.BaseDN, ldap.ScopeWholeSubtree, "(UID=USER42)", nil, 1, ldaptest.UserDN(42)},
		{"or", ldaptest.PeopleDN, ldap.ScopeSingleLevel, "(|(uid=user1)(mail=user2@example.org))", nil, 2, ldaptest.UserDN(1)},
		{"not", ldaptest.PeopleDN, ldap.ScopeSingleLevel, "(!(uid=user1))", nil, ldaptest.Users - 1, ldaptest.UserDN(0)},
		{"substrings initial", ldaptest.PeopleDN, ldap.ScopeSingleLevel, "(cn=User 4*)", nil, 111, ldaptest.UserDN(4)},
		{"substrings any and final", ldaptest.PeopleDN, ldap.ScopeSingleLevel, "(cn=*er 1*9)", nil, 11, ldaptest.UserDN(19)},
		{"one level under people", ldaptest.PeopleDN, ldap.ScopeSingleLevel, "(objectClass=*)", nil, ldaptest.Users, ldaptest.UserDN(0)},
		{"one level under base", ldaptest.BaseDN, ldap.ScopeSingleLevel, "(objectClass=*)", nil, 2, ldaptest.PeopleDN},
		{"whole subtree", ldaptest.BaseDN, ldap.ScopeWholeSubtree, "(objectClass=*)", nil, ldaptest.Users + 3, ldaptest.BaseDN},
		{"base", ldaptest.UserDN(5), ldap.ScopeBaseObject, "(objectClass=*)", nil, 1, ldaptest.UserDN(5)},
		{"base not matching", ldaptest.UserDN(5), ldap.ScopeBaseObject, "(uid=user6)", nil, 0, ""},
		{"presence", ldaptest.BaseDN, ldap.ScopeWholeSubtree, "(mail=*)", nil, ldaptest.Users, ldaptest.UserDN(0)},
		{"userPassword is not matched", ldaptest.BaseDN, ldap.ScopeWholeSubtree, "(userPassword=*)", nil, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := search(conn, tt.base, tt.scope, tt.filter, tt.attrs...)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Entries) != tt.count {
				t.Fatalf("got %d entries, want %d", len(res.Entries), tt.count)
			}
			if tt.count > 0 && res.Entries[0].DN != tt.first {
				t.Errorf("first entry %q, want %q", res.Entries[0].DN, tt.first)
			}
		})
	}
}

func TestSearchAttributes(t *testing.T) {
	conn := dial(t, newServer(t))
	u := ldaptest.SeedUser(42)
	tests := []struct {
		name  string
		attrs []string
		want  map[string]string
	}{
		{"all", nil, map[string]string{"uid": u.UID, "cn": u.CN, "sn": u.SN, "mail": u.Mail, "objectClass": "top"}},
		{"star with userPassword", []string{"*", "userPassword"}, map[string]string{"uid": u.UID, "cn": u.CN, "sn": u.SN, "mail": u.Mail, "objectClass": "top"}},
		{"requested", []string{"mail", "CN"}, map[string]string{"cn": u.CN, "mail": u.Mail}},
		{"none", []string{"1.1"}, map[string]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := search(conn, ldaptest.BaseDN, ldap.ScopeWholeSubtree, "(uid=user42)", tt.attrs...)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, a := range res.Entries[0].Attributes {
				got[a.Name] = a.Values[0]
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("attributes %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSearchErrors(t *testing.T) {
	conn := dial(t, newServer(t))
	res, err := conn.Search(ldap.NewSearchRequest(ldaptest.PeopleDN, ldap.ScopeSingleLevel,
		ldap.NeverDerefAliases, 5, 0, false, "(objectClass=*)", nil, nil))
	if !ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) || len(res.Entries) != 5 {
		t.Errorf("size limit 5: %d entries, error %v", len(res.Entries), err)
	}
	_, err = search(conn, "ou=nowhere,"+ldaptest.BaseDN, ldap.ScopeWholeSubtree, "(objectClass=*)")
	if !ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
		t.Errorf("unknown base: got %v, want noSuchObject", err)
	}
	err = conn.Add(ldap.NewAddRequest("uid=new,"+ldaptest.PeopleDN, nil))
	if !ldap.IsErrorWithCode(err, ldap.LDAPResultUnwillingToPerform) {
		t.Errorf("add: got %v, want unwillingToPerform", err)
	}
}

func TestCompare(t *testing.T) {
	conn := dial(t, newServer(t))
	tests := []struct {
		name, dn, attr, value string
		want                  bool
		code                  uint16 // 0: no error
	}{
		{"true", ldaptest.UserDN(9), "mail", "user9@example.org", true, 0},
		{"true, case folded", ldaptest.UserDN(9), "CN", "user 9", true, 0},
		{"objectClass", ldaptest.UserDN(9), "objectClass", "inetOrgPerson", true, 0},
		{"false", ldaptest.UserDN(9), "uid", "user8", false, 0},
		{"admin", ldaptest.AdminDN, "cn", "admin", true, 0},
		{"unknown DN", "uid=nobody," + ldaptest.PeopleDN, "uid", "nobody", false, ldap.LDAPResultNoSuchObject},
		{"absent attribute", ldaptest.UserDN(9), "telephoneNumber", "1", false, ldap.LDAPResultNoSuchAttribute},
		{"userPassword", ldaptest.UserDN(9), "userPassword", ldaptest.UserPassword(9), false, ldap.LDAPResultInsufficientAccessRights},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := conn.Compare(tt.dn, tt.attr, tt.value)
			switch {
			case tt.code == 0 && err != nil:
				t.Fatal(err)
			case tt.code != 0 && !ldap.IsErrorWithCode(err, tt.code):
				t.Fatalf("got %v, want result code %d", err, tt.code)
			case got != tt.want:
				t.Errorf("Compare = %v, want %v", got, tt.want)
			}
		})
	}
}

// selfSigned returns a server configuration with a certificate for 127.0.0.1
// and a client configuration trusting it.
func selfSigned(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "ldaptest"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	return server, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
}

func TestStartTLS(t *testing.T) {
	serverTLS, clientTLS := selfSigned(t)
	srv := newServer(t, ldaptest.WithTLS(serverTLS))
	conn := dial(t, srv)
	if err := conn.StartTLS(clientTLS); err != nil {
		t.Fatal(err)
	}
	if _, ok := conn.TLSConnectionState(); !ok {
		t.Fatal("connection is not TLS after StartTLS")
	}
	if err := conn.Bind(ldaptest.UserDN(1), ldaptest.UserPassword(1)); err != nil {
		t.Fatal(err)
	}
	res, err := search(conn, ldaptest.PeopleDN, ldap.ScopeSingleLevel, "(objectClass=*)", "uid")
	if err != nil || len(res.Entries) != ldaptest.Users {
		t.Fatalf("search over TLS: %v", err)
	}
	if ok, err := conn.Compare(ldaptest.UserDN(1), "uid", "user1"); !ok || err != nil {
		t.Fatalf("compare over TLS: %v %v", ok, err)
	}
	if err := conn.StartTLS(clientTLS); err == nil {
		t.Error("second StartTLS succeeded")
	}
	// The root DSE advertises it.
	res, err = search(conn, "", ldap.ScopeBaseObject, "(objectClass=*)", "supportedExtension")
	if err != nil || res.Entries[0].GetAttributeValue("supportedExtension") != "1.3.6.1.4.1.1466.20037" {
		t.Errorf("supportedExtension: %v %v", res, err)
	}
}

func TestStartTLSNotEnabled(t *testing.T) {
	_, clientTLS := selfSigned(t)
	conn := dial(t, newServer(t))
	if err := conn.StartTLS(clientTLS); !ldap.IsErrorWithCode(err, ldap.LDAPResultProtocolError) {
		t.Fatalf("StartTLS: got %v, want protocolError", err)
	}
	// go-ldap v3.4.15 does not restart its reader after a failed StartTLS:
	// the connection is unusable and can only be closed.
}

func TestLDAPS(t *testing.T) {
	serverTLS, clientTLS := selfSigned(t)
	srv := newServer(t, ldaptest.WithLDAPS(serverTLS))
	if !strings.HasPrefix(srv.URL(), "ldaps://127.0.0.1:") {
		t.Fatalf("URL() = %q", srv.URL())
	}
	conn := dial(t, srv, ldap.DialWithTLSConfig(clientTLS))
	if err := conn.Bind(ldaptest.AdminDN, ldaptest.AdminPassword); err != nil {
		t.Fatal(err)
	}
	if ok, err := conn.Compare(ldaptest.UserDN(2), "sn", "User2"); !ok || err != nil {
		t.Fatalf("compare over LDAPS: %v %v", ok, err)
	}
}

// networkError reports whether err is conn's failure because the server
// closed the connection. go-ldap (v3.4.15) reports that either as an
// ldap.Error with code ErrorNetwork or, when its reader saw the EOF first, as
// a plain "unable to read LDAP response packet: EOF" error; the connection
// is closing in both cases.
func networkError(conn *ldap.Conn, err error) bool {
	return err != nil && (ldap.IsErrorWithCode(err, ldap.ErrorNetwork) || conn.IsClosing())
}

func TestDropConnections(t *testing.T) {
	srv := newServer(t)
	conns := []*ldap.Conn{dial(t, srv), dial(t, srv)}
	for _, c := range conns {
		if err := c.Bind(ldaptest.AdminDN, ldaptest.AdminPassword); err != nil {
			t.Fatal(err)
		}
	}
	if n := srv.DropConnections(); n != 2 {
		t.Errorf("DropConnections() = %d, want 2", n)
	}
	for _, c := range conns {
		_, err := search(c, ldaptest.BaseDN, ldap.ScopeWholeSubtree, "(uid=user1)")
		if !networkError(c, err) {
			t.Errorf("search after drop: got %v, want a network error", err)
		}
	}
	// The server still serves new connections.
	if err := dial(t, srv).Bind(ldaptest.AdminDN, ldaptest.AdminPassword); err != nil {
		t.Fatal(err)
	}
	if st := srv.Stats(); st.Dropped != 2 || st.Accepted != 3 {
		t.Errorf("Stats() = %+v, want Dropped 2, Accepted 3", st)
	}
}

func TestMaxConnections(t *testing.T) {
	srv := newServer(t, ldaptest.WithMaxConnections(1))
	first := dial(t, srv)
	if err := first.Bind(ldaptest.AdminDN, ldaptest.AdminPassword); err != nil {
		t.Fatal(err)
	}
	second := dial(t, srv) // TCP connects: the kernel accepts before the server refuses
	if err := second.Bind(ldaptest.AdminDN, ldaptest.AdminPassword); !networkError(second, err) {
		t.Fatalf("bind past the limit: got %v, want a network error", err)
	}
	if st := srv.Stats(); st.Refused != 1 || st.Open != 1 {
		t.Errorf("Stats() = %+v, want Refused 1, Open 1", st)
	}
}

func TestLatency(t *testing.T) {
	srv := newServer(t)
	conn := dial(t, srv)
	const latency = 50 * time.Millisecond
	srv.SetLatency(latency)
	ops := map[string]func() error{
		"bind": func() error { return conn.Bind(ldaptest.AdminDN, ldaptest.AdminPassword) },
		"search": func() error {
			_, err := search(conn, ldaptest.BaseDN, ldap.ScopeWholeSubtree, "(uid=user1)")
			return err
		},
		"compare": func() error {
			_, err := conn.Compare(ldaptest.UserDN(1), "uid", "user1")
			return err
		},
	}
	for name, op := range ops {
		start := time.Now()
		if err := op(); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < latency {
			t.Errorf("%s took %v, want at least %v", name, d, latency)
		}
	}
	srv.SetLatency(0)
	if err := conn.Bind(ldaptest.AdminDN, ldaptest.AdminPassword); err != nil {
		t.Fatal(err)
	}
}

func TestWithLatency(t *testing.T) {
	var calls atomic.Int64
	srv := newServer(t, ldaptest.WithLatency(func() time.Duration {
		calls.Add(1)
		return time.Millisecond
	}))
	conn := dial(t, srv)
	if err := conn.Bind(ldaptest.AdminDN, ldaptest.AdminPassword); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Compare(ldaptest.AdminDN, "cn", "admin"); err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("latency function called %d times, want 2", n)
	}
}

// Close must not wait for idle clients, nor for operations held by latency,
// and must end every goroutine (TestMain checks with goleak).
func TestCloseWithOpenConnections(t *testing.T) {
	held := make(chan struct{}, 1)
	srv, err := ldaptest.NewServer(ldaptest.WithLatency(func() time.Duration {
		select {
		case held <- struct{}{}:
		default:
		}
		return time.Hour
	}))
	if err != nil {
		t.Fatal(err)
	}
	dial(t, srv) // stays idle
	busy := dial(t, srv)
	done := make(chan error, 1)
	go func() { done <- busy.Bind(ldaptest.AdminDN, ldaptest.AdminPassword) }()
	<-held // the bind is waiting out its latency
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !networkError(busy, err) {
		t.Errorf("bind across Close: got %v, want a network error", err)
	}
	if err := srv.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestConcurrentClients(t *testing.T) {
	srv := newServer(t)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Go(func() {
			conn, err := ldap.DialURL(srv.URL())
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close()
			for j := range 20 {
				n := (i*20 + j) % ldaptest.Users
				if err := conn.Bind(ldaptest.UserDN(n), ldaptest.UserPassword(n)); err != nil {
					errs <- err
					return
				}
				res, err := search(conn, ldaptest.PeopleDN, ldap.ScopeSingleLevel, fmt.Sprintf("(uid=user%d)", n), "cn")
				if err != nil || len(res.Entries) != 1 {
					errs <- errors.Join(err, fmt.Errorf("user%d: %v", n, res))
					return
				}
				if ok, err := conn.Compare(ldaptest.UserDN(n), "uid", fmt.Sprintf("user%d", n)); !ok || err != nil {
					errs <- errors.Join(err, fmt.Errorf("compare user%d: %v", n, ok))
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
