package sim

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/fairpool/ldappool/engine"
	"github.com/fairpool/ldappool/ldapconn"
	"github.com/fairpool/ldappool/ldaptest"
)

// LDAPConfig describes a directory to run against.
type LDAPConfig struct {
	URL              string            // one or more server URIs, as ldapconn.NewPool takes them
	Name             string            // what reports call the directory; "": "LDAP directory at" the URL
	BindDN, Password string            // the pools' service identity; empty: anonymous
	SearchBase       string            // where the operation searches; "": ldaptest.PeopleDN
	Users            int               // the operation looks up (uid=userN), N below Users; 0: ldaptest.Users
	OperationTimeout time.Duration     // ldapconn.WithOperationTimeout; 0: its default
	Seed             uint64            // seeds the choice of user
	Options          []ldapconn.Option // more ldapconn options, applied last
}

// LDAP is a Backend over a real directory: each run's pools are
// ldapconn.Pools, and the operation is a subtree search under SearchBase for
// (uid=userN), with N drawn from a seeded generator. Made by NewEmbedded it
// owns an embedded server (package ldaptest) whose connections the report's
// server line counts; made by NewLDAP it runs against a directory by URL,
// whose connections the simulator cannot see.
type LDAP struct {
	cfg LDAPConfig
	srv *ldaptest.Server // nil for a directory by URL

	mu   sync.Mutex
	r    *rand.Rand     // which user to look up
	base ldaptest.Stats // the embedded server's counters at Start
}

// NewLDAP returns a Backend over the directory cfg.URL names. Nothing is
// dialed until a run leases.
func NewLDAP(cfg LDAPConfig) (*LDAP, error) {
	if _, err := ldapconn.ParseServers(cfg.URL); err != nil {
		return nil, err
	}
	if cfg.OperationTimeout < 0 {
		return nil, fmt.Errorf("sim: operation timeout %v: must not be negative", cfg.OperationTimeout)
	}
	if cfg.Users < 0 {
		return nil, fmt.Errorf("sim: %d users: must not be negative", cfg.Users)
	}
	if cfg.SearchBase == "" {
		cfg.SearchBase = ldaptest.PeopleDN
	}
	if cfg.Users == 0 {
		cfg.Users = ldaptest.Users
	}
	return &LDAP{cfg: cfg, r: newRand(cfg.Seed, streamSearch)}, nil
}

// EmbeddedConfig describes an embedded LDAP server to run against.
type EmbeddedConfig struct {
	Latency          Latency // of each bind and search; a Mean of 0: none
	BindDN, Password string  // the pools' service identity; "": ldaptest.AdminDN and its password
	Seed             uint64  // seeds the latency draws and the choice of user
}

// NewEmbedded starts the embedded LDAP server of package ldaptest on a free
// loopback port and returns a Backend over it. Close stops the server.
func NewEmbedded(cfg EmbeddedConfig) (*LDAP, error) {
	if err := cfg.Latency.Validate(); err != nil {
		return nil, err
	}
	var opts []ldaptest.Option
	if cfg.Latency.Mean > 0 {
		s := newSampler(cfg.Latency, cfg.Seed)
		opts = append(opts, ldaptest.WithLatency(s.next))
	}
	if cfg.BindDN == "" && cfg.Password == "" {
		cfg.BindDN, cfg.Password = ldaptest.AdminDN, ldaptest.AdminPassword
	}
	srv, err := ldaptest.NewServer(opts...)
	if err != nil {
		return nil, err
	}
	b, err := NewLDAP(LDAPConfig{URL: srv.URL(), BindDN: cfg.BindDN, Password: cfg.Password, Seed: cfg.Seed})
	if err != nil {
		srv.Close()
		return nil, err
	}
	b.srv = srv
	return b, nil
}

// URL returns the directory's URL.
func (b *LDAP) URL() string { return b.cfg.URL }

// Close stops the embedded server, if b has one.
func (b *LDAP) Close() error {
	if b.srv == nil {
		return nil
	}
	return b.srv.Close()
}

// Name implements Backend.
func (b *LDAP) Name() string {
	if b.srv != nil {
		return "embedded LDAP server at " + b.cfg.URL
	}
	if b.cfg.Name != "" {
		return b.cfg.Name
	}
	return "LDAP directory at " + b.cfg.URL
}

