//! `pgstream status` (SPEC §10): one JSON line per logical slot of the
//! database, its values as the server reports them, lag and retained WAL
//! against the server's WAL position, a table on a terminal, exit 2 for a
//! slot that is not there.

use std::process::Command;

use serde_json::Value;

use crate::harness::{
    ha_bin, parse_lsn, quote_literal, run, server_major, vec_of, wait_until, Cluster, Proc, TestDb,
    TIMEOUT,
};

/// `pgstream status` with `extra` flags, which must exit 0: its lines.
fn status(db: &TestDb, extra: &[&str]) -> Vec<Value> {
    let mut args = vec_of(&["status"]);
    args.extend(db.conn_args());
    args.extend(vec_of(extra));
    let out = run(&args, &[], TIMEOUT);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    for line in &out.stdout_lines {
        assert!(line.starts_with(r#"{"slot":""#), "{line}");
    }
    out.json()
}

/// The server's own row of `pg_replication_slots` for `slot`.
fn server_row(db: &TestDb, slot: &str) -> Value {
    let json = db.sql(&format!(
        "SELECT to_json(s) FROM pg_replication_slots s WHERE slot_name = {}",
        quote_literal(slot)
    ));
    serde_json::from_str(&json).unwrap()
}

fn wal_lsn(db: &TestDb) -> u64 {
    parse_lsn(&db.current_wal_lsn())
}

/// Keys every line has, then those of PostgreSQL 17+.
const KEYS: &[&str] = &[
    "slot",
    "plugin",
    "database",
    "active",
    "active_pid",
    "confirmed_flush_lsn",
    "restart_lsn",
    "lag_bytes",
    "retained_bytes",
    "wal_status",
    "two_phase",
    "temporary",
];
const KEYS_17: &[&str] = &["failover", "synced", "inactive_since"];

#[test]
fn lists_the_logical_slots_of_the_database_as_the_server_sees_them() {
    let db = Cluster::shared().new_db("status_list");
    let (a, b) = (format!("{}_a", db.name), format!("{}_b", db.name));
    let physical = format!("{}_phys", db.name);
    db.sql(&format!(
        "SELECT pg_create_logical_replication_slot('{a}', 'pgoutput');
         SELECT pg_create_logical_replication_slot('{b}', 'pgoutput');
         SELECT pg_create_physical_replication_slot('{physical}', true);
         CREATE TABLE t (id int PRIMARY KEY, v text);"
    ));
    // WAL that both slots have yet to confirm.
    db.insert_each(1..=3);
    let other = Cluster::shared().new_db("status_other");
    let elsewhere = format!("{}_x", other.name);
    other.sql(&format!(
        "SELECT pg_create_logical_replication_slot('{elsewhere}', 'pgoutput')"
    ));

    let before = wal_lsn(&db);
    let lines = status(&db, &[]);
    let after = wal_lsn(&db);
    db.sql(&format!("SELECT pg_drop_replication_slot('{physical}')"));
    let names: Vec<&str> = lines.iter().map(|l| l["slot"].as_str().unwrap()).collect();
    assert_eq!(names, [a.as_str(), b.as_str()], "{lines:?}");

    for line in &lines {
        let name = line["slot"].as_str().unwrap();
        let row = server_row(&db, name);
        let mut keys: Vec<&str> = KEYS.to_vec();
        if server_major() >= 17 {
            keys.extend(KEYS_17);
        }
        let got: Vec<&str> = line
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        let mut want = keys.clone();
        want.sort_unstable();
        let mut sorted = got.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, want, "{line}");

        for column in [
            "plugin",
            "database",
            "active",
            "active_pid",
            "confirmed_flush_lsn",
        ] {
            assert_eq!(line[column], row[column], "{column} of {name}");
        }
        assert_eq!(line["restart_lsn"], row["restart_lsn"], "{name}");
        assert_eq!(line["temporary"], Value::Bool(false));
        assert_eq!(line["active"], Value::Bool(false));
        assert_eq!(
            line["two_phase"],
            row.get("two_phase").cloned().unwrap_or(Value::Bool(false))
        );
        assert_eq!(
            line["wal_status"],
            row.get("wal_status").cloned().unwrap_or(Value::Null)
        );
        for key in KEYS_17.iter().filter(|_| server_major() >= 17) {
            if *key != "inactive_since" {
                assert_eq!(line[*key], row[*key], "{key}");
            }
        }
        // Current WAL − the slot's positions, the WAL position read around
        // the run (other tests write WAL meanwhile).
        let confirmed = parse_lsn(row["confirmed_flush_lsn"].as_str().unwrap());
        let restart = parse_lsn(row["restart_lsn"].as_str().unwrap());
        let lag = line["lag_bytes"].as_u64().unwrap();
        let retained = line["retained_bytes"].as_u64().unwrap();
        assert!(
            lag > 0 && (before - confirmed..=after - confirmed).contains(&lag),
            "lag {lag} outside {}..={}",
            before - confirmed,
            after - confirmed
        );
        assert!(
            (before - restart..=after - restart).contains(&retained),
            "retained {retained} outside {}..={}",
            before - restart,
            after - restart
        );
    }
    if server_major() >= 17 {
        assert!(
            lines[0]["inactive_since"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z') && t.contains('T')),
            "{}",
            lines[0]
        );
    }
}

#[test]
fn an_active_slot_shows_its_walsender_and_what_it_confirmed() {
    let db = Cluster::shared().new_db("status_active");
    db.sql(
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         CREATE PUBLICATION p FOR TABLE t;",
    );
    let slot = format!("{}_s", db.name);
    let mut p = Proc::spawn(&db.stream_args(&slot, "p"), &[]);
    p.wait_stderr("created slot", TIMEOUT);
    db.insert_each(1..=2);
    p.wait_lines(2, TIMEOUT);
    db.wait_confirmed(&slot, &db.current_wal_lsn(), TIMEOUT);

    let lines = status(&db, &["-S", &slot]);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let row = server_row(&db, &slot);
    assert_eq!(lines[0]["active"], Value::Bool(true));
    assert_eq!(lines[0]["active_pid"], row["active_pid"]);
    assert!(lines[0]["active_pid"].as_i64().is_some_and(|pid| pid > 0));
    assert_eq!(lines[0]["confirmed_flush_lsn"], row["confirmed_flush_lsn"]);
    if server_major() >= 17 {
        assert_eq!(lines[0]["inactive_since"], Value::Null);
    }
    p.signal("TERM");
    assert_eq!(p.wait_exit(TIMEOUT).code, Some(0));
}

#[test]
fn a_missing_slot_exits_2_naming_it() {
    let db = Cluster::shared().new_db("status_missing");
    let mut args = vec_of(&["status", "-S", "no_such_slot"]);
    args.extend(db.conn_args());
    let out = run(&args, &[], TIMEOUT);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stdout_lines.is_empty(), "{out:?}");
    let line = out.stderr.trim();
    assert!(
        !line.contains('\n') && line.contains("\"no_such_slot\"") && line.contains(&db.name),
        "{line}"
    );
    // No slot at all is no error: nothing to print.
    assert!(status(&db, &[]).is_empty());
}

/// On a terminal the slots come as a table (script(1) gives pgstream one).
#[test]
fn a_terminal_gets_a_table() {
    let db = Cluster::shared().new_db("status_tty");
    let slot = format!("{}_s", db.name);
    db.sql(&format!(
        "SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput')"
    ));
    let mut words = vec![crate::harness::pgstream_bin().display().to_string()];
    words.extend(vec_of(&["status"]));
    words.extend(db.conn_args());
    let line: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let out = Command::new("script")
        .args(["-qec", &line.join(" "), "/dev/null"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() == 2 && lines[0].starts_with("SLOT "), "{text}");
    assert!(lines[1].starts_with(&format!("{slot} ")), "{text}");
}

/// On a hot standby (16+ has logical slots there) the lag is measured
/// against the replay position, the WAL it has and can decode (it has no
/// current WAL position of its own: pg_current_wal_lsn() fails there).
#[test]
fn on_a_standby_lag_is_against_the_replay_position() {
    let Some(bin) = ha_bin(16, "logical slots on a standby") else {
        return;
    };
    let primary = Cluster::start_with_bin(&bin, &[]);
    let standby = primary.make_standby("sb", &[]);
    let db = primary.new_db("status_standby");
    db.sql("CREATE TABLE t (id int PRIMARY KEY, v text);");
    let sdb = db.on(&standby);
    let replay = || parse_lsn(&sdb.sql("SELECT pg_last_wal_replay_lsn()"));
    let slot = format!("{}_s", db.name);
    let (server, name, create) = (
        standby.server().clone(),
        db.name.clone(),
        format!("SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput')"),
    );
    wait_until("the database on the standby", TIMEOUT, || {
        sdb.try_sql("SELECT count(*) FROM t").ok()
    });
    // Creating a slot on a standby waits for a snapshot from the primary.
    let creating = std::thread::spawn(move || server.sql(&name, &create));
    wait_until("the slot on the standby", TIMEOUT, || {
        primary.sql("postgres", "SELECT pg_log_standby_snapshot()");
        creating.is_finished().then_some(())
    });
    creating.join().expect("slot created");
    db.insert_each(1..=3);
    let written = parse_lsn(&db.current_wal_lsn());
    wait_until("the standby to replay the inserts", TIMEOUT, || {
        (replay() >= written).then_some(())
    });

    let before = replay();
    let lines = status(&sdb, &["-S", &slot]);
    let after = replay();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let confirmed = parse_lsn(lines[0]["confirmed_flush_lsn"].as_str().unwrap());
    let lag = lines[0]["lag_bytes"].as_u64().unwrap();
    assert!(
        lag > 0 && (before - confirmed..=after - confirmed).contains(&lag),
        "lag {lag} outside {}..={}",
        before - confirmed,
        after - confirmed
    );
    assert_eq!(
        lines[0]["confirmed_flush_lsn"],
        server_row(&sdb, &slot)["confirmed_flush_lsn"]
    );
}
