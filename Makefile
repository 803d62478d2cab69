# The README's two commands are `make sim` and `make test`.
GO ?= go

.PHONY: test sim soak bench lint

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
	@echo "make sim: ldapsim $(SIMFLAGS) (with no flags, 15 seconds against the embedded LDAP server); a progress line follows"
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

## lint: gofmt, vet and staticcheck.
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
