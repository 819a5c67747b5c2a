//! Backfill while streaming (SPEC §11): `--backfill` re-reads published
//! tables in key order, chunk by chunk, interleaved with the live stream,
//! so that replaying the output in order (a `read` is an upsert by key)
//! gives each table's current contents — under concurrent inserts,
//! updates, deletes, key changes and truncates, across a `kill -9`, on new
//! and existing slots; keyless tables are refused.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{
    json_lines, server_major, vec_of, version_skip, wait_until, Cluster, Proc, Server, TestDb,
    TIMEOUT,
};

const LONG: Duration = Duration::from_secs(120);

/// Backfill watermarks are logical messages, which pgoutput sends from 14 on.
fn too_old() -> bool {
    server_major() < 14 && version_skip("--backfill needs PostgreSQL 14+")
}

/// `t` (and `u`) with `rows` rows each `id, 'v<id>'`, in publication `p`.
fn setup(db: &TestDb, rows: i64) {
    db.sql(&format!(
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, {rows}) g;
         CREATE PUBLICATION p FOR TABLE t;"
    ));
}

/// Replays `lines` for `table`: `read` and `insert` upsert, `update`
/// moves the row when its key changed, `delete` removes, `truncate`
/// clears. Keyed by `id`.
fn replay(lines: &[Value], table: &str) -> BTreeMap<i64, String> {
    let mut rows = BTreeMap::new();
    let id = |row: &Value| row["id"].as_i64().expect("id");
    for l in lines.iter().filter(|l| l["table"] == table) {
        match l["op"].as_str().unwrap_or_default() {
            "read" | "insert" => {
                rows.insert(id(&l["new"]), l["new"]["v"].as_str().unwrap().to_string());
            }
            "update" => {
                if l["old"].is_object() {
                    rows.remove(&id(&l["old"]));
                }
                rows.insert(id(&l["new"]), l["new"]["v"].as_str().unwrap().to_string());
            }
            "delete" => {
                rows.remove(&id(&l["key"]));
            }
            "truncate" => rows.clear(),
            _ => {}
        }
    }
    rows
}

fn table(db: &TestDb, table: &str) -> BTreeMap<i64, String> {
    db.sql(&format!("SELECT id || ' ' || v FROM {table} ORDER BY id"))
        .lines()
        .map(|l| {
            let (id, v) = l.split_once(' ').expect("id v");
            (id.parse().expect("id"), v.to_string())
        })
        .collect()
}

/// Random single-row writes on `t` until stopped: updates, deletes,
/// inserts and key changes, over ids both read and not yet read.
fn writer(server: Server, db: String, seed: u64, stop: Arc<AtomicBool>) -> thread::JoinHandle<u64> {
    thread::spawn(move || {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ (seed << 32);
        let mut n = 0;
        let mut fresh = 1_000_000 * (seed + 1);
        while !stop.load(Ordering::Relaxed) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let id = (x >> 8) % 2000 + 1;
            let sql = match x % 4 {
                0 => format!("UPDATE t SET v = 'u{n}' WHERE id = {id}"),
                1 => format!("DELETE FROM t WHERE id = {id}"),
                2 => format!(
                    "INSERT INTO t VALUES ({id}, 'i{n}') ON CONFLICT (id) DO UPDATE SET v = 'c{n}'"
                ),
                _ => {
                    fresh += 1;
                    format!("UPDATE t SET id = {fresh}, v = 'k{n}' WHERE id = {id}")
                }
            };
            server.sql(&db, &sql);
            n += 1;
        }
        n
    })
}

/// Backfills are read by short statements: no pgstream backend sits idle
/// in a transaction (polled while the backfill runs).
fn idle_in_transaction(db: &TestDb) -> String {
    db.sql(&format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}'
         AND application_name = 'pgstream' AND state LIKE 'idle in transaction%'",
        db.name
    ))
}

/// Waits until pgstream has acknowledged everything written so far, then
/// stops it and returns its output.
fn drain_and_stop(db: &TestDb, slot: &str, mut p: Proc) -> Vec<Value> {
    let end = db.current_wal_lsn();
    db.wait_confirmed(slot, &end, LONG);
    p.signal("INT");
    let out = p.wait_exit(TIMEOUT);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    out.json()
}

