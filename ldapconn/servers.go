package ldapconn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Strategy chooses the order in which servers are tried for a new connection.
type Strategy int

const (
	// Failover tries the servers in the order given; connections to any but
	// the first get a short lifetime (WithFailbackAfter) so the pool comes
	// back to the first soon after it recovers. The default.
	Failover Strategy = iota
	// RoundRobin starts each dial at the next server in turn.
	RoundRobin
	// FewestConnections dials the server with the fewest open connections.
	FewestConnections
)

func (s Strategy) String() string {
	switch s {
	case Failover:
		return "failover"
	case RoundRobin:
		return "round-robin"
	case FewestConnections:
		return "fewest-connections"
	}
	return fmt.Sprintf("Strategy(%d)", int(s))
}

// health tracks each server's state for the connector. It is the
// connector's own state, shared by the dial workers, hence its mutex; the
// pool's state stays with the engine's supervisor.
type health struct {
	servers  []Server
	strategy Strategy
	log      *slog.Logger
	rr       atomic.Uint64
	mu       sync.Mutex
	state    []serverState // guarded by mu
	allDown  bool          // guarded by mu: "every server is down" was logged and no server has come back since
	serving  int           // guarded by mu: the server the last dial succeeded on, -1 before the first
	open     []atomic.Int64

	// Counted without mu, by the dial workers and the leases' operations.
	failovers []atomic.Uint64 // dials that succeeded after the servers before it in their order failed
	ops       []atomic.Uint64 // operations run on its connections
	opErrors  []atomic.Uint64 // of which returned an error
	activity  []activity      // for stall detection (stall.go)
	tails     bool            // reads are hedged: keep each server's recent answer times (tail.go)
}

type serverState struct {
	downUntil time.Time
	downSince time.Time // when it last went down; zero while up
	lastErr   error
	failures  int
	back      *backoff.ExponentialBackOff
}

func newHealth(servers []Server, strategy Strategy, initial, maxDelay time.Duration, log *slog.Logger) *health {
	n := len(servers)
	h := &health{servers: servers, strategy: strategy, log: log, serving: -1,
		state: make([]serverState, n), open: make([]atomic.Int64, n),
		failovers: make([]atomic.Uint64, n), ops: make([]atomic.Uint64, n), opErrors: make([]atomic.Uint64, n),
		activity: make([]activity, n)}
	for i := range h.state {
		b := backoff.NewExponentialBackOff()
		b.InitialInterval, b.MaxInterval, b.MaxElapsedTime = initial, maxDelay, 0
		b.Reset()
		h.state[i].back = b
	}
	return h
}

// order returns the servers to try now, best first, leaving out those in
// their backoff.
func (h *health) order(now time.Time) []int {
	n := len(h.servers)
	idx := make([]int, 0, n)
	start := 0
	if h.strategy == RoundRobin {
		start = int((h.rr.Add(1) - 1) % uint64(n))
	}
	h.mu.Lock()
	for k := range n {
		i := (start + k) % n
		if !now.Before(h.state[i].downUntil) {
			idx = append(idx, i)
		}
	}
	h.mu.Unlock()
	if h.strategy == FewestConnections {
		// Insertion sort: a handful of servers, and stable for equal counts.
		for a := 1; a < len(idx); a++ {
			for b := a; b > 0 && h.open[idx[b]].Load() < h.open[idx[b-1]].Load(); b-- {
				idx[b], idx[b-1] = idx[b-1], idx[b]
			}
		}
	}
	// A server much slower than another (latency.go) goes after the others,
	// whatever the strategy: new connections, and so new work, go where
	// answers come back sooner. Stable, so the strategy's order holds
	// among the fast ones and among the slow ones.
	slow := func(i int) bool { return h.slow(i, now) }
	for a := 1; a < len(idx); a++ {
		for b := a; b > 0 && !slow(idx[b]) && slow(idx[b-1]); b-- {
			idx[b], idx[b-1] = idx[b-1], idx[b]
		}
	}
	return idx
}

// soonest returns the down server whose backoff ends first, and when.
func (h *health) soonest() (int, time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	best := 0
	for i := range h.state {
		if h.state[i].downUntil.Before(h.state[best].downUntil) {
			best = i
		}
	}
	return best, h.state[best].downUntil
}

// The availability log: each line marks a change, never a repetition, so
// an outage of any length logs a handful of lines. A server going down is a
// warning; every server down is an error, once until one comes back; a
// server coming back, and the pool failing over or back, are news.

// logLater holds the availability lines decided under h.mu, to be written
// once it is let go: a log handler may block, and dial workers and the
// watchdog wait on h.mu.
type logLater []func()

func (l *logLater) add(f func()) { *l = append(*l, f) }

// unlockAndLog lets h.mu go, then writes what say holds.
func (h *health) unlockAndLog(say *logLater) {
	h.mu.Unlock()
	for _, f := range *say {
		f()
	}
}

func (h *health) down(i int, err error, now time.Time) {
	var say logLater
	h.mu.Lock()
	defer h.unlockAndLog(&say)
	s := &h.state[i]
	if now.Before(s.downUntil) {
		s.lastErr = err // already down: keep its backoff, note the newest cause
		return
	}
	s.failures++
	s.lastErr = err
	s.downUntil = now.Add(s.back.NextBackOff())
	if s.downSince.IsZero() {
		s.downSince = now
		retryIn := s.downUntil.Sub(now).Round(time.Millisecond)
		say.add(func() {
			h.log.Warn("ldapconn: server down", "server", h.servers[i].URL, "err", err, "retry_in", retryIn)
		})
	}
	if !h.allDown && h.everyServerDownLocked(now) {
		h.allDown = true
		say.add(func() { h.log.Error("ldapconn: every server is down", "servers", len(h.servers), "last_err", err) })
	}
}

