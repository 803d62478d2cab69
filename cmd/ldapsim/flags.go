package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fairpool/ldappool/ldapconn"
	"github.com/fairpool/ldappool/ldaptest"
	"github.com/fairpool/ldappool/sim"
)

// options is the command line, parsed and checked.
type options struct {
	target       string // "embedded", "slapd", "model" or a URL list
	bindDN       string
	bindPassword string
	searchBase   string

	workload sim.Workload
	duration time.Duration
	pool     sim.PoolConfig
	sweep    []int // pool sizes
	depths   []int // -sweep-depth
	p99      time.Duration

	model sim.ModelConfig

	calibrate bool
	probe     time.Duration // -probe-duration

	seed  uint64
	json  bool
	chart string
	quiet bool

	set map[string]bool // the flags given on the command line
	fs  *flag.FlagSet   // the flags, for their values as given
}

// usageError is a bad command line: main prints it with the usage and exits 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func bad(name string, value any, reason string) error {
	return &usageError{fmt.Sprintf("ldapsim: -%s %v: %s", name, value, reason)}
}

const usageHead = `ldapsim drives the real pool with a workload and reports what it did:
throughput, lease-wait and operation percentiles, fairness across clients,
connections opened and at their peak, and errors by kind. -calibrate fits
the server model to a real server and checks its prediction against it.

Usage:
  ldapsim [flags]

With no flags it runs 16 closed-loop clients on a pool of 4 (16 operations
per connection) against the embedded LDAP server for 15 seconds. Examples:

  ldapsim -target model -latency lognormal -latency-mean 2ms -sweep 1,2,4,8,16 -target-p99 5ms -chart sizing.svg
  ldapsim -target model -server-concurrency 8 -clients 64 -sweep 1,2,4 -sweep-depth 1,4,16 -target-p99 5ms
  ldapsim -workload multiprocess -processes 8 -threads 4 -pool-size 4 -depth 1
  ldapsim -calibrate -target slapd
  ldapsim -target model -fault down:5s-8s,slow:10s-12s,drop:9s
  ldapsim -target ldaps://ldap.example.org -bind-dn cn=svc,dc=example,dc=org -bind-password "$PW" -search-base ou=people,dc=example,dc=org

Flags:
`

