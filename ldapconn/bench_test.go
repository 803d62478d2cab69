package ldapconn_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/jackc/puddle/v2"

	"github.com/fairpool/ldappool/ldapconn"
	"github.com/fairpool/ldappool/ldaptest"
	"github.com/fairpool/ldappool/ldaptest/slapd"
	"github.com/fairpool/ldappool/sim"
)

// The end-to-end benchmarks of docs/benchmarks.md ("End-to-end against
// slapd"): real searches against OpenLDAP's slapd on loopback, started by
// slapd.Start (they skip when slapd is not installed). The commands and the
// figures are in that file.
//
// Every connection, pooled or not, carries the same 10 s go-ldap request
// timeout (the pool's default WithOperationTimeout), because go-ldap starts a
// timer goroutine for every request of a connection that has one: leaving it
// off the others would measure go-ldap, not the pool. The pool's operations
// run under context.Background(), whose Done is nil, so the pool runs them on
// the caller's goroutine; a cancellable context costs one more goroutine an
// operation (see the docs).

// benchOpTimeout is the request timeout of every connection.
const benchOpTimeout = 10 * time.Second

// benchSearch is the request of operation k: a subtree search under PeopleDN
// for one seeded user, a different one each time.
func benchSearch(k int) *ldap.SearchRequest { return searchUID(fmt.Sprint("user", k%ldaptest.Users)) }

// benchCheck makes a search that did not find exactly its one user an error.
func benchCheck(res *ldap.SearchResult, err error) error {
	if err == nil && len(res.Entries) != 1 {
		err = fmt.Errorf("search returned %d entries; want 1", len(res.Entries))
	}
	return err
}

// benchPool is a way of running searches as the benchmarks drive it.
type benchPool interface {
	// search runs req for client (0 <= client < the clients it was opened
	// for) and returns how long it waited for a connection, or 0 when the
	// implementation does not expose the wait.
	search(client int, req *ldap.SearchRequest) (wait time.Duration, err error)
	// close closes everything the implementation opened.
	close(b *testing.B)
}

// benchImpl opens a benchPool against url for size pooled connections and
// clients callers. Each warms itself (dials what it keeps) before returning,
// so that no dial of a kept connection is timed.
type benchImpl struct {
	name string
	open func(b *testing.B, url string, size, clients int) benchPool
}

// searchImpls are BenchmarkSearch's implementations, in report order.
var searchImpls = []benchImpl{
	{"pool", openPoolSearch},
	{"nopool", openNoPool},
	{"dedicated", openDedicated},
	{"puddle", openPuddle},
}

// fairImpls are BenchmarkOverloadFairness's implementations: the two that
// queue callers for a connection, with the lease wait measured.
var fairImpls = []benchImpl{
	{"pool", openPoolLease},
	{"puddle", openPuddle},
}

// BenchmarkSearch measures search throughput (ns/op: wall time over the
// operations of all clients) and the latency of one operation, lease wait
// included (p50-µs, p99-µs), with clients goroutines sharing b.N operations.
// pool=P is the size of the pool and of puddle; dedicated holds one
// connection a client, and nopool dials up to one a client (its engine's
// size is clients), so that P limits neither.
func BenchmarkSearch(b *testing.B) {
	srv := slapd.Start(b)
	for _, impl := range searchImpls {
		for _, c := range []struct{ size, clients int }{{4, 16}, {10, 10}} {
			b.Run(fmt.Sprintf("impl=%s/pool=%d/clients=%d", impl.name, c.size, c.clients), func(b *testing.B) {
				p := impl.open(b, srv.URL(), c.size, c.clients)
				defer p.close(b)
				lat, _ := benchRun(b, c.clients, func(client, k int) (time.Duration, error) {
					return p.search(client, benchSearch(k))
				})
				all := slices.Concat(lat...)
				slices.Sort(all)
				b.ReportMetric(benchMicros(sim.Percentile(all, 50)), "p50-µs")
				b.ReportMetric(benchMicros(sim.Percentile(all, 99)), "p99-µs")
			})
		}
	}
}

const (
	overloadClients = 64
	overloadSize    = 4
)

