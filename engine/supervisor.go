package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/fairpool/ldappool/actor"
)

// supervisor holds all of a pool's state. Every field is owned by the
// supervisor goroutine (the actor's loop) and never touched elsewhere; the
// loop never blocks: dials, validations, rebinds and closes run on workers
// whose results come back as messages, and every reply goes on a channel of
// capacity one that nobody else sends on.
type supervisor[C any] struct {
	p         *Pool[C]
	cfg       *config
	connector Connector[C]
	rebinder  Rebinder[C]  // nil when the connector cannot rebind
	lifetimer Lifetimer[C] // nil when every connection gets cfg.maxLifetime
	a         *actor.Actor[message[C]]
	ctx       context.Context // ends dials and checks when the pool closes
	cancel    context.CancelFunc

	waiters actor.Queue[*waiter[C]] // strictly FIFO across keys
	idle    map[string][]*entry[C]  // LIFO stack a key: the hottest connection is reused first
	idleN   int                     // idle connections, all keys
	slots   []*entry[C]             // every open connection; nil: a free slot
	open    int                     // non-nil slots
	inUse   int                     // entries leased
	dialing int                     // dials in flight
	checks  int                     // validations and rebinds in flight
	bgCheck int                     // background validations in flight (bounded by maxDialing)
	warm    int                     // background dials in flight (WithMinIdle and replacements)
	owed    []Key                   // replacements to dial when nobody is waiting
	back    backoff.BackOff         // delays background dials after failures
	timers  [3]*time.Timer          // prune, validate, refill
	closed  bool
	done    bool      // finish ran
	now     time.Time // read once a message: the clock is a tenth of a lease's cost
	c       Counters
}

const (
	timerPrune = iota
	timerValidate
	timerRefill
)

func newSupervisor[C any](p *Pool[C], connector Connector[C]) *supervisor[C] {
	s := &supervisor[C]{
		p:         p,
		cfg:       &p.cfg,
		connector: connector,
		idle:      make(map[string][]*entry[C]),
		back:      p.cfg.newBackOff(),
	}
	s.rebinder, _ = connector.(Rebinder[C])
	s.lifetimer, _ = connector.(Lifetimer[C])
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s
}

func (s *supervisor[C]) handle(m message[C]) {
	s.now = time.Now()
	switch m.kind {
	case mStart:
		s.timers[timerPrune] = s.a.After(s.cfg.prunePeriod, message[C]{kind: mPrune})
		if s.cfg.validatePeriod > 0 {
			s.timers[timerValidate] = s.a.After(s.cfg.validatePeriod, message[C]{kind: mValidateAll})
		}
	case mLease:
		s.onLease(m.w)
	case mCancel:
		s.onCancel(m.w)
	case mRelease:
		s.onRelease(m.e, m.err)
	case mDialed:
		s.onDialed(m)
	case mChecked:
		s.onChecked(m.e, m.w, m.check, m.key, m.err)
	case mPrune:
		s.prune()
		if !s.closed {
			s.timers[timerPrune] = s.a.After(s.cfg.prunePeriod, message[C]{kind: mPrune})
		}
	case mValidateAll:
		s.validateIdle()
		if !s.closed {
			s.timers[timerValidate] = s.a.After(s.cfg.validatePeriod, message[C]{kind: mValidateAll})
		}
	case mRefill:
		s.timers[timerRefill] = nil
	case mStats:
		m.stats <- s.snapshot()
	case mClose:
		s.close()
	case mForceClose:
		s.forceClose()
	}
	s.settle()
}

// settle runs after every message: serve waiters, keep the pool warm, and
// finish a close once nothing is out.
func (s *supervisor[C]) settle() {
	if s.done {
		return
	}
	s.dispatch()
	s.refill()
	if s.closed && s.inUse == 0 && s.dialing == 0 && s.checks == 0 {
		s.finish()
	}
}

func (s *supervisor[C]) onLease(w *waiter[C]) {
	if s.closed {
		w.state = wDone
		w.reply <- result[C]{err: ErrClosed}
		return
	}
	w.since = s.now
	if s.waiters.Len() == 0 && !w.fresh && !s.cfg.validateOnLease {
		// The common case: nobody waits and a connection of the key is idle.
		if e := s.popIdle(w.key.Name); e != nil {
			s.deliver(w, e)
			return
		}
	}
	w.elem = s.waiters.PushBack(w)
	s.dispatch()
	if w.state != wDone {
		w.waited = true
	}
	if w.state == wQueued && !w.dialing && s.cfg.failFast {
		s.waiters.Remove(w.elem)
		s.c.Exhausted++
		s.answer(w, fmt.Errorf("%w: %d connections open, %d in use, %d callers waiting",
			ErrExhausted, s.open, s.inUse, s.waiters.Len()))
	}
}

