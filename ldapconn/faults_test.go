package ldapconn_test

// The fault suite (issue 10): each fault a network or a directory makes,
// what a caller sees through Search, Do and Authenticate, that the pool
// recovers once the fault is gone, and that no connection leaks. The
// figures the tests log are in docs/reliability.md. A frozen primary with a
// secondary is TestFrozenPrimaryAtDefaultOptions (stall_test.go).

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/fairpool/ldappool/ldapconn"
	"github.com/fairpool/ldappool/ldaptest"
	"github.com/fairpool/ldappool/ldaptest/slapd"
)

// faultEnv is the embedded server behind a toxiproxy proxy, and a pool on
// the proxy.
type faultEnv struct {
	srv *ldaptest.Server
	fp  *faultProxy
	p   *ldapconn.Pool
}

func newFaultEnv(t *testing.T, opts ...ldapconn.Option) *faultEnv {
	t.Helper()
	srv := embedded(t)
	fp := newFaultProxy(t, srv.URL())
	return &faultEnv{srv: srv, fp: fp, p: faultPool(t, fp.URL(), opts...)}
}

func (e *faultEnv) serverOpen() int { return int(e.srv.Stats().Open) }

// within runs f under a context of d and returns its error and how long it
// took.
func within(d time.Duration, f func(ctx context.Context) error) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	start := time.Now()
	err := f(ctx)
	return time.Since(start), err
}

func search(p *ldapconn.Pool, req *ldap.SearchRequest) func(context.Context) error {
	return func(ctx context.Context) error {
		res, err := p.Search(ctx, req)
		if err == nil && len(res.Entries) == 0 {
			err = errors.New("the search found nothing")
		}
		return err
	}
}

func authenticate(p *ldapconn.Pool, i int) func(context.Context) error {
	return func(ctx context.Context) error {
		return p.Authenticate(ctx, ldaptest.UserDN(i), ldaptest.UserPassword(i))
	}
}

// recovery waits, from the fault's removal, until a search with a 5s
// context succeeds, then an Authenticate; it returns the time that took.
func recovery(t *testing.T, p *ldapconn.Pool, removed time.Time) time.Duration {
	t.Helper()
	for attempt := 1; ; attempt++ {
		_, err := within(5*time.Second, search(p, searchUID("user5")))
		if err == nil {
			break
		}
		if attempt == 3 || !ldapconn.IsRetryable(err) {
			t.Fatalf("search %d after the fault was removed: %v", attempt, err)
		}
	}
	took := time.Since(removed)
	if _, err := within(5*time.Second, authenticate(p, 5)); err != nil {
		t.Fatalf("Authenticate after the fault was removed: %v", err)
	}
	return took
}

// Latency of 100ms per answer: every call is that much slower and
// succeeds; nothing is marked down.
func TestFaultLatency(t *testing.T) {
	e := newFaultEnv(t, ldapconn.WithMaxSize(2))
	warm(t, e.p, 2)
	e.fp.add(t, "latency", "latency", 1, map[string]int64{"latency": 100})
	for i := range 4 {
		took, err := within(5*time.Second, search(e.p, searchUID(fmt.Sprint("user", i))))
		if err != nil || took < 100*time.Millisecond {
			t.Fatalf("search %d with 100ms latency: %v after %v; want success after at least 100ms", i, err, took)
		}
	}
	// The bind lane dials (a bind answered late) and binds (late again).
	took, err := within(5*time.Second, authenticate(e.p, 3))
	if err != nil || took < 200*time.Millisecond {
		t.Fatalf("Authenticate with 100ms latency: %v after %v; want success after at least 200ms", err, took)
	}
	if s := e.p.Servers()[0]; !s.Up || s.Failures != 0 {
		t.Fatalf("server %+v; want a slow server left up", s)
	}
	e.fp.remove(t, "latency")
	t.Logf("latency: Authenticate took %v; recovery %v", took, recovery(t, e.p, time.Now()))
	closeAndCheck(t, e.p, e.serverOpen)
}

