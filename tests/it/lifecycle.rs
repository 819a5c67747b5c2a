//! Lifecycle: stopping (`--end-lsn`, `--max-changes`, signals, a reader that
//! goes away, `kill -9`), what is acknowledged when (SPEC §3), slot handling
//! (`--temporary-slot`, `--drop-slot`, `--no-create-slot`, reuse), `--file`,
//! transports, and a slow reader that must not be timed out (SPEC §1, §3, §5).
//!
//! Workloads that a following `--end-lsn now` run must see are committed with
//! `synchronous_commit = on`: the test cluster runs with it off, and an
//! asynchronously committed transaction is not yet flushed, so it is not
//! before "the server's WAL position" (which logical decoding can only read
//! up to its flush position) until the WAL writer gets to it.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::io::AsRawFd;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, ExitStatus, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::harness::{
    command, json_lines, parse_lsn, run, vec_of, wait_until, Cluster, Output, Proc, TestDb, TIMEOUT,
};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A database with `t (id int primary key, v text)` published as `pub`, and
/// an unpublished table `other`.
fn setup(prefix: &str) -> TestDb {
    let db = Cluster::shared().new_db(prefix);
    db.sql(
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         CREATE TABLE other (id int PRIMARY KEY, v text);
         CREATE PUBLICATION pub FOR TABLE t;",
    );
    db
}

/// The WAL position up to which the server has flushed (what logical
/// decoding can reach): monotonic, and past every synchronous commit so far.
fn flush_lsn(db: &TestDb) -> String {
    db.sql("SELECT pg_current_wal_flush_lsn()")
}

/// `stream_args` plus `extra`.
fn args(db: &TestDb, slot: &str, extra: &[&str]) -> Vec<String> {
    let mut a = db.stream_args(slot, "pub");
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

/// Runs pgstream to completion and asserts exit 0.
fn run_ok(db: &TestDb, slot: &str, extra: &[&str]) -> Output {
    let out = run(&args(db, slot, extra), &[], TIMEOUT);
    assert_eq!(
        out.code,
        Some(0),
        "pgstream {extra:?} should exit 0\n{out:#?}"
    );
    out
}

/// Creates the slot with a first `--end-lsn now` run, which must emit nothing.
fn create_slot(db: &TestDb, slot: &str) {
    let out = run_ok(db, slot, &["--end-lsn", "now"]);
    assert!(
        out.stdout_lines.is_empty(),
        "a run that creates the slot has nothing to emit: {:?}",
        out.stdout_lines
    );
    assert!(db.slot_exists(slot), "slot {slot} was not created");
}

/// `(op, key.id)` of each line.
fn ops(lines: &[String]) -> Vec<(String, i64)> {
    json_lines(lines)
        .iter()
        .map(|v| {
            let op = v["op"].as_str().unwrap_or_default().to_string();
            let id = v["key"]["id"]
                .as_i64()
                .unwrap_or_else(|| panic!("no key.id in {v}"));
            (op, id)
        })
        .collect()
}

/// The lines that are not `begin`/`commit` events.
fn changes(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .zip(json_lines(lines))
        .filter(|(_, v)| !matches!(v["op"].as_str(), Some("begin" | "commit")))
        .map(|(l, _)| l.clone())
        .collect()
}

/// key.id of each line (every line must be an insert).
fn insert_ids(lines: &[String]) -> Vec<i64> {
    ops(lines)
        .into_iter()
        .map(|(op, id)| {
            assert_eq!(op, "insert", "unexpected op for id {id}");
            id
        })
        .collect()
}

fn range(ids: std::ops::RangeInclusive<i64>) -> Vec<i64> {
    ids.collect()
}

/// A child started with `harness::command` (custom stdio): killed and reaped
/// if the test ends early.
struct Guard(Child);

impl Guard {
    /// Polls for the exit; None on timeout (the child is left running).
    fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.0.try_wait().expect("try_wait") {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    fn signal(&self, sig: &str) {
        let st = std::process::Command::new("kill")
            .args(["-s", sig, &self.0.id().to_string()])
            .status()
            .expect("run kill");
        assert!(st.success(), "kill -s {sig} failed");
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads a pipe to the end on a thread.
fn capture<R: Read + Send + 'static>(mut r: R) -> JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// Bytes waiting in a pipe (FIONREAD on its read end).
fn pipe_bytes(fd: &impl AsRawFd) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: a valid fd and a pointer to a c_int, as FIONREAD expects.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut n) };
    assert_eq!(
        rc,
        0,
        "ioctl(FIONREAD): {}",
        std::io::Error::last_os_error()
    );
    n as usize
}

/// Waits until the pipe holds (nearly) its default 64 KiB capacity: the
/// writer is blocked on a reader that does not read.
fn wait_pipe_full(fd: &impl AsRawFd, child: &mut Guard) {
    wait_until(
        "pgstream to fill its stdout pipe",
        Duration::from_secs(90),
        || {
            if let Ok(Some(st)) = child.0.try_wait() {
                panic!("pgstream exited ({st}) before filling its output pipe");
            }
            (pipe_bytes(fd) >= 60_000).then_some(())
        },
    );
}

fn status_desc(st: &ExitStatus) -> String {
    match (st.code(), st.signal()) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(s)) => format!("signal {s}"),
        _ => format!("{st}"),
    }
}

