package ldapconn

import (
	"testing"
	"time"
)

// The hedge delay follows the 99th percentile of the last tailSamples
// answers, and none is claimed before tailReady of them.
func TestTailWindowKeepsTheRecentNinetyNinthPercentile(t *testing.T) {
	var w tailWindow
	for i := 1; i < tailReady; i++ {
		w.add(time.Duration(i) * time.Millisecond)
	}
	if got := w.percentile99(); got != 0 {
		t.Fatalf("after %d answers: %v; want none yet", tailReady-1, got)
	}
	for i := tailReady; i <= tailSamples; i++ { // 1 ms to 256 ms
		w.add(time.Duration(i) * time.Millisecond)
	}
	if got, want := w.percentile99(), 254*time.Millisecond; got != want {
		t.Fatalf("answers of 1 to 256 ms: p99 %v; want %v", got, want)
	}
	for range tailSamples { // the old answers leave the window
		w.add(time.Millisecond)
	}
	if got := w.percentile99(); got != time.Millisecond {
		t.Fatalf("after %d answers of 1 ms: p99 %v; want 1ms", tailSamples, got)
	}
}

// A hedge that beats a read counts against the read's server only when the
// server has answered no operation started after it: a busy server's
// stragglers lose to hedges in bursts while the reads after them overtake
// them, and that must not mark it slow (and move the pool off it); a
// server that slowed answers in turn, nothing overtakes, and it is marked.
func TestHedgeWinsMarkOnlyAServerWhereNothingOvertakes(t *testing.T) {
	servers := []Server{{URL: "ldap://primary"}, {URL: "ldap://secondary"}}
	for _, c := range []struct {
		name         string
		overtaken    bool // a read started after each hedged one was answered before the hedge won
		wantMarkedAt int  // the win that marks the primary; 0: none does
	}{
		{"busy, later reads overtaking", true, 0},
		{"slowed, nothing overtaking", false, hedgeWinsToMark},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHealth(servers, Failover, time.Second, time.Second, nil)
			h.tails = true
			base := time.Now()
			for k := range tailReady { // the primary's usual answers, so that it has a hedge delay
				start := base.Add(time.Duration(k) * time.Microsecond)
				h.begin(0)
				h.end(0, start, true)
			}
			h.activity[0].lastAnsweredStart.Store(0)
			markedAt := 0
			for win := 1; win <= 2*hedgeWinsToMark && markedAt == 0; win++ {
				started := time.Now()
				if c.overtaken {
					h.begin(0)
					h.end(0, time.Now(), true) // started after it, answered before the hedge won
				}
				h.activity[0].hedged.Add(1)
				if h.hedgeWon(0, 1, started, time.Now()) {
					markedAt = win
				}
			}
			if markedAt != c.wantMarkedAt {
				t.Fatalf("marked at win %d; want %d (0: never)", markedAt, c.wantMarkedAt)
			}
			if got := h.markedSlow(0, time.Now()); got != (c.wantMarkedAt > 0) {
				t.Fatalf("markedSlow = %v after the wins", got)
			}
		})
	}
}
