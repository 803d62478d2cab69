package ldapconn_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fairpool/ldappool/ldapconn"
	"github.com/fairpool/ldappool/ldaptest"
)

func TestNewPoolRefusesBadOptions(t *testing.T) {
	tests := []struct {
		name string
		opts []ldapconn.Option
		want string // the error's start
	}{
		{"empty password", []ldapconn.Option{ldapconn.WithBind("cn=admin", "")},
			`ldapconn: WithBind("cn=admin", ""): empty password for "cn=admin"`},
		{"password without DN", []ldapconn.Option{ldapconn.WithBind("", "s3cr3t")},
			`ldapconn: WithBind("", REDACTED): a password without a bind DN`},
		{"connect timeout", []ldapconn.Option{ldapconn.WithConnectTimeout(-time.Second)},
			"ldapconn: WithConnectTimeout(-1s): must be positive"},
		{"operation timeout", []ldapconn.Option{ldapconn.WithOperationTimeout(0)},
			"ldapconn: WithOperationTimeout(0s): must be positive"},
		{"no tries", []ldapconn.Option{ldapconn.WithRetry(0, 0)},
			"ldapconn: WithRetry(0, 0s): tries must be at least 1"},
		{"negative tries", []ldapconn.Option{ldapconn.WithRetry(-1, time.Second)},
			"ldapconn: WithRetry(-1, 1s): tries must be at least 1"},
		{"too many tries", []ldapconn.Option{ldapconn.WithRetry(101, time.Second)},
			"ldapconn: WithRetry(101, 1s): tries must be at most 100"},
		{"huge retry", []ldapconn.Option{ldapconn.WithRetry(1<<40, 1<<62)},
			"ldapconn: WithRetry(1099511627776, 1281023h"},
		{"no delay", []ldapconn.Option{ldapconn.WithRetry(3, 0)},
			"ldapconn: WithRetry(3, 0s): delay must be positive"},
		{"delay too long", []ldapconn.Option{ldapconn.WithRetry(3, 2*time.Hour)},
			"ldapconn: WithRetry(3, 2h0m0s): delay must be at most 1h0m0s"},
		{"huge delay", []ldapconn.Option{ldapconn.WithRetry(3, math.MaxInt64)},
			"ldapconn: WithRetry(3, 2562047h47m16.854775807s): delay must be at most 1h0m0s"},
		{"max backoff below the delay", []ldapconn.Option{ldapconn.WithRetry(1, time.Minute), ldapconn.WithMaxBackoff(30 * time.Second)},
			"ldapconn: WithMaxBackoff(30s): must be at least the retry delay (1m0s)"},
		{"max backoff below the default delay", []ldapconn.Option{ldapconn.WithMaxBackoff(time.Millisecond)},
			"ldapconn: WithMaxBackoff(1ms): must be at least the retry delay (100ms)"},
		{"zero max backoff", []ldapconn.Option{ldapconn.WithMaxBackoff(0)},
			"ldapconn: WithMaxBackoff(0s): must be at least the retry delay (100ms)"},
		{"huge max backoff", []ldapconn.Option{ldapconn.WithMaxBackoff(math.MaxInt64)},
			"ldapconn: WithMaxBackoff(2562047h47m16.854775807s): must be at most 24h0m0s"},
		{"failback", []ldapconn.Option{ldapconn.WithFailbackAfter(-1)},
			"ldapconn: WithFailbackAfter(-1ns): must be positive"},
		{"strategy", []ldapconn.Option{ldapconn.WithStrategy(9)},
			"ldapconn: WithStrategy(Strategy(9)): unknown strategy"},
		{"nil validator", []ldapconn.Option{ldapconn.WithValidator(nil)},
			"ldapconn: WithValidator(nil): must not be nil"},
		{"auth pool", []ldapconn.Option{ldapconn.WithAuthPool(0)},
			"ldapconn: WithAuthPool(0): the bind lane needs at least 1 connection"},
		{"nil option", []ldapconn.Option{ldapconn.WithNoPool(), nil},
			"ldapconn: NewPool: option 2 is nil"},
		{"nil engine option", []ldapconn.Option{ldapconn.WithMaxSize(2), ldapconn.WithPoolOptions(nil)},
			"ldapconn: WithPoolOptions: option 2 is nil"},
		{"engine option", []ldapconn.Option{ldapconn.WithMaxSize(-1)},
			"ldapconn: WithMaxSize(-1): size must be at least 1"},
		{"max size", []ldapconn.Option{ldapconn.WithMaxSize(0)},
			"ldapconn: WithMaxSize(0): size must be at least 1"},
		{"ops per conn", []ldapconn.Option{ldapconn.WithOpsPerConn(0)},
			"ldapconn: WithOpsPerConn(0): must be at least 1"},
		{"max in flight", []ldapconn.Option{ldapconn.WithMaxInFlight(-1)},
			"ldapconn: WithMaxInFlight(-1): must not be negative"},
		{"soft limit", []ldapconn.Option{ldapconn.WithMaxSize(4), ldapconn.WithSoftLimit(3)},
			"ldapconn: WithSoftLimit(3): must exceed WithMaxSize (4)"},
		{"jitter", []ldapconn.Option{ldapconn.WithLifetimeJitter(math.NaN())},
			"ldapconn: WithLifetimeJitter(NaN)"},
		{"wait timeout", []ldapconn.Option{ldapconn.WithWaitTimeout(-time.Second)},
			"ldapconn: WithWaitTimeout(-1s)"},
		{"nil logger", []ldapconn.Option{ldapconn.WithLogger(nil)},
			"ldapconn: WithLogger(nil)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ldapconn.NewPool("ldap://a", tt.opts...)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("NewPool error = %v; want one starting %q", err, tt.want)
			}
			if p != nil {
				t.Fatal("NewPool returned a pool with its error")
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Fatalf("NewPool error shows the password: %v", err)
			}
		})
	}
}

