package sim_test

import (
	"strings"
	"testing"
	"time"

	"github.com/fairpool/ldappool/ldaptest"
	"github.com/fairpool/ldappool/sim"
)

func TestRunAgainstTheEmbeddedServer(t *testing.T) {
	b, err := sim.NewEmbedded(sim.EmbeddedConfig{Latency: sim.Latency{Dist: sim.Constant, Mean: 2 * time.Millisecond}, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	rep, err := sim.Run(t.Context(), b, sim.Config{
		Workload: sim.Workload{Kind: sim.Closed, Clients: 8},
		Pool:     sim.PoolConfig{Size: 2},
		Duration: 500 * time.Millisecond,
		Seed:     1,
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Ops == 0 || rep.Errors.Total() != 0 {
		t.Fatalf("%d searches, errors %v %v; want searches and no errors", rep.Ops, rep.Errors, rep.Errors.First)
	}
	if rep.OpLatency.P50 < 2*time.Millisecond {
		t.Errorf("search p50 %v; want at least the server's 2ms latency", rep.OpLatency.P50)
	}
	if !rep.Server.Known || rep.Server.Accepted != 2 || rep.Server.Peak != 2 || rep.Opened != 2 {
		t.Errorf("server %+v, pools opened %d; want 2 connections accepted and at the peak", rep.Server, rep.Opened)
	}
	if rep.Wait.Max == 0 {
		t.Errorf("lease wait %v; want 8 clients on 2 connections to wait", rep.Wait)
	}
}

func TestRunMultiProcessAgainstTheEmbeddedServer(t *testing.T) {
	b, err := sim.NewEmbedded(sim.EmbeddedConfig{Latency: sim.Latency{Mean: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	rep, err := sim.Run(t.Context(), b, sim.Config{
		Workload: sim.Workload{Kind: sim.MultiProcess, Processes: 3, Threads: 2},
		Pool:     sim.PoolConfig{Size: 2},
		Duration: 300 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Server.Peak != 6 || rep.Errors.Total() != 0 {
		t.Fatalf("server peak %d, errors %v; want 3 processes x 2 = 6 connections and no errors", rep.Server.Peak, rep.Errors)
	}
}

func TestLDAPBackendRejectsABadURL(t *testing.T) {
	if _, err := sim.NewLDAP(sim.LDAPConfig{URL: "http://example.org"}); err == nil {
		t.Fatal("NewLDAP with an http URL = nil error")
	}
}

func TestRunWithAWrongPasswordCountsConnectErrors(t *testing.T) {
	b, err := sim.NewEmbedded(sim.EmbeddedConfig{BindDN: ldaptest.AdminDN, Password: "wrong"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	rep, err := sim.Run(t.Context(), b, sim.Config{
		Workload: sim.Workload{Kind: sim.Closed, Clients: 2},
		Pool:     sim.PoolConfig{Size: 2},
		Duration: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Ops != 0 || rep.Errors.Connect == 0 || !strings.Contains(rep.Errors.First["connect"], "invalid credentials") {
		t.Fatalf("ops %d, errors %v %v; want only connect errors saying invalid credentials", rep.Ops, rep.Errors, rep.Errors.First)
	}
}

func TestRunAgainstTheEmbeddedServerAtDepth(t *testing.T) {
	b, err := sim.NewEmbedded(sim.EmbeddedConfig{Latency: sim.Latency{Dist: sim.Constant, Mean: 2 * time.Millisecond}, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	rep, err := sim.Run(t.Context(), b, sim.Config{
		Workload: sim.Workload{Kind: sim.Closed, Clients: 8},
		Pool:     sim.PoolConfig{Size: 2, Depth: 4},
		Duration: 300 * time.Millisecond,
		Seed:     1,
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Ops == 0 || rep.Errors.Total() != 0 || rep.Depth != 4 {
		t.Fatalf("%d searches at depth %d, errors %v %v; want searches at depth 4 and no errors",
			rep.Ops, rep.Depth, rep.Errors, rep.Errors.First)
	}
	if rep.Server.Peak > 2 || rep.Opened > 2 {
		t.Errorf("server peak %d, pools opened %d; want at most the pool's 2 connections", rep.Server.Peak, rep.Opened)
	}
	// ldapconn puts several operations on a connection through Do.
	if rep.Shares == 0 || rep.PeakLeased <= 2 {
		t.Errorf("%d shares handed out, at most %d searches in flight; want shares, and more in flight than the 2 connections",
			rep.Shares, rep.PeakLeased)
	}
}
