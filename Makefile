# ddbtrack's development tasks. Run `make` to list them.
#
# Tests need a local DynamoDB server. `make deps` installs dynalite (pinned in
# package-lock.json) into node_modules, and the tests start it themselves. If
# moto is installed for Python (`pip install 'moto[server]'`), `make test`
# also runs the whole suite against it, because two independent emulators
# catch tests that lean on one emulator's quirks. To test against any other
# server, including real AWS, skip make and run
# `AWS_ENDPOINT_URL_DYNAMODB=http://host:port go test ./...`.

# Recipes use bash so that `set -o pipefail` makes `go test | tee` fail
# when the tests do.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

GO ?= go
NPM ?= npm
# python3 first: on older systems `python` is Python 2, which moto does not
# support. The tests look for the interpreter in the same order.
PYTHON ?= $(shell command -v python3 || command -v python || echo python3)

# GO_MODULES lists the directories holding a go.mod. `go test ./...` stops at
# a nested module's boundary, so every target loops over them. The default
# finds them all; a nested module such as cmd/ddbtrack is picked up as soon
# as it exists. Override it to narrow a run, e.g. `make test GO_MODULES=.`.
GO_MODULES ?= $(sort $(patsubst ./%,%,$(patsubst %/go.mod,%,$(shell find . -name go.mod \
	-not -path './node_modules/*' -not -path '*/testdata/*' -not -path './.git/*'))))

# The suite shares one server per test binary and gives each test its own
# table, so -race on a 2-core machine finishes in minutes; the timeout only
# catches a hang.
TEST_TIMEOUT ?= 10m
TEST_FLAGS ?= -race -count=1 -timeout $(TEST_TIMEOUT)
# TEST_PKGS narrows test and cover. Patterns are relative to each
# module, so pair it with GO_MODULES: make test GO_MODULES=. TEST_PKGS=./internal/...
TEST_PKGS ?= ./...
# make bench builds the root package's test binary once and runs it
# BENCH_ROUNDS times. Each round runs each of its benchmarks once, so
# ddbtrack and its raw-SDK baseline are always measured close together in
# time, and the summary quotes medians over the rounds: the machine is
# shared, so single runs mean little. Per round, BenchmarkThroughput
# processes BENCH_TASKS tasks with each implementation (alternating in
# chunks), BenchmarkContention races once, BenchmarkRequests checks the
# request budget once, and BenchmarkLifecycle runs for BENCH_TIME each.
# BENCH_QUERIES=1 also runs the query benchmarks (BenchmarkQuery and
# BenchmarkStats, which load up to 100,000 tasks) once, 5 counts.
# benchstat is pinned; `go run` fetches it through the module proxy once.
BENCH_ROUNDS ?= 6
BENCH_TASKS ?= 240
BENCH_TIME ?= 2s
BENCH_QUERIES ?= 0
BENCH_DIR ?= bench
BENCHSTAT ?= $(GO) run golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da

# npm ci writes node_modules/.package-lock.json, and make compares its time
# with package-lock.json's to decide whether to reinstall. The files inside
# the packages are useless for that: npm dates them all 1985. npm ci leaves
# the stamp's time alone when nothing changed, so the rule touches it, or
# every make would run npm ci again.
NODE_STAMP := node_modules/.package-lock.json

# run_go runs a go command in every module, naming the module first so a
# failure is easy to place.
run_go = for m in $(GO_MODULES); do echo "--> ($$m) go $(1)"; (cd "$$m" && $(GO) $(1)); done

.PHONY: help
help: ## Show this help.
	@echo "Usage: make <target>"
	@echo
	@awk 'BEGIN { FS = ":.*## " } /^[a-zA-Z_-]+:.*## / { printf "  %-8s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

.PHONY: deps
deps: $(NODE_STAMP) ## Install dynalite (npm ci) and download Go modules.
	@$(call run_go,mod download)

$(NODE_STAMP): package.json package-lock.json
	$(NPM) ci --no-audit --no-fund
	touch $@

.PHONY: vet
vet: ## Run go vet on every module.
	@$(call run_go,vet ./...)

