package engine_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/fairpool/ldappool/engine"
)

// fuzzConfig is one fuzzed set of option values; every option is given.
type fuzzConfig struct {
	maxSize, minIdle, softLimit, maxDialing                    int
	lifetime, idle, prune, connect, wait, period, checkTimeout time.Duration
	jitter                                                     float64
	flags                                                      uint8 // 1 fail fast, 2 validate on lease, 4 on release
}

func (c fuzzConfig) options() ([]engine.Option, map[string]string) {
	opts := []engine.Option{
		engine.WithMaxSize(c.maxSize), engine.WithMinIdle(c.minIdle), engine.WithDefaultKey(keyA),
		engine.WithSoftLimit(c.softLimit), engine.WithMaxDialing(c.maxDialing),
		engine.WithMaxLifetime(c.lifetime), engine.WithLifetimeJitter(c.jitter), engine.WithIdleTimeout(c.idle),
		engine.WithPrunePeriod(c.prune), engine.WithConnectTimeout(c.connect), engine.WithWaitTimeout(c.wait),
		engine.WithValidatePeriod(c.period), engine.WithValidateTimeout(c.checkTimeout),
		engine.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
	}
	if c.flags&1 != 0 {
		opts = append(opts, engine.WithFailFast())
	}
	if c.flags&2 != 0 {
		opts = append(opts, engine.WithValidateOnLease())
	}
	if c.flags&4 != 0 {
		opts = append(opts, engine.WithValidateOnRelease())
	}
	given := map[string]string{}
	for name, v := range map[string]any{
		"WithMaxSize": c.maxSize, "WithMinIdle": c.minIdle, "WithSoftLimit": c.softLimit, "WithMaxDialing": c.maxDialing,
		"WithMaxLifetime": c.lifetime, "WithLifetimeJitter": c.jitter, "WithIdleTimeout": c.idle,
		"WithPrunePeriod": c.prune, "WithConnectTimeout": c.connect, "WithWaitTimeout": c.wait,
		"WithValidatePeriod": c.period, "WithValidateTimeout": c.checkTimeout,
	} {
		given[name] = fmt.Sprintf("%s(%v)", name, v)
	}
	return opts, given
}

// invalid says, independently of the engine, which options New must refuse.
func (c fuzzConfig) invalid() map[string]bool {
	bad := map[string]bool{
		"WithMaxSize":         c.maxSize < 1,
		"WithMinIdle":         c.minIdle < 0 || c.minIdle > c.maxSize,
		"WithSoftLimit":       c.softLimit < 0 || c.softLimit != 0 && c.softLimit <= c.maxSize,
		"WithLifetimeJitter":  !(c.jitter >= 0 && c.jitter <= 1),
		"WithMaxDialing":      c.maxDialing < 1,
		"WithMaxLifetime":     c.lifetime <= 0,
		"WithPrunePeriod":     c.prune <= 0,
		"WithConnectTimeout":  c.connect <= 0,
		"WithValidateTimeout": c.checkTimeout <= 0,
		"WithIdleTimeout":     c.idle < 0,
		"WithWaitTimeout":     c.wait < 0,
		"WithValidatePeriod":  c.period < 0,
	}
	for name, b := range bad {
		if !b {
			delete(bad, name)
		}
	}
	return bad
}

