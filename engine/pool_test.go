package engine_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/fairpool/ldappool/engine"
	"github.com/fairpool/ldappool/lease"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newPool[C any](t *testing.T, conn engine.Connector[C], opts ...engine.Option) *engine.Pool[C] {
	t.Helper()
	p, err := engine.New(conn, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return p
}

func mustLease[C any](t *testing.T, p *engine.Pool[C], key engine.Key) *lease.Lease[C] {
	t.Helper()
	l, err := p.Lease(context.Background(), key)
	if err != nil {
		t.Fatalf("Lease(%s): %v", key, err)
	}
	return l
}

// leaseAsync starts a Lease in a goroutine and returns where its outcome
// lands. In a synctest bubble, synctest.Wait() after it guarantees the
// waiter is queued before the next one.
func leaseAsync[C any](ctx context.Context, p *engine.Pool[C], key engine.Key) chan leaseResult[C] {
	ch := make(chan leaseResult[C], 1)
	go func() {
		l, err := p.Lease(ctx, key)
		ch <- leaseResult[C]{l, err}
	}()
	return ch
}

type leaseResult[C any] struct {
	l   *lease.Lease[C]
	err error
}

func TestNewRejectsInvalidOptions(t *testing.T) {
	tests := []struct {
		opt  engine.Option
		want string
	}{
		{engine.WithMaxSize(0), "engine: WithMaxSize(0): size must be at least 1"},
		{engine.WithMinIdle(-1), "engine: WithMinIdle(-1): must not be negative"},
		{engine.WithMinIdle(2), "engine: WithMinIdle(2): needs WithDefaultKey"},
		{engine.WithMinIdle(11), "engine: WithMinIdle(11): must not exceed WithMaxSize"},
		{engine.WithSoftLimit(5), "engine: WithSoftLimit(5): must exceed WithMaxSize"},
		{engine.WithWaitTimeout(-time.Second), "engine: WithWaitTimeout(-1s): duration must not be negative"},
		{engine.WithMaxLifetime(0), "engine: WithMaxLifetime(0s): duration must be positive"},
		{engine.WithLifetimeJitter(1.5), "engine: WithLifetimeJitter(1.5): must be between 0 and 1"},
		{engine.WithMaxDialing(0), "engine: WithMaxDialing(0): must be at least 1"},
		{engine.WithConnectTimeout(-1), "engine: WithConnectTimeout(-1ns): duration must be positive"},
		{engine.WithLogger(nil), "engine: WithLogger(nil): logger must not be nil"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			p, err := engine.New[*fakeConn](&fakeConnector{}, tt.opt)
			if p != nil {
				t.Fatal("New returned a pool with an invalid option")
			}
			var oe *engine.OptionError
			if !errors.As(err, &oe) || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("New error = %v; want an *OptionError starting %q", err, tt.want)
			}
		})
	}
	if _, err := engine.New[*fakeConn](nil); err == nil {
		t.Fatal("New(nil connector) succeeded")
	}
}

func TestReleasedConnectionIsReused(t *testing.T) {
	fc := &fakeConnector{}
	p := newPool(t, fc)
	l := mustLease(t, p, keyA)
	first := l.Conn()
	if l.Reused() {
		t.Fatal("a freshly dialed connection reports Reused")
	}
	l.Release()
	l.Release() // twice is harmless
	l = mustLease(t, p, keyA)
	if l.Conn() != first || !l.Reused() {
		t.Fatalf("second lease got conn %d (reused %v); want conn %d reused", l.Conn().id, l.Reused(), first.id)
	}
	l.Release()
	st := p.Stats()
	if st.Leases != 2 || st.Dials != 1 || st.Open != 1 || st.Idle != 1 || st.Keys["A"].Idle != 1 {
		t.Fatalf("stats = %+v; want 2 leases, 1 dial, 1 open idle conn of key A", st)
	}
}

func TestIdleConnectionsAreLIFO(t *testing.T) {
	p := newPool(t, &fakeConnector{})
	l1, l2 := mustLease(t, p, keyA), mustLease(t, p, keyA)
	l1.Release()
	l2.Release()
	if l := mustLease(t, p, keyA); l.Conn() != l2.Conn() {
		t.Fatalf("got conn %d; want the most recently released, %d", l.Conn().id, l2.Conn().id)
	} else {
		l.Release()
	}
}