// A link of 100 KB/s: a search of 1,000 entries takes most of a second and
// succeeds.
func TestFaultLowBandwidth(t *testing.T) {
	e := newFaultEnv(t, ldapconn.WithMaxSize(1))
	warm(t, e.p, 1)
	fast, err := within(5*time.Second, search(e.p, everyone()))
	if err != nil {
		t.Fatal(err)
	}
	e.fp.add(t, "bandwidth", "bandwidth", 1, map[string]int64{"rate": 100})
	slow, err := within(10*time.Second, search(e.p, everyone()))
	if err != nil || slow < 300*time.Millisecond {
		t.Fatalf("search of every user at 100 KB/s: %v after %v; want success after at least 300ms", err, slow)
	}
	e.fp.remove(t, "bandwidth")
	t.Logf("low bandwidth: every user in %v, %v at 100 KB/s; recovery %v", fast, slow, recovery(t, e.p, time.Now()))
	closeAndCheck(t, e.p, e.serverOpen)
}

// A blackhole: the server's answers are dropped, the connections stay open.
// At default options the caller's own deadline ends each call; with a short
// operation timeout that ends it first and the error says the connection
// broke. Either way the call returns by its bound and the pool recovers.
func TestFaultBlackhole(t *testing.T) {
	tests := []struct {
		name      string
		opts      []ldapconn.Option
		ctx       time.Duration // each call's context
		broken    bool          // IsBroken: the operation timeout, not the caller's deadline
		authBound time.Duration // Authenticate's bound: the bind lane dials and binds
	}{
		{name: "caller deadline", ctx: 300 * time.Millisecond, authBound: 300 * time.Millisecond},
		{name: "operation timeout", opts: []ldapconn.Option{ldapconn.WithOperationTimeout(300 * time.Millisecond)},
			ctx: 5 * time.Second, broken: true, authBound: 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newFaultEnv(t, append(tt.opts, ldapconn.WithMaxSize(2))...)
			warm(t, e.p, 2)
			e.fp.add(t, "blackhole", "timeout", 1, map[string]int64{"timeout": 0})
			took, searchErr := within(tt.ctx, search(e.p, searchUID("user1")))
			if err := searchErr; !errors.Is(err, context.DeadlineExceeded) || ldapconn.IsBroken(err) != tt.broken {
				t.Fatalf("Search in a blackhole: %v (IsBroken %v); want context.DeadlineExceeded, IsBroken %v",
					err, ldapconn.IsBroken(err), tt.broken)
			}
			if took > time.Second+300*time.Millisecond {
				t.Fatalf("Search in a blackhole returned after %v; want about 300ms", took)
			}
			authTook, err := within(tt.authBound, authenticate(e.p, 1))
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, ldapconn.ErrServerDown) {
				t.Fatalf("Authenticate in a blackhole: %v; want context.DeadlineExceeded or ErrServerDown", err)
			}
			if !ldapconn.IsRetryable(err) {
				t.Fatalf("Authenticate in a blackhole: %v is not retryable", err)
			}
			e.fp.remove(t, "blackhole")
			t.Logf("blackhole, %s: Search %v after %v, Authenticate %v after %v; recovery %v",
				tt.name, searchErr, took, err, authTook, recovery(t, e.p, time.Now()))
			closeAndCheck(t, e.p, e.serverOpen)
		})
	}
}

