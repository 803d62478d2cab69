package ldapconn

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"weak"

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
	l    *Lease
	ctx  context.Context // the caller's: a stream it ends before the response is done ends with its error
	name string

	// mu serialises the caller's Next with the drain that follows the end
	// of the context, and guards every field below.
	mu       sync.Mutex
	resp     ldap.Response // go-ldap's
	stop     func() bool   // unregisters the context watcher
	entry    *ldap.Entry   // the caller's view, set by Next
	referral string
	controls []ldap.Control
	err      error
	ended    bool        // resp is drained and the use ended
	claim    *claim      // the call's request's message ID (see wireConn)
	cancel   func()      // ends the stream's own context once it is drained
	cut      atomic.Bool // ended by Do's return on a share (see Lease.endDo)
}

// stream starts a streaming call inside a use of the lease, or returns a
// response that fails with ErrLeaseReleased if the lease is released.
func (c *client) stream(ctx context.Context, name string, r *ldap.SearchRequest, start func(context.Context, *ldap.Conn) ldap.Response) ldap.Response {
	if err := badSearch(name, r); err != nil {
		return releasedResponse{err}
	}
	if err := c.begin(name); err != nil {
		return releasedResponse{err}
	}
	// A filter go-ldap cannot encode is never written: say so now, before
	// the call claims the connection's next request (see wireConn).
	if _, err := ldap.CompileFilter(r.Filter); err != nil {
		c.l.endUse()
		return releasedResponse{err}
	}
	conn := c.l.inner.Conn()
	if conn.ldap.IsClosing() { // go-ldap would end the stream without writing it, or an error
		err := c.l.observe(errConnClosed)
		c.l.endUse()
		return releasedResponse{err}
	}
	cl, err := conn.wire.claimNext(ctx, conn.life.Done())
	if err != nil {
		c.l.endUse()
		return releasedResponse{fmt.Errorf("ldapconn: %s not started: %w", name, err)}
	}
	c.l.use.stream(+1)
	// The stream's context ends with the caller's, and also when the pool
	// closes the connection (a forced Close, a Discard): go-ldap's goroutine
	// then stops too, even for a caller whose context never ends.
	sctx, cancel := context.WithCancel(ctx)
	unlink := context.AfterFunc(conn.life, cancel)
	resp := start(sctx, conn.ldap)
	if c.l.shared {
		// go-ldap hands each response over unbuffered from the one
		// goroutine that reads the whole connection: on a shared
		// connection a slow reader would hold up every other operation.
		// The pump also settles the claim as soon as go-ldap is done with
		// the request, written or not, so that no other operation on the
		// connection waits for this stream's reader.
		resp = newPump(resp, func() {
			if sctx.Err() != nil {
				// Ended as it started: the request may be on its way to
				// the socket still (see settleSent).
				conn.wire.settleSent(cl, conn.ldap.IsClosing)
				return
			}
			conn.wire.settle(cl)
		})
	}
	s := &stream{l: c.l, ctx: ctx, name: name, resp: resp, claim: cl, cancel: func() { unlink(); cancel() }}
	c.l.addStream(s)
	s.mu.Lock() // the watcher may run at once; it waits for stop to be set
	// context.AfterFunc starts no goroutine until sctx ends, and stop
	// unregisters it when the caller drains the stream first. The watcher
	// holds the stream weakly: go-ldap's goroutine holds sctx, and through
	// it a strong hold would keep the stream, its lease too, reachable for
	// as long as the stream is undrained, and a lease dropped with a stream
	// open would never be found by the garbage collector, nor its slot
	// given back. Once the stream is gone, the watcher drains go-ldap's
	// response alone, so that its goroutine ends.
	weakS, w := weak.Make(s), conn.wire
	s.stop = context.AfterFunc(sctx, func() {
		if s := weakS.Value(); s != nil {
			s.drain()
			return
		}
		for resp.Next() {
		}
		w.settle(cl)
	})
	s.mu.Unlock()
	return s
}

