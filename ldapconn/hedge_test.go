package ldapconn_test

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/fairpool/ldappool/ldapconn"
	"github.com/fairpool/ldappool/ldaptest"
)

// hedgedPair starts a primary whose next operations can be slowed (slowNext)
// and a healthy secondary, makes a pool over both at default options but
// opts, runs warm searches so that the pool knows what the primary usually
// takes, and waits for the hedge lane's connection to the secondary.
func hedgedPair(t *testing.T, slowFor time.Duration, opts ...ldapconn.Option) (p *ldapconn.Pool, slow *atomic.Int32, primary, secondary *ldaptest.Server) {
	t.Helper()
	slow, latency := slowNext(slowFor)
	primary, secondary = embedded(t, latency), embedded(t)
	p = newPool(t, primary.URL()+","+secondary.URL(), append([]ldapconn.Option{admin}, opts...)...)
	for range 20 {
		if _, err := p.Search(t.Context(), searchUID("user1")); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the hedge lane's connection to the secondary", func() bool { return secondary.Stats().Open == 1 })
	return p, slow, primary, secondary
}

// A Compare stuck on a slow server is hedged like a Search: the secondary
// answers it, and the caller does not wait out the primary.
func TestCompareIsHedged(t *testing.T) {
	p, slow, _, secondary := hedgedPair(t, 2*time.Second)
	before := secondary.Stats().Compares
	slow.Store(1)
	start := time.Now()
	matched, err := p.Compare(t.Context(), ldaptest.UserDN(3), "uid", "user3")
	took := time.Since(start)
	if err != nil || !matched {
		t.Fatalf("Compare = %v, %v; want true, nil", matched, err)
	}
	if took > time.Second {
		t.Fatalf("the compare took %v: it waited out the slow primary", took)
	}
	if n := secondary.Stats().Compares - before; n != 1 {
		t.Fatalf("the secondary served %d compares; want the stuck one", n)
	}
	if s := p.Servers()[0]; s.Hedged == 0 || s.HedgesLost == 0 {
		t.Fatalf("primary %+v; want its hedged reads, and one lost, counted", s)
	}
}

// Do's function may write, and a write is never sent twice (rule 8): a
// search inside Do is not hedged, however slow its server. Both servers
// take 300 ms over the next search, so that the test does not depend on
// which one the pool serves from: the search inside Do waits for its server,
// and Servers counts no hedge.
func TestDoIsNeverHedged(t *testing.T) {
	slowP, latencyP := slowNext(300 * time.Millisecond)
	slowS, latencyS := slowNext(300 * time.Millisecond)
	primary, secondary := embedded(t, latencyP), embedded(t, latencyS)
	p := newPool(t, primary.URL()+","+secondary.URL(), admin)
	for range 20 { // what each server usually takes
		if _, err := p.Search(t.Context(), searchUID("user1")); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the hedge lane's connection", func() bool { return p.Stats().Open >= 2 })
	hedged := func() (n uint64) {
		for _, s := range p.Servers() {
			n += s.Hedged
		}
		return n
	}
	before := hedged()
	slowP.Store(1)
	slowS.Store(1)
	start := time.Now()
	err := p.Do(t.Context(), func(c ldap.Client) error {
		_, err := c.Search(searchUID("user2"))
		return err
	})
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if n := hedged() - before; n != 0 || took < 300*time.Millisecond {
		t.Fatalf("%d reads hedged, and Do took %v; want none, waiting 300ms: Do is not hedged", n, took)
	}
}

// The hedge lane's connection is one of WithMaxSize's: with every service
// connection in use, the two servers together never hold more than
// WithMaxSize of the pool's connections, and Stats counts the lane's as one
// more row.
func TestHedgeLaneCountsAgainstWithMaxSize(t *testing.T) {
	const size = 3
	primary := embedded(t, ldaptest.WithLatency(func() time.Duration { return 2 * time.Millisecond }))
	secondary := embedded(t)
	// One operation a connection, so that 8 workers need every connection.
	p := newPool(t, primary.URL()+","+secondary.URL(), admin, ldapconn.WithMaxSize(size), ldapconn.WithOpsPerConn(1))
	most := peakOpen(t, p, 8, 30, primary, secondary)
	st := p.Stats()
	lane := 0
	for _, c := range st.Conns {
		if strings.HasSuffix(c.Key, "(hedge lane)") {
			lane++
		}
	}
	t.Logf("most connections open at the two servers: %d\n%v", most, st)
	if most > size || st.MaxSize != size || st.Open > size || lane != 1 {
		t.Fatalf("servers held %d connections at most, Stats: MaxSize %d, Open %d, %d hedge lane rows; want at most %d, %d, at most %d, 1",
			most, st.MaxSize, st.Open, lane, size, size, size)
	}
}

// With one server, WithHedging(false), WithNoPool, or settings that need
// every connection for the service pool (WithMinIdle(n) of WithMaxSize(n)),
// there is no hedge lane: Stats has no lane row, and WithMaxSize is the
// service pool's size.
func TestNoHedgeLaneWithoutASecondServerOrWithHedgingOff(t *testing.T) {
	one := embedded(t)
	primary, secondary := embedded(t), embedded(t)
	both := primary.URL() + "," + secondary.URL()
	for _, c := range []struct {
		name string
		p    *ldapconn.Pool
	}{
		{"one server", newPool(t, one.URL(), admin, ldapconn.WithMaxSize(4))},
		{"WithHedging(false)", newPool(t, both, admin, ldapconn.WithMaxSize(4), ldapconn.WithHedging(false))},
		{"WithNoPool", newPool(t, both, admin, ldapconn.WithMaxSize(4), ldapconn.WithNoPool())},
		{"WithMinIdle(4)", newPool(t, both, admin, ldapconn.WithMaxSize(4), ldapconn.WithMinIdle(4))},
	} {
		for range 10 {
			if _, err := c.p.Search(t.Context(), searchUID("user1")); err != nil {
				t.Fatal(err)
			}
		}
		st := c.p.Stats()
		for _, row := range st.Conns {
			if strings.Contains(row.Key, "hedge lane") {
				t.Errorf("%s: a hedge lane row: %+v", c.name, row)
			}
		}
		if st.MaxSize != 4 || st.Open > 4 {
			t.Errorf("%s: MaxSize %d, Open %d; want 4, at most 4", c.name, st.MaxSize, st.Open)
		}
	}
}

// A mark that no longer holds is lifted: the primary slows and the work
// moves to the secondary; then the primary recovers and the secondary
// slows, and the work moves back, well before the mark would lapse (5 s).
// Each phase is two rounds of 320 searches: the first moves the work, the
// second, which the assertion counts, runs where it went. (The servers'
// counts include the hedges that lost and the searches abandoned.)
func TestWorkMovesBackWhenTheOtherServerSlows(t *testing.T) {
	primary, secondary := embedded(t), embedded(t)
	p := newPool(t, primary.URL()+","+secondary.URL(), admin, ldapconn.WithMaxSize(4))
	load := func() (onPrimary, onSecondary int64) {
		t.Helper()
		p0, s0 := primary.Stats().Searches, secondary.Stats().Searches
		// 16 workers: as many reads as the hedge lane carries, so that
		// reads sent to it first can fill it (then it must still move).
		searchLoad(t, p, 16, 20, nil)
		return primary.Stats().Searches - p0, secondary.Stats().Searches - s0
	}
	load() // healthy: what each server usually takes
	primary.SetLatency(50 * time.Millisecond)
	load()
	ps, ss := load()
	t.Logf("primary slow: primary %d searches, secondary %d", ps, ss)
	if ss < 2*ps {
		t.Fatalf("primary slow: the secondary served %d searches, the primary %d; want most on the secondary", ss, ps)
	}
	primary.SetLatency(0)
	secondary.SetLatency(50 * time.Millisecond)
	start := time.Now()
	load()
	ps, ss = load()
	t.Logf("secondary slow: primary %d searches, secondary %d, in %v; servers %+v", ps, ss, time.Since(start), p.Servers())
	if ps < 2*ss {
		t.Fatalf("secondary slow: the primary served %d searches, the secondary %d; want most on the primary", ps, ss)
	}
}

// Config.NoHedging (no_hedging, LDAP_NO_HEDGING) is WithHedging(false); a
// value that is not a boolean is an error naming the variable.
func TestConfigNoHedging(t *testing.T) {
	primary, secondary := embedded(t), embedded(t)
	t.Setenv("LDAP_SERVERS", primary.URL()+","+secondary.URL())
	t.Setenv("LDAP_BIND_DN", ldaptest.AdminDN)
	t.Setenv("LDAP_BIND_PASSWORD", ldaptest.AdminPassword)
	t.Setenv("LDAP_MAX_SIZE", "4")
	t.Setenv("LDAP_NO_HEDGING", "true")
	c, err := ldapconn.ConfigFromEnv("")
	if err != nil || !c.NoHedging {
		t.Fatalf("ConfigFromEnv = %+v, %v; want NoHedging", c, err)
	}
	p := newPoolFromConfig(t, c)
	if _, err := p.Search(t.Context(), searchUID("user1")); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); strings.Contains(st.String(), "hedge lane") || st.MaxSize != 4 {
		t.Fatalf("no_hedging: a hedge lane, or MaxSize %d (want 4):\n%v", st.MaxSize, st)
	}
	t.Setenv("LDAP_NO_HEDGING", "perhaps")
	if _, err := ldapconn.ConfigFromEnv(""); err == nil ||
		err.Error() != `ldapconn: environment variable LDAP_NO_HEDGING="perhaps": not a boolean (true or false)` {
		t.Fatalf("LDAP_NO_HEDGING=perhaps: %v", err)
	}
}

// A read may run inside Do (a share of the service pool is held meanwhile)
// and be hedged there, with the pool at its defaults: nothing waits for
// itself.
func TestSearchAndCompareNestedInDoWithAHedgeLane(t *testing.T) {
	p, slow, _, secondary := hedgedPair(t, 2*time.Second)
	before := secondary.Stats().Searches
	slow.Store(1) // the nested search is stuck on the primary: it is hedged
	err := p.Do(t.Context(), func(c ldap.Client) error {
		if _, err := p.Search(t.Context(), searchUID("user2")); err != nil {
			return fmt.Errorf("nested Search: %w", err)
		}
		if ok, err := p.Compare(t.Context(), ldaptest.UserDN(2), "uid", "user2"); err != nil || !ok {
			return fmt.Errorf("nested Compare = %v, %v", ok, err)
		}
		_, err := c.Search(searchUID("user3"))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if secondary.Stats().Searches == before {
		t.Fatal("the nested search stuck on the primary was not answered by the secondary")
	}
}

// The hedge lane's server restarting between calls (its connections
// dropped) costs the callers nothing: the next reads succeed, and a read
// stuck on the primary afterwards is still answered by a hedge.
func TestHedgeLaneServerRestartBetweenCalls(t *testing.T) {
	p, slow, _, secondary := hedgedPair(t, 2*time.Second)
	if n := secondary.DropConnections(); n != 1 {
		t.Fatalf("the secondary dropped %d connections; want the hedge lane's", n)
	}
	for range 20 {
		if _, err := p.Search(t.Context(), searchUID("user1")); err != nil {
			t.Fatalf("a search after the secondary's restart: %v", err)
		}
	}
	waitFor(t, "the hedge lane's connection again", func() bool { return secondary.Stats().Open == 1 })
	slow.Store(1)
	start := time.Now()
	if _, err := p.Search(t.Context(), searchUID("user2")); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("the stuck search took %v: no hedge after the secondary's restart", took)
	}
}
