# Tether build, test and benchmark entry points. See README.md.
SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin
OPA_VERSION := $(shell $(GO) list -m -f '{{.Version}}' github.com/open-policy-agent/opa)
export PATH := $(BIN):$(PATH)

.PHONY: all build tools test test-go test-rego bench demo demo-offline fuzz lint clean

all: build

build:
	$(GO) build -o $(BIN)/ ./cmd/...

# tools installs or builds every tool the tests need: the real opa CLI at go.mod's
# version into ./bin, and redis-server, sshd and ssh from Debian's packages if missing.
tools: $(BIN)/opa
	scripts/install-tools.sh

$(BIN)/opa: go.mod
	@mkdir -p $(BIN)
	GOBIN=$(BIN) $(GO) install github.com/open-policy-agent/opa@$(OPA_VERSION)
	@touch $@

# test runs the whole suite: Go tests (with the race detector where goroutines matter),
# the Rego library's tests with the real opa and its coverage bar, and the conformance
# vectors emitted as Rego tests.
test: tools build test-go test-rego

test-go:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...
	$(GO) test -count=1 -race -short -timeout 20m ./policy/... ./bundles/... ./state/... ./ca/...

test-rego: tools
	$(BIN)/opa check --strict rego/
	$(BIN)/opa fmt --list --fail rego/
	$(BIN)/opa test --coverage --threshold 90 rego/ > $(CURDIR)/bin/rego-coverage.json || \
		{ python3 scripts/coverage-summary.py < $(CURDIR)/bin/rego-coverage.json; exit 1; }
	@python3 scripts/coverage-summary.py < $(CURDIR)/bin/rego-coverage.json

# bench prints the performance figures the issues ask for. GOGC=400 as tetherd runs:
# fewer collections trim the decision latency's tail.
bench: tools
	GOGC=400 $(GO) test -run '^$$' -bench 'DecisionFigures' -benchtime 1x -timeout 30m ./policy/ -args -tether.report
	GOGC=400 $(GO) test -run '^$$' -bench 'DecideHit' -benchtime 2s ./policy/
	$(GO) test -run '^$$' -bench 'BenchmarkStore' -benchtime 2000x -timeout 10m ./state/
	$(GO) test -run '^$$' -bench 'BenchmarkIssueUser|BenchmarkVerifyUser' -benchtime 2s -timeout 10m ./ca/
	$(GO) test -run '^$$' -bench 'TunnelFigures' -benchtime 1x -timeout 30m ./transport/

# fuzz runs every fuzz target for FUZZTIME each.
FUZZTIME ?= 20s
fuzz:
	scripts/fuzz-all.sh $(FUZZTIME)

demo: tools build
	scripts/demo.sh

demo-offline: $(BIN)/opa build
	scripts/demo-offline.sh

clean:
	rm -rf $(BIN)
