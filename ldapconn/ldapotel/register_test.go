package ldapotel_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/goleak"

	"github.com/fairpool/ldappool/ldapconn"
	"github.com/fairpool/ldappool/ldapconn/ldapotel"
	"github.com/fairpool/ldappool/ldaptest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// setup starts the embedded server and a pool named "test" over it,
// registered with a MeterProvider read by hand.
func setup(t *testing.T, opts ...ldapconn.Option) (*ldaptest.Server, *ldapconn.Pool, *sdkmetric.ManualReader) {
	t.Helper()
	srv, err := ldaptest.NewServer()
	if err != nil {
		t.Fatalf("embedded server: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	opts = append([]ldapconn.Option{ldapconn.WithBind(ldaptest.AdminDN, ldaptest.AdminPassword),
		ldapconn.WithPoolName("test")}, opts...)
	p, err := ldapconn.NewPool(srv.URL(), opts...)
	if err != nil {
		t.Fatalf("NewPool: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { mp.Shutdown(context.Background()) })
	unregister, err := ldapotel.Register(p, mp)
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	t.Cleanup(func() {
		if err := unregister(); err != nil {
			t.Errorf("unregister: %v", err)
		}
	})
	return srv, p, reader
}

// collected is one collection, by instrument name.
type collected map[string]metricdata.Metrics

func collect(t *testing.T, reader *sdkmetric.ManualReader) collected {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(t.Context(), &rm); err != nil {
		t.Fatalf("Collect: %v", err)
	}
	out := collected{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != ldapotel.ScopeName {
			t.Fatalf("scope %q; want %q", sm.Scope.Name, ldapotel.ScopeName)
		}
		for _, m := range sm.Metrics {
			out[m.Name] = m
		}
	}
	return out
}

// attrs renders a set as k=v,k=v in key order, for lookups and messages.
func attrs(s attribute.Set) string {
	var b []string
	for _, kv := range s.ToSlice() {
		b = append(b, string(kv.Key)+"="+kv.Value.String())
	}
	return strings.Join(b, ",")
}

// int64s returns an integer instrument's points by their attributes.
func (c collected) int64s(t *testing.T, name string) map[string]int64 {
	t.Helper()
	m, ok := c[name]
	if !ok {
		t.Fatalf("no instrument %s", name)
	}
	out := map[string]int64{}
	var points []metricdata.DataPoint[int64]
	switch d := m.Data.(type) {
	case metricdata.Sum[int64]:
		points = d.DataPoints
	case metricdata.Gauge[int64]:
		points = d.DataPoints
	default:
		t.Fatalf("%s holds %T; want integer points", name, m.Data)
	}
	for _, p := range points {
		out[attrs(p.Attributes)] = p.Value
	}
	return out
}

// counts returns a histogram's counts by their attributes.
func (c collected) counts(t *testing.T, name string) map[string]uint64 {
	t.Helper()
	h, ok := c[name].Data.(metricdata.Histogram[float64])
	if !ok {
		t.Fatalf("%s holds %T; want a float histogram", name, c[name].Data)
	}
	if c[name].Unit != "s" {
		t.Fatalf("%s in %q; want s", name, c[name].Unit)
	}
	out := map[string]uint64{}
	for _, p := range h.DataPoints {
		out[attrs(p.Attributes)] = p.Count
	}
	return out
}

const (
	mainPool = "db.client.connection.pool.name=test"
	bindPool = "db.client.connection.pool.name=test/bind"
)

func TestRegisterReportsThePool(t *testing.T) {
	srv, p, reader := setup(t)
	req := ldapconn.NewSearch(ldaptest.PeopleDN, "(uid=user1)", "cn")
	for range 3 {
		if _, err := p.Search(t.Context(), req); err != nil {
			t.Fatalf("Search: %v", err)
		}
	}
	if err := p.Authenticate(t.Context(), ldaptest.AdminDN, ldaptest.AdminPassword); err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	held, err := p.Lease(t.Context())
	if err != nil {
		t.Fatalf("Lease: %v", err)
	}
	defer held.Release()
	c := collect(t, reader)

	host, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL(), "ldap://"))
	at := ",server.address=" + host + ",server.port=" + port
	server := mainPool + at
	for _, tt := range []struct {
		name string
		want map[string]int64
	}{
		{"db.client.connection.count", map[string]int64{
			"db.client.connection.pool.name=test,db.client.connection.state=idle":      0,
			"db.client.connection.pool.name=test,db.client.connection.state=used":      1,
			"db.client.connection.pool.name=test/bind,db.client.connection.state=idle": 1,
			"db.client.connection.pool.name=test/bind,db.client.connection.state=used": 0,
		}},
		{"db.client.connection.max", map[string]int64{mainPool: 10, bindPool: 2}},
		{"db.client.connection.idle.max", map[string]int64{mainPool: 10, bindPool: 2}},
		{"db.client.connection.idle.min", map[string]int64{mainPool: 0, bindPool: 0}},
		{"db.client.connection.pending_requests", map[string]int64{mainPool: 0, bindPool: 0}},
		{"db.client.connection.timeouts", map[string]int64{mainPool: 0, bindPool: 0}},
		{"ldap.server.up", map[string]int64{server: 1}},
		{"ldap.server.failovers", map[string]int64{server: 0}},
		// 3 searches on the service pool, one bind on the bind lane.
		{"ldap.server.operations", map[string]int64{mainPool + ",outcome=ok" + at: 4, mainPool + ",outcome=error" + at: 0}},
		// One server: nothing to hedge to.
		{"ldap.server.hedges", map[string]int64{mainPool + ",outcome=won" + at: 0, mainPool + ",outcome=lost" + at: 0}},
	} {
		got := c.int64s(t, tt.name)
		if len(got) != len(tt.want) {
			t.Errorf("%s: %v; want %v", tt.name, got, tt.want)
			continue
		}
		for k, v := range tt.want {
			if g, ok := got[k]; !ok || g != v {
				t.Errorf("%s{%s} = %d (reported: %v); want %d", tt.name, k, g, ok, v)
			}
		}
	}
	// Leases: 3 searches and the one held; binds: 1. Releases: the 3
	// searches and the bind. Dials: one a lane.
	for name, want := range map[string]map[string]uint64{
		"db.client.connection.wait_time":   {mainPool: 4, bindPool: 1},
		"db.client.connection.use_time":    {mainPool: 3, bindPool: 1},
		"db.client.connection.create_time": {mainPool: 1, bindPool: 1},
	} {
		got := c.counts(t, name)
		if len(got) != len(want) || got[mainPool] != want[mainPool] || got[bindPool] != want[bindPool] {
			t.Errorf("%s counts %v; want %v", name, got, want)
		}
	}
	if got := len(c); got != 13 {
		t.Errorf("%d instruments reported; want 13", got)
	}
	// No series names an identity: the key names hold DNs.
	for name, m := range c {
		for _, s := range attributeSets(m) {
			for _, kv := range s.ToSlice() {
				if v := strings.ToLower(kv.Value.String()); strings.Contains(v, "dc=") || strings.Contains(v, "cn=") {
					t.Errorf("%s has the attribute %s=%s, a DN", name, kv.Key, kv.Value.String())
				}
			}
		}
	}
}