// parseFlags reads args (without the program name). Its errors are
// *usageError for a bad command line, and flag.ErrHelp for -h, for which it
// has printed the usage. usage prints the usage to stderr.
func parseFlags(args []string, stderr io.Writer) (o *options, usage func(), err error) {
	o = &options{set: map[string]bool{}}
	fs := flag.NewFlagSet("ldapsim", flag.ContinueOnError)
	o.fs = fs
	fs.SetOutput(io.Discard) // errors are printed by main, with the usage
	var (
		workload, latency, fault, sweep, depths string
		seed                                    uint64
	)
	fs.StringVar(&o.target, "target", "embedded", "what the pools connect to: embedded (the in-process LDAP server), slapd (a throwaway OpenLDAP slapd, if installed), model (the server model) or a directory's `URL` (ldap://host:389, ldaps://host)")
	fs.StringVar(&o.bindDN, "bind-dn", "", "the pools' service identity for a URL target (default: "+ldaptest.AdminDN+" for embedded and slapd)")
	fs.StringVar(&o.bindPassword, "bind-password", "", "the service identity's password")
	fs.StringVar(&o.searchBase, "search-base", ldaptest.PeopleDN, "where each operation, a subtree search for (uid=userN), searches, for a URL target")

	fs.StringVar(&workload, "workload", "closed", "`kind`: closed (clients in a loop), poisson (open arrivals at -rate), burst (-burst-size every -burst-every) or multiprocess (-processes pools of -threads clients)")
	fs.IntVar(&o.workload.Clients, "clients", 16, "closed: concurrent clients; poisson, burst: clients the arrivals are spread over, for fairness")
	fs.DurationVar(&o.workload.Think, "think", 0, "closed, multiprocess: mean think time between a release and the next lease (exponential)")
	fs.Float64Var(&o.workload.Rate, "rate", 100, "poisson: arrivals a second")
	fs.IntVar(&o.workload.BurstSize, "burst-size", 20, "burst: arrivals in each burst")
	fs.DurationVar(&o.workload.BurstEvery, "burst-every", time.Second, "burst: time from one burst to the next")
	fs.IntVar(&o.workload.Processes, "processes", 4, "multiprocess: processes, each with its own pool")
	fs.IntVar(&o.workload.Threads, "threads", 4, "multiprocess: threads in each process")
	fs.DurationVar(&o.duration, "duration", 15*time.Second, "how long each run makes requests")

	fs.IntVar(&o.pool.Size, "pool-size", 4, "the pool's maximum size (each process's, for multiprocess)")
	fs.IntVar(&o.pool.Depth, "depth", ldapconn.DefaultOpsPerConn, "operations in flight per connection (ldapconn.WithOpsPerConn): above 1 each operation takes a share of a connection instead of a whole one")
	fs.IntVar(&o.pool.MaxInFlight, "max-in-flight", 0, "operations in flight at once across each pool's connections (ldapconn.WithMaxInFlight); 0: -pool-size x -depth")
	fs.IntVar(&o.pool.MinIdle, "min-idle", 0, "idle connections the pool keeps open")
	fs.DurationVar(&o.pool.WaitTimeout, "wait-timeout", 0, "how long a lease waits before failing; 0: until the run ends")
	fs.DurationVar(&o.pool.MaxLifetime, "max-lifetime", 0, "close connections this old; 0: the engine's default, 10m")
	fs.BoolVar(&o.pool.FailFast, "fail-fast", false, "fail a lease at once when the pool is full, instead of waiting")
	fs.StringVar(&sweep, "sweep", "", "run once for each of these pool `sizes` and print the sizing curve, as 1,2,4,8,16")
	fs.StringVar(&depths, "sweep-depth", "", "run each pool size (-sweep, or -pool-size) at each of these `depths`, as 1,4,8, and have the advisor name a depth too")
	fs.DurationVar(&o.p99, "target-p99", 0, "with -sweep or -sweep-depth: name the fewest connections, and at -sweep-depth the smallest depth, whose lease-wait p99 is within this")

	fs.StringVar(&latency, "latency", "exponential", "the server's latency `distribution`: constant, exponential or lognormal (model; embedded only when set)")
	fs.DurationVar(&o.model.Latency.Mean, "latency-mean", time.Millisecond, "the server's mean latency (model; embedded only when set)")
	fs.Float64Var(&o.model.Latency.Sigma, "latency-sigma", 0, "lognormal: the standard deviation of the latency's log, the length of its tail; 0 means 1")
	fs.DurationVar(&o.model.ConnectCost, "connect-cost", 5*time.Millisecond, "model: time to connect and bind")
	fs.IntVar(&o.model.MaxConns, "max-server-conns", 0, "model: connections the server accepts at once; 0: no limit")
	fs.IntVar(&o.model.Concurrency, "server-concurrency", 0, "model: operations the server works on at once, over all connections (its threads, or cores); the others queue; 0: no limit")
	fs.StringVar(&fault, "fault", "", "model: fault `schedule`, as down:5s-8s,slow:10s-12s,drop:9s (slow:10s-12s:x3 for 3 times slower)")

	fs.BoolVar(&o.calibrate, "calibrate", false, "fit the server model to the -target server (a probe of its latency, and of how many operations it serves at once), then run the workload on the model and on the real pool and print predicted against measured throughput and lease wait")
	fs.DurationVar(&o.probe, "probe-duration", 2*time.Second, "with -calibrate: how long each of the two probes of the server runs")

	fs.Uint64Var(&seed, "seed", 1, "seeds arrivals, think times, latencies and the users searched for; the same seed gives the same schedule")
	fs.BoolVar(&o.json, "json", false, "print the report as JSON instead of a table")
	fs.StringVar(&o.chart, "chart", "", "with -sweep or -sweep-depth: write the sizing curve as an SVG chart to this `file`")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress line on stderr")

	usage = func() {
		fmt.Fprint(stderr, usageHead)
		fs.SetOutput(stderr)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	fs.Usage = func() {} // Parse would print it before main prints the error
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage()
			return nil, usage, err
		}
		return nil, usage, &usageError{"ldapsim: " + err.Error()}
	}
	if fs.NArg() > 0 {
		return nil, usage, &usageError{fmt.Sprintf("ldapsim: unexpected argument %q: every setting is a flag", fs.Arg(0))}
	}
	fs.Visit(func(f *flag.Flag) { o.set[f.Name] = true })
	o.workload.Kind = sim.WorkloadKind(workload)
	o.model.Latency.Dist = sim.Distribution(latency)
	o.seed, o.model.Seed = seed, seed
	if o.model.Faults, err = sim.ParseFaults(fault); err != nil {
		var fe *sim.FaultError
		if errors.As(err, &fe) {
			return nil, usage, bad("fault", fe.Fault, fe.Reason)
		}
		return nil, usage, bad("fault", fault, err.Error())
	}
	if sweep != "" {
		if o.sweep, err = parseCounts(sweep, "pool size"); err != nil {
			return nil, usage, bad("sweep", sweep, err.Error())
		}
	}
	if depths != "" {
		if o.depths, err = parseCounts(depths, "depth"); err != nil {
			return nil, usage, bad("sweep-depth", depths, err.Error())
		}
		if o.sweep == nil {
			o.sweep = []int{o.pool.Size}
		}
	}
	return o, usage, o.check()
}

