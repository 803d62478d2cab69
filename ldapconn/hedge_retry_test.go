package ldapconn

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/fairpool/ldappool/ldaptest"
)

// The pool moved off a slowed primary (marked slow, the hedge lane standing
// by there); the primary recovers and the secondary slows (100 ms, under the
// stall floor). 16 reads caught on the secondary are each hedged to the
// primary: the lane sends one hedge at a time to a server marked slow, and
// the reads whose hedges it turned away look again after half their delay
// (hedgeRetries), by when the first hedge has won and lifted the mark. (Found
// by a review: a refused hedge was never tried again, and those reads waited
// out the slow secondary.)
func TestARefusedHedgeIsTriedAgain(t *testing.T) {
	const maxRetryTestDelay = 20 * time.Millisecond
	for _, tc := range []struct {
		name   string
		marked bool // leave the primary marked slow, as the move left it
	}{{"primary unmarked (control)", false}, {"primary still marked", true}} {
		t.Run(tc.name, func(t *testing.T) {
			primary, err := ldaptest.NewServer()
			if err != nil {
				t.Fatal(err)
			}
			defer primary.Close()
			secondary, err := ldaptest.NewServer()
			if err != nil {
				t.Fatal(err)
			}
			defer secondary.Close()
			p, err := NewPool(primary.URL()+","+secondary.URL(), WithBind(ldaptest.AdminDN, ldaptest.AdminPassword), WithMaxSize(4))
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				p.Close(ctx)
			}()
			search := func(uid string) *ldap.SearchRequest {
				return ldap.NewSearchRequest(ldaptest.PeopleDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
					0, 0, false, "(uid="+uid+")", []string{"cn"}, nil)
			}
			load := func() {
				var wg sync.WaitGroup
				for c := range 16 {
					wg.Go(func() {
						for i := range 20 {
							if _, err := p.Search(t.Context(), search(fmt.Sprint("user", c*20+i))); err != nil {
								t.Error(err)
							}
						}
					})
				}
				wg.Wait()
			}
			load()
			primary.SetLatency(50 * time.Millisecond)
			// Slow the primary until the pool has moved off it: the primary
			// marked slow, the service pool serving from the secondary and
			// the hedge lane standing by at the primary.
			moved := func() bool {
				return p.health.markedSlow(0, time.Now()) && p.health.servingFrom() == 1 && p.lane.on.Load() == 1
			}
			for deadline := time.Now().Add(10 * time.Second); !moved() && time.Now().Before(deadline); {
				load()
				p.keepStandby()
			}
			if !moved() {
				t.Skipf("the pool did not move off the slowed primary (lane on=%d, serving from %d): %+v", p.lane.on.Load(), p.health.servingFrom(), p.Servers())
			}
			// The reads' hedges go after the secondary's hedge delay, and a
			// refused one looks again after half of it: the slowdown must
			// outlast a few delays for the test to tell a retried hedge from
			// none. Under a loaded machine's answer times it may not.
			if after := p.health.hedgeAfter(1); after > maxRetryTestDelay {
				t.Skipf("the secondary's hedge delay is %v (a loaded machine): over %v, a retried hedge cannot beat its 100 ms slowdown by a margin", after, maxRetryTestDelay)
			}
			primary.SetLatency(0)
			secondary.SetLatency(100 * time.Millisecond)
			if !tc.marked {
				p.health.activity[0].slowUntil.Store(0)
			}
			p.moves.milli.Store(p.moves.most) // the budget is not what stops a hedge here
			hedged0 := p.health.activity[1].hedged.Load()
			var (
				wg   sync.WaitGroup
				mu   sync.Mutex
				took []time.Duration
			)
			for c := range 16 {
				wg.Go(func() {
					start := time.Now()
					if _, err := p.Search(t.Context(), search(fmt.Sprint("user", c))); err != nil {
						t.Error(err)
					}
					mu.Lock()
					took = append(took, time.Since(start))
					mu.Unlock()
				})
			}
			wg.Wait()
			slow := 0
			for _, d := range took {
				if d >= 90*time.Millisecond {
					slow++
				}
			}
			t.Logf("hedge delay on the secondary %v; reads hedged %d; took %v", p.health.hedgeAfter(1), p.health.activity[1].hedged.Load()-hedged0, took)
			if slow > 0 {
				t.Fatalf("%d of 16 reads waited out the slowed secondary (100 ms) unhedged, the recovered primary a hedge away", slow)
			}
		})
	}
}

// A read still unanswered past its server's stall time is hedged whatever
// the budget: here the budget is spent and the primary holds one search for
// 2 s (the server answers everything else, a probe included). The read is
// answered by its hedge on the secondary soon after the stall time (150 ms
// here), not after the 2 s; with the budget's word final it would wait them
// out.
func TestAReadPastTheStallTimeIsHedgedWithoutBudget(t *testing.T) {
	var slowOne atomic.Bool
	primary, err := ldaptest.NewServer(ldaptest.WithLatency(func() time.Duration {
		if slowOne.CompareAndSwap(true, false) {
			return 2 * time.Second
		}
		return 0
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer primary.Close()
	secondary, err := ldaptest.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	defer secondary.Close()
	p, err := NewPool(primary.URL()+","+secondary.URL(), WithBind(ldaptest.AdminDN, ldaptest.AdminPassword), WithMaxSize(3))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		p.Close(ctx)
	}()
	search := ldap.NewSearchRequest(ldaptest.PeopleDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
		0, 0, false, "(uid=user1)", []string{"cn"}, nil)
	for range 200 { // the primary's answer times, so that reads are hedged
		if _, err := p.Search(t.Context(), search); err != nil {
			t.Fatal(err)
		}
	}
	p.keepStandby() // the hedge lane's connection to the secondary
	if p.lane.on.Load() != 2 {
		t.Fatalf("the hedge lane stands by at server %d; want the secondary", int(p.lane.on.Load())-1)
	}
	p.moves.milli.Store(0) // the budget spent
	hedged, stallAfter := p.health.activity[0].hedged.Load(), p.health.stallAfter(0)
	slowOne.Store(true)
	start := time.Now()
	if _, err := p.Search(t.Context(), search); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if n := p.health.activity[0].hedged.Load() - hedged; n != 1 || took >= time.Second {
		t.Fatalf("the read stuck on the primary took %v with %d hedges (stall time %v); want it hedged once soon after the stall time",
			took, n, stallAfter)
	}
	if took < stallAfter {
		t.Fatalf("the read was hedged after %v, before the stall time %v, with the budget spent", took, stallAfter)
	}
}
