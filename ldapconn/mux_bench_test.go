package ldapconn_test

// The benchmarks of issue 9 ("Benchmarks"; docs/benchmarks.md, section
// "Multiplexing (issue 9)"; `make bench-e2e` runs them): this pool with one
// operation a connection and with several in flight on each, against
// go-ldap+puddle, one go-ldap connection a worker, and S go-ldap connections
// shared by every worker, on loopback and through a proxy that delays each
// direction by about a millisecond.
//
// They reuse the end-to-end harness of bench_test.go: benchRun's closed-loop
// workers sharing b.N, benchSearch's search by uid, benchDial's connections
// with the pool's request timeout.

import (
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/go-ldap/ldap/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/fairpool/ldappool/ldapconn"
	"github.com/fairpool/ldappool/ldaptest/slapd"
	"github.com/fairpool/ldappool/sim"
)

// muxDelay is what the round-trip proxy's latency toxics add to each
// direction, in milliseconds (toxiproxy's unit). A Go timer on this VM
// fires 1.0-1.2 ms after it was set for 1 ms, so the round trip it gives is
// a little more than twice this; BenchmarkRoundTrip measures it.
const muxDelay = 1

// newDelayProxy starts toxiproxy in-process on a loopback port in front of
// targetURL, with a latency toxic of ms milliseconds on each direction, and
// returns its URL. It stops when tb ends. (newFaultProxy in faultproxy_test.go
// is the same proxy for tests; this one takes a benchmark and delays both
// directions.)
func newDelayProxy(tb testing.TB, targetURL string, ms int64) string {
	tb.Helper()
	zerolog.SetGlobalLevel(zerolog.Disabled)
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	px := toxiproxy.NewProxy(srv, tb.Name(), "127.0.0.1:0", strings.TrimPrefix(targetURL, "ldap://"))
	if err := px.Start(); err != nil {
		tb.Fatalf("toxiproxy: %v", err)
	}
	tb.Cleanup(px.Stop)
	for _, stream := range []string{"upstream", "downstream"} {
		js, err := json.Marshal(map[string]any{"name": "delay-" + stream, "type": "latency", "stream": stream,
			"toxicity": 1, "attributes": map[string]int64{"latency": ms}})
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := px.Toxics.AddToxicJson(strings.NewReader(string(js))); err != nil {
			tb.Fatalf("toxic %s: %v", stream, err)
		}
	}
	return "ldap://" + px.Listen
}

// newCountingProxyTB is newCountingProxy (contract_test.go) for a benchmark:
// it forwards to targetURL and counts the connections established through it
// in count, the most at once included.
func newCountingProxyTB(tb testing.TB, targetURL string, count *connCount) *countingProxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	px := &countingProxy{ln: ln, target: strings.TrimPrefix(targetURL, "ldap://"), count: count,
		conns: map[net.Conn]struct{}{}}
	px.wg.Add(1)
	go px.accept()
	tb.Cleanup(px.stop)
	return px
}

// muxNets are the two networks: slapd on loopback, and slapd behind the
// delaying proxy.
var muxNets = []string{"rt", "lo"}

// muxCases are the (network, pool size S, workers C) of BenchmarkMux.
var muxCases = []struct {
	net           string
	size, clients int
}{
	{"rt", 4, 16},
	{"rt", 4, 64},
	{"lo", 10, 10},
	{"lo", 4, 16},
}

// muxImpls are BenchmarkMux's implementations, in report order: benchstat
// -col /impl compares every other column with the first.
var muxImpls = []benchImpl{
	{"mux", openMux(0)},          // this pool at its default operations a connection
	{"mux8", openMux(8)},         // this pool at 8 a connection (the default before these runs chose 16)
	{"seq", openMux(1)},          // this pool at one operation a connection: a lease each
	{"puddle", openPuddle},       // go-ldap+puddle: a whole connection each
	{"dedicated", openDedicated}, // one go-ldap connection a worker
	{"shared", openShared},       // S go-ldap connections, every worker on them round-robin
}