/// A database with `t` of `rows` rows, and pgstream args for a new slot
/// backfilling `pattern` in chunks of `chunk`.
fn backfill_setup(
    prefix: &str,
    rows: i64,
    pattern: &str,
    chunk: &str,
) -> (TestDb, String, Vec<String>) {
    let db = Cluster::shared().new_db(prefix);
    setup(&db, rows);
    let slot = format!("{}_s", db.name);
    let mut args = db.stream_args(&slot, "p");
    args.extend(vec_of(&["--backfill", pattern, "--backfill-chunk", chunk]));
    (db, slot, args)
}

fn done_lines(lines: &[Value]) -> Vec<&Value> {
    lines
        .iter()
        .filter(|l| l["op"] == "backfill_done")
        .collect()
}

#[test]
fn backfill_under_concurrent_writes_replays_to_the_table() {
    if too_old() {
        return;
    }
    let (db, slot, args) = backfill_setup("bf_race", 2000, "public.t", "25");
    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = (0..2)
        .map(|n| writer(db.server().clone(), db.name.clone(), n, stop.clone()))
        .collect();
    let mut p = Proc::spawn(&args, &[]);
    p.wait_stderr("created slot", TIMEOUT);

    wait_until("backfill_done", LONG, || {
        assert_eq!(
            idle_in_transaction(&db),
            "0",
            "a backend idle in transaction"
        );
        let lines = json_lines(&p.lines());
        (!done_lines(&lines).is_empty()).then_some(())
    });
    stop.store(true, Ordering::Relaxed);
    let writes: u64 = load.into_iter().map(|w| w.join().expect("writer")).sum();
    assert!(writes > 0);

    let lines = drain_and_stop(&db, &slot, p);
    let done = done_lines(&lines);
    assert_eq!(done.len(), 1, "{done:?}");
    assert_eq!(done[0]["schema"], "public");
    assert!(done[0]["rows"].as_u64().is_some(), "{}", done[0]);
    let reads: Vec<&Value> = lines.iter().filter(|l| l["op"] == "read").collect();
    assert!(!reads.is_empty());
    for r in &reads {
        assert!(r["key"].is_object() && r["new"].is_object(), "{r}");
        assert!(r.get("snapshot_lsn").is_none(), "{r}");
    }
    // Read in key order.
    let ids: Vec<i64> = reads
        .iter()
        .map(|r| r["key"]["id"].as_i64().unwrap())
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "reads out of key order"
    );
    assert_eq!(replay(&lines, "t"), table(&db, "t"));
}

/// A table added to the publication of an existing slot, backfilled on a
/// later run with two tables at once: both replay exactly (the first from
/// its reads alone).
#[test]
fn two_tables_on_an_existing_slot_after_one_was_added_to_the_publication() {
    if too_old() {
        return;
    }
    let db = Cluster::shared().new_db("bf_added");
    setup(&db, 500);
    let slot = format!("{}_s", db.name);
    let mut p = Proc::spawn(&db.stream_args(&slot, "p"), &[]);
    p.wait_stderr("created slot", TIMEOUT);
    db.sql(
        "CREATE TABLE u (id int PRIMARY KEY, v text);
         INSERT INTO u SELECT g, 'u' || g FROM generate_series(1, 700) g;
         ALTER PUBLICATION p ADD TABLE u;",
    );
    drain_and_stop(&db, &slot, p);

    let mut args = db.stream_args(&slot, "p");
    args.extend(vec_of(&[
        "--backfill",
        "public.*",
        "--backfill-chunk",
        "64",
    ]));
    let p = Proc::spawn(&args, &[]);
    let mut p = p;
    wait_until("both backfills done", LONG, || {
        (done_lines(&json_lines(&p.lines())).len() == 2).then_some(())
    });
    db.sql("UPDATE u SET v = 'late' WHERE id = 7; DELETE FROM t WHERE id = 3;");
    let lines = drain_and_stop(&db, &slot, p);
    let mut done: Vec<(String, u64)> = done_lines(&lines)
        .iter()
        .map(|d| {
            (
                d["table"].as_str().unwrap().to_string(),
                d["rows"].as_u64().unwrap(),
            )
        })
        .collect();
    done.sort();
    assert_eq!(done, vec![("t".into(), 500), ("u".into(), 700)]);
    assert_eq!(replay(&lines, "t"), table(&db, "t"));
    assert_eq!(replay(&lines, "u"), table(&db, "u"));
}

