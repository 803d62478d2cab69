package sim

import (
	"context"
	"time"

	"github.com/fairpool/ldappool/engine"
	"github.com/fairpool/ldappool/lease"
)

// Target is one pool a run drives: what one process of the simulated
// deployment holds.
type Target interface {
	// Lease waits for a connection, as the pool's Lease does.
	Lease(ctx context.Context) (Leased, error)
	// Stats returns the pool's snapshot.
	Stats() engine.Stats
	// Close closes the pool, waiting for its leases until ctx ends.
	Close(ctx context.Context) error
}

// Leased is a connection leased from a Target.
type Leased interface {
	// Op runs the workload's operation on the connection.
	Op(ctx context.Context) error
	// Release gives the connection back to the pool.
	Release()
	// Discard tells the pool the connection must not be reused.
	Discard(err error)
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
	Size        int           // engine.WithMaxSize
	MinIdle     int           // engine.WithMinIdle
	WaitTimeout time.Duration // engine.WithWaitTimeout
	MaxLifetime time.Duration // engine.WithMaxLifetime
	FailFast    bool          // engine.WithFailFast
	// Options are applied after the settings above, and can set any other
	// engine option.
	Options []engine.Option
}

// EngineOptions returns pc as engine options.
func (pc PoolConfig) EngineOptions() []engine.Option {
	var opts []engine.Option
	if pc.Size != 0 {
		opts = append(opts, engine.WithMaxSize(pc.Size))
	}
	if pc.MinIdle != 0 {
		opts = append(opts, engine.WithMinIdle(pc.MinIdle))
	}
	if pc.WaitTimeout != 0 {
		opts = append(opts, engine.WithWaitTimeout(pc.WaitTimeout))
	}
	if pc.MaxLifetime != 0 {
		opts = append(opts, engine.WithMaxLifetime(pc.MaxLifetime))
	}
	if pc.FailFast {
		opts = append(opts, engine.WithFailFast())
	}
	return append(opts, pc.Options...)
}

// modelKey is the one key a model pool leases for: the simulated service
// identity.
var modelKey = engine.Key{Name: "sim"}

// modelTarget is a pool over a Model.
type modelTarget struct{ p *engine.Pool[*ModelConn] }

func (t *modelTarget) Lease(ctx context.Context) (Leased, error) {
	l, err := t.p.Lease(ctx, modelKey)
	if err != nil {
		return nil, err
	}
	return modelLease{l}, nil
}

func (t *modelTarget) Stats() engine.Stats             { return t.p.Stats() }
func (t *modelTarget) Close(ctx context.Context) error { return t.p.Close(ctx) }

type modelLease struct{ *lease.Lease[*ModelConn] }

func (l modelLease) Op(ctx context.Context) error { return l.Conn().Op(ctx) }
