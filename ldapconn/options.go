package ldapconn

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/fairpool/ldappool/engine"
)

// Option configures a Pool.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// config holds a pool's LDAP settings; defaults beside each field.
type config struct {
	name           string          // "ldap"; the bind lane's stats are name+"/bind"
	service        heldCredentials // Anonymous
	method         *bindMethod     // nil: service binds with a simple bind (binds.go)
	source         *passwordSource // nil: WithBind's password; else the DN's password comes from WithBindPasswordFunc
	bindOptions    []string        // the bind options given, as written: at most one may be
	allowCleartext bool            // false: refuse plain ldap:// when TLS is configured (transport.go)
	dialer         Dialer          // nil: a net.Dialer with the connect timeout
	dialerSet      bool            // WithDialer was given: nil is an error
	strategy       Strategy        // Failover
	tls            *tls.Config     // nil: system roots, ServerName from the URI
	startTLS       bool            // false
	connectTimeout time.Duration   // 5 seconds a dial (TCP and TLS handshake)
	opTimeout      time.Duration   // 10 seconds an operation, bind included
	retryMax       int             // 1 attempt a server a dial (ldappool: retry_max)
	retryDelay     time.Duration   // 100ms between attempts, and a down server's first backoff (ldappool: retry_delay)
	maxBackoff     time.Duration   // 30 seconds, or the retry delay if longer: a down server is retried at least this often
	maxBackoffSet  bool            // WithMaxBackoff was given: a retry delay longer than it is an error
	failbackAfter  time.Duration   // 1 minute: the life of a connection to a fallback server
	validator      Validator       // RootDSE()
	authPoolSize   int             // 2 connections in the bind lane
	retryBroken    bool            // true: Do retries once on a fresh connection
	logger         *slog.Logger    // slog.Default(): the availability log
	maxSize        int             // 10, as the engine's
	opsPerConn     int             // DefaultOpsPerConn operations in flight on one service connection (Do, Search, Compare)
	hedging        bool            // true: Search and Compare are hedged with several servers (hedge.go)
	engine         []engine.Option // the pool knobs below, in the order given, for both pools
}

func defaultConfig() config {
	return config{
		name:           "ldap",
		connectTimeout: 5 * time.Second,
		opTimeout:      10 * time.Second,
		retryMax:       1,
		retryDelay:     100 * time.Millisecond,
		maxBackoff:     30 * time.Second,
		failbackAfter:  time.Minute,
		validator:      RootDSE(),
		authPoolSize:   2,
		retryBroken:    true,
		logger:         slog.Default(),
		maxSize:        10,
		opsPerConn:     DefaultOpsPerConn,
		hedging:        true,
	}
}

// WithBind sets the pool's service identity, the one Lease, Do and Search
// bind as. An empty password with a DN is refused: LDAP would accept it as
// an unauthenticated bind without checking anything. WithExternalBind,
// WithUnauthenticatedBind, WithNTLMBind and WithBindFunc bind the service
// identity other ways; only one bind option may be given. Default: anonymous.
func WithBind(dn, password string) Option {
	return optionFunc(func(c *config) {
		c.service, c.source = hold(Credentials{DN: dn, Password: password}), nil
		c.bindOptions = append(c.bindOptions, fmt.Sprintf("WithBind(%q, REDACTED)", dn))
	})
}

// WithStrategy sets how servers are chosen for new connections. Default
// Failover.
func WithStrategy(s Strategy) Option { return optionFunc(func(c *config) { c.strategy = s }) }

// WithTLSConfig sets the TLS settings for ldaps:// servers and StartTLS. The
// pool fills in ServerName from the URI when it is empty.
func WithTLSConfig(cfg *tls.Config) Option { return optionFunc(func(c *config) { c.tls = cfg }) }

// WithStartTLS upgrades every ldap:// connection with StartTLS before it
// binds.
func WithStartTLS() Option { return optionFunc(func(c *config) { c.startTLS = true }) }

