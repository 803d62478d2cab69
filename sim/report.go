package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fairpool/ldappool/engine"
)

// Report is what one run measured.
type Report struct {
	Backend     string        `json:"backend"`
	Workload    Workload      `json:"workload"`
	PoolSize    int           `json:"pool_size"` // of each process's pool
	Depth       int           `json:"depth"`     // operations a connection carries at once (engine.WithOpsPerConn)
	Processes   int           `json:"processes"` // pools in the run
	Clients     int           `json:"clients"`   // fairness is measured across these
	Seed        uint64        `json:"seed"`
	Duration    time.Duration `json:"duration_ns"` // asked for
	Elapsed     time.Duration `json:"elapsed_ns"`  // measured: shorter if Interrupted
	Interrupted bool          `json:"interrupted"` // the caller's context ended the run early
	// TimerGranularity is how much later than asked a short sleep ended on
	// this host as the run started (MeasureTimerGranularity).
	TimerGranularity time.Duration `json:"timer_granularity_ns"`

	Ops        int64       `json:"ops"`              // operations completed without error
	Throughput float64     `json:"throughput_per_s"` // Ops per second of Elapsed
	Wait       Percentiles `json:"lease_wait"`       // time in Lease, of leases that got a connection
	OpLatency  Percentiles `json:"op_latency"`       // time in the operation, of operations that succeeded

	Fairness     float64 `json:"jain_fairness"`  // Jain's index of the clients' completed operations
	ClientOpsMin int64   `json:"client_ops_min"` // fewest operations a client completed
	ClientOpsMax int64   `json:"client_ops_max"` // most operations a client completed

	Opened     uint64      `json:"conns_opened"` // connections the pools opened, all pools
	Closed     uint64      `json:"conns_closed"` // connections the pools closed before the run ended
	PeakOpen   int         `json:"peak_open"`    // most connections the pools held open at once, all pools (sampled)
	PeakLeased int         `json:"peak_leased"`  // most operations holding a connection, or a share of one, at once, all pools
	Shares     uint64      `json:"shares"`       // shares of connections the pools handed out (Depth above 1)
	Server     ServerStats `json:"server"`       // what the server saw

	Errors     Errors `json:"errors"`
	Unfinished int64  `json:"unfinished"` // requests cut off by the end of the run: not errors
}

// Percentiles summarises a set of durations.
type Percentiles struct {
	Count int           `json:"count"`
	Mean  time.Duration `json:"mean_ns"`
	P50   time.Duration `json:"p50_ns"`
	P95   time.Duration `json:"p95_ns"`
	P99   time.Duration `json:"p99_ns"`
	Max   time.Duration `json:"max_ns"`
}

// Summarize returns the percentiles of samples, which it sorts in place.
func Summarize(samples []time.Duration) Percentiles {
	if len(samples) == 0 {
		return Percentiles{}
	}
	slices.Sort(samples)
	var sum float64
	for _, d := range samples {
		sum += float64(d)
	}
	return Percentiles{
		Count: len(samples),
		Mean:  time.Duration(sum / float64(len(samples))),
		P50:   Percentile(samples, 50),
		P95:   Percentile(samples, 95),
		P99:   Percentile(samples, 99),
		Max:   samples[len(samples)-1],
	}
}

// Percentile returns the p-th percentile (0 to 100) of sorted by the
// nearest-rank method: the smallest sample that at least p percent of the
// samples do not exceed. It returns 0 for no samples.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(n)))
	return sorted[min(max(rank, 1), n)-1]
}

// Jain returns Jain's fairness index of x: (Σx)² / (n·Σx²). It is 1 when
// every x is equal and 1/n when one of n takes everything. It returns 1 when
// every x is zero (all got the same: nothing) and 0 for no x.
func Jain(x []float64) float64 {
	if len(x) == 0 {
		return 0
	}
	var sum, squares float64
	for _, v := range x {
		sum += v
		squares += v * v
	}
	if squares == 0 {
		return 1
	}
	return sum * sum / (float64(len(x)) * squares)
}

// ErrorKind classifies a failed request.
type ErrorKind int

// The kinds of errors a run counts.
const (
	KindTimeout   ErrorKind = iota // the lease waited past the wait timeout
	KindExhausted                  // a fail-fast pool was full
	KindConnect                    // the dial (or validation) made for the lease failed
	KindOp                         // the operation failed on a leased connection
	KindClosed                     // the pool was closed
	KindOther                      // a lease failed in a way none of the above covers
	numKinds
)

var kindNames = [numKinds]string{"timeout", "exhausted", "connect", "op", "closed", "other"}

// String returns the kind's name as the report prints it.
func (k ErrorKind) String() string {
	if k < 0 || k >= numKinds {
		return fmt.Sprintf("ErrorKind(%d)", int(k))
	}
	return kindNames[k]
}

// Errors counts failed requests by kind, with the first error of each kind
// so that a report says why, not only how often.
type Errors struct {
	Timeout   int64 `json:"timeout"`
	Exhausted int64 `json:"exhausted"`
	Connect   int64 `json:"connect"`
	Op        int64 `json:"op"`
	Closed    int64 `json:"closed"`
	Other     int64 `json:"other"`
	// First holds the first error of each kind that occurred, by kind name.
	First map[string]string `json:"first,omitempty"`
}

