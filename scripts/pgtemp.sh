#!/usr/bin/env bash
# A throwaway local PostgreSQL for demos and manual tests.
#
#   eval "$(scripts/pgtemp.sh start DIR)"   # prints PGHOST=DIR, PGPORT=N, PGUSER=postgres
#   scripts/pgtemp.sh stop DIR              # stops the server and removes DIR
#
# The server listens on 127.0.0.1 and on a unix socket in DIR, with
# wal_level=logical and trust authentication for the superuser `postgres`.
# `eval` sets shell variables; `set -a` before it (or `export PGHOST PGPORT
# PGUSER` after) passes them on to psql and pgstream. As root, the server
# runs as the `postgres` OS user. Progress goes to stderr, only the variables
# to stdout. PGSTREAM_TEST_PGBIN selects the server binaries.
set -euo pipefail

die() {
    echo "pgtemp: $*" >&2
    exit 1
}

usage() {
    echo "usage: $0 start DIR | stop DIR" >&2
    exit 2
}

# shellcheck source=scripts/pgbin.sh
. "$(dirname "${BASH_SOURCE[0]}")/pgbin.sh"

is_root() { [ "$(id -u)" = 0 ]; }

# Runs a command as the postgres OS user when we are root.
as_pg() {
    if ! is_root; then
        "$@"
    elif command -v runuser >/dev/null 2>&1; then
        runuser -u postgres -- "$@"
    else
        su postgres -s /bin/sh -c 'exec "$0" "$@"' "$@"
    fi
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start() {
    local dir=$1 bindir port log_len attempt
    bindir=$(find_bindir || true)
    [ -n "$bindir" ] && has_server "$bindir" ||
        die "no PostgreSQL server binaries found (set PGSTREAM_TEST_PGBIN or run scripts/install-deps.sh)"
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd -P)
    [ ! -e "$dir/data" ] || die "$dir/data exists already; stop it first: $0 stop $dir"
    # The socket path is DIR/.s.PGSQL.NNNNN, limited to 107 bytes.
    [ "${#dir}" -le 90 ] || die "$dir is too long for a unix socket path; use a shorter DIR"
    touch "$dir/.pgtemp" # marks DIR as ours, so that stop may remove it
    if is_root; then
        id -u postgres >/dev/null 2>&1 || die "running as root but there is no postgres OS user"
        chown postgres:postgres "$dir"
        as_pg test -w "$dir" || die "the postgres OS user cannot write to $dir (check its parents' permissions)"
    fi

    echo "pgtemp: initdb in $dir/data ($bindir)" >&2
    if ! as_pg "$bindir/initdb" -D "$dir/data" -A trust -U postgres --encoding=UTF8 --locale=C -N \
        >"$dir/initdb.log" 2>&1; then
        cat "$dir/initdb.log" >&2
        die "initdb failed"
    fi
    cat >>"$dir/data/postgresql.conf" <<CONF

# --- pgtemp.sh ---
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
wal_level = logical
max_replication_slots = 16
max_wal_senders = 16
fsync = off
synchronous_commit = off
full_page_writes = off
include 'pgtemp_port.conf'
CONF

    local started=0
    for attempt in $(seq 1 20); do
        port=$((RANDOM % 30000 + 20000))
        if port_in_use "$port"; then continue; fi
        echo "port = $port" >"$dir/data/pgtemp_port.conf"
        if is_root; then chown postgres:postgres "$dir/data/pgtemp_port.conf"; fi
        log_len=$(stat -c %s "$dir/server.log" 2>/dev/null || echo 0)
        if as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >&2; then
            started=1
            break
        fi
        if tail -c +"$((log_len + 1))" "$dir/server.log" | grep -q "Address already in use" && [ "$attempt" -lt 20 ]; then
            continue
        fi
        tail -n 30 "$dir/server.log" >&2 || true
        die "pg_ctl start failed"
    done
    [ "$started" = 1 ] || die "found no free port to start on"
    for _ in $(seq 1 600); do
        if "$bindir/pg_isready" -q -h "$dir" -p "$port" -U postgres -d postgres; then
            printf 'PGHOST=%q\nPGPORT=%s\nPGUSER=postgres\n' "$dir" "$port"
            return
        fi
        sleep 0.1
    done
    die "server in $dir did not become ready; see $dir/server.log"
}

stop() {
    local dir bindir
    if ! dir=$(cd "$1" 2>/dev/null && pwd -P); then
        echo "pgtemp: nothing at $1" >&2
        return 0
    fi
    [ -f "$dir/.pgtemp" ] || die "$dir was not made by '$0 start'; refusing to remove it"
    if [ -f "$dir/data/postmaster.pid" ]; then
        bindir=$(find_bindir || true)
        [ -n "$bindir" ] || die "no PostgreSQL binaries to stop the server in $dir with"
        as_pg "$bindir/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >&2 ||
            as_pg "$bindir/pg_ctl" -D "$dir/data" -m immediate -w -t 60 stop >&2 ||
            die "could not stop the server in $dir"
    fi
    rm -rf -- "$dir"
}

[ $# -eq 2 ] || usage
case $1 in
start) start "$2" ;;
stop) stop "$2" ;;
*) usage ;;
esac