// ---------------------------------------------------------------------------
// --end-lsn
// ---------------------------------------------------------------------------

#[test]
fn end_lsn_now_drains_the_backlog_and_a_second_run_emits_nothing() {
    let db = setup("");
    let slot = "lc_end_now";

    // Run 1 creates the slot, has nothing to emit.
    let start1 = flush_lsn(&db);
    create_slot(&db, slot);
    db.wait_confirmed(slot, &start1, TIMEOUT);

    // A workload of three transactions.
    db.sql_sync(
        "INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c');
         UPDATE t SET v = 'A' WHERE id = 1;
         DELETE FROM t WHERE id = 2;",
    );

    // Run 2 emits exactly the workload.
    let start2 = flush_lsn(&db);
    let out = run_ok(&db, slot, &["--end-lsn", "now"]);
    let expected: Vec<(String, i64)> = [
        ("insert", 1),
        ("insert", 2),
        ("insert", 3),
        ("update", 1),
        ("delete", 2),
    ]
    .iter()
    .map(|(op, id)| (op.to_string(), *id))
    .collect();
    assert_eq!(ops(&out.stdout_lines), expected, "run 2 output");
    assert!(!out.stdout_unterminated);
    // Nothing left unacknowledged after a clean --end-lsn stop.
    let c2 = db.wait_confirmed(slot, &start2, TIMEOUT);
    eprintln!("run 2 started at {start2}, slot confirmed {c2}");

    // Run 3: the cron job run again emits nothing.
    let start3 = flush_lsn(&db);
    let out = run_ok(&db, slot, &["--end-lsn", "now"]);
    assert!(
        out.stdout_lines.is_empty(),
        "a second drain emitted again: {:?}",
        out.stdout_lines
    );
    db.wait_confirmed(slot, &start3, TIMEOUT);
}

#[test]
fn end_lsn_explicit_stops_between_transactions() {
    let db = setup("");
    let slot = "lc_end_explicit";
    create_slot(&db, slot);

    db.insert_each(1..=1);
    // Taken after the first commit was flushed, before the second begins.
    let between = flush_lsn(&db);
    db.insert_each(2..=2);
    assert!(parse_lsn(&flush_lsn(&db)) > parse_lsn(&between));

    // -v -v: the status updates are logged, for the failure report.
    let first = run_ok(&db, slot, &["-v", "-v", "--end-lsn", &between]);
    assert_eq!(
        insert_ids(&first.stdout_lines),
        [1],
        "--end-lsn {between} emits only the transaction committed before it"
    );

    db.wait_slot_inactive(slot, TIMEOUT);
    let out = run_ok(&db, slot, &["--end-lsn", "now"]);
    assert_eq!(
        insert_ids(&out.stdout_lines),
        [2],
        "the next run emits only the second transaction (the --end-lsn {between} run must \
         have acknowledged the first, slot now at {:?});\n--- stderr of the --end-lsn run:\n{}",
        db.confirmed_flush_lsn(slot),
        first.stderr
    );
}

/// Transaction 1 has one published change followed, in the same
/// transaction, by many unpublished ones: its Commit reaches pgstream well
/// after its only line. Transaction 2 has one change. Returns a WAL position
/// between the two.
fn late_commit_workload(db: &TestDb) -> String {
    db.sql_sync(
        "BEGIN;
         INSERT INTO t VALUES (1, 'x');
         INSERT INTO other SELECT g, 'x' FROM generate_series(1, 100000) g;
         COMMIT;",
    );
    let between = flush_lsn(db);
    db.insert_each(2..=2);
    between
}

/// A run that stops (`stop_args`) right after transaction 1 of
/// [`late_commit_workload`] must acknowledge it: the next run emits only
/// transaction 2 (SPEC §1 --end-lsn/--max-changes: "everything written
/// acknowledged"; §3: "a restart repeats nothing").
fn stop_after_late_commit(slot: &str, stop_args: &dyn Fn(&str) -> Vec<String>) {
    let db = setup(&format!("lc_{slot}"));
    create_slot(&db, slot);
    let between = late_commit_workload(&db);
    let stop = stop_args(&between);
    let mut extra: Vec<&str> = vec!["-v", "-v"];
    extra.extend(stop.iter().map(String::as_str));
    let first = run_ok(&db, slot, &extra);
    assert_eq!(insert_ids(&first.stdout_lines), [1], "{stop:?}");

    db.wait_slot_inactive(slot, TIMEOUT);
    let out = run_ok(&db, slot, &["--end-lsn", "now"]);
    assert_eq!(
        insert_ids(&out.stdout_lines),
        [2],
        "after a clean {stop:?} stop at the end of transaction 1, the next run must not repeat it \
         (slot at {:?});\n--- stderr of the {stop:?} run:\n{}",
        db.confirmed_flush_lsn(slot),
        first.stderr
    );
}

#[test]
fn max_changes_acknowledges_a_commit_that_arrives_after_its_last_line() {
    stop_after_late_commit("lc_late_commit_max", &|_| {
        vec!["--max-changes".into(), "1".into()]
    });
}

