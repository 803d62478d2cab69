package engine_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/fairpool/ldappool/engine"
)

// Each invalid option is reported by its own name with the value it was
// given, also when another option's value is what it conflicts with.
func TestNewNamesTheInvalidOption(t *testing.T) {
	tests := []struct {
		name string
		opts []engine.Option
		want string // the whole error
	}{
		{"zero size", []engine.Option{engine.WithMaxSize(0)},
			"engine: WithMaxSize(0): size must be at least 1"},
		{"most negative size", []engine.Option{engine.WithMaxSize(math.MinInt)},
			"engine: WithMaxSize(-9223372036854775808): size must be at least 1"},
		{"negative min idle", []engine.Option{engine.WithMinIdle(-1)},
			"engine: WithMinIdle(-1): must not be negative"},
		{"min idle past the size", []engine.Option{engine.WithMaxSize(2), engine.WithMinIdle(3), engine.WithDefaultKey(keyA)},
			"engine: WithMinIdle(3): must not exceed WithMaxSize (2)"},
		{"min idle at the idle bound", []engine.Option{engine.WithMaxIdle(2), engine.WithMinIdle(2), engine.WithDefaultKey(keyA)},
			"engine: WithMinIdle(2): must be below WithMaxIdle (2; WithNoPool is WithMaxIdle(0)): each lease would dial a connection and each release close one"},
		{"min idle without a key", []engine.Option{engine.WithMinIdle(2)},
			"engine: WithMinIdle(2): needs WithDefaultKey to know what to keep warm"},
		{"negative soft limit", []engine.Option{engine.WithSoftLimit(-1)},
			"engine: WithSoftLimit(-1): must not be negative"},
		{"soft limit at the size", []engine.Option{engine.WithMaxSize(5), engine.WithSoftLimit(5)},
			"engine: WithSoftLimit(5): must exceed WithMaxSize (5)"},
		{"jitter above 1", []engine.Option{engine.WithLifetimeJitter(1.5)},
			"engine: WithLifetimeJitter(1.5): must be between 0 and 1"},
		{"negative jitter", []engine.Option{engine.WithLifetimeJitter(-0.1)},
			"engine: WithLifetimeJitter(-0.1): must be between 0 and 1"},
		{"NaN jitter", []engine.Option{engine.WithLifetimeJitter(math.NaN())},
			"engine: WithLifetimeJitter(NaN): must be between 0 and 1"},
		{"infinite jitter", []engine.Option{engine.WithLifetimeJitter(math.Inf(1))},
			"engine: WithLifetimeJitter(+Inf): must be between 0 and 1"},
		{"minus infinite jitter", []engine.Option{engine.WithLifetimeJitter(math.Inf(-1))},
			"engine: WithLifetimeJitter(-Inf): must be between 0 and 1"},
		{"no dials", []engine.Option{engine.WithMaxDialing(0)},
			"engine: WithMaxDialing(0): must be at least 1"},
		{"nil logger", []engine.Option{engine.WithLogger(nil)},
			"engine: WithLogger(nil): logger must not be nil"},
		{"nil backoff", []engine.Option{engine.WithBackOff(nil)},
			"engine: WithBackOff(nil): must not be nil"},
		{"zero lifetime", []engine.Option{engine.WithMaxLifetime(0)},
			"engine: WithMaxLifetime(0s): duration must be positive"},
		{"zero prune period", []engine.Option{engine.WithPrunePeriod(0)},
			"engine: WithPrunePeriod(0s): duration must be positive"},
		{"negative connect timeout", []engine.Option{engine.WithConnectTimeout(math.MinInt64)},
			"engine: WithConnectTimeout(-2562047h47m16.854775808s): duration must be positive"},
		{"zero validate timeout", []engine.Option{engine.WithValidateTimeout(0)},
			"engine: WithValidateTimeout(0s): duration must be positive"},
		{"negative wait", []engine.Option{engine.WithWaitTimeout(-time.Second)},
			"engine: WithWaitTimeout(-1s): duration must not be negative"},
		{"negative idle timeout", []engine.Option{engine.WithIdleTimeout(-1)},
			"engine: WithIdleTimeout(-1ns): duration must not be negative"},
		{"negative validate period", []engine.Option{engine.WithValidatePeriod(-time.Minute)},
			"engine: WithValidatePeriod(-1m0s): duration must not be negative"},
		{"negative leak threshold", []engine.Option{engine.WithLeakThreshold(-time.Millisecond)},
			"engine: WithLeakThreshold(-1ms): duration must not be negative"},
		{"nil option", []engine.Option{engine.WithMaxSize(2), engine.WithFailFast(), nil},
			"engine: New: option 3 is nil"},
		{"only a nil option", []engine.Option{nil},
			"engine: New: option 1 is nil"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := engine.New[*fakeConn](&fakeConnector{}, tt.opts...)
			if p != nil {
				t.Fatal("New returned a pool with an invalid option")
			}
			var oe *engine.OptionError
			if !errors.As(err, &oe) || err.Error() != tt.want {
				t.Fatalf("New error = %v; want the *OptionError %q", err, tt.want)
			}
			if want := strings.TrimPrefix(tt.want, "engine: "); oe.Option+": "+oe.Reason != want {
				t.Fatalf("OptionError{Option: %q, Reason: %q}; want %q", oe.Option, oe.Reason, want)
			}
		})
	}
}

