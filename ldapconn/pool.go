package ldapconn

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-ldap/ldap/v3"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/singleflight"

	"github.com/fairpool/ldappool/engine"
	"github.com/fairpool/ldappool/internal/ctxtime"
)

// Pool is an LDAP connection pool over one or more servers. Its methods are
// safe for concurrent use.
type Pool struct {
	cfg     config
	health  *health
	keys    *keyring
	service engine.Key
	main    *engine.Pool[*Conn] // the service pool: Lease, LeaseAs, Do, DoAs, Search
	auth    *engine.Pool[*Conn] // the bind lane: Authenticate
	conn    *connector
	moves   *moveBudget // reads hedged, or moved off a slow server (latency.go, hedge.go)
	lane    *hedgeLane  // connections kept apart for hedged reads; nil without hedging (hedge.go)

	// Probes of servers suspected down (see suspect): one at a time per
	// server, ended by Close.
	probes   *singleflight.Group
	probeMu  *sync.Mutex // orders a probe's start with Close
	probing  *sync.WaitGroup
	probeCtx context.Context
	endProbe context.CancelFunc
	closed   *atomic.Bool // Close was called; a pointer, so that a Pool value (which Format prints) copies no lock
}

// NewPool makes a pool over servers, a list of URIs separated by commas or
// white space ("ldap://a:389, ldaps://b"). Nothing is dialed until the first
// lease unless WithMinIdle asks for it. A URI that does not
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
			return nil, &OptionError{Option: "NewPool", Reason: fmt.Sprintf("option %d is nil", i+1)}
		}
		o.apply(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := cfg.checkTransport(servers); err != nil {
		return nil, err
	}
	p := &Pool{cfg: cfg, keys: newKeyring(), closed: new(atomic.Bool)}
	p.health = newHealth(servers, cfg.strategy, cfg.retryDelay, cfg.maxBackoff, cfg.logger)
	p.service = p.keys.key(cfg.service.get())
	switch {
	case cfg.method != nil:
		p.service = cfg.method.key()
	case cfg.source != nil:
		p.service = p.keys.sourceKey(cfg.source)
	}
	conn := &connector{cfg: &p.cfg, health: p.health}
	p.conn = conn

	p.probeMu, p.probing, p.probes = new(sync.Mutex), new(sync.WaitGroup), new(singleflight.Group)
	p.probeCtx, p.endProbe = context.WithCancel(context.Background())
	// One resolved configuration makes both pools: the pool derives what the
	// engine needs from the LDAP settings, then the user's knobs apply in
	// the order given, then the bind lane's own size.
	base := []engine.Option{engine.WithConnectTimeout(cfg.dialTimeout(len(servers))),
		engine.WithValidateTimeout(cfg.opTimeout)}
	mainOpts := append(append(slices.Clip(base), engine.WithDefaultKey(p.service), engine.WithOpsPerConn(cfg.opsPerConn)), cfg.engine...)
	mainOpts = append(mainOpts, engine.WithName(cfg.name))
	authOpts := append(append(slices.Clip(base), cfg.engine...),
		engine.WithMaxSize(cfg.authPoolSize), engine.WithMinIdle(0), engine.WithSoftLimit(0),
		engine.WithOpsPerConn(1), engine.WithMaxInFlight(0),
		engine.WithName(cfg.name+"/bind"))
	var err error
	if split, laneOpts, slot, ok := hedgeSplit(cfg, len(servers), mainOpts); ok {
		p.health.tails = true // before any connection: operations read it without a lock
		// Settings the split cannot honour (WithMinIdle(n-1) of a soft
		// limit, say) leave the pool without a lane rather than fail.
		if main, err := engine.New[*Conn](conn, append(slices.Clip(mainOpts), split...)...); err == nil {
			p.main = main
			lane := &hedgeLane{slot: slot}
			standby := &connector{cfg: &p.cfg, health: p.health, lane: lane}
			if lane.pool, err = engine.New[*Conn](standby, append(slices.Clip(mainOpts), laneOpts...)...); err == nil {
				p.lane = lane
			} else {
				main.Close(context.Background())
				p.main = nil
			}
		}
	}
	if p.main == nil {
		if p.main, err = engine.New[*Conn](conn, mainOpts...); err != nil {
			p.endProbe()
			return nil, optionError(err)
		}
	}
	p.moves = newMoveBudget(p.Stats().MaxInFlight)
	if p.auth, err = engine.New[*Conn](conn, authOpts...); err != nil {
		p.main.Close(context.Background())
		if p.lane != nil {
			p.lane.pool.Close(context.Background())
		}
		p.endProbe()
		return nil, optionError(err)
	}
	if len(servers) > 1 {
		p.probing.Add(1)
		go p.watchStalls()
	}
	return p, nil
}

