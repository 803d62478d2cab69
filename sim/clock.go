package sim

import (
	"container/heap"
	"context"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/fairpool/ldappool/internal/ctxtime"
)

// A clock makes the model's delays last what they should, to within a few
// microseconds, on a host whose timers cannot: on many VMs, this project's
// 2-core test machine among them, a timer never fires sooner than about a
// millisecond after it was set (a 50µs sleep takes 1.03ms, a 500µs one
// 1.2ms), so a server model that slept its latency would turn a measured
// mean of 677µs into operations of 1.35ms and predict a throughput a third
// too low.
//
// Two other cures were weighed. Sleeping to absolute deadlines and carrying
// each overshoot into the next draw gets the mean right, but only by making
// every operation either a whole timer tick or nothing: the spread of
// operation times, which sets the lease-wait percentiles as much as their
// mean does, would be the timer's, not the model's. A virtual clock is exact
// (a testing/synctest bubble is one, and the package's tests use it), but
// the pools under test run on the real clock and cannot be moved onto
// another outside a test. So a clock sleeps on a timer for the part of a
// delay that timers get right, and has the last stretch watched: one of the
// sleepers in their last stretch at a time reads the time in a loop that
// yields the processor at each turn, and wakes every sleeper whose deadline
// has come, its own included. While deadlines are pending within a
// granularity of now this costs one core at most, whatever the number of
// operations in flight; otherwise nothing.
//
// A busy host still wakes a sleeper late now and then (another process had
// the core, or the watcher's thread was descheduled): delay carries that
// lateness into the next delays, which are shortened by it, so that the mean
// stays right; a lateness past maxOwed granularities is a stall, not slack,
// and is not paid back.
//
// The granularity is measured when the clock is made, and learnt as it goes:
// a few short sleeps can end on time while other goroutines keep the
// processors busy, and the timers be coarse again once they sleep. Inside a
// synctest bubble the measure is exactly zero, and the clock is a plain
// timer.
type clock struct {
	measured time.Duration // the host's timer granularity, measured by newClock; 0: a virtual clock

	mu       sync.Mutex
	grain    time.Duration // the granularity as learnt: at least measured, at most maxGrain
	due      sleepers      // in their last stretch, earliest deadline first
	watching bool          // one of due is watching the time for all
	owed     time.Duration // lateness not yet taken off a delay; at most maxOwed granularities

	// earlier tells a watcher sleeping on a timer (see stalledTurns) that a
	// sleeper with an earlier deadline than it knew of has come.
	earlier chan struct{}
}

const (
	// maxOwed is how many granularities of lateness delay pays back at
	// most.
	maxOwed = 10
	// maxGrain bounds the granularity learnt from late timers: a timer
	// later than that was held up by a stall, not by the timers' coarseness.
	maxGrain = 5 * time.Millisecond
)

// A sleeper is one delay in its last stretch.
type sleeper struct {
	at    time.Time
	wake  chan struct{} // capacity 1: its deadline has come, or it is to watch
	watch bool          // set under clock.mu before wake: watch for the others
}

// granularityProbes short sleeps measure the timer granularity: their median
// overshoot, so that one sleep the scheduler delayed does not count.
const (
	granularityProbes = 5
	granularityAsk    = 50 * time.Microsecond
	// fineTimers is a granularity too small to matter to a report's reader.
	fineTimers = 20 * time.Microsecond
)

func newClock() *clock { return clockOf(MeasureTimerGranularity()) }

// clockOf returns a clock for timers of granularity grain.
func clockOf(grain time.Duration) *clock {
	return &clock{measured: grain, grain: min(grain, maxGrain), earlier: make(chan struct{}, 1)}
}

// granularity returns the granularity as learnt so far.
func (c *clock) granularity() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.grain
}

// learn takes in a timer that fired over later than asked: the granularity
// moves a quarter of the way up to it, so that one late timer counts for
// little and a run of them for all.
func (c *clock) learn(over time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if over > c.grain {
		c.grain = min(c.grain+(over-c.grain)/4, maxGrain)
	}
}

// MeasureTimerGranularity returns how much later than asked a short sleep
// ends on this host, the median of a few: about 1ms on many VMs, where a
// timer cannot fire sooner; 0 inside a testing/synctest bubble.
func MeasureTimerGranularity() time.Duration {
	over := make([]time.Duration, granularityProbes)
	for i := range over {
		start := time.Now()
		time.Sleep(granularityAsk)
		over[i] = max(time.Since(start)-granularityAsk, 0)
	}
	slices.Sort(over)
	return over[len(over)/2]
}