#[test]
fn end_lsn_acknowledges_a_commit_that_arrives_after_its_last_line() {
    stop_after_late_commit("lc_late_commit_end", &|between| {
        vec!["--end-lsn".into(), between.into()]
    });
}

// ---------------------------------------------------------------------------
// --max-changes
// ---------------------------------------------------------------------------

#[test]
fn max_changes_stops_at_a_transaction_boundary_without_splitting_or_repeating() {
    let db = setup("");
    let slot = "lc_max_changes";
    create_slot(&db, slot);

    db.sql_sync(
        "INSERT INTO t VALUES (1, 'x'), (2, 'x'), (3, 'x');
         INSERT INTO t VALUES (4, 'x'), (5, 'x'), (6, 'x');
         INSERT INTO t VALUES (7, 'x'), (8, 'x'), (9, 'x');",
    );

    // The 4th change is in the second transaction: both come whole.
    let out = run_ok(&db, slot, &["--max-changes", "4"]);
    assert_eq!(
        insert_ids(&out.stdout_lines),
        range(1..=6),
        "--max-changes 4 stops at the end of the transaction holding the 4th change"
    );
    let json = out.json();
    assert_eq!(json[3]["commit_lsn"], json[5]["commit_lsn"]);
    assert_ne!(json[2]["commit_lsn"], json[3]["commit_lsn"]);

    // The next batch: the third transaction, whole (only 3 changes are left,
    // so --end-lsn now ends the run).
    let out = run_ok(&db, slot, &["--max-changes", "4", "--end-lsn", "now"]);
    assert_eq!(
        insert_ids(&out.stdout_lines),
        range(7..=9),
        "the next batch neither repeats nor splits a transaction"
    );

    let out = run_ok(&db, slot, &["--max-changes", "4", "--end-lsn", "now"]);
    assert!(out.stdout_lines.is_empty(), "{:?}", out.stdout_lines);
}

// ---------------------------------------------------------------------------
// Signals
// ---------------------------------------------------------------------------

