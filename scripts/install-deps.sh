#!/usr/bin/env bash
# Installs what the integration tests need, when it can:
#   - PostgreSQL server binaries (initdb, pg_ctl, postgres), and
#   - the wal2json output plugin for that server's major version, and
#   - systemd-analyze (package systemd), which checks docs/pgstream.service.
#   - strace (tests/it/files.rs watches pgstream's fsync calls with it).
#   - valgrind (make bench counts instructions per change with callgrind).
#   - prometheus and promtool (tests/it/metrics.rs scrapes pgstream with them).
#   - nats-server and redis-server (tests/it/sinks.rs starts its own brokers).
# Installing needs root and apt-get. A missing server is an error (the tests
# cannot run); a missing wal2json is a warning here, and the wal2json tests
# then fail with the command that installs it.
# PGSTREAM_TEST_PGBIN selects the server, as in tests/it/harness.rs.
set -euo pipefail

log() { echo "install-deps: $*" >&2; }

# shellcheck source=scripts/pgbin.sh
. "$(dirname "${BASH_SOURCE[0]}")/pgbin.sh"

can_apt() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; }

apt_updated=0
apt_install() {
    if [ "$apt_updated" = 0 ]; then
        log "apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq || return 1
        apt_updated=1
    fi
    log "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"
}

bindir=$(find_bindir || true)
if [ -z "$bindir" ] || ! has_server "$bindir"; then
    if [ -n "${PGSTREAM_TEST_PGBIN:-}" ]; then
        log "PGSTREAM_TEST_PGBIN=$PGSTREAM_TEST_PGBIN holds no initdb/pg_ctl/postgres"
        exit 1
    fi
    if ! can_apt; then
        log "no PostgreSQL server binaries found; install PostgreSQL (server) or set PGSTREAM_TEST_PGBIN"
        exit 1
    fi
    # The tests start their own clusters: do not let the package create and
    # start a system cluster on port 5432 (only when postgresql-common is new).
    if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
        mkdir -p /etc/postgresql-common
        echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.conf
    fi
    apt_install postgresql-15 || apt_install postgresql || {
        log "could not install PostgreSQL with apt-get"
        exit 1
    }
    bindir=$(find_bindir || true)
    if [ -z "$bindir" ]; then
        log "PostgreSQL was installed but no server binaries were found"
        exit 1
    fi
fi

version=$("$bindir/postgres" --version)
major=$(echo "$version" | sed -E 's/^[^0-9]*([0-9]+).*/\1/')
log "PostgreSQL server: $version ($bindir)"

if [ -x "$bindir/pg_config" ]; then
    pkglibdir=$("$bindir/pg_config" --pkglibdir)
else
    pkglibdir=$(dirname "$bindir")/lib
fi
if [ -f "$pkglibdir/wal2json.so" ]; then
    log "wal2json: $pkglibdir/wal2json.so"
elif can_apt && apt_install "postgresql-$major-wal2json" && [ -f "$pkglibdir/wal2json.so" ]; then
    log "wal2json installed: $pkglibdir/wal2json.so"
else
    log "WARNING: wal2json is not installed for PostgreSQL $major ($pkglibdir/wal2json.so);" \
        "the wal2json tests will fail. Install it: apt-get install postgresql-$major-wal2json"
fi

if command -v systemd-analyze >/dev/null 2>&1; then
    log "systemd-analyze: $(command -v systemd-analyze)"
elif can_apt && apt_install systemd && command -v systemd-analyze >/dev/null 2>&1; then
    log "systemd-analyze installed"
else
    log "WARNING: systemd-analyze is missing; the test of docs/pgstream.service is skipped." \
        "Install it: apt-get install systemd"
fi
# Installs a tool's package (named as the tool) when the tool is missing;
# `why` says what goes without it.
ensure_tool() {
    local tool=$1 why=$2
    if command -v "$tool" >/dev/null 2>&1; then
        log "$tool: $(command -v "$tool")"
    elif can_apt && apt_install "$tool"; then
        log "$tool installed"
    else
        log "WARNING: $tool is not installed; $why. Install it: apt-get install $tool"
    fi
}
ensure_tool strace "the fsync test in tests/it/files.rs will fail"
ensure_tool valgrind "make bench prints no instructions per change"
if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; then
    log "prometheus: $(command -v prometheus)"
elif can_apt && apt_install prometheus && command -v promtool >/dev/null 2>&1; then
    log "prometheus installed"
else
    log "WARNING: prometheus/promtool are not installed; the metrics tests in tests/it/metrics.rs will fail." \
        "Install them: apt-get install prometheus"
fi
for broker in nats-server redis-server; do
    if command -v "$broker" >/dev/null 2>&1; then
        log "$broker: $(command -v "$broker")"
    elif can_apt && apt_install "$broker" && command -v "$broker" >/dev/null 2>&1; then
        log "$broker installed"
    else
        log "WARNING: $broker is not installed; the sink tests in tests/it/sinks.rs will fail." \
            "Install it: apt-get install $broker"
    fi
done
