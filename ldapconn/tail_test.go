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

// TestTwoWinsThatDoNotMarkMakeTheLoserSuspect: hedges that beat reads
// nothing overtook, too few to mark their server slow, send new reads to
// the hedge lane first for a moment (readsLaneFirst) from the second, so
// that the reads that come while the other caught reads are hedged do not
// wait out a hedge delay there too. One win is not enough (one slow
// operation moves nothing), nor are wins over overtaken reads (a busy
// server's stragglers); the suspicion lapses, and a win of the suspect
// server lifts it.
func TestTwoWinsThatDoNotMarkMakeTheLoserSuspect(t *testing.T) {
	servers := []Server{{URL: "ldap://primary"}, {URL: "ldap://secondary"}}
	h := newHealth(servers, Failover, time.Second, time.Second, nil)
	h.tails = true
	base := time.Now()
	for k := range tailReady {
		h.begin(0)
		h.end(0, base.Add(time.Duration(k)*time.Microsecond), true)
	}
	h.activity[0].lastAnsweredStart.Store(0)
	suspect := func(now time.Time) bool { return sinceEpoch(now) < h.activity[0].suspectUntil.Load() }
	win := func(overtaken bool) (marked bool, now time.Time) {
		started := time.Now()
		if overtaken {
			h.begin(0)
			h.end(0, time.Now(), true) // a later read answered first
		}
		h.activity[0].hedged.Add(1)
		now = time.Now()
		return h.hedgeWon(0, 1, started, now), now
	}

	for range hedgeWinsToMark {
		if marked, now := win(true); marked || suspect(now) || h.readsLaneFirst(now, -1) {
			t.Fatal("wins over overtaken reads marked the primary or made it suspect")
		}
	}
	if marked, now := win(false); marked || suspect(now) {
		t.Fatal("one win over a read nothing overtook made the primary suspect: one slow operation moves reads")
	}
	marked, now := win(false)
	if marked {
		t.Fatal("two wins marked the primary slow")
	}
	if !suspect(now) || !h.readsLaneFirst(now, -1) {
		t.Fatal("two wins over reads nothing overtook left reads going to the primary first")
	}
	if h.markedSlow(0, now) {
		t.Fatal("the suspect primary is marked slow: its connections would be closed")
	}
	if lapse := now.Add(max(suspectFor*h.hedgeAfter(0), suspectAtLeast) + time.Millisecond); h.readsLaneFirst(lapse, -1) {
		t.Fatalf("still suspect %v after the win", lapse.Sub(now))
	}
	h.hedgeWon(1, 0, time.Now(), time.Now()) // the primary beat a hedge: it answers
	if suspect(time.Now()) {
		t.Fatal("a win of the suspect primary left it suspect")
	}
}
