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
	done    atomic.Bool
	watched bool // New set a finalizer that reports a drop; NewScoped did not
	taint   atomic.Pointer[error]
	handle  any
	ret     Returner
	log     *slog.Logger
	leak    *leakWatch // nil without leak detection
}

// leakWatch reports a lease held past the leak threshold. It is apart from
// the Lease so that its timer does not keep a dropped Lease reachable.
type leakWatch struct {
	mu      sync.Mutex
	stopped bool // the lease came back: no report
	timer   *time.Timer
	key     string
	stack   []byte // where the lease was taken
	log     *slog.Logger
}

// NewScoped is New for a lease that the pool's own code holds and gives
// back on every path, as a Do does around its function: nobody can drop
// it, so it is not watched for drops, and it costs one allocation and no
// finalizer. Leak detection (cfg.LeakAt) still applies.
func NewScoped[C any](conn C, cfg *Config, handle any, info Info) *Lease[C] {
	return newLease(conn, cfg, handle, info)
}

func newLease[C any](conn C, cfg *Config, handle any, info Info) *Lease[C] {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	l := &Lease[C]{conn: conn, info: info, handle: handle, ret: cfg.Returner, log: log}
	if cfg.LeakAt > 0 {
		w := &leakWatch{key: info.Key, stack: stack(), log: log}
		w.mu.Lock()
		w.timer = time.AfterFunc(cfg.LeakAt, w.report)
		w.mu.Unlock()
		l.leak = w
	}
	return l
}

// New makes a lease of conn. cfg.Returner.Return(handle, ...) is called once
// when the lease is released, discarded or dropped.
func New[C any](conn C, cfg *Config, handle any, info Info) *Lease[C] {
	l := newLease(conn, cfg, handle, info)
	// Reporting a dropped lease costs a finalizer, set here and cleared by
	// Release or Discard (about 0.15 µs a lease, and no allocation); a lost
	// slot costs a pool for good. A finalizer rather than runtime.AddCleanup:
	// a cleanup must not reach the Lease, so it needs the lease's state in an
	// object of its own, and makes two allocations of its own besides (about
	// 0.3 µs in all, measured on 2 cores).
	l.watched = true
	runtime.SetFinalizer(l, finalize)
	return l
}

// finalize is the finalizer of every lease of New. It takes any, rather than
// being (*Lease[C]).dropped, whose method value allocates for each lease.
func finalize(l any) { l.(interface{ dropped() }).dropped() }

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
func (l *Lease[C]) Done() bool { return l.done.Load() }

// Taint records that the holder changed the connection's state, so that
// Release closes it instead of pooling it. The first reason is kept.
func (l *Lease[C]) Taint(reason error) {
	if reason == nil {
		reason = errors.New("lease: connection state changed by its holder")
	}
	l.taint.CompareAndSwap(nil, &reason)
}

// Tainted returns the reason given to Taint, or nil.
func (l *Lease[C]) Tainted() error {
	if p := l.taint.Load(); p != nil {
		return *p
	}
	return nil
}

// Release gives the connection back to the pool for reuse, or closes it if
// the lease was tainted. Calls after the first Release or Discard do nothing.
func (l *Lease[C]) Release() {
	if l.finish(l.Tainted()) && l.watched {
		runtime.SetFinalizer(l, nil)
	}
}

// Discard tells the pool the connection must not be reused (err says why; nil
// means ErrDiscarded) and the pool closes it. Calls after the first Release or
// Discard do nothing.
func (l *Lease[C]) Discard(err error) {
	if err == nil {
		err = ErrDiscarded
	}
	if l.finish(err) && l.watched {
		runtime.SetFinalizer(l, nil)
	}
}

// String describes the lease without its connection.
func (l *Lease[C]) String() string {
	return fmt.Sprintf("lease of %s since %s", l.info.Key, l.info.LeasedAt.Format(time.RFC3339Nano))
}

// finish returns the connection once and reports whether this call did.
func (l *Lease[C]) finish(err error) bool {
	if !l.done.CompareAndSwap(false, true) {
		return false
	}
	if w := l.leak; w != nil {
		w.mu.Lock()
		w.stopped = true
		w.timer.Stop()
		w.mu.Unlock()
	}
	l.ret.Return(l.handle, err)
	return true
}

func (w *leakWatch) report() {
	w.mu.Lock()
	stopped := w.stopped
	w.mu.Unlock()
	if stopped {
		return
	}
	w.log.Warn("lease held past the leak threshold", "key", w.key, "leased_at", string(w.stack))
}

// dropped is the finalizer of a lease of New: it runs once the lease is
// unreachable, and reports it and returns its connection. A released lease
// has none (Release clears it); done is checked all the same.
func (l *Lease[C]) dropped() {
	if l.done.Load() {
		return
	}
	attrs := []any{"key", l.info.Key}
	if l.leak != nil {
		attrs = append(attrs, "leased_at", string(l.leak.stack))
	}
	l.log.Error("lease dropped without Release or Discard; its connection is discarded", attrs...)
	l.finish(ErrDropped)
}
