//! `--streaming` (SPEC §4): large in-progress transactions are emitted as
//! they arrive, marked `streamed`, and end with `stream_commit` or
//! `stream_abort`; acknowledgement never passes an uncommitted one.

use crate::harness::{run, vec_of, Cluster, Output, TestDb, TIMEOUT};

fn setup() -> TestDb {
    let db = Cluster::shared().new_db("strm");
    // The walsender of this database spills (streams) past 64 kB
    // (logical_decoding_work_mem is PostgreSQL 13+).
    if crate::harness::server_major() >= 13 {
        db.sql(&format!(
            "ALTER DATABASE {} SET logical_decoding_work_mem = '64kB'",
            db.name
        ));
    }
    db.sql("CREATE TABLE t (id int PRIMARY KEY, v text); CREATE PUBLICATION p FOR TABLE t");
    db
}

/// Before PostgreSQL 14 (pgoutput protocol 1) `--streaming` is refused:
/// exit 2 with what it needs, nothing streamed. Asserts that and returns
/// true there.
fn streaming_refused(db: &TestDb, slot: &str) -> bool {
    if crate::harness::server_major() >= 14 {
        return false;
    }
    let args = [
        db.stream_args(slot, "p"),
        vec_of(&["--streaming", "--end-lsn", "now"]),
    ]
    .concat();
    let out = run(&args, &[], TIMEOUT);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stdout_lines.is_empty(), "{:?}", out.stdout_lines);
    assert!(
        out.stderr
            .contains("--streaming needs pgoutput protocol 2 or later (PostgreSQL 14+)"),
        "{}",
        out.stderr
    );
    true
}

fn drain(db: &TestDb, slot: &str, extra: &[&str]) -> Output {
    db.sql("SELECT pg_current_wal_flush_lsn()");
    let args = [
        db.stream_args(slot, "p"),
        vec_of(&["--streaming", "--end-lsn", "now"]),
        vec_of(extra),
    ]
    .concat();
    let out = run(&args, &[], TIMEOUT);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    out
}

#[test]
fn large_transactions_stream_then_commit_or_abort() {
    let db = setup();
    let slot = format!("{}_s", db.name);
    if streaming_refused(&db, &slot) {
        return;
    }
    drain(&db, &slot, &[]);
    db.sql(
        "BEGIN; INSERT INTO t SELECT g, repeat('x', 100) FROM generate_series(1, 2000) g; \
         SAVEPOINT a; INSERT INTO t SELECT g, repeat('y', 100) FROM generate_series(2001, 4000) g; \
         ROLLBACK TO a; INSERT INTO t VALUES (5000, 'z'); COMMIT",
    );
    db.sql("BEGIN; INSERT INTO t SELECT g, repeat('x', 100) FROM generate_series(10001, 12000) g; ROLLBACK");
    db.sql("INSERT INTO t VALUES (9999, 'small')");
    let events = drain(&db, &slot, &[]).json();

    let committed: Vec<_> = events
        .iter()
        .filter(|e| e["op"] == "stream_commit")
        .collect();
    assert_eq!(committed.len(), 1, "one streamed commit");
    let xid = committed[0]["xid"].as_i64().unwrap();
    assert!(committed[0]["commit_lsn"].is_string() && committed[0]["commit_ts"].is_string());
    let streamed: Vec<_> = events.iter().filter(|e| e["streamed"] == true).collect();
    assert!(streamed
        .iter()
        .all(|e| e.get("commit_lsn").is_none() && e.get("commit_ts").is_none()));
    let of_xid = |x: i64| streamed.iter().filter(|e| e["xid"] == x).count();
    assert!(
        of_xid(xid) >= 2001,
        "the committed transaction's changes came streamed"
    );

    // The savepoint's rows that were streamed before ROLLBACK TO are undone
    // by a stream_abort naming that subtransaction.
    let sub_aborts: Vec<_> = events
        .iter()
        .filter(|e| e["op"] == "stream_abort" && e.get("subxid").is_some())
        .collect();
    for abort in &sub_aborts {
        assert_eq!(abort["xid"], xid);
        let sub = abort["subxid"].as_i64().unwrap();
        assert!(
            streamed.iter().any(|e| e["subxid"] == sub),
            "changes of the aborted subtransaction carry its subxid"
        );
    }
    // The rolled-back transaction ends with a whole-transaction stream_abort.
    // PostgreSQL 18 discards a large transaction that has already aborted
    // when it would stream it: then nothing of it comes at all.
    let aborts: Vec<_> = events
        .iter()
        .filter(|e| e["op"] == "stream_abort" && e.get("subxid").is_none())
        .collect();
    let aborted = if crate::harness::server_major() >= 18 && aborts.is_empty() {
        let ids = |e: &&serde_json::Value| {
            e["new"]["id"]
                .as_i64()
                .is_some_and(|i| (10001..=12000).contains(&i))
        };
        assert!(
            !events.iter().any(|e| ids(&e)),
            "nothing of the aborted transaction"
        );
        -1
    } else {
        assert_eq!(aborts.len(), 1, "{aborts:?}");
        let aborted = aborts[0]["xid"].as_i64().unwrap();
        assert_ne!(aborted, xid);
        assert!(
            of_xid(aborted) > 0,
            "the aborted transaction was streamed before it aborted"
        );
        aborted
    };

    // The small transaction is not streamed.
    let small = events.iter().find(|e| e["new"]["id"] == 9999).unwrap();
    assert!(small.get("streamed").is_none() && small["commit_lsn"].is_string());

    // Replaying (undoing aborted parts) gives the table's contents.
    let mut rows = std::collections::BTreeSet::new();
    let undone = |e: &serde_json::Value| {
        e["xid"] == aborted
            || sub_aborts
                .iter()
                .any(|a| a["subxid"] == e["subxid"] && e.get("subxid").is_some())
    };
    for e in events.iter().filter(|e| e["op"] == "insert" && !undone(e)) {
        rows.insert(e["new"]["id"].as_i64().unwrap());
    }
    let count: usize = db.sql("SELECT count(*) FROM t").parse().unwrap();
    assert_eq!(rows.len(), count);

    // Everything was acknowledged: a second drain has nothing.
    assert!(drain(&db, &slot, &[]).stdout_lines.is_empty());
}

