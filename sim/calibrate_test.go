package sim_test

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fairpool/ldappool/sim"
)

// A model calibrated against a model must find it again, and predict what
// it does exactly: the probe, the fit and the comparison are right.
func TestCalibrateFindsTheModelItProbes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := constant(time.Millisecond)
		cfg.ConnectCost = 3 * time.Millisecond
		cfg.Concurrency = 2
		real := newModel(t, cfg)
		c, err := sim.Calibrate(t.Context(), real, sim.Config{
			Workload: sim.Workload{Kind: sim.Closed, Clients: 16},
			Pool:     sim.PoolConfig{Size: 4},
			Duration: 5 * time.Second,
			Seed:     1,
		}, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		p := c.Probe
		if p.Latency.Mean != time.Millisecond || p.Connect != 3*time.Millisecond || p.InFlight != 4 || p.Concurrency != 2 {
			t.Fatalf("probe %+v; want latency 1ms, connect 3ms, 4 in flight, concurrency 2", p)
		}
		// The probe's first two operations found a worker free, and took
		// 1ms where the others took 2ms: the fit is off by that much.
		if l := c.Model.Latency; l.Dist != sim.Constant || l.Mean < 999*time.Microsecond || l.Mean > time.Millisecond ||
			c.Model.Concurrency != 2 || c.Model.ConnectCost != 3*time.Millisecond {
			t.Fatalf("fitted model %+v; want the one probed", c.Model)
		}
		if r, w := c.ThroughputRatio(), c.WaitRatio(); math.Abs(r-1) > 0.001 || math.Abs(w-1) > 0.001 || !c.Met() {
			t.Fatalf("predicted %.1f ops/s, wait p99 %v; measured %.1f ops/s, %v; want the same",
				c.Predicted.Throughput, c.Predicted.Wait.P99, c.Measured.Throughput, c.Measured.Wait.P99)
		}
		var table bytes.Buffer
		if err := c.WriteTable(&table); err != nil {
			t.Fatal(err)
		}
		if !c.Probe.Steady() {
			t.Errorf("probe throughput %.1f before the runs and %.1f after; want the model steady", c.Probe.Throughput, c.Probe.ThroughputAfter)
		}
		for _, want := range []string{
			"so the server works on about 2 at once",
			"-target model -latency constant -latency-mean ", "-connect-cost 3ms -server-concurrency 2",
			"PREDICTED", "1.00", "calibration: within ±20%",
		} {
			if !strings.Contains(table.String(), want) {
				t.Errorf("calibration table lacks %q:\n%s", want, table.String())
			}
		}
		var js bytes.Buffer
		if err := c.WriteJSON(&js); err != nil {
			t.Fatal(err)
		}
		var back struct {
			Model struct {
				Concurrency int    `json:"server_concurrency"`
				Flags       string `json:"flags"`
			} `json:"model"`
			Ratio float64 `json:"throughput_ratio"`
			Met   bool    `json:"met"`
		}
		if err := json.Unmarshal(js.Bytes(), &back); err != nil || back.Model.Concurrency != 2 || back.Ratio == 0 || !back.Met {
			t.Fatalf("calibration JSON %s: %v; want the model's concurrency, the ratio and the verdict", js.String(), err)
		}
	})
}

// Against the embedded server, on the real clock: the figures vary with the
// machine, so only a gross error (a model off by half, as one whose
// sub-millisecond delays were timer ticks) fails, and only when the server
// kept its speed throughout: on a machine shared with other work it may not,
// and the calibration says so.
func TestCalibrateAgainstTheEmbeddedServer(t *testing.T) {
	b, err := sim.NewEmbedded(sim.EmbeddedConfig{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	c, err := sim.Calibrate(t.Context(), b, sim.Config{
		Workload: sim.Workload{Kind: sim.Closed, Clients: 8},
		Pool:     sim.PoolConfig{Size: 2},
		Duration: 500 * time.Millisecond,
		Seed:     1,
	}, 250*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	var table bytes.Buffer
	if err := c.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", table.String())
	if c.Probe.Latency.Count == 0 || c.Probe.Errors != 0 || c.Measured.Errors.Total() != 0 || c.Predicted.Errors.Total() != 0 {
		t.Fatalf("probe %+v, errors %v and %v; want searches and no errors", c.Probe, c.Predicted.Errors, c.Measured.Errors)
	}
	if !c.Probe.Steady() {
		t.Skipf("the server changed speed during the calibration (%.1f then %.1f ops/s; a loaded machine): its ratios are not judged",
			c.Probe.Throughput, c.Probe.ThroughputAfter)
	}
	if r := c.ThroughputRatio(); math.IsNaN(r) || r < 0.5 || r > 2 {
		t.Errorf("predicted over measured throughput %.2f; want it within a factor of 2 at least", r)
	}
}

// Against a server whose operations queue for its workers and have a long
// tail, the fit must find a tail that gives the probe's p99 once they queue
// in the model too, and so predict the lease wait's.
func TestCalibrateFitsTheTailOfQueuedOperations(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		real := newModel(t, sim.ModelConfig{
			Latency:     sim.Latency{Dist: sim.LogNormal, Mean: time.Millisecond, Sigma: 0.8},
			ConnectCost: time.Millisecond, Concurrency: 2, Seed: 3,
		})
		c, err := sim.Calibrate(t.Context(), real, sim.Config{
			Workload: sim.Workload{Kind: sim.Closed, Clients: 16},
			Pool:     sim.PoolConfig{Size: 4},
			Duration: 5 * time.Second,
			Seed:     1,
		}, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var table bytes.Buffer
		if err := c.WriteTable(&table); err != nil {
			t.Fatal(err)
		}
		t.Logf("\n%s", table.String())
		if c.Model.Concurrency != 2 || c.Model.Latency.Dist != sim.LogNormal {
			t.Fatalf("fitted model %+v; want lognormal latencies, 2 at once", c.Model)
		}
		if r := float64(c.Fit.P99) / float64(c.Probe.Loaded.P99); math.Abs(r-1) > 0.05 {
			t.Errorf("after %d fitting runs the model's p99 with 4 at once is %v; want the probe's %v ± 5%%",
				c.FitRuns, c.Fit.P99, c.Probe.Loaded.P99)
		}
		if r, w := c.ThroughputRatio(), c.WaitRatio(); math.Abs(r-1) > 0.05 || math.Abs(w-1) > 0.1 {
			t.Errorf("predicted over measured: throughput %.3f, lease-wait p99 %.3f; want 1 ± 5%% and ± 10%%", r, w)
		}
	})
}