// BenchmarkMux measures search throughput (ops/s, and ns/op: wall time over
// the operations of all workers) and the latency of one search as its worker
// saw it, wait included (p50-µs, p99-µs), for C closed-loop workers sharing
// b.N searches, on loopback (net=lo) and through a proxy that delays each
// direction by muxDelay ms (net=rt). S is the size of this pool and of
// puddle, and the number of shared connections; dedicated opens C.
//
// cpu-µs/op is the CPU time, user and system, that the benchmark's process
// spent per search: the client's side (and with net=rt the in-process proxy),
// not slapd's. On a machine shared with other work it moves far less than the
// wall-clock figures, since it counts only this process's own work.
//
// For this pool it also reports shares-% (the searches served by a share of a
// connection rather than a whole one, from Pool.Stats) and open-conns, the
// connections the pool had open at the end, which must not exceed S.
func BenchmarkMux(b *testing.B) {
	srv := slapd.Start(b)
	urls := map[string]string{"lo": srv.URL(), "rt": newDelayProxy(b, srv.URL(), muxDelay)}
	for _, c := range muxCases {
		for _, impl := range muxImpls {
			name := fmt.Sprintf("net=%s/S=%d/C=%d/impl=%s", c.net, c.size, c.clients, impl.name)
			b.Run(name, func(b *testing.B) {
				p := impl.open(b, urls[c.net], c.size, c.clients)
				defer p.close(b)
				var before ldapconn.Stats
				mp, isPool := p.(*ldapPool)
				if isPool {
					before = mp.p.Stats()
				}
				cpu0, cpuOK := processCPU()
				t0 := time.Now()
				lat, _ := benchRun(b, c.clients, func(client, k int) (time.Duration, error) {
					return p.search(client, benchSearch(k))
				})
				elapsed := time.Since(t0)
				cpu1, _ := processCPU()
				all := slices.Concat(lat...)
				slices.Sort(all)
				b.ReportMetric(float64(len(all))/elapsed.Seconds(), "ops/s")
				b.ReportMetric(benchMicros(sim.Percentile(all, 50)), "p50-µs")
				b.ReportMetric(benchMicros(sim.Percentile(all, 99)), "p99-µs")
				if cpuOK {
					b.ReportMetric(benchMicros(cpu1-cpu0)/float64(max(1, len(all))), "cpu-µs/op")
				}
				if isPool {
					st := mp.p.Stats()
					b.ReportMetric(100*float64(st.Shares-before.Shares)/float64(max(1, len(all))), "shares-%")
					b.ReportMetric(float64(st.Open), "open-conns")
					if st.Open > c.size {
						b.Errorf("the pool has %d connections open; WithMaxSize is %d", st.Open, c.size)
					}
				}
			})
		}
	}
}

// openMux is this pool with opsPerConn operations a connection
// (ldapconn.WithOpsPerConn), or at its default with 0, warmed to size
// connections, searching with Pool.Search.
func openMux(opsPerConn int) func(b *testing.B, url string, size, clients int) benchPool {
	return func(b *testing.B, url string, size, clients int) benchPool {
		var opts []ldapconn.Option
		if opsPerConn > 0 {
			opts = append(opts, ldapconn.WithOpsPerConn(opsPerConn))
		}
		p := openLDAPPool(b, url, size, false, opts...)
		p.warm(b, size)
		return p
	}
}

// shared is the ceiling of multiplexing: size go-ldap connections, dialed and
// bound before the timer, which every worker uses at once, each operation on
// the next connection round-robin. go-ldap's Conn runs concurrent operations
// (message IDs), and nothing limits how many are in flight on one.
type shared struct {
	conns []*ldap.Conn
	next  atomic.Uint64
}

func openShared(b *testing.B, url string, size, clients int) benchPool {
	s := &shared{conns: make([]*ldap.Conn, 0, size)}
	for range size {
		c, err := benchDial(url)
		if err != nil {
			s.close(b)
			b.Fatalf("dial: %v", err)
		}
		s.conns = append(s.conns, c)
	}
	return s
}

func (s *shared) search(client int, req *ldap.SearchRequest) (time.Duration, error) {
	c := s.conns[(s.next.Add(1)-1)%uint64(len(s.conns))]
	return 0, benchCheck(c.Search(req))
}