// A connection broken under a search, by a reset (RST) or by the stream
// being cut after 2,000 bytes of a long answer: the search went out only
// once on that connection and is a read, so Search runs it again on a
// fresh connection and the caller sees the whole answer. The fault is
// removed as the fresh connection is dialed (the server answers binds
// 150ms late, which leaves time for that).
func TestFaultBrokenMidResponse(t *testing.T) {
	tests := []struct {
		name  string
		typ   string
		attrs map[string]int64
	}{
		{"connection reset", "reset_peer", map[string]int64{"timeout": 0}},
		{"response cut midway", "limit_data", map[string]int64{"bytes": 2000}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newFaultEnv(t, ldapconn.WithMaxSize(1))
			// toxiproxy resets with SO_LINGER 0 (a real RST) only on
			// connections made while the toxic is there: arm it harmless first.
			e.fp.add(t, tt.typ, tt.typ, 0, tt.attrs)
			warm(t, e.p, 1)
			e.srv.SetLatency(150 * time.Millisecond)
			e.fp.setToxicity(t, tt.typ, 1)
			type result struct {
				res *ldap.SearchResult
				err error
			}
			done := make(chan result, 1)
			start := time.Now()
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				res, err := e.p.Search(ctx, everyone())
				done <- result{res, err}
			}()
			waitFor(t, "the retry's dial", func() bool { return e.p.Stats().Dials >= 2 })
			e.fp.remove(t, tt.typ)
			r := <-done
			took := time.Since(start)
			if r.err != nil || len(r.res.Entries) != ldaptest.Users {
				t.Fatalf("Search broken mid-response: %v; want all %d users from the retry", r.err, ldaptest.Users)
			}
			e.srv.SetLatency(0)
			st := e.p.Stats()
			if st.Dials != 2 || st.Discards == 0 {
				t.Fatalf("stats %+v; want the broken connection discarded and one more dialed", st.Counters)
			}
			t.Logf("%s: the caller saw no error; the search took %v, the 150ms-late retry included", tt.name, took)
			closeAndCheck(t, e.p, e.serverOpen)
		})
	}
}

// A slow close: the proxy takes a second to pass on the server's close of
// every connection (a restart behind a middlebox that holds the FIN). The
// pooled connections look alive; a search on one hangs until the close
// arrives, then Search runs it on a fresh connection. Close does not wait
// for slow peers.
func TestFaultSlowClose(t *testing.T) {
	e := newFaultEnv(t, ldapconn.WithMaxSize(2))
	warm(t, e.p, 2)
	e.fp.add(t, "slow_close", "slow_close", 1, map[string]int64{"delay": 1000})
	e.srv.DropConnections()
	took, err := within(5*time.Second, search(e.p, searchUID("user1")))
	if err != nil {
		t.Fatalf("Search after the server closed with a slow close: %v; want the retry to succeed", err)
	}
	if took > 3*time.Second {
		t.Fatalf("Search took %v; want about the 1s slow close", took)
	}
	if _, err := within(5*time.Second, search(e.p, searchUID("user2"))); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	closeAndCheck(t, e.p, e.serverOpen)
	closed := time.Since(start)
	e.fp.remove(t, "slow_close")
	t.Logf("slow close: Search took %v (no error); Close and the server's side closed in %v", took, closed)
}

