package ldapconn

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/fairpool/ldappool/engine"
	"github.com/fairpool/ldappool/lease"
)

// Pool is an LDAP connection pool over one or more servers. Its methods are
// safe for concurrent use.
type Pool struct {
	cfg     config
	health  *health
	keys    *keyring
	service engine.Key
	main    *engine.Pool[*Conn]
	auth    *engine.Pool[*Conn] // nil unless WithAuthPool
}

// NewPool makes a pool over servers, a list of URIs separated by commas or
// white space ("ldap://a:389, ldaps://b"). Nothing is dialed until the first
// lease unless the engine's WithMinIdle asks for it. A URI that does not
// parse, or an invalid option, is an error naming it.
func NewPool(servers string, opts ...Option) (*Pool, error) {
	list, err := ParseServers(servers)
	if err != nil {
		return nil, err
	}
	return newPool(list, opts)
}

// NewPoolList is NewPool for servers given one URI an element.
func NewPoolList(servers []string, opts ...Option) (*Pool, error) {
	list, err := parseURIs(servers)
	if err != nil {
		return nil, err
	}
	return newPool(list, opts)
}

func newPool(servers []Server, opts []Option) (*Pool, error) {
	cfg := defaultConfig()
	for i, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("ldapconn: NewPool: option %d is nil", i+1)
		}
		o.apply(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	p := &Pool{cfg: cfg, keys: newKeyring()}
	p.health = newHealth(servers, cfg.strategy, cfg.retryDelay, cfg.maxBackoff)
	p.service = p.keys.key(cfg.service)
	conn := &connector{cfg: &p.cfg, health: p.health}
	total := cfg.dialTimeout(len(servers))
	base := []engine.Option{engine.WithConnectTimeout(total), engine.WithValidateTimeout(cfg.opTimeout),
		engine.WithDefaultKey(p.service)}
	var err error
	if p.main, err = engine.New[*Conn](conn, append(base, cfg.engine...)...); err != nil {
		return nil, err
	}
	if cfg.authPoolSize > 0 {
		p.auth, err = engine.New[*Conn](conn, engine.WithConnectTimeout(total), engine.WithMaxSize(cfg.authPoolSize))
		if err != nil {
			p.main.Close(context.Background())
			return nil, err
		}
	}
	return p, nil
}

// Lease returns a connection bound as the pool's service identity
// (WithBind), waiting in FIFO order while none is free. Operations through
// the lease's Client run under ctx.
func (p *Pool) Lease(ctx context.Context) (*Lease, error) { return p.LeaseAs(ctx, p.cfg.service) }

// LeaseAs returns a connection bound as creds. Connections are pooled per
// identity; when the pool is full, an idle connection of another identity is
// rebound for the oldest waiter. A wrong password fails with an error
// matching ErrInvalidCredentials, after exactly one bind attempt.
func (p *Pool) LeaseAs(ctx context.Context, creds Credentials) (*Lease, error) {
	if err := creds.check(); err != nil {
		return nil, err
	}
	inner, err := p.main.Lease(ctx, p.keys.key(creds))
	if err != nil {
		return nil, p.unwrapCredentials(err)
	}
	return &Lease{inner: inner, pool: p, ctx: ctx, creds: creds}, nil
}

// unwrapCredentials makes a refused bind the caller's error as it is,
// without the engine's connect wrapping.
func (p *Pool) unwrapCredentials(err error) error {
	var ce *credentialsError
	if errors.As(err, &ce) {
		return ce
	}
	return err
}

// Do leases a connection as the service identity, calls fn with it, and
// releases it. An operation that fails because a reused connection was dead
// (a server restart, an idle cut by a firewall) is retried once on a fresh
// connection, so such errors do not reach the caller; other errors are
// returned as they are. A stream fn leaves undrained is ended: its
// connection is closed.
func (p *Pool) Do(ctx context.Context, fn func(ldap.Client) error) error {
	return p.DoAs(ctx, p.cfg.service, fn)
}

