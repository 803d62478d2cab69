package ldapconn

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// Stall detection: a frozen server (SIGSTOP, a hung disk, a partition that
// drops packets) answers nothing, and every operation on it would wait for
// the operation timeout, 10 s by default. Users do not tune timeouts, so the
// pool watches each server's answers instead: a server with operations in
// flight that has answered none of them for stallAfter is suspect, and a
// probe (a new connection reading the root DSE) with as long again decides.
// If the probe fails too, the server is marked down and its connections are
// closed under the operations waiting on them, which Do, DoAs and Search
// then run once more, on another server. A server that is only slow still
// answers something, or answers the probe, and is left alone.
//
// It needs a server to move to: with one server there is nothing better
// than waiting, and the operation timeout stays the only bound.

const (
	// stallFloor is the least silence taken for a stall, so that a fast LAN
	// (answers in 100 µs) does not make the detector twitchy.
	stallFloor = 150 * time.Millisecond
	// stallFactor times the server's recent answer time is the silence
	// taken for a stall on a slower server.
	stallFactor = 16
	// stallTick is how often the watchdog looks.
	stallTick = 25 * time.Millisecond
)

// errStalled is the cause given to a stalled server's probe and kept as its
// last error.
var errStalled = errors.New("ldapconn: the server answered nothing while operations waited")

// activity is what the watchdog knows of one server, written by the
// operations without locks.
type activity struct {
	inflight   atomic.Int64
	busySince  atomic.Int64 // nanoseconds since epoch (sinceEpoch): when inflight last went from 0 to 1
	lastAnswer atomic.Int64 // nanoseconds since epoch (sinceEpoch): when an operation last got an answer
	latency    atomic.Int64 // nanoseconds: moving average of answer times (1/8 weight for each new one)
	slowUntil  atomic.Int64 // nanoseconds since epoch (sinceEpoch): a search was moved off it, or a hedge beat it; slow until then (latency.go)
	// suspectUntil is nanoseconds since epoch: a hedge beat one of its reads
	// that nothing overtook, too few yet to mark it slow; reads go to the
	// hedge lane first until then (latency.go, hedgeWon).
	suspectUntil atomic.Int64
	baseline     atomic.Int64  // nanoseconds: a slower moving average (1/64 weight), what the server usually takes (latency.go)
	floor        atomic.Int64  // nanoseconds: its fastest recent answers (lowFloor)
	tail         tailWindow    // the 99th percentile of its recent answer times (tail.go)
	hedged       atomic.Uint64 // reads on it hedged to another server (hedge.go)
	hedgesLost   atomic.Uint64 // of which the other server answered first
	// lastAnsweredStart is when the latest-started of its answered
	// operations started (sinceEpoch): whether it answered a read that came
	// after one a hedge beat (latency.go, hedgeWon).
	lastAnsweredStart atomic.Int64

	mu           sync.Mutex
	conns        map[*Conn]struct{} // open connections to the server, for closing them at once
	wins         int                // hedges that beat it since winsSince (latency.go, hedgeWon)
	winsSince    time.Time
	hedgedBefore uint64 // its hedged reads before winsSince's
}

// begin records an operation starting on server i, and returns its start.
func (h *health) begin(i int) time.Time {
	now := time.Now()
	a := &h.activity[i]
	// busySince before and after counting: the watchdog must not see
	// operations in flight with a busySince from an earlier busy spell
	// (an operation ending as this one starts can race the first store).
	if a.inflight.Load() == 0 {
		a.busySince.Store(sinceEpoch(now))
	}
	if a.inflight.Add(1) == 1 {
		a.busySince.Store(sinceEpoch(now))
	}
	return now
}

// end records the end of an operation that began at start; answered says
// whether the server answered it (an LDAP result, even an error), as opposed
// to the connection failing or the caller giving up.
func (h *health) end(i int, start time.Time, answered bool) {
	a := &h.activity[i]
	if answered {
		now := time.Now()
		a.lastAnswer.Store(sinceEpoch(now))
		took := int64(now.Sub(start))
		average(&a.latency, took, 8)
		// The baseline is what the server usually takes: a sample far
		// above it (a slowdown under way) does not move it, or a sustained
		// slowdown would raise it as fast as it shows.
		if base := a.baseline.Load(); base == 0 || took <= 2*base {
			average(&a.baseline, took, 64)
		}
		if h.tails { // reads are hedged (hedge.go)
			storeMax(&a.lastAnsweredStart, sinceEpoch(start))
			a.tail.add(time.Duration(took))
			// Latency-aware choice, as OpenLDAP's load balancer picks the
			// better of two servers by recent latency: a server whose
			// fastest recent answers (lowFloor) take 4 times another's
			// average, and 10 ms more (markMargin), is marked slow, so new
			// work goes to the faster one; this moves the pool off a
			// server slow from the start, whose reads take what it usually
			// takes and so are never hedged (Pool.explore learns the
			// other's). Its fastest answers, not its average: the other's
			// come from reads explored or hedged there one at a time,
			// this one's under the pool's load, and a busy server's average
			// is far above its floor where a slow replica's is not. An
			// answer from a server whose average says slow while the
			// answer does not is believed at once: a server the pool moved
			// off answers few reads, and an average of them would take
			// many to show that it recovered.
			lowFloor(&a.floor, took)
			switch {
			case h.slowerThan(i, time.Duration(a.floor.Load()), markMargin, now):
				h.markSlow(i, now)
			case h.slowerThanAnother(i, now) && !h.slowerThan(i, time.Duration(took), slowMargin, now):
				a.latency.Store(took)
			}
		}
	}
	a.inflight.Add(-1)
}

