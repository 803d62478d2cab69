package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"time"
)

// Distribution names the shape of a latency distribution.
type Distribution string

// The latency distributions of the server model.
const (
	// Constant is the mean every time.
	Constant Distribution = "constant"
	// Exponential has the given mean; its p99 is 4.6 times the mean.
	Exponential Distribution = "exponential"
	// LogNormal has the given mean and a long tail set by Sigma: with the
	// default Sigma 1 its p99 is 6.2 times the mean.
	LogNormal Distribution = "lognormal"
)

// Latency is a distribution of operation latencies.
type Latency struct {
	Dist  Distribution  // "" means Constant
	Mean  time.Duration // the mean latency; 0: operations take no time
	Sigma float64       // LogNormal: the standard deviation of the log; 0 means 1
}

// Validate reports a distribution that is not known or a negative mean.
func (l Latency) Validate() error {
	switch l.Dist {
	case "", Constant, Exponential, LogNormal:
	default:
		return fmt.Errorf("sim: latency %q: want constant, exponential or lognormal", l.Dist)
	}
	if l.Mean < 0 {
		return fmt.Errorf("sim: latency mean %v: must not be negative", l.Mean)
	}
	if l.Sigma < 0 || math.IsNaN(l.Sigma) || math.IsInf(l.Sigma, 0) {
		return fmt.Errorf("sim: latency sigma %v: must be a non-negative number", l.Sigma)
	}
	return nil
}

// String describes l, as "exponential 2ms".
func (l Latency) String() string {
	d := l.Dist
	if d == "" {
		d = Constant
	}
	if d == LogNormal && l.Sigma != 0 && l.Sigma != 1 {
		return fmt.Sprintf("%s %v (sigma %g)", d, l.Mean, l.Sigma)
	}
	return fmt.Sprintf("%s %v", d, l.Mean)
}

// sample draws one latency from l using r.
func (l Latency) sample(r *rand.Rand) time.Duration {
	if l.Mean <= 0 {
		return 0
	}
	mean := float64(l.Mean)
	switch l.Dist {
	case Exponential:
		return time.Duration(r.ExpFloat64() * mean)
	case LogNormal:
		sigma := l.Sigma
		if sigma == 0 {
			sigma = 1
		}
		// exp(mu + sigma*N) has mean exp(mu + sigma²/2): pick mu for the mean.
		mu := math.Log(mean) - sigma*sigma/2
		return time.Duration(math.Exp(mu + sigma*r.NormFloat64()))
	default:
		return l.Mean
	}
}

// sampler draws latencies from one seeded generator for many goroutines.
// The sequence of draws is reproducible; which goroutine gets which draw
// depends on the scheduler.
type sampler struct {
	l  Latency
	mu sync.Mutex
	r  *rand.Rand
}

func newSampler(l Latency, seed uint64) *sampler {
	return &sampler{l: l, r: newRand(seed, streamLatency)}
}

func (s *sampler) next() time.Duration {
	if s.l.Mean <= 0 {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.l.sample(s.r)
}
