package engine

import (
	"fmt"

	"github.com/fairpool/ldappool/actor"
)

// Serving the waiter queue: leases, cancellations, releases.

func (s *supervisor[C]) onLease(w *waiter[C]) {
	if s.closed {
		s.fail(w, ErrClosed)
		return
	}
	w.since = s.now
	if s.waiters.Len() == 0 && !w.fresh && !s.cfg.validateOnLease && s.servable(w) {
		// The common case: nobody waits and a connection of the key is
		// idle, or, for a share, carries fewer than its depth.
		if e := s.take(w); e != nil {
			s.deliver(w, e)
			return
		}
	}
	s.waiters.PushBackElem(&w.node)
	// Once answered, w is its caller's again, to reuse (result.free): it
	// is not read past an answer that dispatch gives it.
	if s.dispatchFor(w) {
		return
	}
	if w.state != wDone {
		w.waited = true
	}
	if w.state == wQueued && !w.dialing && !w.room && !w.covered && s.cfg.failFast {
		s.waiters.Remove(&w.node)
		s.c.Exhausted++
		s.fail(w, fmt.Errorf("%w: %d connections open, %d in use, %d operations in flight, %d callers waiting",
			ErrExhausted, s.conns.open, s.conns.inUse, s.inFlight, s.waiters.Len()))
	}
}

// dispatch hands out what can be handed out, oldest waiter first. A waiter
// that can neither take an idle connection nor have one dialed stops the
// walk: serving a younger waiter before it would break FIFO order. A waiter
// whose dial is in flight (or whose room for one is being made) does not stop
// it, but takes an idle connection of its key if one turns up, since that is
// sooner than its dial.
//
// A share takes the least-loaded connection of its key: an idle one, else
// the one carrying the fewest shares below WithOpsPerConn; only when every
// one is at that depth is a connection dialed for it. While WithMaxInFlight
// shares are out, a share waits like a lease when the pool is full.
//
// A dial for a share waiter brings room for WithOpsPerConn shares: the
// share waiters of its key behind it, up to that many, wait for it rather
// than each dialing (covered).
func (s *supervisor[C]) dispatch() { s.dispatchFor(nil) }

// dispatchFor is dispatch, reporting whether it answered arriving.
func (s *supervisor[C]) dispatchFor(arriving *waiter[C]) (answered bool) {
	clear(s.needRoom)
	for el := s.waiters.Front(); el != nil; {
		w, next := el.Value, el.Next()
		w.covered = false
		if !s.servable(w) {
			if !w.dialing && !w.room {
				return answered
			}
			el = next
			continue
		}
		e := s.take(w)
		switch {
		case e != nil:
			s.waiters.Remove(el)
			if e.state == eIdle && (w.fresh || s.cfg.validateOnLease) {
				s.check(e, w, validateOnLease)
			} else {
				s.deliver(w, e)
				answered = answered || w == arriving
			}
		case w.dialing, w.room:
			if w.share {
				s.needRoom[w.key.Name]++
			}
		case w.share && s.covered(w):
			w.covered = true
		case s.canDial(true):
			s.dial(w, w.key, false)
		case s.reassign(el):
		default:
			return answered
		}
		el = next
	}
	return answered
}

// covered counts w among its key's share waiters with no room yet, and
// reports whether the dials in flight for them bring room enough for it.
func (s *supervisor[C]) covered(w *waiter[C]) bool {
	n := s.needRoom[w.key.Name] + 1
	s.needRoom[w.key.Name] = n
	return n <= timesAtMost(s.shareDials[w.key.Name], s.cfg.opsPerConn)
}

// take returns a connection w may have at once, without a dial: an idle one
// of its key, or for a share the least-loaded one of its key below its
// depth; nil if there is none.
func (s *supervisor[C]) take(w *waiter[C]) *entry[C] {
	e := s.popIdle(w.key.Name)
	if e == nil && w.share {
		e = s.conns.leastLoaded(w.key.Name, s.cfg.opsPerConn, s.now)
	}
	return e
}

// popIdle returns the most recently used idle connection of key, closing on
// the way any past their lifetime or that the Connector's Liveness finds
// dead. The caller gives it its next state.
func (s *supervisor[C]) popIdle(key string) *entry[C] {
	for e := s.conns.top(key); e != nil; e = s.conns.top(key) {
		switch {
		case !s.now.Before(e.expires):
			s.c.Expiries++
			s.closeEntry(e, "lifetime over")
		case s.liveness != nil && !s.liveness.Alive(e.conn):
			s.c.Dead++
			s.closeEntry(e, "closed by the server")
		default:
			return e
		}
	}
	return nil
}

// reassign gives the oldest waiter, when the pool is full, the idle
// connection of another key that has been idle longest: rebound if the
// connector can, else closed, and the waiter's dial starts when the close has
// returned, so that the two never count past the maximum together.
func (s *supervisor[C]) reassign(el *actor.Elem[*waiter[C]]) bool {
	if s.conns.idle == 0 {
		return false // the common case of a full pool: nothing to walk
	}
	e := s.conns.oldestIdle()
	if e == nil || (s.rebinder == nil && s.dialing >= s.cfg.maxDialing) {
		return false
	}
	w := el.Value
	if s.rebinder != nil {
		s.waiters.Remove(el)
		s.check(e, w, rebind)
		return true
	}
	w.room = true
	e.roomFor = w
	s.closeEntry(e, "making room for another key")
	return true
}

