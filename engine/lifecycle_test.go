package engine_test

import (
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/fairpool/ldappool/engine"
	"github.com/fairpool/ldappool/internal/logbuf"
	"github.com/fairpool/ldappool/lease"
)

func TestLifetimeExpiresConnections(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fc := &fakeConnector{}
		p := newPool(t, fc, engine.WithMaxLifetime(10*time.Minute), engine.WithLifetimeJitter(0.5),
			engine.WithPrunePeriod(time.Minute), engine.WithIdleTimeout(0))
		held := mustLease(t, p, keyA)
		idle := mustLease(t, p, keyA)
		idle.Release()
		// Jitter shortens a lifetime by up to half: both live 5 to 10 minutes.
		exp := p.Stats().Conns
		for _, c := range exp {
			if c.ExpiresIn <= 5*time.Minute-time.Second || c.ExpiresIn > 10*time.Minute {
				t.Fatalf("connection expires in %v; want within (5m, 10m]", c.ExpiresIn)
			}
		}
		time.Sleep(11 * time.Minute) // past every lifetime, and a prune tick
		synctest.Wait()
		if st := p.Stats(); st.Open != 1 || st.Expiries != 1 {
			t.Fatalf("after the lifetime: open %d, expiries %d; want the idle one pruned", st.Open, st.Expiries)
		}
		held.Release() // expired: closed on release, not pooled
		synctest.Wait()
		if st := p.Stats(); st.Open != 0 || st.Expiries != 2 {
			t.Fatalf("after releasing an expired conn: open %d, expiries %d; want 0, 2", st.Open, st.Expiries)
		}
		if l := mustLease(t, p, keyA); l.Reused() {
			t.Fatal("a lease after expiry got an old connection")
		} else {
			l.Release()
		}
	})
}

func TestLifetimerShortensSomeConnections(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fc := &shortLived{}
		p := newPool(t, fc, engine.WithLifetimeJitter(0))
		mustLease(t, p, keyA).Release()
		if c := p.Stats().Conns[0]; c.ExpiresIn != time.Minute {
			t.Fatalf("expires in %v; want the Lifetimer's 1m", c.ExpiresIn)
		}
	})
}

type shortLived struct{ fakeConnector }

func (*shortLived) Lifetime(*fakeConn, time.Duration) time.Duration { return time.Minute }

func TestIdleTimeoutKeepsMinIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fc := &fakeConnector{}
		p := newPool(t, fc, engine.WithIdleTimeout(time.Minute), engine.WithPrunePeriod(10*time.Second),
			engine.WithMinIdle(1), engine.WithDefaultKey(keyA))
		// Each lease takes the warm connection, and the pool warms another
		// before the next lease (synctest.Wait), so the count is exact.
		var ls []*lease.Lease[*fakeConn]
		for range 3 {
			synctest.Wait()
			ls = append(ls, mustLease(t, p, keyA))
		}
		synctest.Wait()
		for _, l := range ls {
			l.Release()
		}
		time.Sleep(50 * time.Second)
		synctest.Wait()
		if st := p.Stats(); st.Idle != 4 {
			t.Fatalf("idle = %d before the idle timeout; want 4 (3 leased, 1 re-warmed)", st.Idle)
		}
		time.Sleep(30 * time.Second)
		synctest.Wait()
		if st := p.Stats(); st.Idle != 1 || st.IdleClosed != 3 {
			t.Fatalf("after the idle timeout idle = %d, pruned = %d; want min idle 1 kept, 3 pruned", st.Idle, st.IdleClosed)
		}
	})
}

func TestMinIdleWarmsAndRetriesWithBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		down := true
		fc := &fakeConnector{dialErr: func(engine.Key) error {
			mu.Lock()
			defer mu.Unlock()
			if down {
				return errors.New("server down")
			}
			return nil
		}}
		constant := func() backoff.BackOff { return backoff.NewConstantBackOff(time.Second) }
		p := newPool(t, fc, engine.WithMinIdle(2), engine.WithDefaultKey(keyA), engine.WithBackOff(constant))
		time.Sleep(10500 * time.Millisecond)
		synctest.Wait()
		// Two dials at start, then after each 1s backoff: failures keep being retried.
		if st := p.Stats(); st.DialErrors < 10 || st.DialErrors > 22 || st.Open != 0 {
			t.Fatalf("dial errors = %d, open = %d in 10.5s of 1s backoff; want about 2 a second, none open", st.DialErrors, st.Open)
		}
		mu.Lock()
		down = false
		mu.Unlock()
		time.Sleep(time.Second)
		synctest.Wait()
		if st := p.Stats(); st.Idle != 2 {
			t.Fatalf("idle = %d after the server came back; want min idle 2", st.Idle)
		}
	})
}

func TestValidateOnLeaseReplacesABadConnectionSilently(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fc := &fakeConnector{}
		p := newPool(t, fc, engine.WithValidateOnLease())
		l := mustLease(t, p, keyA)
		bad := l.Conn()
		l.Release()
		bad.setBad()
		l = mustLease(t, p, keyA)
		if l.Conn() == bad {
			t.Fatal("got the connection that fails validation")
		}
		l.Release()
		synctest.Wait() // the bad connection's close returns
		if st := p.Stats(); st.ValidationErrors != 1 || st.Open != 1 || st.Dials != 2 {
			t.Fatalf("stats %+v; want 1 validation error, the bad conn replaced by a second dial", st.Counters)
		}
	})
}