// DoAs is Do for connections bound as creds.
func (p *Pool) DoAs(ctx context.Context, creds Credentials, fn func(ldap.Client) error) error {
	if err := creds.check(); err != nil {
		return err
	}
	err := p.main.Do(ctx, p.keys.key(creds), func(inner *lease.Lease[*Conn]) error {
		l := &Lease{inner: inner, pool: p, ctx: ctx, creds: creds}
		err := fn(l.Client())
		l.endDo()
		l.settle()
		if err != nil && l.broken.Load() && !IsBroken(err) {
			err = fmt.Errorf("%w: %w", engine.ErrBroken, err)
		}
		if p.cfg.noPool {
			inner.Taint(errNoPool)
		}
		return err
	})
	return p.unwrapCredentials(err)
}

// Search runs one search as the service identity through Do.
func (p *Pool) Search(ctx context.Context, req *ldap.SearchRequest) (*ldap.SearchResult, error) {
	var res *ldap.SearchResult
	err := p.Do(ctx, func(c ldap.Client) error {
		var err error
		res, err = c.Search(req)
		return err
	})
	return res, err
}

// Authenticate checks an end user's password with one bind, on the auth pool
// (WithAuthPool) or else on a service connection that is bound back to the
// service identity afterwards. It returns nil for a good password, an error
// matching ErrInvalidCredentials for a wrong one (never retried: retries lock
// accounts), and ErrEmptyPassword without asking the server for an empty
// password, which LDAP would accept as an unauthenticated bind.
func (p *Pool) Authenticate(ctx context.Context, dn, password string) error {
	if dn == "" {
		return errors.New("ldapconn: Authenticate: empty DN")
	}
	if err := (Credentials{DN: dn, Password: password}).check(); err != nil {
		return err
	}
	var l *Lease
	if p.auth != nil {
		inner, err := p.auth.Lease(ctx, p.keys.key(Anonymous))
		if err != nil {
			return err
		}
		// The auth pool's connections are bound as whoever authenticated
		// last and are only ever used to bind again: they need no revert.
		l = &Lease{inner: inner, pool: p, ctx: ctx}
	} else {
		var err error
		if l, err = p.Lease(ctx); err != nil {
			return err
		}
	}
	conn := l.inner.Conn().ldap
	err := run0(&client{l: l}, "Authenticate", func(*ldap.Conn) error { return bind(conn, Credentials{DN: dn, Password: password}) })
	if p.auth == nil {
		l.rebound.Store(true)
	}
	l.Release()
	return err
}

// Stats returns the engine's snapshot of the service pool.
func (p *Pool) Stats() engine.Stats { return p.main.Stats() }

// Servers returns each server's health: up or in backoff, its last error,
// its open connections.
func (p *Pool) Servers() []ServerStatus { return p.health.status(time.Now()) }

// String returns the state table of the pool (and of the auth pool) and the
// servers' health. No password appears in it.
func (p *Pool) String() string {
	var b strings.Builder
	b.WriteString(p.main.String())
	if p.auth != nil {
		b.WriteString("auth pool: ")
		b.WriteString(p.auth.String())
	}
	for _, s := range p.Servers() {
		state := "up"
		if !s.Up {
			state = fmt.Sprintf("down (retry in %v): %s", s.RetryIn.Round(time.Millisecond), s.LastError)
		}
		fmt.Fprintf(&b, "server %s: %d open, %s\n", s.URL, s.Open, state)
	}
	return b.String()
}

// Close closes the pool as engine.Pool.Close does.
func (p *Pool) Close(ctx context.Context) error {
	err := p.main.Close(ctx)
	if p.auth != nil {
		err = errors.Join(err, p.auth.Close(ctx))
	}
	return err
}

func (p *Pool) markDown(server int, err error) { p.health.down(server, err, time.Now()) }
