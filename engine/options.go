package engine

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Option configures a Pool.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// config holds the settings New validated. Each default is written beside its
// field.
type config struct {
	name            string        // "": the pool is unnamed
	maxSize         int           // 10
	opsPerConn      int           // 1: a share is a whole connection
	maxInFlight     int           // 0: maxSize × opsPerConn
	minIdle         int           // 0: no connection is kept warm
	maxIdle         int           // -1: as many as are open; 0: close every connection on release
	softLimit       int           // 0: never grow past maxSize
	failFast        bool          // false: wait for a connection
	waitTimeout     time.Duration // 0: wait until the caller's context ends
	maxLifetime     time.Duration // 10 minutes
	lifetimeJitter  float64       // 0.1: lifetimes are shortened by up to 10%
	idleTimeout     time.Duration // 5 minutes; 0: idle connections are never pruned
	prunePeriod     time.Duration // 30 seconds
	connectTimeout  time.Duration // 10 seconds
	validateOnLease bool          // false
	validateOnRel   bool          // false
	validatePeriod  time.Duration // 0: no background validation
	validateTimeout time.Duration // 5 seconds
	maxDialing      int           // 4 dials in flight at most
	leakThreshold   time.Duration // 0: no leak detection
	retryBroken     bool          // true: Do retries once on a fresh connection
	defaultKey      *Key          // nil: needed only by WithMinIdle
	logger          *slog.Logger  // slog.Default()
	newBackOff      func() backoff.BackOff
}

func defaultConfig() config {
	return config{
		maxSize:         10,
		opsPerConn:      1,
		maxIdle:         -1,
		maxLifetime:     10 * time.Minute,
		lifetimeJitter:  0.1,
		idleTimeout:     5 * time.Minute,
		prunePeriod:     30 * time.Second,
		connectTimeout:  10 * time.Second,
		validateTimeout: 5 * time.Second,
		maxDialing:      4,
		retryBroken:     true,
		logger:          slog.Default(),
		newBackOff: func() backoff.BackOff {
			b := backoff.NewExponentialBackOff()
			b.InitialInterval = 100 * time.Millisecond
			b.MaxInterval = 30 * time.Second
			b.MaxElapsedTime = 0 // a pool keeps trying for as long as it lives
			return b
		},
	}
}

// WithName names the pool in its Stats, for the metrics and logs of a
// program that runs several. Default "".
func WithName(name string) Option { return optionFunc(func(c *config) { c.name = name }) }

// WithMaxSize sets how many connections the pool holds open at most,
// counting those being dialed. Default 10.
func WithMaxSize(n int) Option { return optionFunc(func(c *config) { c.maxSize = n }) }

// WithMinIdle keeps at least n idle connections for the default key open,
// dialing in the background (with backoff after failures) to restore them.
// It needs WithDefaultKey; it may not exceed WithMaxSize, and must be below
// WithMaxIdle when that is set. Default 0.
func WithMinIdle(n int) Option { return optionFunc(func(c *config) { c.minIdle = n }) }

// WithMaxIdle keeps at most n connections idle; one released past it is
// closed. WithMaxIdle(0) closes every connection when its lease ends, so each
// lease dials anew (Python ldappool's use_pool=False). Default: no bound but
// the max size.
func WithMaxIdle(n int) Option { return optionFunc(func(c *config) { c.maxIdle = n }) }

// WithDefaultKey names the key that WithMinIdle keeps warm.
func WithDefaultKey(k Key) Option { return optionFunc(func(c *config) { c.defaultKey = &k }) }

// WithSoftLimit lets the pool grow past its max size, up to n connections,
// while callers are waiting; connections past the max size are closed as soon
// as they are released with nobody waiting. Default: no soft limit.
func WithSoftLimit(n int) Option { return optionFunc(func(c *config) { c.softLimit = n }) }

// WithFailFast makes Lease return ErrExhausted at once, instead of waiting,
// when no connection is idle and none can be dialed.
func WithFailFast() Option { return optionFunc(func(c *config) { c.failFast = true }) }

// WithWaitTimeout bounds how long Lease waits for a connection; past it Lease
// returns ErrWaitTimeout. Default 0: wait until the caller's context ends.
func WithWaitTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) { c.waitTimeout = d })
}

