//! Slot integrity (SPEC §6): a slot that vanishes or is invalidated under a
//! run is never silently replaced (exit 3), a new slot's start is logged at
//! the default level, and two-phase slots: prepared transactions come out
//! at PREPARE with their gid, and a two-phase slot is never read as if its
//! prepared transactions had committed.

use std::time::Duration;

use serde_json::Value;

use crate::harness::{
    parse_lsn, quote_literal, server_major, vec_of, version_skip, wait_until, Cluster, Proc,
    TestDb, TIMEOUT,
};

fn setup(db: &TestDb) {
    db.sql(
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         CREATE PUBLICATION p FOR TABLE t;",
    );
}

/// Terminates the walsender of `slot` and drops the slot before pgstream's
/// reconnection (1 s later) can take it again; retried if it did.
fn terminate_and_drop(db: &TestDb, slot: &str) {
    let lit = quote_literal(slot);
    wait_until("the slot to be dropped", TIMEOUT, || {
        db.sql(&format!(
            "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots
             WHERE slot_name = {lit} AND active_pid IS NOT NULL"
        ));
        let dropped = db.try_sql(&format!(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
             WHERE slot_name = {lit} AND NOT active"
        ));
        (dropped.is_ok() && !db.slot_exists(slot)).then_some(())
    });
}

/// The one stderr line of a slot-lost exit names the slot and says what
/// was lost and what to do.
fn assert_slot_lost_message(stderr: &str, slot: &str) {
    let last = stderr.trim().lines().last().unwrap_or_default();
    assert!(
        last.contains(&format!("\"{slot}\""))
            && last.contains("may be missing")
            && last.contains("--snapshot"),
        "{stderr}"
    );
}

#[test]
fn slot_dropped_during_backoff_exits_3_and_is_not_recreated() {
    let db = Cluster::shared().new_db("slot_drop");
    setup(&db);
    let slot = format!("{}_s", db.name);
    let mut p = Proc::spawn(&db.stream_args(&slot, "p"), &[]);
    // Created by this run, and logged at the default level.
    p.wait_stderr("created slot", TIMEOUT);
    db.insert_each(1..=1);
    p.wait_lines(1, TIMEOUT);

    terminate_and_drop(&db, &slot);
    db.insert_each(2..=2);
    let out = p.wait_exit(TIMEOUT);
    assert_eq!(out.code, Some(3), "{}", out.stderr);
    assert_slot_lost_message(&out.stderr, &slot);
    assert!(
        out.stderr.contains(&format!("created slot {slot} at ")),
        "{}",
        out.stderr
    );
    assert_eq!(out.stdout_lines.len(), 1, "nothing after the gap: {out:?}");
    assert!(!db.slot_exists(&slot), "the slot was created again");
}

/// A temporary slot goes with the connection that made it: after a lost
/// connection it is missing like any dropped slot.
#[test]
fn temporary_slot_lost_with_the_connection_exits_3() {
    let db = Cluster::shared().new_db("slot_tmp");
    setup(&db);
    let slot = format!("{}_tmp", db.name);
    let mut p = Proc::spawn(
        &[db.stream_args(&slot, "p"), vec_of(&["--temporary-slot"])].concat(),
        &[],
    );
    wait_until("the walsender", TIMEOUT, || {
        db.walsender_streaming(&slot).then_some(())
    });
    db.sql(&format!(
        "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = {}",
        quote_literal(&slot)
    ));
    let out = p.wait_exit(TIMEOUT);
    assert_eq!(out.code, Some(3), "{}", out.stderr);
    assert_slot_lost_message(&out.stderr, &slot);
    assert!(!db.slot_exists(&slot), "no slot was recreated");
}

/// Invalidated by `max_slot_wal_keep_size` while no one streamed it: the
/// next run exits 3 at start-up and leaves the slot as it is.
#[test]
fn slot_invalidated_at_start_up_exits_3() {
    if server_major() < 13 {
        version_skip("slots are never invalidated before PostgreSQL 13");
        return;
    }
    // PostgreSQL 15 wants min/max_wal_size of at least two 16MB segments.
    let c = Cluster::start(&[
        "max_slot_wal_keep_size = '1MB'",
        "min_wal_size = '32MB'",
        "max_wal_size = '32MB'",
    ]);
    let db = c.new_db("");
    setup(&db);
    db.sql("SELECT pg_create_logical_replication_slot('lost', 'pgoutput')");
    let mut n = 0;
    wait_until(
        "slot lost to be invalidated",
        Duration::from_secs(120),
        || {
            n += 1;
            db.sql(&format!(
                "INSERT INTO t VALUES ({n}); SELECT pg_switch_wal(); CHECKPOINT;"
            ));
            (db.sql("SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'lost'")
                == "lost")
                .then_some(())
        },
    );
    let out = crate::harness::run(&db.stream_args("lost", "p"), &[], TIMEOUT);
    assert_eq!(out.code, Some(3), "{}", out.stderr);
    assert!(out.stdout_lines.is_empty(), "{out:?}");
    assert_eq!(out.stderr.trim().lines().count(), 1, "{}", out.stderr);
    assert_slot_lost_message(&out.stderr, "lost");
    assert!(out.stderr.contains("invalidated"), "{}", out.stderr);
    assert_eq!(
        db.sql("SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'lost'"),
        "lost",
        "the slot is left for the operator"
    );
}

