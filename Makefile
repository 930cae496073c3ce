# tokrun build, test and benchmark targets. Run `make help` for a list.

GO          ?= go
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
FUZZTIME    ?= 10s
BINARIES    := $(notdir $(wildcard cmd/*))

export GOFLAGS := -buildvcs=false

.PHONY: help build test lint unit tidy-check bench pgo fuzz demo clean

help: ## show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build static binaries into bin/ (CGO_ENABLED=0)
	@mkdir -p bin
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o bin/ $(addprefix ./cmd/,$(BINARIES))

test: lint tidy-check unit ## everything CI runs: gofmt, vet, staticcheck, tidy check, go test -race

lint: ## gofmt check, go vet and staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

tidy-check: ## fail if go.mod or go.sum are not tidy
	$(GO) mod tidy -diff

unit: ## go test -race on every package
	CGO_ENABLED=1 $(GO) test -race -count=1 ./...

bench: ## run benchmarks (ratios against baselines measured in the same run)
	$(GO) test -run '^$$' -bench . -benchmem -count=1 ./...

pgo: ## regenerate cmd/tokproxy/default.pgo, the CPU profile tokproxy is built with
	$(GO) test -run '^$$' -bench 'KeepAliveHTTPS' -benchtime 60x -o /tmp/tokrun-pgo.test \
	  -cpuprofile $(CURDIR)/cmd/tokproxy/default.pgo ./proxy
	rm -f /tmp/tokrun-pgo.test

fuzz: ## run every fuzz target for FUZZTIME (default 10s) each
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; \
	    $(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

demo: build ## the main job, offline: a local API, a sealed key, an agent in tokrun (as root)
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/demo-api ./examples/demo/api
	BIN=bin bash examples/demo/demo.sh

clean: ## remove build output
	rm -rf bin
