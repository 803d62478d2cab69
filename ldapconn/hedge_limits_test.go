package ldapconn_test

// Hedged reads within the user's bounds and promises, each found by a
// review of the hedge lane with a test that failed before its fix.

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/hashicorp/go-hclog"
	"github.com/jimlambrt/gldap"

	"github.com/fairpool/ldappool/engine"
	"github.com/fairpool/ldappool/ldapconn"
	"github.com/fairpool/ldappool/ldaptest"
)

// peakOpen runs workers×reads searches on p and returns the most
// connections the servers held at once, as sampled after each search.
func peakOpen(t *testing.T, p *ldapconn.Pool, workers, reads int, servers ...*ldaptest.Server) int64 {
	t.Helper()
	var most atomic.Int64
	searchLoad(t, p, workers, reads, func() {
		var open int64
		for _, s := range servers {
			open += s.Stats().Open
		}
		keepMax(&most, open)
	})
	return most.Load()
}

// searchLoad runs workers goroutines of each searches on p, each for a user
// of its own, calls sample (if not nil) after every search, and fails t if
// any search failed.
func searchLoad(t *testing.T, p *ldapconn.Pool, workers, each int, sample func()) {
	t.Helper()
	var wg sync.WaitGroup
	var failed atomic.Int64
	for c := range workers {
		wg.Go(func() {
			for i := range each {
				if _, err := p.Search(t.Context(), searchUID(fmt.Sprint("user", c*each+i))); err != nil && failed.Add(1) == 1 {
					t.Errorf("first failed search: %v", err)
				}
				if sample != nil {
					sample()
				}
			}
		})
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of %d searches failed", n, workers*each)
	}
}

// keepMax stores n in most unless most holds more.
func keepMax(most *atomic.Int64, n int64) {
	for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
	}
}

// The hedge lane's connection counts against a soft limit as against
// WithMaxSize: the service pool grows to one less.
func TestSoftLimitCountsTheHedgeLane(t *testing.T) {
	lat := ldaptest.WithLatency(func() time.Duration { return 5 * time.Millisecond })
	primary, secondary := embedded(t, lat), embedded(t, lat)
	p := newPool(t, primary.URL()+","+secondary.URL(), admin, ldapconn.WithOpsPerConn(1),
		ldapconn.WithMaxSize(4), ldapconn.WithSoftLimit(5))
	if most := peakOpen(t, p, 16, 15, primary, secondary); most > 5 {
		t.Fatalf("WithSoftLimit(5): the servers held %d connections at most; want at most 5\n%v", most, p.Stats())
	}
	slots := map[int]bool{}
	for _, row := range p.Stats().Conns {
		if slots[row.Slot] {
			t.Fatalf("slot %d twice in the state table:\n%v", row.Slot, p.Stats())
		}
		slots[row.Slot] = true
	}
}

// The sizes WithPoolOptions gives (deprecated, still honoured) are the
// ones the lane is carved from: engine.WithMaxSize(3) holds across both
// servers, and engine.WithMaxIdle(0), the old WithNoPool, keeps no lane.
func TestPoolOptionsSizesHoldWithTwoServers(t *testing.T) {
	lat := ldaptest.WithLatency(func() time.Duration { return 5 * time.Millisecond })
	primary, secondary := embedded(t, lat), embedded(t, lat)
	p := newPool(t, primary.URL()+","+secondary.URL(), admin, ldapconn.WithOpsPerConn(1),
		ldapconn.WithPoolOptions(engine.WithMaxSize(3)))
	if most, st := peakOpen(t, p, 8, 10, primary, secondary), p.Stats(); most > 3 || st.MaxSize != 3 {
		t.Fatalf("engine.WithMaxSize(3): the servers held %d connections at most, Stats.MaxSize %d; want at most 3, 3", most, st.MaxSize)
	}

	a, b := embedded(t), embedded(t)
	q := newPool(t, a.URL()+","+b.URL(), admin, ldapconn.WithPoolOptions(engine.WithMaxIdle(0)))
	for range 30 {
		if _, err := q.Search(t.Context(), searchUID("user1")); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "every connection closed between calls", func() bool { return a.Stats().Open+b.Stats().Open == 0 })
	if st := q.Stats(); strings.Contains(st.String(), "hedge lane") {
		t.Fatalf("engine.WithMaxIdle(0) keeps a hedge lane:\n%v", st)
	}
}