// everyServerDown reports whether every server is down: in its backoff, or
// past it but not dialed successfully since it went down.
func (h *health) everyServerDown(now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.everyServerDownLocked(now)
}

func (h *health) everyServerDownLocked(now time.Time) bool {
	for i := range h.state {
		if !now.Before(h.state[i].downUntil) && h.state[i].downSince.IsZero() {
			return false
		}
	}
	return true
}

// up records a successful dial of server i; serving says the dial was the
// service pool's, which under Failover decides which server it serves from
// (the hedge lane's are not).
func (h *health) up(i int, serving bool) {
	var say logLater
	h.mu.Lock()
	defer h.unlockAndLog(&say)
	s := &h.state[i]
	if !s.downSince.IsZero() {
		downFor := time.Since(s.downSince).Round(time.Millisecond)
		say.add(func() { h.log.Info("ldapconn: server back up", "server", h.servers[i].URL, "down_for", downFor) })
	}
	s.downUntil, s.downSince, s.failures = time.Time{}, time.Time{}, 0
	s.back.Reset()
	h.allDown = false
	if serving && h.strategy == Failover && h.serving != i {
		from, to := h.servers[max(h.serving, 0)].URL, h.servers[i].URL
		switch {
		case h.serving < 0 && i == 0: // the first dial, to the first server: no news
		case i > max(h.serving, 0):
			say.add(func() { h.log.Info("ldapconn: failed over", "from", from, "to", to) })
		default:
			say.add(func() { h.log.Info("ldapconn: failed back", "from", from, "to", to) })
		}
		h.serving = i
	}
}

// servingFrom returns the server the service pool's last dial went to,
// under Failover, or -1.
func (h *health) servingFrom() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.serving
}

// operation counts an operation that ran on a connection to server i. One
// its caller gave up on (context.Canceled: a caller that left, or the copy
// of a hedged read that the other copy answered first) is not the server's
// error.
func (h *health) operation(i int, err error) {
	h.ops[i].Add(1)
	if err != nil && !errors.Is(err, context.Canceled) {
		h.opErrors[i].Add(1)
	}
}

// anotherUp reports whether a server other than i is not in its backoff.
func (h *health) anotherUp(i int, now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for j := range h.state {
		if j != i && !now.Before(h.state[j].downUntil) {
			return true
		}
	}
	return false
}

func (h *health) isDown(i int, now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return now.Before(h.state[i].downUntil)
}

// ServerStatus is one server's health as the pool sees it.
type ServerStatus struct {
	URL       string
	Up        bool
	RetryIn   time.Duration // when down: until the next dial may try it
	Failures  int           // consecutive failures
	LastError string
	Open      int // connections open to it

	// Counted since the pool was made.
	Operations      uint64 // operations run on its connections, binds of Authenticate included
	OperationErrors uint64 // of which returned an error, an LDAP result code (no such object, ...) included; one its caller gave up on (context.Canceled) is not counted
	Failovers       uint64 // connections opened to it because the servers before it in a dial's order failed
	Hedged          uint64 // reads on it that were hedged: sent to another server too, after waiting long (WithHedging)
	HedgesLost      uint64 // of which the other server answered first
	Slow            bool   // hedges beat it often lately: reads go elsewhere first for a while
}

func (h *health) status(now time.Time) []ServerStatus {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]ServerStatus, len(h.servers))
	for i, s := range h.state {
		out[i] = ServerStatus{URL: h.servers[i].URL, Up: !now.Before(s.downUntil), Failures: s.failures, Open: int(h.open[i].Load()),
			Operations: h.ops[i].Load(), OperationErrors: h.opErrors[i].Load(), Failovers: h.failovers[i].Load(),
			Hedged: h.activity[i].hedged.Load(), HedgesLost: h.activity[i].hedgesLost.Load(),
			Slow: sinceEpoch(now) < h.activity[i].slowUntil.Load()}
		if !out[i].Up {
			out[i].RetryIn = s.downUntil.Sub(now)
		}
		if s.lastErr != nil {
			out[i].LastError = s.lastErr.Error()
		}
	}
	return out
}

// AllServersDownError is returned when no server could be dialed: every one
// failed now or is waiting out its backoff after failing earlier.
type AllServersDownError struct {
	Servers []ServerStatus
	Last    error // the last dial error met now, if any server was tried
}

func (e *AllServersDownError) Error() string {
	var b strings.Builder
	b.WriteString("ldapconn: every server is down:")
	for _, s := range e.Servers {
		fmt.Fprintf(&b, " %s (", s.URL)
		if s.LastError != "" {
			b.WriteString(s.LastError)
		} else {
			b.WriteString("no error recorded")
		}
		if s.RetryIn > 0 {
			fmt.Fprintf(&b, "; retry in %v", s.RetryIn.Round(time.Millisecond))
		}
		b.WriteString(");")
	}
	return strings.TrimSuffix(b.String(), ";")
}

// Unwrap returns the last dial error met, so errors.Is sees network errors.
func (e *AllServersDownError) Unwrap() error { return e.Last }

// Is makes every AllServersDownError match ErrServerDown.
func (e *AllServersDownError) Is(target error) bool { return target == ErrServerDown }
