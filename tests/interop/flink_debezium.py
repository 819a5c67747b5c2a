#!/usr/bin/env python3
"""A consumer that no one here wrote reads pgstream's Debezium format.

`make test-interop` runs this with PyFlink (apache-flink from PyPI, which
ships Flink's jars; it needs a JDK): on a throwaway PostgreSQL
(scripts/pgtemp.sh), a workload of inserts, updates (one of them changing
the key) and deletes goes through `pgstream --format debezium` into a file,
Flink SQL reads the file with its own `debezium-json` format, and the table
that Flink materialises from that changelog must equal the PostgreSQL table,
as the server itself prints it. Prints one line per check and a
`N passed, N failed` line; exits 1 on any failure.

    python3 tests/interop/flink_debezium.py --pgstream target/debug/pgstream
"""

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Debezium's PostgreSQL connector needs REPLICA IDENTITY FULL for Flink
# (Flink's reader turns an update's `before` into its retraction).
SETUP = """
CREATE TABLE accounts (id int PRIMARY KEY, owner text, balance numeric(12,2), opened date,
                       seen timestamp, active bool, score float8);
ALTER TABLE accounts REPLICA IDENTITY FULL;
CREATE PUBLICATION interop FOR TABLE accounts;
"""

WORKLOAD = """
INSERT INTO accounts
  SELECT i, 'owner ' || i, i * 10.25, date '2026-01-01' + i, timestamp '2026-01-01 00:00:00.5' + i * interval '1 hour',
         i % 2 = 0, i / 3.0
  FROM generate_series(1, 200) i;
UPDATE accounts SET balance = balance + 1, owner = owner || ' (updated)' WHERE id % 3 = 0;
UPDATE accounts SET id = id + 1000 WHERE id % 10 = 0;
DELETE FROM accounts WHERE id % 7 = 0;
BEGIN;
INSERT INTO accounts VALUES (5000, 'late', NULL, NULL, NULL, NULL, 'NaN');
UPDATE accounts SET score = 'Infinity', active = NULL WHERE id = 1;
DELETE FROM accounts WHERE id = 2;
COMMIT;
UPDATE accounts SET id = 2 WHERE id = 5000;
"""

# The table as the server prints it, in the encodings Flink reads back.
EXPECTED = """
SELECT id, owner, balance::text, opened - date '1970-01-01',
       (extract(epoch FROM seen) * 1000000)::bigint, active, score::text
FROM accounts ORDER BY id
"""

FLINK_TABLE = """
CREATE TABLE accounts (
  id INT, owner STRING, balance DECIMAL(12, 2), opened INT, seen BIGINT, active BOOLEAN,
  score DOUBLE, PRIMARY KEY (id) NOT ENFORCED
) WITH ('connector' = 'filesystem', 'path' = 'file://{path}', 'format' = 'debezium-json')
"""


def run(cmd, env=None, **kw):
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, **kw)
    if out.returncode != 0:
        sys.exit(f"{shlex.join(cmd)} failed ({out.returncode}):\n{out.stderr}")
    return out.stdout


def materialise(path):
    """The rows Flink's debezium-json changelog leaves, by id."""
    from pyflink.common import RowKind
    from pyflink.table import EnvironmentSettings, TableEnvironment

    env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    env.get_config().set("parallelism.default", "1")
    env.execute_sql(FLINK_TABLE.format(path=path))
    rows, kinds = {}, {}
    with env.execute_sql("SELECT * FROM accounts").collect() as results:
        for row in results:
            kind = row.get_row_kind()
            kinds[kind] = kinds.get(kind, 0) + 1
            if kind in (RowKind.INSERT, RowKind.UPDATE_AFTER):
                rows[row[0]] = tuple(row)
            else:
                held = rows.pop(row[0], None)
                assert held is not None and same(held, tuple(row)), f"retracted {row}, held {held}"
    return rows, kinds


def parse_row(line):
    """A row of EXPECTED (psql -At, tab-separated) as Flink would hold it."""
    f = [None if v == "" else v for v in line.split("\t")]
    as_int = lambda v: None if v is None else int(v)  # noqa: E731
    return (
        int(f[0]),
        f[1],
        None if f[2] is None else Decimal(f[2]),
        as_int(f[3]),
        as_int(f[4]),
        None if f[5] is None else f[5] == "t",
        None if f[6] is None else float(f[6]),
    )


def same(a, b):
    """Row equality, NaN equal to NaN."""
    nan = lambda v: isinstance(v, float) and v != v  # noqa: E731
    return len(a) == len(b) and all(x == y or (nan(x) and nan(y)) for x, y in zip(a, b))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pgstream", default=str(REPO / "target" / "debug" / "pgstream"))
    args = ap.parse_args()
    passed = failed = 0

    def check(name, ok, detail=""):
        nonlocal passed, failed
        passed, failed = passed + ok, failed + (not ok)
        print(f"{'ok' if ok else 'FAILED'}: {name}{'' if ok else ': ' + detail}")

    with tempfile.TemporaryDirectory(prefix="pgstream-interop-") as tmp:
        os.chmod(tmp, 0o755)  # the server runs as the postgres OS user when we are root
        pgdir = os.path.join(tmp, "pg")
        env = dict(os.environ)
        pgtemp = ["bash", str(REPO / "scripts" / "pgtemp.sh")]
        for line in run(pgtemp + ["start", pgdir]).splitlines():
            key, _, value = line.partition("=")
            env[key] = value
        try:
            psql = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "postgres"]
            run(psql + ["-c", SETUP], env=env)
            stream = [args.pgstream, "-d", "postgres", "--slot", "interop", "--publication", "interop",
                      "--end-lsn", "now"]
            run(stream, env=env)  # creates the slot
            run(psql + ["-c", WORKLOAD], env=env)
            out = os.path.join(tmp, "changes.jsonl")
            run(stream + ["--format", "debezium", "-f", out], env=env)
            lines = Path(out).read_text().splitlines()
            check("pgstream wrote the changes", len(lines) > 200, f"{len(lines)} lines")
            expected = {}
            for line in run(psql + ["-AtF", "\t", "-c", EXPECTED], env=env).splitlines():
                row = parse_row(line)
                expected[row[0]] = row
        finally:
            run(pgtemp + ["stop", pgdir])
        rows, kinds = materialise(out)
    print("flink changelog:", {str(k): n for k, n in sorted(kinds.items(), key=str)})
    check("flink materialises every row", sorted(rows) == sorted(expected),
          f"ids only in flink: {sorted(set(rows) - set(expected))[:10]}, "
          f"only in postgres: {sorted(set(expected) - set(rows))[:10]}")
    diff = [(k, rows[k], expected[k]) for k in sorted(set(rows) & set(expected)) if not same(rows[k], expected[k])]
    check("each row equals the PostgreSQL row", not diff, f"{len(diff)} differ, first: {diff[:3]}")
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
