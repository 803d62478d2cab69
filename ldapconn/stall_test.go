package ldapconn_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/fairpool/ldappool/ldapconn"
	"github.com/fairpool/ldappool/ldaptest"
	"github.com/fairpool/ldappool/ldaptest/slapd"
)

// A frozen primary (SIGSTOP) with a secondary beside it costs callers a
// short gap, not the freeze, at default options: the pool sees the primary
// answer nothing while operations wait, a probe confirms it, the primary's
// connections are closed under their operations, and Do runs those reads
// once more on the secondary. No caller sees an error.
func TestFrozenPrimaryAtDefaultOptions(t *testing.T) {
	primary, secondary := slapd.Start(t), slapd.Start(t)
	p := newPool(t, primary.URL()+","+secondary.URL(), admin, ldapconn.WithMaxSize(4))
	var (
		mu        sync.Mutex
		successes []time.Time
		failed    atomic.Int64
		firstErr  atomic.Value
		stop      = make(chan struct{})
		wg        sync.WaitGroup
	)
	done := func() int { mu.Lock(); defer mu.Unlock(); return len(successes) }
	for c := range 8 {
		wg.Go(func() {
			for i := 0; i < 100000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				_, err := p.Search(ctx, searchUID(fmt.Sprint("user", (c*31+i)%ldaptest.Users)))
				cancel()
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				mu.Lock()
				successes = append(successes, time.Now())
				mu.Unlock()
			}
		})
	}
	waitFor(t, "200 searches before the freeze", func() bool { return done() >= 200 })
	if err := primary.Freeze(); err != nil {
		t.Fatal(err)
	}
	frozenAt := time.Now()
	// The scenario: the primary stays frozen for 1.5 s, three times the
	// goal for the gap, whatever the pool does meanwhile.
	<-time.After(1500 * time.Millisecond)
	if err := primary.Thaw(); err != nil {
		t.Fatal(err)
	}
	after := done()
	waitFor(t, "200 searches after the thaw", func() bool { return done() >= after+200 })
	close(stop)
	wg.Wait()

	mu.Lock()
	times := slices.Clone(successes)
	mu.Unlock()
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	var gap time.Duration
	for k := 1; k < len(times); k++ {
		if times[k].After(frozenAt) {
			gap = max(gap, times[k].Sub(times[k-1]))
		}
	}
	t.Logf("%d searches; the longest time without a successful one after the freeze: %v; servers %+v",
		len(times), gap, p.Servers())
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d searches failed (first: %v); want none", n, firstErr.Load())
	}
	// The goal is 0.5 s; a loaded 2-core CI machine gets some slack.
	if gap > time.Second {
		t.Fatalf("no search succeeded for %v while the primary was frozen; want at most about 0.5s", gap)
	}
}

