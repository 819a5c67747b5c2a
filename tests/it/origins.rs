//! Replication origins and prepared (two-phase) transactions.

use crate::harness::{run, vec_of, Cluster, TestDb, TIMEOUT};

fn drain(db: &TestDb, slot: &str, extra: &[&str]) -> Vec<serde_json::Value> {
    db.sql("SELECT pg_current_wal_flush_lsn()");
    let args = [
        db.stream_args(slot, "p"),
        vec_of(&["--end-lsn", "now"]),
        vec_of(extra),
    ]
    .concat();
    let out = run(&args, &[], TIMEOUT);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    out.json()
}

#[test]
fn changes_applied_under_a_replication_origin_name_it() {
    let db = Cluster::shared().new_db("orig");
    db.sql("CREATE TABLE t (id int PRIMARY KEY); CREATE PUBLICATION p FOR TABLE t");
    let slot = format!("{}_o", db.name);
    assert!(drain(&db, &slot, &[]).is_empty());
    let origin = format!("upstream_{}", db.name);
    db.sql(&format!("SELECT pg_replication_origin_create('{origin}')"));
    db.sql(&format!(
        "SELECT pg_replication_origin_session_setup('{origin}'); INSERT INTO t VALUES (1); \
         SELECT pg_replication_origin_session_reset()"
    ));
    db.sql("INSERT INTO t VALUES (2)");
    let events = drain(&db, &slot, &["--include-tx"]);
    let mut ops: Vec<(&str, Option<&str>)> = events
        .iter()
        .map(|e| {
            (
                e["op"].as_str().unwrap(),
                e.get("origin").and_then(|o| o.as_str()),
            )
        })
        .collect();
    // Up to PostgreSQL 14 pgoutput sends begin/commit for a transaction with
    // no published change (here pg_replication_origin_create's): drop such
    // pairs there (docs/compatibility.md); 15+ sends none.
    if crate::harness::server_major() < 15 {
        let mut kept: Vec<(&str, Option<&str>)> = Vec::new();
        for op in ops {
            if op.0 == "commit" && kept.last().is_some_and(|p| p.0 == "begin") {
                kept.pop();
            } else {
                kept.push(op);
            }
        }
        ops = kept;
    }
    assert_eq!(
        ops,
        [
            ("begin", None),
            ("insert", Some(origin.as_str())),
            ("commit", Some(origin.as_str())),
            ("begin", None),
            ("insert", None),
            ("commit", None)
        ]
    );
    db.sql(&format!("SELECT pg_replication_origin_drop('{origin}')"));
}

#[test]
fn origin_filter_needs_postgresql_16() {
    let db = Cluster::shared().new_db("orig");
    db.sql("CREATE TABLE t (id int PRIMARY KEY); CREATE PUBLICATION p FOR TABLE t");
    let args = [
        db.stream_args(&format!("{}_n", db.name), "p"),
        vec_of(&["--origin", "none", "--end-lsn", "now"]),
    ]
    .concat();
    let out = run(&args, &[], TIMEOUT);
    if Cluster::shared().major_version() >= 16 {
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        return;
    }
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("--origin needs PostgreSQL 16"),
        "{}",
        out.stderr
    );
}

/// pgstream does not decode prepared transactions at PREPARE (no
/// two_phase): a prepared transaction appears, as an ordinary one, when it
/// is committed with COMMIT PREPARED, and never if it is rolled back.
#[test]
fn prepared_transactions_appear_when_committed() {
    let cluster = Cluster::start(&["max_prepared_transactions = 10"]);
    let db = cluster.new_db("twopc");
    db.sql("CREATE TABLE t (id int PRIMARY KEY); CREATE PUBLICATION p FOR TABLE t");
    let slot = format!("{}_2pc", db.name);
    assert!(drain(&db, &slot, &[]).is_empty());
    db.sql("BEGIN; INSERT INTO t VALUES (1); PREPARE TRANSACTION 'g1'");
    db.sql("BEGIN; INSERT INTO t VALUES (2); PREPARE TRANSACTION 'g2'");
    db.sql("INSERT INTO t VALUES (3)");
    let first: Vec<i64> = drain(&db, &slot, &[])
        .iter()
        .map(|e| e["new"]["id"].as_i64().unwrap())
        .collect();
    assert_eq!(first, [3], "nothing prepared is emitted before it commits");
    db.sql("COMMIT PREPARED 'g1'");
    db.sql("ROLLBACK PREPARED 'g2'");
    let second = drain(&db, &slot, &["--include-tx"]);
    let ops: Vec<String> = second
        .iter()
        .map(|e| {
            format!(
                "{}{}",
                e["op"].as_str().unwrap(),
                e["new"]["id"]
                    .as_i64()
                    .map(|i| format!(" {i}"))
                    .unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(ops, ["begin", "insert 1", "commit"]);
}
