package sim_test

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/fairpool/ldappool/sim"
)

func ms(n float64) time.Duration { return time.Duration(n * float64(time.Millisecond)) }

func TestPercentile(t *testing.T) {
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = ms(float64(i + 1)) // 1ms .. 100ms
	}
	for _, tc := range []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one sample, p50", []time.Duration{ms(3)}, 50, ms(3)},
		{"one sample, p0", []time.Duration{ms(3)}, 0, ms(3)},
		{"p0 is the minimum", hundred, 0, ms(1)},
		{"p50 of 1..100", hundred, 50, ms(50)},
		{"p95 of 1..100", hundred, 95, ms(95)},
		{"p99 of 1..100", hundred, 99, ms(99)},
		{"p100 is the maximum", hundred, 100, ms(100)},
		{"p99.5 rounds up", hundred, 99.5, ms(100)},
		{"p50 of four", []time.Duration{1, 2, 3, 4}, 50, 2},
		{"p51 of four", []time.Duration{1, 2, 3, 4}, 51, 3},
		{"p99 of ten is the max", []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 99, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := sim.Percentile(tc.sorted, tc.p); got != tc.want {
				t.Fatalf("Percentile(p%g) = %v; want %v", tc.p, got, tc.want)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	samples := []time.Duration{ms(4), ms(1), ms(3), ms(2)}
	got := sim.Summarize(samples)
	want := sim.Percentiles{Count: 4, Mean: 2500 * time.Microsecond, P50: ms(2), P95: ms(4), P99: ms(4), Max: ms(4)}
	if got != want {
		t.Fatalf("Summarize = %+v; want %+v", got, want)
	}
	if (sim.Summarize(nil) != sim.Percentiles{}) {
		t.Fatal("Summarize(nil) is not the zero Percentiles")
	}
}

func TestJain(t *testing.T) {
	for _, tc := range []struct {
		name string
		x    []float64
		want float64
	}{
		{"no clients", nil, 0},
		{"all zero", []float64{0, 0, 0}, 1},
		{"one client", []float64{7}, 1},
		{"equal", []float64{5, 5, 5, 5}, 1},
		{"one takes all of four", []float64{10, 0, 0, 0}, 0.25},
		{"half get nothing", []float64{1, 1, 0, 0}, 0.5},
		{"1 and 3", []float64{1, 3}, 16.0 / 20.0},
		{"450 ± 3 of 64", spread(64, 450, 3), 0.99996},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := sim.Jain(tc.x); math.Abs(got-tc.want) > 1e-5 {
				t.Fatalf("Jain(%v) = %.6f; want %.6f", tc.x, got, tc.want)
			}
		})
	}
}

// spread returns n values alternating mean-d and mean+d.
func spread(n int, mean, d float64) []float64 {
	x := make([]float64, n)
	for i := range x {
		x[i] = mean - d
		if i%2 == 1 {
			x[i] = mean + d
		}
	}
	return x
}

func TestErrorsString(t *testing.T) {
	if s := (sim.Errors{}).String(); s != "none" {
		t.Fatalf("no errors = %q; want none", s)
	}
	e := sim.Errors{Timeout: 3, Connect: 1}
	if s := e.String(); s != "timeout 3, connect 1" {
		t.Fatalf("errors = %q; want %q", s, "timeout 3, connect 1")
	}
	if e.Total() != 4 || e.Count(sim.KindTimeout) != 3 {
		t.Fatalf("Total = %d, Count(timeout) = %d; want 4 and 3", e.Total(), e.Count(sim.KindTimeout))
	}
}

func TestReportOutputs(t *testing.T) {
	r := &sim.Report{
		Backend: "server model", Workload: sim.Workload{Kind: sim.Closed, Clients: 2},
		PoolSize: 1, Processes: 1, Clients: 2, Duration: time.Second, Elapsed: time.Second,
		Ops: 1000, Throughput: 1000, Wait: sim.Summarize([]time.Duration{ms(1), ms(2)}),
		Fairness: 1, Server: sim.ServerStats{Known: true, Peak: 1},
		Errors: sim.Errors{Op: 1, First: map[string]string{"op": "broken pipe"}},
	}
	var table bytes.Buffer
	if err := r.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"1000.0 ops/s", "p99 2ms", "Jain's index 1.0000 across 2 clients", "first op: broken pipe"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	var js bytes.Buffer
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatalf("report JSON does not parse: %v\n%s", err, js.String())
	}
	if wait := back["lease_wait"].(map[string]any); wait["p99_ns"] != float64(ms(2)) {
		t.Fatalf("lease_wait.p99_ns = %v; want %d", wait["p99_ns"], ms(2))
	}
}