// optionError names an engine setting as this package's option of the same
// name, which is how the user wrote it.
func optionError(err error) error {
	var oe *engine.OptionError
	if errors.As(err, &oe) {
		return &OptionError{Option: oe.Option, Reason: oe.Reason}
	}
	return err
}

// closedError is what every entry point returns once Close was called.
func closedError(op string) error { return fmt.Errorf("ldapconn: %s: %w", op, ErrClosed) }

// Lease returns a connection bound as the pool's service identity
// (WithBind, WithBindPasswordFunc, or another bind option), waiting in FIFO order while none is
// free. Operations through the lease's Client run under ctx.
func (p *Pool) Lease(ctx context.Context) (*Lease, error) {
	if p.closed.Load() {
		return nil, closedError("Lease")
	}
	return p.leaseAs(ctx, p.service, false)
}

// LeaseAs returns a connection bound as creds. Connections are pooled per
// identity; when the pool is full, an idle connection of another identity is
// rebound for the oldest waiter. A wrong password fails with an error
// matching ErrInvalidCredentials, after exactly one bind attempt.
func (p *Pool) LeaseAs(ctx context.Context, creds Credentials) (*Lease, error) {
	if p.closed.Load() {
		return nil, closedError("Lease")
	}
	if err := creds.check(); err != nil {
		return nil, err
	}
	return p.leaseAs(ctx, p.key(creds), false)
}

// key returns the pool key of creds; the service identity's is derived once.
// Under another bind option than WithBind, creds are never the service's.
func (p *Pool) key(creds Credentials) engine.Key {
	if p.cfg.method == nil && creds == p.cfg.service.get() {
		return p.service
	}
	return p.keys.key(creds)
}

// unwrapCredentials makes a refused bind the caller's error as it is,
// without the engine's connect wrapping.
func (p *Pool) unwrapCredentials(err error) error {
	var ce *credentialsError
	if errors.As(err, &ce) {
		return ce
	}
	var re *refusedError
	if errors.As(err, &re) {
		return re
	}
	return err
}

// Do leases a connection as the service identity, calls fn with it, and
// releases it. When fn fails because its connection broke (a server
// restart, an idle cut by a firewall, a killed server) Do calls fn once more
// on a fresh connection, so such errors do not reach the caller, unless fn
// sent a write (Add, Del, Modify, ModifyDN, PasswordModify, Extended): then
// the error matches ErrOutcomeUnknown and fn is not called again; nor is it
// when fn's error matches ErrOutcomeUnknown (a write fn sent through a nested
// Do). Do knows only of the writes fn sends on its own client: a write fn
// sends through a nested Do that succeeded is that Do's, and if fn's own
// connection breaks afterwards, fn runs again and so does the nested Do. A
// function that nests writes should return the nested Do's error, or be safe
// to run twice. An operation timeout is not retried. While every server refuses connections
// (a directory restarting), Do waits for the next attempt, for up to two
// seconds within ctx, before it returns ErrServerDown. Other errors are
// returned as they are.
//
// fn's operations run on a share of a connection that carries up to
// WithOpsPerConn operations at once (go-ldap multiplexes them), so the
// calls that would change the connection for all of them (Bind and the
// other binds, StartTLS, Unbind, SetTimeout) fail with an error matching
// ErrSharedConnection; DoAs and Lease lend a connection of the caller's own.
// When fn's context ends, a search it runs is abandoned at the server
// (an LDAP Abandon), and the shared connection stays open. Under
// WithStartTLS the message IDs travel inside TLS, where the pool cannot
// read them: no Abandon is sent, the server finishes the search, and its
// answer is dropped (ldaps:// has no such limit). A paged search
// (SearchWithPaging) takes turns with other paged searches on the
// connection, since servers keep one paging state per connection.
//
// fn may call Authenticate (binds have their own lane). It may call Search,
// Compare or Do of the same pool, which take another share (of WithOpsPerConn
// on a connection, WithMaxInFlight in all); but not Lease, LeaseAs or DoAs,
// which wait for a whole connection, and not so deep that every share is
// held by callers waiting for one: each would then wait for itself until its
// context ends. A stream fn leaves undrained is ended: on a share it is
// abandoned at the server and the connection kept; on a whole connection
// (WithOpsPerConn(1)) the connection is closed.
func (p *Pool) Do(ctx context.Context, fn func(ldap.Client) error) error {
	if p.closed.Load() {
		return closedError("Do")
	}
	if fn == nil {
		return fmt.Errorf("%w: Do: the function is nil", ErrBadRequest)
	}
	return p.doAs(ctx, p.service, true, fn)
}