func TestValidateOnReleaseDropsABadConnection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fc := &fakeConnector{}
		p := newPool(t, fc, engine.WithValidateOnRelease())
		l := mustLease(t, p, keyA)
		l.Conn().setBad()
		l.Release()
		synctest.Wait()
		if st := p.Stats(); st.Open != 0 || st.ValidationErrors != 1 {
			t.Fatalf("open = %d, validation errors = %d; want the bad conn closed at release", st.Open, st.ValidationErrors)
		}
	})
}

func TestBackgroundValidationReplacesAndRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		failDials := false
		fc := &fakeConnector{dialErr: func(engine.Key) error {
			mu.Lock()
			defer mu.Unlock()
			if failDials {
				return errors.New("server down")
			}
			return nil
		}}
		constant := func() backoff.BackOff { return backoff.NewConstantBackOff(5 * time.Second) }
		p := newPool(t, fc, engine.WithValidatePeriod(time.Minute), engine.WithBackOff(constant))
		l1, l2 := mustLease(t, p, keyA), mustLease(t, p, keyB)
		l1.Release()
		l2.Release()
		l2.Conn().setBad()
		mu.Lock()
		failDials = true
		mu.Unlock()
		time.Sleep(time.Minute + time.Second)
		synctest.Wait()
		st := p.Stats()
		if st.ValidationErrors != 1 || st.Keys["B"].Open != 0 || st.Keys["A"].Idle != 1 || st.DialErrors == 0 {
			t.Fatalf("after the check: %+v; want B's bad conn closed, its replacement failing, A kept", st)
		}
		mu.Lock()
		failDials = false
		mu.Unlock()
		time.Sleep(6 * time.Second) // one backoff later the replacement succeeds
		synctest.Wait()
		if st := p.Stats(); st.Keys["B"].Idle != 1 {
			t.Fatalf("B idle = %d after the backoff; want the replacement in place", st.Keys["B"].Idle)
		}
	})
}

func TestDoRetriesOnceOnAFreshConnection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fc := &fakeConnector{}
		p := newPool(t, fc)
		l := mustLease(t, p, keyA)
		stale := l.Conn()
		l.Release()
		stale.setBad() // the server restarted: the idle conn is dead
		var calls []*fakeConn
		err := p.Do(t.Context(), keyA, func(l *lease.Lease[*fakeConn]) error {
			calls = append(calls, l.Conn())
			if l.Conn().Validate() != nil {
				return engine.ErrBroken
			}
			return nil
		})
		if err != nil || len(calls) != 2 || calls[0] != stale || calls[1] == stale {
			t.Fatalf("Do = %v after %d calls; want success on a second, fresh connection", err, len(calls))
		}
		synctest.Wait() // the stale connection's close returns
		if st := p.Stats(); st.Discards != 1 || st.Open != 1 {
			t.Fatalf("discards = %d open = %d; want the stale conn discarded", st.Discards, st.Open)
		}
	})
}

func TestDoDoesNotRetryAFreshConnection(t *testing.T) {
	fc := &fakeConnector{}
	p := newPool(t, fc)
	calls := 0
	err := p.Do(t.Context(), keyA, func(*lease.Lease[*fakeConn]) error {
		calls++
		return engine.ErrBroken
	})
	if !errors.Is(err, engine.ErrBroken) || calls != 1 {
		t.Fatalf("Do = %v after %d calls; want ErrBroken after 1 (fresh conns are not retried)", err, calls)
	}
	plain := errors.New("no such object")
	if err := p.Do(t.Context(), keyA, func(*lease.Lease[*fakeConn]) error { return plain }); err != plain {
		t.Fatalf("Do = %v; want the operation's error as is", err)
	}
	if st := p.Stats(); st.Discards != 1 || st.Idle != 1 {
		t.Fatalf("discards %d idle %d; want the broken conn discarded and the other pooled", st.Discards, st.Idle)
	}
}

func TestDoDiscardsOnPanic(t *testing.T) {
	p := newPool(t, &fakeConnector{})
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("Do swallowed the panic")
			}
		}()
		p.Do(t.Context(), keyA, func(*lease.Lease[*fakeConn]) error { panic("bug") })
	}()
	if st := p.Stats(); st.Discards != 1 || st.InUse != 0 {
		t.Fatalf("discards %d in use %d; want the conn discarded", st.Discards, st.InUse)
	}
}

func TestStateTable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPool(t, &fakeConnector{}, engine.WithLifetimeJitter(0))
		a := mustLease(t, p, keyA)
		defer a.Release()
		mustLease(t, p, keyB).Release()
		time.Sleep(90 * time.Second)
		out := p.String()
		for _, want := range []string{
			"open 2/10 (idle 1, in use 1, checking 0, closing 0), dialing 0, waiting 0",
			"SLOT  STATE   KEY  AGE    EXPIRES IN  USES  SHARES",
			"0     leased  A    1m30s  8m30s       1",
			"1     idle    B    1m30s  8m30s       1",
		} {
			if !strings.Contains(out, want) {
				t.Fatalf("state table lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "secret") {
			t.Fatalf("state table shows credentials:\n%s", out)
		}
	})
}

func TestLeakIsLogged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf logbuf.Buffer
		p := newPool(t, &fakeConnector{}, engine.WithLeakThreshold(time.Minute), engine.WithLogger(newTextLogger(&buf)))
		l := mustLease(t, p, keyA)
		time.Sleep(61 * time.Second)
		synctest.Wait()
		if !strings.Contains(buf.String(), "lease held past the leak threshold") || !strings.Contains(buf.String(), "TestLeakIsLogged") {
			t.Fatalf("log = %q; want a leak warning with the leasing stack", buf.String())
		}
		l.Release()
	})
}

func newTextLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
