package ldapconn

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/fairpool/ldappool/engine"
)

// Hedged reads. With more than one server, Search and Compare are hedged: a
// read still unanswered after its server's hedge delay (hedgeAfter: its
// recent 99th-percentile answer time, latency.go and tail.go) is sent once
// more to another server, the first decisive answer wins and the other
// request is abandoned (an LDAP Abandon for a search). A budget caps the
// extra requests (moveBudget: a burst of up to moveBurst, then one read in
// twenty); writes and binds are never hedged (rule 8).
//
// A hedge cannot wait for a dial: a dial and a bind take longer than the
// read it hedges. So one of the WithMaxSize connections is kept apart, warm,
// to another server (under Failover, one other than the server the pool
// serves from): the hedge lane, an engine pool of one connection carrying up
// to WithOpsPerConn reads. The service pool holds the others, so WithMaxSize,
// a soft limit and WithMaxInFlight still count every service connection and
// read (hedgeSplit). Hedges that win two in three of a server's hedged reads,
// over reads that no later operation there overtook, mark it slow (hedgeWon): reads go to the lane first while it is marked,
// and the service pool's connections to it are closed as their reads end,
// so new connections go elsewhere.

// errStandbyMisplaced is why the hedge lane's connection is closed when it
// is open to the server the pool serves from (after a failover): it would
// hedge nothing, and it would count a connection too many there.
var errStandbyMisplaced = errors.New("ldapconn: the hedge lane's connection is to the server the pool serves from, or to one that is down")

// standbyEvery is how many watchdog ticks (stallTick) pass between two
// checks of the hedge lane's connection (keepStandby).
const standbyEvery = 4

// hedgeLane is the pool's hedge lane; nil when there is none (one server,
// a WithMaxSize below 3, WithNoPool, or WithHedging(false)).
type hedgeLane struct {
	pool *engine.Pool[*Conn]
	slot int         // where its rows start in Stats: past every slot of the service pool
	used atomic.Bool // a read was hedgeable: keep the lane's connection open from now on
	// trying is set while a hedge runs on the lane's connection to a
	// server marked slow (onLane): one at a time.
	trying atomic.Bool
	// on is 1 + the server of the lane's open connection, 0 while it has
	// none: a read never waits for the lane to dial.
	on atomic.Int64
	// exploreAt is when (sinceEpoch) the next read may go to the lane
	// first to learn how fast its server answers (Pool.explore).
	exploreAt atomic.Int64
	// draining is set while a read goes the service pool's way to close
	// its connections to a server marked slow (Pool.drainOne).
	draining atomic.Bool
}

// drainOne reports whether this read, while reads go to the hedge lane
// first, should go the service pool's way instead, because the service
// pool holds connections to a server marked slow: the one it lands on is
// closed once its reads end, and the read goes to the lane from there
// (doOffSlow), so that the pool dials elsewhere. One read at a time: the
// caller ends it with p.lane.draining.Store(false). Without it a lane that
// never fills carries every read, the service pool stays at the slow
// server, and its reads go there again once the mark lapses.
func (p *Pool) drainOne(now time.Time) bool {
	h, lane := p.health, int(p.lane.on.Load()-1)
	for i := range h.servers {
		if i == lane || !h.markedSlow(i, now) {
			continue
		}
		if h.open[i].Load() > 0 && p.lane.draining.CompareAndSwap(false, true) {
			return true
		}
	}
	return false
}

// exploreEvery is how often at most a read goes to the hedge lane first
// while the lane's server has not answered within it (Pool.explore).
const exploreEvery = 500 * time.Millisecond

// explore reports whether this read should go to the hedge lane first,
// because the lane's server has answered nothing for exploreEvery: one read
// in each such spell, so that the pool knows how fast the other server is
// answering now. Without it a server slow from the start is never compared
// with the other: its reads are not hedged, since they take what it
// usually takes, and the other server, answering nothing, has no recent
// answer time to compare with (slowerThanAnother). The read is hedged on
// the service pool as any read sent to the lane first.
func (p *Pool) explore(now time.Time) bool {
	on := p.lane.on.Load()
	if on == 0 || !p.health.answeredElsewhere(int(on-1)) {
		return false // nothing to compare with yet: the pool's first reads go its strategy's way
	}
	t := sinceEpoch(now)
	if last := p.health.activity[on-1].lastAnswer.Load(); last != 0 && t-last < int64(exploreEvery) {
		return false
	}
	next := p.lane.exploreAt.Load()
	return (next == 0 || t >= next) && p.lane.exploreAt.CompareAndSwap(next, t+int64(exploreEvery))
}

