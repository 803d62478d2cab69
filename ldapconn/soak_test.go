package ldapconn_test

// The soak (issue 10): workers make random calls of every kind, with short
// deadlines and cancellations, against the embedded server while a fault
// injector changes its latency, drops its connections and resets new ones.
// At the end the books must balance: every call returned, every error has a
// class, no answer contradicts the directory, every lease came back, every
// connection opened was closed, the server holds none, and nothing leaked
// (goleak in TestMain). `make soak` runs it for a minute; plain `go test`
// for about three seconds.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/fairpool/ldappool/internal/logbuf"
	"github.com/fairpool/ldappool/ldapconn"
	"github.com/fairpool/ldappool/ldaptest"
)

var soakFor = flag.Duration("soak", 0, "how long TestSoak runs, split between its phases (0: about 3s)")

const (
	soakShort   = 3 * time.Second
	soakWorkers = 24
	soakMaxSize = 4
	soakUsers   = 8 // LeaseAs identities: few, so their connections are reused and rebound
	// soakGrace is how long the workers may take to return once the run is
	// over; every call is bounded well inside it (a 10s context at most).
	soakGrace = 30 * time.Second
)

func TestSoak(t *testing.T) {
	total := *soakFor
	if total <= 0 {
		total = soakShort
	}
	phases := []struct {
		name    string
		limit   int // the most connections of the service pool open at once
		servers int // embedded servers, each behind its proxy; with two, reads are hedged
		opts    []ldapconn.Option
	}{
		{"WithMaxSize(4)", soakMaxSize, 1, nil},
		{"WithMaxSize(4) WithSoftLimit(6)", 6, 1, []ldapconn.Option{ldapconn.WithSoftLimit(6)}},
		{"WithMaxSize(4) two servers, hedged", soakMaxSize, 2, nil},
	}
	for _, ph := range phases {
		t.Run(ph.name, func(t *testing.T) {
			runSoak(t, total/time.Duration(len(phases)), ph.limit, ph.servers, ph.opts...)
		})
	}
}

// soakRun is one phase of the soak: a pool behind a resetting proxy in front
// of each embedded server, and what its workers saw.
type soakRun struct {
	srvs   []*ldaptest.Server
	pxs    []*countingProxy // one a server
	counts []*connCount     // one a server: its proxy's connections
	pool   *ldapconn.Pool
	logs   *logbuf.Buffer

	started, returned           atomic.Int64 // calls
	leased, released, discarded atomic.Int64 // leases the workers took themselves

	mu       sync.Mutex
	calls    map[string]int           // by operation
	classes  map[string]int           // errors by class
	slowest  map[string]time.Duration // by operation
	faults   map[string]int
	odd      map[string]string // unclassifiable errors, by message
	unwanted map[string]string // errors of a class this run cannot meet, by message
	wrong    []string          // answers that contradict the directory
}

func runSoak(t *testing.T, d time.Duration, limit, servers int, extra ...ldapconn.Option) {
	s := &soakRun{logs: new(logbuf.Buffer),
		calls: map[string]int{}, classes: map[string]int{}, slowest: map[string]time.Duration{},
		faults: map[string]int{}, odd: map[string]string{}, unwanted: map[string]string{}}
	urls := make([]string, servers)
	for i := range servers {
		srv, count := embedded(t), new(connCount)
		px := newCountingProxy(t, srv.URL(), count)
		s.srvs, s.pxs, s.counts, urls[i] = append(s.srvs, srv), append(s.pxs, px), append(s.counts, count), px.URL()
	}
	opts := append([]ldapconn.Option{admin, ldapconn.WithMaxSize(soakMaxSize), ldapconn.WithMinIdle(1),
		ldapconn.WithMaxLifetime(200 * time.Millisecond), ldapconn.WithValidatePeriod(50 * time.Millisecond),
		ldapconn.WithOperationTimeout(300 * time.Millisecond), ldapconn.WithMaxBackoff(time.Second),
		ldapconn.WithLogger(slog.New(slog.NewTextHandler(s.logs, nil)))}, extra...)
	p, err := ldapconn.NewPool(strings.Join(urls, ","), opts...)
	if err != nil {
		t.Fatalf("NewPool: %v", err)
	}
	s.pool = p
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d, %v, %d workers", seed, d, soakWorkers)

	start := time.Now()
	until := start.Add(d)
	var workers sync.WaitGroup
	for g := range soakWorkers {
		workers.Go(func() { s.worker(t.Context(), rand.New(rand.NewPCG(seed, uint64(g))), until) })
	}
	stop := make(chan struct{})
	var injector sync.WaitGroup
	injector.Go(func() { s.inject(stop, rand.New(rand.NewPCG(seed, soakWorkers))) })
	s.awaitWorkers(t, &workers, until.Add(soakGrace))
	close(stop)
	injector.Wait()
	for _, srv := range s.srvs {
		srv.SetLatency(0)
	}
	elapsed := time.Since(start)

	s.checkAnswers(t)
	s.checkLeasesCameBack(t)
	s.closePool(t)
	s.checkConnections(t, limit)
	s.summary(t, elapsed)
}

