package sim_test

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fairpool/ldappool/sim"
)

func TestSweepAndAdvise(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// 16 clients, 1ms operations: at size n each waits (16-n)/n ms.
		m := newModel(t, constant(time.Millisecond))
		res, err := sim.Sweep(t.Context(), m, sim.Config{
			Workload: sim.Workload{Kind: sim.Closed, Clients: 16},
			Duration: 2 * time.Second,
		}, []int{1, 2, 4, 8, 16})
		if err != nil {
			t.Fatal(err)
		}
		wantP99 := map[int]time.Duration{1: 15 * time.Millisecond, 2: 7 * time.Millisecond, 4: 3 * time.Millisecond, 8: time.Millisecond, 16: 0}
		for _, r := range res.Runs {
			if r.Wait.P99 != wantP99[r.PoolSize] {
				t.Errorf("size %d: p99 wait %v; want %v", r.PoolSize, r.Wait.P99, wantP99[r.PoolSize])
			}
		}
		for _, tc := range []struct {
			target time.Duration
			found  bool
			size   int
		}{
			{5 * time.Millisecond, true, 4},
			{3 * time.Millisecond, true, 4},
			{time.Millisecond, true, 8},
			{0, true, 16},
			{20 * time.Millisecond, true, 1},
		} {
			a := sim.Advise(res.Runs, tc.target)
			if a.Found != tc.found || a.Size != tc.size {
				t.Errorf("Advise(%v) = %+v; want size %d", tc.target, a, tc.size)
			}
		}
		a := sim.Advise(res.Runs[:3], time.Millisecond)
		if a.Found || a.Size != 4 || !strings.Contains(a.Reason, "try larger sizes") {
			t.Errorf("Advise over sizes 1,2,4 for 1ms = %+v; want not found, best size 4, and advice", a)
		}
		res.Advice = &a

		var table bytes.Buffer
		if err := res.WriteTable(&table); err != nil {
			t.Fatal(err)
		}
		if lines := strings.Count(table.String(), "\n"); lines < 10 || !strings.Contains(table.String(), "advisor:") {
			t.Errorf("sweep table:\n%s\nwant a header, 5 rows and the advice", table.String())
		}
	})
}

func TestAdviseSkipsRunsWithTimeouts(t *testing.T) {
	runs := []*sim.Report{
		{PoolSize: 1, Wait: sim.Percentiles{Count: 10, P99: time.Millisecond}, Errors: sim.Errors{Timeout: 5}},
		{PoolSize: 2, Wait: sim.Percentiles{Count: 10, P99: 4 * time.Millisecond}},
		{PoolSize: 3, Wait: sim.Percentiles{Count: 10, P99: time.Millisecond}, Interrupted: true},
	}
	if a := sim.Advise(runs, 5*time.Millisecond); !a.Found || a.Size != 2 {
		t.Fatalf("Advise = %+v; want size 2: size 1 timed out, size 3 was interrupted", a)
	}
}

func TestSweepStopsWhenInterrupted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newModel(t, constant(time.Millisecond))
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(1500*time.Millisecond, cancel)
		res, err := sim.Sweep(ctx, m, sim.Config{
			Workload: sim.Workload{Kind: sim.Closed, Clients: 4},
			Duration: time.Second,
		}, []int{1, 2, 4})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Runs) != 2 || res.Runs[0].Interrupted || !res.Runs[1].Interrupted {
			t.Fatalf("%d runs; want the first complete and the second interrupted", len(res.Runs))
		}
	})
}

func TestSweepRejectsBadSizes(t *testing.T) {
	m := newModel(t, constant(time.Millisecond))
	cfg := sim.Config{Workload: sim.Workload{Kind: sim.Closed, Clients: 1}, Duration: time.Second}
	for _, sizes := range [][]int{nil, {1, 0}} {
		if _, err := sim.Sweep(t.Context(), m, cfg, sizes); err == nil {
			t.Errorf("Sweep(%v) = nil error", sizes)
		}
	}
	if _, err := sim.Sweep(t.Context(), m, cfg, []int{1}, 1, 0); err == nil {
		t.Error("Sweep at depth 0 = nil error")
	}
}

