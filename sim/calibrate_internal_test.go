package sim

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestSigmaForInvertsTheLognormalTail(t *testing.T) {
	for _, sigma := range []float64{0.1, 0.25, 0.5, 1, 2} {
		ratio := math.Exp(z99*sigma - sigma*sigma/2)
		if got := sigmaFor(ratio); math.Abs(got-sigma) > 0.001 {
			t.Errorf("sigmaFor(%.3f) = %v; want %v, whose p99 is that many times its mean", ratio, got, sigma)
		}
	}
	if got := sigmaFor(100); got != z99 {
		t.Errorf("sigmaFor(100), past the lognormal's largest ratio = %v; want %v", got, z99)
	}
}

func TestInFlight(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want int
	}{
		{"closed, fewer clients than connections", Config{Workload: Workload{Kind: Closed, Clients: 3}, Pool: PoolConfig{Size: 4}}, 3},
		{"closed, more clients", Config{Workload: Workload{Kind: Closed, Clients: 16}, Pool: PoolConfig{Size: 4}}, 4},
		{"closed, at depth 3", Config{Workload: Workload{Kind: Closed, Clients: 16}, Pool: PoolConfig{Size: 4, Depth: 3}}, 12},
		{"closed, capped", Config{Workload: Workload{Kind: Closed, Clients: 16}, Pool: PoolConfig{Size: 4, Depth: 3, MaxInFlight: 5}}, 5},
		{"multiprocess", Config{Workload: Workload{Kind: MultiProcess, Processes: 3, Threads: 4}, Pool: PoolConfig{Size: 2}}, 6},
		{"poisson", Config{Workload: Workload{Kind: Poisson, Clients: 100, Rate: 10}, Pool: PoolConfig{Size: 4, Depth: 2}}, 8},
	} {
		if got := inFlight(tc.cfg); got != tc.want {
			t.Errorf("%s: inFlight = %d; want %d", tc.name, got, tc.want)
		}
	}
}

func TestFitModel(t *testing.T) {
	us := time.Microsecond
	for _, tc := range []struct {
		name  string
		probe Probe
		want  ModelConfig
	}{
		{
			"the server keeps up: the loaded latency, no limit",
			Probe{Latency: Percentiles{Count: 9, Mean: 300 * us, P99: 300 * us}, Connect: time.Millisecond,
				InFlight: 4, Loaded: Percentiles{Count: 9, Mean: 305 * us, P99: 305 * us}},
			ModelConfig{Latency: Latency{Dist: Constant, Mean: 305 * us}, ConnectCost: time.Millisecond, Seed: 7},
		},
		{
			"2 at once: 4 in flight take twice as long, with the loaded tail",
			Probe{Latency: Percentiles{Count: 9, Mean: 280 * us, P99: 450 * us}, Connect: time.Millisecond,
				InFlight: 4, Loaded: Percentiles{Count: 9, Mean: 500 * us, P99: 750 * us}, Concurrency: 2},
			ModelConfig{Latency: Latency{Dist: LogNormal, Mean: 250 * us, Sigma: sigmaFor(1.5)},
				ConnectCost: time.Millisecond, Concurrency: 2, Seed: 7},
		},
		{
			"no loaded measure: the sequential one",
			Probe{Latency: Percentiles{Count: 9, Mean: 280 * us, P99: 280 * us}, InFlight: 1},
			ModelConfig{Latency: Latency{Dist: Constant, Mean: 280 * us}, Seed: 7},
		},
	} {
		if got := FitModel(tc.probe, 7); got.Latency != tc.want.Latency || got.ConnectCost != tc.want.ConnectCost ||
			got.Concurrency != tc.want.Concurrency || got.Seed != tc.want.Seed {
			t.Errorf("%s: FitModel = %+v; want %+v", tc.name, got, tc.want)
		}
	}
}

func TestConcurrencyFromTheProbe(t *testing.T) {
	p := Probe{Latency: Percentiles{Count: 1, Mean: 300 * time.Microsecond}, InFlight: 4}
	for _, tc := range []struct {
		loaded time.Duration // mean, with 4 at once
		want   int
	}{{600 * time.Microsecond, 2}, {1200 * time.Microsecond, 1}, {5 * time.Millisecond, 1},
		{350 * time.Microsecond, 3}, {320 * time.Microsecond, 0}, {300 * time.Microsecond, 0}, {0, 0}} {
		p.Loaded.Mean = tc.loaded
		if got := concurrency(p); got != tc.want {
			t.Errorf("300µs alone, %v with 4 at once: concurrency %d; want %d", tc.loaded, got, tc.want)
		}
	}
}

func TestCalibrationVerdict(t *testing.T) {
	rep := func(tput float64, wait, op time.Duration) *Report {
		return &Report{Throughput: tput, Wait: Percentiles{Count: 1, P99: wait}, OpLatency: Percentiles{Count: 1, Mean: op}}
	}
	ms := time.Millisecond
	for _, tc := range []struct {
		name                string
		predicted, measured *Report
		met, negligible     bool
	}{
		{"both within", rep(1100, 5*ms, ms), rep(1000, 4500*time.Microsecond, ms), true, false},
		{"throughput off", rep(1300, 5*ms, ms), rep(1000, 5*ms, ms), false, false},
		{"wait off", rep(1000, 8*ms, ms), rep(1000, 5*ms, ms), false, false},
		{"waits shorter than an operation", rep(1000, 200*time.Microsecond, 2*ms), rep(1000, 700*time.Microsecond, 2*ms), true, true},
		{"a wait predicted short, measured long", rep(1000, 200*time.Microsecond, 2*ms), rep(1000, 3*ms, 2*ms), false, false},
		{"nothing measured", rep(1000, ms, ms), rep(0, 0, 0), false, false},
	} {
		c := &Calibration{Predicted: tc.predicted, Measured: tc.measured}
		if c.Met() != tc.met || c.WaitNegligible() != tc.negligible {
			t.Errorf("%s: met %v, wait negligible %v; want %v and %v", tc.name, c.Met(), c.WaitNegligible(), tc.met, tc.negligible)
		}
	}
}

func TestCalibrationSaysWhenTheServerChangedSpeed(t *testing.T) {
	rep := &Report{Throughput: 1000, Wait: Percentiles{Count: 1, P99: time.Millisecond}, OpLatency: Percentiles{Count: 1, Mean: time.Millisecond}}
	c := &Calibration{Probe: Probe{InFlight: 4, Conns: 4, Throughput: 7000, ThroughputAfter: 4900}, Predicted: rep, Measured: rep}
	var out strings.Builder
	if err := c.WriteTable(&out); err != nil {
		t.Fatal(err)
	}
	if c.Probe.Steady() || !strings.Contains(out.String(), "unsteady: the probe with 4 at once did 4900.0 ops/s after the runs, -30% from before") {
		t.Fatalf("steady %v; table:\n%s\nwant the calibration marked unsteady", c.Probe.Steady(), out.String())
	}
	c.Probe.ThroughputAfter = 6800
	if !c.Probe.Steady() {
		t.Fatal("7000 then 6800 ops/s: want steady")
	}
}