// WithConnectTimeout bounds each TCP connect and TLS handshake. Default 5s.
func WithConnectTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) { c.connectTimeout = d })
}

// WithOperationTimeout bounds every LDAP operation, binds included, with
// go-ldap's request timeout; the error then matches
// context.DeadlineExceeded. The connection is closed, and a probe of its
// server (a new connection reading the root DSE within this timeout) decides
// whether the server is down or was only slow for one operation; a frozen
// server is left for the next. Default 10s.
func WithOperationTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) { c.opTimeout = d })
}

// WithRetry sets how many times a dial tries each server before moving on,
// 1 to 100, and the delay between tries, up to an hour, which is also the
// first backoff of a server that failed (Python ldappool's retry_max and
// retry_delay). Default 1 try, 100ms.
func WithRetry(max int, delay time.Duration) Option {
	return optionFunc(func(c *config) { c.retryMax, c.retryDelay = max, delay })
}

// Bounds of WithRetry and WithMaxBackoff. Tries are for a server that blinks
// (a restart, a full listen queue) while a caller waits; a server down for
// longer is left to the backoff, which still retries it at least daily.
const (
	maxRetries    = 100
	maxRetryDelay = time.Hour
	maxMaxBackoff = 24 * time.Hour
)

// WithMaxBackoff caps the exponential backoff of a server that keeps failing
// (each interval is then randomized by ±50%, as cenkalti/backoff does), at
// most a day and at least the retry delay. Default 30s, or the retry delay
// if that is longer.
func WithMaxBackoff(d time.Duration) Option {
	return optionFunc(func(c *config) { c.maxBackoff, c.maxBackoffSet = d, true })
}

// WithFailbackAfter sets the lifetime of connections to any server but the
// first under the Failover strategy. Default 1 minute.
func WithFailbackAfter(d time.Duration) Option {
	return optionFunc(func(c *config) { c.failbackAfter = d })
}

// WithValidator sets how connections are checked (on lease, release or in
// the background, as the engine options say). Default RootDSE().
func WithValidator(v Validator) Option { return optionFunc(func(c *config) { c.validator = v }) }

// WithAuthPool sizes the bind lane: the n connections, apart from the
// service pool's, on which Authenticate checks end users' passwords
// (Keystone's auth pool; OpenLDAP's load balancer keeps bind connections
// apart too). Because binds never take a service connection, Authenticate
// may be called inside Do or while holding a Lease without waiting on
// itself. The lane dials nothing until the first Authenticate; its
// connections count against its own n, not against WithMaxSize. Default 2.
func WithAuthPool(n int) Option { return optionFunc(func(c *config) { c.authPoolSize = n }) }

// WithNoPool closes every connection when its lease ends: each lease dials and
// binds anew (Python ldappool's use_pool=False), for comparison and for
// deployments that must not keep connections open. It is WithMaxIdle(0).
func WithNoPool() Option {
	return optionFunc(func(c *config) { c.engine = append(c.engine, engine.WithMaxIdle(0)) })
}

// WithPoolOptions passes options to the generic engine underneath.
//
// Deprecated: every engine setting has an option of its own in this package
// (WithMaxSize, WithWaitTimeout, ...), which is what to use; this remains so
// that code written against earlier versions builds. The engine's
// WithConnectTimeout (a whole dial) is set by the pool from WithConnectTimeout,
// WithOperationTimeout and WithRetry; passing it here overrides that.
func WithPoolOptions(opts ...engine.Option) Option {
	return optionFunc(func(c *config) { c.engine = append(c.engine, opts...) })
}

// The pool's sizing, waiting, lifetime and validation settings. Each applies
// to the service pool, and the same resolved settings to the bind lane
// (WithAuthPool), but for its size: the lane keeps no idle minimum and no
// soft limit.

