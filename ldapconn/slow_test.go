package ldapconn_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/go-ldap/ldap/v3"

	"github.com/fairpool/ldappool/internal/logbuf"
	"github.com/fairpool/ldappool/ldapconn"
	"github.com/fairpool/ldappool/ldaptest"
)

// One connection reset during a dial does not fail every caller with
// "every server is down" for the backoff: callers willing to wait (5s
// contexts) wait for the next attempt, and all succeed.
func TestOneResetDuringADialFailsNobody(t *testing.T) {
	srv := embedded(t)
	var count connCount
	px := newCountingProxy(t, srv.URL(), &count)
	px.resets.Store(1)
	p := newPool(t, px.URL(), admin)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var failed atomic.Int32
	for i := range 8 {
		wg.Go(func() {
			if _, err := p.Search(ctx, searchUID("user"+string(rune('0'+i)))); err != nil {
				failed.Add(1)
				t.Errorf("caller %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d of 8 callers failed after one reset during a dial; want 0", failed.Load())
	}
	if px.reset.Load() != 1 {
		t.Fatalf("the proxy reset %d connections; want 1", px.reset.Load())
	}
}

// One operation past the operation timeout is one slow operation, not a
// dead server: a probe finds the server answering and leaves it up, and the
// next callers are served.
func TestOneSlowOperationDoesNotTakeTheOnlyServerDown(t *testing.T) {
	slow, latency := slowNext(2 * time.Second)
	srv := embedded(t, latency)
	p, err := ldapconn.NewPool(srv.URL(), admin, ldapconn.WithOperationTimeout(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Search(t.Context(), searchUID("user1")); err != nil {
		t.Fatal(err)
	}
	slow.Store(1)
	_, err = p.Search(t.Context(), searchUID("user1"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("the slow Search = %v; want the operation timeout, which matches context.DeadlineExceeded", err)
	}
	for i := range 8 {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		_, err := p.Search(ctx, searchUID("user2"))
		cancel()
		if err != nil {
			t.Fatalf("Search %d after one slow operation: %v", i, err)
		}
	}
	// Close waits for the probe; the server must still be up after it.
	if err := p.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if s := p.Servers()[0]; !s.Up {
		t.Fatalf("the only server is marked down after one slow operation: %+v", s)
	}
}

// A wrong service password with WithMinIdle is tried once in the
// background, not again and again (retried wrong passwords lock accounts).
func TestWrongServicePasswordIsNotRetriedInTheBackground(t *testing.T) {
	srv := embedded(t)
	var logs logbuf.Buffer
	fast := func() backoff.BackOff { return backoff.NewConstantBackOff(10 * time.Millisecond) }
	p := newPool(t, srv.URL(), ldapconn.WithBind(ldaptest.AdminDN, "wrong"), ldapconn.WithMinIdle(2),
		ldapconn.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))), ldapconn.WithBackOff(fast))
	waitFor(t, "the first background binds", func() bool { return srv.Stats().Binds >= 1 })
	// The backoff is 10ms: a pool that retried would bind about 30 more
	// times in the next 300ms.
	deadline := time.NewTimer(300 * time.Millisecond)
	<-deadline.C
	if n := srv.Stats().Binds; n > 2 {
		t.Fatalf("%d binds with a wrong service password and nobody asking; want at most WithMinIdle's first 2", n)
	}
	if _, err := p.Lease(t.Context()); !errors.Is(err, ldapconn.ErrInvalidCredentials) {
		t.Fatalf("Lease = %v; want ErrInvalidCredentials", err)
	}
	if n := strings.Count(logs.String(), "credentials refused"); n != 1 {
		t.Fatalf("the refusal was logged %d times; want once:\n%s", n, logs.String())
	}
}

// Do runs its function once more after a dead reused connection only when
// the function sent no write: a write whose connection broke may have been
// applied, and its error says the outcome is unknown (rule 8).
func TestDoDoesNotResendAWrite(t *testing.T) {
	for _, tc := range []struct {
		name        string
		write, warm bool
	}{
		{"reads are retried on a reused connection", false, true},
		{"reads are retried on a fresh connection", false, false},
		{"a write is not", true, true},
	} {
		write := tc.write
		t.Run(tc.name, func(t *testing.T) {
			srv := embedded(t)
			p := newPool(t, srv.URL(), admin)
			if tc.warm {
				if _, err := p.Search(t.Context(), searchUID("user1")); err != nil {
					t.Fatal(err)
				}
			}
			calls := 0
			err := p.Do(t.Context(), func(c ldap.Client) error {
				calls++
				if write && calls == 1 {
					// The embedded server refuses the modify; what
					// matters is that it was sent.
					c.Modify(ldap.NewModifyRequest(ldaptest.UserDN(1), nil))
				}
				if calls == 1 {
					srv.DropConnections() // the connection dies under the function
				}
				_, err := c.Search(searchUID("user2"))
				return err
			})
			switch {
			case !write && (err != nil || calls != 2):
				t.Fatalf("Do = %v after %d calls; want success on the second", err, calls)
			case write && (!errors.Is(err, ldapconn.ErrOutcomeUnknown) || calls != 1 || ldapconn.IsRetryable(err)):
				t.Fatalf("Do = %v after %d calls; want ErrOutcomeUnknown after 1, not retryable", err, calls)
			}
		})
	}
}

// An operation other than Search that its caller gave up on keeps its
// connection out of the pool until it ends, and then the connection goes
// back: no second caller is lent a connection with a response due on it,
// and no connection is lost.
func TestAnAbandonedCompareKeepsItsConnectionUntilItEnds(t *testing.T) {
	srv := embedded(t)
	p := newPool(t, srv.URL(), admin, ldapconn.WithMaxSize(1))
	if _, err := p.Search(t.Context(), searchUID("user1")); err != nil {
		t.Fatal(err)
	}
	srv.SetLatency(300 * time.Millisecond)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	l, err := p.Lease(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Client().Compare(ldaptest.UserDN(1), "cn", "User 1"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Compare = %v; want the caller's deadline", err)
	}
	l.Release()
	if st := p.Stats(); st.InUse != 1 {
		t.Fatalf("in use %d right after the abandoned Compare's Release; want its connection kept until it ends", st.InUse)
	}
	srv.SetLatency(0)
	next, err := p.Lease(t.Context()) // waits for the compare to end
	if err != nil {
		t.Fatal(err)
	}
	ok, err := next.Client().Compare(ldaptest.UserDN(1), "cn", "User 1")
	next.Release()
	if err != nil || !ok {
		t.Fatalf("the next Compare = %v, %v", ok, err)
	}
	if st := p.Stats(); st.Dials != 1 || st.Discards != 0 {
		t.Fatalf("dials %d, discards %d; want the one connection kept", st.Dials, st.Discards)
	}
}