// DoAs is Do for connections bound as creds, each lent whole to fn (so fn
// may bind or StartTLS on it, as on a Lease's).
func (p *Pool) DoAs(ctx context.Context, creds Credentials, fn func(ldap.Client) error) error {
	if p.closed.Load() {
		return closedError("Do")
	}
	if err := creds.check(); err != nil {
		return err
	}
	if fn == nil {
		return fmt.Errorf("%w: DoAs: the function is nil", ErrBadRequest)
	}
	return p.doAs(ctx, p.key(creds), false, fn)
}

// doAs is Do for connections bound as key's identity, on a share of one
// (WithOpsPerConn) if share.
func (p *Pool) doAs(ctx context.Context, key engine.Key, share bool, fn func(ldap.Client) error) error {
	l, err := p.leaseThroughRestart(ctx, key, false, share)
	if err != nil {
		return err
	}
	err = p.do(l, fn)
	if err != nil && l.broken() && l.wrote.Load() {
		// A write was sent on a connection that then broke: the server may
		// have applied it or not. Rule 8: never send it again silently.
		return fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
	}
	if err == nil || !p.cfg.retryBroken || !l.broken() || ctx.Err() != nil || timedOut(err) ||
		errors.Is(err, ErrOutcomeUnknown) {
		return err
	}
	// The connection was dead (a restart, an idle cut, a killed server) and
	// fn sent only reads: once more on a connection validated or dialed for
	// this call, whatever the age of the first (rule 8: a read may be
	// retried), and on a share again if the first was one, so that fn's
	// nested calls find the shares they found the first time.
	retry, lerr := p.leaseThroughRestart(ctx, key, true, share)
	if lerr != nil {
		return fmt.Errorf("%w (and no fresh connection to retry on: %w)", err, lerr)
	}
	return p.do(retry, fn)
}

// do calls fn with l's client and releases l; a panic in fn discards the
// connection and goes on. An operation fn gave up on (its context ended)
// keeps the connection until it ends, then the connection goes back; a
// stream fn left undrained has its connection closed.
func (p *Pool) do(l *Lease, fn func(ldap.Client) error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			l.Discard(fmt.Errorf("ldapconn: panic in Do's function: %v", v))
			panic(v)
		}
		l.endDo()
	}()
	return fn(l.Client())
}

// restartGrace is how long Do, DoAs and Search keep asking for a connection
// while every server refuses them, within the caller's context: a directory
// restarting (kill -9 and back, a rolling upgrade) is down for well under a
// second, and nothing was sent, so waiting is safe and costs the caller
// nothing but the wait. Past it, or past the caller's deadline, the caller
// gets the error that says every server is down.
const restartGrace = 2 * time.Second

// restarting reports whether err says every server is down because the
// last one refused or reset the connection, as a restarting server does; a
// TLS or bind failure, or a timeout, is not waited out.
func restarting(err error) bool {
	var down *AllServersDownError
	return errors.As(err, &down) && down.Last != nil &&
		(errors.Is(down.Last, syscall.ECONNREFUSED) || droppedAfterAccept(down.Last))
}

// leaseThroughRestart is leaseAs for Do: while every server refuses, it waits
// for the first one's next attempt and asks again, for up to restartGrace
// and within ctx.
//
// A server that ends the TLS handshake without a TLS answer twice in a row
// is not waited for longer: a restarting one soon refuses connections
// instead, and one that keeps doing it is most likely a plain LDAP port
// behind an ldaps:// URI, which waiting does not mend.
func (p *Pool) leaseThroughRestart(ctx context.Context, key engine.Key, fresh, share bool) (*Lease, error) {
	start := time.Now()
	noTLS := 0
	for {
		l, err := p.lease(ctx, key, engine.Request{Fresh: fresh, Share: share, Scoped: true})
		if err == nil || !restarting(err) || ctx.Err() != nil || time.Since(start) >= restartGrace {
			return l, err
		}
		if noTLS = noTLS + 1; !errors.Is(err, errNoTLSAnswer) {
			noTLS = 0
		} else if noTLS >= 2 {
			return l, err
		}
		_, at := p.health.soonest()
		wait := min(max(time.Until(at), time.Millisecond), restartGrace-time.Since(start))
		if ctxtime.Sleep(ctx, wait) != nil || p.closed.Load() {
			return nil, err
		}
	}
}