// WithMaxLifetime closes a connection this long after it was opened, when it
// is next idle. Each connection's lifetime is shortened by a random part of
// up to WithLifetimeJitter of it, so connections opened together do not all
// expire together. Default 10 minutes.
func WithMaxLifetime(d time.Duration) Option {
	return optionFunc(func(c *config) { c.maxLifetime = d })
}

// WithLifetimeJitter sets the largest fraction (0 to 1) by which a
// connection's lifetime is shortened at random. Default 0.1.
func WithLifetimeJitter(f float64) Option {
	return optionFunc(func(c *config) { c.lifetimeJitter = f })
}

// WithIdleTimeout closes connections idle this long, down to WithMinIdle of
// them, at the next prune. 0 disables it. Default 5 minutes.
func WithIdleTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) { c.idleTimeout = d })
}

// WithPrunePeriod sets how often idle connections are checked for expiry and
// idleness. Default 30 seconds.
func WithPrunePeriod(d time.Duration) Option {
	return optionFunc(func(c *config) { c.prunePeriod = d })
}

// WithConnectTimeout bounds each dial. Default 10 seconds.
func WithConnectTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) { c.connectTimeout = d })
}

// WithValidateOnLease validates an idle connection before handing it out; one
// that fails is closed and the caller gets another, never the error.
func WithValidateOnLease() Option { return optionFunc(func(c *config) { c.validateOnLease = true }) }

// WithValidateOnRelease validates a connection when it is released, before it
// is pooled.
func WithValidateOnRelease() Option { return optionFunc(func(c *config) { c.validateOnRel = true }) }

// WithValidatePeriod validates idle connections in the background every d;
// one that fails is closed and replaced. Default 0: never.
func WithValidatePeriod(d time.Duration) Option {
	return optionFunc(func(c *config) { c.validatePeriod = d })
}

// WithValidateTimeout bounds each validation. Default 5 seconds.
func WithValidateTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) { c.validateTimeout = d })
}

// WithMaxDialing bounds the dials, and separately the background
// validations, in flight at once. Default 4.
func WithMaxDialing(n int) Option { return optionFunc(func(c *config) { c.maxDialing = n }) }

// WithLeakThreshold logs, with the stack that leased it, every lease held
// longer than d. Default 0: off (capturing the stack costs a few
// microseconds a lease).
func WithLeakThreshold(d time.Duration) Option {
	return optionFunc(func(c *config) { c.leakThreshold = d })
}

// WithRetryBroken sets whether Do retries, once and on a freshly checked
// connection, an operation that failed because its reused connection was
// broken (as after a server restart). Default true.
func WithRetryBroken(retry bool) Option { return optionFunc(func(c *config) { c.retryBroken = retry }) }

// WithLogger sets where the pool logs: leaks and close errors as warnings,
// and a trace of every dial, lease, release and close at debug level.
// Default slog.Default().
//
// The debug trace is written from the supervisor goroutine, so with debug
// enabled the handler must not block (a handler writing to a file or stderr
// is fine; one that ships records over the network should queue them). With
// debug disabled the supervisor only asks Enabled.
func WithLogger(l *slog.Logger) Option { return optionFunc(func(c *config) { c.logger = l }) }

// WithBackOff sets how background dials (WithMinIdle, replacements of
// connections that failed validation) back off after failing. Default:
// exponential from 100ms to 30s, forever.
func WithBackOff(newBackOff func() backoff.BackOff) Option {
	return optionFunc(func(c *config) { c.newBackOff = newBackOff })
}

// WithOpsPerConn sets how many shares (see Pool.Share) one connection
// carries at once: operations in flight on it, for a connection type that
// serves concurrent operations. A share goes to the least-loaded connection
// of its key, and a connection is opened only when every one of the key is
// carrying n. Leases (Pool.Lease) always take a whole connection, and never
// one carrying shares. Default 1: a share is a whole connection.
func WithOpsPerConn(n int) Option { return optionFunc(func(c *config) { c.opsPerConn = n }) }

// WithMaxInFlight caps the shares out at once across the pool, whatever
// their connections could carry; a share past it waits its turn (or fails
// at once with WithFailFast). Default 0: WithMaxSize (or WithSoftLimit, if
// set) × WithOpsPerConn.
func WithMaxInFlight(n int) Option { return optionFunc(func(c *config) { c.maxInFlight = n }) }