// Total returns the number of errors of every kind.
func (e Errors) Total() int64 {
	return e.Timeout + e.Exhausted + e.Connect + e.Op + e.Closed + e.Other
}

// Count returns the number of errors of kind k.
func (e Errors) Count(k ErrorKind) int64 {
	switch k {
	case KindTimeout:
		return e.Timeout
	case KindExhausted:
		return e.Exhausted
	case KindConnect:
		return e.Connect
	case KindOp:
		return e.Op
	case KindClosed:
		return e.Closed
	case KindOther:
		return e.Other
	}
	return 0
}

func (e *Errors) add(k ErrorKind, n int64, first error) {
	switch k {
	case KindTimeout:
		e.Timeout += n
	case KindExhausted:
		e.Exhausted += n
	case KindConnect:
		e.Connect += n
	case KindOp:
		e.Op += n
	case KindClosed:
		e.Closed += n
	default:
		e.Other += n
	}
	if first != nil {
		if e.First == nil {
			e.First = map[string]string{}
		}
		if _, ok := e.First[k.String()]; !ok {
			e.First[k.String()] = first.Error()
		}
	}
}

// String lists the non-zero counts, as "timeout 3, connect 1", or "none".
func (e Errors) String() string {
	var parts []string
	for k := range numKinds {
		if n := e.Count(k); n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, n))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// WriteJSON writes r as indented JSON. Durations are in nanoseconds, in
// fields whose names end in _ns.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes r as a table for people.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(name, format string, a ...any) { fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{name}, a...)...) }
	row("backend", "%s", r.Backend)
	row("workload", "%s; %s; %v (seed %d)", r.Workload, r.poolDescription(), r.Duration, r.Seed)
	if r.Interrupted {
		row("interrupted", "after %v: the figures cover the time measured", round(r.Elapsed))
	}
	row("throughput", "%.1f ops/s (%d operations in %v)", r.Throughput, r.Ops, round(r.Elapsed))
	if r.TimerGranularity > fineTimers {
		row("timer", "granularity %v: shorter sleeps (think times, arrival gaps) end that late here; the server model keeps its own delays exact",
			round(r.TimerGranularity))
	} else {
		row("timer", "granularity %v", round(r.TimerGranularity))
	}
	row("lease wait", "%s", r.Wait)
	row("operation", "%s", r.OpLatency)
	row("fairness", "Jain's index %.4f across %s (%d to %d operations each)",
		r.Fairness, plural(r.Clients, "client"), r.ClientOpsMin, r.ClientOpsMax)
	if r.Depth > 1 {
		row("connections", "opened %d, closed %d; peak open %d of %d (sampled), peak in flight %d of %d",
			r.Opened, r.Closed, r.PeakOpen, r.PoolSize*r.Processes, r.PeakLeased, r.PoolSize*r.Depth*r.Processes)
		if r.Shares == 0 && r.Ops > 0 {
			row("", "no shares were handed out: each operation had a connection of its own, as at depth 1")
		}
	} else {
		row("connections", "opened %d, closed %d; peak open %d of %d (sampled), peak leased %d",
			r.Opened, r.Closed, r.PeakOpen, r.PoolSize*r.Processes, r.PeakLeased)
	}
	if r.Server.Known {
		row("server", "peak open %d, accepted %d, refused %d", r.Server.Peak, r.Server.Accepted, r.Server.Refused)
	} else {
		row("server", "not observable; the pools held at most %d open", r.PeakOpen)
	}
	row("errors", "%s", r.Errors)
	for k := range numKinds {
		if first, ok := r.Errors.First[k.String()]; ok {
			row("", "first %s: %s", k, first)
		}
	}
	if r.Unfinished > 0 {
		row("unfinished", "%s cut off by the end of the run (not errors)", plural(int(r.Unfinished), "request"))
	}
	return tw.Flush()
}

func (r *Report) poolDescription() string {
	depth := ""
	if r.Depth > 1 {
		depth = fmt.Sprintf(", %d operations per connection", r.Depth)
	}
	if r.Processes > 1 {
		return fmt.Sprintf("pool size %d%s in each of %d processes (%d connections at most)",
			r.PoolSize, depth, r.Processes, r.PoolSize*r.Processes)
	}
	return fmt.Sprintf("pool size %d%s", r.PoolSize, depth)
}

// String writes p on one line, as the report's table does.
func (p Percentiles) String() string {
	if p.Count == 0 {
		return "no samples"
	}
	return fmt.Sprintf("p50 %v  p95 %v  p99 %v  max %v  (mean %v)",
		round(p.P50), round(p.P95), round(p.P99), round(p.Max), round(p.Mean))
}

// round keeps three significant digits of d, so that tables stay readable.
func round(d time.Duration) time.Duration {
	unit := time.Duration(1)
	for v := d; v >= 1000 || v <= -1000; v /= 10 {
		unit *= 10
	}
	return d.Round(unit)
}

// classify returns the kind of a lease error.
func classify(err error) ErrorKind {
	var ce *engine.ConnectError
	switch {
	case errors.Is(err, engine.ErrExhausted):
		return KindExhausted
	case errors.Is(err, engine.ErrClosed):
		return KindClosed
	case errors.As(err, &ce), errors.Is(err, engine.ErrKeyRejected):
		return KindConnect
	case errors.Is(err, context.DeadlineExceeded): // engine.ErrWaitTimeout is one too
		return KindTimeout
	}
	return KindOther
}