// worker makes random calls until the run is over.
func (s *soakRun) worker(base context.Context, rng *rand.Rand, until time.Time) {
	for time.Now().Before(until) {
		op := pickOp(rng)
		ctx, cancel := soakContext(base, rng)
		s.started.Add(1)
		began := time.Now()
		err := op.run(s, ctx, rng)
		took := time.Since(began)
		s.returned.Add(1)
		cancel()
		s.record(op.name, took, err)
	}
}

// soakContext gives most calls a generous deadline, some a short one, and
// cancels some while they run.
func soakContext(base context.Context, rng *rand.Rand) (context.Context, context.CancelFunc) {
	switch r := rng.IntN(100); {
	case r < 15:
		return context.WithTimeout(base, time.Duration(1+rng.IntN(50))*time.Millisecond)
	case r < 30:
		ctx, cancel := context.WithCancel(base)
		timer := time.AfterFunc(time.Duration(rng.IntN(30))*time.Millisecond, cancel)
		return ctx, func() { timer.Stop(); cancel() }
	default:
		return context.WithTimeout(base, 10*time.Second)
	}
}

// awaitWorkers waits for the workers until deadline; past it a call has
// hung, and the test fails with the pool's state and every goroutine.
func (s *soakRun) awaitWorkers(t *testing.T, workers *sync.WaitGroup, deadline time.Time) {
	done := make(chan struct{})
	go func() { workers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Until(deadline)):
		var stacks strings.Builder
		pprof.Lookup("goroutine").WriteTo(&stacks, 1)
		t.Fatalf("%d calls started, %d returned %v after the run ended; want every call answered\n%s\n%s",
			s.started.Load(), s.returned.Load(), soakGrace, s.pool, stacks.String())
	}
}

// inject changes the server's latency, drops its connections or resets
// the next new ones, every 50 to 250ms.
func (s *soakRun) inject(stop <-chan struct{}, rng *rand.Rand) {
	latencies := []time.Duration{0, 0, time.Millisecond, 5 * time.Millisecond, 20 * time.Millisecond, 80 * time.Millisecond}
	for {
		select {
		case <-stop:
			return
		case <-time.After(time.Duration(50+rng.IntN(200)) * time.Millisecond):
		}
		var fault string
		k := rng.IntN(len(s.srvs)) // the server it hits
		srv, px := s.srvs[k], s.pxs[k]
		switch r := rng.IntN(100); {
		case r < 45:
			srv.SetLatency(latencies[rng.IntN(len(latencies))])
			fault = "latency 0-80ms"
		case r < 55:
			srv.SetLatency(400 * time.Millisecond) // past the operation timeout
			fault = "latency 400ms"
		case r < 75:
			srv.DropConnections()
			fault = "drop every connection"
		default:
			px.resets.Store(int32(1 + rng.IntN(2)))
			fault = "reset new connections"
		}
		s.mu.Lock()
		s.faults[fault]++
		s.mu.Unlock()
	}
}

// soakOp is a kind of call the workers make, with its weight in the draw.
type soakOp struct {
	name   string
	weight int
	run    func(s *soakRun, ctx context.Context, rng *rand.Rand) error
}

var soakOps = []soakOp{
	{"Search", 3, (*soakRun).search},
	{"Do", 2, (*soakRun).do},
	{"Lease+Release", 3, (*soakRun).leaseRelease},
	{"Lease+Discard", 1, (*soakRun).leaseDiscard},
	{"LeaseAs", 2, (*soakRun).leaseAs},
	{"Authenticate", 2, (*soakRun).authenticate},
}

func pickOp(rng *rand.Rand) soakOp {
	total := 0
	for _, o := range soakOps {
		total += o.weight
	}
	n := rng.IntN(total)
	for _, o := range soakOps {
		if n -= o.weight; n < 0 {
			return o
		}
	}
	panic("unreachable")
}

