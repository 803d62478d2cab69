package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"
)

// WorkloadKind names how a workload makes its requests.
type WorkloadKind string

// The workloads a simulation can run.
const (
	// Closed is closed-loop clients: each of Clients leases, runs one
	// operation, releases and thinks, over and over. The load adapts to
	// the pool: a slow pool slows the clients down.
	Closed WorkloadKind = "closed"
	// Poisson is open arrivals at Rate a second with exponential gaps; each
	// arrival leases, runs one operation and releases, whether or not the
	// pool keeps up.
	Poisson WorkloadKind = "poisson"
	// Burst is open arrivals BurstSize at a time every BurstEvery, the first
	// burst at the start.
	Burst WorkloadKind = "burst"
	// MultiProcess is Processes processes, each with its own pool and
	// Threads closed-loop threads, as Keystone runs under mod_wsgi: the
	// server sees the connections of every process's pool.
	MultiProcess WorkloadKind = "multiprocess"
)

// Workload describes the requests a simulation makes. Fields a kind does not
// use are ignored.
type Workload struct {
	Kind       WorkloadKind  `json:"kind"`
	Clients    int           `json:"clients,omitempty"`        // Closed: concurrent clients; Poisson, Burst: arrival i belongs to client i mod Clients
	Think      time.Duration `json:"think_ns,omitempty"`       // Closed, MultiProcess: mean think time between a release and the next lease (exponential)
	Rate       float64       `json:"rate,omitempty"`           // Poisson: arrivals a second
	BurstSize  int           `json:"burst_size,omitempty"`     // Burst: arrivals in each burst
	BurstEvery time.Duration `json:"burst_every_ns,omitempty"` // Burst: time from one burst to the next
	Processes  int           `json:"processes,omitempty"`      // MultiProcess: processes, each with its own pool
	Threads    int           `json:"threads,omitempty"`        // MultiProcess: closed-loop threads in each process
}

// Validate reports the first field that does not make sense for w.Kind.
func (w Workload) Validate() error {
	switch w.Kind {
	case Closed, Poisson, Burst, MultiProcess:
	default:
		return fmt.Errorf("sim: workload %q: want closed, poisson, burst or multiprocess", w.Kind)
	}
	if w.Think < 0 {
		return fmt.Errorf("sim: think time %v: must not be negative", w.Think)
	}
	switch w.Kind {
	case Closed:
		if w.Clients < 1 {
			return fmt.Errorf("sim: %d clients: want at least 1", w.Clients)
		}
	case Poisson:
		if w.Clients < 1 {
			return fmt.Errorf("sim: %d clients: want at least 1", w.Clients)
		}
		if !(w.Rate > 0) || math.IsInf(w.Rate, 0) {
			return fmt.Errorf("sim: rate %v: want a positive number of arrivals a second", w.Rate)
		}
	case Burst:
		if w.Clients < 1 {
			return fmt.Errorf("sim: %d clients: want at least 1", w.Clients)
		}
		if w.BurstSize < 1 {
			return fmt.Errorf("sim: burst size %d: want at least 1", w.BurstSize)
		}
		if w.BurstEvery <= 0 {
			return fmt.Errorf("sim: burst every %v: must be positive", w.BurstEvery)
		}
	case MultiProcess:
		if w.Processes < 1 {
			return fmt.Errorf("sim: %d processes: want at least 1", w.Processes)
		}
		if w.Threads < 1 {
			return fmt.Errorf("sim: %d threads: want at least 1", w.Threads)
		}
	}
	return nil
}

// String describes w in a few words, for reports.
func (w Workload) String() string {
	switch w.Kind {
	case Closed:
		return fmt.Sprintf("closed loop, %s, think %v", plural(w.Clients, "client"), w.Think)
	case Poisson:
		return fmt.Sprintf("poisson arrivals, %g/s from %s", w.Rate, plural(w.Clients, "client"))
	case Burst:
		return fmt.Sprintf("bursts of %d every %v from %s", w.BurstSize, w.BurstEvery, plural(w.Clients, "client"))
	case MultiProcess:
		return fmt.Sprintf("%s x %s, think %v", plural(w.Processes, "process"), plural(w.Threads, "thread"), w.Think)
	}
	return string(w.Kind)
}

// plural writes n and noun, with an s or es when n is not 1.
func plural(n int, noun string) string {
	switch {
	case n == 1:
		return "1 " + noun
	case strings.HasSuffix(noun, "s"):
		return fmt.Sprintf("%d %ses", n, noun)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// open reports whether w's requests arrive on a schedule rather than in a
// closed loop.
func (w Workload) open() bool { return w.Kind == Poisson || w.Kind == Burst }

// processes returns how many pools w needs.
func (w Workload) processes() int {
	if w.Kind == MultiProcess {
		return w.Processes
	}
	return 1
}

// clients returns how many clients w's fairness is measured across.
func (w Workload) clients() int {
	if w.Kind == MultiProcess {
		return w.Processes * w.Threads
	}
	return w.Clients
}

// Arrivals returns the schedule of an open workload: the offsets from the
// start of a run, in order, at which requests arrive before d. The same seed
// gives the same schedule. It returns nil for closed-loop workloads, whose
// requests depend on how fast the pool answers.
func (w Workload) Arrivals(d time.Duration, seed uint64) []time.Duration {
	switch w.Kind {
	case Poisson:
		return PoissonArrivals(w.Rate, d, seed)
	case Burst:
		return BurstArrivals(w.BurstSize, w.BurstEvery, d)
	}
	return nil
}

// Streams of the seeded generators, so that each draws its own sequence from
// one seed and adding a client does not change the arrival schedule.
const (
	streamArrivals uint64 = 1 + iota
	streamLatency
	streamSearch
	streamClients // client i uses streamClients + i
)

// newRand returns the PCG generator for one stream of seed.
func newRand(seed, stream uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, stream)) }

// PoissonArrivals returns the arrival times, as offsets from the start, of a
// Poisson process of rate arrivals a second, up to d: the gaps between them
// are exponential with mean 1/rate. The same seed gives the same schedule.
func PoissonArrivals(rate float64, d time.Duration, seed uint64) []time.Duration {
	if !(rate > 0) || d <= 0 {
		return nil
	}
	r := newRand(seed, streamArrivals)
	out := make([]time.Duration, 0, int(rate*d.Seconds()*1.1)+1)
	var t float64 // seconds; summed as a float so that tiny gaps are not rounded away
	for {
		t += r.ExpFloat64() / rate
		at := time.Duration(t * float64(time.Second))
		if at >= d {
			return out
		}
		out = append(out, at)
	}
}

// BurstArrivals returns size arrivals at each of 0, every, 2*every, ... up to
// d.
func BurstArrivals(size int, every, d time.Duration) []time.Duration {
	if size < 1 || every <= 0 || d <= 0 {
		return nil
	}
	out := make([]time.Duration, 0, size*int(d/every+1))
	for at := time.Duration(0); at < d; at += every {
		for range size {
			out = append(out, at)
		}
	}
	return out
}

// thinker draws one client's think times: exponential with the given mean,
// so that clients started together drift apart instead of moving in step.
type thinker struct {
	mean time.Duration
	r    *rand.Rand
}

func newThinker(mean time.Duration, seed uint64, client int) thinker {
	return thinker{mean: mean, r: newRand(seed, streamClients+uint64(client))}
}

func (t thinker) next() time.Duration {
	if t.mean <= 0 {
		return 0
	}
	return time.Duration(t.r.ExpFloat64() * float64(t.mean))
}
