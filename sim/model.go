package sim

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/fairpool/ldappool/engine"
)

var (
	// ErrServerDown is returned by the model's Connect, and by operations,
	// while a Down fault is playing.
	ErrServerDown = errors.New("sim: model server down")

	// ErrTooManyConnections is returned by the model's Connect when
	// ModelConfig.MaxConns connections are open already.
	ErrTooManyConnections = errors.New("sim: model server connection limit reached")

	// ErrConnBroken is returned by an operation or validation on a model
	// connection that a Drop or Down fault broke. It wraps engine.ErrBroken,
	// so a pool's Do discards the connection.
	ErrConnBroken = fmt.Errorf("sim: model connection broken: %w", engine.ErrBroken)
)

// ModelConfig describes the in-process server model.
type ModelConfig struct {
	Latency     Latency       // of each operation, once the server works on it
	ConnectCost time.Duration // of each connect, bind included
	MaxConns    int           // connections the server accepts at once; 0: no limit
	// Concurrency is how many operations the server works on at once, over
	// all its connections, as slapd's worker threads or a CPU-bound
	// server's cores; the others wait their turn, first come first served,
	// and the wait counts in their latency. 0: no limit.
	Concurrency int
	Faults      []Fault // played from the start of each run
	Seed        uint64  // seeds the latency draws
}

