package sim_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fairpool/ldappool/engine"
	"github.com/fairpool/ldappool/sim"
)

func run(t *testing.T, b sim.Backend, cfg sim.Config) *sim.Report {
	t.Helper()
	rep, err := sim.Run(t.Context(), b, cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return rep
}

func constant(d time.Duration) sim.ModelConfig {
	return sim.ModelConfig{Latency: sim.Latency{Dist: sim.Constant, Mean: d}, Seed: 1}
}

func TestRunClosedLoopSaturatesThePool(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// 16 clients without think time on 4 connections of 1ms operations:
		// the pool does 4 operations a millisecond, and each client waits
		// for the 12 ahead of it, 3ms.
		m := newModel(t, constant(time.Millisecond))
		rep := run(t, m, sim.Config{
			Workload: sim.Workload{Kind: sim.Closed, Clients: 16},
			Pool:     sim.PoolConfig{Size: 4},
			Duration: 10 * time.Second,
			Seed:     1,
		})
		if rep.Elapsed != 10*time.Second || rep.Interrupted {
			t.Fatalf("elapsed %v, interrupted %v; want 10s, not interrupted", rep.Elapsed, rep.Interrupted)
		}
		if rep.Throughput < 3950 || rep.Throughput > 4000 {
			t.Errorf("throughput %.1f ops/s; want 4000 (4 connections x 1 op/ms)", rep.Throughput)
		}
		if rep.Wait.P50 != 3*time.Millisecond || rep.Wait.P99 != 3*time.Millisecond {
			t.Errorf("lease wait %v; want p50 = p99 = 3ms (12 ahead, 4 at a time)", rep.Wait)
		}
		if rep.OpLatency.P99 != time.Millisecond {
			t.Errorf("op latency %v; want 1ms", rep.OpLatency)
		}
		if rep.Fairness < 0.999 {
			t.Errorf("Jain's index %.4f (ops per client %d to %d); want ≥ 0.999 from a FIFO pool",
				rep.Fairness, rep.ClientOpsMin, rep.ClientOpsMax)
		}
		if rep.Opened != 4 || rep.PeakOpen != 4 || rep.PeakLeased != 4 || rep.Server.Peak != 4 {
			t.Errorf("opened %d, peak open %d, peak leased %d, server peak %d; want 4 each",
				rep.Opened, rep.PeakOpen, rep.PeakLeased, rep.Server.Peak)
		}
		if rep.Errors.Total() != 0 {
			t.Errorf("errors %v; want none", rep.Errors)
		}
		if m.Server().Open != 0 {
			t.Errorf("%d model connections open after Run; want the pools closed", m.Server().Open)
		}
	})
}

func TestRunSingleThreadedWorkerNeedsOneConnection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newModel(t, constant(time.Millisecond))
		rep := run(t, m, sim.Config{
			Workload: sim.Workload{Kind: sim.Closed, Clients: 1, Think: time.Millisecond},
			Pool:     sim.PoolConfig{Size: 10},
			Duration: 5 * time.Second,
		})
		if rep.Opened != 1 || rep.PeakOpen != 1 || rep.Wait.Max != 0 {
			t.Fatalf("one client on a pool of 10: opened %d, peak %d, max wait %v; want 1, 1, 0",
				rep.Opened, rep.PeakOpen, rep.Wait.Max)
		}
	})
}

func TestRunMultiProcessServerTotal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newModel(t, constant(time.Millisecond))
		rep := run(t, m, sim.Config{
			Workload: sim.Workload{Kind: sim.MultiProcess, Processes: 3, Threads: 4},
			Pool:     sim.PoolConfig{Size: 2},
			Duration: 5 * time.Second,
		})
		if rep.Processes != 3 || rep.Clients != 12 {
			t.Fatalf("processes %d, clients %d; want 3 and 12", rep.Processes, rep.Clients)
		}
		if rep.Server.Peak != 6 || rep.PeakOpen != 6 || rep.Opened != 6 {
			t.Fatalf("server peak %d, pools' peak %d, opened %d; want 3 processes x pool 2 = 6",
				rep.Server.Peak, rep.PeakOpen, rep.Opened)
		}
		if rep.Throughput < 5900 || rep.Throughput > 6000 {
			t.Fatalf("throughput %.1f; want 6000 (6 connections x 1 op/ms)", rep.Throughput)
		}
	})
}