// leaseAs leases a connection bound as key's identity; fresh asks for one
// validated or dialed for this lease.
func (p *Pool) leaseAs(ctx context.Context, key engine.Key, fresh bool) (*Lease, error) {
	return p.lease(ctx, key, engine.Request{Fresh: fresh})
}

// lease is leaseAs as r asks: a share of a connection that carries other
// operations at once (with WithOpsPerConn above 1), or a lease this
// package gives back itself (Do's: Scoped).
func (p *Pool) lease(ctx context.Context, key engine.Key, r engine.Request) (*Lease, error) {
	inner, err := p.main.Get(ctx, key, r)
	if err != nil {
		if errors.Is(err, engine.ErrClosed) {
			return nil, closedError("Lease")
		}
		return nil, p.downAtDeadline(p.unwrapCredentials(err))
	}
	return newLease(inner, p, ctx, key.Credentials.(identity), inner.Shared()), nil
}

// downAtDeadline returns err, a lease's error, as one that matches
// ErrServerDown too (an *AllServersDownError with each server's status) when
// it is the caller's deadline (or the wait timeout) and every server is down
// as it ends: the lease waited for a server's next attempt after its
// backoff, which outlasted the caller, and "the directory is down" is the
// answer the caller needs, not "size the pool". It still matches
// context.DeadlineExceeded (and ErrWaitTimeout).
func (p *Pool) downAtDeadline(err error) error {
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrServerDown) {
		return err
	}
	now := time.Now()
	if !p.health.everyServerDown(now) {
		return err
	}
	return fmt.Errorf("%w: %w", err, &AllServersDownError{Servers: p.health.status(now)})
}

// Search runs one search as the service identity through Do, so a search
// that met a connection the server had closed is retried once on a fresh one.
//
// With more than one server, a search still unanswered after its server's
// recent 99th-percentile answer time (or twice its usual time, if sooner)
// is hedged (WithHedging): sent on the hedge lane to another server too,
// the first answer wins (not a busy or unavailable one) and the other search
// is abandoned (an LDAP Abandon); after a first burst of up to 32, at most
// about one search in twenty is sent twice (besides searches still unanswered
// after their server's stall time, 150 ms at least). Hedges that win two in three of a server's hedged searches
// (five at least, within a second), each over a search that no search sent
// to that server after it overtook, mark it slow (ServerStatus.Slow): new
// searches go to the hedge lane, and the pool's connections to it are
// closed as their searches end, so that it dials elsewhere. Without a hedge
// lane (WithHedging(false), a WithMaxSize below 3), a search that waits 4x what
// its server usually takes, and 2 ms more, is abandoned there and run again
// on a connection to a faster server.
func (p *Pool) Search(ctx context.Context, req *ldap.SearchRequest) (*ldap.SearchResult, error) {
	var res *ldap.SearchResult
	if p.lane != nil {
		return hedgedRead(p, ctx, func(c *client) (*ldap.SearchResult, error) { return c.Search(req) })
	}
	if len(p.health.servers) == 1 {
		err := p.Do(ctx, func(c ldap.Client) error {
			var err error
			res, err = c.Search(req)
			return err
		})
		return res, err
	}
	p.moves.earn()
	moved := false
	err := p.Do(ctx, func(c ldap.Client) error {
		var err error
		if moved { // Do's one more run, after a dead connection: not moved again
			res, err = c.Search(req)
			return err
		}
		res, moved, err = c.(*client).searchMovable(req)
		return err
	})
	if !moved {
		return res, err
	}
	// Moved off a slow server: once more, on a connection to another one,
	// with Do's usual retry and nothing moved again.
	err = p.doOffSlow(ctx, func(c *client) error {
		var err error
		res, err = c.Search(req)
		return err
	}, nil)
	return res, err
}