func attributeSets(m metricdata.Metrics) []attribute.Set {
	var out []attribute.Set
	switch d := m.Data.(type) {
	case metricdata.Sum[int64]:
		for _, p := range d.DataPoints {
			out = append(out, p.Attributes)
		}
	case metricdata.Gauge[int64]:
		for _, p := range d.DataPoints {
			out = append(out, p.Attributes)
		}
	case metricdata.Histogram[float64]:
		for _, p := range d.DataPoints {
			out = append(out, p.Attributes)
		}
	}
	return out
}

func TestRegisterTwiceIsRefusedUntilUnregistered(t *testing.T) {
	_, p, _ := setup(t)
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	defer mp.Shutdown(context.Background())
	if _, err := ldapotel.Register(p, mp); !errors.Is(err, ldapotel.ErrRegistered) {
		t.Fatalf("a second Register = %v; want ErrRegistered", err)
	}
}

func TestUnregisterStopsReporting(t *testing.T) {
	srv, err := ldaptest.NewServer()
	if err != nil {
		t.Fatalf("embedded server: %v", err)
	}
	defer srv.Close()
	p, err := ldapconn.NewPool(srv.URL(), ldapconn.WithPoolName("other"))
	if err != nil {
		t.Fatalf("NewPool: %v", err)
	}
	defer p.Close(context.Background())
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	unregister, err := ldapotel.Register(p, mp)
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	search := func() {
		t.Helper()
		if _, err := p.Search(t.Context(), ldapconn.NewSearch(ldaptest.PeopleDN, "(uid=user1)", "cn")); err != nil {
			t.Fatalf("Search: %v", err)
		}
	}
	search()
	const other = "db.client.connection.pool.name=other"
	if got := collect(t, reader).int64s(t, "db.client.connection.max"); got[other] != 10 {
		t.Fatalf("max %v; want 10 for the pool named other", got)
	}
	if err := unregister(); err != nil {
		t.Fatalf("unregister: %v", err)
	}
	if err := unregister(); err != nil {
		t.Fatalf("a second unregister: %v", err)
	}
	search()
	// The histograms keep what they recorded, as any synchronous
	// instrument does, but record nothing more; the rest is gone.
	c := collect(t, reader)
	if got := c.counts(t, "db.client.connection.wait_time"); got[other] != 1 {
		t.Fatalf("wait_time counts %v after unregister; want the 1 lease before it", got)
	}
	if _, ok := c["db.client.connection.max"]; ok || len(c) != 3 {
		t.Fatalf("after unregister %d instruments reported; want only the 3 histograms", len(c))
	}
	again, err := ldapotel.Register(p, mp)
	if err != nil {
		t.Fatalf("Register after unregister: %v", err)
	}
	if err := again(); err != nil {
		t.Fatalf("unregister: %v", err)
	}
}

// Recording an event costs the supervisor no allocation.
func TestHistogramsRecordWithoutAllocating(t *testing.T) {
	_, p, _ := setup(t)
	req := ldapconn.NewSearch(ldaptest.PeopleDN, "(uid=user1)", "cn")
	if _, err := p.Search(t.Context(), req); err != nil {
		t.Fatalf("Search: %v", err)
	}
	base := testing.AllocsPerRun(50, func() { p.Search(t.Context(), req) })
	p.Observe(nil, nil)
	without := testing.AllocsPerRun(50, func() { p.Search(t.Context(), req) })
	t.Logf("allocations per search: %.1f observed, %.1f not", base, without)
	if base > without+1.5 { // the histograms record twice a search
		t.Fatalf("a search allocates %.1f times observed, %.1f not; want no more", base, without)
	}
}