func TestRunServerLimitBelowTheDeployment(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := constant(time.Millisecond)
		cfg.MaxConns = 4
		m := newModel(t, cfg)
		rep := run(t, m, sim.Config{
			Workload: sim.Workload{Kind: sim.MultiProcess, Processes: 3, Threads: 2},
			Pool:     sim.PoolConfig{Size: 2},
			Duration: 2 * time.Second,
		})
		if rep.Server.Peak != 4 || rep.Errors.Connect == 0 || rep.Server.Refused == 0 {
			t.Fatalf("server peak %d, connect errors %d, refused %d; want the limit 4 held and refusals counted",
				rep.Server.Peak, rep.Errors.Connect, rep.Server.Refused)
		}
		if _, ok := rep.Errors.First["connect"]; !ok {
			t.Fatalf("errors %+v lack the first connect error", rep.Errors)
		}
	})
}

func TestRunPoissonArrivals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newModel(t, constant(time.Millisecond))
		w := sim.Workload{Kind: sim.Poisson, Rate: 500, Clients: 10}
		rep := run(t, m, sim.Config{Workload: w, Pool: sim.PoolConfig{Size: 4}, Duration: 10 * time.Second, Seed: 5})
		arrivals := int64(len(w.Arrivals(10*time.Second, 5)))
		if got := rep.Ops + rep.Unfinished + rep.Errors.Total(); got != arrivals {
			t.Fatalf("%d ops + %d unfinished + %d errors; want the %d arrivals of the schedule",
				rep.Ops, rep.Unfinished, rep.Errors.Total(), arrivals)
		}
		if rep.Throughput < 475 || rep.Throughput > 525 {
			t.Fatalf("throughput %.1f; want the arrival rate 500 ± 5%%", rep.Throughput)
		}
	})
}

func TestRunBurstsWithWaitTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// 50 at once on 2 connections of 10ms: the 2 served at once, then
		// 2 every 10ms; with a 100ms wait timeout the last 30 or so give up.
		m := newModel(t, constant(10*time.Millisecond))
		rep := run(t, m, sim.Config{
			Workload: sim.Workload{Kind: sim.Burst, BurstSize: 50, BurstEvery: time.Second, Clients: 50},
			Pool:     sim.PoolConfig{Size: 2, WaitTimeout: 100 * time.Millisecond},
			Duration: 3 * time.Second,
		})
		if rep.Errors.Timeout == 0 || rep.Ops == 0 || rep.Wait.Max > 100*time.Millisecond {
			t.Fatalf("ops %d, timeouts %d, max wait %v; want both, and no wait past the 100ms timeout",
				rep.Ops, rep.Errors.Timeout, rep.Wait.Max)
		}
		if rep.Ops+rep.Errors.Timeout != 150 {
			t.Fatalf("ops %d + timeouts %d; want the 3 bursts of 50", rep.Ops, rep.Errors.Timeout)
		}
	})
}

func TestRunFailFast(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newModel(t, constant(time.Millisecond))
		rep := run(t, m, sim.Config{
			Workload: sim.Workload{Kind: sim.Closed, Clients: 8},
			Pool:     sim.PoolConfig{Size: 2, FailFast: true},
			Duration: time.Second,
		})
		if rep.Errors.Exhausted == 0 || rep.Ops == 0 {
			t.Fatalf("ops %d, exhausted %d; want both on a fail-fast pool of 2 for 8 clients", rep.Ops, rep.Errors.Exhausted)
		}
	})
}

func TestRunRecoversFromFaults(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := constant(time.Millisecond)
		cfg.Faults, _ = sim.ParseFaults("drop:1s,down:2s-3s")
		m := newModel(t, cfg)
		rep := run(t, m, sim.Config{
			Workload: sim.Workload{Kind: sim.Closed, Clients: 4},
			Pool:     sim.PoolConfig{Size: 2},
			Duration: 5 * time.Second,
		})
		if rep.Errors.Op == 0 || rep.Errors.Connect == 0 {
			t.Fatalf("errors %v; want op errors from the drop and connect errors while down", rep.Errors)
		}
		// Working 4 of 5 seconds at 2 ops/ms, less the time to notice.
		if rep.Ops < 7500 {
			t.Fatalf("%d ops; want the pool to recover after each fault", rep.Ops)
		}
		if rep.Opened < 6 {
			t.Fatalf("opened %d connections; want the broken ones replaced after the drop and the restart", rep.Opened)
		}
	})
}

