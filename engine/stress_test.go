package engine_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fairpool/ldappool/engine"
)

// TestStress leases, releases, discards and gives up at random from many
// goroutines against a connector that fails at random, then checks that
// every connection opened was closed and that the counters add up.
func TestStress(t *testing.T) {
	const (
		goroutines = 32
		perG       = 300
	)
	var rmu sync.Mutex
	rng := rand.New(rand.NewPCG(1, 2))
	chance := func(p float64) bool {
		rmu.Lock()
		defer rmu.Unlock()
		return rng.Float64() < p
	}
	fc := &rebindingConnector{}
	fc.dialErr = func(engine.Key) error {
		if chance(0.1) {
			return errors.New("random dial failure")
		}
		return nil
	}
	p, err := engine.New(fc,
		engine.WithMaxSize(4), engine.WithSoftLimit(6), engine.WithMaxDialing(2),
		engine.WithValidateOnLease(), engine.WithValidatePeriod(time.Millisecond),
		engine.WithPrunePeriod(time.Millisecond), engine.WithMaxLifetime(5*time.Millisecond),
		engine.WithMinIdle(1), engine.WithDefaultKey(keyA))
	if err != nil {
		t.Fatal(err)
	}
	keys := []engine.Key{keyA, keyB, {Name: "C"}}
	var leased, failed atomic.Int64
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range perG {
				key := keys[(g+i)%len(keys)]
				ctx, cancel := context.WithCancel(context.Background())
				if chance(0.2) {
					ctx, cancel = context.WithTimeout(context.Background(), time.Duration(rand.N(200))*time.Microsecond)
				}
				l, err := p.Lease(ctx, key)
				cancel()
				if err != nil {
					failed.Add(1)
					continue
				}
				leased.Add(1)
				if l.Conn().Key() != key.Name {
					t.Errorf("leased for %s, got a connection bound for %s", key.Name, l.Conn().Key())
				}
				switch {
				case chance(0.1):
					l.Conn().setBad()
					l.Discard(errors.New("broken"))
				case chance(0.05):
					l.Conn().setBad() // released bad: validation on lease must catch it
					l.Release()
				default:
					l.Release()
				}
			}
		})
	}
	wg.Wait()
	if err := p.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	st := p.Stats()
	opened, closed := fc.counts()
	if opened != closed || uint64(opened) != st.Opened() || st.Closed != st.Opened() {
		t.Fatalf("connector opened %d closed %d; pool counted opened %d closed %d: every one must be closed",
			opened, closed, st.Opened(), st.Closed)
	}
	if st.Leases != uint64(leased.Load()) {
		t.Fatalf("pool counted %d leases; callers received %d", st.Leases, leased.Load())
	}
	if st.Open != 0 || st.InUse != 0 || st.Waiters != 0 || st.Dialing != 0 {
		t.Fatalf("after Close: %+v", st)
	}
	if leased.Load() == 0 || failed.Load() == 0 {
		t.Fatalf("leased %d, failed %d: the stress did not exercise both paths", leased.Load(), failed.Load())
	}
	t.Logf("leases %d, failures %d, dials %d (failed %d), validations %d (failed %d), rebinds %d, expiries %d, timeouts %d",
		st.Leases, failed.Load(), st.Dials, st.DialErrors, st.Validations, st.ValidationErrors, st.Rebinds, st.Expiries, st.Timeouts)
}
