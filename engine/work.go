package engine

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"time"
)

// The workers' jobs: dials, validations, rebinds and closes start here on a
// worker goroutine, and their results come back here as messages.

func (s *supervisor[C]) dial(w *waiter[C], key Key, replace bool) {
	s.dialing++
	s.c.Dials++
	if w != nil {
		w.dialing = true
		if w.share {
			s.shareDials[key.Name]++
		}
	} else {
		s.bgDialing++
	}
	ctx, timeout, connector, start := s.ctx, s.cfg.connectTimeout, s.connector, s.now
	s.a.Go(func() {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		conn, err := safely(func() (C, error) { return connector.Connect(ctx, key) })
		m := message[C]{kind: mDialed, w: w, err: err, x: &extra[C]{key: key, conn: conn, replace: replace, start: start}}
		if !s.a.Send(m) && err == nil {
			connector.Close(conn)
		}
	})
}

func (s *supervisor[C]) onDialed(m message[C]) {
	x := m.x
	s.dialing--
	w := m.w
	if w != nil {
		w.dialing = false
		if w.share {
			if s.shareDials[x.key.Name]--; s.shareDials[x.key.Name] == 0 {
				delete(s.shareDials, x.key.Name)
			}
		}
	} else {
		s.bgDialing--
	}
	if m.err != nil {
		s.c.DialErrors++
		err := &ConnectError{Key: x.key.Name, Err: m.err}
		s.cfg.logger.Debug("engine: dial failed", "key", x.key, "err", m.err)
		rejected := errors.Is(m.err, ErrKeyRejected)
		if rejected {
			s.reject(x.key, m.err)
		}
		switch {
		case w != nil && w.state == wQueued:
			s.waiters.Remove(&w.node)
			s.fail(w, err)
		case w == nil && !rejected:
			if x.replace {
				s.replace(x.key)
			}
			s.armRefill()
		}
		return
	}
	took := s.now.Sub(x.start)
	s.c.CreateTime += took
	if s.obs != nil {
		s.obs.Created(took)
	}
	delete(s.rejected, x.key.Name)
	e := s.newEntry(x.conn, x.key)
	if w == nil {
		s.back.Reset()
	}
	// The connection goes to the oldest waiter of its key, which is w unless
	// two dials for the key finished out of order: strict FIFO. w, if
	// younger, waits on (a dial's error, though, is w's alone).
	var oldest *waiter[C]
	if !s.closed && w != nil && w.state == wQueued {
		oldest = s.oldestWaiting(x.key.Name)
	}
	switch {
	case s.closed:
		s.closeEntry(e, "pool closed")
	case oldest != nil && s.servable(oldest):
		s.waiters.Remove(&oldest.node)
		s.deliver(oldest, e)
	default:
		s.park(e)
	}
}

// servable reports whether w may be handed a connection now: a share may
// not while WithMaxInFlight shares are out.
func (s *supervisor[C]) servable(w *waiter[C]) bool { return !w.share || s.inFlight < s.shareCap }

// oldestWaiting returns the oldest queued waiter for key; the caller knows
// there is one.
func (s *supervisor[C]) oldestWaiting(key string) *waiter[C] {
	for el := s.waiters.Front(); el != nil; el = el.Next() {
		if el.Value.key.Name == key {
			return el.Value
		}
	}
	panic("engine: oldestWaiting found no waiter for " + key)
}

// reject stops background dials for key, whose credentials the server
// refused: retried wrong passwords lock accounts. A caller's lease still
// dials, and its success lifts the stop. The default key's refusal (a wrong
// service password) is logged once; an end user's is the caller's business.
func (s *supervisor[C]) reject(key Key, err error) {
	if s.rejected[key.Name] {
		return
	}
	s.rejected[key.Name] = true
	if s.cfg.defaultKey == nil || s.cfg.defaultKey.Name != key.Name {
		return
	}
	s.cfg.logger.Error("engine: credentials refused; no background dial for this key until a lease for it succeeds",
		"key", key, "err", err)
}

