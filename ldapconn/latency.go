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
// while, and Search then closes the connections to it that it lands on
// once their reads end (doOffSlow), so the pool dials the faster server.
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
// orders dials (servers.go); only the mark makes Pool.Search close the
// connections to a server (doOffSlow). A server is never judged against its own past:
// a workload that mixes cheap and costly searches would make a healthy
// server look slow.
func (h *health) slow(i int, now time.Time) bool {
	return h.markedSlow(i, now) || h.slowerThanAnother(i, now)
}

// slowerThanAnother reports whether server i answers much more slowly than
// another server that is up, has answered recently and is not marked slow,
// by their moving averages. (A server that stopped answering keeps the
// average of its last answers: one marked slow is no yardstick.)
func (h *health) slowerThanAnother(i int, now time.Time) bool {
	mine, ok := h.recentLatency(i, now)
	return ok && h.slowerThan(i, mine, slowMargin, now)
}

// slowerThan reports whether mine, an answer time of server i, is
// slowRatio times the moving average of another server that is up, has
// answered recently and is not marked slow, and margin more.
func (h *health) slowerThan(i int, mine, margin time.Duration, now time.Time) bool {
	if mine < margin {
		return false
	}
	for j := range h.servers {
		if j == i || h.isDown(j, now) || sinceEpoch(now) < h.activity[j].slowUntil.Load() {
			continue
		}
		if theirs, ok := h.recentLatency(j, now); ok && mine > slowRatio*theirs && mine-theirs > margin {
			return true
		}
	}
	return false
}

// markMargin is how much longer than another server's average a server's
// fastest recent answers must take, besides slowRatio times, to mark it
// slow (health.end). Far more than slowMargin, which only orders dials:
// the other server's answer times come from the few reads explored or
// hedged there, one at a time, while this one's come under the pool's
// load. On a LAN a busy server's answers take a few milliseconds more than
// an idle one's, which is no reason to move every connection off it; a
// replica behind a WAN link, or slowed 20 times, is 10 ms behind and more.
const markMargin = 10 * time.Millisecond

// answeredElsewhere reports whether a server other than i has answered an
// operation since the pool started.
func (h *health) answeredElsewhere(i int) bool {
	for j := range h.servers {
		if j != i && h.activity[j].lastAnswer.Load() != 0 {
			return true
		}
	}
	return false
}

// markedSlow reports whether a search was moved off server i within slowFor
// and another server, up and not marked, is there to go to.
func (h *health) markedSlow(i int, now time.Time) bool {
	return sinceEpoch(now) < h.activity[i].slowUntil.Load() && h.elsewhereToGo(i, now)
}

