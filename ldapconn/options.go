package ldapconn

import (
	"crypto/tls"
	"fmt"
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
	maxBackoff     time.Duration // 30 seconds: a down server is retried at least this often
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
// and the delay between tries, which is also the first backoff of a server
// that failed (Python ldappool's retry_max and retry_delay). Default 1 try,
// 100ms.
func WithRetry(max int, delay time.Duration) Option {
	return optionFunc(func(c *config) { c.retryMax, c.retryDelay = max, delay })
}

// WithMaxBackoff caps the exponential backoff of a server that keeps failing
// (each interval is then randomized by ±50%, as cenkalti/backoff does).
// Default 30s.
func WithMaxBackoff(d time.Duration) Option { return optionFunc(func(c *config) { c.maxBackoff = d }) }

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

func (c *config) validate() error {
	bad := func(name string, v any, why string) error {
		return fmt.Errorf("ldapconn: %s(%v): %s", name, v, why)
	}
	switch {
	case c.strategy < Failover || c.strategy > FewestConnections:
		return bad("WithStrategy", c.strategy, "unknown strategy")
	case c.connectTimeout <= 0:
		return bad("WithConnectTimeout", c.connectTimeout, "must be positive")
	case c.opTimeout <= 0:
		return bad("WithOperationTimeout", c.opTimeout, "must be positive")
	case c.retryMax < 1:
		return bad("WithRetry", c.retryMax, "tries must be at least 1")
	case c.retryDelay <= 0:
		return bad("WithRetry", c.retryDelay, "delay must be positive")
	case c.maxBackoff < c.retryDelay:
		return bad("WithMaxBackoff", c.maxBackoff, "must be at least the retry delay")
	case c.failbackAfter <= 0:
		return bad("WithFailbackAfter", c.failbackAfter, "must be positive")
	case c.validator == nil:
		return bad("WithValidator", "nil", "must not be nil")
	case c.authPoolSize < 0:
		return bad("WithAuthPool", c.authPoolSize, "must not be negative")
	}
	if err := c.service.check(); err != nil {
		return fmt.Errorf("ldapconn: WithBind: %w", err)
	}
	return nil
}
