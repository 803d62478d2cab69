package ldapconn

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"syscall"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/fairpool/ldappool/engine"
	"github.com/fairpool/ldappool/internal/ctxtime"
)

// Conn is one pooled LDAP connection: a go-ldap connection and the server it
// is open to. Callers reach it through a Lease's Client.
type Conn struct {
	ldap   *ldap.Conn
	wire   *wireConn     // the socket under ldap: message IDs, Abandon
	peek   *peeker       // whether the server closed the socket (Alive)
	paging chan struct{} // capacity 1: full while a paged search runs on it (client.SearchWithPaging)
	server int           // index in the pool's server list

	life context.Context    // ends when the pool closes the connection: streams on it stop then
	end  context.CancelFunc // ends life
}

// connector is the engine.Connector of an LDAP pool: it dials in the order
// the strategy gives, binds, validates, rebinds and closes.
type connector struct {
	cfg    *config
	health *health
	// lane makes the hedge lane's connector (hedge.go): under Failover it
	// dials the servers after the first one first, its dials do not count as
	// the pool failing over, and it keeps lane.on up to date.
	lane *hedgeLane
}

var (
	_ engine.Connector[*Conn]  = (*connector)(nil)
	_ engine.Rebinder[*Conn]   = (*connector)(nil)
	_ engine.Lifetimer[*Conn]  = (*connector)(nil)
	_ engine.Classifier[*Conn] = (*connector)(nil)
	_ engine.Liveness[*Conn]   = (*connector)(nil)
)

func (c *connector) Connect(ctx context.Context, key engine.Key) (*Conn, error) {
	who := key.Credentials.(identity)
	if src, ok := who.(*passwordSource); ok {
		// Ask the password source before any server is contacted: if it
		// fails, no server is to blame.
		creds, err := src.credentials(ctx)
		if err != nil {
			return nil, err
		}
		who = creds
	}
	conn, blinked, err := c.connect(ctx, who)
	if blinked {
		// A server took the connection and then dropped it (a reset while
		// binding: a restart, a full accept queue). That is a server that
		// blinked, not one that is down: one more round, after its backoff,
		// within the dial's time, rather than failing the caller who asked.
		conn, _, err = c.connect(ctx, who)
	}
	if err == nil && c.lane != nil {
		c.lane.on.Store(int64(conn.server) + 1)
	}
	return conn, err
}

// connect makes one round over the servers, in the strategy's order, and
// reports whether a failure was a connection the server accepted and then
// dropped.
func (c *connector) connect(ctx context.Context, who identity) (conn *Conn, blinked bool, err error) {
	order := c.health.order(time.Now())
	if c.lane != nil && c.cfg.strategy == Failover && len(order) > 1 {
		// The hedge lane's: the server the service pool serves from (or,
		// before its first dial, will) last.
		serving := c.health.servingFrom()
		if serving < 0 {
			serving = order[0]
		}
		if k := slices.Index(order, serving); k >= 0 {
			order = append(slices.Delete(order, k, k+1), serving)
		}
		// And before it, every server the service pool holds connections
		// to (the lane, closed for this dial, holds none): a hedge goes to
		// another server than its read's.
		slices.SortStableFunc(order, func(a, b int) int {
			return cmpBool(c.health.open[a].Load() > 0, c.health.open[b].Load() > 0)
		})
	}
	if len(order) == 0 {
		// Every server is in its backoff, maybe after one reset or one
		// refused connect. Refusing now would fail every caller at once for
		// the whole backoff, however long it is willing to wait: wait for
		// the first server's next attempt instead, within the dial's time.
		// A caller whose own context ends first has its answer already.
		i, at := c.health.soonest()
		if ctxtime.Sleep(ctx, time.Until(at)) != nil {
			return nil, false, &AllServersDownError{Servers: c.health.status(time.Now())}
		}
		order = []int{i}
	}
	var last error
	for k, i := range order {
		for attempt := range c.cfg.retryMax {
			if attempt > 0 {
				if err := ctxtime.Sleep(ctx, c.cfg.retryDelay); err != nil {
					return nil, false, err
				}
			}
			conn, err := c.dial(ctx, i, who)
			if err == nil {
				c.health.up(i, c.lane == nil)
				c.health.open[i].Add(1)
				c.health.track(conn)
				if k > 0 && c.lane == nil {
					c.health.failovers[i].Add(1) // the servers before it in this round failed
				}
				return conn, false, nil
			}
			if errors.Is(err, engine.ErrKeyRejected) || errors.Is(err, context.Canceled) {
				return nil, false, err // the server refused the identity (refusal), or the caller gave up
			}
			// Anything else (refused, reset, timed out, TLS, busy) is this
			// server's failure: try again, then the next server.
			last = fmt.Errorf("%s: %w", c.health.servers[i], err)
			blinked = blinked || droppedAfterAccept(err)
		}
		c.health.down(i, last, time.Now())
	}
	return nil, blinked, &AllServersDownError{Servers: c.health.status(time.Now()), Last: last}
}

