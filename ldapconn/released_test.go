package ldapconn_test

import (
	"context"
	"crypto/tls"
	"errors"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/fairpool/ldappool/ldapconn"
	"github.com/fairpool/ldappool/ldaptest"
)

// onePool returns a pool of one connection, bound as the admin, and its
// server.
func onePool(t *testing.T) (*ldaptest.Server, *ldapconn.Pool) {
	t.Helper()
	srv := embedded(t)
	return srv, newPool(t, srv.URL(), admin, ldapconn.WithMaxSize(1))
}

// everyone is a search that returns every seeded user, more than a stream's
// buffer holds.
func everyone() *ldap.SearchRequest {
	return ldap.NewSearchRequest(ldaptest.PeopleDN, ldap.ScopeSingleLevel, ldap.NeverDerefAliases,
		0, 0, false, "(uid=*)", []string{"cn"}, nil)
}

// staleCalls calls every ldap.Client method that can fail on c, by name.
func staleCalls(ctx context.Context, c ldap.Client) map[string]error {
	req := searchUID("user1")
	stream := func(r ldap.Response) error {
		if r.Next() {
			return errors.New("Next returned true")
		}
		return r.Err()
	}
	errs := map[string]error{}
	errs["StartTLS"] = c.StartTLS(&tls.Config{})
	errs["Close"] = c.Close()
	errs["GetLastError"] = c.GetLastError()
	errs["Bind"] = c.Bind(ldaptest.UserDN(2), ldaptest.UserPassword(2))
	errs["UnauthenticatedBind"] = c.UnauthenticatedBind(ldaptest.UserDN(2))
	_, errs["SimpleBind"] = c.SimpleBind(ldap.NewSimpleBindRequest(ldaptest.UserDN(2), ldaptest.UserPassword(2), nil))
	errs["ExternalBind"] = c.ExternalBind()
	errs["NTLMUnauthenticatedBind"] = c.NTLMUnauthenticatedBind("example", "user2")
	errs["Unbind"] = c.Unbind()
	errs["Add"] = c.Add(ldap.NewAddRequest("uid=new,"+ldaptest.PeopleDN, nil))
	errs["Del"] = c.Del(ldap.NewDelRequest(ldaptest.UserDN(3), nil))
	errs["Modify"] = c.Modify(ldap.NewModifyRequest(ldaptest.UserDN(3), nil))
	errs["ModifyDN"] = c.ModifyDN(ldap.NewModifyDNRequest(ldaptest.UserDN(3), "uid=moved", true, ""))
	_, errs["ModifyWithResult"] = c.ModifyWithResult(ldap.NewModifyRequest(ldaptest.UserDN(3), nil))
	_, errs["Extended"] = c.Extended(ldap.NewExtendedRequest("1.3.6.1.4.1.4203.1.11.3", nil))
	_, errs["Compare"] = c.Compare(ldaptest.UserDN(1), "uid", "user1")
	_, errs["PasswordModify"] = c.PasswordModify(ldap.NewPasswordModifyRequest(ldaptest.UserDN(1), "a", "b"))
	_, errs["Search"] = c.Search(req)
	_, errs["SearchWithPaging"] = c.SearchWithPaging(req, 10)
	_, errs["DirSync"] = c.DirSync(req, 0, 0, nil)
	errs["SearchAsync"] = stream(c.SearchAsync(ctx, req, 0))
	errs["DirSyncAsync"] = stream(c.DirSyncAsync(ctx, req, 0, 0, 0, nil))
	errs["Syncrepl"] = stream(c.Syncrepl(ctx, req, 0, ldap.SyncRequestModeRefreshOnly, nil, false))
	return errs
}