.PHONY: test
test: deps vet browser-deps ## Run all tests with -race against dynalite, then against moto if it is installed.
	@if [ -n "$${AWS_ENDPOINT_URL_DYNAMODB:-}" ]; then \
		echo "==> AWS_ENDPOINT_URL_DYNAMODB is set: testing against $$AWS_ENDPOINT_URL_DYNAMODB only"; \
		$(call run_go,test $(TEST_FLAGS) $(TEST_PKGS)); \
		exit 0; \
	fi; \
	echo "==> Testing against dynalite (DDBTRACK_SERVER=dynalite)"; \
	export DDBTRACK_SERVER=dynalite; \
	$(call run_go,test $(TEST_FLAGS) $(TEST_PKGS)); \
	if $(PYTHON) -I -c 'import moto.server' 2>/dev/null; then \
		echo "==> Testing against moto (DDBTRACK_SERVER=moto)"; \
		export DDBTRACK_SERVER=moto; \
		$(call run_go,test $(TEST_FLAGS) $(TEST_PKGS)); \
	else \
		echo "==> Skipped the moto run: moto is not installed for $(PYTHON) (pip install 'moto[server]')"; \
	fi

.PHONY: demo
demo: deps ## Run the quick-start example against a local dynalite.
	$(GO) run ./examples/quickstart

# The dashboard's browser test (dashboard/) drives headless Chromium, and the
# command's terminal test (cmd/ddbtrack) runs it in tmux. Both fail, rather
# than skip, without their program, so `make test` installs Debian's
# packages first when either is missing. DDBTRACK_CHROMIUM points the test
# at another Chromium or Chrome binary instead.
.PHONY: browser-deps
browser-deps: ## Install Chromium and tmux for the dashboard's browser test and the command's terminal test, unless on PATH.
	@pkgs=; \
	if [ -z "$${DDBTRACK_CHROMIUM:-}" ] && ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null \
		&& ! command -v google-chrome >/dev/null && ! command -v google-chrome-stable >/dev/null; then pkgs=chromium; fi; \
	command -v tmux >/dev/null || pkgs="$$pkgs tmux"; \
	[ -n "$$pkgs" ] || exit 0; \
	if ! command -v apt-get >/dev/null; then \
		echo "Missing$$pkgs and no apt-get to install them: install them, or set DDBTRACK_CHROMIUM to a Chromium or Chrome"; exit 1; \
	fi; \
	sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	echo "==> Installing Debian's$$pkgs for the browser and terminal tests"; \
	$$sudo apt-get update && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$pkgs

# dashboard keeps a dynalite running on DASHBOARD_DDB_PORT, loads the demo
# into it, and serves the dashboard on it until Ctrl-C, which stops both.
# DDBTRACK_TABLE and DDBTRACK_JOB, as the demo reads them, choose the job.
DASHBOARD_ADDR ?= 127.0.0.1:8080
DASHBOARD_DDB_PORT ?= 8765

.PHONY: dashboard
dashboard: deps ## Run the demo against a local dynalite and open the dashboard (ddbtrack serve) on its table.
	@if (exec 3<>/dev/tcp/127.0.0.1/$(DASHBOARD_DDB_PORT)) 2>/dev/null; then \
		echo "Port $(DASHBOARD_DDB_PORT) is taken: pick another with DASHBOARD_DDB_PORT=..."; exit 1; \
	fi; \
	node_modules/.bin/dynalite --host 127.0.0.1 --port $(DASHBOARD_DDB_PORT) --createTableMs 0 --deleteTableMs 0 --updateTableMs 0 & \
	trap "kill $$! 2>/dev/null" EXIT; \
	for i in $$(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$(DASHBOARD_DDB_PORT)) 2>/dev/null && break; sleep 0.1; done; \
	export AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:$(DASHBOARD_DDB_PORT) \
		DDBTRACK_TABLE=$${DDBTRACK_TABLE:-ddbtrack-quickstart} DDBTRACK_JOB=$${DDBTRACK_JOB:-test-job}; \
	$(GO) run ./examples/quickstart >/dev/null; \
	cd cmd/ddbtrack && $(GO) run . serve --addr $(DASHBOARD_ADDR)

