package ctxtime_test

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/fairpool/ldappool/internal/ctxtime"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSleep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		if err := ctxtime.Sleep(t.Context(), time.Second); err != nil || time.Since(start) != time.Second {
			t.Fatalf("Sleep(1s) = %v after %v", err, time.Since(start))
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Millisecond)
		defer cancel()
		if err := ctxtime.Sleep(ctx, time.Hour); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != time.Second+time.Millisecond {
			t.Fatalf("Sleep(1h) under a 1ms deadline = %v", err)
		}
		if err := ctxtime.Sleep(ctx, 0); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Sleep(0) on an ended context = %v", err)
		}
	})
}

func TestCallReturnsAtTheContextsEndAndTheCallGoesOn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		finished := make(chan struct{})
		gaveUp := false
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		_, err := ctxtime.Call(ctx, func() (int, error) {
			<-release
			close(finished)
			return 1, nil
		}, func() { gaveUp = true; close(release) })
		if !errors.Is(err, context.DeadlineExceeded) || !gaveUp {
			t.Fatalf("Call = %v, gaveUp %v; want the deadline and gaveUp run", err, gaveUp)
		}
		<-finished
		if v, err := ctxtime.Call(context.Background(), func() (int, error) { return 7, nil }, nil); v != 7 || err != nil {
			t.Fatalf("Call without a deadline = %v, %v", v, err)
		}
	})
}

// A panic in the call reaches the caller still waiting for it, as it would
// with no context, where the caller can recover it.
func TestCallPassesAPanicToTheCaller(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	defer func() {
		if r := recover(); r != "boom" {
			t.Fatalf("recovered %v; want the call's panic", r)
		}
	}()
	_, _ = ctxtime.Call(ctx, func() (int, error) { panic("boom") }, nil)
	t.Fatal("Call returned after its call panicked")
}

// A call that panics as its context ends: the panic reaches the caller,
// which must not return the context's error as if nothing happened. (Found
// by a review: the panic could go nowhere.)
func TestCallNeverLosesAPanicRacingTheContext(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1)) // the call runs cancel, then panics, before the caller looks
	for range 100 {
		func() {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			defer func() {
				if r := recover(); r != "boom" {
					t.Fatalf("recovered %v; want the call's panic", r)
				}
			}()
			_, err := ctxtime.Call(ctx, func() (int, error) {
				cancel()
				panic("boom")
			}, nil)
			t.Fatalf("Call returned %v; want the call's panic", err)
		}()
	}
}
