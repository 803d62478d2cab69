package ldapconn_test

// Tests written by porting services' code onto the pool: the faults a service meets in production.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/fairpool/ldappool/ldapconn"
	"github.com/fairpool/ldappool/ldaptest"
)

// blackhole accepts connections and never answers (a hung directory, a
// firewall that completes the handshake): it reads and drops.
func blackhole(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				buf := make([]byte, 4096)
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
				}
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return "ldap://" + ln.Addr().String()
}

// A server that accepts and never answers: every entry point returns within
// a few seconds (the pool's dial budget: connect timeout, twice the operation
// timeout and the retry delay, per try and server, and a second; 2 s here,
// then the operation), with an error matching
// context.DeadlineExceeded that is not taken for a wrong password; a second,
// healthy server then serves.
func TestAdoptingServerThatNeverAnswers(t *testing.T) {
	hole := blackhole(t)
	p := newPool(t, hole, admin, quiet, ldapconn.WithOperationTimeout(300*time.Millisecond),
		ldapconn.WithConnectTimeout(300*time.Millisecond))
	// Each call has a budget of its own: a shared one is spent by the calls
	// before (the server's backoff grows with each failure), and the later
	// ones would fail on it rather than on the server.
	var ctx context.Context
	calls := map[string]func() error{
		"Search":       func() error { _, err := p.Search(ctx, searchUID("user1")); return err },
		"Authenticate": func() error { return p.Authenticate(ctx, ldaptest.UserDN(1), ldaptest.UserPassword(1)) },
		"Ping":         func() error { return p.Ping(ctx) },
		"Lease": func() error {
			l, err := p.Lease(ctx)
			if err == nil {
				l.Release()
			}
			return err
		},
	}
	for name, call := range calls {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(t.Context(), 10*time.Second)
		start := time.Now()
		err := call()
		took := time.Since(start)
		cancel()
		t.Logf("%s against a silent server: %v after %v", name, err, took.Round(time.Millisecond))
		if err == nil {
			t.Errorf("%s against a silent server succeeded", name)
			continue
		}
		if took > 5*time.Second {
			t.Errorf("%s took %v; want it bounded by the dial budget and the operation timeout", name, took)
		}
		if errors.Is(err, ldapconn.ErrInvalidCredentials) || errors.Is(err, ldapconn.ErrBadRequest) {
			t.Errorf("%s = %v: a silent server taken for the caller's error", name, err)
		}
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, ldapconn.ErrServerDown) {
			t.Errorf("%s = %v; want a timeout or ErrServerDown", name, err)
		}
	}
	srv := embedded(t)
	q := newPool(t, hole+","+srv.URL(), admin, quiet, ldapconn.WithOperationTimeout(300*time.Millisecond),
		ldapconn.WithConnectTimeout(300*time.Millisecond))
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for i := range 5 {
		if _, err := q.Search(ctx, searchUID("user1")); err != nil && i > 0 {
			t.Errorf("Search %d with a healthy second server: %v", i, err)
		}
		if err := q.Authenticate(ctx, ldaptest.UserDN(2), ldaptest.UserPassword(2)); err != nil && i > 0 {
			t.Errorf("Authenticate %d with a healthy second server: %v", i, err)
		}
	}
}

