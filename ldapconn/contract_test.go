package ldapconn_test

// The contract tests pin the promises of issue 8 at the public API, against
// the embedded server: the first login after a restart succeeds (3), nested
// use does not deadlock (4), every error is classifiable (5), the hard
// maximum holds at the server (7), and Close ends everything (10). The slapd
// half of (3) is in contract_slapd_test.go.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/fairpool/ldappool/ldapconn"
	"github.com/fairpool/ldappool/ldaptest"
)

// contractCtx is the generous deadline every contract test runs under: a
// call that hits it has hung.
func contractCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond every millisecond, at most 5000 times (about five
// seconds), for the conditions that have no event to wait on.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 5000 {
		if cond() {
			return
		}
		select {
		case <-time.After(time.Millisecond):
		case <-t.Context().Done():
		}
	}
	t.Fatalf("gave up waiting for %s", what)
}

// warm leases n connections at once and releases them, leaving n idle.
func warm(t *testing.T, p *ldapconn.Pool, n int) {
	t.Helper()
	ctx := contractCtx(t)
	leases := make([]*ldapconn.Lease, 0, n)
	for range n {
		l, err := p.Lease(ctx)
		if err != nil {
			t.Fatalf("warming Lease: %v", err)
		}
		if _, err := l.Client().Search(searchUID("user1")); err != nil {
			t.Fatalf("warming Search: %v", err)
		}
		leases = append(leases, l)
	}
	for _, l := range leases {
		l.Release()
	}
}

// restartOps are the calls that must succeed first time after the
// directory restarted under a warm pool.
var restartOps = []struct {
	name string
	opts []ldapconn.Option
	op   func(ctx context.Context, p *ldapconn.Pool) error
}{
	{name: "Authenticate", op: func(ctx context.Context, p *ldapconn.Pool) error {
		return p.Authenticate(ctx, ldaptest.UserDN(7), ldaptest.UserPassword(7))
	}},
	{name: "Authenticate WithAuthPool(1)", opts: []ldapconn.Option{ldapconn.WithAuthPool(1)}, op: func(ctx context.Context, p *ldapconn.Pool) error {
		return p.Authenticate(ctx, ldaptest.UserDN(7), ldaptest.UserPassword(7))
	}},
	{name: "Search", op: func(ctx context.Context, p *ldapconn.Pool) error {
		_, err := p.Search(ctx, searchUID("user2"))
		return err
	}},
	{name: "Do", op: func(ctx context.Context, p *ldapconn.Pool) error {
		return p.Do(ctx, func(c ldap.Client) error {
			_, err := c.Search(searchUID("user3"))
			return err
		})
	}},
	{name: "Lease first operation", op: func(ctx context.Context, p *ldapconn.Pool) error {
		l, err := p.Lease(ctx)
		if err != nil {
			return err
		}
		defer l.Release()
		_, err = l.Client().Search(searchUID("user4"))
		return err
	}},
	{name: "Ping", op: func(ctx context.Context, p *ldapconn.Pool) error { return p.Ping(ctx) }},
	{name: "DoAs", op: func(ctx context.Context, p *ldapconn.Pool) error {
		return p.DoAs(ctx, user5, func(c ldap.Client) error {
			_, err := c.Search(searchUID("user5"))
			return err
		})
	}},
	{name: "LeaseAs first operation", op: func(ctx context.Context, p *ldapconn.Pool) error {
		l, err := p.LeaseAs(ctx, user5)
		if err != nil {
			return err
		}
		defer l.Release()
		_, err = l.Client().Search(searchUID("user6"))
		return err
	}},
}

var user5 = ldapconn.Credentials{DN: ldaptest.UserDN(5), Password: ldaptest.UserPassword(5)}

// dials counts the dials of both pools of p.
func dials(p *ldapconn.Pool) uint64 { return p.Stats().Dials + p.AuthStats().Dials }

// warmBoth leaves idle connections in the service pool and in the bind lane.
func warmBoth(t *testing.T, p *ldapconn.Pool) {
	t.Helper()
	warm(t, p, 2)
	for i := range 2 {
		if err := p.Authenticate(contractCtx(t), ldaptest.UserDN(i), ldaptest.UserPassword(i)); err != nil {
			t.Fatalf("warming Authenticate: %v", err)
		}
	}
}

