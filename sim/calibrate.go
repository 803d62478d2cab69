package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"text/tabwriter"
	"time"
)

// Calibration is the same workload run on a server model fitted to a real
// server and on the real pool against that server: how far the model's
// prediction is from what the real pool did.
type Calibration struct {
	Probe Probe       `json:"probe"` // what was measured of the real server first
	Model ModelConfig `json:"-"`     // the model fitted to it; WriteJSON writes it as model
	// Fit is what the model did, run as the probe ran the real server, once
	// its tail was fitted (see fitTail); FitRuns is how many runs that took.
	Fit       Percentiles `json:"fit_loaded_latency"`
	FitRuns   int         `json:"fit_runs"`
	Predicted *Report     `json:"predicted"` // the workload on the model
	Measured  *Report     `json:"measured"`  // the workload on the real pool
}

// Probe is what Calibrate measures of a real server before it runs the
// workload: the latency of one operation at a time, and the latency and
// throughput with as many at once as the workload will keep in flight, laid
// on connections as the workload's pool lays them (one each at depth 1,
// shares of connections of its depth above), which says how many the server
// works on at once, and what carrying several on a connection costs.
type Probe struct {
	Duration time.Duration `json:"duration_ns"` // of each of the two probe runs
	// Latency is of one operation at a time on one connection.
	Latency Percentiles `json:"latency"`
	// Connect is the first lease's wait in the sequential run: a dial and
	// a bind.
	Connect time.Duration `json:"connect_ns"`
	// InFlight operations at once, on Conns connections, gave Throughput
	// operations a second, and took Loaded each.
	InFlight   int         `json:"in_flight"`
	Conns      int         `json:"conns"`
	Throughput float64     `json:"throughput_per_s"`
	Loaded     Percentiles `json:"loaded_latency"`
	// Concurrency is what the server works on at once, as the two runs
	// tell: InFlight × Latency's mean / Loaded's mean, rounded, at least 1;
	// 0 when that is InFlight or more: the server kept up, and its limit, if
	// any, is beyond what the probe reached.
	Concurrency int `json:"concurrency"`
	// ThroughputAfter is the loaded probe's throughput again, once the
	// runs are done: far from Throughput, the server, or the machine it
	// shares, changed speed meanwhile, and the comparison is unsound.
	ThroughputAfter float64 `json:"throughput_after_per_s"`
	// Errors of the probe runs: the fit means nothing if there are any.
	Errors int64 `json:"errors"`
}

// steadyWithin is how far ThroughputAfter may be from Throughput for the
// server to count as steady during a calibration.
const steadyWithin = 0.1

// Steady reports whether the loaded probe's throughput after the runs was
// within steadyWithin of the one before: whether the server ran at one speed
// throughout.
func (p Probe) Steady() bool {
	return p.Throughput > 0 && math.Abs(p.ThroughputAfter/p.Throughput-1) <= steadyWithin
}

// CalibrationGoal is how close the model's predicted throughput and p99
// lease wait should come to the measured ones: within 20%.
const CalibrationGoal = 0.2

// Calibrate fits a server Model to the server behind real and checks it:
// it probes real for probe each with one operation at a time and with as
// many as cfg's workload keeps in flight (see Probe), fits a Model to what it
// measured (FitModel, then fitTail), then runs cfg on the model and on real,
// in that order, and probes real once more to see that it kept its speed.
// It returns an error only when a run cannot be made; when ctx ends it
// returns what it measured so far, with the reports marked Interrupted or
// missing.
func Calibrate(ctx context.Context, real Backend, cfg Config, probe time.Duration) (*Calibration, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if probe <= 0 {
		return nil, fmt.Errorf("sim: calibrate: probe duration %v: must be positive", probe)
	}
	c := &Calibration{Probe: Probe{Duration: probe}}
	one := Config{Workload: Workload{Kind: Closed, Clients: 1}, Pool: PoolConfig{Size: 1, Depth: 1}, Duration: probe, Seed: cfg.Seed}
	seq, err := Run(ctx, real, one)
	if err != nil {
		return nil, fmt.Errorf("sim: calibrate: sequential probe: %w", err)
	}
	k, d := inFlight(cfg), cfg.Pool.depth()
	many := one
	many.Workload.Clients, many.Pool = k, PoolConfig{Size: (k + d - 1) / d, Depth: d}
	par, err := Run(ctx, real, many)
	if err != nil {
		return nil, fmt.Errorf("sim: calibrate: probe with %d at once: %w", k, err)
	}
	c.Probe.Latency, c.Probe.Connect = seq.OpLatency, seq.Wait.Max
	c.Probe.InFlight, c.Probe.Conns = k, many.Pool.Size
	c.Probe.Throughput, c.Probe.Loaded = par.Throughput, par.OpLatency
	c.Probe.Errors = seq.Errors.Total() + par.Errors.Total()
	c.Probe.Concurrency = concurrency(c.Probe)
	c.Model = FitModel(c.Probe, cfg.Seed)
	if err := c.fitTail(ctx, many); err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		return c, nil
	}
	m, err := NewModel(c.Model)
	if err != nil {
		return nil, fmt.Errorf("sim: calibrate: the fitted model: %w", err)
	}
	if c.Predicted, err = Run(ctx, m, cfg); err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		return c, nil
	}
	if c.Measured, err = Run(ctx, real, cfg); err != nil || ctx.Err() != nil {
		return c, err
	}
	after, err := Run(ctx, real, many)
	if err != nil {
		return nil, fmt.Errorf("sim: calibrate: probe with %d at once, again: %w", k, err)
	}
	c.Probe.ThroughputAfter = after.Throughput
	c.Probe.Errors += after.Errors.Total()
	return c, nil
}