// check validates every flag, naming the first bad one.
func (o *options) check() error {
	if err := o.checkTarget(); err != nil {
		return err
	}
	if err := o.checkWorkload(); err != nil {
		return err
	}
	if err := o.checkPool(); err != nil {
		return err
	}
	if err := o.checkCalibrate(); err != nil {
		return err
	}
	switch {
	case o.p99 < 0:
		return bad("target-p99", o.p99, "must not be negative")
	case o.set["target-p99"] && o.sweep == nil:
		return bad("target-p99", o.p99, "needs -sweep or -sweep-depth, the pool sizes or depths to choose from")
	case o.chart != "" && o.sweep == nil:
		return bad("chart", o.chart, "needs -sweep or -sweep-depth: the chart is of wait and throughput against pool size or depth")
	}
	return nil
}

// checkCalibrate checks -calibrate and the flags that go with it.
func (o *options) checkCalibrate() error {
	if !o.calibrate {
		if o.set["probe-duration"] {
			return bad("probe-duration", o.probe, "needs -calibrate")
		}
		return nil
	}
	if o.target == "model" {
		return bad("calibrate", true, "fits the model to a real server: use -target embedded, slapd or a URL")
	}
	for _, name := range []string{"sweep", "sweep-depth", "target-p99", "chart"} {
		if o.set[name] {
			return bad(name, o.flagValue(name), "not with -calibrate, which compares one pool size and depth")
		}
	}
	if o.probe <= 0 {
		return bad("probe-duration", o.probe, "must be positive")
	}
	return nil
}

func (o *options) checkTarget() error {
	switch o.target {
	case "embedded", "slapd", "model":
	default:
		if _, err := ldapconn.ParseServers(o.target); err != nil {
			return bad("target", o.target, "want embedded, slapd, model or an ldap:// or ldaps:// URL")
		}
	}
	if o.target == "model" {
		for _, name := range []string{"bind-dn", "bind-password", "search-base"} {
			if o.set[name] {
				return bad(name, o.flagValue(name), "only for an LDAP target, not the model")
			}
		}
	}
	if o.target != "model" {
		for _, name := range []string{"connect-cost", "max-server-conns", "server-concurrency", "fault"} {
			if o.set[name] {
				return bad(name, o.flagValue(name), "only for -target model")
			}
		}
	}
	if o.target != "model" && o.target != "embedded" {
		for _, name := range []string{"latency", "latency-mean", "latency-sigma"} {
			if o.set[name] {
				return bad(name, o.flagValue(name), "a directory's latency is its own: only for -target model or embedded")
			}
		}
	}
	if (o.target == "embedded" || o.target == "slapd") && o.set["search-base"] {
		return bad("search-base", o.searchBase, "the "+o.target+" server's users are under "+ldaptest.PeopleDN)
	}
	if o.set["latency-sigma"] && o.model.Latency.Dist != sim.LogNormal {
		return bad("latency-sigma", o.model.Latency.Sigma, "only for -latency lognormal")
	}
	if err := o.model.Latency.Validate(); err != nil {
		switch l := o.model.Latency; {
		case l.Mean < 0:
			return bad("latency-mean", l.Mean, "must not be negative")
		case !(l.Sigma >= 0) || math.IsInf(l.Sigma, 0):
			return bad("latency-sigma", l.Sigma, "want a non-negative number")
		}
		return bad("latency", o.model.Latency.Dist, "want constant, exponential or lognormal")
	}
	switch {
	case o.model.ConnectCost < 0:
		return bad("connect-cost", o.model.ConnectCost, "must not be negative")
	case o.model.MaxConns < 0:
		return bad("max-server-conns", o.model.MaxConns, "must not be negative; 0 means no limit")
	case o.model.Concurrency < 0:
		return bad("server-concurrency", o.model.Concurrency, "must not be negative; 0 means no limit")
	}
	return nil
}

