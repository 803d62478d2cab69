package sim_test

import (
	"context"
	"fmt"
	"log"
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