// WithMaxSize sets how many connections the service pool holds open at most,
// counting those being dialed and those whose close has not returned. It is a
// hard maximum at the server, under churn and failover alike. Default 10.
// With more than one server and n of 3 or more, one of the n is the hedge
// lane's (WithHedging).
// Beside it the bind lane holds WithAuthPool connections, and while a
// server is suspected of having stalled (an operation timed out, or nothing
// answered) one probe connection to it decides whether it is slow or dead.
func WithMaxSize(n int) Option {
	return optionFunc(func(c *config) { c.maxSize = n; c.engine = append(c.engine, engine.WithMaxSize(n)) })
}

// DefaultOpsPerConn is how many operations of the service identity one
// connection carries at once unless WithOpsPerConn says otherwise
// (docs/benchmarks.md has the measurements it was chosen by).
const DefaultOpsPerConn = 16

// WithOpsPerConn sets how many operations of the service identity (Do,
// Search, Compare) one connection carries at once: go-ldap multiplexes them
// by message ID, so a pool of WithMaxSize connections serves up to
// WithMaxSize × n operations in flight, not WithMaxSize. An operation goes
// to the least-loaded connection, in the same first-come first-served queue
// as leases; a connection is dialed only when every one carries n. Lease,
// LeaseAs, DoAs and Authenticate always take a whole connection. 1 gives
// every operation a connection of its own. Default DefaultOpsPerConn (16).
func WithOpsPerConn(n int) Option {
	return optionFunc(func(c *config) { c.opsPerConn = n; c.engine = append(c.engine, engine.WithOpsPerConn(n)) })
}

// WithMaxInFlight caps the operations in flight across the service pool's
// shared connections; past it an operation waits its turn (or fails at once
// with WithFailFast). Default 0: WithMaxSize × WithOpsPerConn.
func WithMaxInFlight(n int) Option { return engineOption(engine.WithMaxInFlight(n)) }

// WithMinIdle keeps at least n idle connections bound as the service
// identity, dialing in the background with backoff. A refused service
// password stops those dials, logged once, until a lease succeeds. n may not
// exceed WithMaxSize, and must be below WithMaxIdle when that is set (so 0
// with WithNoPool): otherwise each lease would dial a connection to keep n
// idle, and each release close one past the idle bound. Default 0.
func WithMinIdle(n int) Option { return engineOption(engine.WithMinIdle(n)) }

// WithMaxIdle keeps at most n connections idle; one released past it is
// closed. WithMaxIdle(0) is WithNoPool. Default: no bound but the max size.
func WithMaxIdle(n int) Option { return engineOption(engine.WithMaxIdle(n)) }

// WithHedging turns hedged reads on or off. With more than one server, a
// Search or Compare still unanswered after its server's recent
// 99th-percentile answer time (or twice its usual time, if sooner) is sent
// to another server as well; the first answer wins (not a busy or
// unavailable one) and the other request is abandoned. After a first burst
// of up to 32, at most one read in twenty is sent twice, besides reads still
// unanswered after their server's stall time (150 ms at least: a connection
// gone silent); writes and binds never are, nor anything inside Do. One of the WithMaxSize connections is
// then kept open to another server (under Failover, one other than the
// server the pool serves from) to carry the hedges, a row of Stats; a soft
// limit and WithMaxInFlight count it too. There is no hedge lane, and so
// no hedging, with one server, a size below 3, WithNoPool or WithMaxIdle(0),
// WithMinIdle equal to the size or one below WithMaxIdle, or
// WithMaxInFlight(1).
//
// With hedging on, the pool also leaves a server whose fastest recent
// answers take 4 times another's and 10 ms more, as OpenLDAP's load
// balancer picks the better of two servers by recent latency, even the
// first under Failover (its fastest answers: a busy server's average is far
// above them, a slow one's is not):
// one read in each 500 ms that the hedge lane's server answers nothing goes
// there first, so that both servers' answer times are known.
// WithHedging(false) keeps every connection on the servers the strategy
// picks. Default true.
func WithHedging(enabled bool) Option { return optionFunc(func(c *config) { c.hedging = enabled }) }