func (s *soakRun) search(ctx context.Context, rng *rand.Rand) error {
	i := rng.IntN(ldaptest.Users)
	res, err := s.pool.Search(ctx, soakSearch(i))
	if err == nil {
		s.checkEntry("Search", res, i)
	}
	return err
}

func (s *soakRun) do(ctx context.Context, rng *rand.Rand) error {
	i := rng.IntN(ldaptest.Users)
	return s.pool.Do(ctx, func(c ldap.Client) error {
		res, err := c.Search(soakSearch(i))
		if err == nil {
			s.checkEntry("Do", res, i)
		}
		return err
	})
}

// leaseRelease leases a connection, runs one to three operations on it
// (searches, compares, binds as a user) and releases it; now and then it
// checks that the released lease's client refuses to work.
func (s *soakRun) leaseRelease(ctx context.Context, rng *rand.Rand) error {
	l, err := s.pool.Lease(ctx)
	if err != nil {
		return err
	}
	s.leased.Add(1)
	c := l.Client()
	for range 1 + rng.IntN(3) {
		if err = s.clientOp(c, rng); err != nil {
			break
		}
	}
	l.Release()
	s.released.Add(1)
	if rng.IntN(10) == 0 {
		if _, e := c.Search(soakSearch(1)); !errors.Is(e, ldapconn.ErrLeaseReleased) {
			s.contradiction("a search on a released lease returned %v; want ErrLeaseReleased", e)
		}
	}
	return err
}

func (s *soakRun) leaseDiscard(ctx context.Context, rng *rand.Rand) error {
	l, err := s.pool.Lease(ctx)
	if err != nil {
		return err
	}
	s.leased.Add(1)
	err = s.clientOp(l.Client(), rng)
	l.Discard(errors.New("soak: discarded"))
	s.discarded.Add(1)
	return err
}

// leaseAs leases a connection as one of a few users, a tenth of the time
// with a wrong password, and searches on it.
func (s *soakRun) leaseAs(ctx context.Context, rng *rand.Rand) error {
	i := rng.IntN(soakUsers)
	creds, right := ldapconn.Credentials{DN: ldaptest.UserDN(i), Password: ldaptest.UserPassword(i)}, true
	if rng.IntN(10) == 0 {
		creds.Password, right = "wrong", false
	}
	l, err := s.pool.LeaseAs(ctx, creds)
	s.checkVerdict("LeaseAs", right, err)
	if err != nil {
		return err
	}
	s.leased.Add(1)
	j := rng.IntN(ldaptest.Users)
	res, err := l.Client().Search(soakSearch(j))
	if err == nil {
		s.checkEntry("LeaseAs", res, j)
	}
	l.Release()
	s.released.Add(1)
	return err
}

// authenticate checks a user's password, a third of the time a wrong one.
func (s *soakRun) authenticate(ctx context.Context, rng *rand.Rand) error {
	i := rng.IntN(ldaptest.Users)
	pw, right := ldaptest.UserPassword(i), true
	if rng.IntN(3) == 0 {
		pw, right = "wrong", false
	}
	err := s.pool.Authenticate(ctx, ldaptest.UserDN(i), pw)
	s.checkVerdict("Authenticate", right, err)
	return err
}

// clientOp runs one operation on a lease's client and checks its answer.
func (s *soakRun) clientOp(c ldap.Client, rng *rand.Rand) error {
	i := rng.IntN(ldaptest.Users)
	switch rng.IntN(4) {
	case 0:
		ok, err := c.Compare(ldaptest.UserDN(i), "uid", fmt.Sprint("user", i))
		if err == nil && !ok {
			s.contradiction("Compare(%s, uid, user%d) = false; want true", ldaptest.UserDN(i), i)
		}
		return err
	case 1:
		// A bind as a user: the release binds the connection back.
		err := c.Bind(ldaptest.UserDN(i), ldaptest.UserPassword(i))
		s.checkVerdict("Client().Bind", true, err)
		return err
	default:
		res, err := c.Search(soakSearch(i))
		if err == nil {
			s.checkEntry("Client().Search", res, i)
		}
		return err
	}
}

func soakSearch(i int) *ldap.SearchRequest { return searchUID(fmt.Sprint("user", i)) }

