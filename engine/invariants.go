package engine

import (
	"errors"
	"fmt"
)

// verify checks the arithmetic written on the supervisor and on table
// against a count made from scratch. The package's tests call it after every
// message; it costs a walk of every slot, so the pool does not.
func (s *supervisor[C]) verify() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	t := &s.conns
	var n [4]int
	open := 0
	for i, e := range t.slots {
		if e == nil {
			continue
		}
		open++
		if e.slot != i {
			bad("slot %d holds an entry that thinks it is in slot %d", i, e.slot)
		}
		n[e.state]++
	}
	shares, sharing := 0, 0
	for i, e := range t.slots {
		if e == nil {
			continue
		}
		if e.sharing() {
			sharing++
			shares += e.shares
			if e.state != eLeased || e.shares > s.cfg.opsPerConn {
				bad("slot %d carries %d shares in state %v (depth %d)", i, e.shares, e.state, s.cfg.opsPerConn)
			}
		} else if e.shares < 0 || e.doomErr != nil {
			bad("slot %d counts %d shares (doomed: %v)", i, e.shares, e.doomErr)
		}
	}
	listed := 0
	for name, g := range t.keys {
		for _, e := range g.shared {
			listed++
			if !e.sharing() || e.key.Name != name || e.group != g || t.slots[e.slot] != e {
				bad("shared list %q holds slot %d (%d shares) of key %q", name, e.slot, e.shares, e.key.Name)
			}
		}
	}
	if sharing != t.shared || listed != t.shared {
		bad("shared %d counted, %d entries carry shares, %d listed", t.shared, sharing, listed)
	}
	shareDials := 0
	for key, n := range s.shareDials {
		if n <= 0 {
			bad("%d share dials counted for key %q", n, key)
		}
		shareDials += n
	}
	if shareDials > s.dialing {
		bad("%d share dials of %d dials", shareDials, s.dialing)
	}
	if shares != s.inFlight || s.inFlight > s.shareCap {
		bad("in flight %d counted, %d shares on entries, cap %d", s.inFlight, shares, s.shareCap)
	}
	stacked := 0
	opens := make(map[string]int, len(t.keys))
	for _, e := range t.slots {
		if e != nil {
			opens[e.key.Name]++
			if e.group != t.keys[e.key.Name] {
				bad("slot %d of key %q is not in its key's group", e.slot, e.key.Name)
			}
		}
	}
	for name, g := range t.keys {
		if g.open != opens[name] || g.open == 0 {
			bad("key %q counts %d open, %d in slots", name, g.open, opens[name])
		}
		for _, e := range g.idle {
			stacked++
			if e.state != eIdle || e.key.Name != name || e.group != g || t.slots[e.slot] != e {
				bad("stack %q holds slot %d in state %v for key %q", name, e.slot, e.state, e.key.Name)
			}
		}
	}
	if open != t.open || t.open != t.idle+t.inUse+t.checking+t.closing {
		bad("open %d counted, %d in slots; idle %d + inUse %d + checking %d + closing %d",
			t.open, open, t.idle, t.inUse, t.checking, t.closing)
	}
	if n[eIdle] != t.idle || stacked != t.idle {
		bad("idle %d counted, %d entries idle, %d stacked", t.idle, n[eIdle], stacked)
	}
	if n[eLeased] != t.inUse || n[eChecking] != t.checking || n[eClosing] != t.closing {
		bad("inUse/checking/closing counted %d/%d/%d, entries %d/%d/%d",
			t.inUse, t.checking, t.closing, n[eLeased], n[eChecking], n[eClosing])
	}
	if s.dialing < 0 || s.dialing > s.cfg.maxDialing || s.bgDialing < 0 || s.bgDialing > s.dialing {
		bad("dialing %d (background %d), max %d", s.dialing, s.bgDialing, s.cfg.maxDialing)
	}
	if s.bgChecks < 0 || s.bgChecks > t.checking {
		bad("background checks %d of %d checking", s.bgChecks, t.checking)
	}
	if limit := max(s.cfg.maxSize, s.cfg.softLimit); t.open+s.dialing > limit {
		bad("open %d + dialing %d exceeds the limit %d", t.open, s.dialing, limit)
	}
	queued := 0
	for el := s.waiters.Front(); el != nil; el = el.Next() {
		queued++
		if el.Value.state != wQueued {
			bad("a queued waiter is in state %d", el.Value.state)
		}
	}
	if queued != s.waiters.Len() {
		bad("queue length %d, %d walked", s.waiters.Len(), queued)
	}
	if s.closed && (queued > 0 || t.idle > 0) {
		bad("closed with %d waiters and %d idle", queued, t.idle)
	}
	return errors.Join(errs...)
}