func TestRunInterrupted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newModel(t, constant(time.Millisecond))
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(3*time.Second, cancel)
		rep, err := sim.Run(ctx, m, sim.Config{
			Workload: sim.Workload{Kind: sim.Closed, Clients: 2},
			Pool:     sim.PoolConfig{Size: 2},
			Duration: 10 * time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		if !rep.Interrupted || rep.Elapsed != 3*time.Second {
			t.Fatalf("interrupted %v after %v; want an interrupted report of the 3s run", rep.Interrupted, rep.Elapsed)
		}
		if rep.Throughput < 1990 || rep.Throughput > 2000 {
			t.Fatalf("throughput %.1f; want 2000 over the time measured", rep.Throughput)
		}
	})
}

func TestRunProgress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newModel(t, constant(time.Millisecond))
		var seen []sim.Progress
		run(t, m, sim.Config{
			Workload: sim.Workload{Kind: sim.Closed, Clients: 2},
			Pool:     sim.PoolConfig{Size: 2},
			Duration: 3500 * time.Millisecond,
			Progress: func(p sim.Progress) { seen = append(seen, p) },
		})
		if len(seen) != 3 || seen[0].Elapsed != time.Second || seen[2].Ops < 5900 {
			t.Fatalf("progress %+v; want reports at 1s, 2s and 3s", seen)
		}
	})
}

func TestRunRejectsBadConfig(t *testing.T) {
	m := newModel(t, constant(time.Millisecond))
	for name, cfg := range map[string]sim.Config{
		"no duration":   {Workload: sim.Workload{Kind: sim.Closed, Clients: 1}},
		"bad workload":  {Workload: sim.Workload{Kind: sim.Closed}, Duration: time.Second},
		"bad pool size": {Workload: sim.Workload{Kind: sim.Closed, Clients: 1}, Duration: time.Second, Pool: sim.PoolConfig{Size: -1}},
	} {
		if _, err := sim.Run(t.Context(), m, cfg); err == nil {
			t.Errorf("%s: Run = nil error", name)
		}
	}
	_, err := sim.Run(t.Context(), m, sim.Config{
		Workload: sim.Workload{Kind: sim.Closed, Clients: 1}, Duration: time.Second,
		Pool: sim.PoolConfig{Size: 2, MinIdle: 3},
	})
	var oe *engine.OptionError
	if !errors.As(err, &oe) {
		t.Errorf("Run with MinIdle above the size = %v; want the engine's option error", err)
	}
}

func TestRunDepthPutsSeveralOperationsOnAConnection(t *testing.T) {
	for _, tc := range []struct {
		name        string
		concurrency int
		throughput  float64       // ops/s
		wait, op    time.Duration // every lease's wait and operation
	}{
		// 16 clients on 2 connections of depth 4: 8 operations of 1ms in
		// flight, 8 a millisecond; each client waits for the 8 ahead of it.
		{"server keeps up", 0, 8000, time.Millisecond, time.Millisecond},
		// A server that works on 4 at once: 4 a millisecond, and each of
		// the 8 in flight waits 1ms at the server; the 8 queued in the pool
		// wait 2ms.
		{"server works on 4 at once", 4, 4000, 2 * time.Millisecond, 2 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := constant(time.Millisecond)
				cfg.Concurrency = tc.concurrency
				m := newModel(t, cfg)
				rep := run(t, m, sim.Config{
					Workload: sim.Workload{Kind: sim.Closed, Clients: 16},
					Pool:     sim.PoolConfig{Size: 2, Depth: 4},
					Duration: 2 * time.Second,
					Seed:     1,
				})
				if rep.Depth != 4 || rep.Shares == 0 {
					t.Fatalf("report depth %d, shares %d; want depth 4 and shares handed out", rep.Depth, rep.Shares)
				}
				if rep.Throughput < tc.throughput*0.99 || rep.Throughput > tc.throughput {
					t.Errorf("throughput %.1f ops/s; want %.0f", rep.Throughput, tc.throughput)
				}
				if rep.Wait.P50 != tc.wait || rep.Wait.P99 != tc.wait {
					t.Errorf("lease wait %v; want p50 = p99 = %v", rep.Wait, tc.wait)
				}
				if rep.OpLatency.P50 != tc.op || rep.OpLatency.P99 != tc.op {
					t.Errorf("operation %v; want p50 = p99 = %v", rep.OpLatency, tc.op)
				}
				if rep.Opened != 2 || rep.Server.Peak != 2 || rep.PeakLeased != 8 {
					t.Errorf("opened %d, server peak %d, peak in flight %d; want 2, 2 and 8",
						rep.Opened, rep.Server.Peak, rep.PeakLeased)
				}
				if rep.Fairness < 0.999 || rep.Errors.Total() != 0 {
					t.Errorf("Jain's index %.4f, errors %v; want ≥ 0.999 and none", rep.Fairness, rep.Errors)
				}
			})
		})
	}
}
