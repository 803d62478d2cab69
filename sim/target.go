package sim

import (
	"context"
	"time"

	"github.com/fairpool/ldappool/engine"
)

// Target is one pool a run drives: what one process of the simulated
// deployment holds.
type Target interface {
	// Do waits for a connection, or for a share of one when the pool puts
	// several operations on a connection at once (PoolConfig.Depth), and
	// calls use with it. use runs the workload's operation, or not if the
	// run ended meanwhile, and returns its error. The connection goes back
	// when use returns: released after nil; after an error, closed if the
	// pool finds it broken, and for a whole connection always. Do returns
	// the error that kept it from calling use, and nil once it has called
	// it; it may call use once more, on a fresh connection, after an error
	// that showed the first one dead, as ldapconn's Do does.
	Do(ctx context.Context, use func(Conn) error) error
	// Stats returns the pool's snapshot.
	Stats() engine.Stats
	// Close closes the pool, waiting for its leases until ctx ends.
	Close(ctx context.Context) error
}

// Conn is where one operation of the workload runs: a connection, or a share
// of one, held during Target.Do's use.
type Conn interface {
	// Op runs the workload's operation.
	Op(ctx context.Context) error
}

// Backend is the server a run's pools connect to, and the factory of those
// pools: the in-process Model or an LDAP server. A run does not close its
// backend: whoever made it does, so that a sweep runs every pool size
// against the same server.
type Backend interface {
	// Name describes the backend in reports.
	Name() string
	// Start is called as a run starts: a model starts its fault schedule
	// and the server's counters start from zero.
	Start()
	// NewTarget makes a pool over the backend.
	NewTarget(pc PoolConfig) (Target, error)
	// Server returns what the server sees, as far as it can be known.
	Server() ServerStats
}

// ServerStats is what the server side sees of a run: the connections of
// every pool, which for a multi-process deployment is the sum of all the
// processes' pools.
type ServerStats struct {
	Known    bool  `json:"known"`    // false for a directory the simulator cannot look into
	Open     int   `json:"open"`     // connections open now
	Peak     int   `json:"peak"`     // most connections open at once since Start; 0 if only sampled
	Accepted int64 `json:"accepted"` // connections accepted since Start
	Refused  int64 `json:"refused"`  // connections refused since Start (down, or over the limit)
}

// PoolConfig is the pool settings a run uses; they mirror the engine's
// options. Zero values leave the engine's defaults.
type PoolConfig struct {
	Size int // engine.WithMaxSize
	// Depth is how many operations one connection carries at once
	// (engine.WithOpsPerConn, ldapconn.WithOpsPerConn): above 1 each request
	// takes a share of a connection instead of a whole one. 0 means 1.
	Depth       int
	MaxInFlight int           // engine.WithMaxInFlight: operations in flight at once, all connections
	MinIdle     int           // engine.WithMinIdle
	WaitTimeout time.Duration // engine.WithWaitTimeout
	MaxLifetime time.Duration // engine.WithMaxLifetime
	FailFast    bool          // engine.WithFailFast
	// Options are applied after the settings above, and can set any other
	// engine option.
	Options []engine.Option
}

// depth returns the operations a connection carries at once.
func (pc PoolConfig) depth() int {
	if pc.Depth == 0 {
		return 1
	}
	return pc.Depth
}

// EngineOptions returns pc as engine options.
func (pc PoolConfig) EngineOptions() []engine.Option {
	return append(poolOptions(pc, optionSet[engine.Option]{
		size: engine.WithMaxSize, depth: engine.WithOpsPerConn, maxInFlight: engine.WithMaxInFlight,
		minIdle: engine.WithMinIdle, waitTimeout: engine.WithWaitTimeout, maxLifetime: engine.WithMaxLifetime,
		failFast: engine.WithFailFast,
	}), pc.Options...)
}

// optionSet is one package's constructors of the options PoolConfig names
// (engine's, or ldapconn's, which re-declares them).
type optionSet[O any] struct {
	size, depth, maxInFlight, minIdle func(int) O
	waitTimeout, maxLifetime          func(time.Duration) O
	failFast                          func() O
}

// poolOptions returns the settings of pc that are set as options of set's
// package, in one order for both packages.
func poolOptions[O any](pc PoolConfig, set optionSet[O]) []O {
	var opts []O
	for _, n := range []struct {
		v    int
		with func(int) O
	}{{pc.Size, set.size}, {pc.Depth, set.depth}, {pc.MaxInFlight, set.maxInFlight}, {pc.MinIdle, set.minIdle}} {
		if n.v != 0 {
			opts = append(opts, n.with(n.v))
		}
	}
	for _, d := range []struct {
		v    time.Duration
		with func(time.Duration) O
	}{{pc.WaitTimeout, set.waitTimeout}, {pc.MaxLifetime, set.maxLifetime}} {
		if d.v != 0 {
			opts = append(opts, d.with(d.v))
		}
	}
	if pc.FailFast {
		opts = append(opts, set.failFast())
	}
	return opts
}

// modelKey is the one key a model pool leases for: the simulated service
// identity.
var modelKey = engine.Key{Name: "sim"}

// modelTarget is a pool over a Model. It always asks for a share, which at
// depth 1 is a whole connection.
type modelTarget struct{ p *engine.Pool[*ModelConn] }

func (t *modelTarget) Do(ctx context.Context, use func(Conn) error) error {
	l, err := t.p.Share(ctx, modelKey)
	if err != nil {
		return err
	}
	// A careful caller does not reuse a connection whose operation failed
	// in a way it did not expect.
	if err := use(l.Conn()); err != nil {
		l.Discard(err)
		return nil
	}
	l.Release()
	return nil
}

func (t *modelTarget) Stats() engine.Stats             { return t.p.Stats() }
func (t *modelTarget) Close(ctx context.Context) error { return t.p.Close(ctx) }
