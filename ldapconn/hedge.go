package ldapconn

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/fairpool/ldappool/engine"
)

// Hedged reads. With more than one server, Search and Compare are hedged: a
// read still unanswered after its server's hedge delay (hedgeAfter: twice
// what the server usually takes, latency.go) is sent once more to another
// server, the first answer wins and the other request is abandoned (an LDAP
// Abandon for a search). A budget caps the extra requests at one read in
// twenty (moveBudget); writes and binds are never hedged (rule 8).
//
// A hedge cannot wait for a dial: a dial and a bind take longer than the
// read it hedges. So one of the WithMaxSize connections is kept apart, warm,
// to another server than the one the pool serves from: the hedge lane, an
// engine pool of one connection carrying up to WithOpsPerConn reads. The
// service pool holds the others, so WithMaxSize still counts every service
// connection. A hedge that wins marks the slow server (markSlow): reads go
// to the lane first while it is marked, and the service pool's connections
// to it are closed as their reads end, so new connections go elsewhere.

// errStandbyMisplaced is why the hedge lane's connection is closed when it
// is open to the server the pool serves from (after a failover): it would
// hedge nothing, and it would count a connection too many there.
var errStandbyMisplaced = errors.New("ldapconn: the hedge lane's connection is to the server the pool serves from")

// standbyEvery is how many watchdog ticks (stallTick) pass between two
// checks of the hedge lane's connection (keepStandby).
const standbyEvery = 4

// hedgeLane is the pool's hedge lane; nil when there is none (one server,
// WithMaxSize(1), WithNoPool, or WithHedging(false)).
type hedgeLane struct {
	pool *engine.Pool[*Conn]
	used atomic.Bool // a read was hedgeable: keep the lane's connection open from now on
	// on is 1 + the server of the lane's open connection, 0 while it has
	// none: a read never waits for the lane to dial.
	on atomic.Int64
}

// laneOptions are the engine options of the hedge lane: the service pool's
// resolved settings, then its own size and depth; a hedge is refused at once
// when the lane is full rather than queued (WithFailFast).
func laneOptions(service []engine.Option, name string, depth int) []engine.Option {
	return append(service,
		engine.WithMaxSize(1), engine.WithMinIdle(0), engine.WithSoftLimit(0), engine.WithMaxIdle(1),
		engine.WithOpsPerConn(depth), engine.WithMaxInFlight(0), engine.WithFailFast(),
		engine.WithName(name+"/hedge"))
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
// closes it if it is open to the server the pool serves from.
func (p *Pool) keepStandby() {
	ctx, cancel := context.WithTimeout(p.probeCtx, p.cfg.dialTimeout(len(p.health.servers)))
	defer cancel()
	inner, err := p.lane.pool.Get(ctx, p.service, engine.Request{Share: true, Scoped: true})
	if err != nil {
		return // full (hedges are running on it), or no server to dial: next time
	}
	if p.cfg.strategy == Failover && p.standbyBetterElsewhere(inner.Conn().server, time.Now()) {
		inner.Discard(errStandbyMisplaced)
		return
	}
	inner.Release()
}

// standbyBetterElsewhere reports whether the hedge lane's connection, open
// to server, should move: the service pool serves from server (its last
// dial went there), so that its reads could not be hedged there, and
// another server is up. That one may be slow: hedges sent there lose until
// it recovers, and then win, which is how the pool learns that it did
// (hedgeWon). While the service pool still serves from a server marked
// slow, the lane stays where it is, carrying the reads sent there first.
func (p *Pool) standbyBetterElsewhere(server int, now time.Time) bool {
	return p.health.servingFrom() == server && p.health.anotherUp(server, now)
}

// laneLease leases a share of the hedge lane's connection under ctx for a
// read whose other copy runs on server from (-1: none, the read goes there
// first). It returns nil when that connection is to server from or to a
// server that is down, or the lane is full, or (for a read sent there
// first) it has no connection open or its server is marked slow too (its
// read is hedged back on the service pool anyway). A hedge may wait
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
	if server == from || p.health.isDown(server, now) || (from < 0 && p.health.markedSlow(server, now)) {
		inner.Release()
		return nil
	}
	return newLease(inner, p, ctx, p.service.Credentials.(identity), p.cfg.opsPerConn > 1)
}

// copyOf is one copy of a hedged read: it runs op under ctx on a
// connection of its own choosing and reports the server that answered, or
// ran false when it found no connection to run op on (then op was not
// called) or its connection broke under op (then the other copy, or Do's
// retry, answers the caller).
type copyOf[T any] func(ctx context.Context, op func(*client) (T, error)) (v T, server int, ran bool, err error)

// onLane is the copy of a read that runs on the hedge lane.
func onLane[T any](p *Pool, from int) copyOf[T] {
	return func(ctx context.Context, op func(*client) (T, error)) (v T, server int, ran bool, err error) {
		l := p.laneLease(ctx, from)
		if l == nil {
			return v, -1, false, nil
		}
		v, err = op(&l.client)
		l.endDo()
		return v, l.inner.Conn().server, answered(err) || ctx.Err() != nil, err
	}
}

// onService is the copy of a read that runs on a share of the service pool,
// through Do, unless the share is on server from.
func onService[T any](p *Pool, from int) copyOf[T] {
	return func(ctx context.Context, op func(*client) (T, error)) (v T, server int, ran bool, err error) {
		server = -1
		err = p.Do(ctx, func(c ldap.Client) error {
			cl := c.(*client)
			if server = cl.l.inner.Conn().server; server == from {
				return errSameServer
			}
			var err error
			v, err = op(cl)
			return err
		})
		if errors.Is(err, errSameServer) || (!answered(err) && ctx.Err() == nil) {
			return v, server, false, nil
		}
		return v, server, true, err
	}
}

