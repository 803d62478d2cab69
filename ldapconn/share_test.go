package ldapconn_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"golang.org/x/sync/errgroup"

	"github.com/fairpool/ldappool/engine"
	"github.com/fairpool/ldappool/ldapconn"
	"github.com/fairpool/ldappool/ldaptest"
)

// Do's operations share connections: with one connection and the default
// WithOpsPerConn, eight callers are inside Do at once, each with a search
// answered, on one connection the server accepted once.
func TestDoSharesOneConnectionAmongCallers(t *testing.T) {
	srv := embedded(t)
	p := newPool(t, srv.URL(), admin, ldapconn.WithMaxSize(1))
	const callers = 8
	var inside sync.WaitGroup
	inside.Add(callers)
	all := make(chan struct{})
	go func() { inside.Wait(); close(all) }()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var g errgroup.Group
	for i := range callers {
		g.Go(func() error {
			return p.Do(ctx, func(c ldap.Client) error {
				if _, err := c.Search(searchUID(fmt.Sprint("user", i))); err != nil {
					return err
				}
				inside.Done()
				select { // every caller holds its share until all are inside
				case <-all:
					return nil
				case <-ctx.Done():
					return errors.New("the callers were never inside Do at once")
				}
			})
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	st := p.Stats()
	if st.Dials != 1 || st.Shares != callers || srv.Stats().Accepted != 1 {
		t.Fatalf("dials %d shares %d accepted %d; want %d operations on one connection", st.Dials, st.Shares, srv.Stats().Accepted, callers)
	}
}

// The Client Do lends on a shared connection refuses every call that would
// change the connection for the other operations on it, with an error that
// names what to use instead; nothing reaches the server, and the
// connection serves on as the service identity.
func TestShareRefusesIdentityAndSecurityChanges(t *testing.T) {
	srv := embedded(t)
	p := newPool(t, srv.URL(), admin, ldapconn.WithMaxSize(1))
	before := func() int64 { return srv.Stats().Binds }
	if err := p.Ping(t.Context()); err != nil { // dialed and bound first
		t.Fatal(err)
	}
	binds := before()
	calls := map[string]func(c ldap.Client) error{
		"Bind":                func(c ldap.Client) error { return c.Bind(ldaptest.UserDN(1), ldaptest.UserPassword(1)) },
		"UnauthenticatedBind": func(c ldap.Client) error { return c.UnauthenticatedBind(ldaptest.UserDN(1)) },
		"SimpleBind": func(c ldap.Client) error {
			_, err := c.SimpleBind(ldap.NewSimpleBindRequest(ldaptest.UserDN(1), ldaptest.UserPassword(1), nil))
			return err
		},
		"ExternalBind":            func(c ldap.Client) error { return c.ExternalBind() },
		"NTLMUnauthenticatedBind": func(c ldap.Client) error { return c.NTLMUnauthenticatedBind("D", "u") },
		"StartTLS":                func(c ldap.Client) error { return c.StartTLS(&tls.Config{}) },
		"Unbind":                  func(c ldap.Client) error { return c.Unbind() },
		"SetTimeout then Search": func(c ldap.Client) error {
			c.SetTimeout(time.Millisecond)
			_, err := c.Search(searchUID("user1"))
			return err
		},
	}
	for name, call := range calls {
		var got error
		err := p.Do(t.Context(), func(c ldap.Client) error {
			got = call(c)
			// The share still works for operations that change nothing.
			_, err := c.Search(searchUID("user2"))
			if name == "SetTimeout then Search" {
				return nil
			}
			return err
		})
		if err != nil {
			t.Fatalf("%s: Do: %v", name, err)
		}
		if !errors.Is(got, ldapconn.ErrSharedConnection) {
			t.Fatalf("%s on a share: %v; want ErrSharedConnection", name, got)
		}
		if msg := got.Error(); !strings.Contains(msg, "Lease") || !strings.Contains(msg, "Authenticate") {
			t.Fatalf("%s: error %q does not name the alternatives", name, msg)
		}
	}
	if n := before() - binds; n != 0 {
		t.Fatalf("%d binds reached the server through a share", n)
	}
	if st := p.Stats(); st.Dials != 1 || st.Discards != 0 {
		t.Fatalf("dials %d discards %d; want the shared connection kept", st.Dials, st.Discards)
	}
	// DoAs lends a whole connection, where a bind is the caller's to make.
	if err := p.DoAs(t.Context(), ldapconn.Credentials{DN: ldaptest.AdminDN, Password: ldaptest.AdminPassword}, func(c ldap.Client) error {
		return c.Bind(ldaptest.UserDN(1), ldaptest.UserPassword(1))
	}); err != nil {
		t.Fatalf("Bind through DoAs: %v", err)
	}
}

// A caller whose context ends while its search runs on a shared connection
// gets its context's error at once; the search is abandoned at the server
// (an LDAP Abandon for its own message), the connection stays open, and the
// other operations on it are answered.
func TestCancelledSearchOnAShareIsAbandonedNotClosed(t *testing.T) {
	slow, arrived, opt := slowArrivals(2 * time.Second)
	srv := embedded(t, opt)
	p := newPool(t, srv.URL(), admin, ldapconn.WithMaxSize(1))
	if err := p.Ping(t.Context()); err != nil { // dialed and bound before slowing
		t.Fatal(err)
	}
	slow.Store(1)
	ctx, cancel := context.WithCancel(t.Context())
	gaveUp := make(chan error, 1)
	go func() {
		_, err := p.Search(ctx, searchUID("user1"))
		gaveUp <- err
	}()
	<-arrived // the slow search is at the server: give up on it
	cancel()
	if err := <-gaveUp; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled search: %v; want context.Canceled", err)
	}
	for i := range 3 { // the connection serves on
		if _, err := p.Search(t.Context(), searchUID(fmt.Sprint("user", i))); err != nil {
			t.Fatalf("search after a cancelled one: %v", err)
		}
	}
	if n := srv.Stats().Abandons; n != 1 {
		t.Fatalf("%d abandons at the server; want the cancelled search's", n)
	}
	if st := p.Stats(); st.Dials != 1 || st.Discards != 0 || st.Closed != 0 {
		t.Fatalf("dials %d discards %d closed %d; want the shared connection kept", st.Dials, st.Discards, st.Closed)
	}
}

// A stream read slowly (here: not read at all for a while) does not hold up
// the other operations on its shared connection: go-ldap hands responses
// over unbuffered from the one goroutine that reads the connection, so
// without the pool's pump they would wait for the stream's reader.
func TestSlowStreamReaderDoesNotStallItsConnection(t *testing.T) {
	srv := embedded(t)
	p := newPool(t, srv.URL(), admin, ldapconn.WithMaxSize(1))
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	streamOpen := make(chan struct{})
	othersDone := make(chan struct{})
	var g errgroup.Group
	g.Go(func() error {
		return p.Do(ctx, func(c ldap.Client) error {
			resp := c.SearchAsync(ctx, everyone(), 0)
			if !resp.Next() { // one entry read, the rest left waiting
				return resp.Err()
			}
			close(streamOpen)
			<-othersDone
			n := 1
			for resp.Next() {
				n++
			}
			if n != ldaptest.Users {
				return errors.New("the stream lost entries")
			}
			return resp.Err()
		})
	})
	<-streamOpen
	for i := range 20 {
		if _, err := p.Search(ctx, searchUID(fmt.Sprint("user", i))); err != nil {
			t.Fatalf("search %d beside an unread stream: %v", i, err)
		}
	}
	close(othersDone)
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.Dials != 1 {
		t.Fatalf("dials %d; want every operation on the one connection", st.Dials)
	}
}

// A connection that breaks fails every operation in flight on it; each
// read is run once more on another connection, so no caller sees it.
func TestBrokenSharedConnectionRetriesEveryRead(t *testing.T) {
	slow, arrived, opt := slowArrivals(300 * time.Millisecond)
	srv := embedded(t, opt)
	p := newPool(t, srv.URL(), admin, ldapconn.WithMaxSize(2))
	if err := p.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	const callers = 4
	slow.Store(callers)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var g errgroup.Group
	for i := range callers {
		g.Go(func() error {
			_, err := p.Search(ctx, searchUID(fmt.Sprint("user", i)))
			return err
		})
	}
	for range callers { // every search is at the server
		<-arrived
	}
	if n := srv.DropConnections(); n < 1 {
		t.Fatalf("dropped %d connections", n)
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("a read on a broken shared connection reached its caller: %v", err)
	}
}

// WithMaxInFlight caps the operations out at once however much room the
// connections have: with two out, a fail-fast pool refuses a third at once,
// and nothing reaches the server for it.
func TestMaxInFlightCapsDoAtTheEntryPoint(t *testing.T) {
	slow, arrived, opt := slowArrivals(time.Second)
	srv := embedded(t, opt)
	p := newPool(t, srv.URL(), admin, ldapconn.WithMaxSize(1), ldapconn.WithOpsPerConn(8),
		ldapconn.WithMaxInFlight(2), ldapconn.WithFailFast())
	if err := p.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	slow.Store(2)
	var g errgroup.Group
	for i := range 2 {
		g.Go(func() error { _, err := p.Search(t.Context(), searchUID(fmt.Sprint("user", i))); return err })
	}
	<-arrived
	<-arrived // both are out
	searches := srv.Stats().Searches
	if _, err := p.Search(t.Context(), searchUID("user3")); !errors.Is(err, ldapconn.ErrExhausted) {
		t.Fatalf("a third search past WithMaxInFlight(2): %v; want ErrExhausted", err)
	}
	if n := srv.Stats().Searches - searches; n != 0 {
		t.Fatalf("%d searches reached the server for the refused call", n)
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
}

// Whether a lease is a share is the engine's decision, whatever option set
// the depth: with WithOpsPerConn(1) overridden by the engine's own
// WithOpsPerConn(8) (WithPoolOptions), Do's connection is shared, and a Bind
// on it is refused (rule 5) rather than run under another caller's search.
func TestDepthSetThroughPoolOptionsStillRefusesBindsOnShares(t *testing.T) {
	srv := embedded(t)
	p := newPool(t, srv.URL(), admin, ldapconn.WithMaxSize(1), ldapconn.WithOpsPerConn(1),
		ldapconn.WithPoolOptions(engine.WithOpsPerConn(8)))
	err := p.Do(t.Context(), func(c ldap.Client) error {
		return c.Bind(ldaptest.UserDN(1), ldaptest.UserPassword(1))
	})
	if !errors.Is(err, ldapconn.ErrSharedConnection) {
		t.Fatalf("Bind inside Do on a pool whose engine shares connections: %v; want ErrSharedConnection", err)
	}
	if n := srv.Stats().Binds; n != 1 {
		t.Fatalf("the server saw %d binds; want the pool's own one", n)
	}
}