func (s *soakRun) checkEntry(op string, res *ldap.SearchResult, i int) {
	want := ldaptest.SeedUser(i).CN
	if len(res.Entries) != 1 || res.Entries[0].GetAttributeValue("cn") != want {
		got := make([]string, len(res.Entries))
		for k, e := range res.Entries {
			got[k] = e.DN
		}
		s.contradiction("%s for user%d returned %v; want the one entry with cn %q", op, i, got, want)
	}
}

// checkVerdict checks a bind's answer against the password's truth: a right
// password is never refused as invalid, a wrong one never accepted.
func (s *soakRun) checkVerdict(op string, right bool, err error) {
	switch {
	case right && ldapconn.IsInvalidCredentials(err):
		s.contradiction("%s with the right password: %v", op, err)
	case !right && err == nil:
		s.contradiction("%s with a wrong password succeeded", op)
	}
}

func (s *soakRun) contradiction(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.wrong = append(s.wrong, fmt.Sprintf(format, args...))
}

// record counts a call and classifies its error.
func (s *soakRun) record(op string, took time.Duration, err error) {
	class := soakClass(err)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[op]++
	s.slowest[op] = max(s.slowest[op], took)
	switch {
	case class == "":
		s.odd[err.Error()] = fmt.Sprintf("%s: %v (%T)", op, err, err)
	case class == "ok":
	case soakCannotMeet[class]:
		s.unwanted[err.Error()] = fmt.Sprintf("%s: %s: %v", op, class, err)
		s.classes[class]++
	default:
		s.classes[class]++
	}
}

// soakClass names err's class as docs/errors.md's table does; "" is an
// error that fits none.
func soakClass(err error) string {
	var le *ldap.Error
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ldapconn.ErrClosed):
		return "ErrClosed"
	case errors.Is(err, ldapconn.ErrInvalidCredentials):
		return "ErrInvalidCredentials"
	case errors.Is(err, ldapconn.ErrServerDown):
		return "ErrServerDown"
	case errors.Is(err, ldapconn.ErrExhausted):
		return "ErrExhausted"
	case errors.Is(err, ldapconn.ErrLeaseReleased):
		return "ErrLeaseReleased"
	case errors.Is(err, ldapconn.ErrOutcomeUnknown):
		return "ErrOutcomeUnknown"
	case errors.Is(err, ldapconn.ErrBadRequest):
		return "ErrBadRequest"
	case errors.Is(err, context.Canceled):
		return "context.Canceled"
	case errors.Is(err, context.DeadlineExceeded) && ldapconn.IsBroken(err):
		return "operation timeout"
	case errors.Is(err, context.DeadlineExceeded):
		return "context.DeadlineExceeded"
	case ldapconn.IsBroken(err):
		return "broken connection"
	case errors.As(err, &le):
		return fmt.Sprintf("LDAP result %d", le.ResultCode)
	}
	return ""
}

// soakCannotMeet are the classes no call of the soak should get: the pool
// is closed only after the workers stop, it does not fail fast, the workers
// send no writes and no bad input, and they use no lease after releasing it
// (the check that does is not counted as a call).
var soakCannotMeet = map[string]bool{"ErrClosed": true, "ErrExhausted": true, "ErrOutcomeUnknown": true,
	"ErrBadRequest": true, "ErrLeaseReleased": true}

