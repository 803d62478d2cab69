package engine

import (
	"math"
	"time"
)

// table is the pool's open connections: a slot each, and the idle ones in a
// LIFO stack per key, so that the hottest connection of a key is reused first.
// Owned by the supervisor goroutine. Every change of an entry's state goes
// through add, move and drop, which keep the counts; invariants.go checks,
// in tests after every message, that
//
//	open == non-nil slots == idle + inUse + checking + closing
//	idle == Σ len(stacks) == entries in eIdle, each in its key's stack
//	inUse, checking, closing == entries in eLeased, eChecking, eClosing
//
// A connection counts as open from the end of its dial until its Close has
// returned, so that a replacement never overlaps it past the maximum.
type table[C any] struct {
	slots    []*entry[C]
	stacks   map[string][]*entry[C] // idle entries by key name; an emptied stack is kept for reuse
	sharedBy map[string][]*entry[C] // entries carrying shares, by key name; an emptied list is kept
	shared   int                    // entries carrying shares (counted in inUse too)
	open     int
	idle     int
	inUse    int
	checking int
	closing  int
}

func newTable[C any]() table[C] {
	return table[C]{stacks: make(map[string][]*entry[C]), sharedBy: make(map[string][]*entry[C])}
}

// add gives e a slot, in state st.
func (t *table[C]) add(e *entry[C], st entryState) {
	e.slot = -1
	for i, x := range t.slots {
		if x == nil {
			e.slot = i
			break
		}
	}
	if e.slot < 0 {
		e.slot = len(t.slots)
		t.slots = append(t.slots, nil)
	}
	t.slots[e.slot] = e
	t.open++
	e.state = st
	t.count(st, +1)
	if st == eIdle {
		t.push(e)
	}
}

// share lists e, leased, as carrying shares.
func (t *table[C]) share(e *entry[C]) {
	t.sharedBy[e.key.Name] = append(t.sharedBy[e.key.Name], e)
	t.shared++
}

// unshare takes e off its key's shared list.
func (t *table[C]) unshare(e *entry[C]) {
	list := t.sharedBy[e.key.Name]
	for i, x := range list {
		if x == e {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	t.sharedBy[e.key.Name] = list // an emptied list is kept for reuse, as the idle stacks are
	t.shared--
}

// leastLoaded returns the connection of key carrying the fewest shares,
// fewer than depth, that may take another (not past its lifetime at now,
// nor doomed), or nil.
func (t *table[C]) leastLoaded(key string, depth int, now time.Time) *entry[C] {
	var best *entry[C]
	for _, e := range t.sharedBy[key] {
		if e.shares < depth && e.doomErr == nil && now.Before(e.expires) && (best == nil || e.shares < best.shares) {
			best = e
		}
	}
	return best
}

// move changes e's state, keeping the idle stacks and counts.
func (t *table[C]) move(e *entry[C], st entryState) {
	if e.sharing() {
		t.unshare(e)
	}
	if e.state == eIdle {
		t.unstack(e)
	}
	t.count(e.state, -1)
	e.state = st
	t.count(st, +1)
	if st == eIdle {
		t.push(e)
	}
}

// drop frees e's slot once its Close has returned.
func (t *table[C]) drop(e *entry[C]) {
	if e.state == eIdle {
		t.unstack(e)
	}
	t.count(e.state, -1)
	t.slots[e.slot] = nil
	t.open--
}

func (t *table[C]) count(st entryState, d int) {
	switch st {
	case eIdle:
		t.idle += d
	case eLeased:
		t.inUse += d
	case eChecking:
		t.checking += d
	case eClosing:
		t.closing += d
	}
}

func (t *table[C]) push(e *entry[C]) { t.stacks[e.key.Name] = append(t.stacks[e.key.Name], e) }

func (t *table[C]) unstack(e *entry[C]) {
	stack := t.stacks[e.key.Name]
	for i := len(stack) - 1; i >= 0; i-- {
		if stack[i] == e {
			stack = append(stack[:i], stack[i+1:]...)
			break
		}
	}
	t.stacks[e.key.Name] = stack
}

// top returns the most recently parked idle entry of key, or nil.
func (t *table[C]) top(key string) *entry[C] {
	if stack := t.stacks[key]; len(stack) > 0 {
		return stack[len(stack)-1]
	}
	return nil
}

// oldestIdle returns the entry idle longest, whatever its key, or nil.
func (t *table[C]) oldestIdle() *entry[C] {
	var oldest *entry[C]
	for _, stack := range t.stacks {
		if len(stack) > 0 && (oldest == nil || stack[0].idleAt.Before(oldest.idleAt)) {
			oldest = stack[0]
		}
	}
	return oldest
}

// idleEntries returns a copy of every idle entry, for walks that change the
// stacks, and drops the emptied stacks from the map.
func (t *table[C]) idleEntries() []*entry[C] {
	out := make([]*entry[C], 0, t.idle)
	for name, stack := range t.stacks {
		if len(stack) == 0 {
			delete(t.stacks, name)
		}
		out = append(out, stack...)
	}
	return out
}

// timesAtMost returns a × b for sizes a and b (not negative), or
// math.MaxInt if that overflows: math.MaxInt given as a size means no limit.
func timesAtMost(a, b int) int {
	if a > 0 && b > math.MaxInt/a {
		return math.MaxInt
	}
	return a * b
}
