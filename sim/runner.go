package sim

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fairpool/ldappool/engine"
	"github.com/fairpool/ldappool/internal/ctxtime"
)

// Config is one run's settings.
type Config struct {
	Workload Workload
	Pool     PoolConfig    // the settings of each process's pool
	Duration time.Duration // how long requests are made
	Seed     uint64        // seeds the arrival schedule and the think times

	// Progress, if not nil, is called about once a second while the run
	// goes on, from a goroutine of the run.
	Progress func(Progress)
}

// Validate reports the first setting of c that makes no sense.
func (c Config) Validate() error {
	if err := c.Workload.Validate(); err != nil {
		return err
	}
	if c.Duration <= 0 {
		return fmt.Errorf("sim: duration %v: must be positive", c.Duration)
	}
	if c.Pool.Size < 0 {
		return fmt.Errorf("sim: pool size %d: must be at least 1", c.Pool.Size)
	}
	return nil
}

// Progress is the state of a run while it goes on.
type Progress struct {
	Elapsed, Duration time.Duration
	PoolSize          int   // of each process's pool
	Depth             int   // operations a connection carries at once
	Ops               int64 // operations completed so far
	Errors            int64 // requests failed so far
	Open              int   // connections the pools hold, all pools
	Leased            int   // connections leased now, all pools
	Waiting           int   // callers waiting for a lease now, all pools
}

const (
	// sampleEvery is how often the pools and the server are sampled for
	// their peak connection counts.
	sampleEvery = 10 * time.Millisecond
	// retryDelay is how long a closed-loop client pauses after a failed
	// request, besides its think time, so that a fail-fast pool or a down
	// server does not turn it into a busy loop.
	retryDelay = 10 * time.Millisecond
	// closeTimeout bounds how long the pools' Close waits for leases.
	closeTimeout = 10 * time.Second
)

// Run makes the pools of cfg.Workload over b (one, or one per process),
// drives the workload against them for cfg.Duration and reports what they
// did. It closes the pools before it returns; b stays open.
//
// When ctx ends first, Run stops making requests, lets the operations under
// way finish (they are not counted), and reports what it measured so far,
// with Report.Interrupted set. It returns an error only when cfg is invalid
// or the pools cannot be made.
//
// Run measures with the clock: inside a testing/synctest bubble a run over a
// Model takes no real time. A closed-loop workload whose operations and think
// times are all zero never lets a bubble's clock move, and so never ends
// there.
func Run(ctx context.Context, b Backend, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	grain := timerGranularity(b)
	b.Start()
	targets := make([]Target, 0, cfg.Workload.processes())
	for range cfg.Workload.processes() {
		t, err := b.NewTarget(cfg.Pool)
		if err != nil {
			closeAll(targets)
			return nil, err
		}
		targets = append(targets, t)
	}
	st := targets[0].Stats()
	r := &runner{cfg: cfg, b: b, targets: targets, poolSize: st.MaxSize, depth: max(st.OpsPerConn, 1), grain: grain}
	r.recs = make([]*clientRec, cfg.Workload.clients())
	for i := range r.recs {
		r.recs[i] = &clientRec{}
	}
	return r.run(ctx), nil
}

// timerGranularity returns the host's timer granularity as b measured it,
// or measures it when b did not (only the Model does).
func timerGranularity(b Backend) time.Duration {
	if t, ok := b.(interface{ TimerGranularity() time.Duration }); ok {
		return t.TimerGranularity()
	}
	return MeasureTimerGranularity()
}

// runner is one run in progress.
type runner struct {
	cfg      Config
	b        Backend
	targets  []Target
	poolSize int
	depth    int           // operations a connection carries at once
	grain    time.Duration // the timer granularity measured as the run started
	recs     []*clientRec  // one a client

	ops        atomic.Int64
	errs       atomic.Int64
	leased     atomic.Int64
	peakLeased atomic.Int64
}

func (r *runner) run(ctx context.Context) *Report {
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	stop := time.AfterFunc(r.cfg.Duration, cancel)
	defer stop.Stop()

	sampled := make(chan peaks, 1)
	samplerDone := make(chan struct{})
	go r.sample(start, samplerDone, sampled)

	var wg sync.WaitGroup
	w := r.cfg.Workload
	if w.open() {
		wg.Go(func() { r.dispatch(runCtx, start, &wg) })
	} else {
		for c := range w.clients() {
			t := r.targets[0]
			if w.Kind == MultiProcess {
				t = r.targets[c/w.Threads] // threads 0..T-1 in process 0, and so on
			}
			th := newThinker(w.Think, r.cfg.Seed, c)
			wg.Go(func() { r.closedClient(runCtx, t, r.recs[c], th) })
		}
	}
	<-runCtx.Done()
	elapsed := min(time.Since(start), r.cfg.Duration)
	wg.Wait()
	close(samplerDone)
	p := <-sampled

	rep := r.report(elapsed, p)
	rep.Interrupted = ctx.Err() != nil && elapsed < r.cfg.Duration
	closeAll(r.targets)
	return rep
}