// dispatch hands out what can be handed out, oldest waiter first. A waiter
// that can neither take an idle connection nor have one dialed stops the
// walk: serving a younger waiter before it would break FIFO order. A waiter
// whose dial is in flight does not stop it, but takes an idle connection of
// its key if one turns up, since that is sooner than its dial.
func (s *supervisor[C]) dispatch() {
	for el := s.waiters.Front(); el != nil; {
		w, next := el.Value, el.Next()
		switch e := s.popIdle(w.key.Name); {
		case e != nil:
			s.waiters.Remove(el)
			if w.fresh || s.cfg.validateOnLease {
				s.check(e, w, checkLease)
			} else {
				s.deliver(w, e)
			}
		case w.dialing:
		case s.canDial(true):
			s.dial(w, w.key, false)
		case s.reassign(el):
		default:
			return
		}
		el = next
	}
}

// reassign gives the oldest waiter, when the pool is full, the idle
// connection of another key that has been idle longest: rebound if the
// connector can, else closed so that a dial for the waiter fits.
func (s *supervisor[C]) reassign(el *actor.Elem[*waiter[C]]) bool {
	if s.idleN == 0 || (s.rebinder == nil && s.dialing >= s.cfg.maxDialing) {
		return false
	}
	e := s.popOldestIdle()
	w := el.Value
	if s.rebinder != nil {
		s.waiters.Remove(el)
		s.check(e, w, checkRebind)
		return true
	}
	s.closeEntry(e, "making room for another key")
	s.dial(w, w.key, false)
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
	return s.open+s.dialing < limit
}

// deliver hands e to w.
func (s *supervisor[C]) deliver(w *waiter[C], e *entry[C]) {
	now := s.now
	e.state, e.leasedAt = eLeased, now
	e.uses++
	s.inUse++
	s.c.Leases++
	if wait := now.Sub(w.since); wait > 0 {
		s.c.WaitTime += wait
		s.c.MaxWait = max(s.c.MaxWait, wait)
	}
	if w.waited {
		s.c.Waits++
	}
	w.state = wDone
	w.reply <- result[C]{e: e, conn: e.conn, key: e.key.Name, leasedAt: now, reused: e.uses > 1}
	s.debug("lease", e)
}

// answer fails w with err.
func (s *supervisor[C]) answer(w *waiter[C], err error) {
	w.state = wDone
	w.reply <- result[C]{err: err}
}

func (s *supervisor[C]) onCancel(w *waiter[C]) {
	s.c.Timeouts++
	switch w.state {
	case wQueued:
		s.waiters.Remove(w.elem) // a dial in flight for it now feeds the pool
	case wChecking:
		// the connection being checked for it goes to the pool when done
	case wDone:
		// It was answered as it gave up: take a connection back.
		select {
		case r := <-w.reply:
			if r.e != nil {
				s.c.Leases--
				s.onRelease(r.e, nil)
			}
		default:
		}
	}
	w.state = wDone
}

func (s *supervisor[C]) onRelease(e *entry[C], err error) {
	s.inUse--
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
	case s.cfg.validateOnRel:
		s.check(e, nil, checkRelease)
	default:
		s.pool(e)
	}
}

// pool parks e as idle, unless the pool grew past its max size under its soft
// limit and nobody waits for e: then e is closed.
func (s *supervisor[C]) pool(e *entry[C]) {
	s.pushIdle(e)
	s.dispatch()
	if e.state == eIdle && s.open > s.cfg.maxSize {
		s.removeIdle(e)
		s.closeEntry(e, "above max size")
	}
}

func (s *supervisor[C]) dial(w *waiter[C], key Key, replace bool) {
	s.dialing++
	s.c.Dials++
	if w != nil {
		w.dialing = true
	} else {
		s.warm++
	}
	ctx, timeout, connector := s.ctx, s.cfg.connectTimeout, s.connector
	s.a.Go(func() {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		conn, err := safely(func() (C, error) { return connector.Connect(ctx, key) })
		m := message[C]{kind: mDialed, w: w, key: key, conn: conn, err: err}
		if replace {
			m.check = checkIdle
		}
		if !s.a.Send(m) && err == nil {
			connector.Close(conn)
		}
	})
}

