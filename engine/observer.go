package engine

import "time"

// Observer is told of each duration that Counters only sum, one event at a
// time, for histograms (OpenTelemetry's db.client.connection.wait_time,
// use_time and create_time). Its methods run on the supervisor goroutine,
// between two messages: they must return quickly, must not block, and must
// not call the pool.
type Observer interface {
	Waited(d time.Duration)  // a lease was handed out after queueing for d (0 when served at once)
	Used(d time.Duration)    // a leased connection came back after being held for d
	Created(d time.Duration) // a dial succeeded after d
}

// SetObserver has the pool tell o of every lease's wait, every lease's hold
// and every successful dial's duration, from the next message on; nil stops
// it. A pool has one Observer at a time: a later call replaces it.
func (p *Pool[C]) SetObserver(o Observer) {
	p.a.Send(message[C]{kind: mObserver, x: &extra[C]{obs: o}})
}
