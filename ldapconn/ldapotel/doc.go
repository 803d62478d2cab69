// Package ldapotel exports an ldapconn.Pool's state as OpenTelemetry
// metrics, following the semantic conventions for database client
// connection pools (db.client.connection.*, development stability), plus a
// few per-server series that no convention covers. It is a package of its
// own so that ldapconn does not import OpenTelemetry: only a program that
// imports this package links it.
//
// Register adds the instruments to a MeterProvider. One callback reads the
// pool's Stats, AuthStats and Servers once per collection and reports:
//
//	db.client.connection.count             {connection}  up-down counter  db.client.connection.state=idle|used
//	db.client.connection.idle.max          {connection}  up-down counter
//	db.client.connection.idle.min          {connection}  up-down counter
//	db.client.connection.max               {connection}  up-down counter
//	db.client.connection.pending_requests  {request}     up-down counter
//	db.client.connection.timeouts          {timeout}     counter
//	ldap.server.up                         1             gauge (1 up, 0 in its backoff)  server.address, server.port
//	ldap.server.failovers                  {failover}    counter                          server.address, server.port
//	ldap.server.operations                 {operation}   counter  outcome=ok|error        server.address, server.port
//	ldap.server.hedges                     {read}        counter  outcome=won|lost        server.address, server.port
//
// The conventions define the three durations as histograms recorded once
// per event, which no snapshot can feed: the pool tells them to this package
// as they happen, through ldapconn.Pool.Observe, and they are recorded on
// the pool's supervisor goroutine (one histogram Record each, no allocation):
//
//	db.client.connection.wait_time    s  histogram  time a lease queued for a connection (0 when one was idle)
//	db.client.connection.use_time     s  histogram  time a connection was leased, at its release
//	db.client.connection.create_time  s  histogram  time a successful dial took, bind included
//
// Every series carries db.client.connection.pool.name: the pool's name
// (ldapconn.WithPoolName, "ldap" by default) for the service pool, and that
// name followed by "/bind" for the bind lane that Authenticate uses. The
// per-server series carry the service pool's name; they count both lanes.
// No series is labelled by identity: a pool key names a DN, which is
// personal data and has no bound on its number of values.
//
// The shortest use:
//
//	unregister, err := ldapotel.Register(pool, otel.GetMeterProvider())
//	if err != nil {
//		log.Fatal(err)
//	}
//	defer unregister()
//
// docs/metrics.md in the repository lists every instrument with its meaning.
package ldapotel