// doOffSlow runs read through Do. A service connection to a server marked
// slow is tainted (no new reads on it; closed once its reads end, so that
// the pool dials elsewhere: the dial order puts the marked server last), and
// the read goes to elsewhere (the hedge lane) if it can run there, else runs
// where it is. It never waits for another service connection: its caller
// may hold the others (a Do around it, at a small WithMaxSize), which would
// wait for ever. elsewhere reports whether it ran the read and settled it;
// nil: no hedge lane.
func (p *Pool) doOffSlow(ctx context.Context, read func(*client) error, elsewhere func(*client) (settled bool, err error)) error {
	return p.Do(ctx, func(c ldap.Client) error {
		cl := c.(*client)
		if p.health.markedSlow(cl.l.inner.Conn().server, time.Now()) {
			cl.l.inner.Taint(errMoved)
			if elsewhere != nil {
				if settled, err := elsewhere(cl); settled {
					return err
				}
			}
		}
		return read(cl)
	})
}

// Compare runs one compare as the service identity through Do: it reports
// whether the entry dn has attribute equal to value. With a hedge lane
// (WithHedging, more than one server) it is hedged as Search is; without
// one it is neither hedged nor moved.
func (p *Pool) Compare(ctx context.Context, dn, attribute, value string) (bool, error) {
	if p.lane != nil {
		return hedgedRead(p, ctx, func(c *client) (bool, error) { return c.Compare(dn, attribute, value) })
	}
	var matched bool
	err := p.Do(ctx, func(c ldap.Client) error {
		var err error
		matched, err = c.Compare(dn, attribute, value)
		return err
	})
	return matched, err
}

// Authenticate checks an end user's password with one bind on the bind lane
// (WithAuthPool), whose connections serve nothing else, so it is safe to
// call inside Do or while holding a Lease. It returns nil for a good
// password, an error matching ErrInvalidCredentials for a wrong one (never
// retried: retries lock accounts), and ErrEmptyPassword without asking the
// server for an empty password, which LDAP would accept as an
// unauthenticated bind.
//
// A bind written to a pooled connection that the server had already closed
// (a restart, an idle cut) never reached it: Authenticate binds once more on
// a fresh connection, so the first login after a restart succeeds.
func (p *Pool) Authenticate(ctx context.Context, dn, password string) error {
	if p.closed.Load() {
		return closedError("Authenticate")
	}
	if dn == "" {
		return fmt.Errorf("%w: Authenticate: empty DN", ErrBadRequest)
	}
	creds := Credentials{DN: dn, Password: password}
	if err := creds.check(); err != nil {
		return err
	}
	reused, err := p.bindOnLane(ctx, creds, false)
	// Only a connection that was dead before the bind was written: a bind
	// that timed out, or that a busy server answered, may have been
	// counted, and a wrong password must be sent once.
	if err != nil && reused && IsBroken(err) && !timedOut(err) && ctx.Err() == nil &&
		!ldap.IsErrorAnyOf(err, ldap.LDAPResultBusy, ldap.LDAPResultUnavailable) {
		_, err = p.bindOnLane(ctx, creds, true)
	}
	if errors.Is(err, engine.ErrClosed) {
		return closedError("Authenticate")
	}
	return err
}

// bindLaneKey is the key of every bind-lane connection: they are bound as
// whoever authenticated last and are only ever used to bind again, so they
// need no revert.
var bindLaneKey = engine.Key{Name: "bind-lane", Credentials: Anonymous}

// bindOnLane binds as creds on a bind-lane connection (a fresh one if asked)
// and reports whether the connection had served before.
func (p *Pool) bindOnLane(ctx context.Context, creds Credentials, fresh bool) (reused bool, err error) {
	inner, err := p.auth.Get(ctx, bindLaneKey, engine.Request{Fresh: fresh, Scoped: true})
	if err != nil {
		return false, p.downAtDeadline(p.unwrapCredentials(err))
	}
	l := newLease(inner, p, ctx, Anonymous, false)
	err = run0(&l.client, "Authenticate", func(conn *ldap.Conn) error { return bind(conn, creds) })
	l.Release()
	return inner.Reused(), err
}

// Ping checks that the directory answers, for readiness checks: it runs the
// pool's Validator (a root DSE read by default) on a service connection
// under ctx, through Do. It returns nil when the directory answered, and
// otherwise the error that says why (ErrServerDown, ErrClosed, a timeout,
// ...; see docs/errors.md).
func (p *Pool) Ping(ctx context.Context) error {
	return p.Do(ctx, func(c ldap.Client) error { return p.cfg.validator(ctx, c) })
}

// Stats is a snapshot of a pool: its sizes, its counters since it was made,
// and a row per connection (the state table that String prints).
type Stats = engine.Stats