// Start implements Backend: the embedded server's counters start from now.
func (b *LDAP) Start() {
	if b.srv == nil {
		return
	}
	st := b.srv.Stats()
	b.mu.Lock()
	b.base = st
	b.mu.Unlock()
}

// Server implements Backend. Only the embedded server can be looked into;
// its peak is sampled by the run.
func (b *LDAP) Server() ServerStats {
	if b.srv == nil {
		return ServerStats{}
	}
	st := b.srv.Stats()
	b.mu.Lock()
	base := b.base
	b.mu.Unlock()
	return ServerStats{
		Known:    true,
		Open:     int(st.Open),
		Accepted: st.Accepted - base.Accepted,
		Refused:  st.Refused - base.Refused,
	}
}

// NewTarget implements Backend: an ldapconn.Pool over the directory.
func (b *LDAP) NewTarget(pc PoolConfig) (Target, error) {
	// The depth is always given: ldapconn's default is not the engine's.
	pc.Depth = pc.depth()
	opts := poolOptions(pc, optionSet[ldapconn.Option]{
		size: ldapconn.WithMaxSize, depth: ldapconn.WithOpsPerConn, maxInFlight: ldapconn.WithMaxInFlight,
		minIdle: ldapconn.WithMinIdle, waitTimeout: ldapconn.WithWaitTimeout, maxLifetime: ldapconn.WithMaxLifetime,
		failFast: ldapconn.WithFailFast,
	})
	if len(pc.Options) > 0 {
		//lint:ignore SA1019 PoolConfig.Options are engine options, for settings sim does not name
		opts = append(opts, ldapconn.WithPoolOptions(pc.Options...))
	}
	if b.cfg.BindDN != "" || b.cfg.Password != "" {
		opts = append(opts, ldapconn.WithBind(b.cfg.BindDN, b.cfg.Password))
	}
	if b.cfg.OperationTimeout > 0 {
		opts = append(opts, ldapconn.WithOperationTimeout(b.cfg.OperationTimeout))
	}
	p, err := ldapconn.NewPool(b.cfg.URL, append(opts, b.cfg.Options...)...)
	if err != nil {
		return nil, err
	}
	return &ldapTarget{b: b, p: p, shared: pc.depth() > 1}, nil
}

// user draws the number of the user the next operation looks up.
func (b *LDAP) user() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.r.IntN(b.cfg.Users)
}

type ldapTarget struct {
	b      *LDAP
	p      *ldapconn.Pool
	shared bool // depth above 1: operations go through the pool's Do
}

// Do leases a whole connection at depth 1. Above it, it runs the operation
// through the pool's Do, which is how ldapconn puts several operations on a
// connection at once: it has no lease of a share.
func (t *ldapTarget) Do(ctx context.Context, use func(Conn) error) error {
	if t.shared {
		used := false
		err := t.p.Do(ctx, func(c ldap.Client) error {
			used = true
			return use(ldapConn{b: t.b, c: c})
		})
		if used {
			return nil
		}
		return err
	}
	l, err := t.p.Lease(ctx)
	if err != nil {
		return err
	}
	if err := use(ldapConn{b: t.b, c: l.Client()}); err != nil {
		l.Discard(err)
		return nil
	}
	l.Release()
	return nil
}

func (t *ldapTarget) Stats() engine.Stats             { return t.p.Stats() }
func (t *ldapTarget) Close(ctx context.Context) error { return t.p.Close(ctx) }

// ldapConn is a leased connection, or the client of the pool's Do.
type ldapConn struct {
	b *LDAP
	c ldap.Client
}

// errNoUser is returned when the search for a seeded user of the embedded
// server finds nothing: the server answered, but wrongly.
var errNoUser = errors.New("sim: seeded user not found")

// Op searches for one user. The lease's context (the run's) bounds it, as
// ldapconn enforces on every operation; ctx is the same context.
func (l ldapConn) Op(context.Context) error {
	n := l.b.user()
	res, err := l.c.Search(ldap.NewSearchRequest(l.b.cfg.SearchBase,
		ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		fmt.Sprintf("(uid=user%d)", n), []string{"dn"}, nil))
	if err != nil {
		return err
	}
	if l.b.srv != nil && len(res.Entries) != 1 {
		return fmt.Errorf("%w: (uid=user%d) under %s gave %d entries", errNoUser, n, l.b.cfg.SearchBase, len(res.Entries))
	}
	return nil
}
