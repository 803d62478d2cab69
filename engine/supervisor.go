package engine

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/fairpool/ldappool/actor"
)

// supervisor holds all of a pool's state. The loop never blocks: dials,
// validations, rebinds and closes run on workers whose results come back as
// messages, and every reply goes on a channel of capacity one that nobody
// else sends on.
//
// The files of this package split its work by job: waiters.go serves the
// queue, work.go starts and ends the workers' jobs, upkeep.go keeps the pool
// warm and pruned, table.go holds the connections, invariants.go states the
// arithmetic between the counts below and checks it in tests.
//
//	dialing    <= cfg.maxDialing; bgDialing <= dialing
//	bgChecks   <= conns.checking
//	conns.open + dialing <= max(cfg.maxSize, cfg.softLimit)
//	inFlight == Σ shares of the entries carrying shares <= shareCap
//	an entry carries shares <=> it is leased, 0 < shares <= cfg.opsPerConn, and it is in its key's shared list
//	every waiter in the queue is wQueued
//	closed => the queue is empty and conns.idle == 0
type supervisor[C any] struct {
	// Set by newSupervisor and never changed: read by the loop and by the
	// workers it starts.
	p          *Pool[C]
	cfg        *config
	connector  Connector[C]
	rebinder   Rebinder[C]   // nil when the connector cannot rebind
	lifetimer  Lifetimer[C]  // nil when every connection gets cfg.maxLifetime
	classifier Classifier[C] // nil when only ErrBroken says a connection is broken
	liveness   Liveness[C]   // nil when idle connections are handed out unchecked
	verifyFail func(error)   // nil unless the package's tests check the invariants
	a          *actor.Actor[message[C]]
	ctx        context.Context // ends dials and checks when the pool closes
	cancel     context.CancelFunc

	// Owned by the loop; never touched elsewhere.
	waiters      actor.Queue[*waiter[C]] // strictly FIFO across keys
	conns        table[C]
	dialing      int             // dials in flight
	inFlight     int             // shares out: Σ entry.shares
	shareDials   map[string]int  // dials in flight for share waiters, by key: each brings room for opsPerConn shares
	needRoom     map[string]int  // dispatch's scratch: share waiters of a key walked with no room yet
	shareCap     int             // shares out at most (WithMaxInFlight)
	bgDialing    int             // of which background dials (WithMinIdle and replacements)
	bgChecks     int             // background validations in flight (bounded by maxDialing)
	replacements []Key           // keys to dial for, once nobody waits, after a failed background check
	rejected     map[string]bool // keys whose credentials were refused: no background dial until one succeeds
	back         backoff.BackOff // delays background dials after failures
	timers       [3]*time.Timer  // prune, validate, refill
	closed       bool
	done         bool      // finish ran
	now          time.Time // read once a run of messages: the clock is a tenth of a lease's cost
	clocked      bool      // now was read in this run of messages
	last         msgKind   // the run's last message, for verify's report
	c            Counters
	obs          Observer // nil: nobody is told of each event
}

const (
	timerPrune = iota
	timerValidate
	timerRefill
)

func newSupervisor[C any](p *Pool[C], connector Connector[C]) *supervisor[C] {
	s := &supervisor[C]{
		p:          p,
		cfg:        &p.cfg,
		connector:  connector,
		conns:      newTable[C](),
		rejected:   make(map[string]bool),
		shareDials: make(map[string]int),
		needRoom:   make(map[string]int),
		back:       p.cfg.newBackOff(),
	}
	s.rebinder, _ = connector.(Rebinder[C])
	s.lifetimer, _ = connector.(Lifetimer[C])
	s.classifier, _ = connector.(Classifier[C])
	s.liveness, _ = connector.(Liveness[C])
	s.verifyFail = invariantCheck
	s.shareCap = p.cfg.maxInFlight
	if s.shareCap == 0 {
		s.shareCap = timesAtMost(max(p.cfg.maxSize, p.cfg.softLimit), p.cfg.opsPerConn)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s
}

func (s *supervisor[C]) handle(m message[C]) {
	if !s.clocked {
		s.now = time.Now()
		s.clocked = true
	}
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
		s.onChecked(m.e, m.w, m.check, m.x.key, m.err)
	case mClosed:
		s.onClosed(m.e)
	case mPrune:
		s.prune()
		if !s.closed {
			s.timers[timerPrune] = s.a.After(s.cfg.prunePeriod, message[C]{kind: mPrune})
		}
	case mValidateAll:
		s.validateAllIdle()
		if !s.closed {
			s.timers[timerValidate] = s.a.After(s.cfg.validatePeriod, message[C]{kind: mValidateAll})
		}
	case mRefill:
		s.timers[timerRefill] = nil
	case mStats:
		s.schedule() // what the messages before it in this run made possible
		m.x.stats <- s.snapshot()
	case mClose:
		s.close()
	case mForceClose:
		s.forceClose()
	case mObserver:
		s.obs = m.x.obs
	}
	s.last = m.kind
}

// flush ends a run of messages (see actor.StartBatched): it serves what they
// made possible, and the next message reads the clock afresh. The pool is
// busy while callers wait: the releases that will serve them are due.
func (s *supervisor[C]) flush() (busy bool) {
	s.clocked = false
	s.schedule()
	if s.verifyFail != nil {
		if err := s.verify(); err != nil {
			s.verifyFail(fmt.Errorf("after message %d: %w", s.last, err))
		}
	}
	return s.waiters.Len() > 0
}

// batch is how many messages the loop takes in a row before flush. The
// clock read once a run is that much older for the last of them: a few
// microseconds.
const batch = 16

// invariantCheck, when set (by the package's tests), is called with what
// verify found wrong after a message.
var invariantCheck func(error)

// schedule runs after every message: serve waiters, keep the pool warm, and
// finish a close once nothing is out.
func (s *supervisor[C]) schedule() {
	if s.done {
		return
	}
	s.dispatch()
	s.refill()
	if s.closed && s.conns.open == 0 && s.dialing == 0 {
		s.finish()
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
		s.fail(el.Value, ErrClosed)
	}
	for _, e := range s.conns.idleEntries() {
		s.closeEntry(e, "pool closed")
	}
}

// forceClose closes the connections still leased, under their holders. Their
// Release, when it comes, finds them closing and does nothing.
func (s *supervisor[C]) forceClose() {
	s.close()
	for _, e := range s.conns.slots {
		if e != nil && e.state == eLeased {
			s.closeEntry(e, "pool closed while leased")
		}
	}
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
