package sim

import (
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// In a synctest bubble time moves only when every goroutine is blocked, so a
// clock that believes its host's timers are coarse finds its watch loop
// stalled and sleeps on a timer: each sleeper must still wake at exactly its
// deadline, whichever of them is watching, however the watch is handed on.
func TestClockWakesEachSleeperAtItsDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := clockOf(time.Millisecond)
		delays := []time.Duration{
			300 * time.Microsecond, 50 * time.Microsecond, 900 * time.Microsecond,
			300 * time.Microsecond, 1700 * time.Microsecond, 7 * time.Millisecond, 0,
		}
		start := time.Now()
		got := make([]time.Duration, len(delays))
		var wg sync.WaitGroup
		for i, d := range delays {
			wg.Go(func() {
				if err := c.sleep(t.Context(), d); err != nil {
					t.Errorf("sleep(%v) = %v", d, err)
				}
				got[i] = time.Since(start)
			})
		}
		wg.Wait()
		for i, d := range delays {
			if got[i] != d {
				t.Errorf("sleep(%v) woke after %v; want exactly %v", d, got[i], d)
			}
		}
		if len(c.due) != 0 || c.watching {
			t.Errorf("after every sleeper woke: %d still due, watching %v; want none", len(c.due), c.watching)
		}
	})
}

// A delay pays back what earlier delays overran, and no more than maxOwed
// granularities of it.
func TestClockDelayPaysBackLateness(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := clockOf(time.Millisecond)
		c.owed = 700 * time.Microsecond
		start := time.Now()
		if err := c.delay(t.Context(), 500*time.Microsecond); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d != 0 || c.owed != 200*time.Microsecond {
			t.Fatalf("delay(500µs) owing 700µs took %v and left %v owed; want 0 and 200µs", d, c.owed)
		}
		start = time.Now()
		if err := c.delay(t.Context(), 500*time.Microsecond); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d != 300*time.Microsecond || c.owed != 0 {
			t.Fatalf("delay(500µs) owing 200µs took %v and left %v owed; want 300µs and nothing", d, c.owed)
		}
	})
}
