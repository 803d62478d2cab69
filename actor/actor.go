package actor

import (
	"runtime"
	"sync"
	"time"
)

// Actor runs a handler over the messages of one mailbox on one goroutine.
//
// All methods are safe for concurrent use. The zero value is not usable; call
// [Start].
type Actor[M any] struct {
	inbox   chan M
	stop    chan struct{} // closed by Stop: the loop ends after its current message
	stopped chan struct{} // closed when the loop goroutine has returned
	once    sync.Once
	workers sync.WaitGroup
	drop    func(M) // nil: messages the loop never handles are dropped silently
}

// Start starts the loop goroutine. The mailbox holds up to buffer messages
// before Send blocks; handle is called for each message in the order received.
//
// A mailbox of one channel drained by a plain receive, rather than a select
// over one channel per message kind, is the cheaper loop: measured on a 2-core
// machine it halves the cost of a request/reply round trip.
func Start[M any](buffer int, handle func(M)) *Actor[M] {
	return StartBatched(buffer, 1, handle, func() bool { return false }, nil)
}

// StartBatched is Start with flush, which the loop calls, on its goroutine,
// after a run of messages: once the handler has taken every message waiting
// in the mailbox, or max messages in a row, and before the loop waits for
// more or checks for Stop. Work that need not follow every message (serving
// what the messages made possible, reading the clock) can be done once per
// run there; under load one wake-up of the loop takes several messages.
//
// flush reports whether more messages are due soon (the owner's state says
// so: callers are waiting for an answer that another's message brings). The
// loop then yields its processor a few times, to the goroutines it has just
// answered, before it parks on an empty mailbox: a sender that finds the loop
// not parked has no goroutine to wake, and a hand-off from one caller to
// another through the loop costs one wake-up instead of two.
//
// drop, if not nil, is given each message that is never handled because the
// loop ended first: those left in the mailbox when it ends, and any posted
// after that. It runs on the loop's goroutine as it ends, or on the
// goroutine of a Send that finds the loop gone after posting, exactly once a
// message. It is for telling a message's sender that no answer will come
// (its reply channel is not waited on together with Done); it must not block
// and must not touch the handler's state.
func StartBatched[M any](buffer, max int, handle func(M), flush func() (busy bool), drop func(M)) *Actor[M] {
	if buffer < 0 {
		panic("actor: negative mailbox buffer")
	}
	if max < 1 {
		panic("actor: batch of fewer than one message")
	}
	a := &Actor[M]{
		inbox:   make(chan M, buffer),
		stop:    make(chan struct{}),
		stopped: make(chan struct{}),
		drop:    drop,
	}
	go a.loop(max, handle, flush)
	return a
}

// spins is how many times a busy loop yields before it parks on an empty
// mailbox. Measured on 2 cores with 64 goroutines sharing 4 connections
// (engine's BenchmarkLeaseRelease, par=64, with this constant edited), 2
// yields took a third off a lease's cost, 4 a little more, 8 and 16 no more
// (docs/benchmarks.md, run F).
const spins = 4

func (a *Actor[M]) loop(max int, handle func(M), flush func() bool) {
	defer close(a.stopped)
	defer a.dropLeft()
	n, busy := 0, false
	for {
		// Check stop first so that a busy mailbox cannot keep the loop alive
		// after Stop.
		select {
		case <-a.stop:
			return
		default:
		}
		// A message waiting is taken without a select over two channels,
		// the costlier receive: under load the mailbox is rarely empty.
		select {
		case m := <-a.inbox:
			handle(m)
		default:
			for i := 0; busy && i < spins && len(a.inbox) == 0; i++ {
				runtime.Gosched()
			}
			select {
			case m := <-a.inbox:
				handle(m)
			case <-a.stop:
				return
			}
		}
		if n++; n >= max || len(a.inbox) == 0 {
			busy = flush()
			n = 0
		}
	}
}

// Send posts m to the mailbox. It blocks while the mailbox is full and
// reports false, without delivering m, once the actor has stopped.
//
// The handler must not call Send on its own actor: when the mailbox is full
// it would wait for itself. It should change its state directly instead.
func (a *Actor[M]) Send(m M) bool {
	select {
	case <-a.stop:
		return false
	default:
	}
	select { // the mailbox has room: no select over two channels
	case a.inbox <- m:
		a.posted()
		return true
	default:
	}
	select {
	case a.inbox <- m:
		a.posted()
		return true
	case <-a.stop:
		return false
	}
}

// posted follows a message into the mailbox: if the loop may have ended
// before taking it, the message is dropped here. The loop ends only after
// Stop, and drops what it leaves; a message posted before Stop is the
// loop's to handle or drop, and one posted after is found here.
func (a *Actor[M]) posted() {
	if a.drop == nil {
		return
	}
	select {
	case <-a.stop:
		a.dropLeft()
	default:
	}
}

// dropLeft gives drop every message in the mailbox.
func (a *Actor[M]) dropLeft() {
	if a.drop == nil {
		return
	}
	for {
		select {
		case m := <-a.inbox:
			a.drop(m)
		default:
			return
		}
	}
}

// Stop asks the loop to end after the message it is handling. Messages still
// in the mailbox are dropped. Stop may be called more than once and from the
// handler itself.
func (a *Actor[M]) Stop() { a.once.Do(func() { close(a.stop) }) }

// Done returns a channel closed once the loop goroutine has returned.
func (a *Actor[M]) Done() <-chan struct{} { return a.stopped }

// Wait blocks until the loop has returned and every worker started with Go
// has finished. Call Stop first, or Wait may wait forever.
func (a *Actor[M]) Wait() {
	<-a.stopped
	a.workers.Wait()
}

// Go runs fn on a new worker goroutine that Wait waits for. Workers are how
// the handler does blocking work (I/O) without blocking the loop: fn reports
// its result by sending a message.
func (a *Actor[M]) Go(fn func()) {
	a.workers.Add(1)
	go func() {
		defer a.workers.Done()
		fn()
	}()
}

// After arms a timer that sends m after d and returns it, so that the owner
// can stop it. A timer that fires after the actor stopped delivers nothing and
// its goroutine returns at once; an owner that re-arms a periodic timer from
// its handler gets a tick that never outlives the actor.
func (a *Actor[M]) After(d time.Duration, m M) *time.Timer {
	return time.AfterFunc(d, func() { a.Send(m) })
}