// BenchmarkOverloadFairness runs overloadClients closed-loop clients, each
// searching as fast as it can, against a pool of overloadSize, until the b.N
// operations they share are done. It reports Jain's index of the clients'
// completed operations, (Σx)²/(n·Σx²), the fewest and most a client
// completed, and the p50, p99 and maximum of the time each lease waited.
func BenchmarkOverloadFairness(b *testing.B) {
	srv := slapd.Start(b)
	for _, impl := range fairImpls {
		b.Run(fmt.Sprintf("impl=%s/pool=%d/clients=%d", impl.name, overloadSize, overloadClients), func(b *testing.B) {
			p := impl.open(b, srv.URL(), overloadSize, overloadClients)
			defer p.close(b)
			_, waits := benchRun(b, overloadClients, func(client, k int) (time.Duration, error) {
				return p.search(client, benchSearch(k))
			})
			counts := make([]int, len(waits))
			for i, w := range waits {
				counts[i] = len(w)
			}
			all := slices.Concat(waits...)
			slices.Sort(all)
			b.ReportMetric(sim.Jain(benchFloats(counts)), "jain")
			b.ReportMetric(float64(slices.Min(counts)), "client-ops-min")
			b.ReportMetric(float64(slices.Max(counts)), "client-ops-max")
			b.ReportMetric(benchMicros(sim.Percentile(all, 50)), "wait-p50-µs")
			b.ReportMetric(benchMicros(sim.Percentile(all, 99)), "wait-p99-µs")
			b.ReportMetric(benchMicros(sim.Percentile(all, 100)), "wait-max-µs")
		})
	}
}

// benchRun calls op b.N times in all from exactly clients goroutines, which
// take one operation at a time from a shared counter; k counts the operations
// down. It returns each client's latencies (the whole call) and waits (what
// op returned), in the order its operations ran. Only the calls are timed.
func benchRun(b *testing.B, clients int, op func(client, k int) (time.Duration, error)) (lat, waits [][]time.Duration) {
	var (
		left  atomic.Int64
		start = make(chan struct{})
		wg    sync.WaitGroup
	)
	left.Store(int64(b.N))
	lat = make([][]time.Duration, clients)
	waits = make([][]time.Duration, clients)
	for c := range clients {
		lat[c] = make([]time.Duration, 0, 2*b.N/clients+1)
		waits[c] = make([]time.Duration, 0, 2*b.N/clients+1)
		wg.Go(func() {
			<-start
			for {
				k := left.Add(-1)
				if k < 0 {
					return
				}
				t0 := time.Now()
				wait, err := op(c, int(k))
				d := time.Since(t0)
				if err != nil {
					b.Errorf("client %d: %v", c, err)
					return
				}
				lat[c] = append(lat[c], d)
				waits[c] = append(waits[c], wait)
			}
		})
	}
	b.ResetTimer()
	close(start)
	wg.Wait()
	b.StopTimer()
	return lat, waits
}

// --- this pool

// ldapPool is this pool; with lease set it leases, searches through the
// lease's Client and releases, timing the lease, instead of Pool.Search.
type ldapPool struct {
	p     *ldapconn.Pool
	lease bool
}

func openLDAPPool(b *testing.B, url string, size int, lease bool, opts ...ldapconn.Option) *ldapPool {
	opts = append([]ldapconn.Option{admin, ldapconn.WithOperationTimeout(benchOpTimeout),
		ldapconn.WithMaxSize(size)}, opts...)
	p, err := ldapconn.NewPool(url, opts...)
	if err != nil {
		b.Fatalf("NewPool: %v", err)
	}
	return &ldapPool{p: p, lease: lease}
}

// warm leases size connections at once, so that size are dialed, and
// releases them.
func (p *ldapPool) warm(b *testing.B, size int) {
	ls := make([]*ldapconn.Lease, size)
	for i := range ls {
		var err error
		if ls[i], err = p.p.Lease(context.Background()); err != nil {
			b.Fatalf("warm-up lease: %v", err)
		}
	}
	for _, l := range ls {
		l.Release()
	}
}

func openPoolSearch(b *testing.B, url string, size, clients int) benchPool {
	p := openLDAPPool(b, url, size, false)
	p.warm(b, size)
	return p
}

func openPoolLease(b *testing.B, url string, size, clients int) benchPool {
	p := openLDAPPool(b, url, size, true)
	p.warm(b, size)
	return p
}

// openNoPool is this pool with WithNoPool: every operation dials and binds a
// connection and closes it afterwards. Its size is clients, so that every
// client can dial at once, as without any pool.
func openNoPool(b *testing.B, url string, size, clients int) benchPool {
	return openLDAPPool(b, url, clients, false, ldapconn.WithNoPool())
}