// TestFIFOAcrossKeys holds the only connection and queues waiters of two
// keys; each release must go to the oldest waiter, whatever its key.
func TestFIFOAcrossKeys(t *testing.T) {
	for _, rebind := range []bool{true, false} {
		name := map[bool]string{true: "rebind", false: "close and dial"}[rebind]
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var conn engine.Connector[*fakeConn] = &fakeConnector{}
				rc := &rebindingConnector{}
				if rebind {
					conn = rc
				}
				p := newPool(t, conn, engine.WithMaxSize(1))
				held := mustLease(t, p, keyA)
				order := []engine.Key{keyB, keyA, keyB, keyA}
				var chans []chan leaseResult[*fakeConn]
				for _, k := range order {
					chans = append(chans, leaseAsync(t.Context(), p, k))
					synctest.Wait()
				}
				if w := p.Stats().Waiters; w != len(order) {
					t.Fatalf("waiters = %d; want %d", w, len(order))
				}
				held.Release()
				for i, ch := range chans {
					r := <-ch
					if r.err != nil {
						t.Fatalf("waiter %d: %v", i, r.err)
					}
					if got := r.l.Conn().Key(); got != order[i].Name {
						t.Fatalf("waiter %d got a connection bound for %s; want %s", i, got, order[i].Name)
					}
					synctest.Wait()
					for _, later := range chans[i+1:] {
						if len(later) != 0 {
							t.Fatalf("a younger waiter was served before waiter %d released", i)
						}
					}
					r.l.Release()
				}
				st := p.Stats()
				// Every hand-over changes the key: A held, then B, A, B, A.
				if rebind && (st.Rebinds != 4 || st.Dials != 1) {
					t.Fatalf("rebinds = %d, dials = %d; want 4 rebinds on 1 dialed connection", st.Rebinds, st.Dials)
				}
				if !rebind && (st.Dials != 5 || st.Closed != 4) {
					t.Fatalf("dials = %d, closed = %d; want 5 dials and 4 closes (one a key change)", st.Dials, st.Closed)
				}
			})
		})
	}
}

func TestWaiterThatGivesUpLeavesTheQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPool(t, &fakeConnector{}, engine.WithMaxSize(1))
		held := mustLease(t, p, keyA)
		ctx, cancel := context.WithCancel(t.Context())
		gaveUp := leaseAsync(ctx, p, keyA)
		synctest.Wait()
		next := leaseAsync(t.Context(), p, keyA)
		synctest.Wait()
		cancel()
		r := <-gaveUp
		if !errors.Is(r.err, context.Canceled) {
			t.Fatalf("cancelled Lease error = %v; want context.Canceled", r.err)
		}
		synctest.Wait()
		if st := p.Stats(); st.Waiters != 1 || st.Timeouts != 1 {
			t.Fatalf("waiters = %d, timeouts = %d after a cancel; want 1 and 1", st.Waiters, st.Timeouts)
		}
		held.Release()
		if r := <-next; r.err != nil || r.l.Conn() != held.Conn() {
			t.Fatalf("the next waiter got %v, %v; want the released connection", r.l, r.err)
		} else {
			r.l.Release()
		}
	})
}

func TestWaitTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPool(t, &fakeConnector{}, engine.WithMaxSize(1), engine.WithWaitTimeout(3*time.Second))
		held := mustLease(t, p, keyA)
		start := time.Now()
		_, err := p.Lease(t.Context(), keyA)
		if !errors.Is(err, engine.ErrWaitTimeout) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Lease error = %v; want ErrWaitTimeout that is also DeadlineExceeded", err)
		}
		if waited := time.Since(start); waited != 3*time.Second {
			t.Fatalf("waited %v; want exactly the 3s wait timeout", waited)
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		if _, err := p.Lease(ctx, keyA); !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, engine.ErrWaitTimeout) {
			t.Fatalf("Lease with a 1s context = %v; want the context's DeadlineExceeded, not ErrWaitTimeout", err)
		}
		held.Release()
	})
}

func TestFailFast(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPool(t, &fakeConnector{}, engine.WithMaxSize(2), engine.WithFailFast())
		a, b := mustLease(t, p, keyA), mustLease(t, p, keyB)
		_, err := p.Lease(t.Context(), keyA)
		if !errors.Is(err, engine.ErrExhausted) || !strings.Contains(err.Error(), "2 in use") {
			t.Fatalf("Lease on a full fail-fast pool = %v; want ErrExhausted saying 2 in use", err)
		}
		a.Release()
		l, err := p.Lease(t.Context(), keyA)
		if err != nil {
			t.Fatalf("Lease after a release: %v", err)
		}
		l.Release()
		b.Release()
		if st := p.Stats(); st.Exhausted != 1 {
			t.Fatalf("exhausted = %d; want 1", st.Exhausted)
		}
	})
}

func TestSoftLimitGrowsAndShrinks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fc := &fakeConnector{}
		p := newPool(t, fc, engine.WithMaxSize(2), engine.WithSoftLimit(3))
		ls := []*lease.Lease[*fakeConn]{mustLease(t, p, keyA), mustLease(t, p, keyA), mustLease(t, p, keyA)}
		if st := p.Stats(); st.Open != 3 {
			t.Fatalf("open = %d with 3 leases; want 3 (soft limit)", st.Open)
		}
		fourth := leaseAsync(t.Context(), p, keyA)
		synctest.Wait()
		if st := p.Stats(); st.Waiters != 1 || st.Open != 3 {
			t.Fatalf("open = %d, waiters = %d; want the soft limit 3 to hold with 1 waiting", st.Open, st.Waiters)
		}
		ls[0].Release()
		r := <-fourth
		r.l.Release()
		ls[1].Release()
		ls[2].Release()
		synctest.Wait()
		if st := p.Stats(); st.Open != 2 || st.Idle != 2 {
			t.Fatalf("after all releases open = %d idle = %d; want back to max size 2", st.Open, st.Idle)
		}
	})
}

