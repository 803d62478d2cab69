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

// SweepResult is the sizing curve: one run for each pool size, and each
// depth.
type SweepResult struct {
	Runs   []*Report `json:"runs"`             // by size in the order asked for, and by depth within a size
	Advice *Advice   `json:"advice,omitempty"` // set when a target p99 was given
}

// Sweep runs cfg once for each pool size in sizes and, at each size, once
// for each depth (operations per connection) in depths, or at cfg's depth
// when none is given: in order, against the same backend and with the same
// seed, so that the runs differ only in size and depth. When ctx ends it
// stops and returns the runs made so far, the last one marked Interrupted.
func Sweep(ctx context.Context, b Backend, cfg Config, sizes []int, depths ...int) (*SweepResult, error) {
	if len(sizes) == 0 {
		return nil, fmt.Errorf("sim: sweep: no pool sizes")
	}
	for _, n := range sizes {
		if n < 1 {
			return nil, fmt.Errorf("sim: sweep: pool size %d: must be at least 1", n)
		}
	}
	for _, d := range depths {
		if d < 1 {
			return nil, fmt.Errorf("sim: sweep: depth %d: must be at least 1", d)
		}
	}
	if len(depths) == 0 {
		depths = []int{cfg.Pool.Depth}
	}
	res := &SweepResult{}
	for _, n := range sizes {
		for _, d := range depths {
			c := cfg
			c.Pool.Size, c.Pool.Depth = n, d
			rep, err := Run(ctx, b, c)
			if err != nil {
				return res, err
			}
			res.Runs = append(res.Runs, rep)
			if ctx.Err() != nil {
				return res, nil
			}
		}
	}
	return res, nil
}

// Advice names the pool size, and the depth, of a sweep that meet a target
// p99 lease wait with the fewest connections.
type Advice struct {
	TargetP99 time.Duration `json:"target_p99_ns"`
	Found     bool          `json:"found"`
	Size      int           `json:"size"`   // the fewest connections that meet the target; if none, the best size
	Depth     int           `json:"depth"`  // at Size, the smallest depth that meets the target; if none, the best one's
	P99       time.Duration `json:"p99_ns"` // the lease-wait p99 at Size and Depth
	Reason    string        `json:"reason"` // the advice in words
}

// Advise returns the smallest pool size among runs whose lease-wait p99 is
// at most target, and at that size the smallest depth. A run qualifies only
// if it was not interrupted, leased at least once, and had no wait timeouts
// or fail-fast refusals: those hide waits the percentiles would otherwise
// have counted.
//
// Depth counts against the target too. Operations that share a connection
// contend at the server: past what it can work on at once, more depth only
// moves the wait from the pool's queue into the operations, and that is no
// gain. So a run's lease-wait p99 and the rise of its operations' p99 over
// the shallowest run's at the same size must be within target together:
// both are what the pool adds to a request.
func Advise(runs []*Report, target time.Duration) Advice {
	a := Advice{TargetP99: target}
	sorted := sortedBySizeAndDepth(runs)
	manyDepths := false
	for _, r := range sorted {
		manyDepths = manyDepths || r.Depth != sorted[0].Depth
	}
	shallowest := map[int]*Report{} // by size: the run that sets the operations' baseline
	var best, movedWait *Report
	for _, r := range sorted {
		if r.Interrupted || r.Wait.Count == 0 {
			continue
		}
		base, ok := shallowest[r.PoolSize]
		if !ok {
			base = r
			shallowest[r.PoolSize] = r
		}
		refused := r.Errors.Timeout + r.Errors.Exhausted
		slower := max(r.OpLatency.P99-base.OpLatency.P99, 0)
		if refused == 0 && r.Wait.P99 <= target && r.Wait.P99+slower > target {
			if movedWait == nil {
				movedWait = r
			}
			continue
		}
		if refused == 0 && r.Wait.P99 <= target {
			a.Found, a.Size, a.Depth, a.P99 = true, r.PoolSize, r.Depth, r.Wait.P99
			a.Reason = advised(r, base, target, manyDepths)
			if movedWait != nil {
				a.Reason += fmt.Sprintf("; pool size %d at depth %d waited less, but its operations' p99 rose by %v: "+
					"the wait moved into the server", movedWait.PoolSize, movedWait.Depth,
					round(movedWait.OpLatency.P99-shallowest[movedWait.PoolSize].OpLatency.P99))
			}
			return a
		}
		if best == nil || r.Wait.P99 < best.Wait.P99 {
			best = r
		}
	}
	if best == nil {
		a.Reason = fmt.Sprintf("no completed run to judge a p99 of %v by", target)
		if movedWait != nil {
			a.Reason = fmt.Sprintf("no run keeps its lease-wait p99, with the rise of its operations' p99 at depth, within %v", target)
		}
		return a
	}
	a.Size, a.Depth, a.P99 = best.PoolSize, best.Depth, best.Wait.P99
	at, larger := fmt.Sprintf("size %d", best.PoolSize), "larger sizes"
	if manyDepths {
		at, larger = fmt.Sprintf("size %d at depth %d", best.PoolSize, best.Depth), "larger sizes or depths"
	}
	a.Reason = fmt.Sprintf("no pool size in the sweep keeps the lease-wait p99 within %v (with no timeouts); "+
		"the lowest p99 was %v at %s: try %s, or fewer clients per pool",
		target, round(best.Wait.P99), at, larger)
	return a
}

