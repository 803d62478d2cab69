# The README's two commands are `make sim` and `make test`.
GO ?= go

.PHONY: test sim soak bench bench-e2e lint

## test: vet, then every test with the race detector (slapd tests need slapd; CI installs it),
## then the allocation tests without it.
test:
	@echo "make test: go vet, then every test with the race detector; the first run downloads the modules and compiles (about a minute, quiet)"
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 10m ./...
	@echo "make test: the allocation tests, which the race detector skips"
	$(GO) test -count=1 -run 'Allocates' ./lease/ ./ldapconn/

## sim: a short default load simulation against the embedded LDAP server; SIMFLAGS go to ldapsim,
## as in make sim SIMFLAGS="-calibrate -target slapd" (docs/sizing.md).
SIMFLAGS ?=
sim:
	@echo "make sim: building ldapsim; the first run downloads the modules and compiles (about a minute, quiet)"
	$(GO) build -o bin/ldapsim ./cmd/ldapsim
	@echo "make sim: ldapsim $(if $(SIMFLAGS),$(SIMFLAGS),(no flags: 15 seconds against the embedded LDAP server; a progress line follows))"
	./bin/ldapsim $(SIMFLAGS)

## soak: random leases, releases, discards and cancellations with injected faults, for SOAK
## against the embedded server (docs/soak.md), after SOAK_SEEDS seeds of the engine's soak.
## The test flags come after the package: go test takes an unknown flag's value for a package.
## Raise SOAK_TIMEOUT (10m) for a SOAK past about 9 minutes.
SOAK ?= 1m
SOAK_SEEDS ?= 500
SOAK_TIMEOUT ?= 10m
soak:
	@echo "make soak: $(SOAK_SEEDS) seeds of the engine's soak, then $(SOAK) of ldapconn's against the embedded server"
	$(GO) test -race -count=1 -run 'Soak' -timeout $(SOAK_TIMEOUT) ./engine/ -soak-seeds $(SOAK_SEEDS)
	$(GO) test -race -count=1 -run 'Soak' -timeout $(SOAK_TIMEOUT) -v ./ldapconn/ -soak $(SOAK)

## bench: the benchmarks whose figures are in docs/benchmarks.md.
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 200ms ./engine/
	$(GO) test -run '^$$' -bench 'Search|OverloadFairness' -benchtime 200ms ./ldapconn/
	$(GO) test -run '^$$' -bench Failover -benchtime 1x ./ldapconn/
	$(GO) test -run '^$$' -bench SlowReplica -benchtime 1000x ./ldapconn/

## bench-e2e: issue 9's benchmarks (docs/benchmarks.md, "Multiplexing (issue 9)"), BENCH_COUNT
## interleaved runs of each: the round trip of the delaying proxy, the multiplexing comparison
## (BenchmarkMux, BENCH_TIME a case), fairness with multiplexing on, and the lease/share
## micro-benchmark at 64 goroutines; then benchstat of each and the issue's targets as ratios.
## The raw output stays in BENCH_DIR (bin/ is ignored by git). About 5 minutes at the defaults
## on 2 cores.
BENCH_COUNT ?= 5
BENCH_TIME ?= 1s
BENCH_DIR ?= bin/bench-e2e
BENCHSTAT ?= $(GO) run golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da
bench-e2e:
	@mkdir -p $(BENCH_DIR)
	@rm -f $(BENCH_DIR)/roundtrip.txt $(BENCH_DIR)/mux.txt $(BENCH_DIR)/fairness.txt $(BENCH_DIR)/share.txt
	@echo "make bench-e2e: $(BENCH_COUNT) interleaved runs, raw output in $(BENCH_DIR)"
	@for i in $$(seq $(BENCH_COUNT)); do \
	  echo "make bench-e2e: run $$i of $(BENCH_COUNT), load average $$(cut -d" " -f1-3 /proc/loadavg 2>/dev/null)"; \
	  $(call bench_e2e_run,roundtrip,-bench '^BenchmarkRoundTrip$$' -benchtime 500x ./ldapconn/); \
	  $(call bench_e2e_run,mux,-bench '^BenchmarkMux$$' -benchtime $(BENCH_TIME) -timeout 20m ./ldapconn/); \
	  $(call bench_e2e_run,fairness,-bench '^BenchmarkMuxFairness$$' -benchtime 3000x ./ldapconn/); \
	  $(call bench_e2e_run,share,-bench '^BenchmarkShareRelease$$/size/^par=64$$/' -benchmem -benchtime 300ms ./engine/); \
	done
	$(BENCHSTAT) $(BENCH_DIR)/roundtrip.txt
	$(BENCHSTAT) -col /impl -filter '.unit:(ops/s OR p99-µs OR cpu-µs/op OR shares-%)' $(BENCH_DIR)/mux.txt
	$(BENCHSTAT) -col /impl -filter '.unit:(jain OR client-ops-min OR client-ops-max OR p99-µs OR server-conns-peak)' $(BENCH_DIR)/fairness.txt
	$(BENCHSTAT) -col /impl $(BENCH_DIR)/share.txt
	@awk "$$BENCH_E2E_TARGETS" $(BENCH_DIR)/mux.txt $(BENCH_DIR)/fairness.txt $(BENCH_DIR)/share.txt
	@echo "load average at the end: $$(cut -d" " -f1-3 /proc/loadavg 2>/dev/null)"

