package ldapconn

import (
	"crypto/tls"
	"fmt"
	"strings"
	"time"

	"github.com/fairpool/ldappool/engine"
)

// Option configures a Pool.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// config holds a pool's LDAP settings; defaults beside each field.
type config struct {
	service        Credentials   // Anonymous
	strategy       Strategy      // Failover
	tls            *tls.Config   // nil: system roots, ServerName from the URI
	startTLS       bool          // false
	connectTimeout time.Duration // 5 seconds a dial (TCP and TLS handshake)
	opTimeout      time.Duration // 10 seconds an operation, bind included
	retryMax       int           // 1 attempt a server a dial (ldappool: retry_max)
	retryDelay     time.Duration // 100ms between attempts, and a down server's first backoff (ldappool: retry_delay)
	maxBackoff     time.Duration // 30 seconds, or the retry delay if longer: a down server is retried at least this often
	maxBackoffSet  bool          // WithMaxBackoff was given: a retry delay longer than it is an error
	failbackAfter  time.Duration // 1 minute: the life of a connection to a fallback server
	validator      Validator     // RootDSE()
	authPoolSize   int           // 0: Authenticate binds on the main pool and reverts
	noPool         bool          // false
	engine         []engine.Option
}

func defaultConfig() config {
	return config{
		connectTimeout: 5 * time.Second,
		opTimeout:      10 * time.Second,
		retryMax:       1,
		retryDelay:     100 * time.Millisecond,
		maxBackoff:     30 * time.Second,
		failbackAfter:  time.Minute,
		validator:      RootDSE(),
	}
}

// WithBind sets the pool's service identity, the one Lease, Do and Search
// bind as. An empty password with a DN is refused: LDAP would accept it as
// an unauthenticated bind without checking anything. Default: anonymous.
func WithBind(dn, password string) Option {
	return optionFunc(func(c *config) { c.service = Credentials{DN: dn, Password: password} })
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
// go-ldap's request timeout. An operation that times out breaks its
// connection and counts against its server, so a frozen server is left for
// the next one. Default 10s.
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

// WithAuthPool gives Authenticate a pool of its own with n connections, used
// only for end users' binds (Keystone's auth pool), so that they never touch
// the service pool's connections.
func WithAuthPool(n int) Option { return optionFunc(func(c *config) { c.authPoolSize = n }) }

// WithNoPool closes every connection when its lease ends: each lease dials and
// binds anew (Python ldappool's use_pool=False), for comparison and for
// deployments that must not keep connections open.
func WithNoPool() Option { return optionFunc(func(c *config) { c.noPool = true }) }

// WithPoolOptions passes options to the engine: sizes, waits, lifetimes,
// validation schedule, logging.
func WithPoolOptions(opts ...engine.Option) Option {
	return optionFunc(func(c *config) { c.engine = append(c.engine, opts...) })
}

// validate checks each option with its own name and value, and fills in the
// default max backoff, which follows a longer retry delay.
func (c *config) validate() error {
	bad := func(name string, v any, why string) error {
		return fmt.Errorf("ldapconn: %s(%v): %s", name, v, why)
	}
	retry := fmt.Sprintf("%d, %v", c.retryMax, c.retryDelay)
	switch {
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
	case c.validator == nil:
		return bad("WithValidator", "nil", "must not be nil")
	case c.authPoolSize < 0:
		return bad("WithAuthPool", c.authPoolSize, "must not be negative")
	}
	for i, o := range c.engine {
		if o == nil {
			return fmt.Errorf("ldapconn: WithPoolOptions: option %d is nil", i+1)
		}
	}
	if err := c.service.check(); err != nil {
		return &bindError{dn: c.service.DN, err: err}
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