// Stats returns a snapshot of the service pool. With a hedge lane
// (WithHedging) its connection is counted in, as one more row whose key
// says "(hedge lane)": the figures cover every connection WithMaxSize
// bounds. Waiters counts callers only, never the lane's own requests.
func (p *Pool) Stats() Stats {
	if p.lane == nil {
		return p.main.Stats()
	}
	return withLane(p.main.Stats(), p.lane.pool.Stats(), p.lane.slot)
}

// AuthStats returns a snapshot of the bind lane (WithAuthPool).
func (p *Pool) AuthStats() Stats { return p.auth.Stats() }

// Servers returns each server's health: up or in backoff, its last error,
// its open connections.
func (p *Pool) Servers() []ServerStatus { return p.health.status(time.Now()) }

// String returns the state tables of the service pool and of the bind lane,
// and the servers' health. No password appears in it.
func (p *Pool) String() string {
	var b strings.Builder
	b.WriteString(p.Stats().String())
	b.WriteString("bind lane: ")
	b.WriteString(p.auth.String())
	for _, s := range p.Servers() {
		state := "up"
		if !s.Up {
			state = fmt.Sprintf("down (retry in %v): %s", s.RetryIn.Round(time.Millisecond), s.LastError)
		}
		fmt.Fprintf(&b, "server %s: %d open, %s\n", s.URL, s.Open, state)
	}
	return b.String()
}

// Close closes the service pool and the bind lane at once: from its first
// call every entry point fails with an error matching ErrClosed, and callers
// waiting for a connection get that error. Close then waits for the leases
// still out to come back until ctx ends, and closes those under their
// holders; it returns ctx's error then. Each call honours its own ctx; a
// nil ctx is taken for context.Background (Close waits for every lease).
func (p *Pool) Close(ctx context.Context) error {
	if ctx == nil {
		// The closes below run on goroutines of their own, where a nil
		// context's panic would end the process, out of the caller's reach.
		ctx = context.Background()
	}
	p.closed.Store(true)
	p.probeMu.Lock()
	p.endProbe()
	p.probeMu.Unlock()
	var g errgroup.Group
	g.Go(func() error { return p.main.Close(ctx) })
	if p.lane != nil {
		g.Go(func() error { return p.lane.pool.Close(ctx) })
	}
	g.Go(func() error { return p.auth.Close(ctx) })
	err := g.Wait()
	p.probing.Wait() // each ends within a dial's timeout once its context is cancelled
	return err
}

// suspect is called when an operation on server i timed out or the server
// said it is busy or unavailable. A server that said so is marked down at
// once. A timeout alone may be one slow operation: a probe (one at a time
// per server, however many operations time out together) dials the server
// anew and reads its root DSE within the operation timeout, and only if that
// fails too is the server marked down, so a slow operation never takes the
// only server out.
func (p *Pool) suspect(i int, cause error) {
	if ldap.IsErrorAnyOf(cause, ldap.LDAPResultBusy, ldap.LDAPResultUnavailable) {
		p.health.down(i, cause, time.Now())
		return
	}
	p.probeServer(i, p.cfg.opTimeout, func(err error) {
		p.health.down(i, fmt.Errorf("%w (a probe after: %v)", err, cause), time.Now())
	})
}

// probeServer probes server i within d (probeWithin) on a goroutine that
// Close waits for, and calls failed with the probe's error if it got no
// answer. Suspicions of one server at once, whatever raised them (an
// operation timeout, the stall watchdog), share one probe (singleflight),
// so one probe connection at most is open to a server.
func (p *Pool) probeServer(i int, d time.Duration, failed func(error)) {
	p.goProbe("", func() {
		_, err, _ := p.probes.Do(fmt.Sprint("probe ", i), func() (any, error) { return nil, p.probeWithin(i, d) })
		// A probe that Close cancelled found nothing about the server: it
		// is not marked down for it (Servers after Close still says up).
		if err != nil && p.probeCtx.Err() == nil {
			failed(err)
		}
	})
}

// goProbe runs probe on a goroutine that Close waits for, unless the pool is
// closing, and unless a probe of the same name is running (singleflight);
// with name "" every call runs (probeServer shares its probes itself).
func (p *Pool) goProbe(name string, probe func()) {
	p.probeMu.Lock()
	defer p.probeMu.Unlock()
	if p.probeCtx.Err() != nil {
		return
	}
	p.probing.Add(1)
	go func() {
		defer p.probing.Done()
		if name == "" {
			probe()
			return
		}
		p.probes.Do(name, func() (any, error) { probe(); return nil, nil })
	}()
}
