package engine_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/fairpool/ldappool/engine"
	"github.com/fairpool/ldappool/internal/logbuf"
	"github.com/fairpool/ldappool/lease"
)

// liveConnector counts a connection as live from the start of its Connect to
// the return of its Close, as a server counts sockets, and records the
// highest count. Its Close takes closeDelay and reports a second Close of one
// connection.
type liveConnector struct {
	rebindingConnector
	closeDelay    time.Duration
	validateDelay time.Duration
	live, peak    atomic.Int64
	double        atomic.Int64
	mu            sync.Mutex
	closed        map[*fakeConn]bool
}

func (c *liveConnector) Connect(ctx context.Context, key engine.Key) (*fakeConn, error) {
	c.peak.Store(max(c.peak.Load(), c.live.Add(1)))
	conn, err := c.rebindingConnector.Connect(ctx, key)
	if err != nil {
		c.live.Add(-1)
	}
	return conn, err
}

func (c *liveConnector) Validate(ctx context.Context, conn *fakeConn) error {
	if c.validateDelay > 0 {
		time.Sleep(c.validateDelay)
	}
	return c.rebindingConnector.Validate(ctx, conn)
}

func (c *liveConnector) Close(conn *fakeConn) error {
	c.mu.Lock()
	if c.closed == nil {
		c.closed = map[*fakeConn]bool{}
	}
	if c.closed[conn] {
		c.mu.Unlock()
		c.double.Add(1)
		return errors.New("closed twice")
	}
	c.closed[conn] = true
	c.mu.Unlock()
	if c.closeDelay > 0 {
		time.Sleep(c.closeDelay)
	}
	c.live.Add(-1)
	return c.rebindingConnector.Close(conn)
}

// The crash an adversarial run found: a connection that expired while being
// validated on release was closed when a waiter popped it, left marked idle,
// and closed again by the branch that trims a pool grown under its soft
// limit; the counts went negative and the next lease for another key
// panicked the supervisor.
func TestExpiredDuringValidationIsClosedOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fc := &liveConnector{validateDelay: 120 * time.Millisecond}
		p := newPool(t, fc, engine.WithMaxSize(1), engine.WithSoftLimit(3),
			engine.WithMaxLifetime(50*time.Millisecond), engine.WithLifetimeJitter(0),
			engine.WithValidateOnRelease())
		ls := []any{mustLease(t, p, keyA), mustLease(t, p, keyA), mustLease(t, p, keyA)}
		first := ls[0].(interface{ Release() })
		first.Release()
		synctest.Wait()
		fourth := leaseAsync(t.Context(), p, keyA)
		time.Sleep(200 * time.Millisecond) // the validation ends, past the lifetime
		synctest.Wait()
		if n := fc.double.Load(); n != 0 {
			t.Fatalf("Close called twice on %d connections", n)
		}
		st := p.Stats()
		if st.Idle < 0 || st.Open != st.Idle+st.InUse+st.Checking+st.Closing || int64(st.Open) != fc.live.Load() {
			t.Fatalf("stats open %d idle %d in use %d checking %d closing %d; %d live at the connector",
				st.Open, st.Idle, st.InUse, st.Checking, st.Closing, fc.live.Load())
		}
		r := <-fourth
		if r.err != nil {
			t.Fatalf("queued Lease(A): %v", r.err)
		}
		r.l.Release()
		other, err := p.Lease(t.Context(), keyB) // panicked the supervisor before
		if err != nil {
			t.Fatalf("Lease(B): %v", err)
		}
		other.Release()
		for _, l := range ls[1:] {
			l.(interface{ Release() }).Release()
		}
	})
}