# bench_e2e_run,FILE,ARGS appends one go test -run '^$$' ARGS to BENCH_DIR/FILE.txt, and stops
# the loop with the file's tail when it fails.
bench_e2e_run = $(GO) test -run '^$$' $(2) >> $(BENCH_DIR)/$(1).txt || { tail -n 30 $(BENCH_DIR)/$(1).txt; exit 1; }

# BENCH_E2E_TARGETS prints issue 9's targets from the raw benchmark lines: for each, the ratio of
# the medians over the runs and the range of the ratios run by run (the runs are interleaved, so
# the i-th result of every case comes from the same run). A goal of 0 prints the ratio alone.
define BENCH_E2E_TARGETS
/^Benchmark/ {
  name = $$1; sub(/-[0-9]+$$/, "", name)
  for (i = 3; i < NF; i++) {
    u = $$(i + 1)
    if (u == "ops/s" || u == "ns/op" || u == "cpu-µs/op" || u == "jain" || u == "server-conns-peak") {
      k = name SUBSEP u; n[k]++; v[k, n[k]] = $$i + 0
    }
  }
}
function med(k,   m, i, j, a, t) {
  m = n[k]
  for (i = 1; i <= m; i++) a[i] = v[k, i]
  for (i = 2; i <= m; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
  return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
}
function ratio(label, num, den, u, goal, higher,   kn, kd, r, i, t, lo, hi, ok) {
  kn = num SUBSEP u; kd = den SUBSEP u
  if (!n[kn] || !n[kd]) { printf "%-58s no figures\n", label; return }
  r = med(kn) / med(kd); lo = 1e18; hi = 0
  for (i = 1; i <= n[kn] && i <= n[kd]; i++) { t = v[kn, i] / v[kd, i]; if (t < lo) lo = t; if (t > hi) hi = t }
  if (!goal) { printf "%-58s %5.2fx (runs %.2f-%.2f)  no goal\n", label, r, lo, hi; return }
  ok = higher ? r >= goal : r <= goal
  printf "%-58s %5.2fx (runs %.2f-%.2f)  goal %s %.1fx: %s\n", label, r, lo, hi, higher ? ">=" : "<=", goal, ok ? "met" : "NOT MET"
}
function extreme(label, k, u, goal, higher,   i, x, ok) {
  k = k SUBSEP u
  if (!n[k]) { printf "%-58s no figures\n", label; return }
  x = v[k, 1]
  for (i = 2; i <= n[k]; i++) if (higher ? v[k, i] < x : v[k, i] > x) x = v[k, i]
  ok = higher ? x >= goal : x <= goal
  printf "%-58s %5.4g (worst run)  goal %s %g: %s\n", label, x, higher ? ">=" : "<=", goal, ok ? "met" : "NOT MET"
}
END {
  print ""; print "issue 9 targets (medians of the runs; ops/s ratios higher is better, ns/op lower):"
  m = "BenchmarkMux/net="
  ratio("loopback S=C=10: mux / puddle, ops/s", m "lo/S=10/C=10/impl=mux", m "lo/S=10/C=10/impl=puddle", "ops/s", 1, 1)
  ratio("loopback S=4 C=16: mux / dedicated, ops/s", m "lo/S=4/C=16/impl=mux", m "lo/S=4/C=16/impl=dedicated", "ops/s", 1, 1)
  ratio("round trip S=4 C=16: mux / seq, ops/s", m "rt/S=4/C=16/impl=mux", m "rt/S=4/C=16/impl=seq", "ops/s", 3, 1)
  ratio("round trip S=4 C=64: mux / dedicated, ops/s", m "rt/S=4/C=64/impl=mux", m "rt/S=4/C=64/impl=dedicated", "ops/s", 1, 1)
  ratio("loopback S=C=10: mux / puddle, client CPU a search", m "lo/S=10/C=10/impl=mux", m "lo/S=10/C=10/impl=puddle", "cpu-µs/op", 0, 0)
  f = "BenchmarkMuxFairness/S=4/C=64/impl=mux"
  extreme("fairness S=4 C=64 mux: Jain index", f, "jain", 0.99, 1)
  extreme("fairness S=4 C=64 mux: connections at the server", f, "server-conns-peak", 4, 0)
  s = "BenchmarkShareRelease/size="
  ratio("share+release size=4 par=64: share / puddle, ns/op", s "4/par=64/impl=share", s "4/par=64/impl=puddle", "ns/op", 1.5, 0)
  ratio("share+release size=16 par=64: share / puddle, ns/op", s "16/par=64/impl=share", s "16/par=64/impl=puddle", "ns/op", 1.5, 0)
  ratio("lease+release size=4 par=64: actor / puddle, ns/op", s "4/par=64/impl=actor", s "4/par=64/impl=puddle", "ns/op", 1.5, 0)
  ratio("lease+release size=16 par=64: actor / puddle, ns/op", s "16/par=64/impl=actor", s "16/par=64/impl=puddle", "ns/op", 1.5, 0)
}
endef
export BENCH_E2E_TARGETS

## lint: gofmt, vet and staticcheck.
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
