//! What depends on the server's major version (docs/compatibility.md), for
//! `make test-matrix`, which runs every test against PostgreSQL 10 to 18:
//! the pgoutput protocol version pgstream negotiates, `--proto-version`
//! limits, and options it never sends. Other version differences are
//! asserted where the feature is tested (messages and truncate in values,
//! `--streaming` in streaming, slot invalidation in errors, channel binding
//! in tls).

use crate::harness::{run, server_major, vec_of, wait_until, Cluster, TestDb, TIMEOUT};

/// The pgoutput protocol version pgstream asks for by default: the highest
/// the server has (1 before 14, 2 on 14, 3 on 15, 4 on 16+).
fn expected_proto(major: u32) -> u32 {
    match major {
        16.. => 4,
        15 => 3,
        14 => 2,
        _ => 1,
    }
}

fn setup(prefix: &str) -> TestDb {
    let db = Cluster::shared().new_db(prefix);
    db.sql("CREATE TABLE t (id int PRIMARY KEY); CREATE PUBLICATION p FOR TABLE t");
    db
}

/// The START_REPLICATION command the server logged for `slot`
/// (`log_replication_commands = on` in the harness).
fn start_replication_logged(slot: &str) -> String {
    let c = Cluster::shared();
    wait_until(
        &format!("START_REPLICATION for {slot} in the server log"),
        TIMEOUT,
        || {
            c.server_log()
                .lines()
                .find(|l| l.contains("START_REPLICATION") && l.contains(slot))
                .map(str::to_string)
        },
    )
}

#[test]
fn negotiated_protocol_version_follows_the_server() {
    let major = server_major();
    assert_eq!(
        Cluster::shared().major_version(),
        major,
        "the server runs the binaries under test"
    );
    let db = setup("ver_proto");
    let slot = format!("{}_v", db.name);
    let args = [
        db.stream_args(&slot, "p"),
        vec_of(&["--end-lsn", "now", "-vv"]),
    ]
    .concat();
    assert_eq!(run(&args, &[], TIMEOUT).code, Some(0));
    db.sql("INSERT INTO t VALUES (1)");
    db.sql("SELECT pg_current_wal_flush_lsn()");
    let out = run(&args, &[], TIMEOUT);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let events = out.json();
    assert_eq!(events.len(), 1, "{:?}", out.stdout_lines);
    assert_eq!(events[0]["new"]["id"], 1);

    let want = expected_proto(major);
    assert!(
        out.stderr
            .contains(&format!("pgoutput protocol version {want}\n")),
        "PostgreSQL {major}: expected protocol {want}:\n{}",
        out.stderr
    );
    // What the server was asked for: that protocol, text values (never
    // `binary`), and no option the server does not have.
    let cmd = start_replication_logged(&slot);
    assert!(
        cmd.contains(&format!("\"proto_version\" '{want}'")),
        "PostgreSQL {major}: {cmd}"
    );
    assert!(!cmd.contains("binary"), "binary requested: {cmd}");
    if major < 14 {
        assert!(
            !cmd.contains("messages") && !cmd.contains("streaming"),
            "option unknown to PostgreSQL {major}: {cmd}"
        );
    }
}

#[test]
fn proto_version_is_capped_by_the_server() {
    let major = server_major();
    let max = expected_proto(major);
    let db = setup("ver_cap");
    // Every version takes protocol 1 when asked for it.
    let slot = format!("{}_one", db.name);
    let one = [
        db.stream_args(&slot, "p"),
        vec_of(&["--end-lsn", "now", "--proto-version", "1"]),
    ]
    .concat();
    assert_eq!(run(&one, &[], TIMEOUT).code, Some(0));
    db.sql("INSERT INTO t VALUES (1)");
    db.sql("SELECT pg_current_wal_flush_lsn()");
    let out = run(&one, &[], TIMEOUT);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.json().len(), 1, "{:?}", out.stdout_lines);
    let cmd = start_replication_logged(&slot);
    assert!(cmd.contains("\"proto_version\" '1'"), "{cmd}");

    // One above what the server has is a configuration error, before any
    // slot is made. (4 is the highest pgstream knows: nothing above it on 16+.)
    if max < 4 {
        let slot = format!("{}_over", db.name);
        let args = [
            db.stream_args(&slot, "p"),
            vec_of(&[
                "--end-lsn",
                "now",
                "--proto-version",
                &(max + 1).to_string(),
            ]),
        ]
        .concat();
        let out = run(&args, &[], TIMEOUT);
        assert_eq!(out.code, Some(2), "{}", out.stderr);
        assert!(out.stdout_lines.is_empty(), "{:?}", out.stdout_lines);
        assert!(!db.slot_exists(&slot), "a slot was made");
        assert!(
            out.stderr.contains(&format!(
                "--proto-version {} is not supported by this server (PostgreSQL {major}); use {max} or lower",
                max + 1
            )),
            "{}",
            out.stderr
        );
    }
}