/// A dedicated cluster that can prepare transactions (an open prepared
/// transaction on the shared cluster would hold up every slot creation).
fn two_phase_cluster(extra: &[&str]) -> Option<Cluster> {
    if server_major() < 15 {
        version_skip("two-phase decoding over pgoutput needs PostgreSQL 15");
        return None;
    }
    let conf = [&["max_prepared_transactions = 10"], extra].concat();
    Some(Cluster::start(&conf))
}

fn json(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

/// Asserts that `line` has exactly `want` as keys, in that order.
fn assert_keys(line: &str, want: &[&str]) {
    let v = json(line);
    let mut have: Vec<&str> = v
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    // A top-level key is followed by `:`; values here hold no such text.
    have.sort_by_key(|k| line.find(&format!("\"{k}\":")));
    assert_eq!(have, want, "{line}");
}

#[test]
fn two_phase_slot_without_the_flag_exits_2() {
    let Some(c) = two_phase_cluster(&[]) else {
        return;
    };
    let db = c.new_db("");
    setup(&db);
    db.sql("SELECT pg_create_logical_replication_slot('tp', 'pgoutput', false, true)");
    db.sql("BEGIN; INSERT INTO t VALUES (1); PREPARE TRANSACTION 'g'; ROLLBACK PREPARED 'g'");
    let before = db.confirmed_flush_lsn("tp");
    let out = crate::harness::run(
        &[db.stream_args("tp", "p"), vec_of(&["--end-lsn", "now"])].concat(),
        &[],
        TIMEOUT,
    );
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stdout_lines.is_empty(), "{out:?}");
    let line = out.stderr.trim();
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(
        line.contains("\"tp\"") && line.contains("--two-phase"),
        "{line}"
    );
    assert_eq!(db.confirmed_flush_lsn("tp"), before, "nothing acknowledged");
}

