package engine_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fairpool/ldappool/engine"
	"github.com/fairpool/ldappool/lease"
)

func mustShare[C any](t *testing.T, p *engine.Pool[C], key engine.Key) *lease.Lease[C] {
	t.Helper()
	l, err := p.Share(context.Background(), key)
	if err != nil {
		t.Fatalf("Share(%s): %v", key, err)
	}
	return l
}

// shareAsync is leaseAsync for a share.
func shareAsync[C any](ctx context.Context, p *engine.Pool[C], key engine.Key) chan leaseResult[C] {
	ch := make(chan leaseResult[C], 1)
	go func() {
		l, err := p.Share(ctx, key)
		ch <- leaseResult[C]{l, err}
	}()
	return ch
}

// Shares go to the least-loaded connection of their key, and a connection
// is dialed only when every one carries WithOpsPerConn shares; past the
// maximum a share waits, and is served when one comes back.
func TestSharesFillConnectionsBeforeDialing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fc := &fakeConnector{}
		p := newPool(t, fc, engine.WithMaxSize(2), engine.WithOpsPerConn(3))
		var held []*lease.Lease[*fakeConn]
		for range 6 {
			held = append(held, mustShare(t, p, keyA))
		}
		per := map[*fakeConn]int{}
		for _, l := range held {
			per[l.Conn()]++
		}
		if fc.opened != 2 || len(per) != 2 {
			t.Fatalf("6 shares at depth 3 opened %d connections, spread over %d; want 2", fc.opened, len(per))
		}
		for c, n := range per {
			if n != 3 {
				t.Fatalf("connection %d carries %d shares; want 3 on each", c.id, n)
			}
		}
		st := p.Stats()
		if st.InFlight != 6 || st.Shared != 2 || st.InUse != 2 || st.Shares != 6 || st.Leases != 0 {
			t.Fatalf("stats in flight %d shared %d in use %d shares %d leases %d", st.InFlight, st.Shared, st.InUse, st.Shares, st.Leases)
		}
		seventh := shareAsync(t.Context(), p, keyA)
		synctest.Wait()
		select {
		case r := <-seventh:
			t.Fatalf("a seventh share past 2 connections × 3 was answered: %v", r.err)
		default:
		}
		held[4].Release()
		r := <-seventh
		if r.err != nil {
			t.Fatalf("seventh share: %v", r.err)
		}
		if r.l.Conn() != held[4].Conn() {
			t.Fatal("the seventh share did not take the place that came back")
		}
		r.l.Release()
		for i, l := range held {
			if i != 4 {
				l.Release()
			}
		}
		synctest.Wait()
		if st := p.Stats(); st.InFlight != 0 || st.Idle != 2 || fc.opened != 2 {
			t.Fatalf("after every share came back: in flight %d idle %d opened %d", st.InFlight, st.Idle, fc.opened)
		}
	})
}

// A new share goes to the connection carrying the fewest, an idle one
// first.
func TestShareGoesToTheLeastLoadedConnection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPool(t, &fakeConnector{}, engine.WithMaxSize(2), engine.WithOpsPerConn(4))
		a := mustLease(t, p, keyA)
		b := mustLease(t, p, keyA)
		a.Release()
		b.Release()
		s1 := mustShare(t, p, keyA)
		s2 := mustShare(t, p, keyA)
		if s1.Conn() == s2.Conn() {
			t.Fatal("the second share went onto the first's connection while another was idle")
		}
		s3 := mustShare(t, p, keyA) // one connection carries 2 shares now, the other 1
		lighter := s1.Conn()
		if s3.Conn() == lighter {
			lighter = s2.Conn()
		}
		s4 := mustShare(t, p, keyA)
		if s4.Conn() != lighter {
			t.Fatal("the fourth share went to the connection carrying 2 shares, not the one carrying 1")
		}
		for _, l := range []*lease.Lease[*fakeConn]{s1, s2, s3, s4} {
			l.Release()
		}
	})
}