// closedClient is one closed-loop client: lease, operate, release, think.
func (r *runner) closedClient(ctx context.Context, t Target, rec *clientRec, th thinker) {
	for ctx.Err() == nil {
		if failed := r.request(ctx, t, rec); failed {
			if ctxtime.Sleep(ctx, retryDelay) != nil {
				return
			}
		}
		if ctxtime.Sleep(ctx, th.next()) != nil {
			return
		}
	}
}

// dispatch starts one request at each arrival of an open workload's
// schedule, each on its own goroutine, whether or not earlier ones are done.
func (r *runner) dispatch(ctx context.Context, start time.Time, wg *sync.WaitGroup) {
	for i, at := range r.cfg.Workload.Arrivals(r.cfg.Duration, r.cfg.Seed) {
		if ctxtime.Sleep(ctx, time.Until(start.Add(at))) != nil {
			return
		}
		rec := r.recs[i%len(r.recs)]
		wg.Go(func() { r.request(ctx, r.targets[0], rec) })
	}
}

// request has t run one operation, recording what happened in rec: the
// wait for a connection (or a share of one), and the operation. It reports
// whether the request failed; requests cut off by the end of the run do not
// count as failures, nor as operations.
//
// The end of the run (ctx) ends a wait for a connection, but not an
// operation under way: the lease's context outlives ctx until the operation
// returns, since an LDAP lease runs its operations under it and would
// discard a connection whose operation was abandoned, and the run would then
// count connections closed, and dialed again, only because it stopped.
func (r *runner) request(ctx context.Context, t Target, rec *clientRec) (failed bool) {
	leaseCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	endWait := context.AfterFunc(ctx, cancel)
	used, waiting, cutOff := false, true, false
	start := time.Now()
	err := t.Do(leaseCtx, func(c Conn) error {
		rec.waited(time.Since(start))
		if !used {
			used = true
			waiting = endWait() // false: ctx ended, and leaseCtx with it
		}
		if !waiting {
			cutOff = true
			return nil
		}
		late, err := r.operate(ctx, leaseCtx, c, rec)
		start = time.Now() // a second call is Do's retry on a fresh connection
		cutOff = cutOff || late
		failed = failed || err != nil
		return err
	})
	switch {
	case used:
	case err == nil: // a Target that neither served nor failed: nothing to count
	case !endWait() && !errors.Is(err, engine.ErrWaitTimeout): // ctx ended, and leaseCtx with it
		cutOff = true
	default:
		r.errs.Add(1)
		rec.fail(classify(err), err)
		failed = true
	}
	if cutOff {
		rec.cutOff()
	}
	return failed
}

// operate runs the operation on c under leaseCtx and records it in rec,
// returning its error; late reports an operation that ended after the end of
// the run (ctx), which is not measured, and then the error is nil, so that
// the connection goes back to the pool.
func (r *runner) operate(ctx, leaseCtx context.Context, c Conn, rec *clientRec) (late bool, err error) {
	n := r.leased.Add(1)
	for p := r.peakLeased.Load(); n > p && !r.peakLeased.CompareAndSwap(p, n); p = r.peakLeased.Load() {
	}
	start := time.Now()
	err = c.Op(leaseCtx)
	latency := time.Since(start)
	r.leased.Add(-1)
	switch {
	case ctx.Err() != nil:
		return true, nil
	case err == nil:
		r.ops.Add(1)
		rec.done(latency)
		return false, nil
	default:
		r.errs.Add(1)
		rec.fail(KindOp, err)
		return false, err
	}
}

// peaks is what the sampler saw.
type peaks struct{ open, server int }

