// Package ldapconn is the LDAP side of the pool: it makes package engine's
// pool a pool of bound go-ldap connections over a list of servers.
//
// A Pool parses a server list ("ldap://a:389, ldaps://b"), dials in the order
// a Strategy gives (Failover, RoundRobin, FewestConnections), marks a server
// that fails down for a backoff (cenkalti/backoff), binds each connection as
// an identity, and checks connections with a Validator (a root DSE search by
// default, or a compare). Connections are pooled per identity under a key
// derived with an HMAC, so no log, stat or state table can reveal a password.
//
// A Lease exposes its connection as go-ldap's ldap.Client, and enforces the
// lease's context on every operation, which go-ldap itself does not: when the
// context ends the operation is abandoned, the connection discarded and the
// caller returns at once. A caller's Bind is undone on release; StartTLS,
// Unbind or Close make the connection unfit to pool and it is closed.
//
// Errors: a refused bind matches ErrInvalidCredentials, is never retried and
// never counts against the server; IsBroken tells a dead connection from a
// failed operation; when no server can be reached the error is an
// *AllServersDownError naming each server's last error.
//
// The shortest use, against the embedded test server of package ldaptest:
//
//	pool, err := ldapconn.NewPool(srv.URL(), ldapconn.WithBind(dn, password))
//	...
//	defer pool.Close(ctx)
//	res, err := pool.Search(ctx, ldap.NewSearchRequest(...))
package ldapconn
