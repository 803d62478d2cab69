// Package ldapconn is the front door of the module: an LDAP connection pool
// of bound go-ldap connections over a list of servers. A program imports this
// package and nothing else of the module; every setting of the pool is an
// option here (WithMaxSize, WithWaitTimeout, WithMinIdle, ...), and a field
// of Config for programs that read their settings from a file, a URL
// (ParseConfig) or the environment (ConfigFromEnv).
//
// A Pool parses a server list ("ldap://a:389, ldaps://b"), dials in the order
// a Strategy gives (Failover, RoundRobin, FewestConnections), puts a server
// that fails into a backoff (cenkalti/backoff), binds each connection as an
// identity, and checks connections with a Validator (a root DSE search by
// default, or a compare). Connections are pooled per identity under a key
// derived with an HMAC, so no log, stat or state table can reveal a password,
// and no value of this package prints one with fmt, slog or json.
//
// Its methods are safe for concurrent use. Callers waiting for a connection
// are served strictly first come, first served, across identities, and
// WithMaxSize is a hard maximum at the server: a connection counts against it
// until its close has returned.
//
// Search, Do and DoAs lease a connection, run, and release it; Lease and
// LeaseAs hand out a Lease whose Client is go-ldap's ldap.Client. Every
// operation runs under the context the call or the lease was given, which
// go-ldap itself does not do: when it ends, the call returns the context's error at once and costs no
// connection. A search is abandoned at the server (an LDAP Abandon) and its
// connection stays pooled; any other operation keeps its connection out of
// the pool until it ends, then the connection goes back. A caller's Bind is
// undone on release; StartTLS, Unbind or Close make the connection unfit to
// pool and it is closed. After Release the Client fails every call with
// ErrLeaseReleased.
//
// Authenticate checks an end user's password on the bind lane, connections
// apart from the service pool's (WithAuthPool, 2 by default, dialed at the
// first call), so it may be called inside Do or while holding a Lease. A
// wrong password matches ErrInvalidCredentials and is sent exactly once.
//
// An operation that outlives WithOperationTimeout closes its connection and
// starts a probe of its server, which is marked down only if the probe fails
// too. Do, DoAs and Search (unless WithRetryBroken(false)) try once more on a
// fresh connection when the connection broke under reads (a restart, an idle
// cut, a killed server); a function that sent a write is never run again
// (ErrOutcomeUnknown). Authenticate binds once more when a reused connection
// turns out dead.
// Close closes the service pool and the bind lane; from its first call every
// entry point fails with ErrClosed.
//
// Every error is classified with errors.Is, errors.As, IsBroken and
// IsRetryable: the comment in errors.go lists the classes, and docs/errors.md
// in the repository says when each happens and what to do about it.
//
// The shortest use, against the embedded test server of package ldaptest
// (Example runs it in full):
//
//	pool, err := ldapconn.NewPool(srv.URL(),
//		ldapconn.WithBind(ldaptest.AdminDN, ldaptest.AdminPassword),
//		ldapconn.WithMaxSize(4))
//	if err != nil {
//		log.Fatal(err)
//	}
//	defer pool.Close(ctx)
//	res, err := pool.Search(ctx, ldapconn.NewSearch(ldaptest.PeopleDN, "(uid=user42)", "cn", "mail"))
//	...
//	err = pool.Authenticate(ctx, res.Entries[0].DN, password) // nil: the password is right
package ldapconn
