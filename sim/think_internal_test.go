package sim

import (
	"testing"
	"time"
)

func TestThinkTimesReproducibleBySeedAndClient(t *testing.T) {
	draw := func(seed uint64, client int) []time.Duration {
		th := newThinker(10*time.Millisecond, seed, client)
		out := make([]time.Duration, 100)
		var sum time.Duration
		for i := range out {
			out[i] = th.next()
			sum += out[i]
		}
		return out
	}
	a, b := draw(1, 3), draw(1, 3)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("draw %d: %v then %v from the same seed and client", i, a[i], b[i])
		}
	}
	if c := draw(1, 4); c[0] == a[0] && c[1] == a[1] {
		t.Fatal("clients 3 and 4 think alike: want a stream each")
	}
	if d := draw(2, 3); d[0] == a[0] && d[1] == a[1] {
		t.Fatal("seeds 1 and 2 give the same think times")
	}
	if z := newThinker(0, 1, 0).next(); z != 0 {
		t.Fatalf("think time with mean 0 = %v; want 0", z)
	}
}