// The hard maximum counts a connection until its Close returns: with a slow
// close, lease+discard loops never have more live connections at the
// connector than WithMaxSize.
func TestMaxSizeHoldsAtTheConnectorUnderChurn(t *testing.T) {
	for _, tc := range []struct {
		name string
		max  int
		opts []engine.Option
	}{
		{"max 2 discard loops", 2, nil},
		{"max 4 soft limit 6 short lifetimes", 4, []engine.Option{engine.WithSoftLimit(6),
			engine.WithMaxLifetime(3 * time.Millisecond), engine.WithPrunePeriod(time.Millisecond)}},
		{"max 3 no pooling", 3, []engine.Option{engine.WithMaxIdle(0)}},
		{"max 4 validate and rebind", 4, []engine.Option{engine.WithValidateOnLease(),
			engine.WithValidatePeriod(2 * time.Millisecond), engine.WithMinIdle(2), engine.WithDefaultKey(keyA)}},
		{"max 3 shares at depth 4", 3, []engine.Option{engine.WithOpsPerConn(4)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				fc := &liveConnector{closeDelay: 2 * time.Millisecond}
				fc.dialDelay = time.Millisecond
				p := newPool(t, fc, append([]engine.Option{engine.WithMaxSize(tc.max)}, tc.opts...)...)
				keys := []engine.Key{keyA, keyB, {Name: "C"}}
				var wg sync.WaitGroup
				for g := range 3 * tc.max {
					wg.Go(func() {
						for i := range 50 {
							take := p.Lease
							if i%3 != 0 {
								take = p.Share // two shares a lease (at depth 1 a share is a lease)
							}
							l, err := take(t.Context(), keys[(g+i)%len(keys)])
							if err != nil {
								t.Errorf("Lease: %v", err)
								return
							}
							time.Sleep(time.Millisecond)
							if i%2 == 0 {
								l.Discard(errors.New("churn"))
							} else {
								l.Release()
							}
						}
					})
				}
				wg.Wait()
				limit := int64(tc.max)
				if len(tc.opts) > 0 && strings.Contains(tc.name, "soft limit") {
					limit = 6
				}
				if peak := fc.peak.Load(); peak > limit {
					t.Fatalf("%d connections live at the connector at once; the limit is %d", peak, limit)
				}
				if n := fc.double.Load(); n != 0 {
					t.Fatalf("Close called twice on %d connections", n)
				}
			})
		})
	}
}

var soakSeeds = flag.Int("soak-seeds", 6, "how many seeds TestRandomSoakKeepsTheArithmetic runs (make soak: 500)")

// A random soak with every feature on; the package's invariant check runs
// after every message of the supervisor, and at the end every connection
// opened was closed exactly once and every lease was answered. Each seed
// takes about 50ms under the race detector.
func TestRandomSoakKeepsTheArithmetic(t *testing.T) {
	for seed := range uint64(max(*soakSeeds, 1)) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rng := rand.New(rand.NewPCG(seed, 7))
				var rmu sync.Mutex
				chance := func(p float64) bool { rmu.Lock(); defer rmu.Unlock(); return rng.Float64() < p }
				fc := &liveConnector{closeDelay: time.Millisecond, validateDelay: 3 * time.Millisecond}
				fc.dialDelay = time.Millisecond
				fc.dialErr = func(engine.Key) error {
					if chance(0.1) {
						return errors.New("random dial failure")
					}
					return nil
				}
				p, err := engine.New(fc, engine.WithMaxSize(3), engine.WithSoftLimit(5),
					engine.WithMaxLifetime(4*time.Millisecond), engine.WithLifetimeJitter(0),
					engine.WithValidateOnRelease(), engine.WithValidatePeriod(2*time.Millisecond),
					engine.WithPrunePeriod(time.Millisecond), engine.WithMinIdle(1), engine.WithDefaultKey(keyA),
					engine.WithMaxDialing(2), engine.WithOpsPerConn(3))
				if err != nil {
					t.Fatal(err)
				}
				keys := []engine.Key{keyA, keyB, {Name: "C"}}
				var answered, asked atomic.Int64
				var wg sync.WaitGroup
				for g := range 12 {
					wg.Go(func() {
						for i := range 40 {
							ctx, cancel := context.WithCancel(t.Context())
							if chance(0.2) {
								ctx, cancel = context.WithTimeout(t.Context(), time.Duration(1+i%3)*time.Millisecond)
							}
							asked.Add(1)
							take := p.Lease
							if chance(0.5) {
								take = p.Share
							}
							l, err := take(ctx, keys[(g+i)%len(keys)])
							answered.Add(1)
							cancel()
							if err != nil {
								continue
							}
							time.Sleep(time.Millisecond)
							switch {
							case chance(0.15):
								l.Discard(errors.New("broken"))
							case chance(0.05):
								l.Conn().setBad()
								l.Release()
							default:
								l.Release()
							}
						}
					})
				}
				wg.Wait()
				if err := p.Close(context.Background()); err != nil {
					t.Fatalf("Close: %v", err)
				}
				st := p.Stats()
				opened, closed := fc.counts()
				if opened != closed || uint64(opened) != st.Opened() || st.Closed != st.Opened() || fc.live.Load() != 0 {
					t.Fatalf("connector opened %d closed %d (live %d); pool counted opened %d closed %d",
						opened, closed, fc.live.Load(), st.Opened(), st.Closed)
				}
				if asked.Load() != answered.Load() || fc.double.Load() != 0 {
					t.Fatalf("%d leases asked, %d answered; %d double closes", asked.Load(), answered.Load(), fc.double.Load())
				}
				if peak := fc.peak.Load(); peak > 5 {
					t.Fatalf("%d live at once past the soft limit 5", peak)
				}
			})
		})
	}
}

