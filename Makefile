# The commands a developer and CI run. `make test` is the whole suite: vet, then the race-enabled
# tests of the main module and of the SDK (a nested module with its own go.mod).
GO ?= go
BIN ?= bin

.PHONY: all build test vet lint bench e2e

all: lint test

build:
	$(GO) build -o $(BIN)/samplero ./cmd/samplero

vet:
	$(GO) vet ./...
	cd sdk/go && $(GO) vet ./...

# The PostgreSQL concurrency suite and the end-to-end tests run verbosely, so that their output shows
# what they did (every round of the seat race, every end-to-end flow); everything else prints its
# usual one line per package.
VERBOSE_PKGS = ./cmd/internal/integration ./cmd/samplero

test: vet
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v -e '/cmd/internal/integration$$' -e '/cmd/samplero$$')
	$(GO) test -race -count=1 -v $(VERBOSE_PKGS)
	cd sdk/go && $(GO) test -race -count=1 ./...

# gofmt -l prints every file it would change; any output fails the target.
lint:
	@out=$$(gofmt -l $$(git ls-files -co --exclude-standard '*.go' 2>/dev/null || find . -name '*.go' -not -path './.git/*')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	cd sdk/go && $(GO) vet ./...

bench:
	$(GO) test -run='^$$' -bench=. -benchmem ./...
	cd sdk/go && $(GO) test -run='^$$' -bench=. -benchmem ./...

# The end-to-end test alone (it is part of `make test` too).
e2e:
	$(GO) test -race -count=1 -run 'TestEndToEnd|TestE2E' -v ./cmd/samplero
