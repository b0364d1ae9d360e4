# attestd: see README.md. Every target works on a fresh Debian machine with Go;
# tools the targets need are installed by scripts/ensure-tools.sh.
GO        ?= go
BIN       := $(CURDIR)/bin
TOOLS     := $(BIN)/tools
STATICCHECK_VERSION := v0.8.2
FUZZTIME  ?= 10s

# Static, reproducible binaries: no cgo, no paths, no VCS stamp, no build id.
BUILD_FLAGS := -trimpath -buildvcs=false -ldflags='-s -w -buildid='

.PHONY: all build test lint tools demo demo-tls bench bench-ratios bench-verify bench-eif fuzz load repro clean

all: build

build:
	CGO_ENABLED=0 $(GO) build $(BUILD_FLAGS) -o $(BIN)/ ./cmd/...

tools:
	STATICCHECK_VERSION=$(STATICCHECK_VERSION) TOOLS=$(TOOLS) ./scripts/ensure-tools.sh

lint: tools
	@unformatted="$$(gofmt -l $$(git ls-files '*.go'))"; \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(TOOLS)/staticcheck ./...
	cd examples/kms && $(GO) vet ./... && $(TOOLS)/staticcheck ./...
	shellcheck scripts/*.sh .ci/run

# The whole suite: lint, unit/integration tests under the race detector (the fuzz
# seed corpora replay here), the reproducible-build check and a small load test.
test: lint
	$(GO) test -race -count=1 ./...
	cd examples/kms && $(GO) test -race -count=1 ./...
	./scripts/repro-check.sh
	$(MAKE) load LOAD_CLIENTS=32 LOAD_REQUESTS=2000

demo: build
	./scripts/demo.sh

demo-tls: build
	./scripts/demo-tls.sh

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

bench-ratios:
	./scripts/bench-ratios.sh

bench-verify:
	./scripts/bench-verify.sh

bench-eif:
	./scripts/bench-eif.sh

LOAD_CLIENTS  ?= 256
LOAD_REQUESTS ?= 50000
load: build
	$(GO) run ./test/load --attestd $(BIN)/attestd --clients $(LOAD_CLIENTS) --requests $(LOAD_REQUESTS)

fuzz:
	FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

repro:
	./scripts/repro-check.sh

clean:
	rm -rf $(BIN)
