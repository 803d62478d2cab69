package ldapotel

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/fairpool/ldappool/ldapconn"
)

// ScopeName is the instrumentation scope of the meter Register uses.
const ScopeName = "github.com/fairpool/ldappool/ldapconn/ldapotel"

// The attributes this package sets.
const (
	poolNameKey = attribute.Key("db.client.connection.pool.name")
	stateKey    = attribute.Key("db.client.connection.state")
	addressKey  = attribute.Key("server.address")
	portKey     = attribute.Key("server.port")
	outcomeKey  = attribute.Key("outcome")
)

// ErrRegistered is returned by Register for a pool that is registered
// already and not yet unregistered: the pool tells one set of histograms
// of its events at a time.
var ErrRegistered = errors.New("ldapotel: pool registered already")

// registered holds the pools registered now.
var registered sync.Map // *ldapconn.Pool → struct{}

// Register adds the pool's instruments to mp (see the package comment for
// the list) and returns what removes them and stops the histograms. A pool
// is registered at most once at a time; Register returns ErrRegistered for
// a second. The callback asks the pool for a snapshot on each collection, so
// collecting from a closed pool reports its last state.
func Register(p *ldapconn.Pool, mp metric.MeterProvider, opts ...Option) (unregister func() error, err error) {
	if p == nil || mp == nil {
		return nil, errors.New("ldapotel: Register needs a pool and a MeterProvider")
	}
	cfg := config{buckets: defaultBuckets}
	for _, o := range opts {
		o.apply(&cfg)
	}
	if _, dup := registered.LoadOrStore(p, struct{}{}); dup {
		return nil, ErrRegistered
	}
	r, err := newRegistration(p, mp.Meter(ScopeName), cfg)
	if err != nil {
		registered.Delete(p)
		return nil, err
	}
	var once sync.Once
	return func() error {
		var err error
		once.Do(func() {
			p.Observe(nil, nil)
			err = r.reg.Unregister()
			registered.Delete(p)
		})
		return err
	}, nil
}

// registration is one pool's instruments and the attribute sets of its
// series, made once: the pool's names and servers never change.
type registration struct {
	p                                       *ldapconn.Pool
	reg                                     metric.Registration
	count, idleMax, idleMin, maxSize, queue metric.Int64ObservableUpDownCounter
	timeouts, failovers, operations, hedges metric.Int64ObservableCounter
	up                                      metric.Int64ObservableGauge
	lanes                                   [2]lane // the service pool, the bind lane
	servers                                 []server
}

// lane is the attribute sets of one engine pool's series.
type lane struct {
	pool, idle, used metric.ObserveOption
}

func newLane(name string) lane {
	opt := func(kv ...attribute.KeyValue) metric.ObserveOption {
		return metric.WithAttributeSet(attribute.NewSet(append(kv, poolNameKey.String(name))...))
	}
	return lane{pool: opt(), idle: opt(stateKey.String("idle")), used: opt(stateKey.String("used"))}
}

// server is the attribute sets of one server's series.
type server struct {
	attrs, ok, failed, won, lost metric.ObserveOption
}

func newServer(pool, url string) (server, error) {
	list, err := ldapconn.ParseServers(url)
	if err != nil || len(list) != 1 {
		return server{}, fmt.Errorf("ldapotel: server %q: %v", url, err)
	}
	host, port, err := net.SplitHostPort(list[0].Host)
	if err != nil {
		return server{}, fmt.Errorf("ldapotel: server %q: %w", url, err)
	}
	n, _ := strconv.Atoi(port)
	opt := func(kv ...attribute.KeyValue) metric.ObserveOption {
		kv = append(kv, poolNameKey.String(pool), addressKey.String(host), portKey.Int(n))
		return metric.WithAttributeSet(attribute.NewSet(kv...))
	}
	return server{attrs: opt(), ok: opt(outcomeKey.String("ok")), failed: opt(outcomeKey.String("error")),
		won: opt(outcomeKey.String("won")), lost: opt(outcomeKey.String("lost"))}, nil
}

