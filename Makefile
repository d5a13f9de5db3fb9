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
# TEST_PKGS narrows test, bench and cover. Patterns are relative to each
# module, so pair it with GO_MODULES: make test GO_MODULES=. TEST_PKGS=./internal/...
TEST_PKGS ?= ./...
BENCH_FLAGS ?= -run '^$$' -bench . -benchmem -count 6 -timeout 30m

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
test: deps vet ## Run all tests with -race against dynalite, then against moto if it is installed.
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

.PHONY: bench
bench: deps ## Run the benchmarks (6 counts, for benchstat) and save them to bench.out.
	@$(call run_go,test $(BENCH_FLAGS) $(TEST_PKGS)) | tee bench.out

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
