package ldapconn_test

import (
	"slices"
	"testing"
	"time"

	"github.com/fairpool/ldappool/ldapconn"
	"github.com/fairpool/ldappool/ldaptest"
)

// openOn leases n connections at once and returns how many landed on each
// server, in the order of urls.
func openOn(t *testing.T, p *ldapconn.Pool, n int, urls ...string) []int {
	t.Helper()
	var leases []*ldapconn.Lease
	for range n {
		l, err := p.Lease(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		leases = append(leases, l)
	}
	counts := make([]int, len(urls))
	for _, l := range leases {
		counts[slices.Index(urls, l.Server())]++
		l.Release()
	}
	return counts
}

func TestStrategies(t *testing.T) {
	a, b := embedded(t).URL(), embedded(t).URL()
	tests := []struct {
		strategy ldapconn.Strategy
		want     []int
	}{
		{ldapconn.Failover, []int{4, 0}},
		{ldapconn.RoundRobin, []int{2, 2}},
		{ldapconn.FewestConnections, []int{2, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.strategy.String(), func(t *testing.T) {
			p := newPool(t, a+" "+b, admin, ldapconn.WithStrategy(tt.strategy),
				ldapconn.WithMaxDialing(1))
			if got := openOn(t, p, 4, a, b); !slices.Equal(got, tt.want) {
				t.Fatalf("connections per server = %v; want %v", got, tt.want)
			}
		})
	}
}

// Fewest connections fills the emptier server first, whatever the order.
func TestFewestConnectionsBalances(t *testing.T) {
	a, b := embedded(t).URL(), embedded(t).URL()
	p := newPool(t, a+","+b, admin, ldapconn.WithStrategy(ldapconn.FewestConnections),
		ldapconn.WithMaxDialing(1))
	held := []*ldapconn.Lease{}
	for range 3 {
		l, err := p.Lease(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, l)
	}
	s := p.Servers()
	if s[0].Open+s[1].Open != 3 || s[0].Open-s[1].Open > 1 || s[1].Open-s[0].Open > 1 {
		t.Fatalf("open per server %d and %d; want 3 spread evenly", s[0].Open, s[1].Open)
	}
	for _, l := range held {
		l.Release()
	}
}

// With the pool full of service connections, a lease for a user rebinds an
// idle one instead of waiting for a slot or dialing past the limit.
func TestFullPoolRebindsForAnotherIdentity(t *testing.T) {
	srv := embedded(t)
	p := newPool(t, srv.URL(), admin, ldapconn.WithMaxSize(1))
	if _, err := p.Search(t.Context(), searchUID("user1")); err != nil {
		t.Fatal(err)
	}
	user := ldapconn.Credentials{DN: ldaptest.UserDN(4), Password: ldaptest.UserPassword(4)}
	l, err := p.LeaseAs(t.Context(), user)
	if err != nil {
		t.Fatalf("LeaseAs on a full pool: %v", err)
	}
	l.Release()
	st := p.Stats()
	if st.Rebinds != 1 || st.Dials != 1 || srv.Stats().Accepted != 1 {
		t.Fatalf("rebinds %d, dials %d, server connections %d; want the one connection rebound", st.Rebinds, st.Dials, srv.Stats().Accepted)
	}
	if got := srv.BoundDNs(); !slices.Equal(got, []string{ldaptest.UserDN(4)}) {
		t.Fatalf("bound DNs = %v; want the connection bound as the user now", got)
	}
}

// retry_max: each server is tried that many times, retry delay apart,
// before the dial moves on.
func TestRetryTriesEachServer(t *testing.T) {
	srv := embedded(t)
	down := closedPort(t)
	const delay = 50 * time.Millisecond
	p := newPool(t, down+","+srv.URL(), admin, ldapconn.WithRetry(3, delay))
	start := time.Now()
	l, err := p.Lease(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	l.Release()
	if took := time.Since(start); took < 2*delay {
		t.Fatalf("the dial moved on after %v; want at least 2 retry delays on the down server", took)
	}
	if l.Server() != srv.URL() {
		t.Fatalf("leased on %s; want the second server", l.Server())
	}
}