// Settings at their limits make a pool that works: nothing derived from them
// overflows.
func TestNewAcceptsSettingsAtTheirLimits(t *testing.T) {
	const longest = time.Duration(math.MaxInt64)
	tests := []struct {
		name string
		opts []engine.Option
	}{
		{"longest durations", []engine.Option{engine.WithMaxLifetime(longest), engine.WithIdleTimeout(longest),
			engine.WithPrunePeriod(longest), engine.WithConnectTimeout(longest), engine.WithValidatePeriod(longest),
			engine.WithValidateTimeout(longest), engine.WithWaitTimeout(longest), engine.WithLeakThreshold(longest)}},
		{"full jitter on the longest lifetime", []engine.Option{engine.WithMaxLifetime(longest), engine.WithLifetimeJitter(1)}},
		{"no jitter", []engine.Option{engine.WithLifetimeJitter(0)}},
		{"shortest durations", []engine.Option{engine.WithMaxLifetime(1), engine.WithPrunePeriod(1), engine.WithConnectTimeout(1),
			engine.WithValidateTimeout(1)}},
		{"largest sizes", []engine.Option{engine.WithMaxSize(math.MaxInt - 1), engine.WithSoftLimit(math.MaxInt),
			engine.WithMaxDialing(math.MaxInt)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := engine.New[*fakeConn](&fakeConnector{}, tt.opts...)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			l, err := p.Lease(context.Background(), keyA)
			if err != nil {
				t.Fatalf("Lease: %v", err)
			}
			l.Release()
			if err := p.Close(context.Background()); err != nil {
				t.Fatalf("Close: %v", err)
			}
		})
	}
}

func TestResolveSizesAppliesOptionsInOrder(t *testing.T) {
	got := engine.ResolveSizes(engine.WithMaxSize(4), nil, engine.WithMaxSize(6), engine.WithMaxIdle(0), engine.WithOpsPerConn(8))
	want := engine.Sizes{MaxSize: 6, MaxIdle: 0, OpsPerConn: 8}
	if got != want {
		t.Fatalf("ResolveSizes = %+v; want %+v", got, want)
	}
	if d := engine.ResolveSizes(); d.MaxSize != 10 || d.MaxIdle != -1 || d.OpsPerConn != 1 {
		t.Fatalf("defaults = %+v; want MaxSize 10, MaxIdle -1, OpsPerConn 1", d)
	}
}
