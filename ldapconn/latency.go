package ldapconn

import (
	"sync/atomic"
	"time"
)

// Latency-aware choice of server: as OpenLDAP's load balancer picks the
// better of its servers by recent latency, the pool moves new work off a
// server that answers much more slowly than another that is up. Such a
// server is "slow": it goes last in the dial order (servers.go, order). A
// search stuck on it is moved (Pool.Search), which marks it slow for a
// while, and Search then passes over its idle connections, so the next
// lease dials the faster server.
//
// The verdict follows the moving average of each server's answer times
// (stall.go, end) against the other servers', or a search moved off the
// server (Pool.Search), and lapses: a server that has answered nothing for
// slowForgetAfter, which it will not once nothing goes to it, is given
// another chance, so the pool returns to a primary that recovered.

const (
	// slowRatio is how many times slower than the fastest up server a
	// server must be to be slow...
	slowRatio = 4
	// ...and slowMargin by how much at least, so that 100 µs against 400 µs
	// on a LAN is no reason to move.
	slowMargin = 2 * time.Millisecond
	// slowForgetAfter is how long a slow server is left alone before it is
	// tried again.
	slowForgetAfter = 30 * time.Second
)

// slow reports whether server i is marked slow (a search was moved off it
// lately, markSlow) while another server is there to go to, or answers much
// more slowly than another server that is up and has answered recently. It
// orders dials (servers.go); only the mark makes Pool.Search pass over a
// server's idle connections. A server is never judged against its own past:
// a workload that mixes cheap and costly searches would make a healthy
// server look slow.
func (h *health) slow(i int, now time.Time) bool {
	if h.markedSlow(i, now) {
		return true
	}
	mine, ok := h.recentLatency(i, now)
	if !ok || mine < slowMargin {
		return false
	}
	for j := range h.servers {
		if j == i || h.isDown(j, now) {
			continue
		}
		if theirs, ok := h.recentLatency(j, now); ok && mine > slowRatio*theirs && mine-theirs > slowMargin {
			return true
		}
	}
	return false
}

// markedSlow reports whether a search was moved off server i within slowFor
// and another server, up and not marked, is there to go to.
func (h *health) markedSlow(i int, now time.Time) bool {
	return now.UnixNano() < h.activity[i].slowUntil.Load() && h.elsewhereToGo(i, now)
}

// recentLatency returns server i's moving-average answer time, unless it has
// answered nothing for slowForgetAfter (then the average is forgotten).
func (h *health) recentLatency(i int, now time.Time) (time.Duration, bool) {
	a := &h.activity[i]
	last := a.lastAnswer.Load()
	if last == 0 {
		return 0, false
	}
	if now.UnixNano()-last > int64(slowForgetAfter) {
		a.latency.Store(0)
		a.baseline.Store(0)
		return 0, false
	}
	l := time.Duration(a.latency.Load())
	return l, l > 0
}

// moveAfter is how long a search may wait on server i before it is moved
// (Pool.Search): far beyond what the server usually takes.
func (h *health) moveAfter(i int) time.Duration {
	base := time.Duration(h.activity[i].baseline.Load())
	if base == 0 {
		return 0 // nothing known: never moved
	}
	return max(slowRatio*base, base+slowMargin, moveFloor)
}

// elsewhereToGo reports whether a server other than i is up and not
// marked slow: without one, calling i slow would only make things worse.
func (h *health) elsewhereToGo(i int, now time.Time) bool {
	for j := range h.servers {
		if j != i && !h.isDown(j, now) && now.UnixNano() >= h.activity[j].slowUntil.Load() {
			return true
		}
	}
	return false
}

// moveFloor is the least wait before a search is moved: a loaded machine
// delays fast answers by a few milliseconds, which is no reason to move.
const moveFloor = 5 * time.Millisecond

// fasterElsewhere reports whether a server other than i is up, not slow, and
// either unknown or answering well within waited: where a search that has
// waited that long on i should go.
func (h *health) fasterElsewhere(i int, waited time.Duration, now time.Time) bool {
	for j := range h.servers {
		if j == i || h.isDown(j, now) || h.slow(j, now) {
			continue
		}
		if theirs, known := h.recentLatency(j, now); !known || 2*theirs < waited {
			return true
		}
	}
	return false
}

// markSlow records that an operation on server i waited far past what the
// server usually takes, while another server is up: the server counts as
// slow for slowFor, so new work goes elsewhere at once, before its average
// shows it.
func (h *health) markSlow(i int, now time.Time) {
	h.activity[i].slowUntil.Store(now.Add(slowFor).UnixNano())
}

// slowFor is how long one search moved off a server marks it slow.
const slowFor = 5 * time.Second

// moveBudget bounds the searches moved to another server: each search earns
// a twentieth of a move, so at most about 5% of searches are sent twice. It
// holds up to as many moves as searches can be in flight at once (at least
// ten): when a server slows, every search running on it then can move, and
// the connections to it, shared by them, drain at once.
type moveBudget struct {
	milli atomic.Int64
	most  int64 // moves in hand at most, in thousandths
}

func newMoveBudget(inFlight int) *moveBudget {
	return &moveBudget{most: 1000 * int64(max(inFlight, 10))}
}

func (b *moveBudget) earn() {
	if b.milli.Load() < b.most {
		b.milli.Add(50)
	}
}

func (b *moveBudget) spend() bool {
	for {
		v := b.milli.Load()
		if v < 1000 {
			return false
		}
		if b.milli.CompareAndSwap(v, v-1000) {
			return true
		}
	}
}
