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
//	idle == Σ len(idle stacks) == entries in eIdle, each in its key's stack
//	inUse, checking, closing == entries in eLeased, eChecking, eClosing
//	each key's open == its entries in slots; a key with none has no group
//
// An entry holds its key's group, so that a lease and a release change the
// stacks without looking the key up.
//
// A connection counts as open from the end of its dial until its Close has
// returned, so that a replacement never overlaps it past the maximum.
type table[C any] struct {
	slots    []*entry[C]
	keys     map[string]*keyConns[C] // by key name, while the key has an open entry
	shared   int                     // entries carrying shares (counted in inUse too)
	open     int
	idle     int
	inUse    int
	checking int
	closing  int
}

// keyConns is one key's open entries: the idle ones in a LIFO stack, and
// those carrying shares.
type keyConns[C any] struct {
	idle   []*entry[C]
	shared []*entry[C]
	open   int
}

func newTable[C any]() table[C] {
	return table[C]{keys: make(map[string]*keyConns[C])}
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
	t.join(e)
	e.state = st
	t.count(st, +1)
	if st == eIdle {
		t.push(e)
	}
}

// share lists e, leased, as carrying shares.
func (t *table[C]) share(e *entry[C]) {
	e.group.shared = append(e.group.shared, e)
	t.shared++
}

// unshare takes e off its key's shared list.
func (t *table[C]) unshare(e *entry[C]) {
	g := e.group
	for i, x := range g.shared {
		if x == e {
			g.shared = append(g.shared[:i], g.shared[i+1:]...)
			break
		}
	}
	t.shared--
}

// leastLoaded returns the connection of key carrying the fewest shares,
// fewer than depth, that may take another (not past its lifetime at now,
// nor doomed), or nil.
func (t *table[C]) leastLoaded(key string, depth int, now time.Time) *entry[C] {
	g := t.keys[key]
	if g == nil {
		return nil
	}
	var best *entry[C]
	for _, e := range g.shared {
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
	t.leave(e)
}

// rekey moves e, neither idle nor carrying shares, to key (a rebind).
func (t *table[C]) rekey(e *entry[C], key Key) {
	t.leave(e)
	e.key = key
	t.join(e)
}

// join counts e in its key's group, which it makes if need be.
func (t *table[C]) join(e *entry[C]) {
	g := t.keys[e.key.Name]
	if g == nil {
		g = &keyConns[C]{}
		t.keys[e.key.Name] = g
	}
	g.open++
	e.group = g
}

// leave takes e out of its key's group, which goes once empty.
func (t *table[C]) leave(e *entry[C]) {
	if e.group.open--; e.group.open == 0 {
		delete(t.keys, e.key.Name)
	}
	e.group = nil
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

func (t *table[C]) push(e *entry[C]) { e.group.idle = append(e.group.idle, e) }

func (t *table[C]) unstack(e *entry[C]) {
	g := e.group
	for i := len(g.idle) - 1; i >= 0; i-- {
		if g.idle[i] == e {
			g.idle = append(g.idle[:i], g.idle[i+1:]...)
			break
		}
	}
}

// top returns the most recently parked idle entry of key, or nil.
func (t *table[C]) top(key string) *entry[C] {
	if g := t.keys[key]; g != nil && len(g.idle) > 0 {
		return g.idle[len(g.idle)-1]
	}
	return nil
}

// idleOf returns how many entries of key are idle.
func (t *table[C]) idleOf(key string) int {
	if g := t.keys[key]; g != nil {
		return len(g.idle)
	}
	return 0
}

// oldestIdle returns the entry idle longest, whatever its key, or nil.
func (t *table[C]) oldestIdle() *entry[C] {
	var oldest *entry[C]
	for _, g := range t.keys {
		if len(g.idle) > 0 && (oldest == nil || g.idle[0].idleAt.Before(oldest.idleAt)) {
			oldest = g.idle[0]
		}
	}
	return oldest
}

// idleEntries returns a copy of every idle entry, for walks that change the
// stacks.
func (t *table[C]) idleEntries() []*entry[C] {
	out := make([]*entry[C], 0, t.idle)
	for _, g := range t.keys {
		out = append(out, g.idle...)
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
