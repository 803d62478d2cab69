package sim_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/fairpool/ldappool/sim"
)

// Run a short simulation of 8 clients sharing a pool of 2 connections to the
// in-process server model, whose operations take 1ms.
func ExampleRun() {
	model, err := sim.NewModel(sim.ModelConfig{
		Latency: sim.Latency{Dist: sim.Constant, Mean: time.Millisecond},
	})
	if err != nil {
		log.Fatal(err)
	}
	rep, err := sim.Run(context.Background(), model, sim.Config{
		Workload: sim.Workload{Kind: sim.Closed, Clients: 8},
		Pool:     sim.PoolConfig{Size: 2},
		Duration: 100 * time.Millisecond,
		Seed:     1,
	})
	if err != nil {
		log.Fatal(err)
	}
	// rep.WriteTable(os.Stdout) prints the whole report; its timings vary
	// from run to run, so this example prints only what does not.
	fmt.Println("clients:", rep.Clients)
	fmt.Println("errors:", rep.Errors)
	fmt.Println("connections at the server at most:", rep.Server.Peak)
	fmt.Println("some clients waited:", rep.Wait.Max > 0)
	// Output:
	// clients: 8
	// errors: none
	// connections at the server at most: 2
	// some clients waited: true
}

// Sweep pool sizes and depths on a server model that works on 8 operations
// at once, and ask the advisor for the fewest connections, and the smallest
// depth for them, whose lease-wait p99 is within 5ms.
func ExampleSweep() {
	model, err := sim.NewModel(sim.ModelConfig{
		Latency:     sim.Latency{Dist: sim.LogNormal, Mean: 500 * time.Microsecond},
		Concurrency: 8,
	})
	if err != nil {
		log.Fatal(err)
	}
	res, err := sim.Sweep(context.Background(), model, sim.Config{
		Workload: sim.Workload{Kind: sim.Closed, Clients: 64},
		Duration: time.Second,
	}, []int{1, 2, 4, 8}, 1, 4, 16)
	if err != nil {
		log.Fatal(err)
	}
	a := sim.Advise(res.Runs, 5*time.Millisecond)
	res.Advice = &a
	res.WriteTable(os.Stdout)
}

// Fit the server model to the embedded LDAP server and check its
// prediction of a workload against the real pool's.
func ExampleCalibrate() {
	server, err := sim.NewEmbedded(sim.EmbeddedConfig{})
	if err != nil {
		log.Fatal(err)
	}
	defer server.Close()
	c, err := sim.Calibrate(context.Background(), server, sim.Config{
		Workload: sim.Workload{Kind: sim.Closed, Clients: 16},
		Pool:     sim.PoolConfig{Size: 4},
		Duration: 5 * time.Second,
	}, 2*time.Second)
	if err != nil {
		log.Fatal(err)
	}
	c.WriteTable(os.Stdout) // the probe, the fitted model's flags, predicted against measured
	fmt.Println("within the goal:", c.Met())
}