func newRegistration(p *ldapconn.Pool, m metric.Meter, cfg config) (*registration, error) {
	main, auth := p.Stats().Name, p.AuthStats().Name
	r := &registration{p: p, lanes: [2]lane{newLane(main), newLane(auth)}}
	for _, s := range p.Servers() {
		srv, err := newServer(main, s.URL)
		if err != nil {
			return nil, err
		}
		r.servers = append(r.servers, srv)
	}
	var errs []error
	updown := func(name, unit, desc string) metric.Int64ObservableUpDownCounter {
		i, err := m.Int64ObservableUpDownCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return i
	}
	counter := func(name, unit, desc string) metric.Int64ObservableCounter {
		i, err := m.Int64ObservableCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return i
	}
	histogram := func(name, desc string) metric.Float64Histogram {
		h, err := m.Float64Histogram(name, metric.WithUnit("s"), metric.WithDescription(desc),
			metric.WithExplicitBucketBoundaries(cfg.buckets...))
		errs = append(errs, err)
		return h
	}
	r.count = updown("db.client.connection.count", "{connection}",
		"The number of connections open, by state: idle, or used (leased, being checked or being closed).")
	r.idleMax = updown("db.client.connection.idle.max", "{connection}", "The maximum number of idle connections allowed.")
	r.idleMin = updown("db.client.connection.idle.min", "{connection}", "The minimum number of idle connections kept open.")
	r.maxSize = updown("db.client.connection.max", "{connection}", "The maximum number of open connections allowed.")
	r.queue = updown("db.client.connection.pending_requests", "{request}",
		"The number of callers waiting for a connection.")
	r.timeouts = counter("db.client.connection.timeouts", "{timeout}",
		"The number of callers that gave up waiting for a connection (their context ended or the wait timeout passed).")
	r.up = func() metric.Int64ObservableGauge {
		g, err := m.Int64ObservableGauge("ldap.server.up", metric.WithUnit("1"),
			metric.WithDescription("1 when the server may be dialed, 0 while it waits out its backoff after failing."))
		errs = append(errs, err)
		return g
	}()
	r.failovers = counter("ldap.server.failovers", "{failover}",
		"The number of connections opened to the server because the servers before it in a dial's order failed.")
	r.operations = counter("ldap.server.operations", "{operation}",
		"The number of operations run on the server's connections, by outcome.")
	r.hedges = counter("ldap.server.hedges", "{read}",
		"The number of reads on the server that were hedged to another server, by outcome: won (the server answered first) or lost.")
	wait := histogram("db.client.connection.wait_time", "The time a lease waited for a connection.")
	use := histogram("db.client.connection.use_time", "The time a connection was leased, from lease to release.")
	create := histogram("db.client.connection.create_time", "The time a successful dial took, bind included.")
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("ldapotel: %w", err)
	}
	reg, err := m.RegisterCallback(r.observe, r.count, r.idleMax, r.idleMin, r.maxSize, r.queue,
		r.timeouts, r.up, r.failovers, r.operations, r.hedges)
	if err != nil {
		return nil, fmt.Errorf("ldapotel: %w", err)
	}
	r.reg = reg
	p.Observe(newHistograms(wait, use, create, main), newHistograms(wait, use, create, auth))
	return r, nil
}

// observe is the one callback: a snapshot of each lane and of the servers,
// taken once per collection.
func (r *registration) observe(_ context.Context, o metric.Observer) error {
	for i, st := range [2]ldapconn.Stats{r.p.Stats(), r.p.AuthStats()} {
		l := r.lanes[i]
		o.ObserveInt64(r.count, int64(st.Idle), l.idle)
		o.ObserveInt64(r.count, int64(st.Open-st.Idle), l.used)
		o.ObserveInt64(r.idleMax, int64(st.MaxIdle), l.pool)
		o.ObserveInt64(r.idleMin, int64(st.MinIdle), l.pool)
		o.ObserveInt64(r.maxSize, int64(st.MaxSize), l.pool)
		o.ObserveInt64(r.queue, int64(st.Waiters), l.pool)
		o.ObserveInt64(r.timeouts, int64(st.Timeouts), l.pool)
	}
	for i, s := range r.p.Servers() {
		if i >= len(r.servers) {
			break
		}
		srv := r.servers[i]
		up := int64(0)
		if s.Up {
			up = 1
		}
		o.ObserveInt64(r.up, up, srv.attrs)
		o.ObserveInt64(r.failovers, int64(s.Failovers), srv.attrs)
		o.ObserveInt64(r.operations, int64(s.Operations-s.OperationErrors), srv.ok)
		o.ObserveInt64(r.operations, int64(s.OperationErrors), srv.failed)
		o.ObserveInt64(r.hedges, int64(s.Hedged-s.HedgesLost), srv.won)
		o.ObserveInt64(r.hedges, int64(s.HedgesLost), srv.lost)
	}
	return nil
}

// histograms is the ldapconn.Observer of one lane: it records each event in
// the three duration histograms under the lane's pool name.
type histograms struct {
	wait, use, create metric.Float64Histogram
	opts              []metric.RecordOption // the pool name, made once
}

func newHistograms(wait, use, create metric.Float64Histogram, pool string) *histograms {
	set := attribute.NewSet(poolNameKey.String(pool))
	return &histograms{wait: wait, use: use, create: create, opts: []metric.RecordOption{metric.WithAttributeSet(set)}}
}

var _ ldapconn.Observer = (*histograms)(nil)

func (h *histograms) Waited(d time.Duration) {
	h.wait.Record(context.Background(), d.Seconds(), h.opts...)
}

func (h *histograms) Used(d time.Duration) {
	h.use.Record(context.Background(), d.Seconds(), h.opts...)
}

func (h *histograms) Created(d time.Duration) {
	h.create.Record(context.Background(), d.Seconds(), h.opts...)
}
