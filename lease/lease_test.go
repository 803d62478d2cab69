package lease_test

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fairpool/ldappool/internal/logbuf"

	"go.uber.org/goleak"

	"github.com/fairpool/ldappool/lease"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recorder is a Returner that records each return.
type recorder struct {
	mu   sync.Mutex
	errs []error
	done chan struct{}
}

func newRecorder() *recorder { return &recorder{done: make(chan struct{}, 16)} }

func (r *recorder) Return(handle any, err error) {
	r.mu.Lock()
	r.errs = append(r.errs, err)
	r.mu.Unlock()
	r.done <- struct{}{}
}

func (r *recorder) got() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]error(nil), r.errs...)
}

func TestOnlyTheFirstReturnCounts(t *testing.T) {
	sentinel := errors.New("broken")
	tests := []struct {
		name string
		do   func(l *lease.Lease[string])
		want error
	}{
		{"release twice", func(l *lease.Lease[string]) { l.Release(); l.Release() }, nil},
		{"discard then release", func(l *lease.Lease[string]) { l.Discard(sentinel); l.Release() }, sentinel},
		{"release then discard", func(l *lease.Lease[string]) { l.Release(); l.Discard(sentinel) }, nil},
		{"discard nil", func(l *lease.Lease[string]) { l.Discard(nil) }, lease.ErrDiscarded},
		{"tainted release discards", func(l *lease.Lease[string]) { l.Taint(sentinel); l.Release() }, sentinel},
	}
	for _, tt := range tests {
		for _, scoped := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s scoped %v", tt.name, scoped), func(t *testing.T) {
				r := newRecorder()
				newLease := lease.New[string]
				if scoped {
					newLease = lease.NewScoped[string]
				}
				l := newLease("conn", &lease.Config{Returner: r}, nil, lease.Info{Key: "k"})
				tt.do(l)
				got := r.got()
				if len(got) != 1 || !errors.Is(got[0], tt.want) || (tt.want == nil) != (got[0] == nil) {
					t.Fatalf("returns = %v; want exactly [%v]", got, tt.want)
				}
				if !l.Done() {
					t.Fatal("Done() = false after return")
				}
			})
		}
	}
}

type discardReturns struct{}

func (discardReturns) Return(any, error) {}

// A scoped lease, which its pool gives back itself, costs one allocation.
func TestScopedLeaseAllocatesOnce(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own account")
	}
	cfg := &lease.Config{Returner: discardReturns{}}
	if n := testing.AllocsPerRun(100, func() {
		lease.NewScoped("conn", cfg, nil, lease.Info{Key: "k"}).Release()
	}); n > 1 {
		t.Fatalf("NewScoped allocates %.1f objects; want 1", n)
	}
}

func TestConcurrentReleaseReturnsOnce(t *testing.T) {
	r := newRecorder()
	l := lease.New(1, &lease.Config{Returner: r}, nil, lease.Info{Key: "k"})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			if i%2 == 0 {
				l.Release()
			} else {
				l.Discard(nil)
			}
		})
	}
	wg.Wait()
	if n := len(r.got()); n != 1 {
		t.Fatalf("%d returns from 8 concurrent calls; want 1", n)
	}
}

func TestLeaseHeldPastThresholdIsLogged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf logbuf.Buffer
		log := slog.New(slog.NewTextHandler(&buf, nil))
		r := newRecorder()
		l := lease.New("c", &lease.Config{Returner: r, LeakAt: time.Minute, Logger: log}, nil, lease.Info{Key: "svc", LeasedAt: time.Now()})
		time.Sleep(59 * time.Second)
		synctest.Wait()
		if buf.String() != "" {
			t.Fatalf("logged before the threshold: %s", buf.String())
		}
		time.Sleep(time.Second)
		synctest.Wait()
		out := buf.String()
		if !strings.Contains(out, "lease held past the leak threshold") || !strings.Contains(out, "TestLeaseHeldPastThresholdIsLogged") {
			t.Fatalf("leak log = %q; want the message and the leasing stack", out)
		}
		l.Release()
	})
}

func TestReleasedLeaseIsNotReportedAsLeak(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf logbuf.Buffer
		l := lease.New("c", &lease.Config{Returner: newRecorder(), LeakAt: time.Minute, Logger: slog.New(slog.NewTextHandler(&buf, nil))}, nil, lease.Info{Key: "svc"})
		l.Release()
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		if buf.String() != "" {
			t.Fatalf("released lease reported: %s", buf.String())
		}
	})
}

func TestDroppedLeaseIsReportedAndReturned(t *testing.T) {
	t.Run("no leak detection", func(t *testing.T) { testDroppedLease(t, 0) })
	// The leak timer, armed for an hour, must not keep the dropped lease
	// reachable.
	t.Run("leak detection", func(t *testing.T) { testDroppedLease(t, time.Hour) })
}

func testDroppedLease(t *testing.T, leakAt time.Duration) {
	var buf logbuf.Buffer
	r := newRecorder()
	func() {
		lease.New("c", &lease.Config{Returner: r, LeakAt: leakAt, Logger: slog.New(slog.NewTextHandler(&buf, nil))}, nil, lease.Info{Key: "svc"})
	}()
	// The cleanup runs after a collection finds the lease unreachable; the
	// loop is bounded in count and gives up with a clear failure.
	for range 50 {
		runtime.GC()
		select {
		case <-r.done:
			if got := r.got(); len(got) != 1 || !errors.Is(got[0], lease.ErrDropped) {
				t.Fatalf("returns = %v; want [ErrDropped]", got)
			}
			if !strings.Contains(buf.String(), "dropped without Release") {
				t.Fatalf("log = %q; want the drop reported", buf.String())
			}
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatal("a dropped lease was never returned to the pool after 50 collections")
}
