package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// ldapsim runs the command with args and returns its exit status and output.
func ldapsim(t *testing.T, ctx context.Context, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errs bytes.Buffer
	code = run(ctx, args, &out, &errs)
	return code, out.String(), errs.String()
}

func TestBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-pool-size", "0"}, "ldapsim: -pool-size 0: want at least 1"},
		{[]string{"-target", "http://x"}, "ldapsim: -target http://x: want embedded, slapd, model or an ldap:// or ldaps:// URL"},
		{[]string{"-workload", "zipf"}, "ldapsim: -workload zipf: want closed, poisson, burst or multiprocess"},
		{[]string{"-rate", "5"}, "ldapsim: -rate 5: not used by -workload closed"},
		{[]string{"-workload", "poisson", "-rate", "0"}, "ldapsim: -rate 0: want arrivals a second"},
		{[]string{"-workload", "multiprocess", "-threads", "0"}, "ldapsim: -threads 0: want at least 1"},
		{[]string{"-duration", "-1s"}, "ldapsim: -duration -1s: must be positive"},
		{[]string{"-duration", "soon"}, `invalid value "soon" for flag -duration`},
		{[]string{"-min-idle", "5"}, "ldapsim: -min-idle 5: must not exceed -pool-size 4"},
		{[]string{"-wait-timeout", "-1s"}, "ldapsim: -wait-timeout -1s: must not be negative"},
		{[]string{"-sweep", "1,0"}, "ldapsim: -sweep 1,0: pool size 0: want at least 1"},
		{[]string{"-sweep", "2,2"}, "ldapsim: -sweep 2,2: pool size 2 listed twice"},
		{[]string{"-target-p99", "5ms"}, "ldapsim: -target-p99 5ms: needs -sweep"},
		{[]string{"-chart", "x.svg"}, "ldapsim: -chart x.svg: needs -sweep"},
		{[]string{"-target", "model", "-latency", "pareto"}, "ldapsim: -latency pareto: want constant, exponential or lognormal"},
		{[]string{"-target", "model", "-fault", "down:8s-5s"}, "ldapsim: -fault down:8s-5s: want 0 <= start < end"},
		{[]string{"-target", "model", "-bind-password", "hunter2"}, "ldapsim: -bind-password (hidden): only for an LDAP target"},
		{[]string{"-max-server-conns", "3"}, "ldapsim: -max-server-conns 3: only for -target model"},
		{[]string{"-target", "ldap://127.0.0.1:1", "-latency-mean", "1ms"}, "ldapsim: -latency-mean 1ms: a directory's latency is its own"},
		{[]string{"now"}, `ldapsim: unexpected argument "now"`},
		{[]string{"-sweep-depth", "1,0"}, "ldapsim: -sweep-depth 1,0: depth 0: want at least 1"},
		{[]string{"-sweep-depth", "deep"}, `ldapsim: -sweep-depth deep: "deep" is not a depth`},
		{[]string{"-target", "model", "-calibrate"}, "ldapsim: -calibrate true: fits the model to a real server"},
		{[]string{"-calibrate", "-sweep", "1,2"}, "ldapsim: -sweep 1,2: not with -calibrate"},
		{[]string{"-calibrate", "-probe-duration", "0s"}, "ldapsim: -probe-duration 0s: must be positive"},
		{[]string{"-probe-duration", "1s"}, "ldapsim: -probe-duration 1s: needs -calibrate"},
		{[]string{"-target", "slapd", "-search-base", "ou=x"}, "ldapsim: -search-base ou=x: the slapd server's users are under"},
		{[]string{"-depth", "0"}, "ldapsim: -depth 0: want at least 1 operation per connection"},
		{[]string{"-max-in-flight", "-1"}, "ldapsim: -max-in-flight -1: must not be negative"},
		{[]string{"-server-concurrency", "2"}, "ldapsim: -server-concurrency 2: only for -target model"},
		{[]string{"-target", "model", "-server-concurrency", "-1"}, "ldapsim: -server-concurrency -1: must not be negative"},
		{[]string{"-target", "model", "-latency-sigma", "0.5"}, "ldapsim: -latency-sigma 0.5: only for -latency lognormal"},
		{[]string{"-target", "model", "-latency", "lognormal", "-latency-sigma", "-1"}, "ldapsim: -latency-sigma -1: want a non-negative number"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, stdout, stderr := ldapsim(t, t.Context(), tc.args...)
			if code != exitUsage || stdout != "" {
				t.Fatalf("exit %d with stdout %q; want 2 and nothing on stdout", code, stdout)
			}
			first, _, _ := strings.Cut(stderr, "\n")
			if !strings.Contains(first, tc.want) || !strings.Contains(stderr, "Usage:") {
				t.Fatalf("stderr begins %q; want %q, then the usage", first, tc.want)
			}
			if strings.Contains(stderr, "hunter2") {
				t.Fatal("the password was printed")
			}
		})
	}
}

func TestHelp(t *testing.T) {
	code, _, stderr := ldapsim(t, t.Context(), "-h")
	if code != exitOK || !strings.Contains(stderr, "-pool-size") {
		t.Fatalf("-h: exit %d, stderr %q; want 0 and the flags", code, stderr)
	}
}

func TestModelRunTable(t *testing.T) {
	code, stdout, stderr := ldapsim(t, t.Context(), "-target", "model", "-duration", "300ms", "-clients", "4", "-pool-size", "2")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"server model", "throughput", "lease wait", "Jain's index", "errors       none"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("report lacks %q:\n%s", want, stdout)
		}
	}
}