// newEntry adds a just-dialed connection to the table, idle.
func (s *supervisor[C]) newEntry(conn C, key Key) *entry[C] {
	now := s.now
	life := s.cfg.maxLifetime
	if s.lifetimer != nil {
		life = min(life, s.lifetimer.Lifetime(conn, life))
	}
	if j := time.Duration(s.cfg.lifetimeJitter * float64(life)); j > 0 {
		life -= rand.N(j)
	}
	e := &entry[C]{conn: conn, key: key, created: now, checked: now, idleAt: now, expires: now.Add(life)}
	s.conns.add(e, eIdle)
	s.debug("open", e)
	return e
}

// check validates e, or rebinds it to w's key, on a worker.
func (s *supervisor[C]) check(e *entry[C], w *waiter[C], kind checkKind) {
	s.conns.move(e, eChecking)
	if w != nil {
		w.state = wChecking
	}
	var key Key
	if kind == rebind {
		key = w.key
		s.c.Rebinds++
	} else {
		s.c.Validations++
	}
	if kind == validateIdle {
		s.bgChecks++
	}
	ctx, timeout, conn, connector, rebinder := s.ctx, s.cfg.validateTimeout, e.conn, s.connector, s.rebinder
	s.a.Go(func() {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		_, err := safely(func() (struct{}, error) {
			if kind == rebind {
				return struct{}{}, rebinder.Rebind(ctx, conn, key)
			}
			return struct{}{}, connector.Validate(ctx, conn)
		})
		if !s.a.Send(message[C]{kind: mChecked, e: e, w: w, check: kind, err: err, x: &extra[C]{key: key}}) {
			connector.Close(conn)
		}
	})
}

func (s *supervisor[C]) onChecked(e *entry[C], w *waiter[C], kind checkKind, key Key, err error) {
	if kind == validateIdle {
		s.bgChecks--
	}
	waiting := w != nil && w.state == wChecking
	if err != nil {
		if kind == rebind {
			s.c.RebindErrors++
		} else {
			s.c.ValidationErrors++
		}
		s.closeEntry(e, "check failed: "+err.Error())
		switch {
		case waiting && s.closed:
			s.fail(w, ErrClosed)
		case waiting && errors.Is(err, ErrKeyRejected):
			s.reject(key, err)
			s.fail(w, &ConnectError{Key: key.Name, Err: err})
		case waiting:
			// Back to the front: it was older than everyone now queued.
			w.state = wQueued
			s.waiters.PushFrontElem(&w.node)
		case kind == validateIdle:
			s.replace(e.key)
		}
		return
	}
	if kind == rebind {
		s.conns.rekey(e, key)
		delete(s.rejected, key.Name)
	}
	e.checked = s.now
	switch {
	case s.closed:
		s.closeEntry(e, "pool closed")
		if waiting {
			s.fail(w, ErrClosed)
		}
	case waiting && s.servable(w):
		s.deliver(w, e)
	case waiting:
		// A share past WithMaxInFlight: back to the front, to be served
		// as the first share comes back.
		w.state = wQueued
		s.waiters.PushFrontElem(&w.node)
		s.park(e)
	default:
		s.park(e)
	}
}

// closeEntry closes e on a worker. e keeps its slot, and counts against the
// max size, until the Connector's Close has returned.
func (s *supervisor[C]) closeEntry(e *entry[C], why string) {
	// A connection closed under its shares (a forced Close) takes them
	// with it: their returns find it closing and do nothing.
	s.inFlight -= e.shares
	s.conns.move(e, eClosing) // off its key's shared list, while it still counts as sharing
	e.shares, e.doomErr = 0, nil
	if s.cfg.logger.Enabled(context.Background(), slog.LevelDebug) {
		s.cfg.logger.Debug("engine: close", "slot", e.slot, "key", e.key, "why", why)
	}
	conn, connector, log := e.conn, s.connector, s.cfg.logger
	s.a.Go(func() {
		if _, err := safely(func() (struct{}, error) { return struct{}{}, connector.Close(conn) }); err != nil {
			log.Warn("engine: closing a connection failed", "err", err)
		}
		s.a.Send(message[C]{kind: mClosed, e: e})
	})
}

func (s *supervisor[C]) onClosed(e *entry[C]) {
	s.conns.drop(e)
	s.c.Closed++
	if w := e.roomFor; w != nil {
		w.room = false
		e.roomFor = nil
	}
}