func (p *ldapPool) search(client int, req *ldap.SearchRequest) (time.Duration, error) {
	ctx := context.Background()
	if !p.lease {
		return 0, benchCheck(p.p.Search(ctx, req))
	}
	t0 := time.Now()
	l, err := p.p.Lease(ctx)
	wait := time.Since(t0)
	if err != nil {
		return wait, err
	}
	defer l.Release()
	return wait, benchCheck(l.Client().Search(req))
}

func (p *ldapPool) close(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.p.Close(ctx); err != nil {
		b.Errorf("Close: %v", err)
	}
}

// --- plain go-ldap

// benchDial opens a go-ldap connection to url bound as the admin, with the
// same request timeout as the pool's connections.
func benchDial(url string) (*ldap.Conn, error) {
	c, err := ldap.DialURL(url, ldap.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}))
	if err != nil {
		return nil, err
	}
	c.SetTimeout(benchOpTimeout)
	if err := c.Bind(ldaptest.AdminDN, ldaptest.AdminPassword); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// dedicated is the ceiling: one connection a client, dialed and bound before
// the timer starts, used by that client alone, with no pool in between.
type dedicated []*ldap.Conn

func openDedicated(b *testing.B, url string, size, clients int) benchPool {
	d := make(dedicated, clients)
	for i := range d {
		var err error
		if d[i], err = benchDial(url); err != nil {
			d.close(b)
			b.Fatalf("dial: %v", err)
		}
	}
	return d
}

func (d dedicated) search(client int, req *ldap.SearchRequest) (time.Duration, error) {
	return 0, benchCheck(d[client].Search(req))
}

func (d dedicated) close(b *testing.B) {
	for _, c := range d {
		if c != nil {
			c.Close()
		}
	}
}

// puddlePool is github.com/jackc/puddle/v2 holding go-ldap connections: its
// constructor dials and binds, its destructor closes. A connection whose
// search failed is destroyed rather than released.
type puddlePool struct{ p *puddle.Pool[*ldap.Conn] }

func openPuddle(b *testing.B, url string, size, clients int) benchPool {
	p, err := puddle.NewPool(&puddle.Config[*ldap.Conn]{
		Constructor: func(ctx context.Context) (*ldap.Conn, error) { return benchDial(url) },
		Destructor:  func(c *ldap.Conn) { c.Close() },
		MaxSize:     int32(size),
	})
	if err != nil {
		b.Fatalf("puddle.NewPool: %v", err)
	}
	for range size {
		if err := p.CreateResource(context.Background()); err != nil {
			p.Close()
			b.Fatalf("puddle warm-up: %v", err)
		}
	}
	return &puddlePool{p: p}
}

func (p *puddlePool) search(client int, req *ldap.SearchRequest) (time.Duration, error) {
	t0 := time.Now()
	r, err := p.p.Acquire(context.Background())
	wait := time.Since(t0)
	if err != nil {
		return wait, err
	}
	if err := benchCheck(r.Value().Search(req)); err != nil {
		r.Destroy()
		return wait, err
	}
	r.Release()
	return wait, nil
}

func (p *puddlePool) close(b *testing.B) { p.p.Close() }

// --- failover

const (
	failoverClients   = 8
	failoverSize      = 4
	failoverOpTimeout = 500 * time.Millisecond
	failoverWarmOps   = 500             // operations on the primary before the kill
	failoverAfter     = 1 * time.Second // load kept up after the kill
)