// Promise 3: after the server drops every client connection, as a restart
// does, each entry point's next call on a warm pool succeeds.
func TestContractFirstCallAfterRestart(t *testing.T) {
	for _, tt := range restartOps {
		t.Run(tt.name, func(t *testing.T) {
			srv := embedded(t)
			p := newPool(t, srv.URL(), append([]ldapconn.Option{admin}, tt.opts...)...)
			warmBoth(t, p)
			if n := srv.DropConnections(); n == 0 {
				t.Fatal("no connection to drop: the pool was not warm")
			}
			before := dials(p)
			if err := tt.op(contractCtx(t), p); err != nil {
				t.Fatalf("first %s after a restart: %v; want success", tt.name, err)
			}
			if dials(p) == before {
				t.Fatal("no new connection was dialed: the call did not meet the restart")
			}
		})
	}
}

// Promise 3: a wrong password after a restart reaches the server once, and
// is the caller's error.
func TestContractWrongPasswordAfterRestartSentOnce(t *testing.T) {
	for _, size := range []int{1, 2} {
		t.Run(fmt.Sprint("WithAuthPool(", size, ")"), func(t *testing.T) {
			srv := embedded(t)
			p := newPool(t, srv.URL(), admin, ldapconn.WithAuthPool(size))
			warmBoth(t, p)
			srv.DropConnections()
			binds, dials := srv.Stats().Binds, p.AuthStats().Dials
			err := p.Authenticate(contractCtx(t), ldaptest.UserDN(7), "wrong")
			if !errors.Is(err, ldapconn.ErrInvalidCredentials) {
				t.Fatalf("wrong password after a restart: %v; want ErrInvalidCredentials", err)
			}
			// Every bind-lane dial sends one anonymous bind; the rest
			// are the user's.
			newDials := int64(p.AuthStats().Dials - dials)
			if user := srv.Stats().Binds - binds - newDials; user != 1 {
				t.Fatalf("the wrong password reached the server %d times (%d binds, %d dials); want once",
					user, srv.Stats().Binds-binds, newDials)
			}
		})
	}
}

