package slapd

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fairpool/ldappool/internal/logbuf"

	"github.com/go-ldap/ldap/v3"
	"go.uber.org/goleak"

	"github.com/fairpool/ldappool/ldaptest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func dial(t *testing.T, url string, opts ...ldap.DialOpt) *ldap.Conn {
	t.Helper()
	conn, err := ldap.DialURL(url, opts...)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetTimeout(5 * time.Second)
	return conn
}

func bindAdmin(t *testing.T, conn *ldap.Conn) {
	t.Helper()
	if err := conn.Bind(ldaptest.AdminDN, ldaptest.AdminPassword); err != nil {
		t.Fatalf("bind %s: %v", ldaptest.AdminDN, err)
	}
}

func searchUser(conn *ldap.Conn, i int) (*ldap.Entry, error) {
	res, err := conn.Search(ldap.NewSearchRequest(ldaptest.BaseDN, ldap.ScopeWholeSubtree,
		ldap.NeverDerefAliases, 0, 0, false,
		fmt.Sprintf("(uid=user%d)", i), []string{"cn", "sn", "mail"}, nil))
	if err != nil {
		return nil, err
	}
	if len(res.Entries) != 1 {
		return nil, fmt.Errorf("uid=user%d: %d entries", i, len(res.Entries))
	}
	return res.Entries[0], nil
}

func checkUser(t *testing.T, conn *ldap.Conn, i int) {
	t.Helper()
	e, err := searchUser(conn, i)
	if err != nil {
		t.Fatalf("search: %v", err)
	}
	want := ldaptest.SeedUser(i)
	if e.DN != want.DN || e.GetAttributeValue("cn") != want.CN ||
		e.GetAttributeValue("sn") != want.SN || e.GetAttributeValue("mail") != want.Mail {
		t.Fatalf("user %d: got dn=%q cn=%q sn=%q mail=%q, want %+v", i, e.DN,
			e.GetAttributeValue("cn"), e.GetAttributeValue("sn"), e.GetAttributeValue("mail"), want)
	}
}

func TestBindAndSearch(t *testing.T) {
	start := time.Now()
	s := Start(t)
	t.Logf("Start took %v (pid %d, %s)", time.Since(start), s.PID(), s.URL())

	if !strings.HasPrefix(s.URL(), "ldap://127.0.0.1:") || s.LDAPSURL() != "" {
		t.Errorf("URL %q, LDAPSURL %q", s.URL(), s.LDAPSURL())
	}

	conn := dial(t, s.URL())
	bindAdmin(t, conn)

	u := ldaptest.SeedUser(5)
	if err := conn.Bind(u.DN, u.Password); err != nil {
		t.Fatalf("bind user5: %v", err)
	}
	if err := conn.Bind(u.DN, "wrong"); !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
		t.Fatalf("bind user5 with a wrong password: %v, want code 49", err)
	}
	if err := conn.Bind(ldaptest.AdminDN, "wrong"); !ldap.IsErrorWithCode(err, 49) {
		t.Fatalf("bind admin with a wrong password: %v, want code 49", err)
	}

	// Anonymous clients read nothing.
	anon := dial(t, s.URL())
	if res, err := anon.Search(ldap.NewSearchRequest(ldaptest.PeopleDN, ldap.ScopeSingleLevel,
		ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)", []string{"dn"}, nil)); err == nil && len(res.Entries) > 0 {
		t.Fatalf("anonymous search returned %d entries", len(res.Entries))
	}

	// A user reads the others, but not their passwords.
	if err := conn.Bind(u.DN, u.Password); err != nil {
		t.Fatalf("bind user5: %v", err)
	}
	checkUser(t, conn, 42)
	res, err := conn.Search(ldap.NewSearchRequest(ldaptest.UserDN(7), ldap.ScopeBaseObject,
		ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)", []string{"userPassword", "uid"}, nil))
	if err != nil || len(res.Entries) != 1 {
		t.Fatalf("read user7: %v %v", res, err)
	}
	if got := res.Entries[0].GetAttributeValue("userPassword"); got != "" {
		t.Errorf("user5 reads user7's password %q", got)
	}

	// SearchWithPaging adds its control to the request: one per search.
	people := func() *ldap.SearchRequest {
		return ldap.NewSearchRequest(ldaptest.PeopleDN, ldap.ScopeSingleLevel,
			ldap.NeverDerefAliases, 0, 0, false, "(objectClass=inetOrgPerson)", []string{"uid"}, nil)
	}
	paged, err := conn.SearchWithPaging(people(), 200)
	if err != nil {
		t.Fatalf("paged search: %v", err)
	}
	if len(paged.Entries) != ldaptest.Users {
		t.Errorf("paged search: %d users, want %d", len(paged.Entries), ldaptest.Users)
	}
	// sizelimit unlimited: no paging needed either.
	bindAdmin(t, conn)
	all, err := conn.Search(people())
	if err != nil {
		t.Fatalf("search: %v", err)
	}
	if len(all.Entries) != ldaptest.Users {
		t.Errorf("search: %d users, want %d", len(all.Entries), ldaptest.Users)
	}
	// Every seeded user binds with its password.
	for _, i := range []int{0, 1, 499, 500, 999} {
		u := ldaptest.SeedUser(i)
		if err := conn.Bind(u.DN, u.Password); err != nil {
			t.Errorf("bind user%d: %v", i, err)
		}
	}
}

