package ldapconn

import (
	"context"
	"sync"

	"github.com/go-ldap/ldap/v3"
)

// stream is a streaming call's response (SearchAsync, DirSyncAsync,
// Syncrepl) holding a use of its lease until go-ldap's response is drained:
// by the caller's Next, or by the stream itself once the call's context
// ends. Until then a released lease's connection is lent to nobody else.
//
// The use ends only when go-ldap's response is drained because that is when
// go-ldap's goroutine is done with the connection (it closes the response's
// channel last). Ending it as soon as the context ends would let that
// goroutine still send the request on a connection given to someone else.
type stream struct {
	l *Lease

	// mu serialises the caller's Next with the drain that follows the end
	// of the context, and guards every field below.
	mu       sync.Mutex
	resp     ldap.Response // go-ldap's
	stop     func() bool   // unregisters the context watcher
	entry    *ldap.Entry   // the caller's view, set by Next
	referral string
	controls []ldap.Control
	err      error
	ended    bool   // resp is drained and the use ended
	before   int64  // the connection's last message ID before the call: the call's is the next one written
	cancel   func() // ends the stream's own context once it is drained
}

// stream starts a streaming call inside a use of the lease, or returns a
// response that fails with ErrLeaseReleased if the lease is released.
func (c *client) stream(ctx context.Context, name string, start func(context.Context, *ldap.Conn) ldap.Response) ldap.Response {
	if !c.l.startUse() {
		return releasedResponse{released(name)}
	}
	c.l.use.stream(+1)
	conn := c.l.inner.Conn()
	// The stream's context ends with the caller's, and also when the pool
	// closes the connection (a forced Close, a Discard): go-ldap's goroutine
	// then stops too, even for a caller whose context never ends.
	sctx, cancel := context.WithCancel(ctx)
	unlink := context.AfterFunc(conn.life, cancel)
	before := conn.wire.lastID.Load()
	s := &stream{l: c.l, resp: start(sctx, conn.ldap), before: before, cancel: func() { unlink(); cancel() }}
	s.mu.Lock() // the watcher may run at once; it waits for stop to be set
	// context.AfterFunc starts no goroutine until sctx ends, and stop
	// unregisters it when the caller drains the stream first.
	s.stop = context.AfterFunc(sctx, s.drain)
	s.mu.Unlock()
	return s
}

// Next returns whether there is a next result, ending the stream's use when
// there is none.
func (s *stream) Next() bool {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return false
	}
	if s.resp.Next() {
		s.entry, s.referral, s.controls = s.resp.Entry(), s.resp.Referral(), s.resp.Controls()
		s.mu.Unlock()
		return true
	}
	s.stop()
	s.finish()
	s.mu.Unlock()
	s.l.use.stream(-1)
	s.l.endUse()
	return false
}

// drain runs when the call's context ends: go-ldap then stops at once, and
// what it had left is dropped.
func (s *stream) drain() {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return
	}
	for s.resp.Next() {
	}
	// go-ldap stopped reading: ask the server to stop sending.
	if w := s.l.inner.Conn().wire; w.lastID.Load() != s.before {
		w.abandon(w.lastID.Load())
	}
	s.finish()
	s.mu.Unlock()
	s.l.use.stream(-1)
	s.l.endUse()
}

// finish records the end of a drained response; s.mu is held. The error is
// observed now, while the connection is still the lease's.
func (s *stream) finish() {
	s.ended = true
	err := s.resp.Err()
	if err == nil && s.l.inner.Conn().life.Err() != nil {
		// go-ldap stops without an error when its context ends; here that
		// was the pool closing the connection under the stream.
		err = errConnClosed
	}
	s.err = s.l.observe(err)
	s.cancel()
}

func (s *stream) Entry() *ldap.Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.entry
}

func (s *stream) Referral() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.referral
}

func (s *stream) Controls() []ldap.Control {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.controls
}

func (s *stream) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return s.err
	}
	return s.resp.Err()
}

// releasedResponse is what a streaming call on a released lease returns.
type releasedResponse struct{ err error }

func (r releasedResponse) Entry() *ldap.Entry       { return nil }
func (r releasedResponse) Referral() string         { return "" }
func (r releasedResponse) Controls() []ldap.Control { return nil }
func (r releasedResponse) Err() error               { return r.err }
func (r releasedResponse) Next() bool               { return false }
