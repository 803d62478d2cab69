package ldapconn

import (
	"testing"
	"time"
)

// The latency-aware mark (health.end) compares a server's fastest recent
// answers with the other server's average, and wants 4 times and markMargin
// more. A busy server's answers spread from fast to slow under the pool's
// load, and its fastest stay fast: it is not marked, though its average is
// far above the idle secondary's (compared by averages, with the 2 ms of
// slowMargin, the first two cases were marked, and two identical embedded
// servers under 16 callers sent 25-99% of the searches to the idle one). A
// slow replica's fastest answers are slow too: it is marked.
func TestTheLatencyMarkLeavesASlowServerNotABusyOne(t *testing.T) {
	servers := []Server{{URL: "ldap://primary"}, {URL: "ldap://secondary"}}
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	for _, c := range []struct {
		name    string
		primary func(k int) time.Duration // the primary's k-th answer time
		marked  bool
	}{
		{"busy: 1 to 30 ms, 15.5 on average", func(k int) time.Duration { return ms(1 + k%30) }, false},
		{"busy on a loaded machine: 3 to 40 ms", func(k int) time.Duration { return ms(3 + k%38) }, false},
		{"slowed 20 times: 40 to 48 ms", func(k int) time.Duration { return ms(40 + k%9) }, true},
		{"behind a WAN link: 22 to 30 ms", func(k int) time.Duration { return ms(22 + k%9) }, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHealth(servers, Failover, time.Second, time.Second, nil)
			h.tails = true
			answer := func(i int, took time.Duration) {
				h.begin(i)
				h.end(i, time.Now().Add(-took), true)
			}
			for range 8 { // reads explored on the secondary, one at a time
				answer(1, 200*time.Microsecond)
			}
			for k := range 500 {
				answer(0, c.primary(k))
			}
			if got := h.markedSlow(0, time.Now()); got != c.marked {
				t.Fatalf("primary marked slow: %v; want %v (its floor %v, its average %v, the secondary's %v)", got, c.marked,
					time.Duration(h.activity[0].floor.Load()), time.Duration(h.activity[0].latency.Load()),
					time.Duration(h.activity[1].latency.Load()))
			}
		})
	}
}