// inFlight returns how many operations cfg's workload keeps in flight at
// most: its clients, or what its pools carry, whichever is fewer.
func inFlight(cfg Config) int {
	perPool := max(cfg.Pool.Size, 1) * cfg.Pool.depth()
	if cfg.Pool.MaxInFlight > 0 {
		perPool = min(perPool, cfg.Pool.MaxInFlight)
	}
	w := cfg.Workload
	switch w.Kind {
	case Closed:
		return min(w.Clients, perPool)
	case MultiProcess:
		return w.Processes * min(w.Threads, perPool)
	}
	return perPool // open arrivals: as many as the pool lets through
}

// concurrency returns what the server works on at once, as p measured it.
// Operations that take Loaded's mean with InFlight at once, and Latency's
// alone, are served InFlight × Latency / Loaded at a time. The operations'
// times are used rather than the throughput, which also counts the dials
// and the pool's own work between two operations.
func concurrency(p Probe) int {
	if p.Latency.Mean <= 0 || p.Loaded.Mean <= 0 {
		return 0
	}
	c := max(int(math.Round(float64(p.InFlight)*float64(p.Latency.Mean)/float64(p.Loaded.Mean))), 1)
	if c >= p.InFlight {
		return 0
	}
	return c
}

// FitModel returns the server model that p describes, which reproduces what
// the probe with InFlight at once measured: the server works on
// p.Concurrency operations at once (no limit when 0), each for a latency
// whose mean makes an operation with InFlight at once take Loaded's mean:
// Loaded's mean × Concurrency / InFlight, or Loaded's mean itself without a
// limit. The tail is lognormal, and as long as Loaded's: the spread of
// operation times under the load the workload puts on the server, which
// the machine's own contention (scheduling, the garbage collector) widens
// beyond one operation at a time, and which the lease-wait tail follows. A
// p99 within 2% of the mean gives a constant latency. Connecting costs
// p.Connect. Without a loaded measure, the sequential one stands in.
func FitModel(p Probe, seed uint64) ModelConfig {
	m := ModelConfig{ConnectCost: p.Connect, Concurrency: p.Concurrency, Seed: seed}
	l := p.Loaded
	if l.Mean <= 0 {
		l = p.Latency
	}
	mean := l.Mean
	if p.Concurrency > 0 && p.InFlight > 0 {
		mean = time.Duration(float64(l.Mean) * float64(p.Concurrency) / float64(p.InFlight))
	}
	m.Latency = Latency{Dist: Constant, Mean: mean}
	if l.Mean > 0 {
		if ratio := float64(l.P99) / float64(l.Mean); ratio > 1.02 {
			m.Latency = Latency{Dist: LogNormal, Mean: mean, Sigma: sigmaFor(ratio)}
		}
	}
	return m
}

// fitRounds bounds the model runs that fit the tail, and fitWithin is how
// close to the probe's p99 they stop.
const (
	fitRounds = 4
	fitWithin = 0.05
)

// fitTail fits the model's tail to the probe's. With a limit on what the
// server works on at once, an operation's time is its wait for the server
// and its latency, and their sum has a shorter tail for its mean than the
// latency alone: FitModel's sigma gives a p99 that is too short. So the
// model is run as the probe ran the real server (probe), and sigma scaled by
// how far the log of the p99-to-mean ratio fell short, until the p99 is
// within fitWithin of the probe's, for at most fitRounds runs of at most a
// second. The lease-wait tail follows the operations' tail.
func (c *Calibration) fitTail(ctx context.Context, probe Config) error {
	probe.Duration = min(probe.Duration, time.Second)
	want := c.Probe.Loaded
	for c.FitRuns < fitRounds && ctx.Err() == nil {
		m, err := NewModel(c.Model)
		if err != nil {
			return fmt.Errorf("sim: calibrate: the fitted model: %w", err)
		}
		rep, err := Run(ctx, m, probe)
		if err != nil {
			return fmt.Errorf("sim: calibrate: the fitted model: %w", err)
		}
		c.FitRuns++
		c.Fit = rep.OpLatency
		l := &c.Model.Latency
		if l.Dist != LogNormal || c.Model.Concurrency == 0 || c.Fit.Mean <= 0 || want.Mean <= 0 ||
			math.Abs(float64(c.Fit.P99)/float64(want.P99)-1) <= fitWithin {
			return nil
		}
		got := math.Log(float64(c.Fit.P99) / float64(c.Fit.Mean))
		if got <= 0 {
			return nil
		}
		l.Sigma = min(math.Round(l.Sigma*math.Log(float64(want.P99)/float64(want.Mean))/got*1000)/1000, z99)
	}
	return nil
}