// A directory at its connection limit closes new connections unanswered.
// A pool that already has connections open keeps serving on them: callers
// willing to wait are served, and the books balance.
func TestAdoptingServerAtItsConnectionLimit(t *testing.T) {
	srv := embedded(t, ldaptest.WithMaxConnections(2))
	p := newPool(t, srv.URL(), admin, quiet, ldapconn.WithMaxSize(4), ldapconn.WithOpsPerConn(1), ldapconn.WithAuthPool(1))
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	// The bind lane takes one of the two; the service pool gets one more.
	if err := p.Authenticate(ctx, ldaptest.UserDN(1), ldaptest.UserPassword(1)); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Search(ctx, searchUID("user1")); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8*25)
	for g := range 8 {
		wg.Go(func() {
			for i := range 25 {
				_, err := p.Search(ctx, searchUID(fmt.Sprint("user", (g*25+i)%ldaptest.Users)))
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	n := 0
	var first []string
	for err := range errs {
		n++
		if len(first) < 5 {
			first = append(first, err.Error())
		}
		if !ldapconn.IsRetryable(err) && !errors.Is(err, ldapconn.ErrServerDown) {
			t.Errorf("unclassified error at the connection limit: %v", err)
		}
	}
	t.Logf("%d of 200 searches failed at the connection limit; server refused %d connections; first errors:\n%s",
		n, srv.Stats().Refused, strings.Join(first, "\n"))
	if n > 0 {
		t.Errorf("%d of 200 searches failed while a connection to the server stayed open and answering; want every caller served", n)
	}
}

// The server resets every connection while searches are in flight, once:
// Search runs each read again on a fresh connection, so no caller sees it
// (README: "running a read again on a fresh connection when the pooled one
// died"), with one server and with two (a hedge lane).
func TestAdoptingResetMidSearch(t *testing.T) {
	for _, two := range []bool{false, true} {
		t.Run(fmt.Sprint("two servers ", two), func(t *testing.T) {
			srv := embedded(t)
			srv.SetLatency(40 * time.Millisecond)
			servers := srv.URL()
			if two {
				second := embedded(t)
				second.SetLatency(40 * time.Millisecond)
				servers += "," + second.URL()
			}
			p := newPool(t, servers, admin, quiet, ldapconn.WithMaxSize(3))
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			var wg sync.WaitGroup
			errs := make(chan error, 12)
			for g := range 12 {
				wg.Go(func() {
					_, err := p.Search(ctx, searchUID(fmt.Sprint("user", g)))
					errs <- err
				})
			}
			// Mid-search: the server has a search (it counts them as they
			// arrive) and holds it 40 ms.
			waitFor(t, "a search at the server", func() bool { return srv.Stats().Searches > 0 })
			dropped := srv.DropConnections()
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Errorf("Search with its connection reset mid-search: %v", err)
				}
			}
			t.Logf("%d connections reset", dropped)
		})
	}
}

// Close while callers wait for a connection on every entry point: each is
// answered (ErrClosed, or served), Close returns, and afterwards every
// entry point fails with ErrClosed.
func TestAdoptingCloseWhileCallersWait(t *testing.T) {
	srv := embedded(t)
	srv.SetLatency(30 * time.Millisecond)
	p, err := ldapconn.NewPool(srv.URL(), admin, quiet, ldapconn.WithMaxSize(1), ldapconn.WithOpsPerConn(1), ldapconn.WithAuthPool(1))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	held, err := p.Lease(ctx)
	if err != nil {
		t.Fatal(err)
	}
	user := ldapconn.Credentials{DN: ldaptest.UserDN(5), Password: ldaptest.UserPassword(5)}
	entries := map[string]func() error{
		"Lease": func() error {
			l, err := p.Lease(ctx)
			if err == nil {
				l.Release()
			}
			return err
		},
		"LeaseAs": func() error {
			l, err := p.LeaseAs(ctx, user)
			if err == nil {
				l.Release()
			}
			return err
		},
		"Do":           func() error { return p.Do(ctx, func(ldap.Client) error { return nil }) },
		"DoAs":         func() error { return p.DoAs(ctx, user, func(ldap.Client) error { return nil }) },
		"Search":       func() error { _, err := p.Search(ctx, searchUID("user1")); return err },
		"Compare":      func() error { _, err := p.Compare(ctx, ldaptest.UserDN(1), "uid", "user1"); return err },
		"Ping":         func() error { return p.Ping(ctx) },
		"Authenticate": func() error { return p.Authenticate(ctx, ldaptest.UserDN(2), ldaptest.UserPassword(2)) },
	}
	type result struct {
		name string
		err  error
	}
	results := make(chan result, 3*len(entries))
	for name, call := range entries {
		for range 3 {
			go func() { results <- result{name, call()} }()
		}
	}
	waitFor(t, "the callers to queue", func() bool { return p.Stats().Waiters >= 3*(len(entries)-1) })
	closed := make(chan error, 1)
	go func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer ccancel()
		closed <- p.Close(cctx)
	}()
	for range 3 * len(entries) {
		select {
		case r := <-results:
			if r.err != nil && !errors.Is(r.err, ldapconn.ErrClosed) {
				t.Errorf("%s waiting at Close = %v; want ErrClosed", r.name, r.err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("a caller waiting at Close was not answered within 5 s")
		}
	}
	held.Release()
	if err := <-closed; err != nil {
		t.Errorf("Close = %v", err)
	}
	for name, call := range entries {
		if err := call(); !errors.Is(err, ldapconn.ErrClosed) {
			t.Errorf("%s after Close = %v; want ErrClosed", name, err)
		}
	}
	if err := p.Close(ctx); err != nil && !errors.Is(err, ldapconn.ErrClosed) {
		t.Errorf("second Close = %v", err)
	}
}

// Bad values in ConfigFromEnv are refused with an error naming the variable
// (or, for a value that parses but cannot be used, the Config field, as
// Config.Options documents) and its value, matching ErrBadRequest.
func TestAdoptingConfigFromEnvNamesWhatIsWrong(t *testing.T) {
	cases := map[string]string{
		"MAX_SIZE":          "ten",
		"MAX_IDLE":          "-",
		"CONNECT_TIMEOUT":   "10",
		"OPERATION_TIMEOUT": "5 s",
		"WAIT_TIMEOUT":      "1y",
		"FAIL_FAST":         "yes please",
		"STRATEGY":          "random",
		"RETRY_MAX":         "99999999999999999999",
		"MAX_LIFETIME":      "9999999999h",
	}
	for name, value := range cases {
		t.Run(name, func(t *testing.T) {
			t.Setenv("A6_SERVERS", "ldap://127.0.0.1:1")
			t.Setenv("A6_"+name, value)
			c, err := ldapconn.ConfigFromEnv("A6")
			if err == nil {
				_, err = ldapconn.NewPoolFromConfig(c)
			}
			var oe *ldapconn.OptionError
			if err == nil || !errors.Is(err, ldapconn.ErrBadRequest) || !errors.As(err, &oe) {
				t.Fatalf("A6_%s=%q: %v; want an *OptionError matching ErrBadRequest", name, value, err)
			}
			field := "Config."
			for _, w := range strings.Split(strings.ToLower(name), "_") {
				field += strings.ToUpper(w[:1]) + w[1:]
			}
			if !strings.Contains(err.Error(), "A6_"+name) && !strings.Contains(err.Error(), field) || !strings.Contains(err.Error(), value) {
				t.Errorf("A6_%s=%q: error %q does not name the variable and its value", name, value, err)
			}
		})
	}
}
