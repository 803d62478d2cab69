package ldapconn_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/fairpool/ldappool/ldapconn"
	"github.com/fairpool/ldappool/ldaptest"
)

func embedded(t testing.TB, opts ...ldaptest.Option) *ldaptest.Server {
	t.Helper()
	srv, err := ldaptest.NewServer(opts...)
	if err != nil {
		t.Fatalf("embedded server: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

func newPool(t testing.TB, servers string, opts ...ldapconn.Option) *ldapconn.Pool {
	t.Helper()
	p, err := ldapconn.NewPool(servers, opts...)
	if err != nil {
		t.Fatalf("NewPool: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return p
}

var admin = ldapconn.WithBind(ldaptest.AdminDN, ldaptest.AdminPassword)

func searchUID(uid string) *ldap.SearchRequest {
	return ldap.NewSearchRequest(ldaptest.PeopleDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
		0, 0, false, "(uid="+uid+")", []string{"cn"}, nil)
}

func cnOf(t *testing.T, res *ldap.SearchResult) string {
	t.Helper()
	if len(res.Entries) != 1 {
		t.Fatalf("search returned %d entries; want 1", len(res.Entries))
	}
	return res.Entries[0].GetAttributeValue("cn")
}

// closedPort returns a loopback address where nothing listens.
func closedPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "ldap://" + addr
}

func TestSearchReusesOneBoundConnection(t *testing.T) {
	srv := embedded(t)
	p := newPool(t, srv.URL(), admin)
	for i := range 5 {
		res, err := p.Search(t.Context(), searchUID(fmt.Sprint("user", i)))
		if err != nil {
			t.Fatalf("Search: %v", err)
		}
		if got := cnOf(t, res); got != fmt.Sprint("User ", i) {
			t.Fatalf("cn = %q; want User %d", got, i)
		}
	}
	if st := srv.Stats(); st.Accepted != 1 || st.Binds != 1 {
		t.Fatalf("server saw %d connections and %d binds for 5 searches; want 1 and 1", st.Accepted, st.Binds)
	}
	if got := srv.BoundDNs(); !slices.Equal(got, []string{ldaptest.AdminDN}) {
		t.Fatalf("bound DNs = %v; want the service DN", got)
	}
	if s := p.String(); strings.Contains(s, ldaptest.AdminPassword) || !strings.Contains(s, ldaptest.AdminDN+"#") {
		t.Fatalf("state table must name the DN with a tag and never the password:\n%s", s)
	}
}

func TestIdentitiesAreSegregated(t *testing.T) {
	srv := embedded(t)
	p := newPool(t, srv.URL(), admin)
	user := ldapconn.Credentials{DN: ldaptest.UserDN(3), Password: ldaptest.UserPassword(3)}
	l1, err := p.LeaseAs(t.Context(), user)
	if err != nil {
		t.Fatal(err)
	}
	l2, err := p.Lease(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if l1.Key() == l2.Key() {
		t.Fatalf("user and service share key %s", l1.Key())
	}
	l1.Release()
	l2.Release()
	if got := srv.BoundDNs(); !slices.Equal(got, []string{ldaptest.AdminDN, ldaptest.UserDN(3)}) {
		t.Fatalf("bound DNs = %v; want one connection per identity", got)
	}
	if keys := p.Stats().Keys; len(keys) != 2 {
		t.Fatalf("stats keys = %v; want 2", keys)
	}
}

func TestInvalidCredentialsBindOnceAndNeverMarkTheServerDown(t *testing.T) {
	srv := embedded(t)
	p := newPool(t, srv.URL(), admin)
	before := srv.Stats().Binds
	_, err := p.LeaseAs(t.Context(), ldapconn.Credentials{DN: ldaptest.UserDN(1), Password: "wrong"})
	if !errors.Is(err, ldapconn.ErrInvalidCredentials) || !ldap.IsErrorWithCode(err, 49) {
		t.Fatalf("LeaseAs with a wrong password = %v; want ErrInvalidCredentials and result 49", err)
	}
	if strings.Contains(err.Error(), "wrong") {
		t.Fatalf("the error shows the password: %v", err)
	}
	if n := srv.Stats().Binds - before; n != 1 {
		t.Fatalf("%d bind attempts with a wrong password; want exactly 1", n)
	}
	for _, s := range p.Servers() {
		if !s.Up {
			t.Fatalf("server %s marked down by a wrong password", s.URL)
		}
	}
}

func TestAuthenticate(t *testing.T) {
	for _, authPool := range []bool{false, true} {
		t.Run(fmt.Sprint("auth pool ", authPool), func(t *testing.T) {
			srv := embedded(t)
			opts := []ldapconn.Option{admin}
			if authPool {
				opts = append(opts, ldapconn.WithAuthPool(5))
			}
			p := newPool(t, srv.URL(), opts...)
			if err := p.Authenticate(t.Context(), ldaptest.UserDN(7), ldaptest.UserPassword(7)); err != nil {
				t.Fatalf("good password: %v", err)
			}
			before := srv.Stats().Binds
			err := p.Authenticate(t.Context(), ldaptest.UserDN(7), "nope")
			if !errors.Is(err, ldapconn.ErrInvalidCredentials) {
				t.Fatalf("wrong password: %v; want ErrInvalidCredentials", err)
			}
			binds := srv.Stats().Binds - before
			if binds != 1 {
				t.Fatalf("%d binds for a wrong password; want the user's, once", binds)
			}
			if err := p.Authenticate(t.Context(), ldaptest.UserDN(7), ""); !errors.Is(err, ldapconn.ErrEmptyPassword) {
				t.Fatalf("empty password: %v; want ErrEmptyPassword without asking the server", err)
			}
			// The service pool's connections stay bound as the service.
			if _, err := p.Search(t.Context(), searchUID("user1")); err != nil {
				t.Fatal(err)
			}
			// End users bind on the bind lane only.
			if got := srv.BoundDNs(); !slices.Contains(got, ldaptest.AdminDN) || slices.Contains(got, ldaptest.UserDN(7)) {
				t.Fatalf("bound DNs after Authenticate = %v; want the service's connection bound as the service", got)
			}
		})
	}
}

func TestCallersBindIsRevertedOnRelease(t *testing.T) {
	srv := embedded(t)
	p := newPool(t, srv.URL(), admin, ldapconn.WithMaxSize(1))
	l, err := p.Lease(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Client().Bind(ldaptest.UserDN(5), ldaptest.UserPassword(5)); err != nil {
		t.Fatal(err)
	}
	l.Release()
	if got := srv.BoundDNs(); !slices.Equal(got, []string{ldaptest.AdminDN}) {
		t.Fatalf("bound DNs = %v; want the connection bound back to the service", got)
	}
	if st := p.Stats(); st.Idle != 1 {
		t.Fatalf("idle = %d; want the reverted connection pooled", st.Idle)
	}
	l, _ = p.Lease(t.Context())
	l.Client().Unbind()
	l.Release()
	if st := p.Stats(); st.Open != st.Closing || st.Discards != 1 {
		t.Fatalf("open = %d discards = %d after Unbind; want the connection closed, not pooled", st.Open, st.Discards)
	}
}

// A caller whose context ends gets its error at once and costs no
// connection: the search is abandoned at the server (RFC 4511 Abandon) and
// the connection stays in the pool for the next caller.
func TestContextEndAbandonsTheOperation(t *testing.T) {
	srv := embedded(t)
	p := newPool(t, srv.URL(), admin)
	if _, err := p.Search(t.Context(), searchUID("user1")); err != nil {
		t.Fatal(err) // warm: one idle connection
	}
	srv.SetLatency(time.Hour)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := p.Search(ctx, searchUID("user1"))
	if !errors.Is(err, context.DeadlineExceeded) || ldapconn.IsBroken(err) {
		t.Fatalf("Search = %v; want the context's DeadlineExceeded, not a broken connection", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("Search returned after %v; want soon after the 100ms deadline, not the server's hour", d)
	}
	srv.SetLatency(0)
	if _, err := p.Search(t.Context(), searchUID("user2")); err != nil {
		t.Fatalf("the next Search: %v", err)
	}
	st, sst := p.Stats(), srv.Stats()
	if st.Discards != 0 || st.Dials != 1 || sst.Accepted != 1 || sst.Abandons != 1 {
		t.Fatalf("discards %d, dials %d, server accepted %d and saw %d abandons; want the connection kept, 1 dial, 1 abandon",
			st.Discards, st.Dials, sst.Accepted, sst.Abandons)
	}
}

func TestDroppedConnectionsAreRetriedTransparently(t *testing.T) {
	srv := embedded(t)
	p := newPool(t, srv.URL(), admin, ldapconn.WithMaxSize(4))
	var wg sync.WaitGroup
	for range 4 { // four idle connections
		wg.Go(func() {
			l, err := p.Lease(t.Context())
			if err != nil {
				t.Error(err)
				return
			}
			defer l.Release()
			l.Client().Search(searchUID("user1"))
		})
	}
	wg.Wait()
	if n := srv.DropConnections(); n == 0 {
		t.Fatal("no connection to drop")
	}
	for i := range 8 {
		if _, err := p.Search(t.Context(), searchUID(fmt.Sprint("user", i))); err != nil {
			t.Fatalf("search %d after the server dropped every connection: %v", i, err)
		}
	}
}

func TestNoPoolDialsEveryLease(t *testing.T) {
	srv := embedded(t)
	p := newPool(t, srv.URL(), admin, ldapconn.WithNoPool())
	for range 3 {
		if _, err := p.Search(t.Context(), searchUID("user2")); err != nil {
			t.Fatal(err)
		}
	}
	if st, pst := srv.Stats(), p.Stats(); st.Accepted != 3 || pst.Open != pst.Closing || pst.Dials != 3 {
		t.Fatalf("server accepted %d, pool has %d open and dialed %d; want 3, 0, 3 in no-pool mode", st.Accepted, pst.Open-pst.Closing, pst.Dials)
	}
}

func TestFailoverToTheSecondServer(t *testing.T) {
	srv := embedded(t)
	down := closedPort(t)
	p := newPool(t, down+","+srv.URL(), admin, ldapconn.WithFailbackAfter(time.Second),
		ldapconn.WithLifetimeJitter(0))
	l, err := p.Lease(t.Context())
	if err != nil {
		t.Fatalf("Lease with the first server down: %v", err)
	}
	if l.Server() != srv.URL() {
		t.Fatalf("leased on %s; want %s", l.Server(), srv.URL())
	}
	l.Release()
	st := p.Servers()
	if st[0].Up || st[0].LastError == "" || !st[1].Up || st[1].Open != 1 {
		t.Fatalf("server status %+v; want the first down with its error, the second up with 1 open", st)
	}
	if c := p.Stats().Conns[0]; c.ExpiresIn > time.Second {
		t.Fatalf("a fallback connection expires in %v; want at most the 1s failback", c.ExpiresIn)
	}
}

func TestEveryServerDown(t *testing.T) {
	a, b := closedPort(t), closedPort(t)
	p := newPool(t, a+" "+b, admin)
	_, err := p.Lease(t.Context())
	var down *ldapconn.AllServersDownError
	if !errors.As(err, &down) || len(down.Servers) != 2 {
		t.Fatalf("Lease = %v; want *AllServersDownError listing 2 servers", err)
	}
	for _, s := range []string{a, b, "connection refused"} {
		if !strings.Contains(err.Error(), strings.TrimPrefix(s, "ldap://")) {
			t.Fatalf("error %q does not mention %q", err, s)
		}
	}
	// In backoff now: the next lease waits for the first server's next
	// attempt, which is refused too.
	_, err = p.Lease(t.Context())
	if !errors.As(err, &down) || !strings.Contains(err.Error(), "retry in") {
		t.Fatalf("second Lease = %v; want every server in backoff", err)
	}
}