#[test]
fn uncommitted_streamed_transaction_is_not_acknowledged() {
    let db = setup();
    let slot = format!("{}_u", db.name);
    if streaming_refused(&db, &slot) {
        return;
    }
    drain(&db, &slot, &[]);
    // A big transaction stays open (streamed) while a small one commits.
    let mut open = std::process::Command::new("psql")
        .args(["-X", "-q", "-h"])
        .arg(&Cluster::shared().socket_dir)
        .args([
            "-p",
            &Cluster::shared().port.to_string(),
            "-U",
            "postgres",
            "-d",
            &db.name,
        ])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    let stdin = open.stdin.as_mut().unwrap();
    writeln!(
        stdin,
        "BEGIN; INSERT INTO t SELECT g, repeat('x', 100) FROM generate_series(1, 2000) g;"
    )
    .unwrap();
    stdin.flush().unwrap();
    crate::harness::wait_until("the big transaction's rows", TIMEOUT, || {
        (db.sql("SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction'") != "0")
            .then_some(())
    });
    db.sql("INSERT INTO t VALUES (9999, 'small')");
    let first = drain(&db, &slot, &[]).json();
    assert!(
        first.iter().any(|e| e["streamed"] == true),
        "the open transaction was streamed"
    );
    assert!(first.iter().any(|e| e["new"]["id"] == 9999));
    writeln!(stdin, "COMMIT;").unwrap();
    drop(open.stdin.take());
    assert!(open.wait().unwrap().success());
    // Its changes come again, whole, with the commit: the first run did not
    // acknowledge past them (so the small transaction, which committed after
    // the big one began, comes again too: at least once).
    let second = drain(&db, &slot, &[]).json();
    let big = second
        .iter()
        .filter(|e| e["op"] == "insert" && e["new"]["id"].as_i64() <= Some(2000))
        .count();
    assert_eq!(big, 2000, "{}", second.len());
    assert_eq!(
        second.iter().filter(|e| e["op"] == "stream_commit").count(),
        1
    );
}

#[test]
fn streaming_needs_pgoutput_protocol_2() {
    let db = setup();
    let out = run(
        &[
            db.stream_args(&format!("{}_p", db.name), "p"),
            vec_of(&["--streaming", "--proto-version", "1"]),
        ]
        .concat(),
        &[],
        TIMEOUT,
    );
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr.contains("--streaming needs pgoutput protocol 2"),
        "{}",
        out.stderr
    );
}
