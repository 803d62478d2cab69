package ldapconn

import "github.com/fairpool/ldappool/engine"

// Observer is told of each lease's wait, each lease's hold and each
// successful dial's duration as they happen, for histograms (package
// ldapotel's db.client.connection.wait_time, use_time and create_time). Its
// methods run on a pool's supervisor goroutine: they must return quickly,
// must not block, and must not call the pool.
type Observer = engine.Observer

// Observe has the service pool tell service, and the bind lane tell
// bindLane, of their events from now on (the hedge lane's go to service); nil stops either. A pool has one
// pair of observers at a time: a later call replaces them.
func (p *Pool) Observe(service, bindLane Observer) {
	p.main.SetObserver(service)
	if p.lane != nil {
		p.lane.pool.SetObserver(service) // the hedge lane's connections are service connections
	}
	p.auth.SetObserver(bindLane)
}