func TestKillRestart(t *testing.T) {
	s := Start(t)
	url, pid := s.URL(), s.PID()
	conn := dial(t, url)
	bindAdmin(t, conn)
	checkUser(t, conn, 1)

	if err := s.Kill(); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	if s.PID() != 0 {
		t.Errorf("PID after Kill = %d", s.PID())
	}
	if p, err := os.FindProcess(pid); err == nil && p.Signal(syscall.Signal(0)) == nil {
		t.Errorf("pid %d is alive after Kill", pid)
	}
	if _, err := searchUser(conn, 1); err == nil {
		t.Fatal("search on a killed server worked")
	}
	if c, err := ldap.DialURL(url); err == nil {
		c.Close()
		t.Fatal("dial to a killed server worked")
	}
	if err := s.Kill(); err != nil {
		t.Errorf("second Kill: %v", err)
	}

	if err := s.Restart(); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	if s.URL() != url || s.PID() == 0 || s.PID() == pid {
		t.Fatalf("after Restart: URL %s (was %s), pid %d (was %d)", s.URL(), url, s.PID(), pid)
	}
	conn = dial(t, url)
	bindAdmin(t, conn)
	checkUser(t, conn, 42)

	// Restart a running server: it stops it first.
	pid = s.PID()
	if err := s.Restart(); err != nil {
		t.Fatalf("Restart while running: %v", err)
	}
	if s.PID() == pid {
		t.Fatalf("pid unchanged after Restart: %d", pid)
	}
	conn = dial(t, url)
	bindAdmin(t, conn)
	checkUser(t, conn, 999)
}

// TestRestartUnderLoad restarts the server while clients hammer it, which
// leaves connections in TIME_WAIT on the port. Each restart waits for the
// clients to have bound successfully since the last one; the clients' loops
// are bounded in count and stop with the test.
func TestRestartUnderLoad(t *testing.T) {
	s := Start(t)
	stop := make(chan struct{})
	bound := make(chan struct{}, 1) // a successful bind since the last look
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < 100000; i += 4 {
				select {
				case <-stop:
					return
				default:
				}
				c, err := ldap.DialURL(s.URL(), ldap.DialWithDialer(&net.Dialer{Timeout: time.Second}))
				if err != nil {
					// Down while restarting: wait for it rather than spin.
					select {
					case <-stop:
						return
					case <-time.After(5 * time.Millisecond):
					}
					continue
				}
				c.SetTimeout(time.Second)
				if c.Bind(ldaptest.UserDN(i%ldaptest.Users), ldaptest.UserPassword(i%ldaptest.Users)) == nil {
					select {
					case bound <- struct{}{}:
					default:
					}
				}
				c.Close()
			}
		})
	}
	defer func() { close(stop); wg.Wait() }()
	waitForBinds := func() {
		t.Helper()
		for range 2 { // the second one surely began after the last restart
			select {
			case <-bound:
			case <-time.After(10 * time.Second):
				t.Fatal("no client bound within 10s")
			}
		}
	}
	for range 3 {
		waitForBinds()
		if err := s.Kill(); err != nil {
			t.Fatal(err)
		}
		if err := s.Restart(); err != nil {
			t.Fatal(err)
		}
	}
	waitForBinds()
	conn := dial(t, s.URL())
	bindAdmin(t, conn)
	checkUser(t, conn, 3)
}