func TestConnectErrorReachesTheWaiter(t *testing.T) {
	boom := errors.New("connection refused")
	fc := &fakeConnector{dialErr: func(k engine.Key) error {
		if k.Name == "B" {
			return boom
		}
		return nil
	}}
	p := newPool(t, fc)
	_, err := p.Lease(t.Context(), keyB)
	var ce *engine.ConnectError
	if !errors.As(err, &ce) || ce.Key != "B" || !errors.Is(err, boom) {
		t.Fatalf("Lease error = %v; want a *ConnectError for B wrapping the dial error", err)
	}
	mustLease(t, p, keyA).Release()
}

func TestPanickingConnectorReachesTheCaller(t *testing.T) {
	fc := &fakeConnector{dialErr: func(engine.Key) error { panic("connector bug") }}
	p := newPool(t, fc)
	if _, err := p.Lease(t.Context(), keyA); err == nil || !strings.Contains(err.Error(), "connector bug") {
		t.Fatalf("Lease error = %v; want the connector's panic as an error", err)
	}
}

func TestSlowDialDoesNotStallAnotherKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fc := &fakeConnector{}
		p := newPool(t, fc, engine.WithMaxSize(4), engine.WithConnectTimeout(2*time.Hour))
		mustLease(t, p, keyA).Release() // one idle A connection
		fc.mu.Lock()
		fc.dialDelay = time.Hour
		fc.mu.Unlock()
		slow := leaseAsync(t.Context(), p, keyB) // dials for an hour
		synctest.Wait()
		start := time.Now()
		l := mustLease(t, p, keyA)
		if d := time.Since(start); d != 0 {
			t.Fatalf("lease of an idle A connection took %v behind a slow B dial; want 0", d)
		}
		l.Release()
		r := <-slow
		if r.err != nil || time.Since(start) != time.Hour {
			t.Fatalf("slow lease = %v after %v; want success after the 1h dial", r.err, time.Since(start))
		}
		r.l.Release()
	})
}

func TestDialsInFlightAreBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fc := &fakeConnector{dialDelay: time.Second}
		p := newPool(t, fc, engine.WithMaxSize(8), engine.WithMaxDialing(2))
		var chans []chan leaseResult[*fakeConn]
		for range 6 {
			chans = append(chans, leaseAsync(t.Context(), p, keyA))
		}
		synctest.Wait()
		if st := p.Stats(); st.Dialing != 2 {
			t.Fatalf("dialing = %d; want at most 2", st.Dialing)
		}
		for _, ch := range chans {
			r := <-ch
			r.l.Release()
		}
		if d := fc.dials("A"); d > 6 {
			t.Fatalf("%d dials for 6 leases", d)
		}
	})
}

func TestCloseFailsWaitersAndWaitsForLeases(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fc := &fakeConnector{}
		p, err := engine.New(fc, engine.WithMaxSize(1))
		if err != nil {
			t.Fatal(err)
		}
		held := mustLease(t, p, keyA)
		waiting := leaseAsync(t.Context(), p, keyA)
		synctest.Wait()
		closed := make(chan error)
		go func() { closed <- p.Close(t.Context()) }()
		if r := <-waiting; !errors.Is(r.err, engine.ErrClosed) {
			t.Fatalf("waiter got %v; want ErrClosed", r.err)
		}
		if _, err := p.Lease(t.Context(), keyA); !errors.Is(err, engine.ErrClosed) {
			t.Fatalf("Lease during Close = %v; want ErrClosed", err)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if len(closed) != 0 {
			t.Fatal("Close returned with a lease still out")
		}
		held.Release()
		if err := <-closed; err != nil {
			t.Fatalf("Close = %v", err)
		}
		if o, c := fc.counts(); o != c {
			t.Fatalf("opened %d, closed %d; want all closed", o, c)
		}
		if st := p.Stats(); !st.PoolClosed || st.Open != 0 {
			t.Fatalf("stats after Close = %+v", st)
		}
		if err := p.Close(t.Context()); err != nil {
			t.Fatalf("second Close = %v", err)
		}
	})
}

func TestCloseForcesLeasesWhenContextEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fc := &fakeConnector{}
		p, _ := engine.New(fc)
		held := mustLease(t, p, keyA)
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		start := time.Now()
		if err := p.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Close = %v; want DeadlineExceeded", err)
		}
		if time.Since(start) != 5*time.Second {
			t.Fatalf("Close waited %v; want the 5s context", time.Since(start))
		}
		if o, c := fc.counts(); o != 1 || c != 1 {
			t.Fatalf("opened %d closed %d; want the leased connection closed", o, c)
		}
		held.Release() // after the pool stopped: harmless, no double close
	})
}

func TestKeyNeverPrintsCredentials(t *testing.T) {
	k := engine.Key{Name: "svc#1a2b", Credentials: "hunter2"}
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		if s := fmt.Sprintf(format, k); strings.Contains(s, "hunter2") {
			t.Fatalf("%s printed the credentials: %s", format, s)
		}
	}
}