// validate checks each option with its own name and the value it was given.
func (c *config) validate() error {
	positive := func(name string, d time.Duration) error {
		if d <= 0 {
			return optionError(name, d, "duration must be positive")
		}
		return nil
	}
	nonNegative := func(name string, d time.Duration) error {
		if d < 0 {
			return optionError(name, d, "duration must not be negative")
		}
		return nil
	}
	switch {
	case c.maxSize < 1:
		return optionError("WithMaxSize", c.maxSize, "size must be at least 1")
	case c.opsPerConn < 1:
		return optionError("WithOpsPerConn", c.opsPerConn, "must be at least 1")
	case c.maxInFlight < 0:
		return optionError("WithMaxInFlight", c.maxInFlight, "must not be negative")
	case c.minIdle < 0:
		return optionError("WithMinIdle", c.minIdle, "must not be negative")
	case c.maxIdle < -1:
		return optionError("WithMaxIdle", c.maxIdle, "must not be negative")
	case c.minIdle > c.maxSize:
		return optionError("WithMinIdle", c.minIdle, fmt.Sprintf("must not exceed WithMaxSize (%d)", c.maxSize))
	case c.maxIdle >= 0 && c.minIdle > 0 && c.minIdle >= c.maxIdle:
		// A lease takes an idle connection, one is dialed to keep minIdle
		// idle, and the one released past maxIdle is closed: a dial for
		// every lease, and above maxIdle a dial storm.
		return optionError("WithMinIdle", c.minIdle, fmt.Sprintf(
			"must be below WithMaxIdle (%d; WithNoPool is WithMaxIdle(0)): each lease would dial a connection and each release close one", c.maxIdle))
	case c.minIdle > 0 && c.defaultKey == nil:
		return optionError("WithMinIdle", c.minIdle, "needs WithDefaultKey to know what to keep warm")
	case c.softLimit < 0:
		return optionError("WithSoftLimit", c.softLimit, "must not be negative")
	case c.softLimit != 0 && c.softLimit <= c.maxSize:
		return optionError("WithSoftLimit", c.softLimit, fmt.Sprintf("must exceed WithMaxSize (%d)", c.maxSize))
	// Written so that NaN, which fails every comparison, fails it too.
	case !(c.lifetimeJitter >= 0 && c.lifetimeJitter <= 1):
		return optionError("WithLifetimeJitter", c.lifetimeJitter, "must be between 0 and 1")
	case c.maxDialing < 1:
		return optionError("WithMaxDialing", c.maxDialing, "must be at least 1")
	case c.logger == nil:
		return optionError("WithLogger", "nil", "logger must not be nil")
	case c.newBackOff == nil:
		return optionError("WithBackOff", "nil", "must not be nil")
	}
	for _, err := range []error{
		positive("WithMaxLifetime", c.maxLifetime),
		positive("WithPrunePeriod", c.prunePeriod),
		positive("WithConnectTimeout", c.connectTimeout),
		positive("WithValidateTimeout", c.validateTimeout),
		nonNegative("WithWaitTimeout", c.waitTimeout),
		nonNegative("WithIdleTimeout", c.idleTimeout),
		nonNegative("WithValidatePeriod", c.validatePeriod),
		nonNegative("WithLeakThreshold", c.leakThreshold),
	} {
		if err != nil {
			return err
		}
	}
	return nil
}

// Sizes are the sizing settings a list of options gives, defaults
// included, before New checks them: for a wrapper that splits one pool's
// settings between two engine pools (package ldapconn's hedge lane).
type Sizes struct {
	MaxSize, MinIdle, SoftLimit, OpsPerConn int
	MaxIdle                                 int // -1: no bound but MaxSize; 0: close every connection on release
	MaxInFlight                             int // 0: max(MaxSize, SoftLimit) × OpsPerConn
}

// ResolveSizes applies opts, in order, to the defaults and returns the
// sizing settings they give. Nil options are skipped.
func ResolveSizes(opts ...Option) Sizes {
	c := defaultConfig()
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	return Sizes{MaxSize: c.maxSize, MinIdle: c.minIdle, SoftLimit: c.softLimit, OpsPerConn: c.opsPerConn,
		MaxIdle: c.maxIdle, MaxInFlight: c.maxInFlight}
}
