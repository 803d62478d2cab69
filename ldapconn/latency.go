package ldapconn

import (
	"time"
)

// Latency-aware choice of server: as OpenLDAP's load balancer picks the
// better of its servers by recent latency, the pool moves new work off a
// server that answers much more slowly than another that is up. Such a
// server is "slow": it goes last in the dial order (servers.go, order), and
// its idle connections are closed instead of lent (dial.go, Alive), so the
// next lease dials the faster server. A slowdown of one server out of two
// thus costs the operations already in flight on it, not the rest of the
// run.
//
// The verdict follows the moving average of each server's answer times
// (stall.go, end), against the other servers' or against its own slower
// moving average (its baseline), and lapses: a server that has answered nothing for
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

// slow reports whether server i answers much more slowly than another
// server that is up and has answered recently; or, when no other server
// that is up has answered recently (under Failover the others serve
// nothing while the first is well), much more slowly than it used to: then
// the work moves to the next server, whose answers decide from there on.
// Nothing is probed: a probe's connection would take the pool past its
// maximum.
func (h *health) slow(i int, now time.Time) bool {
	mine, ok := h.recentLatency(i, now)
	if !ok || mine < slowMargin {
		return false
	}
	compared, another := false, false
	for j := range h.servers {
		if j == i || h.isDown(j, now) {
			continue
		}
		another = true
		if theirs, ok := h.recentLatency(j, now); ok {
			compared = true
			if mine > slowRatio*theirs && mine-theirs > slowMargin {
				return true
			}
		}
	}
	if compared || !another {
		return false
	}
	base := time.Duration(h.activity[i].baseline.Load())
	return mine > slowRatio*base && mine-base > slowMargin
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