func (s *shared) close(b *testing.B) {
	for _, c := range s.conns {
		c.Close()
	}
}

// BenchmarkRoundTrip measures the round trip that BenchmarkMux's two
// networks really give: one worker, one go-ldap connection, one search at a
// time. ns/op (and p50-µs) is the time of one search; net=rt minus net=lo is
// what the proxy adds.
func BenchmarkRoundTrip(b *testing.B) {
	srv := slapd.Start(b)
	urls := map[string]string{"lo": srv.URL(), "rt": newDelayProxy(b, srv.URL(), muxDelay)}
	for _, n := range muxNets {
		b.Run("net="+n, func(b *testing.B) {
			d := openDedicated(b, urls[n], 1, 1)
			defer d.close(b)
			lat, _ := benchRun(b, 1, func(client, k int) (time.Duration, error) {
				return d.search(client, benchSearch(k))
			})
			all := slices.Clone(lat[0])
			slices.Sort(all)
			b.ReportMetric(benchMicros(sim.Percentile(all, 50)), "p50-µs")
			b.ReportMetric(benchMicros(sim.Percentile(all, 99)), "p99-µs")
		})
	}
}

const (
	muxFairClients = 64
	muxFairSize    = 4
)

// muxFairImpls are BenchmarkMuxFairness's implementations.
var muxFairImpls = []benchImpl{
	{"mux", openMux(0)},
	{"seq", openMux(1)},
	{"puddle", openPuddle},
}

// BenchmarkMuxFairness runs muxFairClients closed-loop workers, each
// searching as fast as it can, on a pool of muxFairSize through the delaying
// proxy, until the b.N searches they share are done. It reports Jain's index
// of the searches each worker completed (jain; sim.Jain), the fewest and
// most a worker completed, the latency of one search (p50, p99, max), and
// server-conns-peak: the most connections open at once at the server's side,
// counted by a proxy between the delaying proxy and slapd. It fails when that
// peak exceeds muxFairSize (the hard maximum) or jain is below 0.99.
func BenchmarkMuxFairness(b *testing.B) {
	srv := slapd.Start(b)
	for _, impl := range muxFairImpls {
		b.Run(fmt.Sprintf("S=%d/C=%d/impl=%s", muxFairSize, muxFairClients, impl.name), func(b *testing.B) {
			var count connCount
			counted := newCountingProxyTB(b, srv.URL(), &count)
			url := newDelayProxy(b, counted.URL(), muxDelay)
			p := impl.open(b, url, muxFairSize, muxFairClients)
			defer p.close(b)
			lat, _ := benchRun(b, muxFairClients, func(client, k int) (time.Duration, error) {
				return p.search(client, benchSearch(k))
			})
			counts := make([]int, len(lat))
			for i, l := range lat {
				counts[i] = len(l)
			}
			all := slices.Concat(lat...)
			slices.Sort(all)
			jain := sim.Jain(benchFloats(counts))
			peak, _ := count.figures()
			b.ReportMetric(jain, "jain")
			b.ReportMetric(float64(slices.Min(counts)), "client-ops-min")
			b.ReportMetric(float64(slices.Max(counts)), "client-ops-max")
			b.ReportMetric(benchMicros(sim.Percentile(all, 50)), "p50-µs")
			b.ReportMetric(benchMicros(sim.Percentile(all, 99)), "p99-µs")
			b.ReportMetric(benchMicros(sim.Percentile(all, 100)), "max-µs")
			b.ReportMetric(float64(peak), "server-conns-peak")
			if peak > muxFairSize {
				b.Errorf("%d connections open at once at the server; the pool's maximum is %d", peak, muxFairSize)
			}
			// The index means something only when every worker could do a few.
			if b.N >= 10*muxFairClients && jain < 0.99 {
				b.Errorf("Jain's index %.4f over %d workers (counts %d..%d); want at least 0.99",
					jain, muxFairClients, slices.Min(counts), slices.Max(counts))
			}
		})
	}
}

var _ benchPool = (*shared)(nil)
