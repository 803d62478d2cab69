package ldapconn

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// tailWindow keeps a server's last answer times and their 99th percentile,
// which is when a read on it is hedged (latency.go, hedgeAfter): the issue
// with a mean is that a server's healthy answers spread, more or less, by
// its load, and a hedge delay that does not follow the spread either hedges
// too many healthy reads or rescues the stuck ones late.
type tailWindow struct {
	mu   sync.Mutex
	ring [tailSamples]int64 // nanoseconds
	n    int                // samples written
	p99  atomic.Int64       // nanoseconds; 0 until tailReady samples
}

const (
	tailSamples = 256 // the window: the last answers
	tailEvery   = 64  // answers between two computations of the percentile
	tailReady   = 128 // answers before the percentile is used
)

// add records an answer time; every tailEvery answers it recomputes the
// percentile, sorting a copy outside the lock.
func (w *tailWindow) add(took time.Duration) {
	w.mu.Lock()
	w.ring[w.n%tailSamples] = int64(took)
	w.n++
	if w.n < tailReady || w.n%tailEvery != 0 {
		w.mu.Unlock()
		return
	}
	samples := w.ring
	filled := min(w.n, tailSamples)
	w.mu.Unlock()
	s := samples[:filled]
	slices.Sort(s)
	w.p99.Store(s[filled*99/100])
}

// percentile99 returns the 99th percentile of the last answers, 0 while
// there are too few.
func (w *tailWindow) percentile99() time.Duration { return time.Duration(w.p99.Load()) }