// WithSoftLimit lets the service pool grow past its max size, up to n, while
// callers wait; it shrinks back as connections are released with nobody
// waiting (ldaptive's soft-limit pool). Default: off.
func WithSoftLimit(n int) Option { return engineOption(engine.WithSoftLimit(n)) }

// WithFailFast makes a lease fail at once with an error matching
// ErrExhausted, instead of waiting, when no connection is idle and none can
// be dialed (Keystone's MaxConnectionReachedError).
func WithFailFast() Option { return engineOption(engine.WithFailFast()) }

// WithWaitTimeout bounds how long a lease waits in the queue; past it the
// error matches ErrWaitTimeout and context.DeadlineExceeded. Default 0: wait
// until the caller's context ends.
func WithWaitTimeout(d time.Duration) Option { return engineOption(engine.WithWaitTimeout(d)) }

// WithMaxLifetime closes a connection this long after it was opened, when it
// is next idle, shortened at random by up to WithLifetimeJitter of it.
// Default 10 minutes.
func WithMaxLifetime(d time.Duration) Option { return engineOption(engine.WithMaxLifetime(d)) }

// WithLifetimeJitter sets the largest fraction (0 to 1) by which a
// connection's lifetime is shortened at random, so that connections made
// together do not expire together. Default 0.1.
func WithLifetimeJitter(f float64) Option { return engineOption(engine.WithLifetimeJitter(f)) }

// WithIdleTimeout closes connections idle this long, down to WithMinIdle of
// them. 0 disables it. Default 5 minutes.
func WithIdleTimeout(d time.Duration) Option { return engineOption(engine.WithIdleTimeout(d)) }

// WithPrunePeriod sets how often idle connections are checked for expiry and
// idleness. Default 30 seconds.
func WithPrunePeriod(d time.Duration) Option { return engineOption(engine.WithPrunePeriod(d)) }

// WithValidateOnLease validates an idle connection (with the Validator)
// before handing it out; one that fails is closed and the caller gets
// another, never the error.
func WithValidateOnLease() Option { return engineOption(engine.WithValidateOnLease()) }

// WithValidateOnRelease validates a connection when it is released, before
// it is pooled.
func WithValidateOnRelease() Option { return engineOption(engine.WithValidateOnRelease()) }

// WithValidatePeriod validates idle connections in the background every d;
// one that fails is closed and replaced. Default 0: never.
func WithValidatePeriod(d time.Duration) Option { return engineOption(engine.WithValidatePeriod(d)) }

// WithValidateTimeout bounds each validation and each rebind. Default: the
// operation timeout.
func WithValidateTimeout(d time.Duration) Option { return engineOption(engine.WithValidateTimeout(d)) }

// WithMaxDialing bounds the dials, and separately the background
// validations, in flight at once. Default 4.
func WithMaxDialing(n int) Option { return engineOption(engine.WithMaxDialing(n)) }

// WithLeakThreshold logs, with the stack that leased it, every lease held
// longer than d. Default 0: off.
func WithLeakThreshold(d time.Duration) Option { return engineOption(engine.WithLeakThreshold(d)) }

// WithRetryBroken sets whether Do, DoAs and Search retry, once and on a fresh
// connection, an operation that failed because its reused connection was
// dead (a server restart, an idle cut). Default true.
func WithRetryBroken(retry bool) Option {
	return optionFunc(func(c *config) { c.retryBroken = retry })
}

// WithLogger sets where the pool logs: servers' availability (a server down
// as a warning; every server down as an error, once until one comes back; a
// server back up, a failover and a failback as information, each logged once
// per change), credentials refused for the service identity at error level,
// leaks and close errors as warnings, and a trace
// of every dial, lease, release and close at debug level (written from the
// supervisor goroutine: a debug handler must not block). Default
// slog.Default().
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(c *config) { c.logger = l; c.engine = append(c.engine, engine.WithLogger(l)) })
}

