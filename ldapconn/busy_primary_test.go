package ldapconn_test

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestABusyPrimaryIsNotLeft: two identical embedded servers on this
// machine's CPUs, 16 callers searching for 2 s at default options. The
// primary's answers take several milliseconds under that load (16-18 ms at
// the median under the race detector with other tests beside it), the
// secondary's (a read explored there now and then, one at a time) a
// fraction of that. The latency-aware choice compares the primary's
// fastest recent answers, not its average, with the secondary's, and must
// not move the pool to the secondary, which Failover keeps for when the
// primary fails or is truly slow. At most 15% of the searches may reach
// the secondary (explored reads and hedges), and none may fail. (With the
// averages compared and a 2 ms margin, 25-99% went there; with a 10 ms
// margin still 94% once under load.)
func TestABusyPrimaryIsNotLeft(t *testing.T) {
	primary, secondary := embedded(t), embedded(t)
	p := newPool(t, primary.URL()+","+secondary.URL(), admin)
	end := time.Now().Add(2 * time.Second)
	var (
		wg    sync.WaitGroup
		total atomic.Int64
		mu    sync.Mutex
		took  []time.Duration
	)
	for w := range 16 {
		wg.Go(func() {
			for k := w; time.Now().Before(end) && !t.Failed(); k += 16 {
				start := time.Now()
				res, err := p.Search(t.Context(), searchUID(fmt.Sprint("user", k%50)))
				mu.Lock()
				took = append(took, time.Since(start))
				mu.Unlock()
				if err != nil || len(res.Entries) != 1 {
					t.Errorf("search: %v, %v", res, err)
					return
				}
				total.Add(1)
			}
		})
	}
	wg.Wait()
	n, onSecondary := total.Load(), secondary.Stats().Searches
	slices.Sort(took)
	t.Logf("%d searches (p50 %v, p90 %v), %d reached the secondary; %+v", n, took[len(took)/2], took[len(took)*9/10], onSecondary, p.Servers())
	if onSecondary*100 > n*15 {
		t.Fatalf("%d of %d searches reached the secondary of two identical servers; want 15%% at most", onSecondary, n)
	}
}