func TestModelRunAtDepth(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		code, stdout, stderr := ldapsim(t, t.Context(), "-target", "model", "-duration", "2s", "-clients", "8",
			"-pool-size", "2", "-depth", "4", "-server-concurrency", "4", "-latency", "lognormal", "-latency-sigma", "0.5")
		if code != exitOK {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		for _, want := range []string{"4 operations at once", "pool size 2, 4 operations per connection",
			"peak in flight 8 of 8", "errors       none", "timer        granularity 0s"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("report lacks %q:\n%s", want, stdout)
			}
		}
	})
}

func TestEmbeddedRunJSON(t *testing.T) {
	code, stdout, stderr := ldapsim(t, t.Context(), "-duration", "300ms", "-json", "-workload", "multiprocess", "-processes", "2", "-threads", "2", "-pool-size", "1")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var rep struct {
		Backend string
		Ops     int64
		Server  struct{ Peak int }
		Errors  struct{ Connect, Op int64 }
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("-json output does not parse: %v\n%s", err, stdout)
	}
	if !strings.Contains(rep.Backend, "embedded") || rep.Ops == 0 || rep.Server.Peak != 2 {
		t.Fatalf("report %+v; want searches on the embedded server through 2 connections in all", rep)
	}
}

func TestSweepWithAdvisorAndChart(t *testing.T) {
	chart := filepath.Join(t.TempDir(), "sizing.svg")
	code, stdout, stderr := ldapsim(t, t.Context(), "-target", "model", "-latency", "constant", "-latency-mean", "5ms",
		"-duration", "300ms", "-clients", "8", "-sweep", "1,8", "-target-p99", "1s", "-chart", chart)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "advisor: pool size 1 (depth 16) is the smallest") { // ldapsim models ldapconn's default depth
		t.Errorf("sweep output lacks the advice:\n%s", stdout)
	}
	svg, err := os.ReadFile(chart)
	if err != nil || !bytes.HasPrefix(svg, []byte("<svg")) {
		t.Fatalf("chart: %v, begins %.20q; want an SVG file", err, svg)
	}
}

func TestSweepOfDepthsAdvisesADepth(t *testing.T) {
	// On the model in a bubble, so that the figures are exact.
	synctest.Test(t, func(t *testing.T) {
		code, stdout, stderr := ldapsim(t, t.Context(), "-target", "model", "-latency", "constant", "-latency-mean", "2ms",
			"-server-concurrency", "8", "-duration", "2s", "-clients", "16", "-sweep", "1,2", "-sweep-depth", "1,8", "-target-p99", "10ms")
		if code != exitOK {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		// At depth 8 a connection carries what the server can take: 8 of
		// the 16 clients at once, each waiting for one round of 2ms. At
		// depth 1 a pool of 1 or 2 makes them wait 30ms or 14ms.
		if !strings.Contains(stdout, "advisor: pool size 1 at depth 8") {
			t.Errorf("sweep output lacks the advice of size 1 at depth 8:\n%s", stdout)
		}
		if !strings.Contains(stdout, "DEPTH") {
			t.Errorf("sweep table lacks the depth column:\n%s", stdout)
		}
	})
}

func TestCalibrateAgainstTheEmbeddedServer(t *testing.T) {
	code, stdout, stderr := ldapsim(t, t.Context(), "-calibrate", "-duration", "400ms", "-probe-duration", "200ms",
		"-clients", "8", "-pool-size", "2")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"probe", "-target model -latency", "embedded LDAP server", "PREDICTED", "MEASURED",
		"throughput (ops/s)", "lease wait p99", "calibration: "} {
		if !strings.Contains(stdout, want) {
			t.Errorf("calibration lacks %q:\n%s", want, stdout)
		}
	}
}

func TestCalibrateAgainstSlapd(t *testing.T) {
	code, stdout, stderr := ldapsim(t, t.Context(), "-calibrate", "-target", "slapd", "-duration", "400ms",
		"-probe-duration", "200ms", "-clients", "8", "-pool-size", "2", "-json")
	if code == exitFailed && strings.Contains(stderr, "slapd not installed") {
		if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci { // as package slapd does: CI installs it
			t.Fatal(strings.TrimSpace(stderr))
		}
		t.Skip(strings.TrimSpace(stderr))
	}
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var c struct {
		Model    struct{ Flags string }
		Measured struct {
			Backend string
			Ops     int64
		}
		Predicted struct{ Ops int64 }
	}
	if err := json.Unmarshal([]byte(stdout), &c); err != nil {
		t.Fatalf("-json output does not parse: %v\n%s", err, stdout)
	}
	if !strings.HasPrefix(c.Measured.Backend, "slapd at ldap://127.0.0.1:") || c.Measured.Ops == 0 || c.Predicted.Ops == 0 ||
		!strings.HasPrefix(c.Model.Flags, "-target model") {
		t.Fatalf("calibration %+v; want searches on slapd and on the model, and the model's flags", c)
	}
}

func TestInterruptPrintsWhatWasMeasured(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	code, stdout, stderr := ldapsim(t, ctx, "-target", "model", "-duration", "1h", "-clients", "2", "-pool-size", "1")
	if code != exitInterrupted || !strings.Contains(stdout, "interrupted") || !strings.Contains(stderr, "interrupted") {
		t.Fatalf("exit %d\nstdout %s\nstderr %s\nwant 130 and a report marked interrupted", code, stdout, stderr)
	}
}
