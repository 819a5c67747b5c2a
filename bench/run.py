#!/usr/bin/env python3
"""make bench: pgstream against pg_recvlogical, on a throwaway PostgreSQL (issue 8).

For each workload: create the table and publication, create one logical slot
per consumer and repetition *before* the workload (so every consumer drains the
same backlog), run the workload, then time each consumer draining its slot to
the same end LSN. Repetitions alternate the order of the consumers. Each
consumer runs under /usr/bin/time, which reports its user+sys CPU and peak RSS
(getrusage of a child forked from Python would report Python's own RSS).

Then the snapshot workload (issue 5): tables with existing rows, copied by
`pgstream --snapshot --end-lsn now` (a new slot per run, pool sizes 1 and 4)
and by `psql -c "\\copy t to stdout"` of each table one after another; rows/s.

Then the latency test: a steady light write load (pgbench, single-row commits
storing clock_timestamp()) while pgstream streams live; the reader timestamps
every line on arrival and reports commit->line latency percentiles.

Only prints: slow numbers never fail the run. Results go to bench/RESULTS.md.
Standard library only (Python >= 3.8). `python3 bench/run.py --help` for flags.
"""

import argparse
import datetime as dt
import json
import math
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PUB = "benchpub"
TABLE = "bench"

# Columns of the base table, and the expression for row g.
BASE_COLS = (
    "(id bigint PRIMARY KEY, a int, b text, c timestamptz, d numeric, e jsonb, f boolean)"
)
BASE_DDL = f"CREATE TABLE {TABLE} {BASE_COLS}"
BASE_ROW = (
    "g, g::int, 'row ' || g, clock_timestamp(), g * 1.25,"
    " jsonb_build_object('k', g, 'tag', 'x'), g % 2 = 0"
)

# --------------------------------------------------------------------------
# Workloads. Each returns (ddl statements, workload SQL). The workload SQL is one
# DO block that commits as it goes and ends with RAISE NOTICE 'bench_changes=N'
# (row counts as the server reports them), so the expected change count never
# depends on arithmetic here.
# --------------------------------------------------------------------------


def wl_inserts(n, tx, row=BASE_ROW):
    return [BASE_DDL], f"""
DO $$
DECLARE n bigint := {n}; t bigint := {tx}; i bigint := 0; k bigint; total bigint := 0;
BEGIN
  WHILE i < n LOOP
    INSERT INTO {TABLE} SELECT {row} FROM generate_series(i + 1, least(i + t, n)) g;
    GET DIAGNOSTICS k = ROW_COUNT; total := total + k;
    COMMIT;
    i := i + t;
  END LOOP;
  RAISE NOTICE 'bench_changes=%', total;
END $$;"""


def wl_mixed(n, tx):
    # Transactions of `tx` operations: half inserts of new rows, 30 % updates of
    # rows inserted by the previous transaction, 20 % deletes of rows inserted
    # two transactions back (rows that were not updated).
    ins, upd = tx // 2, (tx * 3) // 10
    dele = tx - ins - upd
    nb = max(1, math.ceil(n / tx))
    return [BASE_DDL], f"""
DO $$
DECLARE nb bigint := {nb}; ins bigint := {ins}; upd bigint := {upd}; del bigint := {dele};
        i bigint; k bigint; total bigint := 0;
BEGIN
  FOR i IN 0 .. nb - 1 LOOP
    INSERT INTO {TABLE} SELECT {BASE_ROW} FROM generate_series(ins * i + 1, ins * i + ins) g;
    GET DIAGNOSTICS k = ROW_COUNT; total := total + k;
    IF i >= 1 THEN
      UPDATE {TABLE} SET a = a + 1, b = 'updated ' || id, c = clock_timestamp(),
                     d = d + 1, e = e || '{{"u": true}}', f = NOT f
       WHERE id BETWEEN ins * (i - 1) + 1 AND ins * (i - 1) + upd;
      GET DIAGNOSTICS k = ROW_COUNT; total := total + k;
    END IF;
    IF i >= 2 THEN
      DELETE FROM {TABLE} WHERE id BETWEEN ins * (i - 2) + upd + 1 AND ins * (i - 2) + upd + del;
      GET DIAGNOSTICS k = ROW_COUNT; total := total + k;
    END IF;
    COMMIT;
  END LOOP;
  RAISE NOTICE 'bench_changes=%', total;
END $$;"""


def wl_onetx(n, tx):
    return [BASE_DDL], f"""
DO $$
DECLARE k bigint;
BEGIN
  INSERT INTO {TABLE} SELECT {BASE_ROW} FROM generate_series(1, {n}) g;
  GET DIAGNOSTICS k = ROW_COUNT;
  RAISE NOTICE 'bench_changes=%', k;
END $$;"""


WIDE_TYPES = [
    ("int", "(g + {j})::int"),
    ("text", "'v{j}-' || g"),
    ("timestamptz", "timestamptz '2026-01-01 00:00:00+00' + g * interval '1 second'"),
    ("numeric", "g * 0.01 + {j}"),
    ("jsonb", "jsonb_build_object('j', {j}, 'g', g)"),
    ("boolean", "(g + {j}) % 2 = 0"),
    ("double precision", "g / 7.0::float8 + {j}"),
]


def wl_wide(n, tx):
    cols, exprs = [], []
    for j in range(1, 50):  # id + 49 = 50 columns
        typ, expr = WIDE_TYPES[(j - 1) % len(WIDE_TYPES)]
        cols.append(f"c{j:02d} {typ}")
        exprs.append(expr.format(j=j))
    ddl = f"CREATE TABLE {TABLE} (id bigint PRIMARY KEY, {', '.join(cols)})"
    return [ddl], f"""
DO $$
DECLARE n bigint := {n}; t bigint := {tx}; i bigint := 0; k bigint; total bigint := 0;
BEGIN
  WHILE i < n LOOP
    INSERT INTO {TABLE} SELECT g, {', '.join(exprs)} FROM generate_series(i + 1, least(i + t, n)) g;
    GET DIAGNOSTICS k = ROW_COUNT; total := total + k;
    COMMIT;
    i := i + t;
  END LOOP;
  RAISE NOTICE 'bench_changes=%', total;
END $$;"""


def wl_toast(n, tx):
    # b is 10,240 bytes stored out of line uncompressed (STORAGE EXTERNAL), so
    # every insert carries a TOASTed value; then every row is updated without
    # touching b (the server sends b as "unchanged TOAST").
    t = max(1, min(tx, 100))
    ddl = [BASE_DDL, f"ALTER TABLE {TABLE} ALTER COLUMN b SET STORAGE EXTERNAL"]
    return ddl, f"""
DO $$
DECLARE n bigint := {n}; t bigint := {t}; i bigint := 0; k bigint; total bigint := 0;
BEGIN
  WHILE i < n LOOP
    INSERT INTO {TABLE}
      SELECT g, g::int, repeat(md5(g::text), 320), clock_timestamp(), g * 1.25,
             jsonb_build_object('k', g), g % 2 = 0
        FROM generate_series(i + 1, least(i + t, n)) g;
    GET DIAGNOSTICS k = ROW_COUNT; total := total + k;
    COMMIT;
    i := i + t;
  END LOOP;
  i := 0;
  WHILE i < n LOOP
    UPDATE {TABLE} SET a = a + 1, c = clock_timestamp() WHERE id BETWEEN i + 1 AND least(i + t, n);
    GET DIAGNOSTICS k = ROW_COUNT; total := total + k;
    COMMIT;
    i := i + t;
  END LOOP;
  RAISE NOTICE 'bench_changes=%', total;
END $$;"""


# name -> (builder, default size, description with {n} and {tx})
WORKLOADS = {
    "inserts": (wl_inserts, 1_000_000, "{n} single-row inserts in transactions of {tx}"),
    "mixed": (
        wl_mixed,
        300_000,
        "~{n} changes in transactions of {tx}: 50 % inserts, 30 % updates, 20 % deletes",
    ),
    "onetx": (wl_onetx, 300_000, "one transaction inserting {n} rows"),
    "wide": (wl_wide, 100_000, "{n} inserts of 50-column rows in transactions of {tx}"),
    "toast": (
        wl_toast,
        20_000,
        "{n} inserts with a 10 kB out-of-line TOASTed text, then {n} updates "
        "leaving it unchanged (transactions of 100)",
    ),
}

