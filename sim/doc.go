// Package sim sizes a pool before it is deployed: it drives the real pool
// (package engine, or package ldapconn over LDAP) with a workload and reports
// what the pool did: throughput, lease-wait and operation-latency
// percentiles, Jain's fairness index across clients, connections opened and
// at their peak, as the pools and as the server saw them, and errors by kind.
//
// A run needs a Backend, the server its pools connect to and the factory of
// those pools: the in-process server Model (latency distribution, connect
// cost, connection limit, how many operations it works on at once, fault
// schedule), the embedded LDAP server of package ldaptest, or a directory by
// URL. A pool whose connections carry several operations at once
// (PoolConfig.Depth, engine.WithOpsPerConn) gives each request a share of a
// connection instead of a whole one; the model overlaps them. Workloads are closed-loop clients with
// think time, open Poisson arrivals, bursts, and a multi-process deployment
// (P processes each with its own pool of T threads, as Keystone runs under
// mod_wsgi) whose server-side total is what the report's server line shows.
// Sweep runs one workload across pool sizes and Advise names the smallest
// size that meets a target p99 lease wait. The command cmd/ldapsim puts all
// of it behind flags.
//
// The same seed gives the same arrival schedule and the same sequences of
// think times and latencies. The Model's delays are timers, so inside a
// testing/synctest bubble a run of simulated minutes takes no real time and
// its figures are exact. On the real clock they last what was drawn even
// where the host's timers are coarse (about 1ms on many VMs): the model
// watches the last stretch of each delay instead of leaving it to a timer.
// A report says the granularity it measured.
//
// The shortest use:
//
//	m, _ := sim.NewModel(sim.ModelConfig{Latency: sim.Latency{Dist: sim.Exponential, Mean: time.Millisecond}})
//	rep, err := sim.Run(ctx, m, sim.Config{
//		Workload: sim.Workload{Kind: sim.Closed, Clients: 16},
//		Pool:     sim.PoolConfig{Size: 4},
//		Duration: 10 * time.Second,
//	})
//	if err != nil { ... }
//	rep.WriteTable(os.Stdout)
//
// Run and Sweep are safe to call from any goroutine; each run owns its pools
// and closes them, with every goroutine it started, before it returns.
package sim