// advised is the advice in words for r, the first run that met target; base
// is the shallowest run of its size.
func advised(r, base *Report, target time.Duration, manyDepths bool) string {
	var s string
	switch {
	case manyDepths:
		s = fmt.Sprintf("pool size %d at depth %d (operations per connection) is the fewest connections, "+
			"and the smallest depth for them, whose lease-wait p99 (%v) is within %v",
			r.PoolSize, r.Depth, round(r.Wait.P99), target)
		if rise := r.OpLatency.P99 - base.OpLatency.P99; r != base && rise > 0 {
			s += fmt.Sprintf(" with the rise of its operations' p99 (%v against %v at depth %d)",
				round(r.OpLatency.P99), round(base.OpLatency.P99), base.Depth)
		}
	case r.Depth > 1:
		s = fmt.Sprintf("pool size %d (depth %d) is the smallest whose lease-wait p99 (%v) is within %v",
			r.PoolSize, r.Depth, round(r.Wait.P99), target)
	default:
		s = fmt.Sprintf("pool size %d is the smallest whose lease-wait p99 (%v) is within %v",
			r.PoolSize, round(r.Wait.P99), target)
	}
	if r.Processes > 1 {
		s += fmt.Sprintf(" (%d connections at the server for %d processes)", r.PoolSize*r.Processes, r.Processes)
	}
	return s
}

func sortedBySizeAndDepth(runs []*Report) []*Report {
	s := slices.Clone(runs)
	slices.SortStableFunc(s, func(a, b *Report) int {
		if a.PoolSize != b.PoolSize {
			return a.PoolSize - b.PoolSize
		}
		return a.Depth - b.Depth
	})
	return s
}

// WriteTable writes the sizing curve, one row a pool size, and the advice.
func (s *SweepResult) WriteTable(w io.Writer) error {
	if len(s.Runs) > 0 {
		r := s.Runs[0]
		fmt.Fprintf(w, "backend   %s\nworkload  %s; %v a run (seed %d)\n\n", r.Backend, r.Workload, r.Duration, r.Seed)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "POOL\tDEPTH\tOPS/S\tWAIT P50\tWAIT P95\tWAIT P99\tWAIT MAX\tOP P99\tJAIN\tPEAK OPEN\tSERVER PEAK\tERRORS\t")
	for _, r := range s.Runs {
		server := "n/a"
		if r.Server.Known {
			server = fmt.Sprint(r.Server.Peak)
		}
		note := ""
		if r.Interrupted {
			note = " (interrupted)"
		}
		fmt.Fprintf(tw, "%d\t%d\t%.1f\t%v\t%v\t%v\t%v\t%v\t%.3f\t%d\t%s\t%d%s\t\n",
			r.PoolSize, r.Depth, r.Throughput, round(r.Wait.P50), round(r.Wait.P95), round(r.Wait.P99),
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