func (s *soakRun) checkAnswers(t *testing.T) {
	t.Helper()
	if started, returned := s.started.Load(), s.returned.Load(); started != returned {
		t.Errorf("%d calls started, %d returned", started, returned)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, msg := range slices.Sorted(maps.Values(s.odd)) {
		t.Errorf("unclassifiable error: %s", msg)
	}
	for _, msg := range slices.Sorted(maps.Values(s.unwanted)) {
		t.Errorf("error of a class this soak cannot meet: %s", msg)
	}
	for i, msg := range s.wrong {
		if i == 20 {
			t.Errorf("... and %d more contradictions", len(s.wrong)-i)
			break
		}
		t.Errorf("contradiction: %s", msg)
	}
}

// checkLeasesCameBack waits for every lease to come back to both pools: an
// operation a caller gave up on keeps its connection until it ends, within
// the operation timeout.
func (s *soakRun) checkLeasesCameBack(t *testing.T) {
	t.Helper()
	if leased, back := s.leased.Load(), s.released.Load()+s.discarded.Load(); leased != back {
		t.Errorf("the workers took %d leases and gave back %d", leased, back)
	}
	waitFor(t, "every lease to come back", func() bool {
		m, a := s.pool.Stats(), s.pool.AuthStats()
		return m.InUse == 0 && a.InUse == 0 && m.Waiters == 0 && a.Waiters == 0
	})
	if st := s.pool.Stats(); st.Leases < uint64(s.leased.Load()) {
		t.Errorf("the pool counted %d leases; the workers alone took %d", st.Leases, s.leased.Load())
	}
}

func (s *soakRun) closePool(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.pool.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// checkConnections checks, after Close, that every connection each pool
// opened was closed, that the server holds none, and that the server never
// held more than the limits allow: the service pool's limit, the bind
// lane's 2 and one probe.
func (s *soakRun) checkConnections(t *testing.T, limit int) {
	t.Helper()
	for name, st := range map[string]ldapconn.Stats{"service pool": s.pool.Stats(), "bind lane": s.pool.AuthStats()} {
		if st.Open != 0 || st.Dialing != 0 || st.Opened() != st.Closed {
			t.Errorf("%s after Close: %d open, %d dialing, %d opened (%d dials - %d failed), %d closed; want 0, 0 and opened = closed",
				name, st.Open, st.Dialing, st.Opened(), st.Dials, st.DialErrors, st.Closed)
		}
	}
	for i, srv := range s.srvs {
		waitFor(t, fmt.Sprintf("server %d to see every connection closed", i), func() bool { return srv.Stats().Open == 0 })
	}
	// A suspected server gets one probe at a time, whatever raised the
	// suspicion (an operation timeout, the stall watchdog).
	for i, count := range s.counts {
		if peak, _ := count.figures(); canSeeTCPState && peak > limit+2+1 {
			t.Errorf("%d connections open at server %d at once; want at most %d (pool, hedge lane included) + 2 (bind lane) + 1 (probe)",
				peak, i, limit)
		}
	}
}

func (s *soakRun) summary(t *testing.T, elapsed time.Duration) {
	m, a := s.pool.Stats(), s.pool.AuthStats()
	s.mu.Lock()
	defer s.mu.Unlock()
	calls, failed := 0, 0
	for _, n := range s.calls {
		calls += n
	}
	for _, n := range s.classes {
		failed += n
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d calls in %v (%.0f per second), %d failed\n", calls, elapsed.Round(time.Millisecond),
		float64(calls)/elapsed.Seconds(), failed)
	fmt.Fprintf(&b, "  calls: %s\n", tally(s.calls, func(n int) string { return fmt.Sprint(n) }))
	fmt.Fprintf(&b, "  slowest: %s\n", tally(s.slowest, func(d time.Duration) string { return d.Round(time.Millisecond).String() }))
	fmt.Fprintf(&b, "  errors: %s\n", tally(s.classes, func(n int) string { return fmt.Sprint(n) }))
	fmt.Fprintf(&b, "  faults: %s\n", tally(s.faults, func(n int) string { return fmt.Sprint(n) }))
	fmt.Fprintf(&b, "  service pool: %d leases (%d by Lease and LeaseAs), %d shares (Do, Search), %d waits, %d dials (%d failed), %d discards, %d expiries, %d validations (%d failed), %d rebinds, %d dead, %d timeouts\n",
		m.Leases, s.leased.Load(), m.Shares, m.Waits, m.Dials, m.DialErrors, m.Discards, m.Expiries, m.Validations,
		m.ValidationErrors, m.Rebinds, m.Dead, m.Timeouts)
	fmt.Fprintf(&b, "  bind lane: %d leases, %d dials (%d failed), %d dead\n", a.Leases, a.Dials, a.DialErrors, a.Dead)
	for i, srv := range s.srvs {
		st := srv.Stats()
		peak, total := s.counts[i].figures()
		fmt.Fprintf(&b, "  server %d: %d connections accepted, at most %d open at once (%d through its proxy, %d reset there), %d dropped, %d binds, %d searches, %d compares, %d abandons\n",
			i, st.Accepted, peak, total, s.pxs[i].reset.Load(), st.Dropped, st.Binds, st.Searches, st.Compares, st.Abandons)
	}
	for i, st := range s.pool.Servers() {
		fmt.Fprintf(&b, "  pool's server %d: %d operations, %d hedged, %d hedges won\n", i, st.Operations, st.Hedged, st.HedgesLost)
	}
	fmt.Fprintf(&b, "  availability log: %d lines", strings.Count(s.logs.String(), "\n"))
	t.Log(b.String())
}

// tally prints a map's entries sorted by key.
func tally[V any](m map[string]V, format func(V) string) string {
	parts := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+" "+format(m[k]))
	}
	return strings.Join(parts, ", ")
}
