package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fairpool/ldappool/actor"
	"github.com/fairpool/ldappool/lease"
)

// Pool lends connections of type C, made by a Connector, to callers that ask
// for them by Key. All its state is owned by one supervisor goroutine; its
// methods send that goroutine a message and wait for the reply, so they are
// safe for concurrent use.
type Pool[C any] struct {
	cfg    config
	leases *lease.Config // shared by every lease of the pool
	sup    *supervisor[C]
	a      *actor.Actor[message[C]]
	spare  sync.Pool // *waiter[C] with its reply channel, for reuse (see result.free)
	stats  actor.Replies[Stats]

	closeOnce sync.Once
	drained   chan struct{}         // closed by the supervisor when no lease is out after Close
	final     atomic.Pointer[Stats] // the last snapshot, kept for Stats after Close
}

// New starts a pool over connector. It validates every option and returns an
// *OptionError naming the first invalid one. The pool's goroutines run until
// Close.
func New[C any](connector Connector[C], opts ...Option) (*Pool[C], error) {
	if connector == nil {
		return nil, &OptionError{Option: "New(nil)", Reason: "connector must not be nil"}
	}
	cfg := defaultConfig()
	for i, o := range opts {
		if o == nil {
			return nil, &OptionError{Option: "New", Reason: fmt.Sprintf("option %d is nil", i+1)}
		}
		o.apply(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	p := &Pool[C]{cfg: cfg, drained: make(chan struct{})}
	p.leases = &lease.Config{Returner: (*giveBack[C])(p), Logger: cfg.logger, LeakAt: cfg.leakThreshold}
	p.sup = newSupervisor(p, connector)
	// The mailbox is sized so that callers rarely block on a send; the
	// supervisor itself never sends to it.
	p.a = actor.StartBatched(256, batch, p.sup.handle, p.sup.flush, dropped[C])
	p.sup.a = p.a
	p.a.Send(message[C]{kind: mStart})
	return p, nil
}

// Lease returns a connection bound for key, waiting in strict first-come
// first-served order, across all keys, while none is free. It returns early
// with an error wrapping ctx.Err() when ctx ends, ErrWaitTimeout past the
// wait timeout, ErrExhausted on a fail-fast pool, a *ConnectError when the
// dial made for it failed, and ErrClosed once the pool is closed.
//
// The caller must Release or Discard the lease.
func (p *Pool[C]) Lease(ctx context.Context, key Key) (*lease.Lease[C], error) {
	return p.Get(ctx, key, Request{})
}

// Request says how Get lends a connection.
type Request struct {
	// Fresh asks for a connection validated just before it is handed out,
	// or newly dialed (see LeaseFresh).
	Fresh bool
	// Share asks for a share of a connection (see Share); with
	// WithOpsPerConn(1) it is a whole connection. With Fresh too, an idle
	// connection is validated before the share is handed out, a connection
	// carrying shares is taken as it is (its operations are answered), or
	// one is dialed.
	Share bool
	// Scoped says the caller gives the lease back on every path itself,
	// as Do does around its function: the lease is then not watched for
	// being dropped without Release, and costs no finalizer (about 0.15 µs).
	Scoped bool
}

// Get is Lease, LeaseFresh or Share, as r says; the others call it.
func (p *Pool[C]) Get(ctx context.Context, key Key, r Request) (*lease.Lease[C], error) {
	return p.lease(ctx, key, r.Fresh, r.Share && p.cfg.opsPerConn > 1, r.Scoped)
}

// Share returns a share of a connection bound for key: one operation's
// place on a connection that may carry up to WithOpsPerConn of them at once,
// for a connection type that serves concurrent operations. Shares wait in the
// same first-come first-served queue as leases and are answered with the
// same errors. A share goes to the least-loaded connection of its key, and
// a connection is dialed for it only when every one is carrying
// WithOpsPerConn shares; WithMaxInFlight caps the shares out in all. A
// connection carrying shares is never leased whole, validated or rebound
// until the last comes back.
//
// Release a share when its operation is done. Discard, or a taint, closes
// the connection once its last share comes back, and it takes no new share
// meanwhile. With WithOpsPerConn(1), the default, a share is a lease.
func (p *Pool[C]) Share(ctx context.Context, key Key) (*lease.Lease[C], error) {
	return p.Get(ctx, key, Request{Share: true})
}

// LeaseFresh is Lease for a connection that is validated just before it is
// handed out, or newly dialed: for a second attempt after a reused connection
// turned out dead, when another idle one may be dead too.
func (p *Pool[C]) LeaseFresh(ctx context.Context, key Key) (*lease.Lease[C], error) {
	return p.Get(ctx, key, Request{Fresh: true})
}

// lease asks for a connection, or a share of one; fresh asks for one that is
// validated before it is handed out, or newly dialed.
func (p *Pool[C]) lease(ctx context.Context, key Key, fresh, share, scoped bool) (*lease.Lease[C], error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("engine: lease for %s: %w", key.Name, err)
	}
	w := p.newWaiter(key, fresh, share)
	if !p.a.Send(message[C]{kind: mLease, w: w}) {
		return nil, ErrClosed
	}
	var timeout <-chan time.Time
	if p.cfg.waitTimeout > 0 {
		t := time.NewTimer(p.cfg.waitTimeout)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case r := <-w.reply:
		p.recycle(w, r)
		return p.newLease(r, scoped)
	case <-ctx.Done():
		p.cancel(w)
		return nil, fmt.Errorf("engine: lease for %s: %w", key.Name, ctx.Err())
	case <-timeout:
		p.cancel(w)
		return nil, fmt.Errorf("engine: lease for %s after %v: %w", key.Name, p.cfg.waitTimeout, ErrWaitTimeout)
	}
	// No case for the supervisor's end: a lease it never took from its
	// mailbox is answered by dropped, so the reply always comes, and the
	// wait locks two channels (one without a context to end), not three.
}

// dropped answers a lease that the supervisor's mailbox still held when it
// stopped (the pool finished closing), or that reached the mailbox after:
// the pool is closed. Any other message dropped so is moot by then: Close
// finishes only once no connection is open, no dial is in flight and no
// waiter is queued.
func dropped[C any](m message[C]) {
	if m.kind == mLease {
		m.w.reply <- result[C]{err: ErrClosed}
	}
}

// newWaiter returns a waiter for one lease, a spare one if there is one:
// a lease then allocates no waiter and no reply channel.
func (p *Pool[C]) newWaiter(key Key, fresh, share bool) *waiter[C] {
	w, _ := p.spare.Get().(*waiter[C])
	if w == nil {
		w = &waiter[C]{reply: make(chan result[C], 1)}
	}
	*w = waiter[C]{key: key, fresh: fresh, share: share, reply: w.reply}
	w.node.Value = w
	return w
}

// recycle keeps w, whose answer r its caller received, for another lease,
// unless the supervisor may still read it (r.free is false).
func (p *Pool[C]) recycle(w *waiter[C], r result[C]) {
	if r.free {
		p.spare.Put(w)
	}
}

// cancel tells the supervisor the waiter gave up. The reply channel is not
// recycled: the supervisor may already have answered on it, and takes the
// answer back.
//
// When the supervisor has stopped the send fails, and nothing is lost: a
// reply it sent before stopping holds a connection its close already closed.
func (p *Pool[C]) cancel(w *waiter[C]) { p.a.Send(message[C]{kind: mCancel, w: w}) }

func (p *Pool[C]) newLease(r result[C], scoped bool) (*lease.Lease[C], error) {
	if r.err != nil {
		return nil, r.err
	}
	info := lease.Info{Key: r.key, LeasedAt: r.leasedAt, Reused: r.reused, Shared: r.shared}
	if scoped {
		return lease.NewScoped(r.conn, p.leases, r.e, info), nil
	}
	return lease.New(r.conn, p.leases, r.e, info), nil
}

// giveBack is the way home of the pool's leases: their Release or Discard
// lands here, and nowhere else can a caller hand a connection back. After a
// forced Close the supervisor may have stopped and the send fails: the close
// already closed the connection.
type giveBack[C any] Pool[C]

func (g *giveBack[C]) Return(handle any, err error) {
	g.a.Send(message[C]{kind: mRelease, e: handle.(*entry[C]), err: err})
}

// Do leases a connection for key, calls fn with it and releases it when fn
// returns. When the connection turns out broken (see Broken) it is
// discarded, and if it was a reused one Do calls fn once more on a freshly
// validated or dialed connection, so that a server restart does not reach the
// caller as a stale-connection error. When that retry cannot get a
// connection, the error wraps both fn's error and the lease's, so errors.Is
// and errors.As see each. A panic in fn discards the connection and goes on.
func (p *Pool[C]) Do(ctx context.Context, key Key, fn func(l *lease.Lease[C]) error) error {
	l, err := p.lease(ctx, key, false, false, true)
	if err != nil {
		return err
	}
	broken, err := p.run(l, fn)
	if err == nil || !broken || !l.Reused() || !p.cfg.retryBroken || ctx.Err() != nil {
		return err
	}
	l, lerr := p.lease(ctx, key, true, false, true)
	if lerr != nil {
		return fmt.Errorf("%w (and no fresh connection to retry on: %w)", err, lerr)
	}
	_, err = p.run(l, fn)
	return err
}

// run calls fn with l and gives l back, released or discarded as Broken
// says, reporting which.
func (p *Pool[C]) run(l *lease.Lease[C], fn func(*lease.Lease[C]) error) (broken bool, err error) {
	defer func() {
		if v := recover(); v != nil {
			l.Discard(fmt.Errorf("engine: panic while leased: %v", v))
			panic(v)
		}
		// Release discards a tainted lease, and does nothing to one its
		// holder discarded.
		if broken = p.Broken(l, err); broken && l.Tainted() == nil {
			l.Discard(err)
			return
		}
		l.Release()
	}()
	return false, fn(l)
}

// Broken is the pool's one verdict on a connection that comes back with err,
// the error of what its holder did with it: it is broken, and must be
// closed rather than pooled, when its holder tainted it, when
// err wraps ErrBroken, or when the Connector's Classifier says so. Do uses
// it to choose between release, discard and retry.
func (p *Pool[C]) Broken(l *lease.Lease[C], err error) bool {
	if l.Tainted() != nil {
		return true
	}
	if err == nil {
		return false
	}
	if errors.Is(err, ErrBroken) {
		return true
	}
	return p.sup.classifier != nil && p.sup.classifier.Broken(l.Conn(), err)
}

// Stats returns a snapshot of the pool's state and counters. After Close it
// returns the last snapshot taken before the pool stopped.
func (p *Pool[C]) Stats() Stats {
	s, ok := actor.Call(p.a, &p.stats, func(reply chan Stats) message[C] {
		return message[C]{kind: mStats, x: &extra[C]{stats: reply}}
	})
	if !ok {
		if f := p.final.Load(); f != nil {
			return *f
		}
	}
	return s
}

// String returns the state table: one row a connection, as Python ldappool
// prints it.
func (p *Pool[C]) String() string { return p.Stats().String() }

// Close closes the pool. New leases fail with ErrClosed at once, as do the
// callers waiting for one, and idle connections are closed. Close then waits
// for the leases still out to come back, closing each as it does, until ctx
// ends: then it closes those connections under their holders and returns
// ctx's error. Otherwise it returns nil once every connection is closed and
// every goroutine of the pool has ended.
//
// Close may be called more than once, from any goroutine: each call honours
// its own ctx in the same way.
func (p *Pool[C]) Close(ctx context.Context) error {
	p.closeOnce.Do(func() { p.a.Send(message[C]{kind: mClose}) })
	var err error
	select {
	case <-p.drained:
	case <-ctx.Done():
		err = fmt.Errorf("engine: close: leases still out: %w", ctx.Err())
		p.a.Send(message[C]{kind: mForceClose})
		// The forced close ends at once, but for dials, checks and
		// closes still on workers, which the pool's context cancels.
		<-p.drained
	}
	p.a.Wait()
	return err
}
