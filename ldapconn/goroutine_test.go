package ldapconn_test

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/fairpool/ldappool/ldapconn"
	"github.com/fairpool/ldappool/ldaptest"
)

// A search under a context with a deadline starts no goroutine of the
// pool's: it runs on go-ldap's context-aware SearchAsync, on the caller's
// goroutine. (An operation go-ldap has no context-aware call for, such as
// Compare, runs on a goroutine of its own so that the caller can leave when
// its context ends.)
func TestSearchWithADeadlineStartsNoGoroutineOfThePools(t *testing.T) {
	slow, arrived, opt := slowArrivals(300 * time.Millisecond)
	srv := embedded(t, opt)
	p := newPool(t, srv.URL(), admin, ldapconn.WithMaxSize(1))
	if err := p.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name  string
		call  func() error
		wants bool // a goroutine of ctxtime.Call while it runs
	}{
		{"Search", func() error { _, err := p.Search(ctx, searchUID("user1")); return err }, false},
		{"Compare", func() error { _, err := p.Compare(ctx, ldaptest.UserDN(1), "uid", "user1"); return err }, true},
	} {
		slow.Store(1)
		done := make(chan error, 1)
		go func() { done <- tc.call() }()
		<-arrived // the call is at the server, and waits there for its slow answer
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		if got := strings.Contains(stacks, "internal/ctxtime.Call["); got != tc.wants {
			t.Errorf("%s under a deadline: a goroutine of ctxtime.Call running = %v; want %v", tc.name, got, tc.wants)
		}
		if err := <-done; err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
	}
}
