//! The catalog connection while streaming (issue "never a silent gap",
//! item 10): a catalog connection that is lost or hangs is replaced without
//! stalling the stream, and nothing is lost or repeated.

use crate::harness::{vec_of, wait_until, Proc, TestDb, TIMEOUT};

/// Streams a database whose publication takes every table, with a status
/// update every second; returns it once the first row is out.
fn streaming(prefix: &str) -> (TestDb, Proc, String) {
    let db = crate::harness::Cluster::shared().new_db(prefix);
    db.sql("CREATE TABLE t (id int PRIMARY KEY); CREATE PUBLICATION p FOR ALL TABLES");
    let slot = format!("{}_cat", db.name);
    let mut args = db.stream_args(&slot, "p");
    args.extend(vec_of(&["-s", "1", "-v"]));
    let mut proc = Proc::spawn(&args, &[]);
    proc.wait_stderr("streaming from slot", TIMEOUT);
    db.sql("INSERT INTO t VALUES (1)");
    proc.wait_lines(1, TIMEOUT);
    (db, proc, slot)
}

/// The pid of pgstream's catalog backend (not its walsender).
fn catalog_backend(db: &TestDb) -> Option<String> {
    let pid = db.sql(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
         AND application_name = 'pgstream' AND backend_type = 'client backend'",
    );
    (!pid.is_empty()).then_some(pid)
}

fn walsender(db: &TestDb, slot: &str) -> String {
    db.sql(&format!(
        "SELECT active_pid FROM pg_replication_slots WHERE slot_name = '{slot}'"
    ))
}

/// A table whose first change needs a catalog look-up (its enum type), and
/// one more row in `t`.
const NEEDS_LOOK_UP: &str = "CREATE TYPE mood AS ENUM ('ok', 'meh'); \
    CREATE TABLE t2 (id int PRIMARY KEY, m mood); \
    INSERT INTO t2 VALUES (1, 'meh'); INSERT INTO t VALUES (2)";

/// The three rows, each once, in commit order.
/// The walsender is still `sender` (the stream went on, not restarted),
/// and SIGTERM stops pgstream cleanly.
fn assert_same_stream_then_stop(db: &TestDb, slot: &str, sender: &str, proc: &mut Proc) {
    assert_eq!(
        walsender(db, slot),
        sender,
        "the stream went on, not restarted"
    );
    proc.signal("TERM");
    let out = proc.wait_exit(TIMEOUT);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
}

fn assert_rows_once(lines: &[String]) {
    let rows: Vec<(String, String)> = crate::harness::json_lines(lines)
        .iter()
        .map(|v| {
            (
                v["table"].as_str().unwrap().to_string(),
                v["new"].to_string(),
            )
        })
        .collect();
    let want = [
        ("t", r#"{"id":1}"#),
        ("t2", r#"{"id":1,"m":"meh"}"#),
        ("t", r#"{"id":2}"#),
    ]
    .map(|(t, n)| (t.to_string(), n.to_string()));
    assert_eq!(rows, want, "{lines:?}");
}

#[test]
fn terminated_catalog_backend_is_replaced_in_place_and_nothing_is_lost() {
    let (db, mut proc, slot) = streaming("catalog");
    let sender = walsender(&db, &slot);
    let old = catalog_backend(&db).expect("pgstream's catalog backend");
    db.sql(&format!("SELECT pg_terminate_backend({old})"));
    wait_until("the catalog backend to go", TIMEOUT, || {
        catalog_backend(&db).is_none().then_some(())
    });

    db.sql(NEEDS_LOOK_UP);
    let lines = proc.wait_lines(3, TIMEOUT);
    assert_rows_once(&lines);
    assert!(
        proc.stderr()
            .contains("reconnecting the catalog connection"),
        "{}",
        proc.stderr()
    );
    let new = catalog_backend(&db).expect("a new catalog backend");
    assert_ne!(new, old);
    assert_same_stream_then_stop(&db, &slot, &sender, &mut proc);
    assert_rows_once(&proc.lines());
}

/// Sends SIGCONT to a stopped backend when the test ends, however it ends.
struct Stopped(String);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-s", "CONT", &self.0])
            .status();
    }
}

/// A catalog backend that stops answering (SIGSTOP: like a connection a NAT
/// dropped, no FIN, no RST): status updates keep reaching the server while
/// the look-up waits, and once it times out a new catalog connection answers.
#[test]
fn hung_catalog_backend_keeps_status_updates_going_and_is_replaced() {
    let (db, mut proc, slot) = streaming("catalog");
    let sender = walsender(&db, &slot);
    let old = catalog_backend(&db).expect("pgstream's catalog backend");
    let stopped = std::process::Command::new("kill")
        .args(["-s", "STOP", &old])
        .status()
        .unwrap();
    assert!(stopped.success());
    let _cont = Stopped(old.clone());

    let t0 = db.sql(&format!(
        "{NEEDS_LOOK_UP}; SELECT extract(epoch FROM clock_timestamp())"
    ));
    let t0 = t0.lines().last().unwrap().to_string();
    // Until the rows come out, each status update the server receives from
    // the same walsender's client shows as a new reply_time.
    let mut replies = std::collections::BTreeSet::new();
    let lines = wait_until("the rows after the look-up", TIMEOUT, || {
        if proc.lines().len() >= 3 {
            return Some(proc.lines());
        }
        let reply = db.sql(&format!(
            "SELECT extract(epoch FROM reply_time) FROM pg_stat_replication \
             WHERE pid = {sender} AND extract(epoch FROM reply_time) > {t0}"
        ));
        if !reply.is_empty() {
            replies.insert(reply);
        }
        None
    });
    assert!(
        replies.len() >= 3,
        "status updates while the look-up hung: {replies:?} since {t0}"
    );
    assert_rows_once(&lines);
    assert!(
        proc.stderr()
            .contains("reconnecting the catalog connection"),
        "{}",
        proc.stderr()
    );
    assert_ne!(catalog_backend_other_than(&db, &old), None);
    assert_same_stream_then_stop(&db, &slot, &sender, &mut proc);
}

/// A pgstream catalog backend other than `old`.
fn catalog_backend_other_than(db: &TestDb, old: &str) -> Option<String> {
    let pid = db.sql(&format!(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
         AND application_name = 'pgstream' AND backend_type = 'client backend' AND pid <> {old}"
    ));
    (!pid.is_empty()).then_some(pid)
}
