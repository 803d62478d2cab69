package ldapconn_test

// Tests written by porting services' code onto the pool: the figures an
// operator reads (Stats, and the metrics made from it) while nobody waits.

import (
	"testing"
)

// Stats().Waiters is "callers queued for a connection" (the metric
// db.client.connection.pending_requests, and errors.md's sign that a pool is
// too small). The hedge lane's own request for its standing-by connection,
// queued while that connection is dialed to a second server that does not
// answer, is no caller: with no call running, Waiters must be 0.
func TestAdoptingNoCallerWaitingMeansNoWaiters(t *testing.T) {
	primary := embedded(t)
	p := newPool(t, primary.URL()+","+blackhole(t), admin, quiet)
	if _, err := p.Search(contractCtx(t), searchUID("user1")); err != nil {
		t.Fatalf("Search: %v", err)
	}
	// The search made the pool open its hedge lane's connection, to the
	// second server (not the one it serves from): that dial hangs in its
	// bind.
	waitFor(t, "the hedge lane's dial", func() bool { return p.Stats().Dialing > 0 })
	s := p.Stats()
	if s.Waiters != 0 {
		t.Errorf("Stats().Waiters = %d with no call running; want 0\n%s", s.Waiters, p)
	}
	for key, ks := range s.Keys {
		if ks.Waiters != 0 {
			t.Errorf("Stats().Keys[%q].Waiters = %d with no call running; want 0", key, ks.Waiters)
		}
	}
	if s.InUse != 0 || s.InFlight != 0 {
		t.Errorf("Stats() = in use %d, in flight %d with no call running; want 0 and 0", s.InUse, s.InFlight)
	}
}
