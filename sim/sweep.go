package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"
)

// SweepResult is the sizing curve: one run for each pool size.
type SweepResult struct {
	Runs   []*Report `json:"runs"`             // in the order of the sizes asked for
	Advice *Advice   `json:"advice,omitempty"` // set when a target p99 was given
}

// Sweep runs cfg once for each pool size in sizes, in order, against the same
// backend and with the same seed, so that the runs differ only in pool size.
// When ctx ends it stops and returns the runs made so far, the last one
// marked Interrupted.
func Sweep(ctx context.Context, b Backend, cfg Config, sizes []int) (*SweepResult, error) {
	if len(sizes) == 0 {
		return nil, fmt.Errorf("sim: sweep: no pool sizes")
	}
	for _, n := range sizes {
		if n < 1 {
			return nil, fmt.Errorf("sim: sweep: pool size %d: must be at least 1", n)
		}
	}
	res := &SweepResult{}
	for _, n := range sizes {
		c := cfg
		c.Pool.Size = n
		rep, err := Run(ctx, b, c)
		if err != nil {
			return res, err
		}
		res.Runs = append(res.Runs, rep)
		if ctx.Err() != nil {
			break
		}
	}
	return res, nil
}

// Advice names the smallest pool size of a sweep that meets a target p99
// lease wait.
type Advice struct {
	TargetP99 time.Duration `json:"target_p99_ns"`
	Found     bool          `json:"found"`
	Size      int           `json:"size"`   // the smallest size that meets the target; if none, the best one
	P99       time.Duration `json:"p99_ns"` // Size's p99 lease wait
	Reason    string        `json:"reason"` // the advice in words
}

// Advise returns the smallest pool size among runs whose lease-wait p99 is
// at most target. A run qualifies only if it was not interrupted, leased at
// least once, and had no wait timeouts or fail-fast refusals: those hide
// waits the percentiles would otherwise have counted.
func Advise(runs []*Report, target time.Duration) Advice {
	a := Advice{TargetP99: target}
	var best *Report
	for _, r := range sortedBySize(runs) {
		if r.Interrupted || r.Wait.Count == 0 {
			continue
		}
		refused := r.Errors.Timeout + r.Errors.Exhausted
		if refused == 0 && r.Wait.P99 <= target {
			a.Found, a.Size, a.P99 = true, r.PoolSize, r.Wait.P99
			a.Reason = fmt.Sprintf("pool size %d is the smallest whose lease-wait p99 (%v) is within %v",
				r.PoolSize, round(r.Wait.P99), target)
			if r.Processes > 1 {
				a.Reason += fmt.Sprintf(" (%d connections at the server for %d processes)",
					r.PoolSize*r.Processes, r.Processes)
			}
			return a
		}
		if best == nil || r.Wait.P99 < best.Wait.P99 {
			best = r
		}
	}
	if best == nil {
		a.Reason = fmt.Sprintf("no completed run to judge a p99 of %v by", target)
		return a
	}
	a.Size, a.P99 = best.PoolSize, best.Wait.P99
	a.Reason = fmt.Sprintf("no pool size in the sweep keeps the lease-wait p99 within %v (with no timeouts); "+
		"the lowest p99 was %v at size %d: try larger sizes, or fewer clients per pool",
		target, round(best.Wait.P99), best.PoolSize)
	return a
}

func sortedBySize(runs []*Report) []*Report {
	s := slices.Clone(runs)
	slices.SortStableFunc(s, func(a, b *Report) int { return a.PoolSize - b.PoolSize })
	return s
}

// WriteTable writes the sizing curve, one row a pool size, and the advice.
func (s *SweepResult) WriteTable(w io.Writer) error {
	if len(s.Runs) > 0 {
		r := s.Runs[0]
		fmt.Fprintf(w, "backend   %s\nworkload  %s; %v a run (seed %d)\n\n", r.Backend, r.Workload, r.Duration, r.Seed)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "POOL\tOPS/S\tWAIT P50\tWAIT P95\tWAIT P99\tWAIT MAX\tOP P99\tJAIN\tPEAK OPEN\tSERVER PEAK\tERRORS\t")
	for _, r := range s.Runs {
		server := "n/a"
		if r.Server.Known {
			server = fmt.Sprint(r.Server.Peak)
		}
		note := ""
		if r.Interrupted {
			note = " (interrupted)"
		}
		fmt.Fprintf(tw, "%d\t%.1f\t%v\t%v\t%v\t%v\t%v\t%.3f\t%d\t%s\t%d%s\t\n",
			r.PoolSize, r.Throughput, round(r.Wait.P50), round(r.Wait.P95), round(r.Wait.P99),
			round(r.Wait.Max), round(r.OpLatency.P99), r.Fairness, r.PeakOpen, server,
			r.Errors.Total(), note)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if s.Advice != nil {
		_, err := fmt.Fprintf(w, "\nadvisor: %s\n", s.Advice.Reason)
		return err
	}
	return nil
}

// WriteJSON writes s as indented JSON. Durations are in nanoseconds, in
// fields whose names end in _ns.
func (s *SweepResult) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(s)
}