func (s *supervisor[C]) onDialed(m message[C]) {
	s.dialing--
	w := m.w
	if w != nil {
		w.dialing = false
	} else {
		s.warm--
	}
	if m.err != nil {
		s.c.DialErrors++
		err := &ConnectError{Key: m.key.Name, Err: m.err}
		s.cfg.logger.Debug("engine: dial failed", "key", m.key, "err", m.err)
		switch {
		case w != nil && w.state == wQueued:
			s.waiters.Remove(w.elem)
			s.answer(w, err)
		case w == nil:
			if m.check == checkIdle {
				s.owe(m.key)
			}
			s.armRefill()
		}
		return
	}
	e := s.newEntry(m.conn, m.key)
	if w == nil {
		s.back.Reset()
	}
	switch {
	case s.closed:
		s.closeEntry(e, "pool closed")
	case w != nil && w.state == wQueued:
		s.waiters.Remove(w.elem)
		s.deliver(w, e)
	default:
		s.pool(e)
	}
}

func (s *supervisor[C]) newEntry(conn C, key Key) *entry[C] {
	now := s.now
	life := s.cfg.maxLifetime
	if s.lifetimer != nil {
		life = min(life, s.lifetimer.Lifetime(conn, life))
	}
	if j := time.Duration(s.cfg.lifetimeJitter * float64(life)); j > 0 {
		life -= rand.N(j)
	}
	e := &entry[C]{conn: conn, key: key, created: now, checked: now, expires: now.Add(life), slot: -1}
	for i, x := range s.slots {
		if x == nil {
			e.slot = i
			break
		}
	}
	if e.slot < 0 {
		e.slot = len(s.slots)
		s.slots = append(s.slots, nil)
	}
	s.slots[e.slot] = e
	s.open++
	s.debug("open", e)
	return e
}

// check validates e, or rebinds it to w's key, on a worker.
func (s *supervisor[C]) check(e *entry[C], w *waiter[C], kind checkKind) {
	e.state = eChecking
	s.checks++
	if w != nil {
		w.state = wChecking
	}
	var key Key
	if kind == checkRebind {
		key = w.key
		s.c.Rebinds++
	} else {
		s.c.Validations++
	}
	if kind == checkIdle {
		s.bgCheck++
	}
	ctx, timeout, conn, connector, rebinder := s.ctx, s.cfg.validateTimeout, e.conn, s.connector, s.rebinder
	s.a.Go(func() {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		_, err := safely(func() (struct{}, error) {
			if kind == checkRebind {
				return struct{}{}, rebinder.Rebind(ctx, conn, key)
			}
			return struct{}{}, connector.Validate(ctx, conn)
		})
		if !s.a.Send(message[C]{kind: mChecked, e: e, w: w, check: kind, key: key, err: err}) {
			connector.Close(conn)
		}
	})
}

func (s *supervisor[C]) onChecked(e *entry[C], w *waiter[C], kind checkKind, key Key, err error) {
	s.checks--
	if kind == checkIdle {
		s.bgCheck--
	}
	waiting := w != nil && w.state == wChecking
	if err != nil {
		if kind == checkRebind {
			s.c.RebindErrors++
		} else {
			s.c.ValidationErrors++
		}
		s.closeEntry(e, "check failed: "+err.Error())
		switch {
		case waiting && s.closed:
			s.answer(w, ErrClosed)
		case waiting && errors.Is(err, ErrKeyRejected):
			s.answer(w, &ConnectError{Key: key.Name, Err: err})
		case waiting:
			// Back to the front: it was older than everyone now queued.
			w.state = wQueued
			w.elem = s.waiters.PushFront(w)
		case kind == checkIdle:
			s.owe(e.key)
		}
		return
	}
	if kind == checkRebind {
		e.key = key
	}
	e.checked = s.now
	switch {
	case s.closed:
		s.closeEntry(e, "pool closed")
		if waiting {
			s.answer(w, ErrClosed)
		}
	case waiting:
		s.deliver(w, e)
	default:
		s.pool(e)
	}
}