// droppedAfterAccept reports whether a dial's error is a connection that a
// server took and then reset or closed (in the handshake or after it),
// rather than one nobody took (refused, unreachable, timed out) or a TLS or
// LDAP refusal.
func droppedAfterAccept(err error) bool {
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, io.EOF) {
		return true
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return false // refused, unreachable, timed out: nobody took it
	}
	return IsBroken(err) && !timedOut(err) && !errors.Is(err, context.DeadlineExceeded)
}

// errNoTLSAnswer marks a dial whose TLS handshake the server ended without
// a TLS answer (notTLSHint). It prints nothing of its own.
var errNoTLSAnswer = noTLSAnswer{}

type noTLSAnswer struct{}

func (noTLSAnswer) Error() string { return "" }

// notTLSHint explains a TLS handshake that the server ended without a TLS
// answer (it closed or reset the connection, or sent something that is not
// TLS): most often an ldaps:// URI to a port that speaks plain LDAP.
func notTLSHint(err error) string {
	var rh tls.RecordHeaderError
	if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.As(err, &rh) {
		return " (the server did not answer in TLS: is this port plain LDAP? ldaps:// needs a TLS port, usually 636; for StartTLS use ldap:// with WithStartTLS)"
	}
	return ""
}

// dial opens, secures and binds one connection to server i as who. A dial
// that does not finish by ctx's end is abandoned: the socket is closed under
// it.
func (c *connector) dial(ctx context.Context, i int, who identity) (*Conn, error) {
	srv := c.health.servers[i]
	nc, err := c.cfg.dialServer(ctx, srv)
	if err != nil {
		return nil, err
	}
	if srv.TLS {
		tc := tls.Client(nc, c.tlsConfig(srv))
		hctx, cancel := context.WithTimeout(ctx, c.cfg.connectTimeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			nc.Close()
			if hint := notTLSHint(err); hint != "" {
				return nil, fmt.Errorf("TLS handshake: %w%s%w", err, hint, errNoTLSAnswer)
			}
			return nil, fmt.Errorf("TLS handshake: %w", err)
		}
		nc = tc
	}
	wire := newWireConn(nc)
	lc := ldap.NewConn(wire, srv.TLS)
	lc.Start()
	lc.SetTimeout(c.cfg.opTimeout)
	stop := context.AfterFunc(ctx, func() { lc.Close() })
	defer stop()
	fail := func(err error) (*Conn, error) {
		lc.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	if c.cfg.usesTLS(srv) && !srv.TLS {
		if err := lc.StartTLS(c.tlsConfig(srv)); err != nil {
			return fail(fmt.Errorf("StartTLS: %w", err))
		}
	}
	if err := who.bindTo(ctx, lc); err != nil {
		return fail(err)
	}
	if ctx.Err() != nil {
		return fail(ctx.Err())
	}
	return newConn(lc, wire, i), nil
}

// tlsConfig returns the pool's TLS settings for srv, naming the server
// when the caller did not (go-ldap's StartTLS does not).
func (c *connector) tlsConfig(srv Server) *tls.Config {
	cfg := c.cfg.tls.Clone()
	if cfg == nil {
		cfg = &tls.Config{}
	}
	if cfg.ServerName == "" {
		host, _, _ := net.SplitHostPort(srv.Host)
		cfg.ServerName = host
	}
	return cfg
}

// bind authenticates lc as creds; anonymous is an explicit anonymous bind,
// which also resets a connection bound as someone else.
func bind(lc ldap.Client, creds Credentials) error {
	var err error
	if creds == Anonymous {
		_, err = lc.SimpleBind(&ldap.SimpleBindRequest{AllowEmptyPassword: true})
	} else {
		err = lc.Bind(creds.DN, creds.Password)
	}
	return refusal(creds.DN, err)
}

// refusal makes a bind's error the caller's when the server answered that
// it will not bind this identity: a wrong password (49, a credentialsError)
// or a DN it cannot parse or find, an authentication it does not take
// here, and the like (a refusedError). The server is fine and would answer
// any other server's way: the bind is not tried again, nor elsewhere, and no
// server is marked down. Any other error (busy, unavailable, a network
// error, a timeout) is the server's and returned as it is.
func refusal(dn string, err error) error {
	switch {
	case ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials):
		return &credentialsError{dn: dn, err: err}
	case ldap.IsErrorAnyOf(err, ldap.LDAPResultAuthMethodNotSupported, ldap.LDAPResultStrongAuthRequired,
		ldap.LDAPResultConfidentialityRequired, ldap.LDAPResultNoSuchObject, ldap.LDAPResultInvalidDNSyntax,
		ldap.LDAPResultInappropriateAuthentication, ldap.LDAPResultInsufficientAccessRights,
		ldap.LDAPResultUnwillingToPerform):
		return &refusedError{dn: dn, err: err}
	}
	return err
}

