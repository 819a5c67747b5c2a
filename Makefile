# pgstream developer tasks. `make test` is what CI runs (.ci/run).

# cargo from PATH, else rustup's default location.
ifeq ($(shell command -v cargo 2>/dev/null),)
  ifneq ($(wildcard $(HOME)/.cargo/bin/cargo),)
    export PATH := $(HOME)/.cargo/bin:$(PATH)
  endif
endif
CARGO ?= cargo
# Parallel test threads; each integration test gets its own database.
TEST_THREADS ?= 4

.PHONY: all build deps test demo bench lint clean

all: build

build:
	$(CARGO) build --release

# PostgreSQL server and wal2json, installed with apt-get when missing and root.
deps:
	bash scripts/install-deps.sh

# Unit tests, the tests/it integration binary (real PostgreSQL) and doc tests.
test: deps
	$(CARGO) test -- --test-threads=$(TEST_THREADS)

demo:
	bash scripts/demo.sh

bench:
	@echo "make bench: not implemented yet"

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

clean:
	$(CARGO) clean