// FuzzOptions builds a pool from fuzzed option values: New either refuses
// them with an *OptionError naming one of the options given, with the value
// given, or returns a pool that lends a connection and closes.
func FuzzOptions(f *testing.F) {
	const (
		minute = int64(time.Minute)
		second = int64(time.Second)
	)
	// Defaults, then one invalid value each, then extremes.
	f.Add(10, 0, 0, 4, 10*minute, 5*minute, 30*second, 10*second, int64(0), int64(0), 5*second, 0.1, uint8(0))
	f.Add(0, 0, 0, 4, 10*minute, 5*minute, 30*second, 10*second, int64(0), int64(0), 5*second, 0.1, uint8(0))
	f.Add(10, 11, 0, 4, 10*minute, 5*minute, 30*second, 10*second, int64(0), int64(0), 5*second, 0.1, uint8(0))
	f.Add(10, 0, -1, 4, 10*minute, 5*minute, 30*second, 10*second, int64(0), int64(0), 5*second, 0.1, uint8(0))
	f.Add(10, 0, 0, 0, 10*minute, 5*minute, 30*second, 10*second, int64(0), int64(0), 5*second, 0.1, uint8(0))
	f.Add(10, 0, 0, 4, 10*minute, 5*minute, 30*second, 10*second, int64(0), int64(0), 5*second, math.NaN(), uint8(0))
	f.Add(10, 0, 0, 4, 10*minute, 5*minute, 30*second, 10*second, int64(0), int64(0), 5*second, math.Inf(1), uint8(0))
	f.Add(10, 0, 0, 4, int64(math.MinInt64), 5*minute, 30*second, 10*second, int64(0), int64(0), 5*second, 0.1, uint8(0))
	f.Add(10, 0, 0, 4, 10*minute, 5*minute, 30*second, int64(-1), int64(0), int64(0), 5*second, 0.1, uint8(0))
	f.Add(10, 0, 0, 4, 10*minute, 5*minute, 30*second, 10*second, int64(-1), int64(0), 5*second, 0.1, uint8(0))
	f.Add(math.MaxInt-1, 64, math.MaxInt, math.MaxInt, int64(math.MaxInt64), int64(math.MaxInt64), int64(math.MaxInt64),
		int64(math.MaxInt64), int64(math.MaxInt64), int64(math.MaxInt64), int64(math.MaxInt64), 1.0, uint8(7))
	f.Add(1, 1, 2, 1, int64(1), int64(1), int64(1), int64(1), int64(1), int64(1), int64(1), 0.0, uint8(7))
	f.Fuzz(func(t *testing.T, maxSize, minIdle, softLimit, maxDialing int,
		lifetime, idle, prune, connect, wait, period, checkTimeout int64, jitter float64, flags uint8) {
		c := fuzzConfig{maxSize, minIdle, softLimit, maxDialing, time.Duration(lifetime), time.Duration(idle),
			time.Duration(prune), time.Duration(connect), time.Duration(wait), time.Duration(period),
			time.Duration(checkTimeout), jitter, flags}
		// A valid WithMinIdle of millions keeps the pool dialing that many
		// connections in the background, as asked; a test cannot afford it.
		if c.minIdle > 64 && c.minIdle <= c.maxSize {
			c.minIdle = 64
		}
		opts, given := c.options()
		p, err := engine.New[*fakeConn](&fakeConnector{}, opts...)
		if err != nil {
			var oe *engine.OptionError
			if !errors.As(err, &oe) {
				t.Fatalf("New error %v (%T) is not an *OptionError", err, err)
			}
			name, _, _ := strings.Cut(oe.Option, "(")
			if want, ok := given[name]; !ok || oe.Option != want {
				t.Fatalf("New error %q names %s; want an option given, with its value (%s)", err, oe.Option, want)
			}
			if bad := c.invalid(); !bad[name] {
				t.Fatalf("New error %q names a valid option; the invalid ones are %v", err, bad)
			}
			return
		}
		if bad := c.invalid(); len(bad) > 0 {
			p.Close(context.Background())
			t.Fatalf("New accepted invalid options %v", bad)
		}
		// A hang would be a bug: the deadline turns it into a failure.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		l, err := p.Lease(ctx, keyA)
		switch {
		case err == nil:
			l.Release()
		case errors.Is(err, engine.ErrWaitTimeout) && c.wait > 0:
		case errors.Is(err, engine.ErrExhausted) && c.flags&1 != 0:
		default:
			t.Errorf("Lease on a pool with %+v: %v", c, err)
		}
		if err := p.Close(ctx); err != nil {
			t.Fatalf("Close: %v", err)
		}
	})
}