// A Client kept past its lease's Release fails every call with
// ErrLeaseReleased and never reaches the connection, which by then serves
// another lease.
func TestReleasedLeaseClientFails(t *testing.T) {
	srv, p := onePool(t)
	l, err := p.Lease(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	stale := l.Client()
	l.Release()
	next, err := p.Lease(t.Context()) // the same, only, connection
	if err != nil {
		t.Fatal(err)
	}
	defer next.Release()
	before := srv.Stats()

	stale.Start()
	stale.SetTimeout(time.Nanosecond)
	for name, err := range staleCalls(t.Context(), stale) {
		if !errors.Is(err, ldapconn.ErrLeaseReleased) {
			t.Errorf("%s on a released lease = %v; want ErrLeaseReleased", name, err)
		}
	}
	if !stale.IsClosing() {
		t.Error("IsClosing on a released lease = false; want true")
	}
	if _, ok := stale.TLSConnectionState(); ok {
		t.Error("TLSConnectionState on a released lease reports a state")
	}

	after := srv.Stats()
	if after.Binds != before.Binds || after.Searches != before.Searches || after.Compares != before.Compares {
		t.Errorf("the server saw %d binds, %d searches, %d compares from a released lease; want none",
			after.Binds-before.Binds, after.Searches-before.Searches, after.Compares-before.Compares)
	}
	if st := p.Stats(); st.Discards != 0 || st.Open != 1 {
		t.Errorf("discards = %d open = %d; want the stale Close and Unbind to leave the other lease's connection alone", st.Discards, st.Open)
	}
	// The stale SetTimeout(1ns) must not have reached the connection.
	if _, err := next.Client().Search(searchUID("user1")); err != nil {
		t.Fatalf("Search on the connection's next lease after stale calls: %v", err)
	}
	if got := srv.BoundDNs(); !slices.Equal(got, []string{ldaptest.AdminDN}) {
		t.Fatalf("bound DNs = %v; want the stale binds never to reach the connection", got)
	}
}

// A stream keeps the connection with its lease after Release until it is
// drained: nobody else is lent the connection meanwhile.
func TestStreamHoldsTheConnectionUntilDrained(t *testing.T) {
	_, p := onePool(t)
	l, err := p.Lease(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	resp := l.Client().SearchAsync(t.Context(), everyone(), 0)
	if !resp.Next() {
		t.Fatalf("first Next = false: %v", resp.Err())
	}
	l.Release()

	wantBusy(t, p)
	n := 1
	for resp.Next() {
		n++
	}
	if err := resp.Err(); err != nil || n != ldaptest.Users {
		t.Fatalf("stream after Release: %d entries, %v; want %d, nil", n, err, ldaptest.Users)
	}
	wantFree(t, p)
}

// A stream whose context ends gives its released lease's connection back.
func TestStreamContextEndGivesTheConnectionBack(t *testing.T) {
	_, p := onePool(t)
	l, err := p.Lease(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	resp := l.Client().SearchAsync(ctx, everyone(), 0)
	if !resp.Next() {
		t.Fatalf("first Next = false: %v", resp.Err())
	}
	l.Release()
	wantBusy(t, p)
	cancel() // without draining
	wantFree(t, p)
	// The caller held the stream until then: a stream dropped undrained,
	// with its lease, is the garbage collector's to find
	// (TestAdoptingADroppedLeaseComesBack).
	runtime.KeepAlive(resp)
}

// A caller's Bind is still undone when the connection goes back after the
// stream that held it past Release.
func TestStreamAfterBindIsRevertedWhenDrained(t *testing.T) {
	srv, p := onePool(t)
	l, err := p.Lease(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	c := l.Client()
	if err := c.Bind(ldaptest.UserDN(5), ldaptest.UserPassword(5)); err != nil {
		t.Fatal(err)
	}
	resp := c.SearchAsync(t.Context(), everyone(), 0)
	l.Release()
	for resp.Next() {
	}
	if err := resp.Err(); err != nil {
		t.Fatal(err)
	}
	wantFree(t, p)
	if got := srv.BoundDNs(); !slices.Equal(got, []string{ldaptest.AdminDN}) {
		t.Fatalf("bound DNs = %v; want the connection bound back to the service", got)
	}
}

// A stream left open when Do's function returns cannot keep the connection:
// with a connection per operation Do closes it, and the stream ends with an
// error.
func TestStreamOutlivingDoIsClosed(t *testing.T) {
	srv := embedded(t)
	p := newPool(t, srv.URL(), admin, ldapconn.WithMaxSize(1), ldapconn.WithOpsPerConn(1))
	var resp ldap.Response
	err := p.Do(t.Context(), func(c ldap.Client) error {
		resp = c.SearchAsync(t.Context(), everyone(), 0)
		if !resp.Next() {
			return resp.Err()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for resp.Next() {
	}
	if resp.Err() == nil {
		t.Fatal("a stream outliving Do ran to its end; want its connection closed under it")
	}
	wantFree(t, p)
	if st := p.Stats(); st.Discards != 1 {
		t.Fatalf("discards = %d; want the stream's connection discarded", st.Discards)
	}
}

// On a shared connection (the default) the stream is ended instead: it is
// abandoned at the server, its Err says why, and the connection, which
// other operations use, stays open.
func TestStreamOutlivingDoOnAShareIsAbandoned(t *testing.T) {
	slow, opt := slowNext(time.Second)
	srv := embedded(t, opt)
	p := newPool(t, srv.URL(), admin, ldapconn.WithMaxSize(1))
	wantFree(t, p) // dialed and bound before the search is slowed
	var resp ldap.Response
	err := p.Do(t.Context(), func(c ldap.Client) error {
		slow.Store(1)
		resp = c.SearchAsync(t.Context(), everyone(), 0)
		return nil // the server has not answered yet
	})
	if err != nil {
		t.Fatal(err)
	}
	for resp.Next() {
	}
	if err := resp.Err(); err == nil || !strings.Contains(err.Error(), "still running when Do's function returned") {
		t.Fatalf("a stream outliving Do: Err() = %v; want it ended because Do's function returned first", err)
	}
	// The server reads the abandon before this search, written after it on
	// the same connection.
	if _, err := p.Search(t.Context(), searchUID("user1")); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.Discards != 0 || st.Dials != 1 {
		t.Fatalf("discards %d dials %d; want the shared connection kept", st.Discards, st.Dials)
	}
	if n := srv.Stats().Abandons; n != 1 {
		t.Fatalf("%d abandons at the server; want the stream's search abandoned", n)
	}
}

// Operations racing with Release either run while the lease is held or fail
// with ErrLeaseReleased; none reaches the connection's next lease.
func TestOperationsRacingRelease(t *testing.T) {
	_, p := onePool(t)
	ops := map[string]func(c ldap.Client){
		"Search": func(c ldap.Client) {
			if _, err := c.Search(searchUID("user1")); err != nil && !errors.Is(err, ldapconn.ErrLeaseReleased) {
				t.Errorf("Search racing Release = %v; want success or ErrLeaseReleased", err)
			}
		},
		// Held, it is undone on release; released, it must do nothing.
		"SetTimeout": func(c ldap.Client) { c.SetTimeout(time.Nanosecond) },
	}
	for name, op := range ops {
		t.Run(name, func(t *testing.T) {
			for range 20 {
				l, err := p.Lease(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				c := l.Client()
				var wg sync.WaitGroup
				for range 4 {
					wg.Go(func() { op(c) })
				}
				l.Release()
				wg.Wait()
				if _, err := p.Search(t.Context(), searchUID("user2")); err != nil {
					t.Fatalf("Search on the next lease: %v", err)
				}
			}
		})
	}
}

// wantBusy checks that the pool's only connection is not lent: a lease
// waits until its deadline.
func wantBusy(t *testing.T, p *ldapconn.Pool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	l, err := p.Lease(ctx)
	if err == nil {
		l.Release()
		t.Fatal("a lease got the connection a stream of a released lease was still reading")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lease = %v; want it to wait until DeadlineExceeded", err)
	}
}

// wantFree checks that the pool's only connection is lent again.
func wantFree(t *testing.T, p *ldapconn.Pool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	l, err := p.Lease(ctx)
	if err != nil {
		t.Fatalf("Lease after the stream ended: %v; want the connection back", err)
	}
	l.Release()
}

// A stream whose context never ends, on a lease its holder never releases,
// ends when Close forces the pool shut: go-ldap's goroutine stops with the
// connection (goleak, in TestMain, would find it otherwise).
func TestUndrainedStreamEndsWithAForcedClose(t *testing.T) {
	srv := embedded(t)
	p, err := ldapconn.NewPool(srv.URL(), admin, ldapconn.WithMaxSize(1))
	if err != nil {
		t.Fatal(err)
	}
	l, err := p.Lease(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// A one-entry buffer and a search returning many entries: go-ldap's
	// goroutine blocks sending the second.
	resp := l.Client().SearchAsync(context.Background(), ldapconn.NewSearch(ldaptest.PeopleDN, "(objectClass=*)"), 1)
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if err := p.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close with a lease held = %v; want its deadline", err)
	}
	// Held, not dropped: a lease dropped with its stream is the garbage
	// collector's to find (TestAdoptingADroppedLeaseComesBack).
	runtime.KeepAlive(l)
	runtime.KeepAlive(resp)
}
