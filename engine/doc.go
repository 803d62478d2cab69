// Package engine is the connection pool itself, generic over the connection
// type and knowing nothing of LDAP: package ldapconn supplies the Connector.
//
// All pool state belongs to one supervisor goroutine (package actor's loop).
// Lease, Release, Discard, Stats and Close send it a message and wait for
// the reply; dials, validations, rebinds and closes run on worker goroutines
// and report back as messages, so the supervisor never blocks on I/O and a
// slow server never delays a lease that an idle connection can serve.
//
// Promises:
//
//   - Waiters are served strictly first come, first served, across all keys.
//     When the pool is full and only connections of other keys are idle, the
//     oldest waiter gets one of them, rebound (if the Connector is a
//     Rebinder) or closed and replaced by a dial for its key.
//   - A waiter whose context ends, or whose wait timeout passes, leaves the
//     queue at once; a connection handed to it in that instant goes back to
//     the pool.
//   - Every error a worker meets reaches the caller it worked for, wrapped
//     with context (a *ConnectError for a failed dial); a panic in the Connector
//     becomes an error.
//   - Close ends every goroutine the pool started and closes every
//     connection it opened.
//
// The shortest use, with a Connector of your own:
//
//	pool, err := engine.New(connector, engine.WithMaxSize(4))
//	l, err := pool.Lease(ctx, engine.Key{Name: "service"})
//	defer l.Release()
//	use(l.Conn())
package engine