// A refused service password stops the background dials of WithMinIdle after
// one round, logged once; a caller's lease still tries, and once the key
// works again the pool warms up again.
func TestRejectedKeyStopsBackgroundDials(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var wrong atomic.Bool
		wrong.Store(true)
		fc := &fakeConnector{}
		fc.dialErr = func(engine.Key) error {
			if wrong.Load() {
				return fmt.Errorf("invalid credentials: %w", engine.ErrKeyRejected)
			}
			return nil
		}
		var logs logbuf.Buffer
		p := newPool(t, fc, engine.WithMinIdle(2), engine.WithDefaultKey(keyA), engine.WithLogger(newTextLogger(&logs)))
		time.Sleep(time.Minute)
		synctest.Wait()
		if d := fc.dials("A"); d > 2 {
			t.Fatalf("%d background dials with a refused password in a minute; want at most the first round of 2", d)
		}
		if n := strings.Count(logs.String(), "credentials refused"); n != 1 {
			t.Fatalf("the refusal was logged %d times; want once:\n%s", n, logs.String())
		}
		before := fc.dials("A")
		if _, err := p.Lease(t.Context(), keyA); !errors.Is(err, engine.ErrKeyRejected) {
			t.Fatalf("Lease = %v; want the refusal", err)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if d := fc.dials("A") - before; d != 1 {
			t.Fatalf("%d dials after a caller asked once; want its one", d)
		}
		wrong.Store(false)
		mustLease(t, p, keyA).Release()
		time.Sleep(time.Second)
		synctest.Wait()
		if st := p.Stats(); st.Idle < 2 {
			t.Fatalf("idle %d after the key worked again; want at least WithMinIdle's 2", st.Idle)
		}
	})
}

// Each Close honours its own context, and after Close every entry point
// fails at once with ErrClosed.
func TestCloseHonoursEachCallsContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fc := &fakeConnector{}
		p, err := engine.New(fc)
		if err != nil {
			t.Fatal(err)
		}
		held := mustLease(t, p, keyA)
		first := make(chan error, 1)
		go func() { first <- p.Close(context.Background()) }()
		synctest.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		err = p.Close(ctx)
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 100*time.Millisecond {
			t.Fatalf("second Close = %v after %v; want its own deadline after 100ms", err, time.Since(start))
		}
		if err := <-first; err != nil {
			t.Fatalf("first Close = %v; want nil once the forced close ended", err)
		}
		held.Release() // closed under its holder: nothing happens
		if _, err := p.Lease(t.Context(), keyA); !errors.Is(err, engine.ErrClosed) {
			t.Fatalf("Lease after Close = %v; want ErrClosed", err)
		}
		err = p.Do(t.Context(), keyA, func(*lease.Lease[*fakeConn]) error { return nil })
		if !errors.Is(err, engine.ErrClosed) {
			t.Fatalf("Do after Close = %v; want ErrClosed", err)
		}
		if opened, closed := fc.counts(); opened != closed {
			t.Fatalf("opened %d, closed %d", opened, closed)
		}
	})
}

