package actor_test

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/fairpool/ldappool/actor"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type msg struct {
	n     int
	reply chan int
}

func TestMessagesHandledInOrder(t *testing.T) {
	var got []int // touched only by the handler
	a := actor.Start(4, func(m msg) {
		if m.reply != nil {
			m.reply <- len(got)
			return
		}
		if len(got) != m.n {
			t.Errorf("message %d handled in position %d", m.n, len(got))
		}
		got = append(got, m.n)
	})
	for i := range 100 {
		if !a.Send(msg{n: i}) {
			t.Fatalf("Send(%d) = false before Stop", i)
		}
	}
	var replies actor.Replies[int]
	n, ok := actor.Call(a, &replies, func(c chan int) msg { return msg{reply: c} })
	if !ok || n != 100 {
		t.Fatalf("Call after 100 sends = %d, %v; want 100, true", n, ok)
	}
	a.Stop()
	a.Wait()
	if a.Send(msg{n: 1}) {
		t.Fatal("Send after Stop = true; want false")
	}
	if _, ok := actor.Call(a, &replies, func(c chan int) msg { return msg{reply: c} }); ok {
		t.Fatal("Call after Stop reported a reply")
	}
}

func TestSendUnblocksOnStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		block := make(chan struct{})
		a := actor.Start(0, func(msg) { <-block })
		a.Send(msg{}) // the handler now blocks
		sent := make(chan bool)
		go func() { sent <- a.Send(msg{}) }()
		synctest.Wait()
		a.Stop()
		if <-sent {
			t.Fatal("a Send blocked on a full mailbox reported delivery after Stop")
		}
		close(block)
		a.Wait()
	})
}

func TestWaitWaitsForWorkers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var results []int
		a := actor.Start(1, func(m msg) { results = append(results, m.n) })
		for i := range 3 {
			a.Go(func() {
				time.Sleep(time.Duration(i+1) * time.Second) // simulated I/O
				a.Send(msg{n: i})
			})
		}
		time.Sleep(4 * time.Second)
		synctest.Wait()
		a.Stop()
		a.Wait()
		if len(results) != 3 {
			t.Fatalf("worker results handled = %v; want 3 of them", results)
		}
	})
}

func TestAfterPostsAMessage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fired := make(chan time.Time, 2)
		a := actor.Start(1, func(msg) { fired <- time.Now() })
		start := time.Now()
		a.After(5*time.Second, msg{})
		stopped := a.After(time.Second, msg{})
		stopped.Stop()
		if at := <-fired; at.Sub(start) != 5*time.Second {
			t.Fatalf("timer fired after %v; want 5s", at.Sub(start))
		}
		late := a.After(time.Second, msg{})
		a.Stop()
		a.Wait()
		time.Sleep(2 * time.Second) // past the timer: it must deliver nothing
		synctest.Wait()
		if len(fired) != 0 {
			t.Fatal("a stopped timer or one firing after Stop delivered a message")
		}
		_ = late
	})
}

func TestBatchedFlushEndsEachRun(t *testing.T) {
	gate := make(chan struct{})
	var got, runs []int // touched only by the loop goroutine until Wait
	run := 0
	a := actor.StartBatched(16, 4, func(m msg) {
		if m.n == 0 {
			<-gate // the other messages queue up meanwhile
		}
		if m.reply != nil {
			m.reply <- len(got)
			return
		}
		got = append(got, m.n)
		run++
	}, func() bool {
		runs = append(runs, run)
		run = 0
		return true // busy: the loop yields before it parks, and still serves
	}, nil)
	for i := range 11 {
		a.Send(msg{n: i})
	}
	close(gate)
	var replies actor.Replies[int]
	n, ok := actor.Call(a, &replies, func(c chan int) msg { return msg{reply: c} })
	if !ok || n != 11 {
		t.Fatalf("Call after 11 sends = %d, %v; want 11, true", n, ok)
	}
	a.Stop()
	a.Wait()
	for i, m := range got {
		if m != i {
			t.Fatalf("handled %v; want 0..10 in order", got)
		}
	}
	total := 0
	for _, r := range runs {
		if r > 4 {
			t.Fatalf("runs between flushes %v: one is longer than the batch of 4", runs)
		}
		total += r
	}
	if total != 11 || len(runs) < 3 {
		t.Fatalf("runs between flushes %v: want 11 messages in at least 3 runs", runs)
	}
}

// Every message a Send posted is either handled or given to drop, once,
// however the sends race with Stop: a sender that is told its message went
// in can count on an answer from one or the other.
func TestDropGetsEveryMessageNotHandled(t *testing.T) {
	for i := range 50 {
		var handled, dropped, posted atomic.Int64
		gate := make(chan struct{})
		a := actor.StartBatched(8, 4, func(m msg) {
			<-gate // the mailbox fills meanwhile
			handled.Add(1)
		}, func() bool { return false }, func(m msg) { dropped.Add(1) })
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for range 100 {
					if a.Send(msg{}) {
						posted.Add(1)
					}
				}
			})
		}
		for posted.Load() < int64(i%8) {
			runtime.Gosched()
		}
		a.Stop()
		close(gate)
		wg.Wait()
		a.Wait()
		if h, d, p := handled.Load(), dropped.Load(), posted.Load(); h+d != p {
			t.Fatalf("%d messages posted, %d handled and %d dropped", p, h, d)
		}
	}
}