// WithMaxInFlight caps the reads in flight, the hedge lane's included.
func TestMaxInFlightCountsTheHedgeLane(t *testing.T) {
	primary, secondary := embedded(t), embedded(t)
	p := newPool(t, primary.URL()+","+secondary.URL(), admin, ldapconn.WithMaxSize(4), ldapconn.WithMaxInFlight(4))
	for range 50 {
		if _, err := p.Search(t.Context(), searchUID("user1")); err != nil {
			t.Fatal(err)
		}
	}
	primary.SetLatency(40 * time.Millisecond) // hedges win, the primary is marked slow, reads go to the lane first
	var most atomic.Int64
	searchLoad(t, p, 16, 20, func() { keepMax(&most, int64(p.Stats().InFlight)) })
	if st := p.Stats(); st.MaxInFlight != 4 || most.Load() > 4 {
		t.Fatalf("WithMaxInFlight(4): Stats.MaxInFlight %d, up to %d in flight; want 4, at most 4", st.MaxInFlight, most.Load())
	}
}

// The budget holds at most moveBurst hedges and earns one a twenty reads:
// when both servers slow, every read is hedged for a burst, then one in
// twenty.
func TestHedgeBudgetIsABurstThenOneReadInTwenty(t *testing.T) {
	const burst = 32 // ldapconn's moveBurst
	primary, secondary := embedded(t), embedded(t)
	p := newPool(t, primary.URL()+","+secondary.URL(), admin)
	for range 40 {
		if _, err := p.Search(t.Context(), searchUID("user1")); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the hedge lane's connection", func() bool { return secondary.Stats().Open == 1 })
	primary.SetLatency(20 * time.Millisecond)
	secondary.SetLatency(20 * time.Millisecond)
	hedged := func() (n uint64) {
		for _, s := range p.Servers() {
			n += s.Hedged
		}
		return n
	}
	before := hedged()
	const reads = 200
	peakOpen(t, p, 4, reads/4, primary, secondary)
	if n := hedged() - before; n > burst+(40+reads)/20+1 {
		t.Fatalf("%d of %d reads were hedged; want at most %d (the burst) and one in twenty", n, reads, burst)
	}
}

// A hedge runs through the service pool when the read went to the lane
// first; if that pool cannot get a connection (here its dial's bind is
// refused, the password having been rotated), the hedge has not run: the
// lane's answer is the caller's, and nothing panics.
func TestAHedgeThatCouldNotRunDoesNotAnswer(t *testing.T) {
	var pw atomic.Value
	pw.Store(ldaptest.AdminPassword)
	slowS, optS := slowNext(500 * time.Millisecond)
	primary, secondary := embedded(t), embedded(t, optS)
	p := newPool(t, primary.URL()+","+secondary.URL(),
		ldapconn.WithBindPasswordFunc(ldaptest.AdminDN, func(context.Context) (string, error) { return pw.Load().(string), nil }),
		ldapconn.WithMaxSize(3))
	for range 20 {
		if _, err := p.Search(t.Context(), searchUID("user1")); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the hedge lane's connection to the secondary", func() bool { return secondary.Stats().Open == 1 })
	primary.SetLatency(300 * time.Millisecond)
	// One read at a time: from the second win the primary is suspect and
	// reads go to the lane for a moment, so the five wins that mark it come
	// one a suspicion.
	for i := 0; i < 200 && !p.Servers()[0].Slow; i++ {
		if _, err := p.Search(t.Context(), searchUID("user1")); err != nil {
			t.Fatal(err)
		}
	}
	if !p.Servers()[0].Slow {
		t.Fatalf("primary not marked slow: %+v", p.Servers())
	}
	waitFor(t, "the service pool to close its connection to the slow primary", func() bool { return primary.Stats().Open == 0 })
	pw.Store("rotated-wrong")
	slowS.Store(1) // the lane's read waits 500ms: it is hedged on the service pool, which cannot dial
	if _, err := p.Search(t.Context(), searchUID("user2")); err != nil {
		t.Fatalf("the lane's read would have answered; the caller got: %v", err)
	}
}

// busyServer starts a server that accepts any bind and answers every
// search "busy" at once.
func busyServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	gl, err := gldap.NewServer(gldap.WithLogger(hclog.NewNullLogger()))
	if err != nil {
		t.Fatal(err)
	}
	mux, _ := gldap.NewMux()
	mux.Bind(func(w *gldap.ResponseWriter, r *gldap.Request) {
		_ = w.Write(r.NewBindResponse(gldap.WithResponseCode(gldap.ResultSuccess)))
	})
	mux.Search(func(w *gldap.ResponseWriter, r *gldap.Request) {
		_ = w.Write(r.NewSearchDoneResponse(gldap.WithResponseCode(ldap.LDAPResultBusy)))
	})
	gl.Router(mux)
	done := make(chan struct{})
	go func() { defer close(done); _ = gl.Run(addr) }()
	t.Cleanup(func() { _ = gl.Stop(); <-done })
	waitFor(t, "the busy server to listen", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return "ldap://" + addr
}

// A server that answers "busy" has not answered the read: its hedge does
// not beat the original, which its momentarily slow server answers.
func TestABusyHedgeDoesNotBeatAnAnswer(t *testing.T) {
	slow, latency := slowNext(300 * time.Millisecond)
	primary := embedded(t, latency)
	p := newPool(t, primary.URL()+","+busyServer(t), admin)
	for range 20 {
		if _, err := p.Search(t.Context(), searchUID("user1")); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the hedge lane's connection", func() bool { return p.Stats().Open >= 2 })
	slow.Store(1)
	res, err := p.Search(t.Context(), searchUID("user2"))
	if err != nil || len(res.Entries) != 1 {
		t.Fatalf("Search = %v, %v; want the primary's entry, not the busy server's refusal\nservers %+v", res, err, p.Servers())
	}
}

// Close while hedged searches are in flight on both pools: every caller
// returns, the books balance, and (TestMain) no goroutine is left.
func TestCloseDuringHedges(t *testing.T) {
	slowP, arrivedP, latP := slowArrivals(300 * time.Millisecond)
	slowS, _, latS := slowArrivals(300 * time.Millisecond)
	primary, secondary := embedded(t, latP), embedded(t, latS)
	p, err := ldapconn.NewPool(primary.URL()+","+secondary.URL(), admin, ldapconn.WithMaxSize(3))
	if err != nil {
		t.Fatal(err)
	}
	for range 30 {
		if _, err := p.Search(t.Context(), searchUID("user1")); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the hedge lane's connection", func() bool { return secondary.Stats().Open == 1 })
	slowP.Store(100)
	slowS.Store(100)
	var wg sync.WaitGroup
	for c := range 12 {
		wg.Go(func() { _, _ = p.Search(context.Background(), searchUID(fmt.Sprint("user", c))) })
	}
	for range 4 { // searches waiting at the primary
		<-arrivedP
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_ = p.Close(ctx) // may give up on leases still out, and close them
	wg.Wait()
	st := p.Stats()
	if st.Open != 0 || st.Opened() != st.Closed {
		t.Fatalf("after Close: opened %d, closed %d, open %d", st.Opened(), st.Closed, st.Open)
	}
	for _, s := range p.Servers() {
		if s.Open != 0 {
			t.Fatalf("server %s: %d connections still open after Close", s.URL, s.Open)
		}
	}
}