.PHONY: bench
bench: deps ## Run the benchmarks in BENCH_ROUNDS interleaved rounds; write bench/raw.txt and the summary bench/summary.md.
	@mkdir -p $(BENCH_DIR); rm -f $(BENCH_DIR)/raw.txt $(BENCH_DIR)/raw-queries.txt
	@$(GO) test -c -o $(BENCH_DIR)/ddbtrack.test .
	@load_before="$$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || uptime)"; \
	bench() { DDBTRACK_SERVER=dynalite $(BENCH_DIR)/ddbtrack.test -test.run '^$$' -test.benchmem -test.count 1 -test.timeout 30m "$$@" \
		| tee -a $(BENCH_DIR)/raw.txt; }; \
	for r in $$(seq 1 $(BENCH_ROUNDS)); do \
		echo "==> Round $$r of $(BENCH_ROUNDS) (dynalite)"; \
		bench -test.bench '^BenchmarkThroughput$$' -test.benchtime $(BENCH_TASKS)x; \
		bench -test.bench '^Benchmark(Contention|Requests)$$' -test.benchtime 1x; \
		bench -test.bench '^BenchmarkLifecycle$$' -test.benchtime $(BENCH_TIME); \
	done; \
	if [ "$(BENCH_QUERIES)" = 1 ]; then \
		echo "==> Query benchmarks (dynalite)"; \
		DDBTRACK_SERVER=dynalite $(BENCH_DIR)/ddbtrack.test -test.run '^$$' -test.bench 'BenchmarkQuery$$|BenchmarkStats$$' \
			-test.count 5 -test.timeout 60m | tee $(BENCH_DIR)/raw-queries.txt; \
	fi; \
	load_after="$$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || uptime)"; \
	requests() { DDBTRACK_SERVER=$$1 $(BENCH_DIR)/ddbtrack.test -test.run '^TestRequestsPerLifecycle$$' -test.v -test.count 1 \
		| sed -n 's/^ *\(|.*|\) *$$/\1/p'; }; \
	echo "==> Request counts"; \
	{ \
		echo "# ddbtrack benchmark summary"; echo; \
		echo "- Date: $$(date -u '+%Y-%m-%d %H:%M UTC')"; \
		echo "- Machine: $$(uname -sm), $$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//'), $$(nproc 2>/dev/null) cores"; \
		echo "- Load average (1, 5, 15 min) before: $$load_before; after: $$load_after"; \
		echo "- $$($(GO) version); node $$(node --version); dynalite $$(node -p 'require("./node_modules/dynalite/package.json").version')"; \
		echo "- Command: make bench BENCH_ROUNDS=$(BENCH_ROUNDS) BENCH_TASKS=$(BENCH_TASKS) BENCH_TIME=$(BENCH_TIME) BENCH_QUERIES=$(BENCH_QUERIES)"; \
		echo; echo "## Requests per step (dynalite)"; echo; requests dynalite; \
		if $(PYTHON) -I -c 'import moto.server' 2>/dev/null; then \
			echo; echo "## Requests per step (moto $$($(PYTHON) -I -c 'import moto; print(moto.__version__)'))"; echo; requests moto; \
		else echo; echo "(moto is not installed: the refused claim that returns its item was not measured)"; fi; \
		echo; echo "## Benchmarks: medians over $(BENCH_ROUNDS) rounds, with 95% confidence intervals"; \
		echo; echo '```text'; $(BENCHSTAT) $(BENCH_DIR)/raw.txt; echo '```'; \
		if grep -q '^BenchmarkLifecycle/' $(BENCH_DIR)/raw.txt; then \
			echo; echo "## Library overhead against the in-memory stub: ddbtrack vs the raw-SDK baseline"; \
			echo; echo '```text'; $(BENCHSTAT) -filter '.name:Lifecycle' -col /impl $(BENCH_DIR)/raw.txt; echo '```'; \
		fi; \
		if [ -s $(BENCH_DIR)/raw-queries.txt ]; then \
			echo; echo "## Queries (one process, 5 counts)"; \
			echo; echo '```text'; $(BENCHSTAT) $(BENCH_DIR)/raw-queries.txt; echo '```'; \
		fi; \
	} > $(BENCH_DIR)/summary.md
	@echo "==> Wrote $(BENCH_DIR)/summary.md and $(BENCH_DIR)/raw.txt"

.PHONY: lint
lint: vet ## Check formatting (gofmt) and run go vet.
	@unformatted=$$(find . -name '*.go' -not -path './node_modules/*' -not -path './.git/*' -print0 \
		| xargs -0 gofmt -l); \
	if [ -n "$$unformatted" ]; then \
		echo "These files need gofmt -w:"; echo "$$unformatted"; exit 1; \
	fi

.PHONY: cover
cover: deps ## Write coverage.out and coverage.html (coverage.<module>.* for nested modules) and print the totals.
	@for m in $(GO_MODULES); do \
		name=coverage; [ "$$m" = . ] || name="coverage.$${m//\//-}"; \
		echo "--> ($$m) coverage in $$name.out and $$name.html"; \
		(cd "$$m" && $(GO) test -count=1 -timeout $(TEST_TIMEOUT) -coverpkg=./... -coverprofile="$(CURDIR)/$$name.out" $(TEST_PKGS)); \
		$(GO) tool cover -html="$$name.out" -o "$$name.html"; \
		$(GO) tool cover -func="$$name.out" | tail -n 1; \
	done