// WithPoolName names the pool in its Stats (Name) and in its metrics
// (db.client.connection.pool.name, see package ldapotel); the bind lane's
// AuthStats are named name+"/bind". Default "ldap".
func WithPoolName(name string) Option { return optionFunc(func(c *config) { c.name = name }) }

// WithBackOff sets how background dials (WithMinIdle, replacements of
// connections that failed validation) back off after failing. Default:
// exponential from 100ms to 30s, forever.
func WithBackOff(newBackOff func() backoff.BackOff) Option {
	return engineOption(engine.WithBackOff(newBackOff))
}

func engineOption(o engine.Option) Option {
	return optionFunc(func(c *config) { c.engine = append(c.engine, o) })
}

// validate checks each option with its own name and value, and fills in the
// default max backoff, which follows a longer retry delay.
func (c *config) validate() error {
	bad := func(name string, v any, why string) error {
		return &OptionError{Option: fmt.Sprintf("%s(%v)", name, v), Reason: why}
	}
	retry := fmt.Sprintf("%d, %v", c.retryMax, c.retryDelay)
	switch {
	case c.name == "":
		return bad("WithPoolName", `""`, "must not be empty")
	case c.strategy < Failover || c.strategy > FewestConnections:
		return bad("WithStrategy", c.strategy, "unknown strategy")
	case c.connectTimeout <= 0:
		return bad("WithConnectTimeout", c.connectTimeout, "must be positive")
	case c.opTimeout <= 0:
		return bad("WithOperationTimeout", c.opTimeout, "must be positive")
	case c.retryMax < 1:
		return bad("WithRetry", retry, "tries must be at least 1")
	case c.retryMax > maxRetries:
		return bad("WithRetry", retry, fmt.Sprintf("tries must be at most %d; WithMaxBackoff sets how long a down server is left alone", maxRetries))
	case c.retryDelay <= 0:
		return bad("WithRetry", retry, "delay must be positive")
	case c.retryDelay > maxRetryDelay:
		return bad("WithRetry", retry, fmt.Sprintf("delay must be at most %v; WithMaxBackoff sets how long a down server is left alone", maxRetryDelay))
	case c.maxBackoffSet && c.maxBackoff < c.retryDelay:
		return bad("WithMaxBackoff", c.maxBackoff, fmt.Sprintf("must be at least the retry delay (%v)", c.retryDelay))
	case c.maxBackoff > maxMaxBackoff:
		return bad("WithMaxBackoff", c.maxBackoff, fmt.Sprintf("must be at most %v", maxMaxBackoff))
	case c.failbackAfter <= 0:
		return bad("WithFailbackAfter", c.failbackAfter, "must be positive")
	case c.logger == nil:
		return bad("WithLogger", "nil", "logger must not be nil")
	case c.validator == nil:
		return bad("WithValidator", "nil", "must not be nil")
	case c.authPoolSize < 1:
		return bad("WithAuthPool", c.authPoolSize, "the bind lane needs at least 1 connection")
	}
	for i, o := range c.engine {
		if o == nil {
			return &OptionError{Option: "WithPoolOptions", Reason: fmt.Sprintf("option %d is nil", i+1)}
		}
	}
	if err := c.checkBind(); err != nil {
		return err
	}
	if c.source != nil {
		if err := c.source.check(); err != nil {
			return err
		}
	} else if err := c.service.get().check(); err != nil {
		return &bindError{dn: c.service.get().DN, err: err}
	}
	if !c.maxBackoffSet {
		c.maxBackoff = max(c.maxBackoff, c.retryDelay)
	}
	return nil
}

// bindError is WithBind's error: it names the DN, never the password, and
// unwraps to the reason (ErrEmptyPassword).
type bindError struct {
	dn  string
	err error
}

func (e *bindError) Error() string {
	pw := `""`
	if e.dn == "" {
		pw = "REDACTED"
	}
	return fmt.Sprintf("ldapconn: WithBind(%q, %s): %v", e.dn, pw, strings.TrimPrefix(e.err.Error(), "ldapconn: "))
}

func (e *bindError) Unwrap() error { return e.err }