func (s *supervisor[C]) closeEntry(e *entry[C], why string) {
	s.slots[e.slot] = nil
	s.open--
	s.c.Closed++
	if s.cfg.logger.Enabled(context.Background(), slog.LevelDebug) {
		s.cfg.logger.Debug("engine: close", "slot", e.slot, "key", e.key, "why", why)
	}
	conn, connector, log := e.conn, s.connector, s.cfg.logger
	s.a.Go(func() {
		if _, err := safely(func() (struct{}, error) { return struct{}{}, connector.Close(conn) }); err != nil {
			log.Warn("engine: closing a connection failed", "err", err)
		}
	})
}

// owe remembers to replace a connection of key that failed a background
// check, once nobody waits.
func (s *supervisor[C]) owe(key Key) {
	if len(s.owed) < s.cfg.maxSize {
		s.owed = append(s.owed, key)
	}
}

// refill dials in the background for WithMinIdle and owed replacements,
// unless a backoff timer is pending after a failure.
func (s *supervisor[C]) refill() {
	if s.closed || s.timers[timerRefill] != nil || s.waiters.Len() > 0 {
		return
	}
	if k := s.cfg.defaultKey; k != nil {
		for len(s.idle[k.Name])+s.warm < s.cfg.minIdle && s.canDial(false) {
			s.dial(nil, *k, false)
		}
	}
	for len(s.owed) > 0 && s.canDial(false) {
		k := s.owed[0]
		s.owed = s.owed[1:]
		s.dial(nil, k, true)
	}
}

func (s *supervisor[C]) armRefill() {
	if s.timers[timerRefill] == nil && !s.closed {
		s.timers[timerRefill] = s.a.After(s.back.NextBackOff(), message[C]{kind: mRefill})
	}
}

// prune closes idle connections past their lifetime, idle too long (down to
// WithMinIdle of them), or above the max size.
func (s *supervisor[C]) prune() {
	now := s.now
	for name, stack := range s.idle {
		if len(stack) == 0 {
			delete(s.idle, name)
		}
	}
	for _, stack := range s.idle {
		for _, e := range append([]*entry[C](nil), stack...) {
			switch {
			case !now.Before(e.expires):
				s.c.Expiries++
				s.removeIdle(e)
				s.closeEntry(e, "lifetime over")
			case s.cfg.idleTimeout > 0 && now.Sub(e.idleAt) >= s.cfg.idleTimeout && s.idleN > s.cfg.minIdle,
				s.open > s.cfg.maxSize:
				s.c.IdleClosed++
				s.removeIdle(e)
				s.closeEntry(e, "idle")
			}
		}
	}
}

// validateIdle checks, in the background, idle connections not checked for a
// validate period, at most WithMaxDialing at a time.
func (s *supervisor[C]) validateIdle() {
	now := s.now
	for _, stack := range s.idle {
		for _, e := range append([]*entry[C](nil), stack...) {
			if s.bgCheck >= s.cfg.maxDialing {
				return
			}
			if now.Sub(e.checked) >= s.cfg.validatePeriod {
				s.removeIdle(e)
				s.check(e, nil, checkIdle)
			}
		}
	}
}

func (s *supervisor[C]) close() {
	if s.closed {
		return
	}
	s.closed = true
	s.cancel()
	for i, t := range s.timers {
		if t != nil {
			t.Stop()
			s.timers[i] = nil
		}
	}
	for el := s.waiters.Front(); el != nil; el = s.waiters.Front() {
		s.waiters.Remove(el)
		s.answer(el.Value, ErrClosed)
	}
	for _, stack := range s.idle {
		for _, e := range stack {
			s.closeEntry(e, "pool closed")
		}
	}
	clear(s.idle)
	s.idleN = 0
}

// forceClose closes the connections still leased, under their holders.
func (s *supervisor[C]) forceClose() {
	for _, e := range s.slots {
		if e != nil && e.state == eLeased {
			s.closeEntry(e, "pool closed while leased")
			s.inUse--
		}
	}
	s.finish()
}

func (s *supervisor[C]) finish() {
	if s.done {
		return
	}
	s.done = true
	final := s.snapshot()
	s.p.final.Store(&final)
	close(s.p.drained)
	s.a.Stop()
}

func (s *supervisor[C]) debug(what string, e *entry[C]) {
	if s.cfg.logger.Enabled(context.Background(), slog.LevelDebug) {
		s.cfg.logger.Debug("engine: "+what, "slot", e.slot, "key", e.key, "uses", e.uses)
	}
}

// safely runs a Connector method, turning a panic into an error so that it
// reaches the caller the worker was working for.
func safely[T any](fn func() (T, error)) (v T, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("engine: connector panicked: %v", r)
		}
	}()
	return fn()
}