// hedgeSplit decides whether the pool has a hedge lane, from the service
// pool's resolved engine settings (mainOpts: defaults, this package's
// options and WithPoolOptions' alike), and if so returns what to add to
// them for the service pool (split) and for the lane (laneOpts), so that
// the two together stay within every bound the user set: WithMaxSize and a
// soft limit count the lane's connection, WithMaxInFlight its reads. The
// lane's rows in Stats start at slot. WithMaxIdle counts the lane's
// connection, which stands by idle, too. No lane with one server,
// WithHedging(false), a size below 3 (at 2 the lane would leave the
// callers' own calls one connection, and a Search inside a Lease would
// wait for it), fewer than 2 idle connections kept
// (WithNoPool, WithMaxIdle(0) or (1)), WithMinIdle equal to the size or
// one below WithMaxIdle (the service pool keeps one idle connection fewer,
// and its minimum must stay below that: engine's validate), or fewer than 2
// reads in flight allowed.
func hedgeSplit(cfg config, servers int, mainOpts []engine.Option) (split, laneOpts []engine.Option, slot int, ok bool) {
	sz := engine.ResolveSizes(mainOpts...)
	if !cfg.hedging || servers < 2 || sz.MaxSize < 3 || (sz.MaxIdle >= 0 && sz.MaxIdle < 2) || sz.MinIdle >= sz.MaxSize ||
		(sz.MaxIdle >= 0 && sz.MinIdle > 0 && sz.MinIdle >= sz.MaxIdle-1) ||
		(sz.MaxInFlight > 0 && sz.MaxInFlight < 2) {
		return nil, nil, 0, false
	}
	split = []engine.Option{engine.WithMaxSize(sz.MaxSize - 1)}
	if sz.MaxIdle > 0 {
		split = append(split, engine.WithMaxIdle(sz.MaxIdle-1))
	}
	slot = sz.MaxSize - 1
	if sz.SoftLimit > 0 {
		split = append(split, engine.WithSoftLimit(sz.SoftLimit-1))
		slot = sz.SoftLimit - 1
	}
	laneCap := 0 // the engine's default: the lane's depth
	if sz.MaxInFlight > 0 {
		laneCap = max(1, min(sz.OpsPerConn, sz.MaxInFlight/sz.MaxSize)) // its connection's share
		split = append(split, engine.WithMaxInFlight(sz.MaxInFlight-laneCap))
	}
	laneOpts = []engine.Option{
		engine.WithMaxSize(1), engine.WithMinIdle(0), engine.WithSoftLimit(0), engine.WithMaxIdle(1),
		engine.WithOpsPerConn(sz.OpsPerConn), engine.WithMaxInFlight(laneCap), engine.WithFailFast(),
		engine.WithName(cfg.name + "/hedge")}
	return split, laneOpts, slot, true
}

// noteHedgeable records that the pool serves hedgeable reads; the first one opens
// the lane's connection in the background.
func (p *Pool) noteHedgeable() {
	if p.lane.used.Load() || !p.lane.used.CompareAndSwap(false, true) {
		return
	}
	p.goProbe("standby", p.keepStandby)
}

// keepStandby opens the hedge lane's connection if it is not open, and
// closes it if it is open to a server that is down, or (under Failover) to
// the server the pool serves from.
func (p *Pool) keepStandby() {
	ctx, cancel := context.WithTimeout(p.probeCtx, p.cfg.dialTimeout(len(p.health.servers)))
	defer cancel()
	inner, err := p.lane.pool.Get(ctx, p.service, engine.Request{Share: true, Scoped: true})
	if err != nil {
		return // full (hedges are running on it), or no server to dial: next time
	}
	if p.laneMisplaced(inner.Conn().server, time.Now()) {
		inner.Discard(errStandbyMisplaced)
		return
	}
	inner.Release()
}

// laneMisplaced reports whether the hedge lane's connection, open to
// server, should be closed and dialed elsewhere: server is down while
// another is up, or (under Failover) standbyBetterElsewhere.
func (p *Pool) laneMisplaced(server int, now time.Time) bool {
	return (p.health.isDown(server, now) && p.health.anotherUp(server, now)) ||
		(p.cfg.strategy == Failover && p.standbyBetterElsewhere(server, now))
}