/// A backfill killed half way starts again on the next run with the same
/// flag; the output of both runs replays exactly, and a truncate during the
/// second one is honoured.
#[test]
fn kill_9_mid_backfill_then_a_rerun_and_a_truncate() {
    if too_old() {
        return;
    }
    let (db, slot, args) = backfill_setup("bf_kill", 4000, "public.t", "50");
    let mut p = Proc::spawn(&args, &[]);
    wait_until("some reads", LONG, || {
        let lines = json_lines(&p.lines());
        (lines.iter().filter(|l| l["op"] == "read").count() >= 100).then_some(())
    });
    db.sql("UPDATE t SET v = 'before kill' WHERE id IN (1, 3999)");
    p.signal("KILL");
    let first = p.wait_exit(TIMEOUT);
    let mut all = first.json();
    assert!(done_lines(&all).is_empty(), "finished before the kill");

    let mut p = Proc::spawn(&args, &[]);
    wait_until("some reads of the second run", LONG, || {
        let lines = json_lines(&p.lines());
        (lines.iter().filter(|l| l["op"] == "read").count() >= 50).then_some(())
    });
    db.sql(
        "TRUNCATE t;
         INSERT INTO t SELECT g, 'after truncate' FROM generate_series(10, 20) g;",
    );
    wait_until("backfill_done", LONG, || {
        (!done_lines(&json_lines(&p.lines())).is_empty()).then_some(())
    });
    let second = drain_and_stop(&db, &slot, p);
    all.extend(second);
    assert_eq!(replay(&all, "t"), table(&db, "t"));
}

/// A table with neither a primary key nor a replica identity index cannot
/// be read in key order: exit 2 naming it, before any output.
#[test]
fn keyless_table_is_refused_naming_it() {
    if too_old() {
        return;
    }
    let db = Cluster::shared().new_db("bf_keyless");
    db.sql(
        "CREATE TABLE k (a int, b text);
         CREATE TABLE t (id int PRIMARY KEY);
         CREATE PUBLICATION p FOR TABLE k, t;",
    );
    let slot = format!("{}_s", db.name);
    let mut args = db.stream_args(&slot, "p");
    args.extend(vec_of(&["--backfill", "public.*"]));
    let out = crate::harness::run(&args, &[], TIMEOUT);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    let last = out.stderr.trim().lines().last().unwrap_or_default();
    assert!(last.contains("public.k"), "{}", out.stderr);
    assert!(out.stdout_lines.is_empty());
}

/// A wal2json slot backfills the same way (its watermarks are wal2json
/// messages), and the watermarks never reach the output, with
/// `--include-messages` or without.
#[test]
fn wal2json_slot_backfills_and_keeps_its_watermarks_to_itself() {
    if too_old() {
        return;
    }
    let cluster = Cluster::shared();
    if !cluster.wal2json_or_skip() {
        return;
    }
    let db = cluster.new_db("bf_w2j");
    setup(&db, 300);
    let slot = format!("{}_s", db.name);
    let mut args = db.stream_args(&slot, "p");
    args.extend(vec_of(&[
        "--plugin",
        "wal2json",
        "--backfill",
        "t",
        "--backfill-chunk",
        "40",
        "--include-messages",
    ]));
    let mut p = Proc::spawn(&args, &[]);
    p.wait_stderr("created slot", TIMEOUT);
    db.sql("UPDATE t SET v = 'during' WHERE id % 7 = 0; SELECT pg_logical_emit_message(false, 'app', 'hello');");
    wait_until("backfill_done", LONG, || {
        (!done_lines(&json_lines(&p.lines())).is_empty()).then_some(())
    });
    let lines = drain_and_stop(&db, &slot, p);
    let prefixes: Vec<&Value> = lines
        .iter()
        .filter(|l| l["op"] == "message")
        .map(|l| &l["prefix"])
        .collect();
    assert_eq!(prefixes, vec!["app"], "only the application's message");
    assert_eq!(replay(&lines, "t"), table(&db, "t"));
}