// A half-open connection: the peer vanished without closing, so a pooled
// connection takes requests and never answers, while the server itself is
// fine. Validating on lease (with a short validation timeout) finds it and
// dials anew before the caller's search runs; without that, a short
// operation timeout ends the caller's search with a broken-connection
// error, and the next call runs on a new connection.
func TestFaultHalfOpenConnection(t *testing.T) {
	const opTimeout = 300 * time.Millisecond
	tests := []struct {
		name    string
		opts    []ldapconn.Option
		firstOK bool          // the first call on the vanished connection succeeds
		bound   time.Duration // the first call returns within
	}{
		{name: "validate on lease", opts: []ldapconn.Option{ldapconn.WithValidateOnLease(),
			ldapconn.WithValidateTimeout(opTimeout), ldapconn.WithOperationTimeout(opTimeout)},
			firstOK: true, bound: 4 * opTimeout},
		{name: "operation timeout", opts: []ldapconn.Option{ldapconn.WithOperationTimeout(opTimeout)},
			bound: 4 * opTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := embedded(t)
			vp := newVanishingProxy(t, srv.URL())
			p := faultPool(t, vp.URL(), append(tt.opts, ldapconn.WithMaxSize(1))...)
			warm(t, p, 1)
			if n := vp.vanish(); n != 1 {
				t.Fatalf("vanished %d connections; want the 1 pooled", n)
			}
			took, err := within(5*time.Second, search(p, searchUID("user1")))
			switch {
			case tt.firstOK && err != nil:
				t.Fatalf("Search on a half-open pooled connection: %v; want it replaced before use", err)
			case !tt.firstOK && !(ldapconn.IsBroken(err) && errors.Is(err, context.DeadlineExceeded)):
				t.Fatalf("Search on a half-open pooled connection: %v; want the operation timeout (IsBroken)", err)
			case took > tt.bound:
				t.Fatalf("Search on a half-open pooled connection returned after %v; want within %v", took, tt.bound)
			}
			next, err2 := within(5*time.Second, search(p, searchUID("user2")))
			if err2 != nil {
				t.Fatalf("the next Search: %v", err2)
			}
			if s := p.Servers()[0]; !s.Up {
				t.Fatalf("server %+v; want a server with one dead connection left up", s)
			}
			t.Logf("half-open, %s: first Search %v after %v, the next in %v; dials %d",
				tt.name, err, took, next, p.Stats().Dials)
			closeAndCheck(t, p, func() int { return int(srv.Stats().Open) })
			// The silent connection is the proxy's until the pool closed it.
			waitFor(t, "the proxy's connections to close", func() bool { return vp.open() == 0 })
		})
	}
}

// A server at its connection limit (2) under a pool that may open 6: the
// server closes each connection past its limit unanswered. Callers wait
// and succeed on the two connections there are, or, WithFailFast, fail
// with a classifiable error; either way the pool does not spin dialing.
func TestFaultConnectionLimit(t *testing.T) {
	tests := []struct {
		name     string
		opts     []ldapconn.Option
		failFast bool
	}{
		{name: "callers wait"},
		{name: "fail fast", opts: []ldapconn.Option{ldapconn.WithFailFast()}, failFast: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := embedded(t, ldaptest.WithMaxConnections(2))
			srv.SetLatency(5 * time.Millisecond)
			p := faultPool(t, srv.URL(), append(tt.opts, ldapconn.WithMaxSize(6))...)
			warm(t, p, 2)
			const callers, rounds = 8, 25
			var ok, failed atomic.Int64
			errs := make(chan error, callers*rounds)
			start := time.Now()
			var wg sync.WaitGroup
			for c := range callers {
				wg.Go(func() {
					for i := range rounds {
						_, err := within(5*time.Second, search(p, searchUID(fmt.Sprint("user", c*rounds+i))))
						if err == nil {
							ok.Add(1)
							continue
						}
						failed.Add(1)
						errs <- err
					}
				})
			}
			wg.Wait()
			took := time.Since(start)
			close(errs)
			var exhausted, down, broken int
			for err := range errs {
				switch {
				case errors.Is(err, ldapconn.ErrExhausted):
					exhausted++
				case errors.Is(err, ldapconn.ErrServerDown):
					down++
				case ldapconn.IsBroken(err):
					broken++
				}
				if !tt.failFast {
					t.Fatalf("a waiting caller failed: %v", err)
				}
				if !errors.Is(err, ldapconn.ErrExhausted) && !errors.Is(err, ldapconn.ErrServerDown) && !ldapconn.IsBroken(err) {
					t.Fatalf("a fail-fast caller: %v; want ErrExhausted, ErrServerDown or a broken connection", err)
				}
				if !ldapconn.IsRetryable(err) {
					t.Fatalf("a fail-fast caller: %v is not retryable", err)
				}
			}
			st := p.Stats()
			if st.Dials >= 50 {
				t.Fatalf("%d dials in %v; want fewer than 50: the pool spins against the limit", st.Dials, took)
			}
			if ok.Load() == 0 {
				t.Fatal("no search succeeded at the connection limit")
			}
			t.Logf("connection limit, %s: %d succeeded, %d failed (ErrExhausted %d, ErrServerDown %d, broken %d) in %v; %d dials (%d failed), server refused %d",
				tt.name, ok.Load(), failed.Load(), exhausted, down, broken, took, st.Dials, st.DialErrors, srv.Stats().Refused)
			closeAndCheck(t, p, func() int { return int(srv.Stats().Open) })
		})
	}
}

