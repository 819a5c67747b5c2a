#!/usr/bin/env bash
# A short tour of pgstream against a throwaway PostgreSQL:
# create a slot, run a small workload, drain it as JSON lines.
#
#   scripts/demo.sh        (or: make demo)
#
# Needs cargo and PostgreSQL server binaries (see scripts/pgtemp.sh);
# pretty-prints with jq when it is installed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
    PATH=$HOME/.cargo/bin:$PATH
fi

if [ -t 1 ]; then bold=$'\033[1m' reset=$'\033[0m'; else bold='' reset=''; fi
step() { printf '\n%s== %s%s\n' "$bold" "$*" "$reset"; }
show() { printf '$ %s\n' "$*"; }

step "Building pgstream (cargo build --release)"
cargo build --release
bin=${CARGO_TARGET_DIR:-$PWD/target}/release/pgstream

step "Starting a throwaway PostgreSQL (wal_level=logical) with scripts/pgtemp.sh"
# /tmp rather than $TMPDIR: the unix socket path must stay short.
tmp=$(mktemp -d /tmp/pgstream-demo.XXXXXX)
trap 'scripts/pgtemp.sh stop "$tmp" >/dev/null 2>&1 || true' EXIT
set -a # export what pgtemp prints: psql and pgstream both read PGHOST/PGPORT/PGUSER
eval "$(scripts/pgtemp.sh start "$tmp")"
set +a
echo "PGHOST=$PGHOST PGPORT=$PGPORT PGUSER=$PGUSER"

step "Creating database demo, table orders and publication demo_pub"
sql() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }
sql -d postgres -c 'CREATE DATABASE demo'
sql -d demo -e <<'SQL'
CREATE TABLE orders (
    id serial PRIMARY KEY,
    total numeric(10,2),
    tags text[],
    meta jsonb,
    created_at timestamptz DEFAULT now()
);
CREATE PUBLICATION demo_pub FOR TABLE orders;
SQL

pgstream_args=(-d demo -S demo_slot --publication demo_pub --end-lsn now)
pretty() { if command -v jq >/dev/null 2>&1; then jq .; else cat; fi; }

step "First run: creates the slot demo_slot; nothing has changed yet, so it prints nothing and exits 0"
show pgstream "${pgstream_args[@]}"
"$bin" "${pgstream_args[@]}"
echo "(exit status $?)"

step "A small workload: 3 inserts, 1 update, 1 delete, each in its own transaction"
sql -d demo -e \
    -c "INSERT INTO orders (total, tags, meta) VALUES (12.50, '{a,b}', '{\"k\": 1}')" \
    -c "INSERT INTO orders (total, tags, meta) VALUES (99.99, '{}', '{\"gift\": true}')" \
    -c "INSERT INTO orders (total, tags, meta) VALUES (NULL, NULL, NULL)" \
    -c "UPDATE orders SET total = 13.00, meta = '{\"k\": 2}' WHERE id = 1" \
    -c "DELETE FROM orders WHERE id = 2"

step "Second run: one JSON line per change since the slot was created; acknowledges them and exits 0"
show pgstream "${pgstream_args[@]}"
"$bin" "${pgstream_args[@]}" | pretty

step "Third run: the backlog was acknowledged, so there is nothing to print"
show pgstream "${pgstream_args[@]}"
"$bin" "${pgstream_args[@]}" | pretty
echo "(nothing: exit status $?)"

step "Done; the throwaway cluster is removed on exit"