func TestSweepAdvisesSizeAndDepth(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// 16 clients, 1ms operations on a server that works on 4 at once:
		// depth helps a pool of 1 up to the server's 4, and past it only
		// makes operations wait at the server.
		cfg := constant(time.Millisecond)
		cfg.Concurrency = 4
		m := newModel(t, cfg)
		res, err := sim.Sweep(t.Context(), m, sim.Config{
			Workload: sim.Workload{Kind: sim.Closed, Clients: 16},
			Duration: 2 * time.Second,
		}, []int{1, 2, 4}, 1, 4)
		if err != nil {
			t.Fatal(err)
		}
		type run struct {
			size, depth int
			wait, op    time.Duration
		}
		var got []run
		for _, r := range res.Runs {
			got = append(got, run{r.PoolSize, r.Depth, r.Wait.P99, r.OpLatency.P99})
		}
		want := []run{
			{1, 1, 15 * time.Millisecond, time.Millisecond}, {1, 4, 3 * time.Millisecond, time.Millisecond},
			{2, 1, 7 * time.Millisecond, time.Millisecond}, {2, 4, 2 * time.Millisecond, 2 * time.Millisecond},
			{4, 1, 3 * time.Millisecond, time.Millisecond}, {4, 4, 0, 4 * time.Millisecond},
		}
		if !slices.Equal(got, want) {
			t.Fatalf("runs (size, depth, wait p99, op p99):\n%v\nwant\n%v", got, want)
		}
		for _, tc := range []struct {
			target      time.Duration
			found       bool
			size, depth int
			reason      string
		}{
			{3 * time.Millisecond, true, 1, 4, "pool size 1 at depth 4"},
			// Size 2 at depth 4 waits 2ms, and its operations take 1ms
			// longer; size 4 at depth 4 waits not at all, but its
			// operations take 3ms longer: the wait moved into the server.
			{2 * time.Millisecond, false, 1, 4, "try larger sizes or depths"},
			{20 * time.Millisecond, true, 1, 1, "pool size 1 at depth 1"},
		} {
			a := sim.Advise(res.Runs, tc.target)
			if a.Found != tc.found || a.Size != tc.size || a.Depth != tc.depth || !strings.Contains(a.Reason, tc.reason) {
				t.Errorf("Advise(%v) = %+v; want found %v, size %d, depth %d, a reason saying %q",
					tc.target, a, tc.found, tc.size, tc.depth, tc.reason)
			}
		}
		var table bytes.Buffer
		if err := res.WriteTable(&table); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(table.String(), "DEPTH") {
			t.Errorf("sweep table lacks the depth:\n%s", table.String())
		}
	})
}

func TestAdviseSaysWhenTheWaitMovedIntoTheServer(t *testing.T) {
	p := func(wait, op time.Duration) (sim.Percentiles, sim.Percentiles) {
		return sim.Percentiles{Count: 10, P99: wait}, sim.Percentiles{Count: 10, P99: op}
	}
	r := func(size, depth int, wait, op time.Duration) *sim.Report {
		w, o := p(wait, op)
		return &sim.Report{PoolSize: size, Depth: depth, Wait: w, OpLatency: o}
	}
	runs := []*sim.Report{
		r(1, 1, 20*time.Millisecond, time.Millisecond), r(1, 8, 0, 12*time.Millisecond),
		r(2, 1, 4*time.Millisecond, time.Millisecond), r(2, 8, 0, 6*time.Millisecond),
	}
	a := sim.Advise(runs, 5*time.Millisecond)
	if !a.Found || a.Size != 2 || a.Depth != 1 ||
		!strings.Contains(a.Reason, "pool size 1 at depth 8 waited less, but its operations' p99 rose by 11ms") {
		t.Fatalf("Advise = %+v; want size 2 at depth 1, and why not size 1 at depth 8", a)
	}
	// A depth whose operations slow down by less than the target, less
	// their wait, is a gain.
	runs = append(runs, r(1, 4, 2*time.Millisecond, 3*time.Millisecond))
	a = sim.Advise(runs, 5*time.Millisecond)
	if !a.Found || a.Size != 1 || a.Depth != 4 ||
		!strings.Contains(a.Reason, "whose lease-wait p99 (2ms) is within 5ms with the rise of its operations' p99 (3ms against 1ms at depth 1)") {
		t.Fatalf("Advise = %+v; want size 1 at depth 4: 2ms of wait and 2ms more per operation", a)
	}
}
