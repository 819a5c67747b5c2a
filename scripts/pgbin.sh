# Sourced by the scripts that need PostgreSQL server binaries: finds them
# in the same order as the test harness (tests/it/harness.rs).
# shellcheck shell=bash

has_server() { [ -x "$1/initdb" ] && [ -x "$1/pg_ctl" ] && [ -x "$1/postgres" ]; }

# Same order as the test harness: PGSTREAM_TEST_PGBIN, pg_config --bindir,
# the highest /usr/lib/postgresql/*/bin.
find_bindir() {
    if [ -n "${PGSTREAM_TEST_PGBIN:-}" ]; then
        echo "$PGSTREAM_TEST_PGBIN"
        return
    fi
    local d v best="" bestv=0
    if command -v pg_config >/dev/null 2>&1; then
        d=$(pg_config --bindir 2>/dev/null || true)
        if [ -n "$d" ] && has_server "$d"; then
            echo "$d"
            return
        fi
    fi
    for d in /usr/lib/postgresql/*/bin; do
        v=$(basename "$(dirname "$d")")
        case $v in '' | *[!0-9]*) continue ;; esac
        if has_server "$d" && [ "$v" -gt "$bestv" ]; then
            best=$d
            bestv=$v
        fi
    done
    if [ -n "$best" ]; then echo "$best"; fi
}