// Close under load: 32 goroutines searching, and Close with 2s in the
// middle. Every call returns, with success, ErrClosed or its context's
// error; every goroutine ends; nothing stays open.
func TestFaultCloseUnderLoad(t *testing.T) {
	srv := embedded(t)
	srv.SetLatency(2 * time.Millisecond)
	p := faultPool(t, srv.URL(), ldapconn.WithMaxSize(4))
	var ok, closed, ctxErr atomic.Int64
	bad := make(chan error, 32)
	var wg sync.WaitGroup
	for c := range 32 {
		wg.Go(func() {
			for i := 0; ; i++ {
				_, err := within(5*time.Second, search(p, searchUID(fmt.Sprint("user", (c*7+i)%ldaptest.Users))))
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, ldapconn.ErrClosed):
					closed.Add(1)
					return
				case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
					ctxErr.Add(1)
				default:
					bad <- err
					return
				}
			}
		})
	}
	waitFor(t, "200 searches under load", func() bool { return ok.Load() >= 200 })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	err := p.Close(ctx)
	closeTook := time.Since(start)
	if err != nil {
		t.Fatalf("Close under load: %v; want nil within 2s", err)
	}
	ended := make(chan struct{})
	go func() { wg.Wait(); close(ended) }()
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("callers still running 5s after Close returned")
	}
	allEnded := time.Since(start)
	close(bad)
	for err := range bad {
		t.Errorf("a caller during Close: %v; want success, ErrClosed or a context error", err)
	}
	if closed.Load() != 32 {
		t.Fatalf("%d of 32 callers saw ErrClosed", closed.Load())
	}
	t.Logf("Close under load: %d searches succeeded, %d context errors, 32 callers ended with ErrClosed; Close took %v, every caller returned within %v",
		ok.Load(), ctxErr.Load(), closeTook, allEnded)
	closeAndCheck(t, p, func() int { return int(srv.Stats().Open) })
}

// slapd killed with SIGKILL under load and restarted on the same port,
// with one server in the list: callers using Search (Do) see no error. The
// pooled connections die with the process; Do retries each broken read on a
// fresh connection, and WithRetry(20, 100ms) keeps dialing through the
// restart (two seconds of tries) instead of failing callers as
// "every server is down".
func TestFaultSlapdKilledAndRestarted(t *testing.T) {
	s := slapd.Start(t)
	var count connCount
	px := newCountingProxy(t, s.URL(), &count)
	p := faultPool(t, px.URL(), ldapconn.WithMaxSize(4), ldapconn.WithRetry(20, 100*time.Millisecond))
	stop := make(chan struct{})
	ops, failed, errs, progress, wait := load(p, 8, 100000, stop)
	stopped := false
	defer func() {
		if !stopped {
			close(stop)
			wait()
		}
	}()
	waitOps(t, ops, progress, 200)
	before := ops.Load()
	killed := time.Now()
	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	restarted := time.Since(killed)
	if _, err := within(5*time.Second, search(p, searchUID("user7"))); err != nil {
		t.Fatalf("a search after the restart: %v", err)
	}
	recovered := time.Since(killed)
	waitOps(t, ops, progress, ops.Load()+200)
	close(stop)
	wait()
	stopped = true
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d of %d operations failed across the kill and restart; want none. First: %v", n, ops.Load(), <-errs)
	}
	t.Logf("slapd killed and restarted: %d operations (%d before the kill), none failed; slapd back in %v, a new search done %v after the kill; dials %d",
		ops.Load(), before, restarted, recovered, p.Stats().Dials)
	closeAndCheck(t, p, count.open)
}