// Leases and shares wait in one queue, strictly first come first served: a
// lease that needs a whole connection holds back the shares that came after
// it, and gets the first connection whose shares have all come back.
func TestLeaseQueuedBeforeSharesIsServedFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPool(t, &fakeConnector{}, engine.WithMaxSize(1), engine.WithOpsPerConn(4))
		s1 := mustShare(t, p, keyA)
		s2 := mustShare(t, p, keyA)
		whole := leaseAsync(t.Context(), p, keyA)
		synctest.Wait()
		later := shareAsync(t.Context(), p, keyA)
		synctest.Wait()
		select {
		case r := <-later:
			t.Fatalf("a share queued behind a lease was answered first (err %v)", r.err)
		case r := <-whole:
			t.Fatalf("a lease got a connection carrying shares (err %v)", r.err)
		default:
		}
		s1.Release()
		synctest.Wait()
		select {
		case r := <-whole:
			t.Fatalf("a lease got a connection still carrying a share (err %v)", r.err)
		default:
		}
		s2.Release()
		r := <-whole
		if r.err != nil {
			t.Fatalf("lease: %v", r.err)
		}
		synctest.Wait()
		select {
		case r := <-later:
			t.Fatalf("a share went onto a connection leased whole (err %v)", r.err)
		default:
		}
		r.l.Release()
		if r := <-later; r.err != nil {
			t.Fatalf("share: %v", r.err)
		} else {
			r.l.Release()
		}
	})
}

// WithMaxInFlight caps the shares out across the pool, and a fail-fast pool
// refuses a share past it at once.
func TestMaxInFlightCapsShares(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPool(t, &fakeConnector{}, engine.WithMaxSize(3), engine.WithOpsPerConn(4), engine.WithMaxInFlight(5))
		var held []*lease.Lease[*fakeConn]
		for range 5 {
			held = append(held, mustShare(t, p, keyA))
		}
		sixth := shareAsync(t.Context(), p, keyA)
		synctest.Wait()
		select {
		case r := <-sixth:
			t.Fatalf("a sixth share past WithMaxInFlight(5) was answered (err %v)", r.err)
		default:
		}
		if st := p.Stats(); st.MaxInFlight != 5 || st.InFlight != 5 || st.Waiters != 1 {
			t.Fatalf("stats max in flight %d in flight %d waiters %d", st.MaxInFlight, st.InFlight, st.Waiters)
		}
		held[0].Release()
		if r := <-sixth; r.err != nil {
			t.Fatalf("sixth share: %v", r.err)
		} else {
			r.l.Release()
		}
		for _, l := range held[1:] {
			l.Release()
		}

		ff := newPool(t, &fakeConnector{}, engine.WithMaxSize(1), engine.WithOpsPerConn(2), engine.WithFailFast())
		a, b := mustShare(t, ff, keyA), mustShare(t, ff, keyA)
		if _, err := ff.Share(t.Context(), keyA); !errors.Is(err, engine.ErrExhausted) {
			t.Fatalf("a share past a full fail-fast pool: %v; want ErrExhausted", err)
		}
		a.Release()
		b.Release()
	})
}

// A discarded share dooms its connection: it takes no new share, and is
// closed once the last share on it comes back, not under the others.
func TestDiscardedShareClosesTheConnectionWhenTheLastComesBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fc := &fakeConnector{}
		p := newPool(t, fc, engine.WithMaxSize(2), engine.WithOpsPerConn(3))
		s1 := mustShare(t, p, keyA)
		s2 := mustShare(t, p, keyA)
		conn := s1.Conn()
		s1.Discard(errors.New("broken"))
		synctest.Wait()
		if fc.closed != 0 {
			t.Fatal("the connection was closed under a share still out on it")
		}
		s3 := mustShare(t, p, keyA)
		if s3.Conn() == conn {
			t.Fatal("a new share went onto a connection a discard doomed")
		}
		s2.Release()
		synctest.Wait()
		st := p.Stats()
		if fc.closed != 1 || st.Discards != 1 || st.InFlight != 1 {
			t.Fatalf("closed %d discards %d in flight %d; want the doomed connection closed once", fc.closed, st.Discards, st.InFlight)
		}
		s3.Release()
	})
}

// A share whose caller gave up costs nothing; Close with shares out
// closes their connections under them when its context ends, and their
// Release later does nothing.
func TestSharesAtCancelAndForcedClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fc := &fakeConnector{dialDelay: 20 * time.Millisecond}
		p, err := engine.New(fc, engine.WithMaxSize(1), engine.WithOpsPerConn(2))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond) // ends before the dial does
		if _, err := p.Share(ctx, keyA); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("a share whose context ended first: %v", err)
		}
		cancel()
		time.Sleep(20 * time.Millisecond) // the dial ends: its connection is parked
		synctest.Wait()
		if st := p.Stats(); st.InFlight != 0 {
			t.Fatalf("a share given up on is still counted: in flight %d", st.InFlight)
		}
		s1, s2 := mustShare(t, p, keyA), mustShare(t, p, keyA)
		cctx, ccancel := context.WithTimeout(context.Background(), time.Second)
		defer ccancel()
		if err := p.Close(cctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Close with shares out: %v; want the deadline", err)
		}
		s1.Release()
		s2.Release()
		if fc.opened != fc.closed {
			t.Fatalf("opened %d closed %d", fc.opened, fc.closed)
		}
	})
}