#[test]
fn two_phase_prepare_commit_rollback_and_a_restart_between() {
    let Some(c) = two_phase_cluster(&[]) else {
        return;
    };
    let db = c.new_db("");
    setup(&db);
    let args = [
        db.stream_args("tp", "p"),
        vec_of(&["--two-phase", "-s", "1"]),
    ]
    .concat();
    let mut p = Proc::spawn(&args, &[]);
    p.wait_stderr("created slot", TIMEOUT);
    assert_eq!(db.sql("SELECT two_phase FROM pg_replication_slots"), "t");

    db.sql_sync("INSERT INTO t VALUES (1, 'plain')");
    db.sql_sync("BEGIN; INSERT INTO t VALUES (2, 'kept'); PREPARE TRANSACTION 'g2'");
    let lines = p.wait_lines(3, TIMEOUT);
    let (plain, change, prepare) = (json(&lines[0]), json(&lines[1]), json(&lines[2]));
    assert!(plain["commit_lsn"].is_string() && plain.get("gid").is_none());
    assert_eq!(change["op"], "insert");
    assert_eq!(change["gid"], "g2");
    assert!(change.get("commit_lsn").is_none() && change.get("commit_ts").is_none());
    assert_eq!(prepare["op"], "prepare");
    assert_keys(&lines[2], &["op", "lsn", "xid", "gid", "prepare_ts"]);
    assert_eq!(prepare["xid"], change["xid"]);
    assert_eq!(prepare["gid"], "g2");
    assert!(prepare["prepare_ts"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    // Acknowledged once the prepare line is out, before any COMMIT PREPARED.
    let prepared_at = db.current_wal_lsn();
    db.wait_confirmed("tp", &prepared_at, TIMEOUT);

    db.sql_sync("COMMIT PREPARED 'g2'");
    let lines = p.wait_lines(4, TIMEOUT);
    let committed = json(&lines[3]);
    assert_eq!(committed["op"], "commit_prepared");
    assert_eq!(committed["gid"], "g2");
    assert_eq!(committed["xid"], change["xid"]);
    assert!(committed["commit_lsn"].is_string() && committed["commit_ts"].is_string());

    db.sql_sync("BEGIN; INSERT INTO t VALUES (3, 'undone'); PREPARE TRANSACTION 'g3'");
    db.sql_sync("ROLLBACK PREPARED 'g3'");
    let lines = p.wait_lines(7, TIMEOUT);
    let ops: Vec<Value> = lines[4..7].iter().map(|l| json(l)["op"].clone()).collect();
    assert_eq!(ops, ["insert", "prepare", "rollback_prepared"]);
    assert_keys(&lines[6], &["op", "xid", "gid"]);
    assert_eq!(json(&lines[6])["gid"], "g3");

    // A transaction prepared, then pgstream stopped before it commits: the
    // next run sends only its commit.
    db.sql_sync("BEGIN; INSERT INTO t VALUES (4, 'later'); PREPARE TRANSACTION 'g4'");
    p.wait_lines(9, TIMEOUT);
    let prepared_at = db.current_wal_lsn();
    db.wait_confirmed("tp", &prepared_at, TIMEOUT);
    p.signal("INT");
    let out = p.wait_exit(TIMEOUT);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    db.sql_sync("COMMIT PREPARED 'g4'");
    db.wait_flushed();
    let out = crate::harness::run(
        &[args.clone(), vec_of(&["--end-lsn", "now"])].concat(),
        &[],
        TIMEOUT,
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let again = out.json();
    assert_eq!(again.len(), 1, "{:?}", out.stdout_lines);
    assert_eq!(again[0]["op"], "commit_prepared");
    assert_eq!(again[0]["gid"], "g4");
    assert!(
        parse_lsn(&db.confirmed_flush_lsn("tp").unwrap_or_default())
            >= parse_lsn(again[0]["commit_lsn"].as_str().unwrap_or("0/0"))
    );
}

/// With `--streaming` too, a large prepared transaction streams in progress
/// and ends with `stream_prepare`.
#[test]
fn two_phase_with_streaming_ends_in_stream_prepare() {
    let Some(c) = two_phase_cluster(&["logical_decoding_work_mem = '64kB'"]) else {
        return;
    };
    let db = c.new_db("");
    setup(&db);
    let mut p = Proc::spawn(
        &[
            db.stream_args("tps", "p"),
            vec_of(&["--two-phase", "--streaming"]),
        ]
        .concat(),
        &[],
    );
    p.wait_stderr("created slot", TIMEOUT);
    db.sql_sync(
        "BEGIN; INSERT INTO t SELECT i, repeat('x', 100) FROM generate_series(1, 2000) i;
         PREPARE TRANSACTION 'big'",
    );
    let lines = p.wait_lines(2001, TIMEOUT);
    let first = json(&lines[0]);
    assert_eq!(first["streamed"], true, "{first}");
    let end = json(&lines[2000]);
    assert_eq!(end["op"], "stream_prepare");
    assert_eq!(end["gid"], "big");
    assert_eq!(end["xid"], first["xid"]);
    let prepared_at = db.current_wal_lsn();
    db.wait_confirmed("tps", &prepared_at, TIMEOUT);
    db.sql_sync("COMMIT PREPARED 'big'");
    let lines = p.wait_lines(2002, TIMEOUT);
    assert_eq!(json(&lines[2001])["op"], "commit_prepared");
    p.signal("INT");
    assert_eq!(p.wait_exit(TIMEOUT).code, Some(0));
}

#[test]
fn two_phase_is_refused_with_wal2json_and_before_postgresql_15() {
    let db = Cluster::shared().new_db("slot_tpw");
    setup(&db);
    let (w2j, old) = (format!("{}_w", db.name), format!("{}_o", db.name));
    let out = crate::harness::run(
        &[
            db.stream_args(&w2j, "p"),
            vec_of(&["--two-phase", "--plugin", "wal2json"]),
        ]
        .concat(),
        &[],
        TIMEOUT,
    );
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("--two-phase"), "{}", out.stderr);
    if server_major() < 15 {
        let out = crate::harness::run(
            &[db.stream_args(&old, "p"), vec_of(&["--two-phase"])].concat(),
            &[],
            TIMEOUT,
        );
        assert_eq!(out.code, Some(2), "{}", out.stderr);
        assert!(out.stderr.contains("PostgreSQL 15"), "{}", out.stderr);
        assert!(!db.slot_exists(&old), "no slot created");
    }
    assert!(!db.slot_exists(&w2j), "no slot created");
}
