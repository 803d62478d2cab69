// Package lease is what a caller of a pool holds: one connection, the key it
// is bound for, when it was leased, and the way back to the pool.
//
// [Lease.Release] and [Lease.Discard] may each be called more than once and
// from any goroutine; only the first call of either takes effect, so
//
//	l, err := pool.Lease(ctx, key)
//	if err != nil { ... }
//	defer l.Release()
//
// is safe even when the code in between calls Discard. A lease that changed
// its connection's state (the caller bound as someone else, started TLS)
// is marked with [Lease.Taint], and its Release discards the connection instead
// of pooling it. A lease held past a threshold is logged with the stack that
// leased it; a lease dropped without being released is logged when the garbage
// collector finds it, and its connection is discarded so the pool's slot is
// not lost.
package lease

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

var (
	// ErrDiscarded is what the pool is told when Discard is called with a
	// nil error.
	ErrDiscarded = errors.New("lease: connection discarded by its holder")
	// ErrDropped is what the pool is told when a lease became unreachable
	// without being released.
	ErrDropped = errors.New("lease: dropped without Release or Discard")
)

// Returner takes a lease's connection back; the pool implements it.
type Returner interface {
	// Return is called exactly once per lease, with the handle the lease was
	// made with: err is nil for Release and says why for Discard.
	Return(handle any, err error)
}

// Config is what every lease of one pool shares: made once per pool.
type Config struct {
	Returner Returner      // takes the connections back
	Logger   *slog.Logger  // where leaks are reported; nil: slog.Default()
	LeakAt   time.Duration // log a lease still held this long after LeasedAt; 0: never
}

// Info describes one lease when it is made.
type Info struct {
	Key      string    // the key's printable name (never a secret)
	LeasedAt time.Time // when the pool handed the connection out
	Reused   bool      // the connection served an earlier lease
	Shared   bool      // a share: other leases may hold the connection at the same time
}

// Lease is one connection lent by a pool. Its methods are safe for
// concurrent use.
type Lease[C any] struct {
	conn    C
	info    Info
	s       *state // shared with the drop cleanup, which must not reach the Lease
	cleanup runtime.Cleanup
}

// state is what outlives the Lease for the cleanup that reports a drop.
type state struct {
	done   atomic.Bool
	taint  atomic.Pointer[error]
	handle any
	ret    Returner
	key    string
	stack  []byte // where the lease was taken; only with leak detection
	log    *slog.Logger
	leakMu sync.Mutex
	leak   *time.Timer
}

// NewScoped is New for a lease that the pool's own code holds and gives
// back on every path, as a Do does around its function: nobody can drop
// it, so it is not watched for drops, and it costs one allocation instead
// of four. Leak detection (cfg.LeakAt) still applies.
func NewScoped[C any](conn C, cfg *Config, handle any, info Info) *Lease[C] {
	b := &struct {
		l Lease[C]
		s state
	}{}
	b.s = state{handle: handle, ret: cfg.Returner, key: info.Key, log: cfg.Logger}
	if b.s.log == nil {
		b.s.log = slog.Default()
	}
	b.l = Lease[C]{conn: conn, info: info, s: &b.s}
	if cfg.LeakAt > 0 {
		b.s.watchLeak(cfg.LeakAt)
	}
	return &b.l
}

// watchLeak arms the report of a lease held past at.
func (s *state) watchLeak(at time.Duration) {
	s.stack = stack()
	s.leakMu.Lock()
	s.leak = time.AfterFunc(at, s.reportHeld)
	s.leakMu.Unlock()
}

// New makes a lease of conn. cfg.Returner.Return(handle, ...) is called once
// when the lease is released, discarded or dropped.
func New[C any](conn C, cfg *Config, handle any, info Info) *Lease[C] {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	s := &state{handle: handle, ret: cfg.Returner, key: info.Key, log: log}
	l := &Lease[C]{conn: conn, info: info, s: s}
	if cfg.LeakAt > 0 {
		s.watchLeak(cfg.LeakAt)
	}
	// Reporting a dropped lease costs about half a microsecond a lease (two
	// allocations and a runtime lock); a lost slot costs a pool for good.
	l.cleanup = runtime.AddCleanup(l, (*state).dropped, s)
	return l
}

func stack() []byte {
	buf := make([]byte, 4096)
	return buf[:runtime.Stack(buf, false)]
}

// Conn returns the leased connection. It must not be used after Release or
// Discard.
func (l *Lease[C]) Conn() C { return l.conn }

// Key returns the printable name of the key the connection is bound for.
func (l *Lease[C]) Key() string { return l.info.Key }

// LeasedAt returns when the pool handed the connection out.
func (l *Lease[C]) LeasedAt() time.Time { return l.info.LeasedAt }

// Reused reports whether the connection served an earlier lease, as opposed
// to being dialed for this one. A broken reused connection is worth one retry
// on a fresh one; a broken fresh one is not.
func (l *Lease[C]) Reused() bool { return l.info.Reused }

// Shared reports whether the lease is a share of a connection that other
// leases may hold at the same time, as the pool decided it (its depth above
// 1 and a share asked for): its holder must not change the connection's
// state for the others.
func (l *Lease[C]) Shared() bool { return l.info.Shared }

// Done reports whether Release or Discard has been called.
func (l *Lease[C]) Done() bool { return l.s.done.Load() }

// Taint records that the holder changed the connection's state, so that
// Release closes it instead of pooling it. The first reason is kept.
func (l *Lease[C]) Taint(reason error) {
	if reason == nil {
		reason = errors.New("lease: connection state changed by its holder")
	}
	l.s.taint.CompareAndSwap(nil, &reason)
}

// Tainted returns the reason given to Taint, or nil.
func (l *Lease[C]) Tainted() error {
	if p := l.s.taint.Load(); p != nil {
		return *p
	}
	return nil
}

// Release gives the connection back to the pool for reuse, or closes it if
// the lease was tainted. Calls after the first Release or Discard do nothing.
func (l *Lease[C]) Release() {
	if l.s.finish(l.Tainted()) {
		l.cleanup.Stop()
	}
}

// Discard tells the pool the connection must not be reused (err says why; nil
// means ErrDiscarded) and the pool closes it. Calls after the first Release or
// Discard do nothing.
func (l *Lease[C]) Discard(err error) {
	if err == nil {
		err = ErrDiscarded
	}
	if l.s.finish(err) {
		l.cleanup.Stop()
	}
}

// String describes the lease without its connection.
func (l *Lease[C]) String() string {
	return fmt.Sprintf("lease of %s since %s", l.info.Key, l.info.LeasedAt.Format(time.RFC3339Nano))
}

// finish returns the connection once and reports whether this call did.
func (s *state) finish(err error) bool {
	if !s.done.CompareAndSwap(false, true) {
		return false
	}
	s.leakMu.Lock()
	if s.leak != nil {
		s.leak.Stop()
	}
	s.leakMu.Unlock()
	s.ret.Return(s.handle, err)
	return true
}

func (s *state) reportHeld() {
	if s.done.Load() {
		return
	}
	s.log.Warn("lease held past the leak threshold", "key", s.key, "leased_at", string(s.stack))
}

func (s *state) dropped() {
	if s.done.Load() {
		return
	}
	attrs := []any{"key", s.key}
	if s.stack != nil {
		attrs = append(attrs, "leased_at", string(s.stack))
	}
	s.log.Error("lease dropped without Release or Discard; its connection is discarded", attrs...)
	s.finish(ErrDropped)
}