// standbyBetterElsewhere reports whether the hedge lane's connection, open
// to server, should move, under Failover: the service pool serves from
// server (its last dial went there), or holds connections there while
// another server that is up has none of them, so that its reads there could
// not be hedged; and another server is up. That one may be slow: hedges
// sent there lose until it recovers, and then win, which is how the pool
// learns that it did (hedgeWon). While the service pool still serves from a
// server marked slow, the lane stays where it is, carrying the reads sent
// there first.
func (p *Pool) standbyBetterElsewhere(server int, now time.Time) bool {
	h := p.health
	if !h.anotherUp(server, now) {
		return false
	}
	if h.servingFrom() == server {
		return true
	}
	if h.open[server].Load() <= 1 { // the lane's own: the service pool has none there
		return false
	}
	for j := range h.servers {
		if j != server && h.open[j].Load() == 0 && !h.isDown(j, now) {
			return true
		}
	}
	return false
}

// laneLease leases a share of the hedge lane's connection under ctx for a
// read whose other copy runs on server from (-1: none, the read goes there
// first). It returns nil when that connection is to server from or to a
// server that is down, or the lane is full, or (for a read sent there
// first) it has no connection open, or its server is marked slow too. A lane
// connection that is misplaced (laneMisplaced) is doomed here too:
// keepStandby cannot take a share of a lane that reads keep full. A hedge may wait
// for the lane to dial: it is cancelled when the read it hedges is
// answered.
func (p *Pool) laneLease(ctx context.Context, from int) *Lease {
	if on := p.lane.on.Load(); (on == 0 && from < 0) || (on > 0 && int(on-1) == from) {
		return nil
	}
	inner, err := p.lane.pool.Get(ctx, p.service, engine.Request{Share: true, Scoped: true})
	if err != nil {
		return nil
	}
	server, now := inner.Conn().server, time.Now()
	if p.laneMisplaced(server, now) {
		// Misplaced: no new reads on it, closed when those on it end, and
		// the next check (keepStandby) dials it elsewhere. keepStandby may
		// not get a share of it while reads fill it.
		inner.Taint(errStandbyMisplaced)
	}
	if server == from || p.health.isDown(server, now) || (from < 0 && p.health.markedSlow(server, now)) {
		inner.Release()
		return nil
	}
	return newLease(inner, p, ctx, p.service.Credentials.(identity), inner.Shared())
}

// copyOf is one copy of a hedged read: it runs op under ctx on a
// connection of its own choosing and reports the server it ran on, or ran
// false when it found no connection to run op on (then op was not called,
// and err says nothing about the read).
type copyOf[T any] func(ctx context.Context, op func(*client) (T, error)) (v T, server int, ran bool, err error)

// decisive reports whether err is an answer that settles a read: a result
// from the server (answered), but not one that says the server cannot serve
// it now (busy, unavailable, unwilling to perform, other), which the other
// server's answer is worth waiting for.
func decisive(err error) bool {
	return answered(err) && !ldap.IsErrorAnyOf(err, ldap.LDAPResultBusy, ldap.LDAPResultUnavailable,
		ldap.LDAPResultUnwillingToPerform, ldap.LDAPResultOther)
}

// onLane is the copy of a read that runs on the hedge lane.
func onLane[T any](p *Pool, from int) copyOf[T] {
	return func(ctx context.Context, op func(*client) (T, error)) (v T, server int, ran bool, err error) {
		l := p.laneLease(ctx, from)
		if l == nil {
			return v, -1, false, nil
		}
		if p.health.markedSlow(l.inner.Conn().server, time.Now()) {
			// The lane stands by at a server marked slow (the pool moved
			// off it): one hedge at a time goes there, enough to learn
			// that it recovered (a win lifts its mark), and not every
			// straggler of the server the pool moved to, each a hedge that
			// loses and spends the budget.
			if !p.lane.trying.CompareAndSwap(false, true) {
				l.endDo()
				return v, -1, false, nil
			}
			defer p.lane.trying.Store(false)
		}
		v, err = op(&l.client)
		l.endDo()
		return v, l.inner.Conn().server, true, err
	}
}

// onLaneOrService is the copy of a read on the service pool: on the hedge
// lane, or, when the lane has no room for it or stands by at the read's own
// server (the pool moved off that server, and the lane went there to stand
// by), on a share of the service pool on another server.
func onLaneOrService[T any](p *Pool, from int) copyOf[T] {
	lane, service := onLane[T](p, from), onService[T](p, from)
	return func(ctx context.Context, op func(*client) (T, error)) (v T, server int, ran bool, err error) {
		if v, server, ran, err = lane(ctx, op); ran {
			return v, server, ran, err
		}
		return service(ctx, op)
	}
}