func TestFreezeThaw(t *testing.T) {
	s := Start(t)
	conn := dial(t, s.URL())
	bindAdmin(t, conn)
	checkUser(t, conn, 1)

	if err := s.Freeze(); err != nil {
		t.Fatalf("Freeze: %v", err)
	}
	conn.SetTimeout(300 * time.Millisecond)
	begin := time.Now()
	if _, err := searchUser(conn, 2); err == nil {
		t.Fatal("search on a frozen server worked")
	} else {
		t.Logf("frozen: %v after %v", err, time.Since(begin))
	}
	if err := s.Thaw(); err != nil {
		t.Fatalf("Thaw: %v", err)
	}
	conn.SetTimeout(5 * time.Second)
	checkUser(t, conn, 3)

	// Stop resumes a frozen server to stop it.
	if err := s.Freeze(); err != nil {
		t.Fatalf("Freeze: %v", err)
	}
	begin = time.Now()
	if err := s.Stop(); err != nil {
		t.Fatalf("Stop frozen: %v", err)
	}
	if d := time.Since(begin); d > 2*time.Second {
		t.Errorf("Stop of a frozen server took %v", d)
	}
	if err := s.Freeze(); err == nil {
		t.Error("Freeze of a stopped server worked")
	}
}

func TestTLS(t *testing.T) {
	certPEM, keyPEM, pool, err := SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	s := Start(t, WithTLS(certPEM, keyPEM))
	if !strings.HasPrefix(s.LDAPSURL(), "ldaps://127.0.0.1:") || s.LDAPSURL() == strings.Replace(s.URL(), "ldap:", "ldaps:", 1) {
		t.Fatalf("LDAPSURL %q, URL %q", s.LDAPSURL(), s.URL())
	}

	// StartTLS: go-ldap does not derive ServerName from the URL.
	conn := dial(t, s.URL())
	if err := conn.StartTLS(&tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}); err != nil {
		t.Fatalf("StartTLS: %v", err)
	}
	if _, ok := conn.TLSConnectionState(); !ok {
		t.Fatal("no TLS after StartTLS")
	}
	u := ldaptest.SeedUser(5)
	if err := conn.Bind(u.DN, u.Password); err != nil {
		t.Fatalf("bind over StartTLS: %v", err)
	}
	checkUser(t, conn, 42)

	// ldaps://: tls.Dial takes ServerName from the address.
	tconn := dial(t, s.LDAPSURL(), ldap.DialWithTLSConfig(&tls.Config{RootCAs: pool}))
	if _, ok := tconn.TLSConnectionState(); !ok {
		t.Fatal("no TLS on ldaps")
	}
	bindAdmin(t, tconn)
	checkUser(t, tconn, 7)

	// An unknown CA fails.
	_, _, other, err := SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	if c, err := ldap.DialURL(s.LDAPSURL(), ldap.DialWithTLSConfig(&tls.Config{RootCAs: other})); err == nil {
		c.Close()
		t.Fatal("ldaps with the wrong CA worked")
	}

	// Both listeners come back on Restart.
	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	tconn = dial(t, s.LDAPSURL(), ldap.DialWithTLSConfig(&tls.Config{RootCAs: pool}))
	bindAdmin(t, tconn)
}

