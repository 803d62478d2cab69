// Package actor is the small runtime a pool's supervisor runs on: one goroutine
// that owns some state and drains one mailbox of messages, timers that turn the
// passing of time into messages, a FIFO queue whose entries can be removed in
// O(1), and accounting for the worker goroutines the owner starts so that
// stopping waits for every one of them.
//
// The package knows nothing of pools. Its promises:
//
//   - The handler passed to [Start] runs on one goroutine, one message at a
//     time, so state touched only by the handler needs no lock. The flush
//     of [StartBatched] runs on that goroutine too, after each run of
//     messages.
//   - [Actor.Send] blocks only while the mailbox is full and returns false,
//     never blocking forever, once the actor has stopped.
//   - [Actor.Go] starts a worker that [Actor.Wait] waits for; a worker's result
//     travels back as one more message.
//   - [Actor.After] arms a timer whose firing is a message; timers armed after
//     the actor stopped never fire.
//
// The shortest use:
//
//	a := actor.Start(16, func(m int) { sum += m })
//	a.Send(1)
//	a.Stop()
//	a.Wait()
package actor