// Promise 4: Authenticate inside Do, or while holding a Lease, never waits
// on the service pool, whatever its size and however many callers.
func TestContractNestedUseDoesNotDeadlock(t *testing.T) {
	for _, n := range []int{2, 4} {
		t.Run(fmt.Sprint("WithMaxSize(", n, ")"), func(t *testing.T) {
			srv := embedded(t)
			p := newPool(t, srv.URL(), admin, ldapconn.WithMaxSize(n))
			ctx := contractCtx(t)
			errs := make(chan error, 6*n)
			var wg sync.WaitGroup
			for g := range 3 * n {
				dn, pw := ldaptest.UserDN(g), ldaptest.UserPassword(g)
				wg.Go(func() {
					errs <- p.Do(ctx, func(c ldap.Client) error {
						if _, err := c.Search(searchUID(fmt.Sprint("user", g))); err != nil {
							return err
						}
						return p.Authenticate(ctx, dn, pw)
					})
				})
				wg.Go(func() {
					l, err := p.Lease(ctx)
					if err != nil {
						errs <- fmt.Errorf("Lease: %w", err)
						return
					}
					defer l.Release()
					errs <- p.Authenticate(ctx, dn, pw)
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Errorf("nested call: %v (deadline hit: %v); want every call to succeed", err, ctx.Err() != nil)
				}
			}
		})
	}
}

// Yes and no for the classification columns of the table; zero means the
// case does not say.
const (
	yes = 1
	no  = 2
)

// Promise 5: every error a caller can meet is classified.
func TestContractErrorsAreClassifiable(t *testing.T) {
	tests := []struct {
		name      string
		err       func(t *testing.T) error
		is        []error // errors.Is must hold for each
		allDown   bool    // errors.As *AllServersDownError
		option    bool    // errors.As *OptionError
		broken    int
		retryable int
	}{
		{name: "every server down, cold", err: func(t *testing.T) error {
			p := newPool(t, closedPort(t), admin)
			_, err := p.Search(contractCtx(t), searchUID("user1"))
			return err
		}, is: []error{ldapconn.ErrServerDown}, allDown: true, retryable: yes},
		{name: "every server down, warm", err: func(t *testing.T) error {
			srv := embedded(t)
			p := newPool(t, srv.URL(), admin)
			if _, err := p.Search(contractCtx(t), searchUID("user1")); err != nil {
				t.Fatalf("Search while the server is up: %v", err)
			}
			if err := srv.Close(); err != nil {
				t.Fatalf("closing the server: %v", err)
			}
			_, err := p.Search(contractCtx(t), searchUID("user1"))
			return err
		}, is: []error{ldapconn.ErrServerDown}, allDown: true, retryable: yes},
		{name: "context.DeadlineExceeded", err: func(*testing.T) error { return context.DeadlineExceeded },
			is: []error{context.DeadlineExceeded}, broken: no},
		{name: "context.Canceled", err: func(*testing.T) error { return context.Canceled },
			is: []error{context.Canceled}, broken: no, retryable: no},
		{name: "connection dropped mid-search", err: droppedMidSearch, broken: yes},
		{name: "operation timeout, Lease", err: func(t *testing.T) error {
			return opTimeout(t, func(ctx context.Context, p *ldapconn.Pool) error {
				l, err := p.Lease(ctx)
				if err != nil {
					return err
				}
				defer l.Release()
				_, err = l.Client().Search(searchUID("user1"))
				return err
			})
		}, is: []error{context.DeadlineExceeded}, broken: yes},
		{name: "operation timeout, Search", err: func(t *testing.T) error {
			return opTimeout(t, func(ctx context.Context, p *ldapconn.Pool) error {
				_, err := p.Search(ctx, searchUID("user1"))
				return err
			})
		}, is: []error{context.DeadlineExceeded}},
		{name: "wrong password, Authenticate", err: func(t *testing.T) error {
			p := newPool(t, embedded(t).URL(), admin)
			return p.Authenticate(contractCtx(t), ldaptest.UserDN(1), "wrong")
		}, is: []error{ldapconn.ErrInvalidCredentials}, retryable: no},
		{name: "wrong password, LeaseAs", err: func(t *testing.T) error {
			p := newPool(t, embedded(t).URL(), admin)
			_, err := p.LeaseAs(contractCtx(t), ldapconn.Credentials{DN: ldaptest.UserDN(1), Password: "wrong"})
			return err
		}, is: []error{ldapconn.ErrInvalidCredentials}, retryable: no},
		{name: "Authenticate with an empty DN", err: func(t *testing.T) error {
			p := newPool(t, embedded(t).URL(), admin)
			return p.Authenticate(contractCtx(t), "", "secret")
		}, is: []error{ldapconn.ErrBadRequest}, retryable: no},
		{name: "Authenticate with an empty password", err: func(t *testing.T) error {
			p := newPool(t, embedded(t).URL(), admin)
			return p.Authenticate(contractCtx(t), ldaptest.UserDN(1), "")
		}, is: []error{ldapconn.ErrEmptyPassword, ldapconn.ErrBadRequest}, retryable: no},
		{name: "bad option WithMaxSize(0)", err: badOption(ldapconn.WithMaxSize(0)),
			is: []error{ldapconn.ErrBadRequest}, option: true, retryable: no},
		{name: "bad option WithAuthPool(0)", err: badOption(ldapconn.WithAuthPool(0)),
			is: []error{ldapconn.ErrBadRequest}, option: true, retryable: no},
		{name: "bad option WithOperationTimeout(0)", err: badOption(ldapconn.WithOperationTimeout(0)),
			is: []error{ldapconn.ErrBadRequest}, option: true, retryable: no},
		{name: "closed pool", err: func(t *testing.T) error {
			p, err := ldapconn.NewPool(embedded(t).URL(), admin)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Close(contractCtx(t)); err != nil {
				t.Fatalf("Close: %v", err)
			}
			_, err = p.Search(contractCtx(t), searchUID("user1"))
			return err
		}, is: []error{ldapconn.ErrClosed}, retryable: no},
		{name: "pool exhausted (fail-fast)", err: func(t *testing.T) error {
			p := newPool(t, embedded(t).URL(), admin, ldapconn.WithMaxSize(1), ldapconn.WithFailFast())
			l, err := p.Lease(contractCtx(t))
			if err != nil {
				t.Fatal(err)
			}
			defer l.Release()
			_, err = p.Lease(contractCtx(t))
			return err
		}, is: []error{ldapconn.ErrExhausted}, retryable: yes},
		{name: "ErrServerDown", err: func(*testing.T) error { return ldapconn.ErrServerDown },
			is: []error{ldapconn.ErrServerDown}, retryable: yes},
		{name: "ErrExhausted", err: func(*testing.T) error { return ldapconn.ErrExhausted },
			is: []error{ldapconn.ErrExhausted}, retryable: yes},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.err(t)
			if err == nil {
				t.Fatal("no error; want one")
			}
			for _, target := range tt.is {
				if !errors.Is(err, target) {
					t.Errorf("errors.Is(%v, %v) = false; want true", err, target)
				}
			}
			var down *ldapconn.AllServersDownError
			if tt.allDown && !errors.As(err, &down) {
				t.Errorf("errors.As(%v, *AllServersDownError) = false; want true", err)
			}
			var oe *ldapconn.OptionError
			if tt.option && !errors.As(err, &oe) {
				t.Errorf("errors.As(%v (%T), *OptionError) = false; want true", err, err)
			}
			if tt.broken != 0 && ldapconn.IsBroken(err) != (tt.broken == yes) {
				t.Errorf("IsBroken(%v) = %v; want %v", err, ldapconn.IsBroken(err), tt.broken == yes)
			}
			if tt.retryable != 0 && ldapconn.IsRetryable(err) != (tt.retryable == yes) {
				t.Errorf("IsRetryable(%v) = %v; want %v", err, ldapconn.IsRetryable(err), tt.retryable == yes)
			}
		})
	}
}