func (s *supervisor[C]) canDial(forWaiter bool) bool {
	if s.closed || s.dialing >= s.cfg.maxDialing {
		return false
	}
	limit := s.cfg.maxSize
	if forWaiter && s.cfg.softLimit > 0 {
		limit = s.cfg.softLimit
	}
	return s.conns.open+s.dialing < limit
}

// deliver hands e, idle, checked or just dialed, to w; for a share, e may
// be carrying shares already.
func (s *supervisor[C]) deliver(w *waiter[C], e *entry[C]) {
	now := s.now
	if !e.sharing() {
		s.conns.move(e, eLeased)
		e.leasedAt = now
	}
	e.uses++
	if w.share {
		if !e.sharing() {
			s.conns.share(e)
		}
		e.shares++
		s.inFlight++
		s.c.Shares++
	} else {
		s.c.Leases++
	}
	wait := max(now.Sub(w.since), 0)
	s.c.WaitTime += wait
	s.c.MaxWait = max(s.c.MaxWait, wait)
	if s.obs != nil {
		s.obs.Waited(wait)
	}
	if w.waited {
		s.c.Waits++
	}
	w.state = wDone
	w.reply <- result[C]{e: e, conn: e.conn, key: e.key.Name, leasedAt: now, reused: e.uses > 1,
		shared: w.share, free: w.free()}
	s.debug("lease", e)
}

// fail answers w with err.
func (s *supervisor[C]) fail(w *waiter[C], err error) {
	w.state = wDone
	w.reply <- result[C]{err: err, free: w.free()}
}

func (s *supervisor[C]) onCancel(w *waiter[C]) {
	s.c.Timeouts++
	switch w.state {
	case wQueued:
		s.waiters.Remove(&w.node) // a dial in flight for it now feeds the pool
	case wChecking:
		// the connection being checked for it goes to the pool when done
	case wDone:
		// It was answered as it gave up: take a connection back.
		select {
		case r := <-w.reply:
			switch {
			case r.e == nil:
			case w.share:
				s.c.Shares--
				if r.e.sharing() { // unless a forced Close closed it
					s.unshare(r.e, nil)
				}
			default:
				s.c.Leases--
				s.takeBack(r.e, nil) // never used: no hold to count
			}
		default:
		}
	}
	w.state = wDone
}

func (s *supervisor[C]) onRelease(e *entry[C], err error) {
	if e.state != eLeased {
		// A forced Close closed it under its holder.
		return
	}
	if e.sharing() {
		s.unshare(e, err)
		return
	}
	held := s.now.Sub(e.leasedAt)
	s.c.UseTime += held
	if s.obs != nil {
		s.obs.Used(held)
	}
	s.takeBack(e, err)
}

// unshare takes back one share of e, which a discard (err non-nil) dooms:
// it takes no new share and is closed when its last comes back. The last
// share's return takes the connection back as a lease's release would.
func (s *supervisor[C]) unshare(e *entry[C], err error) {
	e.shares--
	s.inFlight--
	if err != nil && e.doomErr == nil {
		e.doomErr = err
	}
	if e.shares > 0 {
		return
	}
	s.conns.unshare(e)
	held := s.now.Sub(e.leasedAt)
	s.c.UseTime += held
	if s.obs != nil {
		s.obs.Used(held)
	}
	err, e.doomErr = e.doomErr, nil
	s.takeBack(e, err)
}

// takeBack closes, checks or parks a leased connection that came back,
// unless a forced Close closed it already.
func (s *supervisor[C]) takeBack(e *entry[C], err error) {
	if e.state != eLeased {
		return
	}
	s.debug("release", e)
	switch {
	case err != nil:
		s.c.Discards++
		s.closeEntry(e, err.Error())
	case s.closed:
		s.closeEntry(e, "pool closed")
	case !s.now.Before(e.expires):
		s.c.Expiries++
		s.closeEntry(e, "lifetime over")
	case s.cfg.maxIdle == 0:
		s.closeEntry(e, "WithMaxIdle(0): no connection is kept")
	case s.cfg.validateOnRel:
		s.check(e, nil, validateOnRelease)
	default:
		s.park(e)
	}
}

// park makes e idle and serves the waiters with it; if nobody took it and the
// pool is past its max size (grown under its soft limit) or holds more idle
// connections than WithMaxIdle, e is closed.
func (s *supervisor[C]) park(e *entry[C]) {
	e.idleAt = s.now
	s.conns.move(e, eIdle)
	s.dispatch()
	if e.state == eIdle && (s.conns.open-s.conns.closing > s.cfg.maxSize || (s.cfg.maxIdle >= 0 && s.conns.idle > s.cfg.maxIdle)) {
		s.c.IdleClosed++
		s.closeEntry(e, "above the max size or max idle")
	}
}