// errSameServer is why a copy of a read was not sent: its connection was to
// the server the other copy runs on.
var errSameServer = errors.New("ldapconn: the other copy of the read runs on this server")

// hedgedRead runs op, a read, as Search and Compare do with a hedge lane.
// While a server is marked slow, the read goes to the hedge lane first (the
// service pool's connections are likely to be to that server) and is hedged
// on the service pool; otherwise it goes to the service pool and is hedged
// on the lane. A service connection to a server marked slow is passed over
// and closed once its reads end, as many times as the pool has
// connections, so that the pool dials elsewhere.
func hedgedRead[T any](p *Pool, ctx context.Context, op func(*client) (T, error)) (T, error) {
	p.noteHedgeable()
	p.moves.earn()
	if p.health.anyMarkedSlow(time.Now()) {
		if l := p.laneLease(ctx, -1); l != nil {
			v, err := hedged(&l.client, op, onService[T](p, l.inner.Conn().server))
			l.endDo()
			if answered(err) || ctx.Err() != nil {
				return v, err
			}
			// The lane's connection broke under the read: the service pool's
			// way, with Do's retry.
		}
	}
	for tries := 0; ; tries++ {
		var (
			v     T
			moved bool
		)
		err := p.Do(ctx, func(c ldap.Client) error {
			cl := c.(*client)
			server := cl.l.inner.Conn().server
			if tries <= p.cfg.maxSize && p.health.markedSlow(server, time.Now()) {
				cl.l.inner.Taint(errMoved) // no new reads on it; closed when its reads end
				moved = true
				return errMoved
			}
			moved = false
			var err error
			v, err = hedged(cl, op, onLane[T](p, server))
			return err
		})
		if !moved {
			return v, err
		}
	}
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
		return op(c)
	}
	ctx := c.context()
	octx, cancelOriginal := context.WithCancel(ctx)
	defer cancelOriginal()
	hctx, cancelHedge := context.WithCancel(ctx)
	defer cancelHedge()

	// winner: 0 while neither has answered, 1 the original, 2 the hedge.
	var (
		winner atomic.Int32
		hv     T
		herr   error
		marked bool // the hedge's win marked server slow
		done   = make(chan struct{})
	)
	t := time.AfterFunc(after, func() {
		defer close(done)
		if winner.Load() != 0 || !h.anotherUp(server, time.Now()) || !p.moves.spend() {
			return
		}
		v, on, ran, err := hedge(hctx, op)
		if !ran {
			p.moves.refund()
			return
		}
		h.activity[server].hedged.Add(1)
		if answered(err) && hctx.Err() == nil && winner.CompareAndSwap(0, 2) {
			hv, herr = v, err
			h.activity[server].hedgesLost.Add(1)
			marked = h.hedgeWon(server, on, time.Now())
			cancelOriginal()
		}
	})
	v, err := op(&client{l: c.l, ctx: octx})
	if winner.CompareAndSwap(0, 1) {
		cancelHedge()
	}
	if !t.Stop() {
		<-done // the hedge ran or is running: wait for its lease to go back
	}
	if winner.Load() == 2 {
		if marked {
			c.l.inner.Taint(errMoved) // closed when its reads end: the pool dials elsewhere
		}
		return hv, herr
	}
	return v, err
}

// withLane folds the hedge lane's snapshot l into the service pool's s, so
// that Stats counts every service connection against WithMaxSize: the
// lane's connection is one more row, its key marked "(hedge lane)".
func withLane(s, l engine.Stats) engine.Stats {
	slot := s.MaxSize
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
	s.Waiters += l.Waiters
	s.Counters = addCounters(s.Counters, l.Counters)
	keys := make(map[string]engine.KeyStats, len(s.Keys)+len(l.Keys))
	for k, v := range s.Keys {
		keys[k] = v
	}
	for k, v := range l.Keys {
		sum := keys[k]
		sum.Open, sum.Idle, sum.InUse, sum.Waiters = sum.Open+v.Open, sum.Idle+v.Idle, sum.InUse+v.InUse, sum.Waiters+v.Waiters
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

// addCounters adds two pools' counters; MaxWait is the longer of the two.
func addCounters(a, b engine.Counters) engine.Counters {
	return engine.Counters{
		Leases: a.Leases + b.Leases, Shares: a.Shares + b.Shares, Waits: a.Waits + b.Waits,
		WaitTime: a.WaitTime + b.WaitTime, UseTime: a.UseTime + b.UseTime, CreateTime: a.CreateTime + b.CreateTime,
		MaxWait: max(a.MaxWait, b.MaxWait), Timeouts: a.Timeouts + b.Timeouts, Exhausted: a.Exhausted + b.Exhausted,
		Dials: a.Dials + b.Dials, DialErrors: a.DialErrors + b.DialErrors,
		Validations: a.Validations + b.Validations, ValidationErrors: a.ValidationErrors + b.ValidationErrors,
		Rebinds: a.Rebinds + b.Rebinds, RebindErrors: a.RebindErrors + b.RebindErrors,
		Discards: a.Discards + b.Discards, Expiries: a.Expiries + b.Expiries, Dead: a.Dead + b.Dead,
		IdleClosed: a.IdleClosed + b.IdleClosed, Closed: a.Closed + b.Closed,
	}
}