// droppedMidSearch returns the error of a lease's search that the server
// cut by dropping the connection while it waited to answer.
func droppedMidSearch(t *testing.T) error {
	srv := embedded(t)
	p := newPool(t, srv.URL(), admin)
	l, err := p.Lease(contractCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	srv.SetLatency(time.Minute)
	defer srv.SetLatency(0)
	searches := srv.Stats().Searches
	done := make(chan error, 1)
	go func() {
		_, err := l.Client().Search(searchUID("user1"))
		done <- err
	}()
	waitFor(t, "the search to reach the server", func() bool { return srv.Stats().Searches > searches })
	srv.DropConnections()
	select {
	case err := <-done:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("the search did not return within 5s of its connection being dropped")
		return nil
	}
}

// opTimeout returns the error of op on a warm pool whose operations time
// out after 200ms while the server takes a minute to answer.
func opTimeout(t *testing.T, op func(context.Context, *ldapconn.Pool) error) error {
	srv := embedded(t)
	p := newPool(t, srv.URL(), admin, ldapconn.WithOperationTimeout(200*time.Millisecond))
	warm(t, p, 1)
	srv.SetLatency(time.Minute)
	defer srv.SetLatency(0)
	start := time.Now()
	err := op(contractCtx(t), p)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the operation returned after %v with a 200ms operation timeout", d)
	}
	return err
}

func badOption(o ldapconn.Option) func(t *testing.T) error {
	return func(t *testing.T) error {
		p, err := ldapconn.NewPool("ldap://127.0.0.1:1", o)
		if err == nil {
			p.Close(context.Background())
		}
		return err
	}
}

func TestContractIsBrokenIgnoresTheCallersContext(t *testing.T) {
	for _, err := range []error{context.DeadlineExceeded, context.Canceled,
		fmt.Errorf("ldapconn: operation abandoned: %w", context.DeadlineExceeded),
		fmt.Errorf("ldapconn: operation abandoned: %w", context.Canceled)} {
		if ldapconn.IsBroken(err) {
			t.Errorf("IsBroken(%v) = true; want false: the caller's context is not a broken connection", err)
		}
	}
}

// countingProxy forwards loopback connections to a server and counts the
// connections open at it, and the most open at once. Several proxies may
// share one count, as the servers of one pool do.
type countingProxy struct {
	ln     net.Listener
	target string
	count  *connCount

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
	resets atomic.Int32 // reset this many of the next connections at once, as a server that blinks does
	reset  atomic.Int32 // connections reset so
}

// connCount counts the connections of one or more proxies. A connection is
// open while the kernel has it established: the proxy's own goroutines learn
// of a client's close some time after it happened, and counting until then
// would charge the pool for the proxy's scheduling. The count is taken when
// a connection is accepted, which is when a new peak can begin.
type connCount struct {
	mu    sync.Mutex
	conns map[*net.TCPConn]struct{}
	peak  int
	total int
}

