package ldaptest

import (
	"sync/atomic"
	"time"
)

// WithLatency delays every bind, search and compare by latency() before the
// server answers it. latency is called once per operation, concurrently, so
// it must be safe for concurrent use. SetLatency replaces it.
func WithLatency(latency func() time.Duration) Option {
	return func(o *config) { o.latency = latency }
}

// WithMaxConnections makes the server close at once, unanswered, every
// client connection accepted while n are open. n <= 0 means no limit.
func WithMaxConnections(n int) Option { return func(o *config) { o.maxConns = n } }

// SetLatency makes every later bind, search and compare wait d before the
// server answers it, replacing any WithLatency function; 0 removes the delay.
// Operations already waiting keep their delay.
func (s *Server) SetLatency(d time.Duration) {
	if d <= 0 {
		s.latency.Store(nil)
		return
	}
	f := func() time.Duration { return d }
	s.latency.Store(&f)
}

// Stats counts what a Server has done since it started.
type Stats struct {
	Accepted int64 // client connections accepted and served
	Open     int64 // client connections open now
	Refused  int64 // client connections closed at once by WithMaxConnections
	Dropped  int64 // client connections closed by DropConnections
	Binds    int64 // bind requests, whatever their result
	Searches int64 // search requests, whatever their result
	Compares int64 // compare requests, whatever their result
	Abandons int64 // abandon requests (RFC 4511 4.11): a client gave up on an operation
}

type counters struct {
	accepted, open, refused, dropped, binds, searches, compares, abandons atomic.Int64
}

// Stats returns the server's counters. Each is read atomically, the set is
// not a snapshot: it may be mid-update while connections come and go.
func (s *Server) Stats() Stats {
	c := &s.stats
	return Stats{
		Accepted: c.accepted.Load(),
		Open:     c.open.Load(),
		Refused:  c.refused.Load(),
		Dropped:  c.dropped.Load(),
		Binds:    c.binds.Load(),
		Searches: c.searches.Load(),
		Compares: c.compares.Load(),
		Abandons: c.abandons.Load(),
	}
}

// DropConnections closes every client connection open now, without an LDAP
// notice of disconnection, as a server restart or a firewall cutting idle
// connections would: each client's next operation fails with a network
// error. The server goes on accepting new connections. It returns how many
// connections it closed.
func (s *Server) DropConnections() int {
	s.mu.Lock()
	conns := make([]*proxyConn, 0, len(s.conns))
	for pc := range s.conns {
		conns = append(conns, pc)
	}
	s.mu.Unlock()
	n := 0
	for _, pc := range conns {
		if pc.close() {
			n++
		}
	}
	s.stats.dropped.Add(int64(n))
	return n
}

// delay waits the current latency. It returns false if the server is
// closing, and the operation should then not be answered.
func (s *Server) delay() bool {
	f := s.latency.Load()
	if f == nil {
		return true
	}
	return s.wait((*f)())
}

// wait waits d, or until the server is closing, and then returns false.
func (s *Server) wait(d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.done:
		return false
	}
}
