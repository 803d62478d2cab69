package engine_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fairpool/ldappool/engine"
	"github.com/fairpool/ldappool/sim"
)

// The benchmarks of docs/benchmarks.md: this pool against puddle and a
// buffered channel (benchconn_test.go), with in-memory connections. The
// commands and the figures are in that file.

// BenchmarkLeaseRelease measures one lease, a touch of the connection and its
// release, with par goroutines competing for a pool of size connections. With
// par > size most leases wait for a release, so that case measures the
// hand-off from a releaser to a waiter rather than an idle pop.
//
// par is the exact number of goroutines, whatever GOMAXPROCS is: runOps
// starts them itself and they share b.N. b.RunParallel would not do: it runs
// SetParallelism(p) × GOMAXPROCS goroutines, so par=1 could not be measured
// at all on more than one CPU, and every other par would depend on -cpu.
// ns/op is wall time divided by the operations of all goroutines, as with
// RunParallel: throughput, not the latency of one lease.
func BenchmarkLeaseRelease(b *testing.B) {
	b.Cleanup(engine.CheckInvariants(false))
	for _, impl := range benchImpls {
		for _, size := range []int{4, 16} {
			for _, par := range []int{1, 8, 64} {
				b.Run(fmt.Sprintf("impl=%s/size=%d/par=%d", impl.name, size, par), func(b *testing.B) {
					leaseRelease(b, impl.open, size, par, func(c *benchConn) error { c.uses++; return nil })
				})
			}
		}
	}
}

// leaseRelease is one case of BenchmarkLeaseRelease and BenchmarkShareRelease:
// par goroutines take a connection from a pool that open makes, touch it,
// and give it back, b.N times in all.
func leaseRelease(b *testing.B, open func(*testing.B, context.Context, int) benchPool, size, par int, touch func(*benchConn) error) {
	b.ReportAllocs()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := open(b, ctx, size)
	runOps(b, par, func() error {
		h, c, err := p.acquire(ctx)
		if err != nil {
			return err
		}
		if err := touch(c); err != nil {
			return err
		}
		p.release(h)
		return nil
	})
	p.shutdown(b)
}

// runOps calls op b.N times in all from exactly par goroutines, which take
// work from a shared counter in small grains (as RunParallel does) so that
// none idles while others still have work. Only the calls are timed: the
// goroutines are started before the timer and joined before it stops.
func runOps(b *testing.B, par int, op func() error) {
	var (
		left  atomic.Int64
		start = make(chan struct{})
		wg    sync.WaitGroup
	)
	left.Store(int64(b.N))
	grain := int64(max(1, min(64, b.N/(par*16))))
	for range par {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for {
				n := min(grain, left.Add(-grain)+grain)
				if n <= 0 {
					return
				}
				for range n {
					if err := op(); err != nil {
						b.Error(err)
						return
					}
				}
			}
		}()
	}
	b.ResetTimer()
	close(start)
	wg.Wait()
	b.StopTimer()
}

const (
	fairClients = 64
	fairSize    = 4
	// fairHold is how long a client holds its connection, in time.Sleep,
	// standing in for a network round trip (which costs no CPU). It is 1 ms
	// rather than the ~50 µs of a loopback LDAP search because a Go sleep
	// shorter than a millisecond is not a fixed amount of waiting on Linux:
	// while every P is idle the scheduler waits in epoll_pwait, whose timeout
	// is in whole milliseconds, so a 50 µs sleep lasted anywhere from 0.3 to
	// 1.1 ms here depending on what else woke the process, and the waits
	// measured mostly that. A 1 ms sleep lasts 1.0-1.2 ms. The hold-µs
	// metric reports what the holds really were.
	fairHold = 1 * time.Millisecond
)

// BenchmarkFairness runs fairClients closed-loop clients against a pool of
// fairSize: each leases, holds the connection for fairHold, releases, and
// goes again, until the b.N operations shared by all clients are done. It
// reports the wait of every lease (p50, p99, max), Jain's fairness index of
// the clients' completed operations (1: all equal; 1/n: one client did
// everything), the fewest and most operations a client completed, and the
// mean time a connection was really held. Clients take operations from one
// shared budget, so a pool that favours some clients shows it in their
// counts. ns/op is wall time per operation: fairHold/fairSize at best.
func BenchmarkFairness(b *testing.B) {
	b.Cleanup(engine.CheckInvariants(false))
	for _, impl := range benchImpls {
		name := fmt.Sprintf("impl=%s/size=%d/clients=%d", impl.name, fairSize, fairClients)
		b.Run(name, func(b *testing.B) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			p := impl.open(b, ctx, fairSize)

			var (
				left   atomic.Int64
				start  = make(chan struct{})
				wg     sync.WaitGroup
				counts = make([]int, fairClients)
				waits  = make([][]time.Duration, fairClients)
				held   = make([]time.Duration, fairClients)
			)
			left.Store(int64(b.N))
			for i := range fairClients {
				waits[i] = make([]time.Duration, 0, 2*b.N/fairClients+1)
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					for left.Add(-1) >= 0 {
						t0 := time.Now()
						h, c, err := p.acquire(ctx)
						t1 := time.Now()
						if err != nil {
							b.Error(err)
							return
						}
						c.uses++
						time.Sleep(fairHold)
						held[i] += time.Since(t1)
						p.release(h)
						waits[i] = append(waits[i], t1.Sub(t0))
						counts[i]++
					}
				}()
			}
			b.ResetTimer()
			close(start)
			wg.Wait()
			b.StopTimer()
			p.shutdown(b)

			all := slices.Concat(waits...)
			slices.Sort(all)
			var hold time.Duration
			for _, h := range held {
				hold += h
			}
			us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
			b.ReportMetric(us(sim.Percentile(all, 50)), "wait-p50-µs")
			b.ReportMetric(us(sim.Percentile(all, 99)), "wait-p99-µs")
			b.ReportMetric(us(sim.Percentile(all, 100)), "wait-max-µs")
			b.ReportMetric(sim.Jain(floats(counts)), "jain")
			b.ReportMetric(float64(slices.Min(counts)), "client-ops-min")
			b.ReportMetric(float64(slices.Max(counts)), "client-ops-max")
			b.ReportMetric(us(hold)/float64(max(1, len(all))), "hold-µs")
		})
	}
}

// floats converts per-client counts for sim.Jain.
func floats(xs []int) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = float64(x)
	}
	return out
}