// onService is the copy of a read that runs on a share of the service pool,
// through Do, unless the share is on server from.
func onService[T any](p *Pool, from int) copyOf[T] {
	return func(ctx context.Context, op func(*client) (T, error)) (v T, server int, ran bool, err error) {
		server = -1
		err = p.Do(ctx, func(c ldap.Client) error {
			cl := c.(*client)
			if s := cl.l.inner.Conn().server; s == from {
				return errSameServer
			} else {
				server = s
			}
			var err error
			v, err = op(cl)
			return err
		})
		if server < 0 { // no connection got to run op: a dial's error, or the other copy's server
			return v, -1, false, nil
		}
		return v, server, true, err
	}
}

// errSameServer is why a copy of a read was not sent: its connection was to
// the server the other copy runs on.
var errSameServer = errors.New("ldapconn: the other copy of the read runs on this server")

// hedgedRead runs op, a read, as Search and Compare do with a hedge lane.
// While a server is marked slow or suspect (a hedge beat one of its reads
// that nothing overtook), the read goes to the hedge lane first (the
// service pool's connections are likely to be to that server) and is hedged
// on the service pool; otherwise it goes to the service pool and is hedged
// on the lane. A service connection to a server marked slow that a read
// lands on is closed once its reads end, so that the pool dials elsewhere,
// and the read goes to the lane from there (doOffSlow).
func hedgedRead[T any](p *Pool, ctx context.Context, op func(*client) (T, error)) (T, error) {
	p.noteHedgeable()
	p.moves.earn()
	now := time.Now()
	if p.drainOne(now) {
		defer p.lane.draining.Store(false)
	} else if p.health.readsLaneFirst(now, int(p.lane.on.Load()-1)) || p.explore(now) {
		if l := p.laneLease(ctx, -1); l != nil {
			v, err := hedged(&l.client, op, onService[T](p, l.inner.Conn().server))
			l.endDo()
			if decisive(err) || ctx.Err() != nil || timedOut(err) {
				return v, err // an operation timeout is not run again, as Do does not
			}
			// The lane's connection broke under the read, or its server said
			// it cannot serve it now: the service pool's way, with Do's
			// retry.
		}
	}
	var v T
	err := p.doOffSlow(ctx, func(c *client) error {
		var err error
		v, err = hedged(c, op, onLaneOrService[T](p, c.l.inner.Conn().server))
		return err
	}, func(c *client) (bool, error) {
		lv, _, ran, err := onLane[T](p, c.l.inner.Conn().server)(ctx, op)
		if ran && (decisive(err) || ctx.Err() != nil || timedOut(err)) {
			v = lv
			return true, err
		}
		return false, nil
	})
	return v, err
}