// lowFloor follows the fastest of a server's answer times: down at once to
// an answer faster than it, up by a 256th of the way to a slower one. Under
// a steady spread of answer times it sits near their low end: a busy
// server's answers running from 3 to 40 ms in turn keep it under 6 ms (a
// 64th let it climb to 14). A server slow from its first answer starts
// there.
func lowFloor(floor *atomic.Int64, took int64) {
	if f := floor.Load(); f == 0 || took < f {
		floor.Store(took)
		return
	}
	average(floor, took, 256)
}

// answered reports whether an operation's outcome came from the server: a
// result, success or not, rather than a failed connection or an error go-ldap
// made itself (its codes start at 200).
func answered(err error) bool {
	if err == nil {
		return true
	}
	var le *ldap.Error
	return errors.As(err, &le) && le.ResultCode < ldap.ErrorNetwork
}

// epoch is this package's start, for sinceEpoch.
var epoch = time.Now()

// sinceEpoch returns t as nanoseconds since epoch, by the monotonic clock:
// a time kept as the latest so far (storeMax) must not be left in the
// future by the wall clock stepping back.
func sinceEpoch(t time.Time) int64 { return int64(t.Sub(epoch)) }

// storeMax stores t in v unless v holds a later time.
func storeMax(v *atomic.Int64, t int64) {
	for {
		old := v.Load()
		if old >= t || v.CompareAndSwap(old, t) {
			return
		}
	}
}

// average folds took into the moving average v with weight 1/n; the first
// value is taken as it is.
func average(v *atomic.Int64, took, n int64) {
	for {
		old := v.Load()
		next := took
		if old > 0 {
			next = old + (took-old)/n
		}
		if v.CompareAndSwap(old, next) {
			return
		}
	}
}

// stallAfter is the silence that makes server i suspect.
func (h *health) stallAfter(i int) time.Duration {
	return max(stallFloor, stallFactor*time.Duration(h.activity[i].latency.Load()))
}

// stalled reports whether server i has had operations in flight and
// answered none of them for stallAfter.
func (h *health) stalled(i int, now time.Time) bool {
	a := &h.activity[i]
	if a.inflight.Load() <= 0 {
		return false
	}
	quietSince := max(a.busySince.Load(), a.lastAnswer.Load())
	return sinceEpoch(now)-quietSince > int64(h.stallAfter(i))
}

func (h *health) track(c *Conn) {
	a := &h.activity[c.server]
	a.mu.Lock()
	if a.conns == nil {
		a.conns = make(map[*Conn]struct{})
	}
	a.conns[c] = struct{}{}
	a.mu.Unlock()
}

func (h *health) untrack(c *Conn) {
	a := &h.activity[c.server]
	a.mu.Lock()
	delete(a.conns, c)
	a.mu.Unlock()
}

// closeAll closes every connection to server i under whoever holds it: the
// operations waiting on them fail at once as broken connections, and the
// pool discards them.
func (h *health) closeAll(i int) {
	a := &h.activity[i]
	a.mu.Lock()
	conns := make([]*Conn, 0, len(a.conns))
	for c := range a.conns {
		conns = append(conns, c)
	}
	a.mu.Unlock()
	for _, c := range conns {
		c.ldap.Close()
	}
}

// watchStalls runs until the pool closes, looking every stallTick for a
// server that stalled while another is up to move to.
func (p *Pool) watchStalls() {
	defer p.probing.Done()
	t := time.NewTicker(stallTick)
	defer t.Stop()
	seen := make([]int, len(p.health.servers)) // ticks in a row a server looked stalled
	ticks := 0
	for {
		select {
		case <-p.probeCtx.Done():
			return
		case now := <-t.C:
			if ticks++; p.lane != nil && p.lane.used.Load() && ticks%standbyEvery == 0 {
				p.goProbe("standby", p.keepStandby)
			}
			for i := range p.health.servers {
				if !p.health.stalled(i, now) {
					seen[i] = 0
					continue
				}
				if seen[i]++; seen[i] >= 2 && !p.health.isDown(i, now) && p.health.anotherUp(i, now) {
					p.stallProbe(i)
				}
			}
		}
	}
}

// stallProbe probes a stalled server i, once at a time, within its stall
// time; a server that does not answer is marked down and its connections
// closed.
func (p *Pool) stallProbe(i int) {
	p.probeServer(i, p.health.stallAfter(i), func(err error) {
		p.health.down(i, fmt.Errorf("%w; a probe: %v", errStalled, err), time.Now())
		p.health.closeAll(i)
	})
}

// probeWithin dials server i anonymously and reads its root DSE within d.
// The probe has a connection of its own: one on loan to a caller may be
// binding or starting TLS, which a server answers by dropping what else is
// outstanding, and a false "down" would close a healthy server's
// connections. So a stall probe, once at a time per server and only while
// that server stalls, is one connection past WithMaxSize.
func (p *Pool) probeWithin(i int, d time.Duration) error {
	ctx, cancel := context.WithTimeout(p.probeCtx, d)
	defer cancel()
	conn, err := p.conn.dial(ctx, i, Anonymous)
	if err != nil {
		return err
	}
	defer func() { conn.end(); conn.ldap.Close() }()
	return withContext(ctx, conn, func() error { return RootDSE()(ctx, conn.ldap) })
}