# Consumers of the backlog: key -> (label, plugin, matching pg_recvlogical key or None)
CONSUMERS = {
    "rl_pgo": ("pg_recvlogical pgoutput", "pgoutput", None),
    "pgs_pgo": ("pgstream pgoutput", "pgoutput", "rl_pgo"),
    "pgs_wc": ("pgstream pgoutput \\| wc -l", "pgoutput", "rl_pgo"),
    # The same with --metrics-addr: its ratio is to pgstream without it.
    "pgs_met": ("pgstream pgoutput --metrics-addr", "pgoutput", "pgs_pgo"),
    "rl_w2j": ("pg_recvlogical wal2json", "wal2json", None),
    "pgs_w2j": ("pgstream wal2json", "wal2json", "rl_w2j"),
}
W2J_OPTS = ["format-version=2", "include-xids=1", "include-timestamp=1", "include-lsn=1"]

# The snapshot workload (issue 5): one big table and SNAP_SMALL_TABLES smaller
# ones of the bench row shape, all in the publication, rows existing before the
# slot. Not in WORKLOADS: it has no backlog to drain and its own consumers.
SNAPSHOT = "snapshot"
SNAP_BIG_DEFAULT = 1_000_000
SNAP_SMALL_DEFAULT = 100_000
SNAP_SMALL_TABLES = 3
SNAP_DESC = ("{big} rows in table snap_big plus {k} tables snap_small_1..{k} of {small} rows "
             "(bench row shape), published, then copied: pgstream --snapshot --end-lsn now "
             "(a new slot per run) vs psql \\copy of each table one after another")
# Instructions per change (issue 18): inserts of the bench row with an md5 text
# and a 3-key jsonb, drained once per consumer under callgrind. Instruction
# counts hardly move on a busy machine, unlike wall and CPU times.
CALLGRIND = "callgrind"
CALLGRIND_DEFAULT = 100_000
CALLGRIND_ROW = (
    "g, g::int, md5(g::text), clock_timestamp(), g * 1.25,"
    " jsonb_build_object('k', g, 'tag', 'x', 'md5', md5(g::text)), g % 2 = 0"
)
CALLGRIND_DESC = ("{n} inserts in transactions of {tx} (b an md5, e a 3-key jsonb), drained "
                  "once per consumer under `valgrind --tool=callgrind`")
ALL_WORKLOADS = list(WORKLOADS) + [SNAPSHOT, CALLGRIND]


def log(msg):
    print(msg, flush=True)


class BenchError(Exception):
    pass


# --------------------------------------------------------------------------
# Measuring a process: /usr/bin/time when available, else wait4 + VmHWM polling.
# --------------------------------------------------------------------------


def find_time():
    t = shutil.which("time", path="/usr/bin:/bin:/usr/local/bin")
    if t and is_gnu_time(t):
        return t
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log("bench: /usr/bin/time missing; apt-get install time")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", "time"], env=env, check=False)
        t = shutil.which("time", path="/usr/bin:/bin:/usr/local/bin")
        if t and is_gnu_time(t):
            return t
    log("bench: no GNU time; measuring with wait4() and /proc/PID/status VmHWM instead")
    return None


def is_gnu_time(path):
    try:
        r = subprocess.run(
            [path, "-f", "%M", "true"], capture_output=True, text=True, timeout=10
        )
        return r.returncode == 0 and r.stderr.strip().splitlines()[-1].isdigit()
    except Exception:
        return False


class Measured:
    def __init__(self, rc, wall, user, sys_, rss_kb):
        self.rc, self.wall, self.user, self.sys, self.rss_kb = rc, wall, user, sys_, rss_kb
        self.count = None
        self.counts = []
        self.note = ""

    @property
    def cpu(self):
        return self.user + self.sys


class Runner:
    def __init__(self, workdir, env, time_bin):
        self.workdir = Path(workdir)
        self.env = env
        self.time_bin = time_bin
        self.seq = 0

    def run(self, cmd, timeout, pipe_to_wc=False, stdout_path=os.devnull, wc_flags=("-l",)):
        """Runs cmd with stdout to stdout_path (or into `wc -l`); returns Measured.

        With pipe_to_wc, m.count is wc's first number and m.counts all of them
        (`wc -lc`: lines, bytes)."""
        self.seq += 1
        tfile = self.workdir / f"time.{self.seq}"
        efile = self.workdir / f"stderr.{self.seq}"
        full = list(cmd)
        if self.time_bin:
            full = [self.time_bin, "-f", "%e %U %S %M", "-o", str(tfile)] + full
        hwm = [0]
        with open(efile, "wb") as err, open(stdout_path, "wb") as out:
            t0 = time.monotonic()
            p = subprocess.Popen(
                full,
                stdout=subprocess.PIPE if pipe_to_wc else out,
                stderr=err,
                env=self.env,
                start_new_session=True,
            )
            wc = None
            if pipe_to_wc:
                wc = subprocess.Popen(["wc", *wc_flags], stdin=p.stdout, stdout=subprocess.PIPE)
                p.stdout.close()
            poller = None
            if not self.time_bin:
                poller = threading.Thread(target=poll_hwm, args=(p.pid, hwm), daemon=True)
                poller.start()
            try:
                _, status, ru = wait4_timeout(p, timeout)
            except BaseException as e:
                if not isinstance(e, subprocess.TimeoutExpired):
                    kill_group(p)  # interrupted: take the consumer down with us
                    if wc:
                        wc.kill()
                    raise
                kill_group(p)
                if wc:
                    wc.kill()
                    wc.wait()
                m = Measured(-9, float("nan"), 0.0, 0.0, 0)
                tail = efile.read_text(errors="replace").strip().splitlines()[-2:]
                m.note = f"timed out after {timeout} s" + "".join(f" / {l}" for l in tail)
                return m
            wall = time.monotonic() - t0
            rc = os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else (status >> 8)
            count, counts = None, []
            if wc:
                out_wc, _ = wc.communicate()
                wall = time.monotonic() - t0
                try:
                    counts = [int(x) for x in out_wc.split()]
                    count = counts[0]
                except (ValueError, IndexError):
                    count, counts = None, []
        if self.time_bin:
            user = sys_ = 0.0
            rss = 0
            try:
                lines = [l for l in tfile.read_text().splitlines() if l.strip()]
                _, user, sys_, rss = lines[-1].split()
                user, sys_, rss = float(user), float(sys_), int(rss)
            except (OSError, ValueError, IndexError):
                pass
        else:
            if poller:
                poller.join(timeout=1)
            user, sys_, rss = ru.ru_utime, ru.ru_stime, hwm[0]
        m = Measured(rc, wall, user, sys_, rss)
        m.count = count
        m.counts = counts
        if rc != 0:
            tail = efile.read_text(errors="replace").strip().splitlines()[-3:]
            m.note = f"exit {rc}: " + " / ".join(tail)
        return m


def wait4_timeout(p, timeout):
    deadline = time.monotonic() + timeout
    while True:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid == p.pid:
            p.returncode = 0  # reaped here; keep Popen from waiting again
            return pid, status, ru
        if time.monotonic() > deadline:
            raise subprocess.TimeoutExpired(p.args, timeout)
        time.sleep(0.002)


def poll_hwm(pid, box):
    path = f"/proc/{pid}/status"
    while True:
        try:
            with open(path) as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        box[0] = max(box[0], int(line.split()[1]))
        except (OSError, ValueError):
            return
        time.sleep(0.02)