// hedged runs op on c's connection and, if its server has not answered
// after hedgeAfter while another server is up and the budget allows, as
// hedge too, a copy on another connection: the first answer is returned and
// the other copy abandoned. A hedge that wins counts against c's server
// (hedgeWon); the win that marks it slow also closes c's connection once its
// reads end, so that the pool dials elsewhere.
func hedged[T any](c *client, op func(*client) (T, error), hedge copyOf[T]) (T, error) {
	p, server := c.l.pool, c.l.inner.Conn().server
	h := p.health
	after := h.hedgeAfter(server)
	if after <= 0 {
		// Nothing known of the server yet (a read explored there, or the
		// pool's first reads): the longest hedge delay of the others, so
		// that a server frozen from the start costs the read that finds
		// it no more than a read elsewhere would wait.
		if after = h.longestHedgeAfter(); after <= 0 {
			return op(c)
		}
	}
	ctx := c.context()
	started := time.Now()
	octx, cancelOriginal := context.WithCancel(ctx)
	defer cancelOriginal()
	hctx, cancelHedge := context.WithCancel(ctx)
	defer cancelHedge()

	// winner: 0 while neither has answered, 1 the original, 2 the hedge.
	var (
		winner   atomic.Int32
		hv       T
		herr     error
		marked   bool       // the hedge's win marked server slow
		mu       sync.Mutex // orders the timer's re-arming with the end of op
		finished bool       // op has ended: the timer does nothing more
		waited   bool       // the timer was re-armed once, the server answering then
		retries  int        // times the timer was re-armed for a hedge that could not go
		t        *time.Timer
		done     = make(chan struct{}) // closed by the timer's last run
	)
	// retry looks again after half the delay, a few times while the read
	// is unanswered, when its hedge could not go: no other server up, the
	// budget spent, or no room on the other pool (the lane full, or taken by
	// the one hedge at a time it sends to a server marked slow, whose win
	// lifts the mark). Otherwise it ends the timer.
	retry := func(in time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		if !finished && retries < hedgeRetries {
			t.Reset(in << retries) // each look later than the last: a full lane takes a while to drain
			retries++
			return
		}
		close(done)
	}
	mu.Lock()
	t = time.AfterFunc(after, func() {
		mu.Lock()
		if finished {
			mu.Unlock()
			close(done)
			return
		}
		if !waited && h.overtaken(server, started) {
			// The server has answered reads sent after this one: it is
			// busy, not slowed, and this read is a straggler that will
			// most likely be answered in a moment. Look once more after
			// half the delay. (A server that slowed answers in turn:
			// nothing overtakes, and its reads are hedged at once.)
			waited = true
			t.Reset(after / 2)
			mu.Unlock()
			return
		}
		mu.Unlock()
		if winner.Load() != 0 {
			close(done)
			return
		}
		if !h.anotherUp(server, time.Now()) {
			retry(after / 2)
			return
		}
		spent := p.moves.spend()
		if !spent {
			// The budget is spent. A read still unanswered past its
			// server's stall time is hedged all the same: the callers
			// stuck on a connection gone silent (a firewall dropped its
			// flow) earn the budget nothing back, and the server, which
			// answers a probe, is not marked down.
			if wait := h.stallAfter(server) - time.Since(started); wait > 0 {
				retry(max(wait, after/2))
				return
			}
		}
		v, on, ran, err := hedge(hctx, op)
		if !ran {
			if spent {
				p.moves.refund()
			}
			retry(after / 2)
			return
		}
		defer close(done)
		h.activity[server].hedged.Add(1)
		if decisive(err) && hctx.Err() == nil && winner.CompareAndSwap(0, 2) {
			hv, herr = v, err
			h.activity[server].hedgesLost.Add(1)
			marked = h.hedgeWon(server, on, started, time.Now())
			cancelOriginal()
		}
	})
	mu.Unlock()
	v, err := op(&client{l: c.l, ctx: octx})
	// An answer ends the hedge; a connection that broke, or a server that
	// said it cannot serve the read now, leaves a hedge already sent to
	// answer in its place.
	if (decisive(err) || ctx.Err() != nil || timedOut(err)) && winner.CompareAndSwap(0, 1) {
		cancelHedge()
	}
	mu.Lock()
	finished = true
	stopped := t.Stop()
	mu.Unlock()
	if !stopped {
		<-done // the hedge ran or is running: wait for its lease to go back
	}
	if winner.Load() != 2 {
		return v, err // the hedge was not sent, or lost, or did not answer
	}
	if marked {
		c.l.inner.Taint(errMoved) // closed when its reads end: the pool dials elsewhere
	}
	return hv, herr
}

// withLane folds the hedge lane's snapshot l into the service pool's s, so
// that Stats counts every service connection against WithMaxSize: the
// lane's connection is one more row, its key marked "(hedge lane)".
func withLane(s, l engine.Stats, slot int) engine.Stats {
	s.MaxSize += l.MaxSize
	s.MaxIdle += l.MaxIdle
	s.MaxInFlight += l.MaxInFlight
	s.Open += l.Open
	s.Idle += l.Idle
	s.InUse += l.InUse
	s.Shared += l.Shared
	s.InFlight += l.InFlight
	s.Checking += l.Checking
	s.Closing += l.Closing
	s.Dialing += l.Dialing
	// Not l.Waiters: the lane's are its own request for its standing-by
	// connection and hedges waiting for that connection's dial, while their
	// reads run on the service pool; Waiters counts callers queued.
	timeouts := s.Timeouts // the lane's are hedges cancelled while they waited, not callers who gave up
	s.Counters = s.Counters.Plus(l.Counters)
	s.Timeouts = timeouts
	keys := maps.Clone(s.Keys)
	if keys == nil {
		keys = map[string]engine.KeyStats{}
	}
	for k, v := range l.Keys {
		sum := keys[k]
		sum.Open, sum.Idle, sum.InUse = sum.Open+v.Open, sum.Idle+v.Idle, sum.InUse+v.InUse
		keys[k] = sum
	}
	s.Keys = keys
	s.Conns = slices.Clone(s.Conns)
	for _, c := range l.Conns {
		c.Slot += slot
		c.Key += " (hedge lane)"
		s.Conns = append(s.Conns, c)
	}
	return s
}