func (c *connCount) add(conn *net.TCPConn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conns == nil {
		c.conns = map[*net.TCPConn]struct{}{}
	}
	c.conns[conn] = struct{}{}
	c.total++
	open := 0
	for conn := range c.conns {
		if tcpEstablished(conn) {
			open++
		}
	}
	c.peak = max(c.peak, open)
}

func (c *connCount) remove(conn *net.TCPConn) {
	c.mu.Lock()
	delete(c.conns, conn)
	c.mu.Unlock()
}

func (c *connCount) figures() (peak, total int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.peak, c.total
}

func newCountingProxy(t *testing.T, targetURL string, count *connCount) *countingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	px := &countingProxy{ln: ln, target: strings.TrimPrefix(targetURL, "ldap://"), count: count,
		conns: map[net.Conn]struct{}{}}
	px.wg.Add(1)
	go px.accept()
	t.Cleanup(px.stop)
	return px
}

func (px *countingProxy) URL() string { return "ldap://" + px.ln.Addr().String() }

func (px *countingProxy) accept() {
	defer px.wg.Done()
	for {
		c, err := px.ln.Accept()
		if err != nil {
			return
		}
		px.mu.Lock()
		if px.closed {
			px.mu.Unlock()
			c.Close()
			return
		}
		px.conns[c] = struct{}{}
		px.mu.Unlock()
		if px.resets.Add(-1) >= 0 {
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
			px.reset.Add(1)
			continue
		}
		px.resets.Store(0)
		px.count.add(c.(*net.TCPConn))
		px.wg.Add(1)
		go px.serve(c)
	}
}

// serve forwards c both ways until either side closes, then closes both.
func (px *countingProxy) serve(c net.Conn) {
	defer px.wg.Done()
	defer func() {
		c.Close()
		px.count.remove(c.(*net.TCPConn))
		px.mu.Lock()
		delete(px.conns, c)
		px.mu.Unlock()
	}()
	s, err := net.Dial("tcp", px.target)
	if err != nil {
		return
	}
	defer s.Close()
	done := make(chan struct{}, 2)
	go func() { io.Copy(s, c); done <- struct{}{} }()
	go func() { io.Copy(c, s); done <- struct{}{} }()
	<-done
	c.Close()
	s.Close()
	<-done
}

// stop closes the listener and every connection, as a server that goes
// down does, and waits for the proxy's goroutines.
func (px *countingProxy) stop() {
	px.ln.Close()
	px.mu.Lock()
	px.closed = true
	for c := range px.conns {
		c.Close()
	}
	px.mu.Unlock()
	px.wg.Wait()
}

