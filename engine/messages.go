package engine

import (
	"time"

	"github.com/fairpool/ldappool/actor"
)

type msgKind uint8

const (
	mStart       msgKind = iota // arm the timers, warm WithMinIdle
	mLease                      // w wants a connection
	mCancel                     // w gave up
	mRelease                    // e comes back; err non-nil: discard it
	mDialed                     // a dial for key (and maybe w) ended: conn or err
	mChecked                    // a validation or rebind of e (for w, maybe) ended
	mClosed                     // the Connector's Close of e returned
	mPrune                      // the prune timer fired
	mValidateAll                // the background validation timer fired
	mRefill                     // the backoff timer for background dials fired
	mStats                      // reply a snapshot on stats
	mClose                      // Close was called
	mForceClose                 // Close's context ended with leases still out
	mObserver                   // SetObserver: tell obs of each wait, hold and dial
)

// message is the one type the supervisor's mailbox carries: a tagged union,
// sent by value, so that most messages allocate nothing. The leases and
// releases that make up most of the traffic fit in its first fields; the
// rarer messages carry the rest in x, so that each message copied into and
// out of the mailbox is 48 bytes rather than three times that.
type message[C any] struct {
	kind  msgKind
	check checkKind // mChecked
	w     *waiter[C]
	e     *entry[C]
	err   error
	x     *extra[C] // mDialed, mChecked, mStats, mObserver
}

// extra is the part of a rarer message that leases and releases do without.
type extra[C any] struct {
	key     Key       // mDialed: the key dialed for; mChecked: the key of a rebind
	conn    C         // mDialed
	replace bool      // mDialed: the dial replaces a connection that failed a background check
	start   time.Time // mDialed: when the dial started, for Counters.CreateTime
	stats   chan Stats
	obs     Observer // mObserver
}

// result is the supervisor's one reply to a waiter.
type result[C any] struct {
	e        *entry[C]
	conn     C
	key      string
	leasedAt time.Time
	reused   bool
	shared   bool // a share (Get makes a share only when opsPerConn is above 1)
	err      error
	// free says that nothing of the supervisor's refers to the waiter any
	// more (no dial is in flight for it, no close makes room for it), so
	// that its caller may reuse it and its reply channel once answered.
	free bool
}

type waiterState uint8

const (
	wQueued   waiterState = iota // in the queue
	wChecking                    // a connection is being validated or rebound for it
	wDone                        // answered, or gave up
)

// waiter is one Lease call. The caller makes it; after sending it, only the
// supervisor touches it.
type waiter[C any] struct {
	key     Key
	fresh   bool // hand out only a connection validated or dialed for it
	share   bool // a share of a connection (Pool.Share), not a whole one
	reply   chan result[C]
	since   time.Time
	state   waiterState
	dialing bool                   // a dial started on its behalf is in flight
	room    bool                   // an idle connection of another key is closing to make room for its dial
	covered bool                   // a share dial in flight brings room for it (set by dispatch)
	waited  bool                   // it was not answered as soon as it arrived
	node    actor.Elem[*waiter[C]] // its place in the queue (node.Value is the waiter), made with it
}

// free reports whether, once answered, w is referred to by nothing of the
// supervisor's: no dial for it is in flight and no close makes room for it.
func (w *waiter[C]) free() bool { return !w.dialing && !w.room }

type entryState uint8

const (
	eIdle     entryState = iota // parked in its key's idle stack
	eLeased                     // held by a caller
	eChecking                   // being validated or rebound on a worker
	eClosing                    // the Connector's Close is running on a worker
)

func (s entryState) String() string {
	switch s {
	case eIdle:
		return "idle"
	case eLeased:
		return "leased"
	case eChecking:
		return "checking"
	default:
		return "closing"
	}
}

type checkKind uint8

const (
	validateOnLease   checkKind = iota // validate before handing to w
	validateOnRelease                  // validate before parking
	validateIdle                       // background validation
	rebind                             // rebind to w's key
)

// entry is one open connection. Owned by the supervisor goroutine.
type entry[C any] struct {
	conn     C
	key      Key
	slot     int
	group    *keyConns[C] // its key's, from add until drop
	state    entryState
	created  time.Time
	expires  time.Time
	idleAt   time.Time // when it last became idle
	leasedAt time.Time
	checked  time.Time // when it last passed validation
	uses     int
	roomFor  *waiter[C] // eClosing: the waiter whose dial waits for this close

	// A connection carrying shares (sharing) is eLeased, and listed in its
	// key's shared list, until its last share comes back.
	shares  int   // shares out on it
	doomErr error // a share was discarded with this error: no new shares, closed when the last comes back
}

// sharing reports whether e carries shares.
func (e *entry[C]) sharing() bool { return e.shares > 0 }