func TestEmptyPasswordErrorMatchesErrEmptyPassword(t *testing.T) {
	_, err := ldapconn.NewPool("ldap://a", ldapconn.WithBind("cn=admin", ""))
	if !errors.Is(err, ldapconn.ErrEmptyPassword) {
		t.Fatalf("NewPool error = %v; want one matching ErrEmptyPassword", err)
	}
}

func TestNewPoolRefusesABadURI(t *testing.T) {
	_, err := ldapconn.NewPool("ldapx://a", ldapconn.WithNoPool())
	if !errors.Is(err, ldapconn.ErrBadURI) || !strings.HasPrefix(err.Error(), `ldapconn: bad server URI "ldapx://a"`) {
		t.Fatalf("NewPool error = %v; want ErrBadURI naming the URI", err)
	}
}

// Settings at their limits make a pool: the bound the pool derives for the
// engine's dials saturates instead of overflowing into a negative
// WithConnectTimeout that nobody set.
func TestNewPoolAcceptsSettingsAtTheirLimits(t *testing.T) {
	servers := "ldap://a:1"
	for port := 2; port <= 1000; port++ {
		servers += ",ldap://a:" + strconv.Itoa(port)
	}
	tests := []struct {
		name string
		opts []ldapconn.Option
	}{
		{"longest timeouts", []ldapconn.Option{ldapconn.WithConnectTimeout(math.MaxInt64), ldapconn.WithOperationTimeout(math.MaxInt64)}},
		{"most retries", []ldapconn.Option{ldapconn.WithRetry(100, time.Hour), ldapconn.WithMaxBackoff(24 * time.Hour)}},
		{"all at once", []ldapconn.Option{ldapconn.WithConnectTimeout(math.MaxInt64), ldapconn.WithOperationTimeout(math.MaxInt64),
			ldapconn.WithRetry(100, time.Hour), ldapconn.WithAuthPool(1)}},
		{"a retry delay past the default max backoff", []ldapconn.Option{ldapconn.WithRetry(2, time.Minute)}},
		{"one operation a connection", []ldapconn.Option{ldapconn.WithOpsPerConn(1), ldapconn.WithMaxInFlight(1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ldapconn.NewPool(servers, tt.opts...)
			if err != nil {
				t.Fatalf("NewPool: %v", err)
			}
			if err := p.Close(context.Background()); err != nil {
				t.Fatalf("Close: %v", err)
			}
		})
	}
}

// A size as large as math.MaxInt, meant as "no limit", serves: the pool's
// arithmetic on sizes (operations in flight in all are the size times the
// depth) saturates rather than overflowing. It used to be accepted and then
// grant no share, so that every Search waited until its context ended.
func TestHugeSizesServe(t *testing.T) {
	srv := embedded(t)
	for name, opts := range map[string][]ldapconn.Option{
		"WithOpsPerConn(math.MaxInt)":               {ldapconn.WithOpsPerConn(math.MaxInt)},
		"WithMaxSize(math.MaxInt)":                  {ldapconn.WithMaxSize(math.MaxInt)},
		"WithSoftLimit(math.MaxInt)":                {ldapconn.WithSoftLimit(math.MaxInt)},
		"WithMaxSize(1<<40), WithOpsPerConn(1<<24)": {ldapconn.WithMaxSize(1 << 40), ldapconn.WithOpsPerConn(1 << 24)},
	} {
		p := newPool(t, srv.URL(), append([]ldapconn.Option{admin}, opts...)...)
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				if _, err := p.Search(ctx, searchUID("user1")); err != nil {
					t.Errorf("%s: Search = %v; MaxInFlight %d", name, err, p.Stats().MaxInFlight)
				}
			})
		}
		wg.Wait()
		cancel()
		if st := p.Stats(); st.MaxInFlight <= 0 {
			t.Errorf("%s: Stats().MaxInFlight = %d; want it saturated, not overflowed", name, st.MaxInFlight)
		}
	}
	t.Setenv("LDAP_SERVERS", srv.URL())
	t.Setenv("LDAP_BIND_DN", ldaptest.AdminDN)
	t.Setenv("LDAP_BIND_PASSWORD", ldaptest.AdminPassword)
	t.Setenv("LDAP_OPS_PER_CONN", fmt.Sprint(math.MaxInt))
	cfg, err := ldapconn.ConfigFromEnv("")
	if err != nil {
		t.Fatalf("LDAP_OPS_PER_CONN=%d: %v", math.MaxInt, err)
	}
	p := newPoolFromConfig(t, cfg)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, err := p.Search(ctx, searchUID("user1")); err != nil {
		t.Fatalf("LDAP_OPS_PER_CONN=%d: Search = %v", math.MaxInt, err)
	}
}