// z99 is the standard normal's 99th percentile.
const z99 = 2.3263478740408408

// sigmaFor returns the sigma of the lognormal whose p99 is ratio times its
// mean: exp(z99·σ − σ²/2) = ratio. The left side grows with σ up to σ = z99,
// where the ratio is at its largest (about 15); a larger ratio gets that σ.
func sigmaFor(ratio float64) float64 {
	f := func(s float64) float64 { return z99*s - s*s/2 }
	want := math.Log(ratio)
	lo, hi := 0.0, z99
	if want >= f(hi) {
		return hi
	}
	for range 60 {
		mid := (lo + hi) / 2
		if f(mid) < want {
			lo = mid
		} else {
			hi = mid
		}
	}
	return math.Round((lo+hi)/2*1000) / 1000
}

// ThroughputRatio returns predicted over measured throughput, or NaN when
// nothing was measured.
func (c *Calibration) ThroughputRatio() float64 {
	if c.Predicted == nil || c.Measured == nil || c.Measured.Throughput == 0 {
		return math.NaN()
	}
	return c.Predicted.Throughput / c.Measured.Throughput
}

// WaitRatio returns predicted over measured lease-wait p99, or NaN when the
// measured one is 0.
func (c *Calibration) WaitRatio() float64 {
	if c.Predicted == nil || c.Measured == nil || c.Measured.Wait.P99 == 0 {
		return math.NaN()
	}
	return float64(c.Predicted.Wait.P99) / float64(c.Measured.Wait.P99)
}

// Met reports whether both ratios are within CalibrationGoal of 1; the
// wait's need not be when WaitNegligible.
func (c *Calibration) Met() bool {
	within := func(r float64) bool { return math.Abs(r-1) <= CalibrationGoal }
	return within(c.ThroughputRatio()) && (within(c.WaitRatio()) || c.WaitNegligible())
}

// WaitNegligible reports whether the p99 lease waits, predicted and
// measured, are both shorter than the mean operation measured: nobody
// queued for a connection to speak of, which the model predicted, and the
// ratio of two such waits (the pool's own microseconds, a scheduler's
// hiccup) says nothing about sizing.
func (c *Calibration) WaitNegligible() bool {
	if c.Predicted == nil || c.Measured == nil {
		return false
	}
	op := c.Measured.OpLatency.Mean
	return c.Predicted.Wait.P99 < op && c.Measured.Wait.P99 < op
}

// ModelFlags writes the fitted model as ldapsim's flags, to run it again.
func (c *Calibration) ModelFlags() string {
	m := c.Model
	s := fmt.Sprintf("-target model -latency %s -latency-mean %v", m.Latency.Dist, round(m.Latency.Mean))
	if m.Latency.Dist == LogNormal {
		s += fmt.Sprintf(" -latency-sigma %g", m.Latency.Sigma)
	}
	s += fmt.Sprintf(" -connect-cost %v -server-concurrency %d", round(m.ConnectCost), m.Concurrency)
	return s
}

