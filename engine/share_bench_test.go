package engine_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/fairpool/ldappool/engine"
	"github.com/fairpool/ldappool/lease"
)

// shareOpsPerConn is the depth of BenchmarkShareRelease's share pool: the
// default of ldapconn.WithOpsPerConn.
const shareOpsPerConn = 8

// BenchmarkShareRelease is BenchmarkLeaseRelease (same sizes, goroutines and
// runOps) with a share of a connection in place of a whole one: impl=share
// takes Pool.Share on a pool with WithOpsPerConn(shareOpsPerConn), reads the
// connection and releases the share. impl=actor (Pool.Lease) and impl=puddle
// run beside it so that one run gives the ratios (benchstat -col /impl).
// With shareOpsPerConn × size shares at most in flight, par=64 waits only
// when size is 4 (32 in flight).
//
// The share touches its connection by reading it: several shares hold one
// connection at once, and a write would be a race of the benchmark's own.
func BenchmarkShareRelease(b *testing.B) {
	b.Cleanup(engine.CheckInvariants(false))
	impls := []struct {
		name  string
		share bool
		open  func(b *testing.B, ctx context.Context, size int) benchPool
	}{
		{"share", true, openActorSharePool},
		{"actor", false, openActorPool},
		{"puddle", false, openPuddlePool},
	}
	for _, size := range []int{4, 16} {
		for _, par := range []int{1, 8, 64} {
			for _, impl := range impls {
				b.Run(fmt.Sprintf("size=%d/par=%d/impl=%s", size, par, impl.name), func(b *testing.B) {
					b.ReportAllocs()
					ctx, cancel := context.WithCancel(context.Background())
					defer cancel()
					p := impl.open(b, ctx, size)
					runOps(b, par, func() error {
						h, c, err := p.acquire(ctx)
						if err != nil {
							return err
						}
						if impl.share {
							if c.id == 0 {
								return errors.New("a share of no connection")
							}
						} else {
							c.uses++
						}
						p.release(h)
						return nil
					})
					p.shutdown(b)
				})
			}
		}
	}
}

// actorSharePool is the engine pool with WithOpsPerConn, handing out shares.
type actorSharePool struct{ *actorBenchPool }

// openActorSharePool starts an engine pool of size connections carrying up
// to shareOpsPerConn shares each, warmed as openActorPool warms (size whole
// leases at once, so that size are dialed).
func openActorSharePool(b *testing.B, ctx context.Context, size int) benchPool {
	conn := &benchConnector{}
	p, err := engine.New(conn, engine.WithMaxSize(size), engine.WithOpsPerConn(shareOpsPerConn))
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
	return actorSharePool{&actorBenchPool{p: p, conn: conn, size: size}}
}

func (a actorSharePool) acquire(ctx context.Context) (any, *benchConn, error) {
	l, err := a.p.Share(ctx, benchKey)
	if err != nil {
		return nil, nil, err
	}
	return l, l.Conn(), nil
}