func (c *connector) Validate(ctx context.Context, conn *Conn) error {
	if c.health.isDown(conn.server, time.Now()) {
		return fmt.Errorf("ldapconn: %s is marked down", c.health.servers[conn.server])
	}
	if conn.ldap.IsClosing() {
		return errors.New("ldapconn: connection closed")
	}
	return withContext(ctx, conn, func() error { return c.cfg.validator(ctx, conn.ldap) })
}

func (c *connector) Rebind(ctx context.Context, conn *Conn, key engine.Key) error {
	who := key.Credentials.(identity)
	return withContext(ctx, conn, func() error { return who.bindTo(ctx, conn.ldap) })
}

func newConn(lc *ldap.Conn, wire *wireConn, server int) *Conn {
	c := &Conn{ldap: lc, wire: wire, peek: newPeeker(wire.Conn), paging: make(chan struct{}, 1), server: server}
	c.life, c.end = context.WithCancel(context.Background())
	return c
}

func (c *connector) Close(conn *Conn) error {
	if c.lane != nil {
		c.lane.on.Store(0) // the lane's only connection
	}
	conn.end()
	c.health.open[conn.server].Add(-1)
	c.health.untrack(conn)
	return conn.ldap.Close()
}

// Broken implements engine.Classifier: the connection is unusable when the
// error says so, or when go-ldap is closing it (go-ldap reports some read
// failures as plain errors).
func (c *connector) Broken(conn *Conn, err error) bool { return IsBroken(err) || conn.ldap.IsClosing() }

// Alive implements engine.Liveness: go-ldap's reader closes a connection as
// soon as the server closes or resets it (an atomic load). A server's close
// can also be waiting, unread, in the socket: go-ldap's reader has not yet
// been scheduled to see it. peerClosed peeks for it with one non-blocking
// syscall that takes nothing from go-ldap; the supervisor makes it once for
// each idle connection it takes out (rule 2 allows it: it cannot block).
func (c *connector) Alive(conn *Conn) bool {
	return !conn.ldap.IsClosing() && !conn.peek.peerClosed()
}

// Lifetime gives connections to a fallback server a short life under the
// failover strategy, so that the pool returns to the first server soon
// after it recovers.
func (c *connector) Lifetime(conn *Conn, max time.Duration) time.Duration {
	if c.cfg.strategy == Failover && conn.server > 0 && c.lane == nil { // the hedge lane's is meant to be elsewhere
		return min(max, c.cfg.failbackAfter)
	}
	return max
}

// withContext runs fn, an operation on conn that takes no context, and
// returns ctx's error as soon as ctx ends, closing the connection so that fn
// returns too.
func withContext(ctx context.Context, conn *Conn, fn func() error) error {
	_, err := ctxtime.Call(ctx, func() (struct{}, error) { return struct{}{}, fn() }, func() { conn.ldap.Close() })
	return err
}

// cmpBool orders false before true.
func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}
