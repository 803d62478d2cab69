package engine_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/fairpool/ldappool/engine"
)

// shareOpsPerConn is the depth of BenchmarkShareRelease's share pool: 8,
// so that at size 4 the 64 goroutines outnumber the shares (32) and wait, as
// leases do, while at size 16 they do not.
const shareOpsPerConn = 8

// BenchmarkShareRelease is BenchmarkLeaseRelease (same sizes, goroutines and
// runOps) with a share of a connection in place of a whole one: impl=share
// takes Pool.Share on a pool with WithOpsPerConn(shareOpsPerConn), reads the
// connection and releases the share. impl=actor (Pool.Lease) and impl=puddle
// run beside it so that one run gives the ratios (benchstat -col /impl).
//
// The share touches its connection by reading it: several shares hold one
// connection at once, and a write would be a race of the benchmark's own.
func BenchmarkShareRelease(b *testing.B) {
	b.Cleanup(engine.CheckInvariants(false))
	read := func(c *benchConn) error {
		if c.id == 0 {
			return errors.New("a share of no connection")
		}
		return nil
	}
	write := func(c *benchConn) error { c.uses++; return nil }
	impls := []struct {
		name  string
		open  func(b *testing.B, ctx context.Context, size int) benchPool
		touch func(*benchConn) error
	}{
		{"share", openActorSharePool, read},
		{"actor", openActorPool, write},
		{"puddle", openPuddlePool, write},
	}
	for _, size := range []int{4, 16} {
		for _, par := range []int{1, 8, 64} {
			for _, impl := range impls {
				b.Run(fmt.Sprintf("size=%d/par=%d/impl=%s", size, par, impl.name), func(b *testing.B) {
					leaseRelease(b, impl.open, size, par, impl.touch)
				})
			}
		}
	}
}

// actorSharePool is the engine pool with WithOpsPerConn, handing out shares.
type actorSharePool struct{ *actorBenchPool }

// openActorSharePool starts an engine pool of size connections carrying up
// to shareOpsPerConn shares each, warmed as openActorPool warms.
func openActorSharePool(b *testing.B, ctx context.Context, size int) benchPool {
	return actorSharePool{newActorBenchPool(b, ctx, size, engine.WithOpsPerConn(shareOpsPerConn))}
}

func (a actorSharePool) acquire(ctx context.Context) (any, *benchConn, error) {
	l, err := a.p.Share(ctx, benchKey)
	if err != nil {
		return nil, nil, err
	}
	return l, l.Conn(), nil
}