def kill_group(p, sig=signal.SIGKILL):
    try:
        os.killpg(p.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        p.wait(timeout=10)
    except Exception:
        pass


# --------------------------------------------------------------------------
# The throwaway cluster.
# --------------------------------------------------------------------------


class Cluster:
    def __init__(self, args):
        self.args = args
        self.dir = tempfile.mkdtemp(prefix="pgsb.", dir="/tmp")
        self.env = None
        self.bindir = None
        self.started = False

    def start(self):
        log(f"bench: starting a throwaway PostgreSQL in {self.dir}")
        r = subprocess.run(
            ["bash", str(REPO / "scripts" / "pgtemp.sh"), "start", self.dir],
            stdout=subprocess.PIPE,
            text=True,
        )
        if r.returncode != 0:
            raise BenchError("scripts/pgtemp.sh start failed")
        self.started = True
        env = dict(os.environ)
        for line in r.stdout.splitlines():
            if "=" in line:
                k, v = line.split("=", 1)
                env[k] = shlex.split(v)[0] if v else ""
        env["PGDATABASE"] = "postgres"
        for k in ("PGPASSWORD", "PGSERVICE", "PGOPTIONS", "PGSSLMODE", "PGSTREAM_SLOT", "RUST_LOG"):
            env.pop(k, None)
        self.env = env
        self.bindir = self.psql("SELECT setting FROM pg_config WHERE name = 'BINDIR'").strip()
        if not (Path(self.bindir) / "pg_ctl").exists():
            self.bindir = str(Path(shutil.which("pg_ctl") or "/usr/bin/pg_ctl").parent)

    def configure(self, nslots):
        n = max(16, nslots + 8)
        settings = {
            "max_replication_slots": n,
            "max_wal_senders": n,
            "max_connections": max(100, n + 20),
            "max_wal_size": "'32GB'",
            "min_wal_size": "'1GB'",
            "checkpoint_timeout": "'1h'",
            "autovacuum": "off",
            "synchronous_commit": "on",
            "wal_sender_timeout": "'5min'",
        }
        self.psql("\n".join(f"ALTER SYSTEM SET {k} = {v};" for k, v in settings.items()))
        cmd = [
            str(Path(self.bindir) / "pg_ctl"),
            "-D", f"{self.dir}/data", "-l", f"{self.dir}/server.log",
            "-w", "-t", "120", "-m", "fast", "restart",
        ]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--"] + cmd
        r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            raise BenchError("pg_ctl restart failed: " + r.stderr)
        for _ in range(600):
            if subprocess.run(
                [str(Path(self.bindir) / "pg_isready"), "-q"], env=self.env
            ).returncode == 0:
                return settings
            time.sleep(0.1)
        raise BenchError("server did not come back after restart")

    def psql(self, sql, notices=False):
        r = subprocess.run(
            [str(Path(self.bindir) / "psql") if self.bindir else "psql",
             "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-f", "-"],
            input=sql,
            env=self.env,
            capture_output=True,
            text=True,
        )
        if r.returncode != 0:
            raise BenchError(f"psql failed: {r.stderr.strip()}\nSQL: {sql[:500]}")
        return (r.stdout, r.stderr) if notices else r.stdout

    def stop(self):
        if self.started:
            subprocess.run(
                ["bash", str(REPO / "scripts" / "pgtemp.sh"), "stop", self.dir],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            self.started = False
        elif os.path.isdir(self.dir):
            shutil.rmtree(self.dir, ignore_errors=True)


# --------------------------------------------------------------------------


def consumer_cmd(key, slot, end_lsn, pgstream, bindir):
    recv = str(Path(bindir) / "pg_recvlogical")
    if key in ("pgs_pgo", "pgs_wc"):
        return [pgstream, "-d", "postgres", "-S", slot, "--publication", PUB,
                "--end-lsn", end_lsn, "-q"]
    if key == "pgs_met":
        return [pgstream, "-d", "postgres", "-S", slot, "--publication", PUB,
                "--end-lsn", end_lsn, "-q", "--metrics-addr", "127.0.0.1:0"]
    if key == "pgs_w2j":
        return [pgstream, "-d", "postgres", "-S", slot, "-P", "wal2json", "--publication", PUB,
                "--end-lsn", end_lsn, "-q"]
    if key == "rl_pgo":
        return [recv, "-d", "postgres", "-S", slot, "--start", "-o", "proto_version=1",
                "-o", f"publication_names={PUB}", "--endpos", end_lsn, "-f", "/dev/null"]
    if key == "rl_w2j":
        opts = []
        for o in W2J_OPTS + [f"add-tables=public.{TABLE}"]:
            opts += ["-o", o]
        return [recv, "-d", "postgres", "-S", slot, "--start"] + opts + [
            "--endpos", end_lsn, "-f", "/dev/null"]
    raise KeyError(key)


def display_cmd(cmd):
    c = [Path(cmd[0]).name if cmd[0].endswith("pg_recvlogical") else cmd[0]] + cmd[1:]
    return " ".join(shlex.quote(x) for x in c)


def probe_wal2json(cl, pgstream, runner):
    """Returns (pgstream_supports_wal2json, wal2json_installed, note)."""
    cl.psql(f"""
DROP PUBLICATION IF EXISTS {PUB};
CREATE TABLE bench_probe (id bigint PRIMARY KEY, v text);
CREATE PUBLICATION {PUB} FOR TABLE bench_probe;""")
    try:
        cl.psql("SELECT pg_create_logical_replication_slot('probe_w2j', 'wal2json');")
    except BenchError as e:
        cl.psql(f"DROP TABLE bench_probe; DROP PUBLICATION {PUB};")
        return False, False, f"wal2json is not installed ({e})"
    cl.psql("INSERT INTO bench_probe VALUES (1, 'probe');")
    lsn = cl.psql("SELECT pg_current_wal_flush_lsn();").strip()
    cmd = [pgstream, "-d", "postgres", "-S", "probe_w2j", "-P", "wal2json", "--publication", PUB,
           "--end-lsn", lsn, "-q"]
    m = runner.run(cmd, timeout=60)
    cl.psql(f"""
SELECT pg_drop_replication_slot('probe_w2j');
DROP TABLE bench_probe; DROP PUBLICATION {PUB};""")
    if m.rc == 0:
        return True, True, "pgstream exited 0 on a wal2json slot"
    return False, True, f"pgstream on a wal2json slot: {m.note or 'exit ' + str(m.rc)}"


def run_workload(name, size, args, cl, runner, active, pgstream):
    builder, _, desc = WORKLOADS[name]
    ddl, sql = builder(size, args.tx_size)
    cl.psql(f"DROP TABLE IF EXISTS {TABLE}; DROP SEQUENCE IF EXISTS bench_id_seq; "
            f"DROP PUBLICATION IF EXISTS {PUB};\n"
            + ";\n".join(ddl) + f";\nCREATE PUBLICATION {PUB} FOR TABLE {TABLE};\nCHECKPOINT;")
    slots = {}
    create = []
    for rep in range(args.reps):
        for key in active:
            slot = f"{name}_{key}_{rep}"
            slots[(key, rep)] = slot
            create.append(
                f"SELECT pg_create_logical_replication_slot('{slot}', '{CONSUMERS[key][1]}');")
    cl.psql("\n".join(create))
    start_lsn = cl.psql("SELECT pg_current_wal_insert_lsn();").strip()
    log(f"[{name}] workload: {desc.format(n=f'{size:,}', tx=f'{args.tx_size:,}')}")
    t0 = time.monotonic()
    _, notices = cl.psql(sql, notices=True)
    gen_s = time.monotonic() - t0
    mt = re.search(r"bench_changes=(\d+)", notices)
    if not mt:
        raise BenchError(f"workload {name} reported no change count: {notices}")
    changes = int(mt.group(1))
    end_lsn = cl.psql("SELECT pg_current_wal_flush_lsn();").strip()
    wal_mb = float(cl.psql(f"SELECT pg_wal_lsn_diff('{end_lsn}', '{start_lsn}') / 1e6;"))
    log(f"[{name}] {changes:,} changes, {wal_mb:,.0f} MB of WAL, written in {gen_s:.1f} s; "
        f"draining to {end_lsn}")
    timeout = args.timeout or max(300, 60 + changes // 2000)
    res = {k: [] for k in active}
    for rep in range(args.reps):
        order = active[rep % len(active):] + active[: rep % len(active)]
        for key in order:
            cmd = consumer_cmd(key, slots[(key, rep)], end_lsn, pgstream, cl.bindir)
            m = runner.run(cmd, timeout=timeout, pipe_to_wc=(key == "pgs_wc"))
            extra = ""
            if key == "pgs_wc":
                ok = m.count == changes
                m.note = (m.note + "; " if m.note else "") + (
                    f"count {m.count:,} ok" if ok else
                    f"COUNT MISMATCH: {m.count} lines, {changes} changes")
                extra = f", {m.count} lines ({'ok' if ok else 'MISMATCH, expected ' + str(changes)})"
            status = "" if m.rc == 0 else f"  FAILED: {m.note}"
            log(f"[{name}] rep {rep + 1}/{args.reps} {CONSUMERS[key][0].replace(chr(92), ''):28s} "
                f"{m.wall:7.2f} s wall, {m.cpu:6.2f} s CPU, {m.rss_kb / 1024:6.1f} MB{extra}{status}")
            res[key].append(m)
    cl.psql("\n".join(f"SELECT pg_drop_replication_slot('{s}');" for s in slots.values())
            + f"\nDROP TABLE {TABLE}; DROP PUBLICATION {PUB}; CHECKPOINT;")
    cmds = {k: display_cmd(consumer_cmd(k, f"{name}_{k}_N", "<LSN>", "pgstream", cl.bindir))
            for k in active}
    return dict(name=name, size=size, desc=desc, changes=changes, wal_mb=wal_mb,
                gen_s=gen_s, res=res, cmds=cmds)


# --------------------------------------------------------------------------
# Snapshot (issue 5): existing rows, copied by pgstream --snapshot and by psql.
# --------------------------------------------------------------------------


def snap_tables(big, small, nsmall):
    return [("snap_big", big)] + [(f"snap_small_{i}", small) for i in range(1, nsmall + 1)]


def snap_pgs_cmd(pgstream, slot, pool):
    return [pgstream, "-d", "postgres", "-S", slot, "--publication", PUB, "--snapshot",
            "--pool-size", str(pool), "--end-lsn", "now", "-q"]


def snap_bf_cmd(pgstream, slot, ntables):
    """pgstream --backfill of the snapshot tables on a new slot, stopped (by
    the pipe closing) once every table's backfill_done came out."""
    run = (f"{shlex.quote(pgstream)} -d postgres -S {slot} --publication {PUB} "
           f"--backfill 'snap_*' -q")
    # Not awk (mawk fills its read buffer before it looks) nor grep -m (GNU
    # grep writing to /dev/null stops reading at the first match).
    stop = (f"python3 -c 'import sys\nn = 0\nfor l in sys.stdin:\n"
            f"    n += \"\\\"backfill_done\\\"\" in l\n    if n == {ntables}: break'")
    return ["sh", "-c", f"{run} | {stop}"]


def snap_psql_cmd(psql, tables):
    cmd = [psql, "-X", "-q", "-d", "postgres"]
    for t, _ in tables:
        cmd += ["-c", f"\\copy {t} to stdout"]
    return cmd


def snap_drop_slot(cl, pgstream, slot):
    """Drops the slot (and the snapshot marker) with pgstream --drop-slot; SQL
    as a fallback, so that a failed run never leaves a slot behind."""
    subprocess.run([pgstream, "-d", "postgres", "-S", slot, "--drop-slot", "-q"], env=cl.env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    left = cl.psql(f"SELECT slot_name FROM pg_replication_slots WHERE slot_name IN "
                   f"('{slot}', '{slot}_pgstream_snapshot');").split()
    if left:
        log(f"[snapshot] pgstream --drop-slot left {', '.join(left)}; dropping with SQL")
        cl.psql("\n".join(f"SELECT pg_drop_replication_slot('{s}');" for s in left))


def run_snapshot(big, small, nsmall, pools, args, cl, runner, pgstream):
    tables = snap_tables(big, small, nsmall)
    names = [t for t, _ in tables]
    psql = str(Path(cl.bindir) / "psql")
    desc = SNAP_DESC.format(big=f"{big:,}", small=f"{small:,}", k=nsmall)
    log(f"[snapshot] workload: {desc}")
    t0 = time.monotonic()
    sql = [f"DROP PUBLICATION IF EXISTS {PUB};"]
    for t, n in tables:
        sql.append(f"DROP TABLE IF EXISTS {t};\nCREATE TABLE {t} {BASE_COLS};\n"
                   f"INSERT INTO {t} SELECT {BASE_ROW} FROM generate_series(1, {n}) g;")
    sql.append(f"CREATE PUBLICATION {PUB} FOR TABLE {', '.join(names)};")
    # Freeze (hint bits set, visibility map) so that no copy pays for the first
    # read of fresh tuples; statistics for pgstream's row estimate.
    sql += [f"VACUUM (FREEZE, ANALYZE) {t};" for t in names]
    sql.append("CHECKPOINT;")
    cl.psql("\n".join(sql))
    gen_s = time.monotonic() - t0
    rows = int(cl.psql(" + ".join(f"(SELECT count(*) FROM {t})" for t in names).join(
        ["SELECT ", ";"])))
    data_mb = float(cl.psql("SELECT (" + " + ".join(
        f"pg_table_size('{t}')" for t in names) + ") / 1e6;"))
    log(f"[snapshot] {rows:,} rows in {len(tables)} tables, {data_mb:,.0f} MB of table data, "
        f"written in {gen_s:.1f} s")
    timeout = args.timeout or max(300, 60 + rows // 2000)
    keys = [f"pgs_p{n}" for n in pools] + ["pgs_bf", "psql"]
    labels = {f"pgs_p{n}": f"pgstream --snapshot --pool-size {n}" for n in pools}
    labels["pgs_bf"] = "pgstream --backfill (chunks of 10000)"
    labels["psql"] = f"psql \\copy × {len(tables)}, one after another"
    seq = [0]

    def run_one(key, wc=False):
        if key == "psql":
            return runner.run(snap_psql_cmd(psql, tables), timeout=timeout, pipe_to_wc=wc,
                              wc_flags=("-lc",))
        seq[0] += 1
        slot = f"snap_{key}_{seq[0]}"
        cmd = (snap_bf_cmd(pgstream, slot, len(tables)) if key == "pgs_bf"
               else snap_pgs_cmd(pgstream, slot, int(key[len("pgs_p"):])))
        try:
            return runner.run(cmd, timeout=timeout, pipe_to_wc=wc, wc_flags=("-lc",))
        finally:
            snap_drop_slot(cl, pgstream, slot)

    # Once each, into `wc -lc`: the line count must be the row count (also a
    # warm-up of the page cache for the timed runs).
    checks = {}
    for key in [keys[-3] if len(keys) > 2 else keys[0], "psql"]:
        m = run_one(key, wc=True)
        ok = m.rc == 0 and m.count == rows
        out_mb = m.counts[1] / 1e6 if len(m.counts) > 1 else None
        m.note = (m.note + "; " if m.note else "") + (
            f"line count {m.count:,} = rows" if ok else
            f"LINE COUNT MISMATCH: {m.count} lines, {rows:,} rows")
        checks[key] = dict(m=m, ok=ok, out_mb=out_mb)
        log(f"[snapshot] check {labels[key]:40s} | wc -lc: {m.count} lines "
            f"({'ok' if ok else 'MISMATCH, expected ' + str(rows)}), "
            f"{fmt(out_mb, ',.1f')} MB, {m.wall:.2f} s"
            + ("" if m.rc == 0 else f"  FAILED: {m.note}"))
    res = {k: [] for k in keys}
    for rep in range(args.reps):
        order = keys[rep % len(keys):] + keys[: rep % len(keys)]
        for key in order:
            m = run_one(key)
            status = "" if m.rc == 0 else f"  FAILED: {m.note}"
            log(f"[snapshot] rep {rep + 1}/{args.reps} {labels[key]:40s} "
                f"{m.wall:7.2f} s wall, {m.cpu:6.2f} s CPU, {m.rss_kb / 1024:6.1f} MB{status}")
            res[key].append(m)
    cl.psql(f"DROP PUBLICATION {PUB};\n" + "\n".join(f"DROP TABLE {t};" for t in names)
            + "\nCHECKPOINT;")
    cmds = {k: display_cmd(snap_pgs_cmd("pgstream", "snap_N", int(k[len("pgs_p"):])))
            for k in keys if k.startswith("pgs_p")}
    cmds["pgs_bf"] = snap_bf_cmd("pgstream", "snap_N", len(tables))[2]
    cmds["psql"] = display_cmd(snap_psql_cmd("psql", tables))
    return dict(name=SNAPSHOT, big=big, small=small, nsmall=nsmall, tables=len(tables),
                rows=rows, data_mb=data_mb, gen_s=gen_s, desc=desc, keys=keys, labels=labels,
                res=res, checks=checks, cmds=cmds)


def snapshot_rows(sn):
    rows = []
    ref = sn["res"].get("psql", [])
    rw, rc = med(ref, "wall"), med(ref, "cpu")
    pgs_out = next((c["out_mb"] for k, c in sn["checks"].items() if k != "psql"), None)
    for key in sn["keys"]:
        ms = sn["res"][key]
        label = sn["labels"][key]
        ok = [m for m in ms if m.rc == 0]
        chk = sn["checks"].get(key)
        out_mb = chk["out_mb"] if chk else (pgs_out if key != "psql" else None)
        notes = []
        if chk:
            notes.append(f"`\\| wc -lc` once: {chk['m'].note}")
        if not ok:
            rows.append([label, f"{sn['rows']:,}", "FAILED", "—", "—", "—", fmt(out_mb, ",.1f"),
                         "—", "—", "; ".join(notes + [ms[0].note if ms else "not run"])])
            continue
        wall, cpu, rss = med(ms, "wall"), med(ms, "cpu"), med(ms, "rss_kb")
        spread = f"{min(m.wall for m in ok):.2f}–{max(m.wall for m in ok):.2f}"
        bad = [m for m in ms if m.rc != 0]
        if bad:
            notes.append(f"{len(bad)}/{len(ms)} runs failed: {bad[0].note}")
        r_rate = r_cpu = "—"
        if key != "psql":
            if rw:
                r_rate = f"{rw / wall:.2f}×"
            if rc:
                r_cpu = f"{cpu / rc:.2f}×"
        rows.append([label, f"{sn['rows']:,}", f"{wall:.2f} ({spread})",
                     f"{sn['rows'] / wall / 1000:,.0f}k", f"{cpu:.2f}", f"{rss / 1024:.1f}",
                     fmt(out_mb, ",.1f"), r_rate, r_cpu, "; ".join(notes)])
    return rows


def snapshot_md(sn, args):
    if not sn:
        return ("(not run in this invocation; `--workloads snapshot` or the default set "
                "runs it)")
    who = " and ".join(f"`{sn['labels'][k]}`" for k in sn["checks"])
    chk = ("equal in both" if all(c["ok"] for c in sn["checks"].values()) else
           "**MISMATCH**: " + ", ".join(f"{sn['labels'][k]}: {c['m'].count} lines"
                                       for k, c in sn["checks"].items() if not c["ok"]))
    cmds = "\n".join(f"    {c}" for c in sn["cmds"].values())
    return f"""The {sn['tables']} tables of the snapshot workload ({sn['rows']:,} rows,
{sn['data_mb']:,.0f} MB of table data) exist before any slot; they are frozen with
`VACUUM (FREEZE, ANALYZE)`, then `CHECKPOINT`, before any copy. Every pgstream run creates a new slot with `--snapshot` and
`--end-lsn now`: it copies the published tables over `--pool-size` connections (biggest
table first), writes them as `read` JSON lines to /dev/null and exits; the slot and its
snapshot marker are dropped with `pgstream --drop-slot` after each run, outside the timing.
psql is one process and one connection running `\\copy` of each table one after another
(text COPY) to /dev/null. {args.reps} repetitions, order rotated each repetition; medians.
Wall time is the process from start to exit (pgstream's includes creating the slot); CPU
and peak RSS as above. rows/s ÷ psql is psql's median wall over pgstream's: above 1.00×
pgstream is faster. Before the timed runs, {who}
ran once each into `wc -lc` (not in the medians; they also warm the page cache): line
count against `count(*)` of the tables ({chk}); output MB is that run's byte count
(pgstream writes JSON lines with keys and `snapshot_lsn`, psql COPY text).

{md_table(SNAP_HEADER, snapshot_rows(sn))}

Commands (`-d postgres` via PGHOST/PGPORT/PGUSER; slot `snap_N` new each run):

{cmds}"""


SNAP_HEADER = ["consumer", "rows", "wall s median (min–max)", "rows/s", "client CPU s",
               "peak RSS MB", "output MB", "rows/s ÷ psql", "CPU ÷ psql", "notes"]


# --------------------------------------------------------------------------
# Instructions per change (issue 18)
# --------------------------------------------------------------------------


def callgrind_totals(path):
    """The total instruction count (Ir, every thread) of a callgrind out file."""
    for line in Path(path).read_text(errors="replace").splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    return None


def callgrind_top(path, n=8):
    """The n functions with the most instructions of their own, as
    (share %, name), from callgrind_annotate."""
    r = subprocess.run(["callgrind_annotate", "--inclusive=no", str(path)],
                       capture_output=True, text=True)
    top = []
    for line in r.stdout.splitlines():
        m = re.match(r"\s*([\d,]+) \(\s*([\d.]+)%\)\s+(\S.*)$", line)
        if m and "PROGRAM TOTALS" not in line:
            # "path/file.rs:function [object]" -> "function"
            name = re.sub(r" \[[^]]*\]$", "", m.group(3))
            top.append((float(m.group(2)), re.sub(r"^\S*?\.(rs|S|c|h):", "", name)))
        if len(top) == n:
            break
    return top


def run_callgrind(size, args, cl, runner, active, pgstream, valgrind):
    """Drains one backlog per consumer under callgrind: instructions per change."""
    ddl, sql = wl_inserts(size, args.tx_size, CALLGRIND_ROW)
    cl.psql(f"DROP TABLE IF EXISTS {TABLE}; DROP PUBLICATION IF EXISTS {PUB};\n"
            + ";\n".join(ddl) + f";\nCREATE PUBLICATION {PUB} FOR TABLE {TABLE};")
    keys = [k for k in active if k != "pgs_wc"]
    cl.psql("\n".join(f"SELECT pg_create_logical_replication_slot('cg_{k}', '{CONSUMERS[k][1]}');"
                      for k in keys))
    desc = CALLGRIND_DESC.format(n=f"{size:,}", tx=f"{args.tx_size:,}")
    log(f"[{CALLGRIND}] workload: {desc}")
    _, notices = cl.psql(sql, notices=True)
    mt = re.search(r"bench_changes=(\d+)", notices)
    if not mt:
        raise BenchError(f"workload {CALLGRIND} reported no change count: {notices}")
    changes = int(mt.group(1))
    end_lsn = cl.psql("SELECT pg_current_wal_flush_lsn();").strip()
    res, cmds = {}, {}
    for key in keys:
        out = Path(args.workdir) / f"callgrind.{key}.out"
        cmd = consumer_cmd(key, f"cg_{key}", end_lsn, pgstream, cl.bindir)
        if key.startswith("pgs"):
            cmd[cmd.index("--end-lsn") + 1] = "now"
        vg = [valgrind, "--tool=callgrind", f"--callgrind-out-file={out}"]
        m = runner.run(vg + cmd, timeout=args.timeout or max(900, changes // 100))
        ir = callgrind_totals(out) if m.rc == 0 and out.exists() else None
        r = dict(m=m, ir=ir, top=callgrind_top(out) if ir and key.startswith("pgs") else [])
        res[key] = r
        shown = consumer_cmd(key, f"cg_{key}", "<LSN>", "pgstream", cl.bindir)
        if key.startswith("pgs"):
            shown[shown.index("--end-lsn") + 1] = "now"
        cmds[key] = "valgrind --tool=callgrind " + display_cmd(shown)
        log(f"[{CALLGRIND}] {CONSUMERS[key][0]:28s} "
            + (f"{ir:,} instructions, {ir / changes:,.0f} per change" if ir else
               f"FAILED: {m.note or 'no callgrind totals'}"))
    cl.psql("\n".join(f"SELECT pg_drop_replication_slot('cg_{k}');" for k in keys)
            + f"\nDROP TABLE {TABLE}; DROP PUBLICATION {PUB}; CHECKPOINT;")
    return dict(size=size, desc=desc, changes=changes, res=res, cmds=cmds, keys=keys)


def callgrind_rows(cg):
    rows = []
    for key in cg["keys"]:
        label, _, ref = CONSUMERS[key]
        r = cg["res"][key]
        if not r["ir"]:
            rows.append([label, f"{cg['changes']:,}", "FAILED", "—", "—", r["m"].note])
            continue
        ratio = "—"
        if ref and cg["res"].get(ref, {}).get("ir"):
            ratio = f"{r['ir'] / cg['res'][ref]['ir']:.1f}×"
        rows.append([label, f"{cg['changes']:,}", f"{r['ir']:,}",
                     f"{r['ir'] / cg['changes']:,.0f}", ratio, ""])
    return rows


CG_HEADER = ["consumer", "changes", "instructions (Ir)", "per change", "÷ pg_recvlogical",
             "notes"]


def callgrind_md(cg, why_not):
    if not cg:
        return why_not
    cmds = "\n".join(f"    {c}" for c in cg["cmds"].values())
    tops = []
    for key in cg["keys"]:
        if cg["res"][key]["top"]:
            funcs = ", ".join(f"`{name}` {pct:.1f} %" for pct, name in cg["res"][key]["top"])
            tops.append(f"- {CONSUMERS[key][0]}: {funcs}")
    return f"""Every instruction the consumer process executes (all threads), counted by
`valgrind --tool=callgrind`, divided by the changes drained: {cg['desc']}. The counts
hardly move on a busy machine, so they show what a change costs pgstream's own code.
Output to /dev/null; one run per consumer.

{md_table(CG_HEADER, callgrind_rows(cg))}

Where the instructions go (self cost, from `callgrind_annotate --inclusive=no`):

{chr(10).join(tops)}

Commands (slot `cg_<consumer>`):

{cmds}"""


# --------------------------------------------------------------------------
# Latency
# --------------------------------------------------------------------------


def parse_ts(s):
    return dt.datetime.fromisoformat(s).timestamp()


def latency_run(key, args, cl, pgstream):
    label = {"pgs_pgo": "pgstream pgoutput", "pgs_w2j": "pgstream wal2json",
             "rl_w2j": "pg_recvlogical wal2json (-f -)"}[key]
    plugin = "wal2json" if key.endswith("w2j") else "pgoutput"
    slot = f"lat_{key}"
    cl.psql(f"DROP TABLE IF EXISTS {TABLE}; DROP SEQUENCE IF EXISTS bench_id_seq; "
            f"DROP PUBLICATION IF EXISTS {PUB};\n{BASE_DDL};\nCREATE SEQUENCE bench_id_seq;\n"
            f"CREATE PUBLICATION {PUB} FOR TABLE {TABLE};\n"
            f"SELECT pg_create_logical_replication_slot('{slot}', '{plugin}');")
    if key == "pgs_pgo":
        cmd = [pgstream, "-d", "postgres", "-S", slot, "--publication", PUB, "-q"]
    elif key == "pgs_w2j":
        cmd = [pgstream, "-d", "postgres", "-S", slot, "-P", "wal2json", "--publication", PUB, "-q"]
    else:
        cmd = [str(Path(cl.bindir) / "pg_recvlogical"), "-d", "postgres", "-S", slot, "--start"]
        for o in W2J_OPTS + [f"add-tables=public.{TABLE}"]:
            cmd += ["-o", o]
        cmd += ["-f", "-"]
    arrivals = []
    errf = open(Path(args.workdir) / f"lat_{key}.stderr", "wb")
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errf, env=cl.env,
                         start_new_session=True)

    def reader():
        for line in p.stdout:
            arrivals.append((time.time(), line))

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    result = dict(label=label, cmd=display_cmd(cmd), n=0, note="")
    try:
        for _ in range(300):
            if cl.psql(f"SELECT active FROM pg_replication_slots WHERE slot_name = '{slot}';"
                       ).strip() == "t" or p.poll() is not None:
                break
            time.sleep(0.1)
        if p.poll() is not None:
            result["note"] = f"consumer exited {p.returncode} before the load"
            return result
        time.sleep(1.0)
        script = Path(args.workdir) / "latency.sql"
        script.write_text(
            f"INSERT INTO {TABLE} (id, a, b, c, d, e, f) VALUES (nextval('bench_id_seq'), "
            "1, 'latency', clock_timestamp(), 1.5, '{\"k\": 1}', true);\n")
        pgbench = Path(cl.bindir) / "pgbench"
        if pgbench.exists():
            subprocess.run([str(pgbench), "-n", "-c", "1", "-j", "1", "-R", str(args.latency_rate),
                            "-T", str(args.latency_seconds), "-f", str(script), "postgres"],
                           env=cl.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        else:  # paced psql: one statement every 1/rate s
            q = subprocess.Popen([str(Path(cl.bindir) / "psql"), "-X", "-q"], stdin=subprocess.PIPE,
                                 stdout=subprocess.DEVNULL, env=cl.env, text=True)
            stmt = script.read_text()
            t0 = time.monotonic()
            n = int(args.latency_rate * args.latency_seconds)
            for i in range(n):
                delay = t0 + i / args.latency_rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                q.stdin.write(stmt)
                q.stdin.flush()
            q.stdin.close()
            q.wait()
        expected = int(cl.psql(f"SELECT count(*) FROM {TABLE};"))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if count_inserts(key, arrivals) >= expected:
                break
            time.sleep(0.05)
    finally:
        try:
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(timeout=15)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            kill_group(p)
        th.join(timeout=5)
        errf.close()
        cl.psql(f"SELECT pg_drop_replication_slot('{slot}');\nDROP TABLE {TABLE}; "
                f"DROP SEQUENCE bench_id_seq; DROP PUBLICATION {PUB};")
    lats = []
    for t, line in list(arrivals):
        try:
            obj = json.loads(line)
            if key.startswith("pgs"):
                if obj.get("op") != "insert":
                    continue
                c = obj["new"]["c"]
            else:
                if obj.get("action") != "I":
                    continue
                c = next(col["value"] for col in obj["columns"] if col["name"] == "c")
            lats.append((t - parse_ts(c)) * 1000.0)
        except (ValueError, KeyError, StopIteration, TypeError):
            continue
    result["n"] = len(lats)
    result["expected"] = expected
    if p.returncode not in (0, None) and key.startswith("pgs"):
        result["note"] = f"pgstream exited {p.returncode} on SIGTERM"
    if lats:
        lats.sort()
        result.update(p50=pct(lats, 50), p99=pct(lats, 99), max=lats[-1],
                      mean=statistics.fmean(lats))
    return result


def count_inserts(key, arrivals):
    if key.startswith("pgs"):
        return len(arrivals)
    return sum(1 for _, l in list(arrivals) if l.startswith(b'{"action":"I"'))


def pct(sorted_vals, p):
    k = max(0, math.ceil(p / 100 * len(sorted_vals)) - 1)
    return sorted_vals[k]


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------


def med(ms, attr):
    vals = [getattr(m, attr) for m in ms if m.rc == 0]
    return statistics.median(vals) if vals else None


def fmt(v, spec=".2f", none="—"):
    return none if v is None else format(v, spec)


def table_rows(wl, w2j_supported, w2j_installed):
    rows = []
    for key in ["rl_pgo", "pgs_pgo", "pgs_met", "pgs_wc", "rl_w2j", "pgs_w2j"]:
        label, plugin, ref = CONSUMERS[key]
        ms = wl["res"].get(key)
        if key == "pgs_w2j" and not w2j_supported:
            why = "n/a (not supported yet)" if w2j_installed else "n/a (wal2json not installed)"
            rows.append([wl["name"], f"{wl['changes']:,}", label, why, "—", "—", "—", "—", "—", ""])
            continue
        if key == "rl_w2j" and not w2j_installed:
            rows.append([wl["name"], f"{wl['changes']:,}", label, "n/a (wal2json not installed)",
                         "—", "—", "—", "—", "—", ""])
            continue
        if not ms:
            continue
        ok = [m for m in ms if m.rc == 0]
        wall = med(ms, "wall")
        if not ok:
            rows.append([wl["name"], f"{wl['changes']:,}", label, "FAILED", "—", "—", "—", "—", "—",
                         ms[0].note])
            continue
        spread = f"{min(m.wall for m in ok):.2f}–{max(m.wall for m in ok):.2f}"
        cpu, rss = med(ms, "cpu"), med(ms, "rss_kb")
        r_wall = r_cpu = "—"
        if ref and wl["res"].get(ref):
            rw, rc = med(wl["res"][ref], "wall"), med(wl["res"][ref], "cpu")
            if rw:
                r_wall = f"{wall / rw:.2f}×"
            if rc:
                r_cpu = f"{cpu / rc:.2f}×"
        notes = []
        bad = [m for m in ms if m.rc != 0]
        if bad:
            notes.append(f"{len(bad)}/{len(ms)} runs failed: {bad[0].note}")
        if key == "pgs_wc":
            counts = {m.count for m in ms}
            if counts == {wl["changes"]}:
                notes.append(f"line count = changes in {len(ms)}/{len(ms)} runs")
            else:
                notes.append(f"LINE COUNT MISMATCH: {sorted(c for c in counts if c is not None)} "
                             f"≠ {wl['changes']}")
        rows.append([wl["name"], f"{wl['changes']:,}", label, f"{wall:.2f} ({spread})",
                     f"{wl['changes'] / wall / 1000:,.0f}k", f"{cpu:.2f}", f"{rss / 1024:.1f}",
                     r_wall, r_cpu, "; ".join(notes)])
    return rows


def md_table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def targets(wls, lat, w2j_supported):
    by = {w["name"]: w for w in wls}
    out = []

    def verdict(ok):
        return "met" if ok else "**not met**"

    ins = by.get("inserts")
    if ins:
        r = ins["res"]
        pw, rw = med(r.get("pgs_pgo", []), "wall"), med(r.get("rl_pgo", []), "wall")
        pc, prss = med(r.get("pgs_pgo", []), "cpu"), med(r.get("pgs_pgo", []), "rss_kb")
        n = ins["changes"]
        if pw and rw:
            out.append(f"- Wall ≤ 1.05 × pg_recvlogical pgoutput ({n:,} inserts): "
                       f"{pw:.2f} s vs {rw:.2f} s = {pw / rw:.2f}× — {verdict(pw <= 1.05 * rw)}")
        if pc is not None:
            per_m = pc / (n / 1e6)
            out.append(f"- Client CPU ≤ 1.0 s per million changes: {per_m:.2f} s/M — "
                       f"{verdict(per_m <= 1.0)}")
        if prss is not None:
            line = f"- Peak RSS ≤ 20 MB: {prss / 1024:.1f} MB with {args_tx(ins)}-row transactions"
            big = by.get("onetx")
            ok = prss / 1024 <= 20
            if big and med(big["res"].get("pgs_pgo", []), "rss_kb"):
                brss = med(big["res"]["pgs_pgo"], "rss_kb")
                line += f", {brss / 1024:.1f} MB with one {big['changes']:,}-row transaction"
                ok = ok and brss / 1024 <= 20
            out.append(line + f" — {verdict(ok)}")
        if w2j_supported:
            pw2, rw2 = med(r.get("pgs_w2j", []), "wall"), med(r.get("rl_w2j", []), "wall")
            if pw2 and rw2:
                out.append(f"- wal2json wall ≤ 1.1 × pg_recvlogical wal2json: {pw2:.2f} s vs "
                           f"{rw2:.2f} s = {pw2 / rw2:.2f}× — {verdict(pw2 <= 1.1 * rw2)}")
        else:
            out.append("- wal2json wall ≤ 1.1 × pg_recvlogical wal2json: n/a (pgstream does not "
                       "support wal2json yet)")
    for l in lat:
        if l["label"] == "pgstream pgoutput" and "p99" in l:
            out.append(f"- Latency p99 ≤ 10 ms: {l['p99']:.1f} ms — {verdict(l['p99'] <= 10)}")
    return out


def callgrind_targets(cg):
    """Issue 18: at most 2,000 instructions per change on pgoutput; wal2json
    cut in proportion (printed against its count before, 12,500 → 2,000)."""
    if not cg:
        return []
    out = []
    for key, goal in (("pgs_pgo", 2000), ("pgs_w2j", None)):
        ir = cg["res"].get(key, {}).get("ir")
        if not ir:
            continue
        per = ir / cg["changes"]
        if goal:
            out.append(f"- Instructions per change ≤ {goal:,} (pgoutput, callgrind): {per:,.0f} — "
                       f"{'met' if per <= goal else '**not met**'}")
        else:
            out.append(f"- Instructions per change, wal2json (callgrind): {per:,.0f}")
    return out


def args_tx(wl):
    return f"{ARGS.tx_size:,}"


def loadavg():
    try:
        return open("/proc/loadavg").read().split()[0]
    except (OSError, IndexError):
        return "?"


def machine_info():
    def sh(c):
        try:
            return subprocess.run(c, capture_output=True, text=True, shell=True).stdout.strip()
        except Exception:
            return "?"
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = sh("free -h | awk '/^Mem:/ {print $2}'")
    return dict(nproc=sh("nproc"), mem=mem, kernel=sh("uname -r"), cpu=cpu,
                os=platform.platform())


# --------------------------------------------------------------------------


def main():
    global ARGS
    ap = argparse.ArgumentParser(
        description="pgstream vs pg_recvlogical on a throwaway PostgreSQL (issue 8), "
        "and pgstream --snapshot vs psql \\copy (issue 5). "
        "Prints a table and writes bench/RESULTS.md; never fails on slow numbers.")
    ap.add_argument("--pgstream", default=str(REPO / "target" / "release" / "pgstream"),
                    help="pgstream binary (default: target/release/pgstream)")
    ap.add_argument("--workloads", default=",".join(ALL_WORKLOADS),
                    help=f"comma-separated subset of {','.join(ALL_WORKLOADS)} (default: all)")
    ap.add_argument("--reps", type=int, default=3, help="repetitions per consumer (default 3)")
    for name, (_, size, desc) in WORKLOADS.items():
        ap.add_argument(f"--{name}", type=int, default=None, metavar="N",
                        help=f"size of '{name}' (default {size:,}): "
                        + desc.format(n="N", tx="--tx-size").replace("%", "%%"))
    ap.add_argument(f"--{SNAPSHOT}", type=int, default=None, metavar="N",
                    help=f"rows of the big table of '{SNAPSHOT}' (default {SNAP_BIG_DEFAULT:,}); "
                    f"see --snapshot-small")
    ap.add_argument(f"--{CALLGRIND}", type=int, default=None, metavar="N",
                    help=f"inserts drained under callgrind (default {CALLGRIND_DEFAULT:,}); "
                    "skipped when valgrind is not installed")
    ap.add_argument("--snapshot-small", type=int, default=None, metavar="N",
                    help=f"rows of each of the {SNAP_SMALL_TABLES} smaller tables of "
                    f"'{SNAPSHOT}' (default {SNAP_SMALL_DEFAULT:,})")
    ap.add_argument("--snapshot-tables", type=int, default=SNAP_SMALL_TABLES, metavar="K",
                    help=f"number of smaller tables in '{SNAPSHOT}' (default {SNAP_SMALL_TABLES})")
    ap.add_argument("--pool-sizes", default="1,4",
                    help="comma-separated pgstream --pool-size values timed in "
                    f"'{SNAPSHOT}' (default 1,4)")
    ap.add_argument("--scale", type=float, default=1.0,
                    help="multiply every default size (e.g. 0.01 for a smoke run)")
    ap.add_argument("--tx-size", type=int, default=1000, help="rows per transaction (default 1000)")
    ap.add_argument("--latency-rate", type=int, default=500,
                    help="single-row commits per second in the latency test (default 500)")
    ap.add_argument("--latency-seconds", type=int, default=10,
                    help="duration of the latency load (default 10)")
    ap.add_argument("--no-latency", action="store_true", help="skip the latency test")
    ap.add_argument("--timeout", type=int, default=0,
                    help="seconds before one drain is killed (default: from the size, ≥ 300)")
    ap.add_argument("--output", default=str(REPO / "bench" / "RESULTS.md"),
                    help="results file, overwritten (default bench/RESULTS.md; '-' for none)")
    args = ap.parse_args()
    ARGS = args
    wanted = [w.strip() for w in args.workloads.split(",") if w.strip()]
    for w in wanted:
        if w not in ALL_WORKLOADS:
            ap.error(f"unknown workload {w!r}; choose from {', '.join(ALL_WORKLOADS)}")
    sizes = {}
    for w in wanted:
        if w in (SNAPSHOT, CALLGRIND):
            continue
        v = getattr(args, w)
        sizes[w] = v if v is not None else max(1, int(WORKLOADS[w][1] * args.scale))
    pgstream = str(Path(args.pgstream).resolve())
    if not os.access(pgstream, os.X_OK):
        ap.error(f"{pgstream} is not an executable; run `cargo build --release` first")
    if args.reps < 1:
        ap.error("--reps must be ≥ 1")
    snap_big = args.snapshot if args.snapshot is not None else max(
        1, int(SNAP_BIG_DEFAULT * args.scale))
    snap_small = args.snapshot_small if args.snapshot_small is not None else max(
        1, int(SNAP_SMALL_DEFAULT * args.scale))
    try:
        pools = [int(x) for x in args.pool_sizes.split(",") if x.strip()]
    except ValueError:
        ap.error("--pool-sizes takes comma-separated integers")
    if not pools or any(not 1 <= n <= 64 for n in pools) or len(set(pools)) != len(pools):
        ap.error("--pool-sizes: distinct values from 1 to 64")
    cg_size = args.callgrind if args.callgrind is not None else max(
        1, int(CALLGRIND_DEFAULT * args.scale))
    if args.snapshot_tables < 0 or snap_big < 1 or snap_small < 1:
        ap.error("snapshot sizes must be ≥ 1 (and --snapshot-tables ≥ 0)")

    t_start = time.monotonic()
    load0 = loadavg()
    started_at = dt.datetime.now(dt.timezone.utc)
    workdir = tempfile.mkdtemp(prefix="pgsb-work.", dir="/tmp")
    args.workdir = workdir
    cl = Cluster(args)

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        time_bin = find_time()
        cl.start()
        settings = cl.configure(nslots=len(CONSUMERS) * args.reps + 2)
        runner = Runner(workdir, cl.env, time_bin)
        version = cl.psql("SELECT version();").strip()
        pgs_version = subprocess.run([pgstream, "--version"], capture_output=True,
                                     text=True).stdout.strip()
        log(f"bench: {version}")
        log(f"bench: {pgs_version} ({pgstream})")
        w2j_supported, w2j_installed, probe_note = probe_wal2json(cl, pgstream, runner)
        log(f"bench: pgstream wal2json support: {'yes' if w2j_supported else 'no'} ({probe_note})")
        active = ["rl_pgo", "pgs_pgo", "pgs_met", "pgs_wc"]
        if w2j_installed:
            active.append("rl_w2j")
        if w2j_supported:
            active.append("pgs_w2j")
        wls = []
        for w in wanted:
            if w not in (SNAPSHOT, CALLGRIND):
                wls.append(run_workload(w, sizes[w], args, cl, runner, active, pgstream))
        snap = None
        if SNAPSHOT in wanted:
            snap = run_snapshot(snap_big, snap_small, args.snapshot_tables, pools, args, cl,
                                runner, pgstream)
        cg, cg_why = None, "(not run in this invocation; `--workloads callgrind` runs it)"
        if CALLGRIND in wanted:
            valgrind = shutil.which("valgrind")
            if valgrind:
                cg = run_callgrind(cg_size, args, cl, runner, active, pgstream, valgrind)
            else:
                cg_why = "n/a: valgrind is not installed (`make deps` installs it as root)"
                log(f"bench: {cg_why}")
        lat = []
        if not args.no_latency:
            keys = ["pgs_pgo"] + (["pgs_w2j"] if w2j_supported else []) + (
                ["rl_w2j"] if w2j_installed else [])
            for k in keys:
                log(f"[latency] {k}: {args.latency_rate} commits/s for {args.latency_seconds} s")
                r = latency_run(k, args, cl, pgstream)
                if "p50" in r:
                    log(f"[latency] {r['label']}: {r['n']}/{r['expected']} lines, p50 "
                        f"{r['p50']:.2f} ms, p99 {r['p99']:.2f} ms, max {r['max']:.2f} ms {r['note']}")
                else:
                    log(f"[latency] {r['label']}: no lines {r['note']}")
                lat.append(r)
            if not w2j_supported:
                lat.insert(1, dict(label="pgstream wal2json", na="n/a (not supported yet)"
                                   if w2j_installed else "n/a (wal2json not installed)"))
    except KeyboardInterrupt:
        log("bench: interrupted")
        cl.stop()
        return 130
    except BenchError as e:
        log(f"bench: {e}")
        try:
            tail = Path(cl.dir, "server.log").read_text(errors="replace").splitlines()[-15:]
            log("bench: server log tail:\n  " + "\n  ".join(tail))
        except OSError:
            pass
        cl.stop()
        return 1
    finally:
        cl.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    total_s = time.monotonic() - t_start
    load1 = loadavg()
    load_note = ""
    try:
        if max(float(load0), float(load1)) > 0.5 * (os.cpu_count() or 1):
            load_note = (" — other processes were busy on this machine during the run; "
                         "expect noisy wall times (see the min–max spread)")
    except ValueError:
        pass

    # ---- report ----
    header = ["workload", "changes", "consumer", "wall s median (min–max)", "changes/s",
              "client CPU s", "peak RSS MB", "wall ÷ pg_recvlogical", "CPU ÷ pg_recvlogical",
              "notes"]
    rows = []
    for wl in wls:
        rows += table_rows(wl, w2j_supported, w2j_installed)
    table = md_table(header, rows) if rows else "(no backlog-drain workload was run)"
    snap_table = md_table(SNAP_HEADER, snapshot_rows(snap)) if snap else ""
    lat_rows = []
    for l in lat:
        if "na" in l:
            lat_rows.append([l["label"], "—", l["na"], "—", "—", "—"])
        elif "p50" in l:
            lat_rows.append([l["label"], f"{l['n']:,} / {l['expected']:,}", f"{l['p50']:.2f}",
                             f"{l['p99']:.2f}", f"{l['max']:.2f}", l["note"]])
        else:
            lat_rows.append([l["label"], "0", "—", "—", "—", l.get("note", "")])
    lat_table = md_table(["consumer", "lines / commits", "p50 ms", "p99 ms", "max ms", "notes"],
                         lat_rows) if lat_rows else ""
    tgt = targets(wls, lat, w2j_supported) + callgrind_targets(cg)

    mi = machine_info()
    argv = " ".join(shlex.quote(a) for a in sys.argv[1:])
    made_by = f"`python3 bench/run.py {argv}`".replace(" `", "`")
    if os.environ.get("BENCH_INVOKED_AS"):
        made_by = f"`{os.environ['BENCH_INVOKED_AS']}`, which runs {made_by}"
    wl_lines = []
    for wl in wls:
        wdesc = wl["desc"].format(n=f"{wl['size']:,}", tx=f"{args.tx_size:,}")
        wl_lines.append(
            f"- **{wl['name']}**: {wdesc} "
            f"→ {wl['changes']:,} changes, {wl['wal_mb']:,.0f} MB of WAL, written in "
            f"{wl['gen_s']:.1f} s")
    if cg:
        wl_lines.append(f"- **{CALLGRIND}**: {cg['desc']} → {cg['changes']:,} changes")
    if snap:
        wl_lines.append(
            f"- **{SNAPSHOT}**: {snap['desc']} → {snap['rows']:,} rows, {snap['data_mb']:,.0f} MB "
            f"of table data, written in {snap['gen_s']:.1f} s")
    drain_cmds = ""
    cmd_lines = []
    if wls:
        for k, c in wls[0]["cmds"].items():
            cmd_lines.append(f"    {c}{' | wc -l' if k == 'pgs_wc' else ''}")
    if cmd_lines:
        drain_cmds = ("\nConsumer commands (slot `<workload>_<consumer>_<rep>`, `-d postgres` via "
                      "PGHOST/PGPORT/PGUSER):\n\n" + "\n".join(cmd_lines) + "\n")
    defaults_note = (
        "Default sizes: inserts 1,000,000 (as in issue 8); the other workloads are smaller "
        "than the issue's 1,000,000 so that the default run stays within a few minutes on "
        "2 cores: mixed 300,000 changes, onetx one transaction of 300,000 rows (use "
        "`--onetx 1000000` for the issue's size), wide 100,000 rows, toast 20,000 rows "
        "(+20,000 updates). snapshot: 1,000,000 + 3 × 100,000 rows (`--snapshot`, "
        "`--snapshot-small`, `--snapshot-tables`), adding well under a minute.")
    md = f"""# pgstream benchmark results

Produced by `make bench` (`bench/run.py`); this file is overwritten on every run.

- Date: {started_at.strftime('%Y-%m-%d %H:%M UTC')}; bench/run.py took {total_s:.0f} s
- Command: {made_by}
- Machine: {mi['nproc']} CPUs ({mi['cpu']}), {mi['mem']} RAM, Linux {mi['kernel']}
- Load average (1 min) at start / end of the run: {load0} / {load1}{load_note}
- PostgreSQL: {version}
- pgstream: {pgs_version}; wal2json support: {'yes' if w2j_supported else 'no'} ({probe_note})
- Server: throwaway cluster from `scripts/pgtemp.sh` (wal_level=logical, fsync=off,
  full_page_writes=off) plus {', '.join(f'{k}={v}' for k, v in settings.items())}
- Method: every consumer drains its own slot, created before the workload, to the
  same end LSN (the flush LSN after the workload); {args.reps} repetitions, consumer order
  rotated each repetition; medians. Wall time is the consumer process from start to exit
  (connection included); CPU (user+sys) and peak RSS are the consumer process's, from
  `{'/usr/bin/time' if time_bin else 'wait4() + VmHWM'}`. Server CPU is not counted. Ratios
  compare medians of a pgstream row with the pg_recvlogical row of the same plugin.
  The `| wc -l` row is pgstream writing into a pipe; its line count is checked against
  the change count the server reported for the workload.

## Workloads

{chr(10).join(wl_lines)}

{defaults_note}

## Backlog drain

{table}
{drain_cmds}
## Snapshot (issue 5)

{snapshot_md(snap, args)}

## Instructions per change (issue 18)

{callgrind_md(cg, cg_why)}

## Latency

Steady load: pgbench, one client, `-R {args.latency_rate}` single-row commits per second for
{args.latency_seconds} s (synchronous_commit=on), each row storing `clock_timestamp()` in
column `c`. The consumer streams live; the reader stamps each line with the wall clock
when it arrives on the consumer's stdout; latency = arrival − `c`.

{lat_table}

## Targets (issues 8 and 18)

{chr(10).join(tgt) if tgt else '(neither the inserts nor the callgrind workload was run)'}
"""
    print()
    print("## Backlog drain\n")
    print(table)
    if snap_table:
        print("\n## Snapshot (issue 5)\n")
        print(snap_table)
    if cg:
        print("\n## Instructions per change (callgrind)\n")
        print(md_table(CG_HEADER, callgrind_rows(cg)))
    if lat_table:
        print("\n## Latency\n")
        print(lat_table)
    if tgt:
        print("\n## Targets (issues 8 and 18)\n")
        print("\n".join(tgt))
    print(f"\nbench: total {total_s:.0f} s")
    if args.output != "-":
        Path(args.output).write_text(md)
        print(f"bench: wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
