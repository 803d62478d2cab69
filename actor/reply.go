package actor

import "sync"

// Reply channels have capacity one, so a handler's send never blocks, and
// they are recycled: a request/reply round trip allocates nothing once warm.

// Replies is a free list of reply channels of capacity one.
// The zero value is ready to use.
type Replies[R any] struct{ pool sync.Pool }

// Get returns an empty reply channel.
func (r *Replies[R]) Get() chan R {
	if c, ok := r.pool.Get().(chan R); ok {
		return c
	}
	return make(chan R, 1)
}

// Put returns c for reuse. Only a channel whose one reply has been received,
// and that no one will send on again, may be put back.
func (r *Replies[R]) Put(c chan R) { r.pool.Put(c) }

// Call sends the message that build makes around a reply channel and waits
// for the handler's reply. ok is false when the actor stopped before
// replying. The handler must send exactly one reply on the channel.
func Call[M, R any](a *Actor[M], replies *Replies[R], build func(reply chan R) M) (r R, ok bool) {
	c := replies.Get()
	if !a.Send(build(c)) {
		replies.Put(c)
		return r, false
	}
	select {
	case r = <-c:
		replies.Put(c)
		return r, true
	case <-a.Done():
		// The handler may have replied just before the loop ended.
		select {
		case r = <-c:
			replies.Put(c)
			return r, true
		default:
			return r, false
		}
	}
}
