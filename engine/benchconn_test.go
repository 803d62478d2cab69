package engine_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/puddle/v2"

	"github.com/fairpool/ldappool/engine"
	"github.com/fairpool/ldappool/lease"
)

// The three pools the benchmarks compare, behind one small interface, all over
// the same in-memory connection: no I/O, so that what is measured is the
// pool's own cost.

// benchConn is an in-memory connection. uses is written by whoever holds it,
// so the race detector sees a pool that hands one connection to two holders.
type benchConn struct {
	id   int64
	uses int
}

// benchConnector makes benchConns and counts them, so that a benchmark can
// check that closing its pool closed everything it opened.
type benchConnector struct {
	opened, closed atomic.Int64
}

func (c *benchConnector) Connect(ctx context.Context, key engine.Key) (*benchConn, error) {
	return &benchConn{id: c.opened.Add(1)}, nil
}

func (c *benchConnector) Validate(ctx context.Context, conn *benchConn) error { return nil }

func (c *benchConnector) Close(conn *benchConn) error {
	c.closed.Add(1)
	return nil
}

func (c *benchConnector) check(b *testing.B, impl string) {
	b.Helper()
	if o, cl := c.opened.Load(), c.closed.Load(); o != cl {
		b.Errorf("%s: %d connections opened, %d closed after the pool closed", impl, o, cl)
	}
}

var benchKey = engine.Key{Name: "bench", Credentials: "bench-secret"}

// benchPool is a pool as the benchmarks drive it. acquire returns a handle
// that release takes back: a pointer stored in an interface, which does not
// allocate. Every implementation pays the same interface-call overhead.
type benchPool interface {
	acquire(ctx context.Context) (h any, c *benchConn, err error)
	release(h any)
	// shutdown closes the pool and reports to b what was left open.
	shutdown(b *testing.B)
}

// benchImpls are the pools compared, in the order they are reported.
var benchImpls = []struct {
	name string
	open func(b *testing.B, ctx context.Context, size int) benchPool
}{
	{"actor", openActorPool},
	{"puddle", openPuddlePool},
	{"chan", openChanPool},
}

// --- this pool

type actorBenchPool struct {
	p    *engine.Pool[*benchConn]
	conn *benchConnector
	size int
}

// openActorPool starts an engine pool of size connections and warms it: it
// leases size connections at once, so that size are dialed, and releases them.
func openActorPool(b *testing.B, ctx context.Context, size int) benchPool {
	return newActorBenchPool(b, ctx, size)
}

// newActorBenchPool is openActorPool with more engine options.
func newActorBenchPool(b *testing.B, ctx context.Context, size int, opts ...engine.Option) *actorBenchPool {
	conn := &benchConnector{}
	p, err := engine.New(conn, append([]engine.Option{engine.WithMaxSize(size)}, opts...)...)
	if err != nil {
		b.Fatalf("engine.New: %v", err)
	}
	ls := make([]*lease.Lease[*benchConn], size)
	for i := range ls {
		if ls[i], err = p.Lease(ctx, benchKey); err != nil {
			b.Fatalf("warm-up lease: %v", err)
		}
	}
	for _, l := range ls {
		l.Release()
	}
	return &actorBenchPool{p: p, conn: conn, size: size}
}

func (a *actorBenchPool) acquire(ctx context.Context) (any, *benchConn, error) {
	l, err := a.p.Lease(ctx, benchKey)
	if err != nil {
		return nil, nil, err
	}
	return l, l.Conn(), nil
}

func (a *actorBenchPool) release(h any) { h.(*lease.Lease[*benchConn]).Release() }

func (a *actorBenchPool) shutdown(b *testing.B) {
	// No connection may have been dialed past the warm-up, nor be out.
	st := a.p.Stats()
	if st.Dials != uint64(a.size) || st.InUse != 0 || st.Waiters != 0 {
		b.Errorf("actor pool before Close: %d dials (want %d), %d in use, %d waiting",
			st.Dials, a.size, st.InUse, st.Waiters)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.p.Close(ctx); err != nil {
		b.Errorf("actor pool Close: %v", err)
	}
	a.conn.check(b, "actor")
}

// --- github.com/jackc/puddle/v2: a mutex, an x/sync semaphore (FIFO for
// waiters) and a LIFO idle stack.

type puddleBenchPool struct {
	p    *puddle.Pool[*benchConn]
	conn *benchConnector
}

func openPuddlePool(b *testing.B, ctx context.Context, size int) benchPool {
	conn := &benchConnector{}
	p, err := puddle.NewPool(&puddle.Config[*benchConn]{
		Constructor: func(ctx context.Context) (*benchConn, error) { return conn.Connect(ctx, benchKey) },
		Destructor:  func(c *benchConn) { conn.Close(c) },
		MaxSize:     int32(size),
	})
	if err != nil {
		b.Fatalf("puddle.NewPool: %v", err)
	}
	for range size {
		if err := p.CreateResource(ctx); err != nil {
			b.Fatalf("puddle warm-up: %v", err)
		}
	}
	return &puddleBenchPool{p: p, conn: conn}
}

func (p *puddleBenchPool) acquire(ctx context.Context) (any, *benchConn, error) {
	r, err := p.p.Acquire(ctx)
	if err != nil {
		return nil, nil, err
	}
	return r, r.Value(), nil
}

func (p *puddleBenchPool) release(h any) { h.(*puddle.Resource[*benchConn]).Release() }

func (p *puddleBenchPool) shutdown(b *testing.B) {
	p.p.Close() // waits for every destructor
	p.conn.check(b, "puddle")
}

// --- the floor: a buffered channel pre-filled with every connection. Lease
// is a receive (FIFO among blocked receivers, as the runtime queues them),
// release a send. It cannot dial, validate, expire or segregate by key.

type chanBenchPool struct {
	conns chan *benchConn
	conn  *benchConnector
}

func openChanPool(b *testing.B, ctx context.Context, size int) benchPool {
	p := &chanBenchPool{conns: make(chan *benchConn, size), conn: &benchConnector{}}
	for range size {
		c, _ := p.conn.Connect(ctx, benchKey)
		p.conns <- c
	}
	return p
}

func (p *chanBenchPool) acquire(ctx context.Context) (any, *benchConn, error) {
	select {
	case c := <-p.conns:
		return c, c, nil
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
}

func (p *chanBenchPool) release(h any) { p.conns <- h.(*benchConn) }

func (p *chanBenchPool) shutdown(b *testing.B) {
	for range cap(p.conns) {
		select {
		case c := <-p.conns:
			p.conn.Close(c)
		default:
			b.Errorf("chan pool: %d connections of %d not returned", cap(p.conns)-len(p.conns), cap(p.conns))
			return
		}
	}
	p.conn.check(b, "chan")
}
