package ldapconn_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fairpool/ldappool/ldapconn"
	"github.com/fairpool/ldappool/ldaptest"
	"github.com/fairpool/ldappool/sim"
)

// BenchmarkSlowReplica measures issue 10's goal: with one of two replicas
// slowed 20×, read p99.9 at most 1.5× the healthy p99 and throughput at
// least 0.8× the healthy throughput, at default options. The figures and
// the command are in docs/benchmarks.md ("Slow replica (issue 10)").
//
// Two embedded servers answer every bind and search after slowBase. A pool
// over "primary,secondary" at default options but WithMaxSize(slowSize)
// serves slowWorkers closed-loop workers calling Pool.Search, which share
// b.N searches as in benchRun. Before the timer, slowWarmOps healthy
// searches give the pool its answer times; then case=primary-slow or
// case=secondary-slow makes that server slowFactor times slower, so the
// pool has to move work while it is timed. Each case has its own servers
// and pool. Reported: searches/s, the p50, p99 and p99.9 of one search as
// its caller saw it (lease wait included), the longest, the searches that
// took over slowOver, the share of the timed searches that the slowed
// server served, the searches hedged (as a share of b.N) and the share of
// those hedges that answered first (ServerStatus.Hedged, HedgesLost).
func BenchmarkSlowReplica(b *testing.B) {
	for _, c := range []struct {
		name       string
		slow       int  // index of the server slowed; -1 for none
		throughout bool // slowed before the warm-up rather than after it
	}{
		{"healthy", -1, false},
		{"primary-slow", 0, false}, {"secondary-slow", 1, false},
		{"primary-slow-throughout", 0, true}, {"secondary-slow-throughout", 1, true},
	} {
		b.Run("case="+c.name, func(b *testing.B) { slowReplicaCase(b, c.slow, c.throughout) })
	}
}

const (
	slowBase    = 2 * time.Millisecond // well above the ~1 ms granularity of a short timer on this VM
	slowFactor  = 20
	slowSize    = 4
	slowWorkers = 16
	slowWarmOps = 400
	// slowOver is the slowed answer time: a search that took longer met
	// the slow server, or waited behind searches that did. The healthy
	// runs' longest search is about half of it.
	slowOver = slowFactor * slowBase
)

func slowReplicaCase(b *testing.B, slow int, throughout bool) {
	var servers [2]*ldaptest.Server
	for i := range servers {
		srv, err := ldaptest.NewServer(ldaptest.WithLatency(func() time.Duration { return slowBase }))
		if err != nil {
			b.Fatalf("embedded server: %v", err)
		}
		defer srv.Close()
		servers[i] = srv
	}
	p, err := ldapconn.NewPool(servers[0].URL()+","+servers[1].URL(), admin, ldapconn.WithMaxSize(slowSize))
	if err != nil {
		b.Fatalf("NewPool: %v", err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			b.Errorf("Close: %v", err)
		}
	}()
	search := func(client, k int) (time.Duration, error) {
		return 0, benchCheck(p.Search(context.Background(), benchSearch(k)))
	}

	if slow >= 0 && throughout {
		servers[slow].SetLatency(slowFactor * slowBase)
	}
	slowWarmUp(b, search)
	if slow >= 0 && !throughout {
		servers[slow].SetLatency(slowFactor * slowBase)
	}
	before := [2]int64{servers[0].Stats().Searches, servers[1].Stats().Searches}
	hedgedBefore, lostBefore := hedgeCounts(p)
	lat, _ := benchRun(b, slowWorkers, search)
	served := [2]int64{servers[0].Stats().Searches - before[0], servers[1].Stats().Searches - before[1]}
	hedged, lost := hedgeCounts(p)
	hedged, lost = hedged-hedgedBefore, lost-lostBefore

	all := slices.Concat(lat...)
	slices.Sort(all)
	over := len(all) - atMost(all, slowOver)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "searches/s")
	b.ReportMetric(benchMillis(sim.Percentile(all, 50)), "p50-ms")
	b.ReportMetric(benchMillis(sim.Percentile(all, 99)), "p99-ms")
	b.ReportMetric(benchMillis(sim.Percentile(all, 99.9)), "p99.9-ms")
	b.ReportMetric(benchMillis(sim.Percentile(all, 100)), "max-ms")
	b.ReportMetric(float64(over), "ops-over-40ms")
	b.ReportMetric(100*float64(hedged)/float64(b.N), "hedged-%")
	if hedged > 0 {
		b.ReportMetric(100*float64(lost)/float64(hedged), "hedges-won-%")
	}
	if slow >= 0 && served[0]+served[1] > 0 {
		b.ReportMetric(100*float64(served[slow])/float64(served[0]+served[1]), "slow-share-%")
	}
}

// slowWarmUp runs slowWarmOps searches from slowWorkers workers, untimed,
// and waits for all of them, so that every connection is open and idle and
// the primary's answer times are known.
func slowWarmUp(b *testing.B, search func(client, k int) (time.Duration, error)) {
	var (
		left atomic.Int64
		wg   sync.WaitGroup
	)
	left.Store(slowWarmOps)
	for c := range slowWorkers {
		wg.Go(func() {
			for k := left.Add(-1); k >= 0; k = left.Add(-1) {
				if _, err := search(c, int(k)); err != nil {
					b.Errorf("warm-up: client %d: %v", c, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// hedgeCounts returns the reads the pool hedged and, of those, the ones a
// hedge answered first, over both servers (ServerStatus).
func hedgeCounts(p *ldapconn.Pool) (hedged, lost uint64) {
	for _, s := range p.Servers() {
		hedged += s.Hedged
		lost += s.HedgesLost
	}
	return hedged, lost
}

// atMost returns how many of the sorted durations are at most d.
func atMost(sorted []time.Duration, d time.Duration) int {
	n, _ := slices.BinarySearch(sorted, d+1)
	return n
}

func benchMillis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