// churn runs goroutines each doing rounds leases with a search, and
// discarding the connection where discard says, releasing it otherwise.
func churn(t *testing.T, p *ldapconn.Pool, goroutines, rounds int, discard func(g, i int) bool) {
	t.Helper()
	ctx := contractCtx(t)
	errs := make(chan error, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range rounds {
				l, err := p.Lease(ctx)
				if err != nil {
					errs <- err
					return
				}
				if _, err := l.Client().Search(searchUID("user1")); err != nil && !ldapconn.IsBroken(err) {
					l.Release()
					errs <- err
					return
				}
				if discard(g, i) {
					l.Discard(errors.New("contract test: discarded"))
				} else {
					l.Release()
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("lease loop: %v", err)
	}
}

// Promise 7: the pool never holds more connections open at the server than
// WithMaxSize, under churn, in no-pool mode and across failover.
func TestContractMaxSizeHoldsAtTheServer(t *testing.T) {
	tests := []struct {
		name string
		max  int
		run  func(t *testing.T, px *countingProxy)
	}{
		{"WithMaxSize(4) lease, discard and release", 4, func(t *testing.T, px *countingProxy) {
			p := newPool(t, px.URL(), admin, ldapconn.WithMaxSize(4))
			churn(t, p, 16, 20, func(g, i int) bool { return g%2 == 0 })
		}},
		{"WithMaxSize(2) lease and discard", 2, func(t *testing.T, px *countingProxy) {
			p := newPool(t, px.URL(), admin, ldapconn.WithMaxSize(2))
			churn(t, p, 8, 20, func(g, i int) bool { return true })
		}},
		{"WithNoPool WithMaxSize(3) searches", 3, func(t *testing.T, px *countingProxy) {
			p := newPool(t, px.URL(), admin, ldapconn.WithNoPool(), ldapconn.WithMaxSize(3))
			ctx := contractCtx(t)
			var wg sync.WaitGroup
			for g := range 9 {
				wg.Go(func() {
					for i := range 10 {
						if _, err := p.Search(ctx, searchUID(fmt.Sprint("user", g*10+i))); err != nil {
							t.Errorf("Search: %v", err)
							return
						}
					}
				})
			}
			wg.Wait()
		}},
		{"WithMaxSize(4) across failover", 4, func(t *testing.T, primary *countingProxy) {
			secondary := newCountingProxy(t, embedded(t).URL(), primary.count)
			p := newPool(t, primary.URL()+","+secondary.URL(), admin, ldapconn.WithMaxSize(4),
				ldapconn.WithFailbackAfter(time.Minute))
			ctx := contractCtx(t)
			var leases atomic.Int64
			var wg sync.WaitGroup
			for range 12 {
				wg.Go(func() {
					for i := 0; ; i++ {
						switch n := leases.Add(1); {
						case n > 400:
							return
						case n == 100:
							primary.stop() // the primary goes down mid-run
						}
						// A lease may fail while the primary goes: only
						// the count matters here.
						l, err := p.Lease(ctx)
						if err != nil {
							continue
						}
						l.Client().Search(searchUID("user1"))
						if i%3 == 0 {
							l.Discard(errors.New("contract test: discarded"))
						} else {
							l.Release()
						}
					}
				})
			}
			wg.Wait()
			primary.stop()
			// The primary's backoff may be over by now; its failures are not.
			if s := p.Servers(); s[0].Failures == 0 || s[1].Operations == 0 {
				t.Fatalf("servers %+v; want the primary failed and operations on the secondary", s)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !canSeeTCPState {
				t.Skip("needs the kernel's TCP state of a socket (Linux)")
			}
			count := new(connCount)
			px := newCountingProxy(t, embedded(t).URL(), count)
			tt.run(t, px)
			peak, total := count.figures()
			if peak > tt.max {
				t.Errorf("%d connections open at the server at once (of %d made); want at most %d", peak, total, tt.max)
			}
			t.Logf("at most %d of %d connections open at once, max %d", peak, total, tt.max)
		})
	}
}

// Promise 10: Close with a lease out honours its deadline and lets an
// earlier Close return, and from its start every entry point fails at once
// with ErrClosed.
func TestContractClose(t *testing.T) {
	srv := embedded(t)
	p, err := ldapconn.NewPool(srv.URL(), admin)
	if err != nil {
		t.Fatal(err)
	}
	ctx := contractCtx(t)
	if err := p.Authenticate(ctx, ldaptest.UserDN(1), ldaptest.UserPassword(1)); err != nil {
		t.Fatal(err) // an idle bind-lane connection
	}
	held, err := p.Lease(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release()

	first := make(chan error, 1)
	go func() { first <- p.Close(context.Background()) }()
	waitFor(t, "Close to begin", func() bool { return p.Stats().PoolClosed })

	user := ldapconn.Credentials{DN: ldaptest.UserDN(2), Password: ldaptest.UserPassword(2)}
	search := func(c ldap.Client) error { _, err := c.Search(searchUID("user1")); return err }
	calls := []struct {
		name string
		call func() error
	}{
		{"Lease", func() error { _, err := p.Lease(ctx); return err }},
		{"LeaseAs", func() error { _, err := p.LeaseAs(ctx, user); return err }},
		{"Do", func() error { return p.Do(ctx, search) }},
		{"DoAs", func() error { return p.DoAs(ctx, user, search) }},
		{"Search", func() error { _, err := p.Search(ctx, searchUID("user1")); return err }},
		{"Authenticate", func() error { return p.Authenticate(ctx, ldaptest.UserDN(3), ldaptest.UserPassword(3)) }},
	}
	for _, c := range calls {
		start := time.Now()
		err := c.call()
		if !errors.Is(err, ldapconn.ErrClosed) {
			t.Errorf("%s while Close waits for a lease = %v; want ErrClosed", c.name, err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("%s took %v after Close began; want it to fail at once", c.name, d)
		}
	}
	select {
	case err := <-first:
		t.Fatalf("Close(background) returned %v with a lease still held; want it to wait", err)
	default:
	}

	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = p.Close(short)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close with a 100ms deadline returned after %v", d)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close with a 100ms deadline and a lease held = %v; want context.DeadlineExceeded", err)
	}
	select {
	case err := <-first:
		if err != nil {
			t.Logf("the earlier Close(background) returned %v", err)
		}
	case <-time.After(2 * time.Second):
		held.Release()
		t.Fatalf("the earlier Close(background) had not returned 2s after the forced close")
	}
	if _, err := held.Client().Search(searchUID("user1")); err == nil {
		t.Error("the held lease still searches after the forced close; want its connection closed")
	}
}

// Close while callers are busy in every entry point at once: each call
// returns, with success or an error matching ErrClosed or its context's
// end, and Close returns; goleak (TestMain) finds nothing left running.
func TestContractCloseWhileBusy(t *testing.T) {
	srv := embedded(t)
	p, err := ldapconn.NewPool(srv.URL(), admin, ldapconn.WithMaxSize(3))
	if err != nil {
		t.Fatal(err)
	}
	ctx := contractCtx(t)
	calls := []func() error{
		func() error { _, err := p.Search(ctx, searchUID("user1")); return err },
		func() error {
			return p.Do(ctx, func(c ldap.Client) error { _, err := c.Search(searchUID("user2")); return err })
		},
		func() error {
			return p.DoAs(ctx, user5, func(c ldap.Client) error { _, err := c.Search(searchUID("user3")); return err })
		},
		func() error { return p.Authenticate(ctx, ldaptest.UserDN(4), ldaptest.UserPassword(4)) },
		func() error {
			return p.Do(ctx, func(c ldap.Client) error { // nested: a bind inside Do
				return p.Authenticate(ctx, ldaptest.UserDN(6), ldaptest.UserPassword(6))
			})
		},
	}
	var wg sync.WaitGroup
	var ok, closed atomic.Int64
	start := make(chan struct{})
	for g := range 15 {
		wg.Go(func() {
			<-start
			for i := 0; i < 200; i++ {
				switch err := calls[(g+i)%len(calls)](); {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, ldapconn.ErrClosed):
					closed.Add(1)
					return
				default:
					t.Errorf("call %d while closing: %v; want success or ErrClosed", (g+i)%len(calls), err)
					return
				}
			}
		})
	}
	close(start)
	waitFor(t, "some calls to succeed before Close", func() bool { return ok.Load() >= 30 })
	closeCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := p.Close(closeCtx); err != nil {
		t.Fatalf("Close under load = %v; want nil once every caller gave its connection back", err)
	}
	wg.Wait()
	if closed.Load() == 0 {
		t.Fatalf("%d calls succeeded and none saw ErrClosed: Close did not happen under load", ok.Load())
	}
	if st, ast := p.Stats(), p.AuthStats(); st.Open != 0 || ast.Open != 0 {
		t.Fatalf("after Close: %d service and %d bind-lane connections open", st.Open, ast.Open)
	}
}

// Bad input to the entry points a caller uses with its own identities is
// refused before anything is sent, with an error that says which.
func TestContractBadCredentialsAreRefusedAtOnce(t *testing.T) {
	srv := embedded(t)
	p := newPool(t, srv.URL(), admin)
	ctx := contractCtx(t)
	nop := func(ldap.Client) error { return nil }
	for _, tc := range []struct {
		name  string
		creds ldapconn.Credentials
		want  error
	}{
		{"a password without a DN", ldapconn.Credentials{Password: "secret"}, ldapconn.ErrBadRequest},
		{"a DN without a password", ldapconn.Credentials{DN: ldaptest.UserDN(1)}, ldapconn.ErrEmptyPassword},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := srv.Stats().Binds
			if _, err := p.LeaseAs(ctx, tc.creds); !errors.Is(err, tc.want) || !errors.Is(err, ldapconn.ErrBadRequest) {
				t.Errorf("LeaseAs = %v; want %v, which is ErrBadRequest", err, tc.want)
			}
			if err := p.DoAs(ctx, tc.creds, nop); !errors.Is(err, tc.want) || !errors.Is(err, ldapconn.ErrBadRequest) {
				t.Errorf("DoAs = %v; want %v, which is ErrBadRequest", err, tc.want)
			}
			if n := srv.Stats().Binds - before; n != 0 {
				t.Errorf("%d binds sent for bad credentials; want none", n)
			}
		})
	}
}