// Do's retry keeps both errors recognisable: the operation's and the
// lease's.
func TestDoRetryWrapsBothErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fc := &fakeConnector{}
		refused := errors.New("refused")
		p := newPool(t, fc)
		mustLease(t, p, keyA).Release()
		fc.dialErr = func(engine.Key) error { return refused }
		err := p.Do(t.Context(), keyA, func(*lease.Lease[*fakeConn]) error { return engine.ErrBroken })
		var ce *engine.ConnectError
		if !errors.Is(err, engine.ErrBroken) || !errors.Is(err, refused) || !errors.As(err, &ce) {
			t.Fatalf("Do = %v; want ErrBroken and the dial's error, both", err)
		}
	})
}

// A Lease that races Close gets an answer: a connection, or ErrClosed. The
// pool used to stop its loop with the lease still in the mailbox, and the
// caller, with no deadline, waited for good.
func TestLeaseRacingCloseIsAnswered(t *testing.T) {
	for i := range 300 {
		p, err := engine.New(&fakeConnector{})
		if err != nil {
			t.Fatal(err)
		}
		answered := make(chan error, 1)
		go func() {
			l, err := p.Lease(context.Background(), keyA)
			if err == nil {
				l.Release()
			}
			answered <- err
		}()
		if err := p.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-answered:
			if err != nil && !errors.Is(err, engine.ErrClosed) {
				t.Fatalf("iteration %d: Lease = %v; want a lease or ErrClosed", i, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("iteration %d: Lease never returned after Close", i)
		}
	}
}

// A BackOff that says Stop does not make background dials spin.
func TestBackOffStopDoesNotSpin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fc := &fakeConnector{}
		fc.dialErr = func(engine.Key) error { return errors.New("down") }
		newPool(t, fc, engine.WithMinIdle(1), engine.WithDefaultKey(keyA),
			engine.WithBackOff(func() backoff.BackOff { return &backoff.StopBackOff{} }))
		time.Sleep(time.Minute)
		synctest.Wait()
		if d := fc.dials("A"); d > 4 {
			t.Fatalf("%d background dials in a minute with a BackOff that says Stop; want a few", d)
		}
	})
}

// Two dials for one key that finish out of order still serve the waiters in
// their order: the first connection goes to the oldest waiter.
func TestDialsFinishingOutOfOrderKeepFIFO(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var n atomic.Int32
		fc := &slowFirstConnector{n: &n}
		p := newPool(t, fc)
		first := leaseAsync(t.Context(), p, keyA)
		synctest.Wait()
		second := leaseAsync(t.Context(), p, keyA)
		synctest.Wait()
		time.Sleep(1500 * time.Millisecond) // the second dial (1 s) is done, the first (2 s) is not
		synctest.Wait()
		select {
		case r := <-first:
			if r.err != nil {
				t.Fatal(r.err)
			}
			r.l.Release()
		default:
			t.Fatal("the oldest waiter was not served by the first connection dialed")
		}
		if r := <-second; r.err != nil {
			t.Fatal(r.err)
		} else {
			r.l.Release()
		}
	})
}

// slowFirstConnector's first dial takes 2 s, later ones 1 s.
type slowFirstConnector struct {
	fakeConnector
	n *atomic.Int32
}

func (c *slowFirstConnector) Connect(ctx context.Context, key engine.Key) (*fakeConn, error) {
	d := time.Second
	if c.n.Add(1) == 1 {
		d = 2 * time.Second
	}
	select {
	case <-time.After(d):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return c.fakeConnector.Connect(ctx, key)
}