// sleep waits d from now; see sleepUntil.
func (c *clock) sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	return c.sleepUntil(ctx, time.Now().Add(d))
}

// delay is sleep for a delay drawn from a distribution, whose mean counts
// more than any one draw: d is shortened by the lateness of earlier delays,
// and this one's lateness is owed to later ones.
func (c *clock) delay(ctx context.Context, d time.Duration) error {
	if c.measured == 0 {
		return c.sleep(ctx, d)
	}
	c.mu.Lock()
	pay := min(c.owed, max(d, 0))
	c.owed -= pay
	c.mu.Unlock()
	t := time.Now().Add(d - pay)
	if err := c.sleepUntil(ctx, t); err != nil {
		return err
	}
	if late := time.Since(t); late > 0 {
		c.mu.Lock()
		c.owed = min(c.owed+late, maxOwed*max(c.grain, fineTimers))
		c.mu.Unlock()
	}
	return nil
}

// sleepUntil waits until t, or until ctx ends and then returns ctx's error.
// A delay in its last stretch (two granularities) runs to t whatever ctx
// does: that is at most a few milliseconds.
func (c *clock) sleepUntil(ctx context.Context, t time.Time) error {
	if c.measured == 0 {
		return ctxtime.Sleep(ctx, time.Until(t))
	}
	// A timer set for d fires up to a granularity late, or, for a d of a
	// few milliseconds, rounds to the millisecond: two granularities early
	// leaves time for either.
	if wake := t.Add(-2 * c.granularity()); time.Now().Before(wake) {
		if err := ctxtime.Sleep(ctx, time.Until(wake)); err != nil {
			return err
		}
		c.learn(time.Since(wake))
	}
	if time.Now().Before(t) {
		c.await(t)
	}
	return nil
}

// await returns at t: it joins the sleepers in their last stretch and waits
// to be woken, or watches the time itself when no other sleeper does.
func (c *clock) await(t time.Time) {
	s := &sleeper{at: t, wake: make(chan struct{}, 1)}
	c.mu.Lock()
	heap.Push(&c.due, s)
	watch := !c.watching
	c.watching = true
	if !watch && c.due[0] == s {
		select {
		case c.earlier <- struct{}{}:
		default:
		}
	}
	c.mu.Unlock()
	if !watch {
		<-s.wake
		c.mu.Lock()
		watch = s.watch
		c.mu.Unlock()
		if !watch {
			return
		}
	}
	c.watch(s)
}

// stalledTurns is how many turns of the watch loop may read the same time
// before the watcher concludes that the clock only moves when everyone
// sleeps, as inside a synctest bubble for a clock made outside it, and
// sleeps on a timer instead.
const stalledTurns = 1000

// watch reads the time in a loop that yields the processor at each turn,
// waking every sleeper whose deadline has come, until s's has; it then hands
// the watch to the earliest sleeper left, if any.
func (c *clock) watch(s *sleeper) {
	var last time.Time
	stalled := 0
	for {
		now := time.Now()
		c.mu.Lock()
		for len(c.due) > 0 && !c.due[0].at.After(now) {
			if w := heap.Pop(&c.due).(*sleeper); w != s {
				w.wake <- struct{}{}
			}
		}
		if !s.at.After(now) {
			if len(c.due) > 0 {
				next := c.due[0]
				next.watch = true
				next.wake <- struct{}{}
			} else {
				c.watching = false
			}
			c.mu.Unlock()
			return
		}
		next := c.due[0].at
		c.mu.Unlock()
		if now.Equal(last) {
			if stalled++; stalled > stalledTurns {
				c.sleepOnTimer(next.Sub(now))
				stalled = 0
			}
		} else {
			last, stalled = now, 0
		}
		runtime.Gosched()
	}
}

// sleepOnTimer sleeps d on a timer, or less if a sleeper with an earlier
// deadline comes meanwhile.
func (c *clock) sleepOnTimer(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-c.earlier:
	}
}

// sleepers is a min-heap of sleepers by deadline.
type sleepers []*sleeper

func (h sleepers) Len() int           { return len(h) }
func (h sleepers) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h sleepers) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *sleepers) Push(x any)        { *h = append(*h, x.(*sleeper)) }
func (h *sleepers) Pop() any {
	old := *h
	s := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return s
}