// BenchmarkFailover kills the primary of two slapd servers under load. Each
// iteration is one cycle: a fresh pool over primary and secondary
// (WithOperationTimeout 500ms, size 4), failoverClients clients calling
// Pool.Search in a loop, failoverWarmOps operations on the primary, a SIGKILL
// of the primary, failoverAfter more of load, and a restart of the primary
// for the next cycle. It reports, averaged over the cycles:
//
//   - recovery-ms: from the kill until every client has completed a search
//     that began after the kill and succeeded;
//   - max-op-ms: the longest search that ended after the kill (in flight
//     across it or begun after it), as its caller saw it, retry included;
//   - failed-ops: searches that returned an error;
//   - ops-after-kill: searches that ended after the kill;
//   - discards: connections the pool closed as broken after the kill (the
//     engine's Discards), and dials: connections it dialed after the kill.
//
// ns/op is the length of a whole cycle and says nothing; run it with
// -benchtime 1x (one cycle) or a few x.
func BenchmarkFailover(b *testing.B) {
	primary, secondary := slapd.Start(b), slapd.Start(b)
	var recovery, maxOp time.Duration
	var failed, after, discards, dials int
	for range b.N {
		// Killed by the previous cycle: start it again on its port.
		if primary.PID() == 0 {
			if err := primary.Restart(); err != nil {
				b.Fatalf("restart the primary: %v", err)
			}
		}
		r := failoverCycle(b, primary, secondary)
		recovery += r.recovery
		maxOp += r.maxOp
		failed += r.failed
		after += r.after
		discards += r.discards
		dials += r.dials
	}
	n := float64(b.N)
	b.ReportMetric(float64(recovery)/float64(time.Millisecond)/n, "recovery-ms")
	b.ReportMetric(float64(maxOp)/float64(time.Millisecond)/n, "max-op-ms")
	b.ReportMetric(float64(failed)/n, "failed-ops")
	b.ReportMetric(float64(after)/n, "ops-after-kill")
	b.ReportMetric(float64(discards)/n, "discards")
	b.ReportMetric(float64(dials)/n, "dials")
}

type failoverResult struct {
	recovery, maxOp                time.Duration
	failed, after, discards, dials int
}

// benchOp is one operation of the failover load: when it began and ended,
// and whether it failed.
type benchOp struct {
	start, end time.Time
	err        error
}

func failoverCycle(b *testing.B, primary, secondary *slapd.Server) failoverResult {
	p, err := ldapconn.NewPool(primary.URL()+","+secondary.URL(), admin,
		ldapconn.WithOperationTimeout(failoverOpTimeout),
		ldapconn.WithMaxSize(failoverSize))
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

	var (
		stop  = make(chan struct{})
		done  atomic.Int64
		wg    sync.WaitGroup
		ops   = make([][]benchOp, failoverClients)
		count atomic.Int64
	)
	stopLoad := sync.OnceFunc(func() {
		close(stop)
		wg.Wait()
	})
	for c := range failoverClients {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				k := int(count.Add(1))
				t0 := time.Now()
				err := benchCheck(p.Search(context.Background(), benchSearch(k)))
				ops[c] = append(ops[c], benchOp{t0, time.Now(), err})
				done.Add(1)
			}
		})
	}
	defer stopLoad()

	for deadline := time.Now().Add(10 * time.Second); done.Load() < failoverWarmOps; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatalf("warm-up: only %d searches in 10s", done.Load())
		}
	}
	if s := p.Servers(); s[0].Open == 0 || s[1].Open != 0 {
		b.Fatalf("before the kill: servers %+v; want every connection on the primary", s)
	}
	before := p.Stats()
	kill := time.Now()
	if err := primary.Kill(); err != nil {
		b.Fatalf("kill the primary: %v", err)
	}
	time.Sleep(failoverAfter)
	stopLoad()
	st := p.Stats()

	// The primary may be out of its backoff (Up) again by now; what counts
	// is that every connection moved.
	if s := p.Servers(); s[0].Open != 0 || s[0].Failures == 0 || s[1].Open == 0 {
		b.Errorf("after the kill: servers %+v; want the primary failed and every connection on the secondary", s)
	}
	r := failoverResult{discards: int(st.Discards - before.Discards), dials: int(st.Dials - before.Dials)}
	var firstErr error
	for c, cops := range ops {
		var back time.Duration = -1
		for _, o := range cops {
			if o.err != nil {
				r.failed++
				firstErr = firstOf(firstErr, fmt.Errorf("client %d: %w", c, o.err))
			}
			if !o.end.After(kill) {
				continue
			}
			r.after++
			r.maxOp = max(r.maxOp, o.end.Sub(o.start))
			if back < 0 && o.err == nil && !o.start.Before(kill) {
				back = o.end.Sub(kill)
			}
		}
		if back < 0 {
			b.Errorf("client %d: no search begun after the kill succeeded in %v", c, failoverAfter)
			back = failoverAfter
		}
		r.recovery = max(r.recovery, back)
	}
	if firstErr != nil {
		b.Logf("%d searches failed; the first: %v", r.failed, firstErr)
	}
	return r
}

// firstOf returns a unless it is nil, and b then.
func firstOf(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func benchMicros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// benchFloats converts per-client counts for sim.Jain.
func benchFloats(xs []int) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = float64(x)
	}
	return out
}
