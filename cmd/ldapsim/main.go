// Command ldapsim sizes an LDAP connection pool before it is deployed: it
// drives the real pool with a workload (closed-loop clients, Poisson
// arrivals, bursts, or many processes each with its own pool) against the
// embedded LDAP server, an in-process server model with latency and faults,
// or a real directory, and reports throughput, lease-wait percentiles,
// fairness across clients, connections and errors. With -sweep (and
// -sweep-depth) it prints the sizing curve across pool sizes (and operations
// per connection), names the fewest connections (and the smallest depth)
// that meet -target-p99, and draws the curve with -chart.
//
// With -calibrate it fits the server model to a real server (the embedded
// one, a throwaway slapd, or a directory by URL), runs the same workload on
// both, and prints the model's prediction beside what the real pool did.
//
// With no flags it runs 16 clients on a pool of 4 against the embedded
// server for 15 seconds:
//
//	go run ./cmd/ldapsim
//
// Run it with -h for every flag. Ctrl-C stops a run and prints what was
// measured so far. docs/sizing.md shows how to size a pool with it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/fairpool/ldappool/sim"
)

// Exit statuses.
const (
	exitOK          = 0
	exitFailed      = 1   // the run could not be made
	exitUsage       = 2   // a bad command line
	exitInterrupted = 130 // stopped by Ctrl-C, after printing what was measured
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// A second Ctrl-C kills at once, should stopping cleanly take too long.
	context.AfterFunc(ctx, stop)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the command, with its exit status; main only adds the process.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, usage, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "%s\n\n", ue.msg)
		usage()
		return exitUsage
	}
	backend, closeBackend, err := newBackend(o)
	if err != nil {
		fmt.Fprintf(stderr, "ldapsim: %v\n", err)
		return exitFailed
	}
	defer closeBackend()

	cfg := sim.Config{Workload: o.workload, Pool: o.pool, Duration: o.duration, Seed: o.seed}
	var line *progressLine
	if !o.quiet && isTerminal(stderr) {
		line = newProgressLine(stderr)
		cfg.Progress = line.update
	}
	interrupted, err := measure(ctx, o, backend, cfg, stdout, line)
	if err != nil {
		fmt.Fprintf(stderr, "ldapsim: %v\n", err)
		return exitFailed
	}
	if interrupted {
		fmt.Fprintln(stderr, "ldapsim: interrupted: the report covers the time measured")
		return exitInterrupted
	}
	return exitOK
}

// measure runs the simulation, the sweep or the calibration, and writes its
// report.
func measure(ctx context.Context, o *options, b sim.Backend, cfg sim.Config, stdout io.Writer, line *progressLine) (interrupted bool, err error) {
	clearLine := func() {
		if line != nil {
			line.clear()
		}
	}
	if o.calibrate {
		c, err := sim.Calibrate(ctx, b, cfg, o.probe)
		clearLine()
		if err != nil {
			return false, err
		}
		if o.json {
			return ctx.Err() != nil, c.WriteJSON(stdout)
		}
		return ctx.Err() != nil, c.WriteTable(stdout)
	}
	if o.sweep == nil {
		rep, err := sim.Run(ctx, b, cfg)
		clearLine()
		if err != nil {
			return false, err
		}
		if o.json {
			return rep.Interrupted, rep.WriteJSON(stdout)
		}
		return rep.Interrupted, rep.WriteTable(stdout)
	}
	res, err := sim.Sweep(ctx, b, cfg, o.sweep, o.depths...)
	clearLine()
	if err != nil {
		return false, err
	}
	if o.set["target-p99"] {
		a := sim.Advise(res.Runs, o.p99)
		res.Advice = &a
	}
	interrupted = ctx.Err() != nil
	if o.json {
		err = res.WriteJSON(stdout)
	} else {
		err = res.WriteTable(stdout)
	}
	if err != nil || o.chart == "" {
		return interrupted, err
	}
	return interrupted, saveChart(o.chart, res)
}

func saveChart(path string, res *sim.SweepResult) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := writeChart(f, res); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// newBackend makes what the pools connect to, and the function that stops
// it.
func newBackend(o *options) (sim.Backend, func(), error) {
	switch o.target {
	case "model":
		m, err := sim.NewModel(o.model)
		return m, func() {}, err
	case "slapd":
		return newSlapd(o)
	case "embedded":
		ec := sim.EmbeddedConfig{BindDN: o.bindDN, Password: o.bindPassword, Seed: o.seed}
		if o.set["latency"] || o.set["latency-mean"] {
			ec.Latency = o.model.Latency
		}
		b, err := sim.NewEmbedded(ec)
		if err != nil {
			return nil, nil, err
		}
		return b, func() { b.Close() }, nil
	default:
		b, err := sim.NewLDAP(sim.LDAPConfig{
			URL: o.target, BindDN: o.bindDN, Password: o.bindPassword,
			SearchBase: o.searchBase, Seed: o.seed,
		})
		if err != nil {
			return nil, nil, err
		}
		return b, func() { b.Close() }, nil
	}
}

// isTerminal reports whether w is a terminal, where a progress line that
// rewrites itself makes sense.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