// recentLatency returns server i's moving-average answer time, unless it has
// answered nothing for slowForgetAfter (then the average is forgotten).
func (h *health) recentLatency(i int, now time.Time) (time.Duration, bool) {
	a := &h.activity[i]
	last := a.lastAnswer.Load()
	if last == 0 {
		return 0, false
	}
	if sinceEpoch(now)-last > int64(slowForgetAfter) {
		a.latency.Store(0)
		a.baseline.Store(0)
		a.floor.Store(0)
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
		if j != i && !h.isDown(j, now) && sinceEpoch(now) >= h.activity[j].slowUntil.Load() {
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
// waited that long on i should go (moved, without a hedge lane).
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
// server usually takes, while another server is up, or that its answers
// take much longer than another server's (slowerThanAnother, health.end):
// the server counts as slow for slowFor, so new work goes elsewhere at
// once.
func (h *health) markSlow(i int, now time.Time) {
	h.activity[i].slowUntil.Store(sinceEpoch(now.Add(slowFor)))
}

// slowFor is how long one search moved off a server marks it slow.
const slowFor = 5 * time.Second

// moveBudget bounds the reads hedged (or, without a hedge lane, moved) to
// another server: each read earns a twentieth of a hedge, so that over time
// at most about one read in twenty is sent twice. It holds up to as many
// hedges as reads can be in flight at once, between 10 and moveBurst, and
// starts full: when a server slows, every read running on it then can be
// hedged at once, and the connections to it, shared by them, drain. So a
// burst of up to moveBurst extra requests may come before the one in twenty.
type moveBudget struct {
	milli atomic.Int64
	most  int64 // moves in hand at most, in thousandths
}

// moveBurst is the most hedges the budget holds: the reads in flight on
// the pool's connections to one slowing server, at the default size.
const moveBurst = 32

func newMoveBudget(inFlight int) *moveBudget {
	b := &moveBudget{most: 1000 * int64(min(max(inFlight, 10), moveBurst))}
	b.milli.Store(b.most)
	return b
}

func (b *moveBudget) earn() {
	if b.milli.Load() < b.most {
		b.milli.Add(50)
	}
}

// refund gives back a move spent on a hedge that could not be sent.
func (b *moveBudget) refund() {
	for {
		v := b.milli.Load()
		if b.milli.CompareAndSwap(v, min(v+1000, b.most)) {
			return
		}
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

// hedgeAfter is how long a read may wait on server i before it is hedged
// (hedge.go): the 99th percentile of its recent answer times, so that about
// one healthy read in a hundred is hedged, or twice what it usually takes if
// that is sooner (a long tail, as a loaded machine's, would hedge a server
// that slowed less than its tail late or never), and at least hedgeMargin
// past what it usually takes. Before enough answers are known, twice what
// it usually takes and 3 hedgeMargins more. 0 while nothing is known of it.
func (h *health) hedgeAfter(i int) time.Duration {
	a := &h.activity[i]
	base := time.Duration(a.baseline.Load())
	if base == 0 {
		return 0
	}
	if p99 := a.tail.percentile99(); p99 > 0 {
		return max(min(p99, 2*base), base+hedgeMargin)
	}
	return max(2*base, base+3*hedgeMargin)
}

// longestHedgeAfter returns the longest hedge delay of the servers with
// one (hedgeAfter), 0 if none has.
func (h *health) longestHedgeAfter() time.Duration {
	var longest time.Duration
	for i := range h.servers {
		longest = max(longest, h.hedgeAfter(i))
	}
	return longest
}

// hedgeMargin is the least a read waits past what its server usually takes
// before it is hedged: a Go timer on a busy VM fires a millisecond late, and
// a LAN's answers vary by about as much.
const hedgeMargin = time.Millisecond

// readsLaneFirst reports whether a server other than the hedge lane's
// (lane; -1 while the lane has no connection) is marked slow or suspect
// while another is there to go to: reads then go to the hedge lane first.
func (h *health) readsLaneFirst(now time.Time, lane int) bool {
	t := sinceEpoch(now)
	for i := range h.servers {
		a := &h.activity[i]
		if i != lane && (t < a.slowUntil.Load() || t < a.suspectUntil.Load()) && h.elsewhereToGo(i, now) {
			return true
		}
	}
	return false
}

// hedgeWon records that a hedge on server winner answered a read before
// server loser did, and reports whether loser is now marked slow. started
// is when the read began on loser.
//
// A busy machine delays some answers of a healthy server past its hedge
// delay, and some of those hedges win, often several at once: the reads of
// a burst that came in together. What tells a server that slowed from one
// that is only busy is whether reads that came after are overtaking: a win
// counts against loser only when loser has answered no operation started
// after this read (lastAnsweredStart). A server that slowed answers the
// reads sent to it in turn, each late, and loses nearly every read it is
// hedged on; a busy server's straggler is overtaken by the reads of its
// burst, and a costly search by the cheap ones after it. So within hedgeWinWindow, at least hedgeWinsToMark
// such wins that are two in three of loser's hedged reads mark it (the
// budget, not the server, bounds how many reads are hedged, so the share
// is of the hedges). Each win lifts the winner's own mark, which the
// evidence no longer supports.
func (h *health) hedgeWon(loser, winner int, started, now time.Time) (marked bool) {
	if winner < 0 || winner == loser {
		return false
	}
	h.activity[winner].slowUntil.Store(0)
	h.activity[winner].suspectUntil.Store(0)
	a := &h.activity[loser]
	if h.overtaken(loser, started) {
		return false // loser answered an operation that came after this one: busy, not slow
	}
	hedged := a.hedged.Load() // this read's hedge included
	a.mu.Lock()
	if now.Sub(a.winsSince) > hedgeWinWindow {
		a.winsSince, a.wins, a.hedgedBefore = now, 0, hedged-1
	}
	a.wins++
	wins := a.wins
	mark := wins >= hedgeWinsToMark && 3*wins >= 2*int(hedged-a.hedgedBefore)
	a.mu.Unlock()
	switch {
	case mark:
		h.markSlow(loser, now)
	case wins >= hedgeWinsToSuspect:
		// Until enough wins decide, loser is suspect: new reads go to
		// the hedge lane first for a moment, rather than each waiting
		// out a hedge delay on a server that may have slowed.
		a.suspectUntil.Store(sinceEpoch(now.Add(max(suspectFor*h.hedgeAfter(loser), suspectAtLeast))))
	}
	return mark
}

const (
	hedgeWinsToMark = 5
	hedgeWinWindow  = time.Second
	// From hedgeWinsToSuspect such wins, a win that does not mark its
	// loser makes it suspect for suspectFor of its hedge delays,
	// suspectAtLeast at least: about as long as the other reads caught
	// with the ones that lost take to be hedged and win in their turn.
	// One win is not enough: one slow operation moves nothing.
	hedgeWinsToSuspect = 2
	suspectFor         = 2
	suspectAtLeast     = 10 * time.Millisecond
)

// hedgeRetries is how many times a read whose hedge could not go looks
// again (hedged), each after half its hedge delay.
const hedgeRetries = 8

// overtaken reports whether server i has answered an operation that
// started after started: reads that came after the one started then are
// being answered, so the server is busy rather than slowed, and that read
// is a straggler.
func (h *health) overtaken(i int, started time.Time) bool {
	return h.activity[i].lastAnsweredStart.Load() > sinceEpoch(started)
}