func TestShareOptionsAreValidated(t *testing.T) {
	for _, o := range []engine.Option{engine.WithOpsPerConn(0), engine.WithMaxInFlight(-1)} {
		if _, err := engine.New[*fakeConn](&fakeConnector{}, o); err == nil {
			t.Fatal("an invalid share option was accepted")
		} else if oe := (*engine.OptionError)(nil); !errors.As(err, &oe) {
			t.Fatalf("error %v is not an *OptionError", err)
		}
	}
}

// A burst of shares on a cold pool dials one connection, which carries
// them all: a dial for a share brings room for WithOpsPerConn of them, and
// the share waiters behind it wait for it instead of each dialing. (Found
// by a review: 8 shares dialed 4 connections.)
func TestShareBurstDialsOneConnection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fc := &fakeConnector{dialDelay: time.Millisecond}
		p := newPool(t, fc, engine.WithMaxSize(10), engine.WithOpsPerConn(8))
		var chans []chan leaseResult[*fakeConn]
		for range 12 {
			chans = append(chans, shareAsync(t.Context(), p, keyA))
		}
		var held []*lease.Lease[*fakeConn]
		for _, ch := range chans {
			r := <-ch
			if r.err != nil {
				t.Fatal(r.err)
			}
			held = append(held, r.l)
		}
		if fc.opened != 2 {
			t.Fatalf("12 shares at depth 8 dialed %d connections; want 2", fc.opened)
		}
		for _, l := range held {
			l.Release()
		}
	})
}

// With WithFailFast, a share that a dial already in flight brings room for
// waits for that dial: it is not refused as if the pool were full. (Found
// by a review: the second of two shares on a cold pool got ErrExhausted.)
func TestFailFastShareWaitsForTheDialThatCoversIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fc := &fakeConnector{dialDelay: time.Millisecond}
		p := newPool(t, fc, engine.WithMaxSize(10), engine.WithOpsPerConn(8), engine.WithFailFast())
		first := shareAsync(t.Context(), p, keyA)
		synctest.Wait() // the first share's dial is in flight
		second := shareAsync(t.Context(), p, keyA)
		for i, ch := range []chan leaseResult[*fakeConn]{first, second} {
			r := <-ch
			if r.err != nil {
				t.Fatalf("share %d on a pool of 10 with none open: %v", i+1, r.err)
			}
			defer r.l.Release()
		}
		if fc.opened != 1 {
			t.Fatalf("%d connections dialed for 2 shares at depth 8; want 1", fc.opened)
		}
	})
}

// A request for a fresh share (Request{Fresh, Share}: a retry after a dead
// connection) is a share: it takes a connection already carrying shares as
// it is, so the caller's other shares (nested calls) still find room, and
// an idle connection only after validating it.
func TestAFreshShareIsAShare(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fc := &fakeConnector{}
		p := newPool(t, fc, engine.WithMaxSize(1), engine.WithOpsPerConn(4))
		idle := mustShare(t, p, keyA)
		idle.Release()
		validated := p.Stats().Validations
		first, err := p.Get(t.Context(), keyA, engine.Request{Fresh: true, Share: true})
		if err != nil {
			t.Fatal(err)
		}
		if !first.Shared() || p.Stats().Validations != validated+1 {
			t.Fatalf("fresh share of an idle connection: shared %v, validations %d; want a share, the idle one validated once",
				first.Shared(), p.Stats().Validations-validated)
		}
		second, err := p.Get(t.Context(), keyA, engine.Request{Fresh: true, Share: true})
		if err != nil {
			t.Fatal(err)
		}
		if !second.Shared() || second.Conn() != first.Conn() || fc.opened != 1 {
			t.Fatalf("second fresh share: shared %v, same connection %v, %d dialed; want a share of the one connection",
				second.Shared(), second.Conn() == first.Conn(), fc.opened)
		}
		first.Release()
		second.Release()
	})
}