// WithLDAPI: a unix socket where SASL EXTERNAL binds as the process's user,
// back after a kill and restart (slapd replaces a stale socket).
func TestLDAPI(t *testing.T) {
	if s := Start(t); s.LDAPIURL() != "" || s.LDAPIPath() != "" {
		t.Fatalf("LDAPIURL %q, LDAPIPath %q without WithLDAPI; want none", s.LDAPIURL(), s.LDAPIPath())
	}
	s := Start(t, WithLDAPI())
	if want := "ldapi://" + strings.ReplaceAll(s.LDAPIPath(), "/", "%2F"); s.LDAPIURL() != want {
		t.Fatalf("LDAPIURL %q; want %q", s.LDAPIURL(), want)
	}
	for range 2 {
		conn := dial(t, "ldapi://"+s.LDAPIPath())
		if err := conn.ExternalBind(); err != nil {
			t.Fatalf("EXTERNAL over ldapi: %v", err)
		}
		who, err := conn.WhoAmI(nil)
		if err != nil || !strings.HasSuffix(who.AuthzID, ",cn=peercred,cn=external,cn=auth") {
			t.Fatalf("WhoAmI = %+v, %v; want a peercred identity", who, err)
		}
		checkUser(t, conn, 8)
		if err := s.Kill(); err != nil {
			t.Fatal(err)
		}
		if err := s.Restart(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLDAPIPathTooLong(t *testing.T) {
	if err := checkInstalled(); err != nil {
		t.Skip(err)
	}
	dir := filepath.Join(t.TempDir(), strings.Repeat("d", 100))
	if _, err := New(dir, WithLDAPI()); err == nil || !strings.Contains(err.Error(), "longer than 107 bytes") {
		t.Fatalf("New with a long socket path: %v; want it refused", err)
	}
}

// WithUnauthenticatedBinds: slapd takes a DN with no password as anonymous.
func TestUnauthenticatedBinds(t *testing.T) {
	const dn = "cn=nobody,dc=example,dc=org"
	if err := dial(t, Start(t).URL()).UnauthenticatedBind(dn); !ldap.IsErrorWithCode(err, ldap.LDAPResultUnwillingToPerform) {
		t.Fatalf("unauthenticated bind by default: %v; want unwillingToPerform", err)
	}
	if err := dial(t, Start(t, WithUnauthenticatedBinds()).URL()).UnauthenticatedBind(dn); err != nil {
		t.Fatalf("unauthenticated bind WithUnauthenticatedBinds: %v", err)
	}
}

func TestTwoServers(t *testing.T) {
	a, b := Start(t), Start(t)
	if a.URL() == b.URL() || a.PID() == b.PID() {
		t.Fatalf("same server twice: %s %s", a.URL(), b.URL())
	}
	for _, s := range []*Server{a, b} {
		conn := dial(t, s.URL())
		bindAdmin(t, conn)
		checkUser(t, conn, 10)
	}
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := a.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if a.PID() != 0 {
		t.Errorf("PID after Stop = %d", a.PID())
	}
	conn := dial(t, b.URL())
	bindAdmin(t, conn)
	checkUser(t, conn, 11)
}

func TestLogOutput(t *testing.T) {
	var buf logbuf.Buffer
	s := Start(t, WithLogOutput(&buf), WithLogLevel("stats"))
	conn := dial(t, s.URL())
	bindAdmin(t, conn)
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"slapd starting", `BIND dn="` + ldaptest.AdminDN + `"`, "slapd stopped"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

func TestNewErrors(t *testing.T) {
	if _, err := New(t.TempDir(), WithTLS([]byte("not a cert"), []byte("not a key"))); err == nil {
		t.Error("New with a bad certificate worked")
	} else {
		t.Logf("bad certificate: %v", err)
	}

	// A directory that already holds a database.
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "db"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := New(dir); err == nil {
		t.Error("New over an existing database worked")
	}

	old := slapdPath
	slapdPath = filepath.Join(t.TempDir(), "slapd")
	t.Cleanup(func() { slapdPath = old })
	if _, err := New(t.TempDir()); !errors.Is(err, ErrNotInstalled) {
		t.Errorf("New without slapd: %v, want ErrNotInstalled", err)
	}
}

func TestMissingIsFatal(t *testing.T) {
	for ci, want := range map[string]bool{
		"": false, "false": false, "0": false, "yes": false,
		"true": true, "TRUE": true, "True": true, "1": true,
	} {
		if got := missingIsFatal(ci); got != want {
			t.Errorf("missingIsFatal(%q) = %v, want %v", ci, got, want)
		}
	}
}

// fakeTB records Fatal and Skip, and like them ends the calling goroutine.
type fakeTB struct {
	testing.TB
	mu            sync.Mutex
	fatal, skip   string
	cleanups      int
	tempDirCalled bool
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatal(args ...any) {
	f.mu.Lock()
	f.fatal = fmt.Sprint(args...)
	f.mu.Unlock()
	runtime.Goexit()
}
func (f *fakeTB) Skip(args ...any) {
	f.mu.Lock()
	f.skip = fmt.Sprint(args...)
	f.mu.Unlock()
	runtime.Goexit()
}
func (f *fakeTB) TempDir() string   { f.tempDirCalled = true; return f.TB.TempDir() }
func (f *fakeTB) Cleanup(fn func()) { f.cleanups++; f.TB.Cleanup(fn) }

func startFake(t *testing.T) *fakeTB {
	f := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Start(f)
	}()
	<-done
	return f
}

// TestNotInstalled pretends slapd is missing: Start skips, or fails under
// CI=true.
func TestNotInstalled(t *testing.T) {
	old := slapdPath
	slapdPath = filepath.Join(t.TempDir(), "no-slapd")
	t.Cleanup(func() { slapdPath = old })

	t.Setenv("CI", "true")
	f := startFake(t)
	if !strings.HasPrefix(f.fatal, notInstalledMessage) || f.skip != "" || f.tempDirCalled || f.cleanups != 0 {
		t.Errorf("CI=true: fatal %q, skip %q, TempDir %v, cleanups %d", f.fatal, f.skip, f.tempDirCalled, f.cleanups)
	}

	t.Setenv("CI", "")
	f = startFake(t)
	if !strings.HasPrefix(f.skip, notInstalledMessage) || f.fatal != "" {
		t.Errorf("CI unset: fatal %q, skip %q", f.fatal, f.skip)
	}

	// The real thing: go test -v shows this subtest as skipped with the
	// message.
	t.Run("skip", func(t *testing.T) {
		Start(t)
		t.Error("Start returned although slapd is missing")
	})
}