/// Streams, stops with `sig`, then checks a later run resumes exactly after
/// what the stopped run printed.
fn signal_stop_then_resume(sig: &str, slot: &str) {
    let db = setup(&format!("lc_sig_{}", sig.to_lowercase()));
    create_slot(&db, slot);

    // --include-tx: waiting for the last `commit` line (not just the last
    // change) makes sure pgstream has read every Commit before the signal;
    // a transaction whose Commit it has not read yet is "cut by the stop"
    // and may legitimately come again. -v -v: for the failure report.
    let mut p = Proc::spawn(&args(&db, slot, &["--include-tx", "-v", "-v"]), &[]);
    // Several transactions (5 × 2 rows) while it streams.
    for tx in 0..5 {
        let a = tx * 2 + 1;
        db.sql_sync(&format!(
            "INSERT INTO t VALUES ({a}, 'x'), ({}, 'x')",
            a + 1
        ));
    }
    p.wait_lines(20, TIMEOUT);

    let t0 = Instant::now();
    p.signal(sig);
    let out = p.wait_exit(Duration::from_secs(10));
    let took = t0.elapsed();
    eprintln!("SIG{sig}: pgstream exited in {took:?} (spec: within 2 s)");
    let stopped = &out;
    assert_eq!(out.code, Some(0), "SIG{sig} is a clean stop\n{out:#?}");
    assert!(
        !out.stdout_unterminated,
        "stdout must end with a complete line after SIG{sig}"
    );
    let json = out.json();
    let kinds: Vec<&str> = json
        .iter()
        .map(|v| v["op"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(
        kinds,
        ["begin", "insert", "insert", "commit"].repeat(5),
        "five whole transactions"
    );
    assert_eq!(insert_ids(&changes(&out.stdout_lines)), range(1..=10));

    // While it is down.
    db.insert_each(11..=15);
    db.wait_slot_inactive(slot, TIMEOUT);
    let out = run_ok(&db, slot, &["--end-lsn", "now"]);
    assert_eq!(
        insert_ids(&out.stdout_lines),
        range(11..=15),
        "after SIG{sig}, the next run emits exactly the rows inserted while it was down \
         (slot at {:?});\n--- stderr of the stopped run:\n{}",
        db.confirmed_flush_lsn(slot),
        stopped.stderr
    );
}

#[test]
fn sigint_stops_cleanly_and_acknowledges_everything_written() {
    signal_stop_then_resume("INT", "lc_sigint");
}

#[test]
fn sigterm_stops_cleanly_and_acknowledges_everything_written() {
    signal_stop_then_resume("TERM", "lc_sigterm");
}

#[test]
fn sigint_mid_transaction_replays_that_transaction_whole() {
    let db = setup("");
    let slot = "lc_sig_mid_tx";
    create_slot(&db, slot);
    let big: i64 = 60_000;
    // Transaction A (rows 1-3), then a big transaction B (rows 4..).
    db.sql_sync(&format!(
        "INSERT INTO t VALUES (1, 'a'), (2, 'a'), (3, 'a');
             INSERT INTO t SELECT i, md5(i::text) FROM generate_series(4, {}) i;",
        big + 3
    ));

    let mut cmd = command(&args(&db, slot, &[]), &[]);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = Guard(cmd.spawn().expect("spawn pgstream"));
    let stdout = child.0.stdout.take().expect("stdout");
    let fd = stdout.as_raw_fd();
    let err = capture(child.0.stderr.take().expect("stderr"));
    let mut r = BufReader::new(stdout);
    let mut lines: Vec<String> = Vec::new();
    let mut unterminated = false;
    let mut read_line = |r: &mut BufReader<std::process::ChildStdout>, lines: &mut Vec<String>| {
        let mut l = String::new();
        let n = r.read_line(&mut l).expect("read stdout");
        if n == 0 {
            return false;
        }
        if l.ends_with('\n') {
            l.pop();
        } else {
            unterminated = true;
        }
        lines.push(l);
        true
    };
    // Read part of B, then stop reading: B cannot be written in full.
    while lines.len() < 1000 {
        assert!(read_line(&mut r, &mut lines), "stdout closed early");
    }
    wait_pipe_full(&fd, &mut child);

    let t0 = Instant::now();
    child.signal("INT");
    // Read on (so the stop can flush what it has), to the end.
    while read_line(&mut r, &mut lines) {}
    let st = child.wait_timeout(Duration::from_secs(10));
    let took = t0.elapsed();
    let stderr = err.join().unwrap();
    let st = st.unwrap_or_else(|| panic!("no exit within 10 s of SIGINT; stderr:\n{stderr}"));
    eprintln!(
        "SIGINT mid-transaction: exited ({}) in {took:?}, {} lines",
        status_desc(&st),
        lines.len()
    );
    assert_eq!(st.code(), Some(0), "stderr:\n{stderr}");
    assert!(!unterminated, "stdout must end with a complete line");
    let first = insert_ids(&lines);
    let n = first.len() as i64;
    assert_eq!(first, range(1..=n), "first run: in order, no gap");
    assert!(n < big + 3, "B was cut by the stop (test premise)");

    // B was cut: it comes again, whole; A does not.
    db.wait_slot_inactive(slot, TIMEOUT);
    let out = run(
        &args(&db, slot, &["--end-lsn", "now"]),
        &[],
        Duration::from_secs(120),
    );
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    let second = insert_ids(&out.stdout_lines);
    assert_eq!(
        second.first(),
        Some(&4),
        "the cut transaction comes again from its start"
    );
    assert_eq!(
        second.len() as i64,
        big,
        "the cut transaction comes again whole"
    );
    assert_eq!(second, range(4..=big + 3));
}

/// SPEC §3/§5: a stop whose output cannot drain acknowledges only the
/// transactions written in full, so the cut one comes again next run.
#[test]
fn stop_with_blocked_output_acknowledges_nothing_unwritten() {
    let db = setup("");
    let slot = "lc_blocked_stop";
    create_slot(&db, slot);

    let mut cmd = command(&args(&db, slot, &["-v", "-v"]), &[]);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = Guard(cmd.spawn().expect("spawn pgstream"));
    let stdout = child.0.stdout.take().expect("stdout"); // never read
    let err = capture(child.0.stderr.take().expect("stderr"));
    wait_until("pgstream to start streaming", TIMEOUT, || {
        db.walsender_streaming(slot).then_some(())
    });
    // One transaction whose line (~150 kB: more than a pipe holds, less
    // than one chunk) cannot fit in the pipe: the writer blocks in the
    // middle of it, for good.
    db.sql_sync("INSERT INTO t VALUES (1, repeat('x', 150000))");
    wait_pipe_full(&stdout, &mut child);

    // The stop cannot finish that line; it must not acknowledge it either.
    let t0 = Instant::now();
    child.signal("INT");
    let st = child.wait_timeout(Duration::from_secs(10));
    let took = t0.elapsed();
    drop(stdout);
    let st = st.expect("pgstream did not exit within 10 s of SIGINT");
    let stderr = err.join().unwrap();
    eprintln!(
        "SIGINT with blocked output: exited ({}) in {took:?}",
        status_desc(&st)
    );
    assert_eq!(st.code(), Some(0), "stderr:\n{stderr}");

    db.wait_slot_inactive(slot, TIMEOUT);
    let out = run_ok(&db, slot, &["--end-lsn", "now"]);
    assert_eq!(
        insert_ids(&out.stdout_lines),
        [1],
        "the transaction that was never written in full must come again (slot at {:?});\n\
         --- stderr of the stopped run:\n{stderr}",
        db.confirmed_flush_lsn(slot)
    );
}

#[test]
fn second_sigint_exits_130_while_output_is_blocked() {
    second_signal_exits_at_once("INT", 130);
}

#[test]
fn second_sigterm_exits_143_while_output_is_blocked() {
    second_signal_exits_at_once("TERM", 143);
}

/// A second `signal` while the stop waits for a blocked writer exits at once
/// with 128 + the signal's number (`code`).
fn second_signal_exits_at_once(signal: &str, code: i32) {
    let db = setup("");
    let slot = &format!("lc_second_sig{}", signal.to_lowercase());
    create_slot(&db, slot);
    db.sql_sync("INSERT INTO t SELECT i, md5(i::text) FROM generate_series(1, 50000) i");

    // -v so that the first signal's "stopping" shows on stderr.
    let mut cmd = command(&args(&db, slot, &["-v"]), &[]);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = Guard(cmd.spawn().expect("spawn pgstream"));
    let stdout = child.0.stdout.take().expect("stdout"); // never read
    let stderr = child.0.stderr.take().expect("stderr");
    let err_log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let err_thread = {
        let log = err_log.clone();
        thread::spawn(move || {
            let mut r = BufReader::new(stderr);
            let mut line = String::new();
            while r.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                log.lock().unwrap().push_str(&line);
                line.clear();
            }
        })
    };
    wait_pipe_full(&stdout, &mut child);

    // First signal: with the writer blocked, the stop waits for it (up to
    // ~1.5 s); a second signal in that window must exit at once.
    let t0 = Instant::now();
    child.signal(signal);
    wait_until(
        "pgstream to log that it is stopping",
        Duration::from_secs(10),
        || {
            if let Ok(Some(st)) = child.0.try_wait() {
                panic!(
                "pgstream exited ({}) after the first SIG{signal} although its output is blocked;\nstderr:\n{}",
                status_desc(&st),
                err_log.lock().unwrap()
            );
            }
            err_log.lock().unwrap().contains("stopping").then_some(())
        },
    );
    child.signal(signal);
    let st = child.wait_timeout(Duration::from_secs(10));
    let took = t0.elapsed();
    let st = st.unwrap_or_else(|| {
        panic!(
            "pgstream did not exit within 10 s of a second SIG{signal};\nstderr:\n{}",
            err_log.lock().unwrap()
        )
    });
    eprintln!(
        "two SIG{signal}s: pgstream exited ({}) in {took:?}",
        status_desc(&st)
    );
    drop(stdout);
    let _ = err_thread.join();
    assert_eq!(
        st.code(),
        Some(code),
        "a second SIG{signal} exits {code} (got {});\nstderr:\n{}",
        status_desc(&st),
        err_log.lock().unwrap()
    );
}

// ---------------------------------------------------------------------------
// Reader gone (EPIPE)
// ---------------------------------------------------------------------------

/// `pgstream … | head -n n`, spawned by hand to get pgstream's own status.
/// Returns (pgstream's status, its stderr, head's stdout lines).
fn pipe_into_head(pg_args: &[String], n: usize) -> (ExitStatus, String, Vec<String>, Duration) {
    let mut cmd = command(pg_args, &[]);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut pg = Guard(cmd.spawn().expect("spawn pgstream"));
    let pg_err = capture(pg.0.stderr.take().expect("stderr"));
    let mut head = {
        // The Command holds the pipe's read end until it is dropped: drop it
        // right after the spawn so that head is its only reader.
        let mut h = std::process::Command::new("head");
        h.args(["-n", &n.to_string()])
            .stdin(Stdio::from(pg.0.stdout.take().expect("stdout")))
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        Guard(h.spawn().expect("spawn head"))
    };
    let head_out = capture(head.0.stdout.take().expect("head stdout"));
    let head_st = head
        .wait_timeout(TIMEOUT)
        .expect("head did not get its lines in time");
    assert!(head_st.success(), "head: {head_st}");
    let head_lines: Vec<String> = head_out
        .join()
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let t0 = Instant::now();
    let st = pg.wait_timeout(Duration::from_secs(10));
    let took = t0.elapsed();
    let Some(st) = st else {
        drop(pg); // kill it, so that its stderr ends
        panic!("pgstream did not exit within 10 s of its reader going away");
    };
    let err = pg_err.join().unwrap();
    (st, err, head_lines, took)
}

#[test]
fn reader_gone_mid_stream_exits_0_quietly_and_loses_nothing() {
    let db = setup("");
    let slot = "lc_epipe";
    create_slot(&db, slot);
    // 20 single-row transactions whose lines (~100 kB each) are bigger than
    // a pipe: when head has read 5 lines, the 6th cannot have been written
    // in full, so transaction 6 cannot have been acknowledged.
    let sql: String = (1..=20)
        .map(|i| format!("INSERT INTO t VALUES ({i}, repeat('x', 100000));\n"))
        .collect();
    db.sql_sync(&sql);

    assert_eq!(insert_ids(&reader_gone(&db, slot, 5)), range(1..=5));

    db.wait_slot_inactive(slot, TIMEOUT);
    let out = run_ok(&db, slot, &["--end-lsn", "now"]);
    let ids = insert_ids(&out.stdout_lines);
    let first = *ids.first().unwrap_or_else(|| {
        panic!("the run after the reader went away emitted nothing: rows 6..=20 lost")
    });
    eprintln!("reader gone: the next run starts at row {first}");
    assert!(
        first <= 6,
        "the next run must start at or before row 6 (nothing unwritten acknowledged), starts at {first}"
    );
    assert_eq!(ids, range(first..=20), "the next run must have no gap");
}

/// Pipes pgstream into `head -n n`: it must exit 0 quietly (a clean stop);
/// returns the lines head printed.
fn reader_gone(db: &TestDb, slot: &str, n: usize) -> Vec<String> {
    let (st, err, head_lines, took) = pipe_into_head(&args(db, slot, &[]), n);
    eprintln!(
        "reader gone: pgstream exited ({}) {took:?} after head",
        status_desc(&st)
    );
    assert_eq!(
        st.code(),
        Some(0),
        "reader gone is a clean stop; stderr:\n{err}"
    );
    assert!(
        err.trim().is_empty(),
        "reader gone must exit quietly, stderr:\n{err}"
    );
    head_lines
}

#[test]
fn reader_gone_while_idle_exits_0_promptly() {
    let db = setup("");
    let slot = "lc_epipe_idle";
    create_slot(&db, slot);
    db.insert_each(1..=3);

    // head takes all there is and leaves; no more data arrives.
    assert_eq!(insert_ids(&reader_gone(&db, slot, 3)), range(1..=3));

    // Everything was written and read, and reader gone is a clean stop
    // (SPEC §5): the final status update acknowledged it, nothing repeats.
    db.wait_slot_inactive(slot, TIMEOUT);
    let out = run_ok(&db, slot, &["--end-lsn", "now"]);
    assert!(
        out.stdout_lines.is_empty(),
        "rows written before the reader left came again: {:?}",
        out.stdout_lines
    );
}

// ---------------------------------------------------------------------------
// kill -9
// ---------------------------------------------------------------------------

#[test]
fn kill_9_then_restart_loses_nothing() {
    let db = setup("");
    let slot = "lc_kill9";
    create_slot(&db, slot);

    // -s 1: the first half is acknowledged while streaming, before the kill.
    let mut p = Proc::spawn(&args(&db, slot, &["-s", "1"]), &[]);
    let rows = 50;
    db.insert_each(1..=25);
    let half = flush_lsn(&db);
    p.wait_lines(25, TIMEOUT);
    db.wait_confirmed(slot, &half, TIMEOUT);
    db.insert_each(26..=rows);
    p.wait_lines(30, TIMEOUT);
    p.signal("KILL");
    let out = p.wait_exit(TIMEOUT);
    assert_eq!(out.signal, Some(9), "{out:#?}");
    // A line cut by the kill is not a line.
    let mut first_lines = out.stdout_lines.clone();
    if out.stdout_unterminated {
        first_lines.pop();
    }
    let first = insert_ids(&first_lines);
    assert_eq!(
        first,
        range(1..=first.len() as i64),
        "first run: commit order, no gap"
    );

    db.wait_slot_inactive(slot, TIMEOUT);
    let out = run_ok(&db, slot, &["--end-lsn", "now"]);
    let second = insert_ids(&out.stdout_lines);
    eprintln!(
        "kill -9: first run printed {} rows, second run {} rows (from {:?})",
        first.len(),
        second.len(),
        second.first()
    );
    if first.len() < rows as usize {
        assert!(!second.is_empty(), "rows {}..={rows} lost", first.len() + 1);
    }
    if let Some(&k) = second.first() {
        assert!(
            k > 25,
            "rows acknowledged before the kill came again (from {k})"
        );
        assert_eq!(
            second,
            range(k..=rows),
            "the second run is a contiguous suffix in commit order"
        );
        assert!(
            k as usize <= first.len() + 1,
            "gap between the runs: first ended at {}, second starts at {k}",
            first.len()
        );
    }
    let union: BTreeSet<i64> = first.iter().chain(&second).copied().collect();
    assert_eq!(union, (1..=rows).collect(), "the union holds every row");
}

// ---------------------------------------------------------------------------
// --file
// ---------------------------------------------------------------------------

struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn file_output_is_appended_and_stdout_stays_empty() {
    let db = setup("");
    let slot = "lc_file";
    let file = TempFile(std::env::temp_dir().join(format!(
        "pgstream-it-lifecycle-{}-{}.jsonl",
        std::process::id(),
        db.name
    )));
    std::fs::write(&file.0, "existing line\n").unwrap();
    let path = file.0.display().to_string();

    let out = run_ok(&db, slot, &["-f", &path, "--end-lsn", "now"]);
    assert!(out.stdout_lines.is_empty(), "{:?}", out.stdout_lines);
    assert_eq!(std::fs::read_to_string(&file.0).unwrap(), "existing line\n");

    db.insert_each(1..=3);
    let out = run_ok(&db, slot, &["--file", &path, "--end-lsn", "now"]);
    assert!(
        out.stdout_lines.is_empty(),
        "with --file stdout stays empty: {:?}",
        out.stdout_lines
    );
    let text = std::fs::read_to_string(&file.0).unwrap();
    assert!(text.ends_with('\n'), "{text:?}");
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    assert_eq!(lines[0], "existing line", "existing content preserved");
    assert_eq!(insert_ids(&lines[1..]), range(1..=3));

    db.insert_each(4..=5);
    let out = run_ok(&db, slot, &["-f", &path, "--end-lsn", "now"]);
    assert!(out.stdout_lines.is_empty(), "{:?}", out.stdout_lines);
    let text = std::fs::read_to_string(&file.0).unwrap();
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    assert_eq!(lines[0], "existing line");
    assert_eq!(insert_ids(&lines[1..]), range(1..=5), "lines appended");
}

// ---------------------------------------------------------------------------
// Acknowledgement of an idle / filtered slot
// ---------------------------------------------------------------------------

#[test]
fn filtered_slot_acknowledges_the_wal_position() {
    let db = setup("");
    let slot = "lc_idle_ack";
    create_slot(&db, slot);

    let mut p = Proc::spawn(&args(&db, slot, &["-s", "1"]), &[]);
    wait_until("pgstream to hold the slot", TIMEOUT, || {
        db.walsender_streaming(slot).then_some(())
    });
    // Read before the writes: pgstream may acknowledge them before the
    // test has read anything after them.
    let before = db.confirmed_flush_lsn(slot).unwrap();
    // Writes that the publication filters out.
    for i in 0..5 {
        db.sql_sync(&format!(
            "INSERT INTO other SELECT g, 'x' FROM generate_series({}, {}) g",
            i * 100 + 1,
            i * 100 + 100
        ));
    }
    let target = flush_lsn(&db);
    assert!(parse_lsn(&before) < parse_lsn(&target));
    let t0 = Instant::now();
    let confirmed = db.wait_confirmed(slot, &target, Duration::from_secs(20));
    eprintln!(
        "filtered slot: confirmed {before} -> {confirmed} (target {target}) in {:?}",
        t0.elapsed()
    );

    p.signal("INT");
    let out = p.wait_exit(Duration::from_secs(10));
    assert_eq!(out.code, Some(0), "{out:#?}");
    assert!(out.stdout_lines.is_empty(), "{:?}", out.stdout_lines);
}

// ---------------------------------------------------------------------------
// Slots
// ---------------------------------------------------------------------------

#[test]
fn temporary_slot_lives_only_while_pgstream_runs() {
    let db = setup("");
    let slot = "lc_temp_slot";
    let mut p = Proc::spawn(&args(&db, slot, &["--temporary-slot"]), &[]);
    wait_until("the temporary slot to exist", TIMEOUT, || {
        db.slot_exists(slot).then_some(())
    });
    assert_eq!(
        db.sql(&format!(
            "SELECT temporary FROM pg_replication_slots WHERE slot_name = '{slot}'"
        )),
        "t",
        "the slot is temporary"
    );
    // It streams from it. (Wait for START_REPLICATION: a row committed
    // while the slot is still being created may precede its consistent point.)
    wait_until("pgstream to start streaming", TIMEOUT, || {
        db.walsender_streaming(slot).then_some(())
    });
    db.insert_each(1..=1);
    assert_eq!(insert_ids(&p.wait_lines(1, TIMEOUT)), [1]);

    p.signal("INT");
    let out = p.wait_exit(Duration::from_secs(10));
    assert_eq!(out.code, Some(0), "{out:#?}");
    wait_until("the temporary slot to be gone", TIMEOUT, || {
        (!db.slot_exists(slot)).then_some(())
    });
}

#[test]
fn drop_slot_drops_and_a_missing_slot_is_a_usage_error() {
    let db = setup("");
    let slot = "lc_drop_slot";
    db.sql(&format!(
        "SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput')"
    ));
    assert!(db.slot_exists(slot));

    let mut a = db.conn_args();
    a.extend([
        "--slot".to_string(),
        slot.to_string(),
        "--drop-slot".to_string(),
    ]);
    let out = run(&a, &[], TIMEOUT);
    assert_eq!(out.code, Some(0), "{out:#?}");
    assert!(out.stdout_lines.is_empty(), "{:?}", out.stdout_lines);
    assert!(!db.slot_exists(slot), "--drop-slot left the slot");

    let out = run(&a, &[], TIMEOUT);
    assert_eq!(out.code, Some(2), "dropping a missing slot: {out:#?}");
    assert!(out.stdout_lines.is_empty(), "{:?}", out.stdout_lines);
    let err = out.stderr.trim();
    assert_eq!(err.lines().count(), 1, "a one-line message:\n{err}");
    assert!(err.contains(slot), "the message names the slot: {err}");
}

#[test]
fn no_create_slot_with_a_missing_slot_exits_2() {
    let db = setup("");
    let slot = "lc_no_create";
    let out = run(
        &args(&db, slot, &["--no-create-slot", "--end-lsn", "now"]),
        &[],
        TIMEOUT,
    );
    assert_eq!(out.code, Some(2), "{out:#?}");
    assert!(out.stdout_lines.is_empty(), "{:?}", out.stdout_lines);
    assert!(
        out.stderr.contains(slot),
        "stderr names the slot: {}",
        out.stderr
    );
    assert_eq!(
        out.stderr.trim().lines().count(),
        1,
        "one line:\n{}",
        out.stderr
    );
    assert!(!db.slot_exists(slot), "--no-create-slot created the slot");
}

#[test]
fn reusing_a_slot_is_logged_at_debug_level() {
    let db = setup("");
    let slot = "lc_debug_log";
    let reuse_line = |stderr: &str| {
        stderr
            .lines()
            .find(|l| l.contains(slot) && l.to_lowercase().contains("reus"))
            .map(str::to_string)
    };

    let out = run_ok(&db, slot, &["-v", "-v", "--end-lsn", "now"]);
    assert!(
        out.stdout_lines.is_empty(),
        "logs never go to stdout: {:?}",
        out.stdout_lines
    );
    assert_eq!(
        reuse_line(&out.stderr),
        None,
        "the run that creates the slot does not reuse it"
    );

    let out = run_ok(&db, slot, &["-v", "-v", "--end-lsn", "now"]);
    assert!(
        out.stdout_lines.is_empty(),
        "logs never go to stdout: {:?}",
        out.stdout_lines
    );
    let line = reuse_line(&out.stderr)
        .unwrap_or_else(|| panic!("no debug line about reusing {slot}:\n{}", out.stderr));
    eprintln!("reuse: {line}");

    // Not at the default level.
    let out = run_ok(&db, slot, &["--end-lsn", "now"]);
    assert_eq!(reuse_line(&out.stderr), None, "{}", out.stderr);
}

// ---------------------------------------------------------------------------
// Transports
// ---------------------------------------------------------------------------

#[test]
fn unix_socket_and_tcp_both_stream() {
    let db = setup("");
    let transports = [("unix", db.conn_args()), ("tcp", db.tcp_conn_args())];
    let run_over = |name: &str, conn: &[String]| {
        let slot = format!("lc_transport_{name}");
        let mut a = conn.to_vec();
        a.extend(vec_of(&[
            "--slot",
            &slot,
            "--publication",
            "pub",
            "--end-lsn",
            "now",
        ]));
        let out = run(&a, &[], TIMEOUT);
        assert_eq!(out.code, Some(0), "{name}: {out:#?}");
        assert!(db.slot_exists(&slot), "{name}: slot not created");
        out
    };
    for (name, conn) in &transports {
        run_over(name, conn);
    }
    db.sql_sync("INSERT INTO t VALUES (1, 'one')");
    for (name, conn) in &transports {
        let out = run_over(name, conn);
        assert_eq!(insert_ids(&out.stdout_lines), [1], "{name}");
        assert_eq!(out.json()[0]["new"]["v"], "one", "{name}");
    }
}

// ---------------------------------------------------------------------------
// Slow reader
// ---------------------------------------------------------------------------

#[test]
fn slow_reader_is_not_disconnected() {
    let c = Cluster::shared();
    let db = setup("");
    let slot = "lc_slow_reader";
    create_slot(&db, slot);
    let rows: i64 = 200_000;
    db.sql_sync(&format!(
        "INSERT INTO t SELECT i, md5(i::text) FROM generate_series(1, {rows}) i"
    ));

    let mut cmd = command(&args(&db, slot, &["--end-lsn", "now"]), &[]);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = Guard(cmd.spawn().expect("spawn pgstream"));
    let stdout = child.0.stdout.take().expect("stdout");
    let err = capture(child.0.stderr.take().expect("stderr"));
    wait_pipe_full(&stdout, &mut child);
    let walsender = wait_until("pgstream to hold the slot", TIMEOUT, || {
        db.sql(&format!(
            "SELECT active_pid FROM pg_replication_slots WHERE slot_name = '{slot}' AND active"
        ))
        .parse::<i64>()
        .ok()
    });

    // The duration under test: 3 × wal_sender_timeout (5 s) without reading.
    // Checked along the way so that a disconnect is reported when it happens.
    let stall = Duration::from_secs(16);
    let t0 = Instant::now();
    while t0.elapsed() < stall {
        thread::sleep(Duration::from_millis(500));
        if let Ok(Some(st)) = child.0.try_wait() {
            panic!(
                "pgstream exited ({}) while its reader stalled",
                status_desc(&st)
            );
        }
        let pid = db.sql(&format!(
            "SELECT coalesce(active_pid, 0) FROM pg_replication_slots WHERE slot_name = '{slot}'"
        ));
        assert_eq!(
            pid,
            walsender.to_string(),
            "the walsender serving pgstream changed after {:?} of stalled output (timed out?)",
            t0.elapsed()
        );
    }
    assert!(pipe_bytes(&stdout) >= 60_000, "the pipe stayed full");

    // Now read everything.
    let reader = thread::spawn(move || {
        let mut ids = Vec::new();
        let mut bad = 0usize;
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("read stdout");
            match serde_json::from_str::<serde_json::Value>(&line)
                .ok()
                .and_then(|v| v["key"]["id"].as_i64())
            {
                Some(id) => ids.push(id),
                None => bad += 1,
            }
        }
        (ids, bad)
    });
    let st = child
        .wait_timeout(Duration::from_secs(300))
        .expect("pgstream did not finish draining within 300 s");
    let (ids, bad) = reader.join().unwrap();
    let stderr = err.join().unwrap();
    eprintln!(
        "slow reader: {} lines after the stall, exit {}",
        ids.len(),
        status_desc(&st)
    );
    assert_eq!(st.code(), Some(0), "stderr:\n{stderr}");
    assert_eq!(bad, 0, "lines without key.id");
    assert_eq!(ids.len() as i64, rows, "every row arrives exactly once");
    assert_eq!(ids, range(1..=rows), "in order");
    let lower = stderr.to_lowercase();
    assert!(
        !lower.contains("retrying") && !lower.contains("warn") && !lower.contains("error"),
        "pgstream had to reconnect or complained:\n{stderr}"
    );
    let log = c.server_log();
    let timeouts: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(&db.name) && l.contains("replication timeout"))
        .collect();
    assert!(
        timeouts.is_empty(),
        "the server timed pgstream's walsender out:\n{}",
        timeouts.join("\n")
    );
}