// Validate reports the first setting of c that makes no sense.
func (c ModelConfig) Validate() error {
	if err := c.Latency.Validate(); err != nil {
		return err
	}
	if c.ConnectCost < 0 {
		return fmt.Errorf("sim: connect cost %v: must not be negative", c.ConnectCost)
	}
	if c.MaxConns < 0 {
		return fmt.Errorf("sim: max server connections %d: must not be negative", c.MaxConns)
	}
	if c.Concurrency < 0 {
		return fmt.Errorf("sim: server concurrency %d: must not be negative", c.Concurrency)
	}
	for _, f := range c.Faults {
		if err := f.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// Model is an in-process model of an LDAP server: connecting costs
// ConnectCost, each operation takes a latency drawn from a seeded
// distribution, at most MaxConns connections are accepted, at most
// Concurrency operations are worked on at once, and a fault schedule takes
// the server down, slows it or drops its connections. Operations on one
// connection overlap, as LDAP's message IDs let them: a pool that puts
// several on a connection at once (engine.WithOpsPerConn) gets each its own
// latency, and they contend only for the server's Concurrency. Its
// delays are timers, so inside a testing/synctest bubble a run of simulated
// minutes takes no real time; on the real clock they last what they should
// even below the host's timer granularity (see clock).
//
// A Model is the engine.Connector of the pools a run makes, and a Backend;
// its methods are safe for concurrent use.
type Model struct {
	cfg   ModelConfig
	lat   *sampler
	clock *clock
	work  chan struct{} // a place for each operation the server works on; nil: no limit

	mu       sync.Mutex
	start    time.Time // of the run: the fault schedule's zero
	played   []bool    // by fault: a Drop or Down has broken the connections open at its start
	conns    map[*ModelConn]struct{}
	peak     int
	accepted int64
	refused  int64
}

// NewModel makes a server model. Its fault schedule's clock starts now, and
// again at each Start.
func NewModel(cfg ModelConfig) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Faults = append([]Fault(nil), cfg.Faults...)
	var work chan struct{}
	if cfg.Concurrency > 0 {
		work = make(chan struct{}, cfg.Concurrency)
	}
	return &Model{
		work:   work,
		cfg:    cfg,
		lat:    newSampler(cfg.Latency, cfg.Seed),
		clock:  newClock(),
		start:  time.Now(),
		played: make([]bool, len(cfg.Faults)),
		conns:  map[*ModelConn]struct{}{},
	}, nil
}

// ModelConn is a connection to a Model.
type ModelConn struct {
	m      *Model
	opened time.Time
	broken bool // the server cut it; guarded by m.mu
	closed bool // the client closed it; guarded by m.mu
}

// Op runs one operation: it waits for the server to take it up (see
// ModelConfig.Concurrency), then the model's latency, longer during a Slow
// fault, and fails with ErrConnBroken if a fault broke the connection before
// or during it. It returns ctx's error if ctx ends first. Several Ops may
// run on one connection at once.
func (c *ModelConn) Op(ctx context.Context) error {
	if c.m.broken(c, time.Now()) {
		return ErrConnBroken
	}
	if c.m.work != nil {
		// A channel's blocked senders go in the order they came: the
		// server takes operations up first come, first served.
		select {
		case c.m.work <- struct{}{}:
			defer func() { <-c.m.work }()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	d := c.m.lat.next()
	if f := c.m.slowFactor(time.Now()); f != 1 {
		d = time.Duration(float64(d) * f)
	}
	if err := c.m.clock.delay(ctx, d); err != nil {
		return err
	}
	if c.m.broken(c, time.Now()) {
		return ErrConnBroken
	}
	return nil
}

// Connect implements engine.Connector: it refuses at once while the model is
// down, waits the connect cost, and refuses past MaxConns.
func (m *Model) Connect(ctx context.Context, _ engine.Key) (*ModelConn, error) {
	if m.down(time.Now()) {
		m.refuse()
		return nil, ErrServerDown
	}
	if err := m.clock.sleep(ctx, m.cfg.ConnectCost); err != nil {
		return nil, err
	}
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.play(now)
	if m.downLocked(now) {
		m.refused++
		return nil, ErrServerDown
	}
	if m.cfg.MaxConns > 0 && len(m.conns) >= m.cfg.MaxConns {
		m.refused++
		return nil, fmt.Errorf("%w (%d open)", ErrTooManyConnections, len(m.conns))
	}
	c := &ModelConn{m: m, opened: now}
	m.conns[c] = struct{}{}
	m.accepted++
	m.peak = max(m.peak, len(m.conns))
	return c, nil
}

// Validate implements engine.Connector: a connection a fault broke fails.
func (m *Model) Validate(_ context.Context, c *ModelConn) error {
	if m.broken(c, time.Now()) {
		return ErrConnBroken
	}
	return nil
}

// Close implements engine.Connector.
func (m *Model) Close(c *ModelConn) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c.closed {
		return errors.New("sim: model connection closed twice")
	}
	c.closed = true
	delete(m.conns, c)
	return nil
}

func (m *Model) refuse() {
	m.mu.Lock()
	m.refused++
	m.mu.Unlock()
}

func (m *Model) down(now time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.downLocked(now)
}

func (m *Model) downLocked(now time.Time) bool {
	at := now.Sub(m.start)
	for _, f := range m.cfg.Faults {
		if f.Kind == Down && at >= f.From && at < f.To {
			return true
		}
	}
	return false
}

// broken reports whether the server cut c.
func (m *Model) broken(c *ModelConn, now time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.play(now)
	return c.broken
}

// play breaks, for each Drop, and each Down at its start, that has come by
// now and not been played yet, every connection open then: the server no
// longer counts them, and their clients find out at their next use. Faults
// are played lazily, when the model is next used, which looks the same to a
// client as the server cutting the connections at that instant.
func (m *Model) play(now time.Time) {
	for i, f := range m.cfg.Faults {
		if m.played[i] || (f.Kind != Drop && f.Kind != Down) {
			continue
		}
		at := m.start.Add(f.From)
		if now.Before(at) {
			continue
		}
		m.played[i] = true
		for c := range m.conns {
			if c.opened.Before(at) {
				c.broken = true
				delete(m.conns, c)
			}
		}
	}
}

// slowFactor returns the largest latency multiplier playing at now, or 1.
func (m *Model) slowFactor(now time.Time) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	at, x := now.Sub(m.start), 1.0
	for _, f := range m.cfg.Faults {
		if f.Kind == Slow && at >= f.From && at < f.To {
			x = max(x, f.factor())
		}
	}
	return x
}

// Name implements Backend.
func (m *Model) Name() string {
	var b strings.Builder
	fmt.Fprintf(&b, "server model: latency %v, connect %v", m.cfg.Latency, m.cfg.ConnectCost)
	if m.cfg.MaxConns > 0 {
		fmt.Fprintf(&b, ", at most %d connections", m.cfg.MaxConns)
	}
	if m.cfg.Concurrency > 0 {
		fmt.Fprintf(&b, ", %d operations at once", m.cfg.Concurrency)
	}
	for i, f := range m.cfg.Faults {
		if i == 0 {
			b.WriteString(", faults ")
		} else {
			b.WriteString(",")
		}
		b.WriteString(f.String())
	}
	return b.String()
}

// TimerGranularity returns the host's timer granularity as the model
// measured it when it was made: the model's delays shorter than it are
// watched to their end rather than left to a timer. It is 0 inside a
// testing/synctest bubble.
func (m *Model) TimerGranularity() time.Duration { return m.clock.measured }

// Start implements Backend: the fault schedule starts again from now, and the
// server's counters from the connections open now.
func (m *Model) Start() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.start = time.Now()
	clear(m.played)
	m.peak, m.accepted, m.refused = len(m.conns), 0, 0
}

// Server implements Backend.
func (m *Model) Server() ServerStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.play(time.Now())
	return ServerStats{Known: true, Open: len(m.conns), Peak: m.peak, Accepted: m.accepted, Refused: m.refused}
}

// NewTarget implements Backend: a pool over the model.
func (m *Model) NewTarget(pc PoolConfig) (Target, error) {
	opts := append(pc.EngineOptions(), engine.WithDefaultKey(modelKey))
	p, err := engine.New[*ModelConn](m, opts...)
	if err != nil {
		return nil, err
	}
	return &modelTarget{p: p}, nil
}