// Next returns whether there is a next result, ending the stream's use when
// there is none.
func (s *stream) Next() bool {
	if s.cut.Load() {
		// Do's function returned with the stream open on a share: what
		// the pump holds is dropped, and Err says why.
		s.drain()
		return false
	}
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
	if conn := s.l.inner.Conn(); conn.wire.settleSent(s.claim, conn.ldap.IsClosing) > 0 {
		w := conn.wire
		w.abandon(s.claim.id.Load())
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
	conn := s.l.inner.Conn()
	id := conn.wire.settle(s.claim)
	err := s.resp.Err()
	switch {
	case err != nil:
	case conn.life.Err() != nil:
		// go-ldap stops without an error when its context ends; here that
		// was the pool closing the connection under the stream.
		err = errConnClosed
	case s.claim != nil && id == 0 && s.ctx.Err() == nil && !s.cut.Load() && !conn.ldap.IsClosing():
		s.err = unsent(s.name, conn.ldap) // nothing sent: not the connection's fault
		s.cancel()
		return
	}
	s.err = s.l.observe(err)
	switch {
	case s.err != nil:
	case s.cut.Load():
		s.err = errOutlivedDo
	case s.ctx.Err() != nil:
		// go-ldap stops without an error when its context ends too: the
		// caller's context ended the stream, whose entries may be cut
		// short, so say so, as Search does.
		s.err = fmt.Errorf("ldapconn: %s abandoned: %w", s.name, s.ctx.Err())
	}
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

// releasedResponse is what a streaming call on a released lease (or a
// share that refuses it) returns.
type releasedResponse struct{ err error }

func (r releasedResponse) Entry() *ldap.Entry       { return nil }
func (r releasedResponse) Referral() string         { return "" }
func (r releasedResponse) Controls() []ldap.Control { return nil }
func (r releasedResponse) Err() error               { return r.err }
func (r releasedResponse) Next() bool               { return false }

// pump reads a go-ldap response as fast as the connection delivers it into
// a queue its reader takes from at its own pace: on a shared connection,
// one slow reader of a stream then holds up nobody else. Its goroutine ends
// with go-ldap's response (the search done, its context ended, or the
// connection closed), read or not.
type pump struct {
	mu      sync.Mutex
	queue   []pumped
	done    bool
	err     error
	ready   chan struct{} // capacity 1: something was queued, or the response ended
	current pumped
}

type pumped struct {
	entry    *ldap.Entry
	referral string
	controls []ldap.Control
}

func newPump(resp ldap.Response, ended func()) *pump {
	p := &pump{ready: make(chan struct{}, 1)}
	go p.run(resp, ended)
	return p
}

func (p *pump) run(resp ldap.Response, ended func()) {
	defer ended()
	for resp.Next() {
		p.mu.Lock()
		p.queue = append(p.queue, pumped{resp.Entry(), resp.Referral(), resp.Controls()})
		p.mu.Unlock()
		p.signal()
	}
	p.mu.Lock()
	p.done, p.err = true, resp.Err()
	p.mu.Unlock()
	p.signal()
}

func (p *pump) signal() {
	select {
	case p.ready <- struct{}{}:
	default:
	}
}

func (p *pump) Next() bool {
	for {
		p.mu.Lock()
		if len(p.queue) > 0 {
			p.current = p.queue[0]
			p.queue[0] = pumped{}
			p.queue = p.queue[1:]
			p.mu.Unlock()
			return true
		}
		if p.done {
			p.mu.Unlock()
			return false
		}
		p.mu.Unlock()
		<-p.ready
	}
}

func (p *pump) Entry() *ldap.Entry       { return p.current.entry }
func (p *pump) Referral() string         { return p.current.referral }
func (p *pump) Controls() []ldap.Control { return p.current.controls }

func (p *pump) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}