// sample polls the pools and the server every sampleEvery for their peak
// connection counts, and reports progress once a second, until done closes.
func (r *runner) sample(start time.Time, done <-chan struct{}, out chan<- peaks) {
	var p peaks
	tick := time.NewTicker(sampleEvery)
	defer tick.Stop()
	nextProgress := start.Add(time.Second)
	for {
		var open, waiting int
		for _, t := range r.targets {
			st := t.Stats()
			open += st.Open
			waiting += st.Waiters
		}
		p.open = max(p.open, open)
		if s := r.b.Server(); s.Known {
			p.server = max(p.server, s.Open)
		}
		if now := time.Now(); r.cfg.Progress != nil && !now.Before(nextProgress) {
			nextProgress = nextProgress.Add(time.Second)
			r.cfg.Progress(Progress{
				Elapsed:  min(now.Sub(start), r.cfg.Duration),
				Duration: r.cfg.Duration,
				PoolSize: r.poolSize,
				Depth:    r.depth,
				Ops:      r.ops.Load(),
				Errors:   r.errs.Load(),
				Open:     open,
				Leased:   int(r.leased.Load()),
				Waiting:  waiting,
			})
		}
		select {
		case <-tick.C:
		case <-done:
			out <- p
			return
		}
	}
}

func closeAll(targets []Target) {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, t := range targets {
		wg.Go(func() { _ = t.Close(ctx) })
	}
	wg.Wait()
}

// clientRec is what one client's requests measured. Closed-loop clients
// write their own; the overlapping requests of an open workload's client
// share one, hence the lock.
type clientRec struct {
	mu         sync.Mutex
	waits      []time.Duration
	latencies  []time.Duration
	ops        int64
	unfinished int64
	errs       [numKinds]int64
	first      [numKinds]error // the first error of each kind, and when
	firstAt    [numKinds]time.Time
}

func (c *clientRec) waited(d time.Duration) {
	c.mu.Lock()
	c.waits = append(c.waits, d)
	c.mu.Unlock()
}

func (c *clientRec) done(latency time.Duration) {
	c.mu.Lock()
	c.latencies = append(c.latencies, latency)
	c.ops++
	c.mu.Unlock()
}

func (c *clientRec) cutOff() {
	c.mu.Lock()
	c.unfinished++
	c.mu.Unlock()
}

func (c *clientRec) fail(k ErrorKind, err error) {
	c.mu.Lock()
	c.errs[k]++
	if c.first[k] == nil {
		c.first[k], c.firstAt[k] = err, time.Now()
	}
	c.mu.Unlock()
}

// report adds up what the clients, the pools and the server measured. The
// clients have all returned.
func (r *runner) report(elapsed time.Duration, p peaks) *Report {
	rep := &Report{
		Backend:   r.b.Name(),
		Workload:  r.cfg.Workload,
		PoolSize:  r.poolSize,
		Depth:     r.depth,
		Processes: len(r.targets),
		Clients:   len(r.recs),
		Seed:      r.cfg.Seed,
		Duration:  r.cfg.Duration,
		Elapsed:   elapsed,
		PeakOpen:  p.open,

		TimerGranularity: r.grain,
	}
	var waits, latencies []time.Duration
	perClient := make([]float64, len(r.recs))
	var first [numKinds]error
	var firstAt [numKinds]time.Time
	rep.ClientOpsMin = -1
	for i, c := range r.recs {
		waits = append(waits, c.waits...)
		latencies = append(latencies, c.latencies...)
		rep.Ops += c.ops
		rep.Unfinished += c.unfinished
		perClient[i] = float64(c.ops)
		if rep.ClientOpsMin < 0 || c.ops < rep.ClientOpsMin {
			rep.ClientOpsMin = c.ops
		}
		rep.ClientOpsMax = max(rep.ClientOpsMax, c.ops)
		for k := range numKinds {
			rep.Errors.add(k, c.errs[k], nil)
			if c.first[k] != nil && (first[k] == nil || c.firstAt[k].Before(firstAt[k])) {
				first[k], firstAt[k] = c.first[k], c.firstAt[k]
			}
		}
	}
	for k, err := range first {
		if err != nil {
			rep.Errors.add(ErrorKind(k), 0, err)
		}
	}
	rep.Wait = Summarize(waits)
	rep.OpLatency = Summarize(latencies)
	rep.Fairness = Jain(perClient)
	if elapsed > 0 {
		rep.Throughput = float64(rep.Ops) / elapsed.Seconds()
	}
	open := 0
	for _, t := range r.targets {
		st := t.Stats()
		rep.Opened += st.Opened()
		rep.Closed += st.Closed
		rep.Shares += st.Shares
		open += st.Open
	}
	rep.PeakOpen = max(rep.PeakOpen, open)
	rep.PeakLeased = int(r.peakLeased.Load())
	rep.Server = r.b.Server()
	if rep.Server.Known {
		rep.Server.Peak = max(rep.Server.Peak, p.server)
	}
	return rep
}
