package engine_test

import (
	"errors"
	"reflect"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fairpool/ldappool/engine"
)

// In virtual time a dial of 3s and a hold of 5s are counted exactly.
func TestStatsCountUseAndCreateTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fc := &fakeConnector{dialDelay: 3 * time.Second}
		p := newPool(t, fc, engine.WithName("main"), engine.WithMaxSize(4))
		l := mustLease(t, p, keyA)
		time.Sleep(5 * time.Second)
		l.Release()
		synctest.Wait()
		l = mustLease(t, p, keyA) // reused: no dial, a hold of 2s
		time.Sleep(2 * time.Second)
		l.Release()
		synctest.Wait()
		st := p.Stats()
		if st.CreateTime != 3*time.Second || st.UseTime != 7*time.Second {
			t.Fatalf("create time %v, use time %v; want 3s, 7s", st.CreateTime, st.UseTime)
		}
		if st.Name != "main" || st.MaxSize != 4 || st.MaxIdle != 4 || st.MinIdle != 0 {
			t.Fatalf("name %q, max %d, max idle %d, min idle %d; want main, 4, 4 (unbounded: the max size), 0",
				st.Name, st.MaxSize, st.MaxIdle, st.MinIdle)
		}
	})
}

func TestStatsReportIdleBounds(t *testing.T) {
	p := newPool(t, &fakeConnector{}, engine.WithMaxSize(8), engine.WithMaxIdle(3),
		engine.WithMinIdle(2), engine.WithDefaultKey(keyA))
	if st := p.Stats(); st.MaxIdle != 3 || st.MinIdle != 2 || st.Name != "" {
		t.Fatalf("max idle %d, min idle %d, name %q; want 3, 2, unnamed", st.MaxIdle, st.MinIdle, st.Name)
	}
}

// A failed dial adds nothing to CreateTime.
func TestStatsCreateTimeCountsOnlySuccessfulDials(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fc := &fakeConnector{dialDelay: time.Second, dialErr: func(engine.Key) error { return errors.New("refused") }}
		p := newPool(t, fc)
		if _, err := p.Lease(t.Context(), keyA); err == nil {
			t.Fatal("Lease succeeded; want the dial's error")
		}
		if st := p.Stats(); st.DialErrors != 1 || st.CreateTime != 0 {
			t.Fatalf("dial errors %d, create time %v; want 1, 0", st.DialErrors, st.CreateTime)
		}
	})
}

// durations is an Observer that keeps what it is told.
type durations struct {
	mu                    sync.Mutex
	waited, used, created []time.Duration
}

func (d *durations) Waited(t time.Duration)  { d.add(&d.waited, t) }
func (d *durations) Used(t time.Duration)    { d.add(&d.used, t) }
func (d *durations) Created(t time.Duration) { d.add(&d.created, t) }

func (d *durations) add(to *[]time.Duration, t time.Duration) {
	d.mu.Lock()
	*to = append(*to, t)
	d.mu.Unlock()
}

func TestObserverIsToldOfEachEvent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fc := &fakeConnector{dialDelay: time.Second}
		p := newPool(t, fc, engine.WithMaxSize(1))
		obs := &durations{}
		p.SetObserver(obs)
		l := mustLease(t, p, keyA) // waits for its 1s dial
		second := leaseAsync(t.Context(), p, keyA)
		time.Sleep(4 * time.Second)
		l.Release() // held 4s; the second lease waited 4s
		r := <-second
		if r.err != nil {
			t.Fatalf("second Lease: %v", r.err)
		}
		r.l.Release() // held 0s
		synctest.Wait()
		p.SetObserver(nil)
		mustLease(t, p, keyA).Release() // told nobody
		synctest.Wait()
		obs.mu.Lock()
		defer obs.mu.Unlock()
		s := time.Second
		if !slices.Equal(obs.created, []time.Duration{s}) || !slices.Equal(obs.waited, []time.Duration{s, 4 * s}) ||
			!slices.Equal(obs.used, []time.Duration{4 * s, 0}) {
			t.Fatalf("created %v, waited %v, used %v; want [1s], [1s 4s], [4s 0s]", obs.created, obs.waited, obs.used)
		}
	})
}

// Plus adds every counter, so that a counter added to Counters later is not
// silently left out of a two-pool total: each field is set to 1 in both and
// must come out 2, but MaxWait, the longer of the two.
func TestCountersPlusAddsEveryField(t *testing.T) {
	var one engine.Counters
	v := reflect.ValueOf(&one).Elem()
	number := func(f reflect.Value) int64 {
		if f.CanInt() {
			return f.Int()
		}
		return int64(f.Uint())
	}
	for i := range v.NumField() {
		if f := v.Field(i); f.CanInt() {
			f.SetInt(1)
		} else {
			f.SetUint(1)
		}
	}
	sum := reflect.ValueOf(one.Plus(one))
	for i := range sum.NumField() {
		want := int64(2)
		if v.Type().Field(i).Name == "MaxWait" {
			want = 1
		}
		if got := number(sum.Field(i)); got != want {
			t.Errorf("Plus: %s = %d; want %d", v.Type().Field(i).Name, got, want)
		}
	}
}