// workloadFlags names the flags each workload uses, besides -duration.
var workloadFlags = map[sim.WorkloadKind][]string{
	sim.Closed:       {"clients", "think"},
	sim.Poisson:      {"clients", "rate"},
	sim.Burst:        {"clients", "burst-size", "burst-every"},
	sim.MultiProcess: {"processes", "threads", "think"},
}

func (o *options) checkWorkload() error {
	w := o.workload
	uses, ok := workloadFlags[w.Kind]
	if !ok {
		return bad("workload", w.Kind, "want closed, poisson, burst or multiprocess")
	}
	for _, name := range []string{"clients", "think", "rate", "burst-size", "burst-every", "processes", "threads"} {
		if o.set[name] && !slices.Contains(uses, name) {
			return bad(name, o.flagValue(name), fmt.Sprintf("not used by -workload %s (it uses -%s)", w.Kind, strings.Join(uses, ", -")))
		}
	}
	switch {
	case w.Clients < 1:
		return bad("clients", w.Clients, "want at least 1")
	case w.Think < 0:
		return bad("think", w.Think, "must not be negative")
	case !(w.Rate > 0) || w.Rate > 1e6:
		return bad("rate", w.Rate, "want arrivals a second, more than 0 and at most 1000000")
	case w.BurstSize < 1:
		return bad("burst-size", w.BurstSize, "want at least 1")
	case w.BurstEvery <= 0:
		return bad("burst-every", w.BurstEvery, "must be positive")
	case w.Processes < 1:
		return bad("processes", w.Processes, "want at least 1")
	case w.Threads < 1:
		return bad("threads", w.Threads, "want at least 1")
	case o.duration <= 0:
		return bad("duration", o.duration, "must be positive")
	}
	return nil
}

func (o *options) checkPool() error {
	p := o.pool
	switch {
	case p.Size < 1:
		return bad("pool-size", p.Size, "want at least 1")
	case p.Depth < 1:
		return bad("depth", p.Depth, "want at least 1 operation per connection")
	case p.MaxInFlight < 0:
		return bad("max-in-flight", p.MaxInFlight, "must not be negative; 0 means -pool-size x -depth")
	case p.MinIdle < 0:
		return bad("min-idle", p.MinIdle, "must not be negative")
	case p.MinIdle > p.Size:
		return bad("min-idle", p.MinIdle, fmt.Sprintf("must not exceed -pool-size %d", p.Size))
	case p.WaitTimeout < 0:
		return bad("wait-timeout", p.WaitTimeout, "must not be negative; 0 waits until the run ends")
	case p.MaxLifetime < 0:
		return bad("max-lifetime", p.MaxLifetime, "must not be negative; 0 keeps the engine's default")
	}
	for _, n := range o.sweep {
		if p.MinIdle > n {
			return bad("min-idle", p.MinIdle, fmt.Sprintf("must not exceed the smallest -sweep size %d", n))
		}
	}
	return nil
}

// flagValue returns a flag's value as given, for error messages; a password
// is never printed.
func (o *options) flagValue(name string) string {
	if name == "bind-password" {
		return "(hidden)"
	}
	if f := o.fs.Lookup(name); f != nil {
		return f.Value.String()
	}
	return ""
}

// parseCounts reads a comma-separated list of what (pool sizes, depths),
// each at least 1.
func parseCounts(s, what string) ([]int, error) {
	var counts []int
	seen := map[int]bool{}
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("%q is not a %s: want numbers separated by commas, as 1,2,4,8", f, what)
		}
		if n < 1 {
			return nil, fmt.Errorf("%s %d: want at least 1", what, n)
		}
		if seen[n] {
			return nil, fmt.Errorf("%s %d listed twice", what, n)
		}
		seen[n] = true
		counts = append(counts, n)
	}
	return counts, nil
}
