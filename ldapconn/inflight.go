package ldapconn

import (
	"errors"
	"sync"
)

// uses counts the operations and streams running on a lease's connection,
// so that the connection goes back to the pool only when none is, and no
// call reaches it after.
//
// A call starts a use (start) before it touches the connection and ends it
// (end) after its last touch; start fails once the lease is released. The
// check and the registration are one step under mu, so a call racing with
// Release either starts before it, and then keeps the connection, or sees
// the lease released and never reaches the connection.
//
// Release does not wait for the uses to end: it marks the lease released
// and returns. If no use runs, the caller gives the connection back at once;
// otherwise the last use to end does (pending). A stream holds its use until
// it is drained, by its caller or, once its context ends, by itself (see
// stream), so it keeps its connection past Release for as long as it runs.
// Discard closes the connection under any use still running, which then
// ends with an error; nothing is given back.
type uses struct {
	mu       sync.Mutex
	released bool // Release or Discard was called, or Do's function returned: no use starts
	n        int  // uses running now
	streams  int  // of which streaming calls
	pending  bool // Release came while n > 0: the last use to end gives the connection back
}

// start registers a use, or reports false if the lease is released.
func (u *uses) start() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.released {
		return false
	}
	u.n++
	return true
}

// end ends a use and reports whether its caller must give the connection
// back: Release came while it ran and it was the last.
func (u *uses) end() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.n <= 0 {
		panic("ldapconn: use ended more often than started")
	}
	u.n--
	if u.n == 0 && u.pending {
		u.pending = false
		return true
	}
	return false
}

// release marks the lease released and reports whether its caller must give
// the connection back now: this is the first Release or Discard and no use
// runs.
func (u *uses) release() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.released {
		return false
	}
	u.released = true
	if u.n > 0 {
		u.pending = true
		return false
	}
	return true
}

// discard marks the lease released for good: the connection is being
// closed, and no use gives it back when it ends.
func (u *uses) discard() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.released, u.pending = true, false
}

// streaming reports whether a streaming call still runs.
func (u *uses) streaming() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.streams > 0
}

// stream counts a streaming call's use in or out.
func (u *uses) stream(d int) {
	u.mu.Lock()
	u.streams += d
	u.mu.Unlock()
}

// isReleased reports whether Release or Discard was called.
func (u *uses) isReleased() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.released
}

// errOutlivedDo is why the connection of a use still running when Do's
// function returned is closed, or, on a share, why a stream was ended.
var errOutlivedDo = errors.New("ldapconn: an operation or stream was still running when Do's function returned")

// startUse registers a use of the connection; see uses.
func (l *Lease) startUse() bool { return l.use.start() }

// endUse ends a use, giving the connection back if Release came while it
// ran and it was the last.
func (l *Lease) endUse() {
	if l.use.end() {
		l.giveBack()
	}
}

// endDo ends a lease made by Do when its function returns. An operation
// the function gave up on keeps the connection until it ends, within the
// operation timeout, and Release gives it back then. A stream the function
// left open may never be drained: its connection is closed under it.
//
// On a share the connection carries other operations: such a stream is
// ended instead (abandoned at the server), and the share goes back when it
// has drained.
func (l *Lease) endDo() {
	if l.use.streaming() {
		if !l.shared {
			l.Discard(errOutlivedDo)
			return
		}
		l.cutStreams()
	}
	l.Release()
}
