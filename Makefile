# ddbtrack's development tasks. Run `make` to list them.
#
# The tests need a local DynamoDB server. `make deps` installs dynalite
# (pinned in package-lock.json) into node_modules, and the tests start it
# themselves. If Python has moto (`pip install 'moto[server]'`), `make test`
# runs the suite against it as well, because two independent emulators catch
# tests that lean on one emulator's quirks. To test against any other
# server, AWS included, set AWS_ENDPOINT_URL_DYNAMODB=http://host:port.
#
# Recipes stay a line or two. Anything with a branch or a loop is a program
# in internal/dev, run with `go run`, where it can be read and tested.

# bash, so that `set -o pipefail` makes a pipeline fail when a step does.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

GO ?= go
NPM ?= npm

# MODULES are the directories of the modules go.work uses, and PKGS their
# package patterns: `./...` stops at a nested module's go.mod, so each
# module adds its own, and one go command in workspace mode takes them all.
# A module added to go.work is built, tested and linted with no change here.
MODULES := $(shell $(GO) list -m -f '{{.Dir}}')
PKGS := $(patsubst $(CURDIR)%,.%/...,$(MODULES))

# The suite shares one server per test binary and gives each test its own
# table, so -race on a 2-core machine finishes in minutes; the timeout only
# catches a hang. TEST_PKGS narrows test and cover: make test TEST_PKGS=./internal/...
TEST_TIMEOUT ?= 10m
TEST_FLAGS ?= -race -count=1 -timeout $(TEST_TIMEOUT)
TEST_PKGS ?= $(PKGS)

# make bench: see internal/dev/bench for what a round runs. The machine is
# shared, so the summary quotes medians over BENCH_ROUNDS rounds.
# BENCH_QUERIES=1 adds the query benchmarks, which load 100,000 tasks, and
# the operations benchmarks (the dashboard's overview, stats, a filtered
# listing, count queries a minute) on one job of BENCH_OPS_TASKS tasks;
# together they take half an hour.
# BENCH_POOL=1 adds the benchmarks of Process at scale (fleets, idle cost,
# due work, big jobs) at the issues' sizes, about an hour; BENCH_POOL_ARGS
# passes them smaller sizes, e.g. '-bench.fleet-tasks=2000 -bench.pickups=5'
# (see poolbench_test.go).
BENCH_ROUNDS ?= 6
BENCH_TASKS ?= 240
BENCH_TIME ?= 2s
BENCH_QUERIES ?= 0
BENCH_OPS_TASKS ?= 100000
BENCH_POOL ?= 0
BENCH_POOL_COUNT ?= 1
BENCH_POOL_ARGS ?=
BENCH_DIR ?= bench

# Pinned tools, which `go run` fetches through the module proxy once.
BENCHSTAT ?= $(GO) run golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da
STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2

# withddb starts a local dynalite, runs a command against it, and stops it.
WITHDDB := $(GO) run ./internal/dev/withddb
# make dashboard serves on DASHBOARD_ADDR, with dynalite on
# DASHBOARD_DDB_PORT so that other tools can reach the same data.
DASHBOARD_ADDR ?= 127.0.0.1:8080
DASHBOARD_DDB_PORT ?= 8765

# npm ci writes node_modules/.package-lock.json, and make compares its time
# with package-lock.json's to decide whether to reinstall. npm leaves the
# stamp's time alone when nothing changed, so the rule touches it, or every
# make would run npm ci again.
NODE_STAMP := node_modules/.package-lock.json

comma := ,
empty :=
space := $(empty) $(empty)

.PHONY: help deps browser-deps vet lint test chaos release-check demo dashboard bench cover

help: ## Show this help.
	@echo "Usage: make <target>"; echo
	@awk 'BEGIN { FS = ":.*## " } /^[a-zA-Z_-]+:.*## / { printf "  %-14s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

deps: $(NODE_STAMP) ## Install dynalite (npm ci) and download the Go modules.
	$(GO) mod download

$(NODE_STAMP): package.json package-lock.json
	$(NPM) ci --no-audit --no-fund
	touch $@

browser-deps: ## Install Chromium and tmux for the browser and terminal tests, unless they are on PATH.
	@internal/dev/browser-deps.sh

vet: ## Run go vet on every module.
	$(GO) vet $(PKGS)

lint: vet ## Check formatting, and run go vet and staticcheck on every module.
	@files=$$(gofmt -l .); [ -z "$$files" ] || { echo "Not gofmt-ed (run gofmt -w):"; echo "$$files"; exit 1; }
	$(STATICCHECK) $(PKGS)

test: deps vet browser-deps ## Run every module's tests with -race on dynalite, then moto if installed; then release-check.
	$(GO) run ./internal/dev/eachserver -- $(GO) test $(TEST_FLAGS) $(TEST_PKGS)
	$(GO) run ./internal/dev/release

# make chaos runs the long form of TestChaos (chaos_test.go): 2,000 tasks,
# worker processes killed, paused and cut off, for a few minutes. The short
# form runs in make test. CHAOS_SERVER=moto runs a smaller job on moto.
CHAOS_SERVER ?= dynalite

chaos: deps ## Run the long chaos test against CHAOS_SERVER (dynalite or moto).
	DDBTRACK_SERVER=$(CHAOS_SERVER) $(GO) test -race -count=1 -timeout 30m -run '^TestChaos$$' -v . -args -chaos.long

release-check: deps ## Prove that go install ...cmd/ddbtrack@VERSION works, from a local proxy of the working tree.
	$(GO) run ./internal/dev/release

demo: deps ## Run the quick-start example against a local dynalite.
	$(WITHDDB) -- $(GO) run ./examples/quickstart

dashboard: deps ## Load the demo into a local dynalite and serve the dashboard on it (ddbtrack serve).
	DDBTRACK_TABLE=$${DDBTRACK_TABLE:-ddbtrack-quickstart} DDBTRACK_JOB=$${DDBTRACK_JOB:-test-job} $(WITHDDB) -port $(DASHBOARD_DDB_PORT) -- \
		bash -c '$(GO) run ./examples/quickstart >/dev/null && exec $(GO) run ./cmd/ddbtrack serve --addr $(DASHBOARD_ADDR)'

bench: deps ## Run the benchmarks in BENCH_ROUNDS interleaved rounds; write bench/raw.txt and bench/summary.md.
	$(GO) run ./internal/dev/bench -dir $(BENCH_DIR) -rounds $(BENCH_ROUNDS) -tasks $(BENCH_TASKS) \
		-benchtime $(BENCH_TIME) -queries=$(BENCH_QUERIES) -ops-tasks $(BENCH_OPS_TASKS) \
		-pool=$(BENCH_POOL) -pool-count $(BENCH_POOL_COUNT) -pool-args '$(BENCH_POOL_ARGS)' -benchstat '$(BENCHSTAT)'

cover: deps ## Write coverage.out and coverage.html for every module, and print the total.
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) -coverpkg=$(subst $(space),$(comma),$(strip $(PKGS))) -coverprofile=coverage.out $(TEST_PKGS)
	$(GO) tool cover -html=coverage.out -o coverage.html
	$(GO) tool cover -func=coverage.out | tail -n 1
