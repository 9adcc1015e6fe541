# refrakt: `make run` serves on :8080 with the embedded backend; `make test`
# installs what the tests need (redis-server, promtool, tmux, nginx; as root, else it says
# how and stops) and runs every test with -race.
SHELL := /bin/bash
GO ?= go
PKG := github.com/refrakt/refrakt
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X $(PKG)/internal/version.version=$(VERSION) -X $(PKG)/internal/version.commit=$(COMMIT)
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
ADDR ?= :8080

.PHONY: all build run test lint bench fuzz clean

all: lint test

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/refrakt ./cmd/refrakt

run: build
	./bin/refrakt serve --addr $(ADDR)

test:
	bash scripts/ensure-redis.sh
	bash scripts/ensure-promtool.sh
	bash scripts/ensure-tmux.sh
	bash scripts/ensure-nginx.sh
	$(GO) test -race -count=1 -timeout 12m ./...
	# The race detector changes allocation counts, so the zero-allocation
	# checks of the hot paths also run once without it.
	$(GO) test -count=1 -run 'Allocat' ./internal/core/ratelimit/ ./internal/daemon/
	bash scripts/fuzz.sh --self-test
	FUZZTIME=$${FUZZTIME:-2s} bash scripts/fuzz.sh

lint:
	@bad=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$bad" ]; then echo "gofmt needed:"; echo "$$bad"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

bench:
	bash scripts/bench.sh

fuzz:
	bash scripts/fuzz.sh

clean:
	rm -rf bin