// One slow operation on a primary that still answers a probe is a slow
// server, not a frozen one: it is left up, and its search is answered by a
// hedge on the secondary. One hedge that wins moves nothing: the next
// searches run on the primary again.
func TestOneSlowOperationIsNotAStall(t *testing.T) {
	slow, latency := slowNext(700 * time.Millisecond)
	primary := embedded(t, latency)
	secondary := embedded(t)
	p := newPool(t, primary.URL()+","+secondary.URL(), admin)
	if _, err := p.Search(t.Context(), searchUID("user1")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the hedge lane's connection", func() bool { return secondary.Stats().Open == 1 })
	slow.Store(1)
	start := time.Now()
	if _, err := p.Search(t.Context(), searchUID("user2")); err != nil {
		t.Fatalf("the slow search: %v", err)
	}
	if took := time.Since(start); took >= 700*time.Millisecond {
		t.Fatalf("the slow search took %v: it waited out the slow primary", took)
	}
	if n := secondary.Stats().Searches; n != 1 {
		t.Fatalf("the secondary served %d searches; want the slow one, hedged", n)
	}
	before := primary.Stats().Searches
	for range 5 {
		if _, err := p.Search(t.Context(), searchUID("user3")); err != nil {
			t.Fatal(err)
		}
	}
	s := p.Servers()[0]
	if !s.Up || s.Failures != 0 || primary.Stats().Searches < before+5 {
		t.Fatalf("primary %+v served %d of the 5 searches after; want the slow primary left up and used",
			s, primary.Stats().Searches-before)
	}

	// Through Do, which is never hedged, the slow operation stays in flight
	// the whole 700 ms: the stall watchdog sees the primary answer nothing
	// for longer than it waits, its probe gets an answer, and the primary
	// stays up.
	slow.Store(1)
	start = time.Now()
	err := p.Do(t.Context(), func(c ldap.Client) error {
		_, err := c.Search(searchUID("user4"))
		return err
	})
	if err != nil {
		t.Fatalf("the slow search through Do: %v", err)
	}
	if took := time.Since(start); took < 700*time.Millisecond {
		t.Fatalf("the slow search through Do took %v: it did not wait for the slow primary", took)
	}
	if s := p.Servers()[0]; !s.Up || s.Failures != 0 {
		t.Fatalf("primary %+v after a 700ms search through Do; want it left up: a slow operation is not a stall", s)
	}
}

// A primary twenty times slower than the secondary loses the work: new
// connections, and so new operations, go to the server that answers sooner.
// Without it, the Failover strategy would keep every operation on the slow
// primary for as long as it answers.
func TestWorkMovesOffASlowServer(t *testing.T) {
	primary := embedded(t)
	secondary := embedded(t)
	p := newPool(t, primary.URL()+","+secondary.URL(), admin, ldapconn.WithMaxSize(4))
	// Healthy first: every service connection is on the primary.
	for range 8 {
		if _, err := p.Search(t.Context(), searchUID("user1")); err != nil {
			t.Fatal(err)
		}
	}
	primary.SetLatency(20 * time.Millisecond)
	searchLoad(t, p, 8, 40, nil)
	ps, ss := primary.Stats().Searches, secondary.Stats().Searches
	t.Logf("after the slowdown: primary %d searches, secondary %d; servers %+v", ps, ss, p.Servers())
	if ss < 3*ps {
		t.Fatalf("the secondary served %d searches, the slow primary %d; want most work moved off the slow one", ss, ps)
	}
}

// A search that waits far past what its server usually takes is hedged to
// the other server, or without a hedge lane (WithHedging(false)) moved
// there: the caller gets its answer in a small part of the slow server's
// time, and the slow server sees an Abandon for the search.
func TestASearchStuckOnASlowServerMoves(t *testing.T) {
	for _, c := range []struct {
		name string
		opts []ldapconn.Option
	}{{"hedged", nil}, {"moved", []ldapconn.Option{ldapconn.WithHedging(false)}}} {
		t.Run(c.name, func(t *testing.T) {
			// 3 ms an answer, so that a loaded machine's delays do not move
			// the warm searches; 2 s for the stuck one.
			var slow atomic.Int32
			primary := embedded(t, ldaptest.WithLatency(func() time.Duration {
				if slow.Add(-1) >= 0 {
					return 2 * time.Second
				}
				return 3 * time.Millisecond
			}))
			// The secondary as fast as the primary: one much faster would
			// be chosen over it from the start (TestAPrimarySlowFromTheStartIsLeft).
			secondary := embedded(t, ldaptest.WithLatency(func() time.Duration { return 3 * time.Millisecond }))
			p := newPool(t, primary.URL()+","+secondary.URL(), append([]ldapconn.Option{admin}, c.opts...)...)
			for range 40 { // what the primary usually takes, and a budget for moves
				if _, err := p.Search(t.Context(), searchUID("user1")); err != nil {
					t.Fatal(err)
				}
			}
			before, abandons := secondary.Stats().Searches, primary.Stats().Abandons // the warm searches may have been hedged
			slow.Store(1)
			start := time.Now()
			res, err := p.Search(t.Context(), searchUID("user2"))
			took := time.Since(start)
			if err != nil || len(res.Entries) != 1 {
				t.Fatalf("Search = %v, %v", res, err)
			}
			if took > time.Second {
				t.Fatalf("the search took %v: it waited out the slow primary", took)
			}
			if secondary.Stats().Searches == before {
				t.Fatal("the secondary served no search; want the stuck one answered there")
			}
			// The Abandon was written before Search returned; the server
			// reads it when it gets to it.
			waitFor(t, "the primary to see the Abandon", func() bool { return primary.Stats().Abandons > abandons })
		})
	}
}

// slowArrivals is slowNext, and tells on arrived (buffered) each time the
// server takes a slowed operation: the caller's request is then on the
// server, and its share or lease held.
func slowArrivals(d time.Duration) (*atomic.Int32, <-chan struct{}, ldaptest.Option) {
	slow := new(atomic.Int32)
	arrived := make(chan struct{}, 64)
	return slow, arrived, ldaptest.WithLatency(func() time.Duration {
		if slow.Add(-1) >= 0 {
			select {
			case arrived <- struct{}{}:
			default:
			}
			return d
		}
		return 0
	})
}

// slowNext returns an option for the embedded server that delays the next
// operations by d, as many as the counter it returns is set to, and no
// others.
func slowNext(d time.Duration) (*atomic.Int32, ldaptest.Option) {
	slow, _, opt := slowArrivals(d)
	return slow, opt
}

// TestAPrimarySlowFromTheStartIsLeft is issue 10's own measurement: a
// primary 20 times slower than its secondary from the first read, at
// default options. Nothing slows while reads are in flight, so none of its
// reads is hedged (each takes what the primary usually takes); the pool
// must compare it with the secondary to leave it. Within a bounded number
// of reads, a run of 20 goes to the secondary with at most 2 reaching the
// primary (a hedge may), and no read fails. Once the primary answers as
// fast again, the pool goes back to it: its connections to the secondary
// live WithFailbackAfter, shortened here, and the slow mark lapses.
func TestAPrimarySlowFromTheStartIsLeft(t *testing.T) {
	primary, secondary := embedded(t), embedded(t)
	primary.SetLatency(20 * time.Millisecond)
	p := newPool(t, primary.URL()+","+secondary.URL(), admin, ldapconn.WithFailbackAfter(300*time.Millisecond))

	// runOf searches until a run of 20 searches in a row reached the
	// primary at most 2 times (onPrimary) or at least 18 (!onPrimary),
	// within reads searches and limit; it reports how many it took.
	runOf := func(onPrimary bool, reads int, limit time.Duration) (int, bool) {
		deadline := time.Now().Add(limit)
		var window []int64 // the primary's count before each search of the run
		for i := 1; i <= reads && time.Now().Before(deadline); i++ {
			window = append(window, primary.Stats().Searches)
			if res, err := p.Search(t.Context(), searchUID(fmt.Sprintf("user%d", i%50))); err != nil || len(res.Entries) != 1 {
				t.Fatalf("search %d: %v, %v", i, res, err)
			}
			if len(window) > 20 {
				window = window[1:]
			}
			if len(window) == 20 {
				n := primary.Stats().Searches - window[0]
				if (onPrimary && n >= 18) || (!onPrimary && n <= 2) {
					return i, true
				}
			}
		}
		return 0, false
	}
	n, ok := runOf(false, 200, 10*time.Second)
	if !ok {
		t.Fatalf("after 200 reads the primary, 20x slower than the secondary, still served more than 2 reads in every 20")
	}
	t.Logf("the pool left the slow primary after %d reads", n)
	primary.SetLatency(0)
	n, ok = runOf(true, 20000, 20*time.Second)
	if !ok {
		t.Fatalf("the primary recovered, and 20 s later the pool had not gone back to it")
	}
	t.Logf("the pool went back to the primary after %d reads", n)
}

// TestTheServicePoolLeavesASlowPrimaryToo: the connections of the service
// pool leave a primary slow from the start, not only the reads, so that
// when its slow mark lapses (after 5 s) the reads of 8 callers do not go
// back to it all at once: at most 3 of them wait out its 100 ms (an
// explored read, which marks it again, and reads sent with it). The
// secondary answers at once; 60 ms is far above what a loaded machine
// running the race detector makes of that.
func TestTheServicePoolLeavesASlowPrimaryToo(t *testing.T) {
	primary, secondary := embedded(t), embedded(t)
	primary.SetLatency(100 * time.Millisecond)
	p := newPool(t, primary.URL()+","+secondary.URL(), admin)
	search := func(k int) time.Duration {
		start := time.Now()
		if res, err := p.Search(t.Context(), searchUID(fmt.Sprintf("user%d", k%50))); err != nil || len(res.Entries) != 1 {
			t.Errorf("search: %v, %v", res, err)
		}
		return time.Since(start)
	}
	for n, fast := 0, 0; fast < 20; n++ { // until 20 reads in a row are fast: the pool left the primary
		if n == 200 {
			t.Fatal("after 200 reads the pool still reads from the slow primary")
		}
		if search(n) < 60*time.Millisecond {
			fast++
		} else {
			fast = 0
		}
	}
	// 8 callers for 6 s, past the 5 s mark.
	var (
		wg   sync.WaitGroup
		slow atomic.Int64
		end  = time.Now().Add(6 * time.Second)
	)
	for c := range 8 {
		wg.Go(func() {
			for k := c; time.Now().Before(end) && !t.Failed(); k += 8 {
				if search(k) >= 60*time.Millisecond {
					slow.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if n := slow.Load(); n > 3 {
		t.Fatalf("%d reads took 60 ms or more (the slow primary's 100 ms) within 6 s after the pool left it; want 3 at most", n)
	}
}
