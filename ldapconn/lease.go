package ldapconn

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/go-ldap/ldap/v3"

	"github.com/fairpool/ldappool/engine"
	"github.com/fairpool/ldappool/lease"
)

// Lease is one pooled LDAP connection lent to a caller, bound as the
// identity it was leased for. Release it when done; Release and Discard may
// be called more than once.
type Lease struct {
	inner *lease.Lease[*Conn]
	pool  *Pool
	ctx   context.Context // the context operations run under
	who   *identity       // the identity the pool bound it as; a pointer, so that a Lease value printed field by field shows no password

	shared  bool        // a share of a connection other operations run on at once (WithOpsPerConn)
	use     uses        // the calls running on the connection; see inflight.go
	rebound atomic.Bool // the caller bound as someone else: revert on release
	wrote   atomic.Bool // a write (Add, Modify, ..., Extended) was sent: Do must not run fn again
	refused atomic.Bool // SetTimeout was called on a share: its next operations fail
	once    sync.Once

	streamMu sync.Mutex
	streams  []*stream // the streams started on it, for endDo to end on a share

	client client // what Client returns: made with the lease, not a call
}

func newLease(inner *lease.Lease[*Conn], p *Pool, ctx context.Context, who identity, shared bool) *Lease {
	b := &struct { // one allocation for the lease and its identity
		l   Lease
		who identity
	}{who: who}
	b.l = Lease{inner: inner, pool: p, ctx: ctx, who: &b.who, shared: shared}
	b.l.client.l = &b.l
	return &b.l
}

// addStream records a stream started on the lease.
func (l *Lease) addStream(s *stream) {
	l.streamMu.Lock()
	l.streams = append(l.streams, s)
	l.streamMu.Unlock()
}

// cutStreams ends every stream started on the lease that still runs: each
// then drains, is abandoned at the server, ends its use, and its Err says
// that Do's function returned first.
func (l *Lease) cutStreams() {
	l.streamMu.Lock()
	streams := l.streams
	l.streams = nil
	l.streamMu.Unlock()
	for _, s := range streams {
		s.cut.Store(true)
		s.cancel()
	}
}

// Client returns the connection as go-ldap's ldap.Client, so code written
// against go-ldap runs on it. Each operation runs under the context the
// lease was taken with: when it ends the call returns the context's error at
// once, and costs no connection: a search is abandoned at the server (an
// LDAP Abandon) and the connection stays pooled; another operation keeps the
// connection out of the pool until it ends (within the operation timeout),
// and Release gives it back then. After Release or Discard every call fails
// with ErrLeaseReleased without touching the connection.
// Bind, StartTLS, Unbind and Close change the connection's state: a
// connection bound as someone else is bound back to the pool's identity on
// release, and one whose TLS state changed or that was unbound or closed is
// discarded, never pooled.
func (l *Lease) Client() ldap.Client { return &l.client }

// Server returns the URI of the server the connection is open to.
func (l *Lease) Server() string { return l.pool.health.servers[l.inner.Conn().server].URL }

// Key returns the printable name of the lease's identity (DN#tag); it never
// reveals the password.
func (l *Lease) Key() string { return l.inner.Key() }

// Release gives the connection back for reuse, first binding it back to the
// pool's identity if the caller bound as someone else; a connection that
// cannot be bound back, or whose state was changed otherwise, is closed.
// Release returns at once; the Client fails every later call with
// ErrLeaseReleased. An operation or stream still running keeps the
// connection until it ends, and the connection goes back then. A stream
// left undrained and dropped, with its lease, is found by the garbage
// collector as a lease dropped without Release is: its connection is
// closed, and the pool's slot comes back.
func (l *Lease) Release() {
	if l.use.release() {
		l.giveBack()
	}
}

// giveBack settles the connection and returns it to the pool, which
// decides whether to keep it (WithNoPool is the engine's WithMaxIdle(0)).
func (l *Lease) giveBack() {
	l.settle()
	l.inner.Release()
}

// Discard closes the connection instead of pooling it, under any operation
// or stream still running on it; err says why.
func (l *Lease) Discard(err error) {
	l.use.discard()
	l.inner.Discard(err)
}

// settle makes the connection fit to pool, or taints it so that the pool
// closes it. It runs once.
func (l *Lease) settle() {
	l.once.Do(func() {
		if l.inner.Done() || l.inner.Tainted() != nil || !l.rebound.Load() {
			return
		}
		conn := l.inner.Conn()
		conn.ldap.SetTimeout(l.pool.cfg.opTimeout)
		ctx, cancel := context.WithTimeout(context.WithoutCancel(l.ctx), l.pool.cfg.opTimeout)
		defer cancel()
		if err := withContext(ctx, conn, func() error { return (*l.who).bindTo(ctx, conn.ldap) }); err != nil {
			l.inner.Taint(err)
		}
	})
}

// broken reports whether an operation found the connection unusable: the
// lease's taint says so (a caller's StartTLS or Unbind taints it too, but
// not as broken).
func (l *Lease) broken() bool { return IsBroken(l.inner.Tainted()) }

// observe counts an operation against its server and returns its error
// classified (an operation timeout matches context.DeadlineExceeded): a broken connection is
// tainted so that it is never pooled, and a server that timed out or said it
// is busy is probed (see Pool.suspect).
func (l *Lease) observe(err error) error {
	conn := l.inner.Conn()
	l.pool.health.operation(conn.server, err)
	if err == nil {
		return nil
	}
	err = classify(err)
	// go-ldap reports some read failures as plain errors; a connection it
	// is closing is broken whatever the error says.
	if l.pool.conn.Broken(conn, err) {
		if !IsBroken(err) { // a plain read error on a connection go-ldap is closing
			err = fmt.Errorf("%w: %w", engine.ErrBroken, err)
		}
		l.inner.Taint(err)
	}
	if opCountsAgainstServer(err) {
		l.pool.suspect(conn.server, err)
	}
	return err
}
