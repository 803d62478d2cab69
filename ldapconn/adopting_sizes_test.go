package ldapconn_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/fairpool/ldappool/ldapconn"
)

// WithMaxIdle bounds the idle connections of the whole pool, the hedge
// lane's (which stands by idle at another server) included, as WithMaxSize
// bounds the open ones: after a burst that opened every connection, at most
// n stay idle, and Stats reports n. (Found by an adopter's round: with two
// servers the lane's connection was idle on top of n, and Stats said n+1.)
func TestAdoptingMaxIdleCountsTheHedgeLane(t *testing.T) {
	primary, secondary := embedded(t), embedded(t)
	const size, maxIdle = 4, 2
	p := newPool(t, primary.URL()+","+secondary.URL(), admin, quiet,
		ldapconn.WithMaxSize(size), ldapconn.WithMaxIdle(maxIdle))
	var wg sync.WaitGroup
	for c := range 16 {
		wg.Go(func() {
			for range 20 {
				if _, err := p.Search(t.Context(), searchUID(fmt.Sprint("user", c))); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	waitFor(t, "the hedge lane's connection", func() bool { return secondary.Stats().Open >= 1 })
	waitFor(t, "every lease back", func() bool { st := p.Stats(); return st.InUse == 0 && st.Checking == 0 })
	st := p.Stats()
	if st.MaxIdle != maxIdle || st.Idle > maxIdle {
		t.Fatalf("WithMaxIdle(%d) with two servers: Stats MaxIdle %d, %d idle; want %d and at most %d:\n%v",
			maxIdle, st.MaxIdle, st.Idle, maxIdle, maxIdle, st)
	}
	if open := primary.Stats().Open + secondary.Stats().Open; open > size {
		t.Fatalf("%d connections open at the servers; want at most %d", open, size)
	}
}
