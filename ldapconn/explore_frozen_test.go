package ldapconn_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fairpool/ldappool/ldaptest"
)

// TestAnExploredReadDoesNotWaitOnAFrozenSecondary: the secondary answers
// its bind (so the hedge lane connects) and then nothing, from the start.
// The reads the pool sends there to learn how fast it is (one in each
// 500 ms that it answers nothing) are hedged to the primary after the
// primary's hedge delay, as any read: over 1.5 s of sequential searches,
// none takes more than 100 ms (the stall watchdog would end such a read
// after 150 ms at least), and none fails.
func TestAnExploredReadDoesNotWaitOnAFrozenSecondary(t *testing.T) {
	primary := embedded(t)
	var requests atomic.Int32
	secondary := embedded(t, ldaptest.WithLatency(func() time.Duration {
		if requests.Add(1) == 1 { // the hedge lane's bind
			return 0
		}
		return time.Hour
	}))
	p := newPool(t, primary.URL()+","+secondary.URL(), admin)
	deadline := time.Now().Add(1500 * time.Millisecond)
	var longest time.Duration
	for i := 0; time.Now().Before(deadline) && i < 5000; i++ {
		start := time.Now()
		if res, err := p.Search(t.Context(), searchUID(fmt.Sprint("user", i%50))); err != nil || len(res.Entries) != 1 {
			t.Fatalf("search %d: %v, %v", i, res, err)
		}
		longest = max(longest, time.Since(start))
	}
	if longest > 100*time.Millisecond {
		t.Fatalf("the longest search took %v; want under 100 ms", longest)
	}
	t.Logf("longest search %v", longest)
}