// WriteTable writes the calibration for people: the probe, the fitted
// model, and the predicted and measured figures side by side.
func (c *Calibration) WriteTable(w io.Writer) error {
	p := c.Probe
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(name, format string, a ...any) { fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{name}, a...)...) }
	row("probe", "one search at a time for %v: %s", p.Duration, p.Latency)
	row("", "%d at once on %s: %.1f ops/s, %s", p.InFlight, plural(p.Conns, "connection"), p.Throughput, p.Loaded)
	row("", "connect and bind %v", round(p.Connect))
	if p.Concurrency > 0 {
		row("", "so the server works on about %d at once", p.Concurrency)
	} else {
		row("", "so the server kept up with %d at once: no limit below that is modelled", p.InFlight)
	}
	if p.Errors > 0 {
		row("", "%d errors in the probe runs: the fit below is not to be trusted", p.Errors)
	}
	row("model", "%s", c.ModelFlags())
	if c.FitRuns > 0 {
		row("", "run as the probe ran the server: %s (%s)", c.Fit, plural(c.FitRuns, "fitting run"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if c.Predicted == nil || c.Measured == nil {
		_, err := fmt.Fprintln(w, "\ninterrupted before both runs were made")
		return err
	}
	r := c.Measured
	fmt.Fprintf(w, "backend   %s\nworkload  %s; %s; %v a run (seed %d); timer granularity %v\n\n",
		r.Backend, r.Workload, r.poolDescription(), r.Duration, r.Seed, round(c.Predicted.TimerGranularity))
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\tPREDICTED\tMEASURED\tRATIO\t")
	pr := c.Predicted
	fmt.Fprintf(tw, "throughput (ops/s)\t%.1f\t%.1f\t%s\t\n", pr.Throughput, r.Throughput, ratio(c.ThroughputRatio()))
	fmt.Fprintf(tw, "lease wait p99\t%v\t%v\t%s\t\n", round(pr.Wait.P99), round(r.Wait.P99), ratio(c.WaitRatio()))
	for _, f := range []struct {
		name   string
		pr, me time.Duration
	}{
		{"lease wait p50", pr.Wait.P50, r.Wait.P50},
		{"operation mean", pr.OpLatency.Mean, r.OpLatency.Mean},
		{"operation p99", pr.OpLatency.P99, r.OpLatency.P99},
	} {
		q := math.NaN()
		if f.me > 0 {
			q = float64(f.pr) / float64(f.me)
		}
		fmt.Fprintf(tw, "%s\t%v\t%v\t%s\t\n", f.name, round(f.pr), round(f.me), ratio(q))
	}
	fmt.Fprintf(tw, "errors\t%d\t%d\t\t\n", pr.Errors.Total(), r.Errors.Total())
	if err := tw.Flush(); err != nil {
		return err
	}
	if r.Depth > 1 && r.Shares == 0 && r.Ops > 0 {
		fmt.Fprintf(w, "\nthe real pool handed out no shares: it gave each operation a connection of its own, as at depth 1, "+
			"where the model put up to %d on each: the two did not run the same pool\n", r.Depth)
	}
	goal := CalibrationGoal * 100
	var verdict string
	switch {
	case c.Met() && c.WaitNegligible():
		verdict = fmt.Sprintf("within ±%.0f%% on throughput; the p99 lease waits are both shorter than an operation (%v): "+
			"no queue for connections to predict, and none predicted", goal, round(r.OpLatency.Mean))
	case c.Met():
		verdict = fmt.Sprintf("within ±%.0f%% on throughput and p99 lease wait", goal)
	default:
		verdict = fmt.Sprintf("NOT within ±%.0f%%: throughput off by %s, p99 lease wait by %s",
			goal, off(c.ThroughputRatio()), off(c.WaitRatio()))
	}
	if _, err := fmt.Fprintf(w, "\ncalibration: %s\n", verdict); err != nil {
		return err
	}
	if p.ThroughputAfter > 0 && !p.Steady() {
		_, err := fmt.Fprintf(w, "unsteady: the probe with %d at once did %.1f ops/s after the runs, %s from before: "+
			"the server, or the machine it shares, changed speed meanwhile; calibrate again when it is quiet\n",
			p.InFlight, p.ThroughputAfter, off(p.ThroughputAfter/p.Throughput))
		return err
	}
	return nil
}

// WriteJSON writes c as indented JSON. Durations are in nanoseconds, in
// fields whose names end in _ns.
func (c *Calibration) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	type model struct {
		Latency     Distribution  `json:"latency"`
		Mean        time.Duration `json:"latency_mean_ns"`
		Sigma       float64       `json:"latency_sigma,omitempty"`
		ConnectCost time.Duration `json:"connect_cost_ns"`
		Concurrency int           `json:"server_concurrency"`
		Flags       string        `json:"flags"` // as ldapsim takes them
	}
	m := c.Model
	return enc.Encode(struct {
		*Calibration
		Model           model    `json:"model"`
		ThroughputRatio *float64 `json:"throughput_ratio"`
		WaitRatio       *float64 `json:"wait_p99_ratio"`
		WaitNegligible  bool     `json:"wait_negligible"`
		Met             bool     `json:"met"`
		Steady          bool     `json:"steady"`
	}{c, model{m.Latency.Dist, m.Latency.Mean, m.Latency.Sigma, m.ConnectCost, m.Concurrency, c.ModelFlags()},
		finite(c.ThroughputRatio()), finite(c.WaitRatio()), c.WaitNegligible(), c.Met(), c.Probe.Steady()})
}

func finite(x float64) *float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return nil
	}
	return &x
}

func ratio(x float64) string {
	if math.IsNaN(x) {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", x)
}

func off(x float64) string {
	if math.IsNaN(x) {
		return "n/a"
	}
	return fmt.Sprintf("%+.0f%%", (x-1)*100)
}
