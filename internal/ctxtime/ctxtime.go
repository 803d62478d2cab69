// Package ctxtime waits and calls under a context: the one sleep helper and
// the one "run a call that takes no context under a context" helper of the
// module.
package ctxtime

import (
	"context"
	"sync/atomic"
	"time"
)

// Sleep waits d, or until ctx ends, and then returns ctx's error. A d of
// zero or less returns at once, with ctx's error if it has ended.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Call runs call, which takes no context, and returns its outcome, or ctx's
// error as soon as ctx ends. In that case call goes on in the background
// until it returns, and gaveUp, if not nil, runs at once: it is how the
// caller makes call end sooner (closing its connection) or nothing. A ctx
// that can never end costs nothing: call runs on the caller's goroutine.
//
// A panic in call reaches the caller, as it would without a context; once
// the caller has gone, it panics where call ran.
func Call[T any](ctx context.Context, call func() (T, error), gaveUp func()) (T, error) {
	if ctx.Done() == nil {
		return call()
	}
	type outcome struct {
		v        T
		err      error
		panicked bool
		value    any
	}
	done := make(chan outcome, 1)
	var settled atomic.Bool // won by the panicking call or by the caller leaving
	go func() {
		var o outcome
		defer func() {
			if r := recover(); r != nil {
				if !settled.CompareAndSwap(false, true) {
					panic(r)
				}
				o.panicked, o.value = true, r
			}
			done <- o
		}()
		o.v, o.err = call()
	}()
	select {
	case o := <-done:
		if o.panicked {
			panic(o.value)
		}
		return o.v, o.err
	case <-ctx.Done():
		if !settled.CompareAndSwap(false, true) {
			if o := <-done; o.panicked {
				panic(o.value)
			}
		}
		if gaveUp != nil {
			gaveUp()
		}
		var zero T
		return zero, ctx.Err()
	}
}
