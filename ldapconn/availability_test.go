package ldapconn_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/fairpool/ldappool/internal/logbuf"
	"github.com/fairpool/ldappool/ldapconn"
)

// The availability log says each change once: a server down (warning),
// every server down (error, once however many callers fail), a server back
// up, a failover and a failback (information).
func TestAvailabilityIsLoggedOncePerChange(t *testing.T) {
	srv := embedded(t)
	var count connCount
	primary := newCountingProxy(t, srv.URL(), &count)
	secondary := newCountingProxy(t, srv.URL(), &count)
	var logs logbuf.Buffer
	p := newPool(t, primary.URL()+" "+secondary.URL(), admin,
		ldapconn.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	lines := func(msg string) int { return strings.Count(logs.String(), `msg="ldapconn: `+msg+`"`) }

	if err := p.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if logs.String() != "" {
		t.Fatalf("logged with every server up:\n%s", logs.String())
	}

	// The primary goes: a warning, and a failover to the secondary.
	addr := strings.TrimPrefix(primary.URL(), "ldap://")
	primary.stop()
	p.Close(t.Context()) // a new pool keeps this test about dials, not pooled connections
	p = newPool(t, primary.URL()+" "+secondary.URL(), admin, ldapconn.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	for range 3 {
		if err := p.Ping(t.Context()); err != nil {
			t.Fatalf("Ping with the secondary up: %v", err)
		}
	}
	if lines("server down") != 1 || lines("failed over") != 1 || lines("every server is down") != 0 {
		t.Fatalf("after the primary went: want one 'server down' and one 'failed over':\n%s", logs.String())
	}

	// Both gone: one error, however many callers fail.
	secondary.stop()
	p.Close(t.Context())
	p = newPool(t, primary.URL()+" "+secondary.URL(), admin, ldapconn.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	for range 4 {
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond) // Do waits out a restart for as long as the caller lets it
		err := p.Ping(ctx)
		cancel()
		// Either the dial's verdict or, if the caller's deadline came
		// first while Do waited for the next attempt, the deadline.
		if !errors.Is(err, ldapconn.ErrServerDown) && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Ping with every server down = %v; want ErrServerDown", err)
		}
	}
	if n := lines("every server is down"); n != 1 {
		t.Fatalf("'every server is down' logged %d times for 4 failing callers; want once:\n%s", n, logs.String())
	}

	// The primary comes back on its address: back up, and a failback is
	// not needed (nothing was on the secondary in this pool).
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on the primary's address again: %v", err)
	}
	back := &countingProxy{ln: ln, target: strings.TrimPrefix(srv.URL(), "ldap://"), count: &count, conns: map[net.Conn]struct{}{}}
	back.wg.Add(1)
	go back.accept()
	t.Cleanup(back.stop)
	waitFor(t, "a Ping to succeed once the primary is back", func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		return p.Ping(ctx) == nil
	})
	if lines("server back up") < 1 {
		t.Fatalf("no 'server back up' after the primary came back:\n%s", logs.String())
	}
}
