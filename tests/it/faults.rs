//! Fault tolerance (SPEC §3, §5; issue 4 items 1, 2, 4, 8): `kill -9` at
//! several points of a continuous multi-table workload, server restarts
//! (fast, immediate), a terminated walsender, a cut TCP connection and a
//! network partition (through a proxy inside the test), a server that stays
//! down, a clean stop right after a transaction whose commit comes late,
//! huge transactions in bounded memory, and SIGTERM/SIGINT while a large
//! backlog streams. (A second signal, a reader that goes away and a slow
//! reader are in lifecycle.rs; bad input and an invalidated slot in
//! errors.rs.)
//!
//! What every test checks in the end is the delivery guarantee: the union of
//! all outputs holds every committed row, each run prints in commit order,
//! and what a run repeats is only the unacknowledged tail.
//!
//! Workloads that a later run must see are committed with
//! `synchronous_commit = on` (the test clusters run with it off): an
//! asynchronously committed transaction is lost by an immediate shutdown and
//! is not flushed, so not visible to logical decoding, when the commit
//! returns.
//!
//! Slot names all start with `faults_` (slots are cluster-wide).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, ChildStdout, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{
    command, format_lsn, json_lines, parse_lsn, run, wait_until, Cluster, Output, Proc, TestDb,
    TIMEOUT,
};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// `t (id int primary key, v text)` published as `pub`.
fn setup_t(db: &TestDb) {
    db.sql(
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         CREATE PUBLICATION pub FOR TABLE t;",
    );
}

fn create_slot(db: &TestDb, slot: &str) {
    db.sql(&format!(
        "SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput')"
    ));
}

/// `db.stream_args(slot, "pub")` plus `extra`.
fn args(db: &TestDb, slot: &str, extra: &[&str]) -> Vec<String> {
    let mut a = db.stream_args(slot, "pub");
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

fn wait_streaming(db: &TestDb, slot: &str, p: &mut Proc) {
    wait_until(&format!("pgstream to stream from {slot}"), TIMEOUT, || {
        if let Some(st) = p.try_wait() {
            panic!("pgstream exited ({st}) before streaming:\n{}", p.stderr());
        }
        db.walsender_streaming(slot).then_some(())
    });
}

/// Lines of an output that ended with a kill: a cut last line is not a line.
fn complete_lines(out: &Output) -> &[String] {
    let n = out.stdout_lines.len() - usize::from(out.stdout_unterminated);
    &out.stdout_lines[..n]
}

/// What the tests need of a change line.
#[derive(Debug, Clone)]
struct Row {
    table: String,
    id: i64,
    /// `new.k` when present (the transaction number of the kill -9 workload).
    k: Option<i64>,
    commit_lsn: u64,
    lsn: u64,
}

fn row(v: &Value) -> Row {
    let lsn = |f: &str| parse_lsn(v[f].as_str().unwrap_or_else(|| panic!("no {f} in {v}")));
    Row {
        table: v["table"].as_str().unwrap_or_default().to_string(),
        id: v["key"]["id"]
            .as_i64()
            .unwrap_or_else(|| panic!("no key.id in {v}")),
        k: v["new"]["k"].as_i64(),
        commit_lsn: lsn("commit_lsn"),
        lsn: lsn("lsn"),
    }
}

fn rows(lines: &[String]) -> Vec<Row> {
    json_lines(lines).iter().map(row).collect()
}

/// Asserts that a run printed in commit order: `(commit_lsn, lsn)` strictly
/// increasing.
fn assert_commit_order(what: &str, rows: &[Row]) {
    for (i, w) in rows.windows(2).enumerate() {
        assert!(
            (w[0].commit_lsn, w[0].lsn) < (w[1].commit_lsn, w[1].lsn),
            "{what}: line {} is not in commit order after line {i}: {:?} then {:?}",
            i + 1,
            w[0],
            w[1]
        );
    }
}

/// Polls `p`'s output until it holds every id of `want` (table `t`);
/// returns every row so far.
fn wait_ids(p: &mut Proc, want: std::ops::RangeInclusive<i64>, timeout: Duration) -> Vec<Row> {
    let what = format!("pgstream to print ids {want:?}");
    let deadline = Instant::now() + timeout;
    let mut rs: Vec<Row> = Vec::new();
    let mut seen: BTreeSet<i64> = BTreeSet::new();
    loop {
        // wait_lines panics with stderr and output if stdout closes.
        let lines = p.wait_lines(0, TIMEOUT);
        for r in rows(&lines[rs.len()..]) {
            seen.insert(r.id);
            rs.push(r);
        }
        if want.clone().all(|i| seen.contains(&i)) {
            return rs;
        }
        if let Some(st) = p.try_wait() {
            panic!("{what}: pgstream exited ({st});\nstderr:\n{}", p.stderr());
        }
        if Instant::now() >= deadline {
            let missing: Vec<i64> = want
                .clone()
                .filter(|i| !seen.contains(i))
                .take(20)
                .collect();
            panic!(
                "timed out after {timeout:?} waiting for {what}; missing (first 20) {missing:?};\nstderr:\n{}",
                p.stderr()
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// The waits of the "retrying in Ns" warnings so far, in order.
fn retry_waits(stderr: &str) -> Vec<u64> {
    stderr
        .lines()
        .filter_map(|l| {
            let rest = &l[l.find("retrying in ")? + "retrying in ".len()..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .collect()
}

fn count_retrying(stderr: &str) -> usize {
    stderr.lines().filter(|l| l.contains("retrying")).count()
}

/// Asserts that every "retrying" line is a warning.
fn assert_retries_are_warnings(stderr: &str) {
    for l in stderr.lines().filter(|l| l.contains("retrying")) {
        assert!(
            l.to_lowercase().contains("warn"),
            "a retry must be logged at warn level: {l:?}"
        );
    }
}

fn send_signal(pid: u32, sig: libc::c_int) {
    // SAFETY: plain kill(2) on a child we spawned and have not reaped.
    let rc = unsafe { libc::kill(pid as libc::pid_t, sig) };
    assert_eq!(
        rc,
        0,
        "kill({pid}, {sig}): {}",
        std::io::Error::last_os_error()
    );
}

/// A pgstream child with custom stdio: stdout read by a [`LineReader`],
/// stderr captured; killed and reaped if the test ends early.
struct Running {
    child: Child,
    stderr: Option<JoinHandle<String>>,
}

impl Running {
    fn spawn(args: &[String]) -> (Running, ChildStdout) {
        let mut cmd = command(args, &[]);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn pgstream");
        let stdout = child.stdout.take().expect("stdout");
        let mut err = child.stderr.take().expect("stderr");
        let stderr = thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = err.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        });
        (
            Running {
                child,
                stderr: Some(stderr),
            },
            stdout,
        )
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }

    /// Polls for the exit; None on timeout.
    fn wait_timeout(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.exited() {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Kills it if still running and returns its stderr.
    fn stderr(&mut self) -> String {
        if self.exited().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        self.stderr
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a [`LineReader`] saw.
#[derive(Debug, Default)]
struct Seen {
    lines: usize,
    bytes: u64,
    /// Bytes after the last `\n` at EOF (a torn line).
    partial: Vec<u8>,
    first: Option<String>,
    last: Option<String>,
    /// With `parse`: every line's row.
    rows: Vec<Row>,
    /// With `parse`: lines that are not JSON objects with key.id (first 5).
    bad: Vec<String>,
}

/// Reads a pipe continuously on a thread, line by line, keeping only a
/// partial line, the first and last lines, and (with `parse`) each line's
/// [`Row`]. `count` is the number of complete lines so far.
struct LineReader {
    count: Arc<AtomicUsize>,
    handle: JoinHandle<Seen>,
}

impl LineReader {
    fn spawn(mut r: ChildStdout, parse: bool) -> LineReader {
        let count = Arc::new(AtomicUsize::new(0));
        let c = count.clone();
        let handle = thread::spawn(move || {
            let mut seen = Seen::default();
            let mut buf = vec![0u8; 256 * 1024];
            let mut carry: Vec<u8> = Vec::new();
            loop {
                let n = match r.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                seen.bytes += n as u64;
                let mut data = &buf[..n];
                while let Some(nl) = data.iter().position(|&b| b == b'\n') {
                    let line: &[u8] = if carry.is_empty() {
                        &data[..nl]
                    } else {
                        carry.extend_from_slice(&data[..nl]);
                        &carry
                    };
                    let text = String::from_utf8_lossy(line);
                    if parse {
                        match serde_json::from_str::<Value>(&text) {
                            Ok(v) if v.is_object() && v["key"]["id"].is_i64() => {
                                seen.rows.push(row(&v))
                            }
                            _ => {
                                if seen.bad.len() < 5 {
                                    seen.bad.push(text.to_string());
                                }
                            }
                        }
                    }
                    if seen.first.is_none() {
                        seen.first = Some(text.to_string());
                    }
                    seen.last = Some(text.into_owned());
                    seen.lines += 1;
                    c.store(seen.lines, Ordering::SeqCst);
                    carry.clear();
                    data = &data[nl + 1..];
                }
                carry.extend_from_slice(data);
            }
            seen.partial = carry;
            seen
        });
        LineReader { count, handle }
    }

    fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    fn finish(self) -> Seen {
        self.handle.join().expect("reader thread")
    }
}

/// Peak resident set size (VmHWM) of a running process, in kB.
fn vm_hwm_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmHWM in /proc/{pid}/status:\n{status}"))
}

// ---------------------------------------------------------------------------
// 1. kill -9 at several points of a continuous multi-table workload
// ---------------------------------------------------------------------------

/// Three published tables; `work(n)` runs n transactions, each committed on
/// its own, transaction k inserting ids 2k-1 and 2k (column k = k) into two
/// of the tables in turn, with a short pause between transactions.
const MULTI_TABLE: &str = "
CREATE TABLE a (id bigint PRIMARY KEY, k int NOT NULL, v text);
CREATE TABLE b (LIKE a INCLUDING ALL);
CREATE TABLE c (LIKE a INCLUDING ALL);
CREATE PUBLICATION pub FOR TABLE a, b, c;
CREATE PROCEDURE work(n int) LANGUAGE plpgsql AS $$
BEGIN
  FOR k IN 1..n LOOP
    CASE k % 3
      WHEN 0 THEN
        INSERT INTO a VALUES (2 * k - 1, k, md5(k::text));
        INSERT INTO b VALUES (2 * k, k, md5(k::text));
      WHEN 1 THEN
        INSERT INTO b VALUES (2 * k - 1, k, md5(k::text));
        INSERT INTO c VALUES (2 * k, k, md5(k::text));
      ELSE
        INSERT INTO c VALUES (2 * k - 1, k, md5(k::text));
        INSERT INTO a VALUES (2 * k, k, md5(k::text));
    END CASE;
    COMMIT;
    PERFORM pg_sleep(0.004);
  END LOOP;
END $$;
";

/// `work(n)` as a psql script, for servers without procedures (10).
fn multi_table_script(n: i64) -> String {
    (1..=n)
        .map(|k| {
            let (first, second) = match k % 3 {
                0 => ("a", "b"),
                1 => ("b", "c"),
                _ => ("c", "a"),
            };
            format!(
                "BEGIN; INSERT INTO {first} VALUES ({}, {k}, md5('{k}')); \
                 INSERT INTO {second} VALUES ({}, {k}, md5('{k}')); COMMIT; \
                 SELECT pg_sleep(0.004);\n",
                2 * k - 1,
                2 * k
            )
        })
        .collect()
}

/// The table each id of the `work` workload goes to.
fn multi_table_of(id: i64) -> &'static str {
    let k = (id + 1) / 2;
    let first = id % 2 == 1;
    match (k % 3, first) {
        (0, true) | (2, false) => "a",
        (0, false) | (1, true) => "b",
        _ => "c",
    }
}

#[test]
fn kill_9_at_several_points_of_a_multi_table_workload_loses_nothing() {
    let db = Cluster::shared().new_db("faults_kill9");
    // Procedures that commit are PostgreSQL 11+: on 10 the same transactions
    // go one by one from psql.
    let procedures = crate::harness::server_major() >= 11;
    db.sql(if procedures {
        MULTI_TABLE
    } else {
        MULTI_TABLE.split("CREATE PROCEDURE").next().unwrap()
    });
    let slot = "faults_kill9";
    create_slot(&db, slot);
    let txns: i64 = 1500;

    let workload = {
        let server = db.server().clone();
        let name = db.name.clone();
        thread::spawn(move || {
            let work = if procedures {
                format!("CALL work({txns});")
            } else {
                multi_table_script(txns)
            };
            server.sql(&name, &format!("SET synchronous_commit = on; {work}"))
        })
    };

    // Where each run is killed: after `lines` lines; with `ack`, only once
    // it has acknowledged something (-s 1) and printed `more` lines after
    // that. Then a final drain.
    struct KillPoint {
        lines: usize,
        ack: bool,
        more: usize,
    }
    let kill_points = [
        // Early: most likely before any status update went out.
        KillPoint {
            lines: 50,
            ack: false,
            more: 0,
        },
        // Right after an acknowledgement.
        KillPoint {
            lines: 200,
            ack: true,
            more: 0,
        },
        // Well after one.
        KillPoint {
            lines: 100,
            ack: true,
            more: 400,
        },
    ];
    let mut runs: Vec<Vec<Row>> = Vec::new();
    // The slot's confirmed position when each run started.
    let mut starts: Vec<u64> = Vec::new();
    let mut killed_during_workload = 0;
    for kp in &kill_points {
        db.wait_slot_inactive(slot, TIMEOUT);
        starts.push(parse_lsn(
            &db.confirmed_flush_lsn(slot).expect("slot position"),
        ));
        let start = *starts.last().unwrap();
        let mut p = Proc::spawn(&args(&db, slot, &["-s", "1"]), &[]);
        p.wait_lines(kp.lines, TIMEOUT);
        if kp.ack {
            wait_until("pgstream to acknowledge something", TIMEOUT, || {
                if let Some(st) = p.try_wait() {
                    panic!("pgstream exited ({st}):\n{}", p.stderr());
                }
                db.confirmed_flush_lsn(slot)
                    .filter(|c| parse_lsn(c) > start)
                    .map(|_| ())
            });
            let n = p.lines().len();
            p.wait_lines(n + kp.more, TIMEOUT);
        }
        p.signal("KILL");
        if !workload.is_finished() {
            killed_during_workload += 1;
        }
        let out = p.wait_exit(TIMEOUT);
        assert_eq!(out.signal, Some(9), "{out:#?}");
        runs.push(rows(complete_lines(&out)));
    }
    workload.join().expect("the workload failed");
    assert!(
        killed_during_workload > 0,
        "test premise: pgstream is killed while the workload runs"
    );

    db.wait_slot_inactive(slot, TIMEOUT);
    starts.push(parse_lsn(
        &db.confirmed_flush_lsn(slot).expect("slot position"),
    ));
    let out = run(
        &args(&db, slot, &["--end-lsn", "now"]),
        &[],
        Duration::from_secs(120),
    );
    assert_eq!(out.code, Some(0), "the final drain: {out:#?}");
    assert!(
        !out.stdout_unterminated,
        "the final drain ended with a torn line"
    );
    runs.push(rows(&out.stdout_lines));

    eprintln!(
        "kill -9: {killed_during_workload} of {} kills while the workload ran; lines per run {:?}; slot at run start {:?}",
        kill_points.len(),
        runs.iter().map(Vec::len).collect::<Vec<_>>(),
        starts.iter().map(|&l| format_lsn(l)).collect::<Vec<_>>()
    );

    let last = runs.len() - 1;
    // commit_lsn of each transaction, the same in every run.
    let mut commit_of: BTreeMap<i64, u64> = BTreeMap::new();
    // Ids printed by the runs so far.
    let mut covered: BTreeSet<i64> = BTreeSet::new();
    for (r, run_rows) in runs.iter().enumerate() {
        let what = if r == last {
            "final drain".to_string()
        } else {
            let kp = &kill_points[r];
            match kp.ack {
                false => format!("run {} (killed after {} lines)", r + 1, kp.lines),
                true => format!(
                    "run {} (killed {} lines after an acknowledgement)",
                    r + 1,
                    kp.more
                ),
            }
        };
        assert_commit_order(&what, run_rows);

        // Rows are the workload's, in whole, consecutive transactions (only
        // the last one of a killed run may be cut).
        let mut groups: Vec<(i64, Vec<i64>)> = Vec::new();
        for row in run_rows {
            let k = row
                .k
                .unwrap_or_else(|| panic!("{what}: no new.k in {row:?}"));
            assert_eq!(
                row.table,
                multi_table_of(row.id),
                "{what}: table of {row:?}"
            );
            assert_eq!((row.id + 1) / 2, k, "{what}: transaction of {row:?}");
            let prev = commit_of.insert(k, row.commit_lsn);
            assert!(
                prev.is_none_or(|c| c == row.commit_lsn),
                "{what}: transaction {k} has commit_lsn {} here and {} elsewhere",
                format_lsn(row.commit_lsn),
                format_lsn(prev.unwrap_or(0))
            );
            match groups.last_mut() {
                Some((gk, ids)) if *gk == k => ids.push(row.id),
                _ => groups.push((k, vec![row.id])),
            }
        }
        for (i, (k, ids)) in groups.iter().enumerate() {
            if i > 0 {
                assert_eq!(
                    *k,
                    groups[i - 1].0 + 1,
                    "{what}: gap between transactions {} and {k}",
                    groups[i - 1].0
                );
            }
            let whole = vec![2 * k - 1, 2 * k];
            let cut_ok = r != last && i == groups.len() - 1 && *ids == [2 * k - 1];
            assert!(
                *ids == whole || cut_ok,
                "{what}: transaction {k} printed as {ids:?}, expected {whole:?}"
            );
        }

        // The first transaction no run before has printed in full.
        let first_uncovered = (1..=txns + 1)
            .find(|k| !(covered.contains(&(2 * k - 1)) && covered.contains(&(2 * k))))
            .unwrap();
        match run_rows.first() {
            Some(first) => {
                let k = first.k.unwrap();
                // What was acknowledged never comes again.
                assert!(
                    first.commit_lsn >= starts[r],
                    "{what} starts with transaction {k} at {}, before the slot's confirmed position {}",
                    format_lsn(first.commit_lsn),
                    format_lsn(starts[r])
                );
                // No gap: it starts at or before the first transaction not yet printed in full.
                assert!(
                    k <= first_uncovered,
                    "{what} starts at transaction {k}, but transaction {first_uncovered} was never printed in full: lost"
                );
            }
            None => assert!(
                first_uncovered > txns,
                "{what} printed nothing, but transaction {first_uncovered} was never printed in full"
            ),
        }
        let repeated: Vec<i64> = run_rows
            .iter()
            .filter(|row| covered.contains(&row.id))
            .map(|row| row.id)
            .collect();
        if r > 0 {
            // Repeats are only the tail of what came before: exactly the
            // earlier runs' rows from this run's first transaction on.
            if let Some(first) = run_rows.first() {
                let tail: Vec<i64> = covered
                    .iter()
                    .copied()
                    .filter(|&id| commit_of[&((id + 1) / 2)] >= first.commit_lsn)
                    .filter(|&id| {
                        run_rows
                            .last()
                            .is_some_and(|l| commit_of[&((id + 1) / 2)] <= l.commit_lsn)
                    })
                    .collect();
                assert_eq!(
                    repeated, tail,
                    "{what}: the repeated rows are not the earlier tail"
                );
            }
            eprintln!(
                "kill -9: {what}: {} lines, {} repeated (from transaction {:?}, first not printed in full before: {first_uncovered})",
                run_rows.len(),
                repeated.len(),
                run_rows.first().and_then(|r| r.k)
            );
        }
        covered.extend(run_rows.iter().map(|row| row.id));
    }
    let missing: Vec<i64> = (1..=2 * txns)
        .filter(|i| !covered.contains(i))
        .take(20)
        .collect();
    assert!(missing.is_empty(), "rows lost (first 20): {missing:?}");
    assert_eq!(covered.len() as i64, 2 * txns, "unexpected rows");
    // commit order agrees with the workload's order.
    let commits: Vec<u64> = commit_of.values().copied().collect();
    assert!(
        commits.windows(2).all(|w| w[0] < w[1]),
        "transactions did not come in commit order"
    );
}

// ---------------------------------------------------------------------------
// 2. Server restarts, a terminated walsender, a cut TCP connection, a
//    server that stays down
// ---------------------------------------------------------------------------

fn terminate_walsender(db: &TestDb, slot: &str) {
    let res = db.sql(&format!(
        "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots
         WHERE slot_name = '{slot}' AND active_pid IS NOT NULL"
    ));
    assert_eq!(res, "t", "no walsender of {slot} to terminate");
}

/// Inserts `n` rows as one transaction (ids `from..from+n`), synchronously.
fn insert_txn(db: &TestDb, from: i64, n: i64) {
    db.sql_sync(&format!(
        "INSERT INTO t SELECT i, md5(i::text) FROM generate_series({from}, {}) i",
        from + n - 1
    ));
}

#[test]
fn server_restarts_and_a_terminated_walsender_lose_nothing() {
    let c = Cluster::start(&[]);
    let db = c.new_db("faults_restart");
    setup_t(&db);
    let slot = "faults_restart";
    create_slot(&db, slot);

    let mut p = Proc::spawn(&args(&db, slot, &["-s", "1"]), &[]);
    wait_streaming(&db, slot, &mut p);
    db.insert_each(1..=10);
    wait_ids(&mut p, 1..=10, TIMEOUT);

    let mut next: i64 = 11;
    let mut retries = 0;
    for fault in [
        "restart -m fast",
        "restart -m immediate",
        "pg_terminate_backend",
    ] {
        // A transaction in flight when the fault hits (not waited for).
        insert_txn(&db, next, 2000);
        next += 2000;
        let t0 = Instant::now();
        match fault {
            "restart -m fast" => c.restart("fast"),
            "restart -m immediate" => c.restart("immediate"),
            _ => terminate_walsender(&db, slot),
        }
        // Rows committed after the fault.
        db.insert_each(next..=next + 9);
        next += 10;
        wait_ids(&mut p, 1..=next - 1, Duration::from_secs(120));
        let err = p.stderr();
        let now = count_retrying(&err);
        eprintln!(
            "{fault}: every row back after {:?}; retry warnings {retries} -> {now}",
            t0.elapsed()
        );
        assert!(
            now > retries,
            "{fault}: no \"retrying\" warning on stderr:\n{err}"
        );
        retries = now;
        assert!(p.try_wait().is_none(), "pgstream exited after {fault}");
        wait_streaming(&db, slot, &mut p);
    }

    p.signal("INT");
    let out = p.wait_exit(Duration::from_secs(10));
    assert_eq!(out.code, Some(0), "{out:#?}");
    assert!(!out.stdout_unterminated, "torn last line");
    assert_retries_are_warnings(&out.stderr);
    eprintln!("restarts: pgstream stderr:\n{}", out.stderr);
    let all = rows(&out.stdout_lines);
    let ids: BTreeSet<i64> = all.iter().map(|r| r.id).collect();
    assert_eq!(ids, (1..next).collect(), "every row, nothing else");
    eprintln!(
        "restarts: {} lines for {} rows ({} repeated)",
        all.len(),
        next - 1,
        all.len() as i64 - (next - 1)
    );

    // The clean stop acknowledged everything: nothing comes again.
    db.wait_slot_inactive(slot, TIMEOUT);
    let out = run(&args(&db, slot, &["--end-lsn", "now"]), &[], TIMEOUT);
    assert_eq!(out.code, Some(0), "{out:#?}");
    assert!(
        out.stdout_lines.is_empty(),
        "rows came again after a clean stop: {} lines",
        out.stdout_lines.len()
    );
}

#[test]
fn no_loop_exits_1_when_the_walsender_is_terminated() {
    let db = Cluster::shared().new_db("faults_noloop");
    setup_t(&db);
    let slot = "faults_no_loop";
    create_slot(&db, slot);

    let mut p = Proc::spawn(&args(&db, slot, &["--no-loop", "-s", "1"]), &[]);
    wait_streaming(&db, slot, &mut p);
    db.insert_each(1..=5);
    wait_ids(&mut p, 1..=5, TIMEOUT);
    terminate_walsender(&db, slot);
    let out = p.wait_exit(Duration::from_secs(10));
    eprintln!(
        "--no-loop, walsender terminated: {:?}, stderr {:?}",
        out.code, out.stderr
    );
    assert_eq!(out.code, Some(1), "{out:#?}");
    let err = out.stderr.trim();
    assert_eq!(err.lines().count(), 1, "a one-line message:\n{err}");
    assert!(!out.stdout_unterminated, "torn last line");
    let first: Vec<i64> = rows(&out.stdout_lines).iter().map(|r| r.id).collect();
    assert_eq!(first, (1..=5).collect::<Vec<_>>());

    // Nothing lost: the next run has whatever was not acknowledged, then more.
    db.insert_each(6..=8);
    db.wait_slot_inactive(slot, TIMEOUT);
    let out = run(&args(&db, slot, &["--end-lsn", "now"]), &[], TIMEOUT);
    assert_eq!(out.code, Some(0), "{out:#?}");
    let second: Vec<i64> = rows(&out.stdout_lines).iter().map(|r| r.id).collect();
    let start = *second.first().expect("rows 6..=8 lost");
    assert!(start <= 6, "gap: the next run starts at {start}");
    assert_eq!(second, (start..=8).collect::<Vec<_>>());
}

#[test]
fn server_that_stays_down_is_retried_with_growing_backoff_and_sigint_exits_0_at_once() {
    let c = Cluster::start(&[]);
    let db = c.new_db("faults_down");
    setup_t(&db);
    let slot = "faults_down";
    create_slot(&db, slot);

    let mut p = Proc::spawn(&args(&db, slot, &[]), &[]);
    wait_streaming(&db, slot, &mut p);
    db.insert_each(1..=3);
    wait_ids(&mut p, 1..=3, TIMEOUT);

    c.stop("fast");
    let down = Instant::now();
    let err = p.wait_stderr("retrying in 4s", Duration::from_secs(60));
    let waits = retry_waits(&err);
    eprintln!(
        "server down: retry waits {waits:?} within {:?}",
        down.elapsed()
    );
    assert_retries_are_warnings(&err);
    assert_eq!(waits.first(), Some(&1), "the first retry waits 1 s:\n{err}");
    assert!(
        waits.windows(2).all(|w| w[1] > w[0]),
        "the backoff must grow between attempts (no spinning): {waits:?}\n{err}"
    );

    // SIGINT during the 4 s wait.
    let t0 = Instant::now();
    p.signal("INT");
    let out = p.wait_exit(Duration::from_secs(10));
    let took = t0.elapsed();
    eprintln!(
        "server down: SIGINT during backoff exited {:?} in {took:?}",
        out.code
    );
    assert_eq!(
        out.code,
        Some(0),
        "SIGINT during backoff is a clean stop: {out:#?}"
    );
    assert!(
        took < Duration::from_secs(3),
        "SIGINT during a 4 s backoff must exit at once, took {took:?}"
    );
    let ids: Vec<i64> = rows(&out.stdout_lines).iter().map(|r| r.id).collect();
    assert_eq!(ids, [1, 2, 3]);

    // Started while the server is down (a unit that starts before its
    // database): it retries, then streams once the server is up.
    let mut p = Proc::spawn(&args(&db, slot, &["-s", "1"]), &[]);
    p.wait_stderr("retrying in 1s", TIMEOUT);
    c.start_again();
    wait_streaming(&db, slot, &mut p);
    db.insert_each(4..=6);
    let got = wait_ids(&mut p, 4..=6, TIMEOUT);
    let ids: Vec<i64> = got.iter().map(|r| r.id).collect();
    let start = ids[0];
    assert!(
        start <= 4,
        "gap: the run after the outage starts at {start}"
    );
    assert_eq!(ids, (start..=6).collect::<Vec<_>>(), "in order, once");
    p.signal("INT");
    let out = p.wait_exit(Duration::from_secs(10));
    assert_eq!(out.code, Some(0), "{out:#?}");
    assert_retries_are_warnings(&out.stderr);
}

/// One proxied connection.
struct Conn {
    client: TcpStream,
    server: TcpStream,
    /// Set by a partition: the server side is left open and silent.
    silent: Arc<AtomicBool>,
}

/// A TCP proxy to `127.0.0.1:target` that can cut every connection it
/// carries (both sides see the close), simulate a network partition (only
/// the client side sees it), and hold back what the server sends.
struct Proxy {
    port: u16,
    conns: Arc<Mutex<Vec<Conn>>>,
    /// Server-side sockets of partitioned connections, kept open.
    zombies: Mutex<Vec<TcpStream>>,
    accepted: Arc<AtomicUsize>,
    paused: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    fn start(target: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().unwrap().port();
        let proxy = Proxy {
            port,
            conns: Arc::default(),
            zombies: Mutex::default(),
            accepted: Arc::default(),
            paused: Arc::default(),
            stop: Arc::default(),
        };
        let (conns, accepted, paused, stop) = (
            proxy.conns.clone(),
            proxy.accepted.clone(),
            proxy.paused.clone(),
            proxy.stop.clone(),
        );
        thread::spawn(move || {
            for client in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                accepted.fetch_add(1, Ordering::SeqCst);
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let silent = Arc::new(AtomicBool::new(false));
                let clone = |s: &TcpStream| s.try_clone().expect("clone socket");
                conns.lock().unwrap().push(Conn {
                    client: clone(&client),
                    server: clone(&server),
                    silent: silent.clone(),
                });
                let ends = |s: &Arc<AtomicBool>| (clone(&client), clone(&server), s.clone());
                pipe(clone(&client), clone(&server), None, ends(&silent));
                pipe(
                    clone(&server),
                    clone(&client),
                    Some(paused.clone()),
                    ends(&silent),
                );
            }
        });
        proxy
    }

    /// Cuts every connection (both directions, both sides); returns how many
    /// it cut.
    fn cut(&self) -> usize {
        let mut c = self.conns.lock().unwrap();
        let n = c.len();
        for conn in c.drain(..) {
            let _ = conn.client.shutdown(Shutdown::Both);
            let _ = conn.server.shutdown(Shutdown::Both);
        }
        n
    }

    /// A network partition: every client connection is closed, but the
    /// server's side stays open and hears nothing more, so the server only
    /// notices through its own timeouts.
    fn partition(&self) -> usize {
        let mut c = self.conns.lock().unwrap();
        let n = c.len();
        let mut zombies = self.zombies.lock().unwrap();
        for conn in c.drain(..) {
            conn.silent.store(true, Ordering::SeqCst);
            let _ = conn.client.shutdown(Shutdown::Both);
            zombies.push(conn.server);
        }
        n
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn pause(&self, on: bool) {
        self.paused.store(on, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.pause(false);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        self.cut();
        for s in self.zombies.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

/// Copies `from` to `to` on a thread until either side closes, then closes
/// the connection's client side and, unless it is `silent`, its server
/// side. While `paused` is set, holds what it read.
fn pipe(
    mut from: TcpStream,
    mut to: TcpStream,
    paused: Option<Arc<AtomicBool>>,
    (client, server, silent): (TcpStream, TcpStream, Arc<AtomicBool>),
) {
    thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            while paused.as_ref().is_some_and(|p| p.load(Ordering::SeqCst)) {
                thread::sleep(Duration::from_millis(5));
            }
            if silent.load(Ordering::SeqCst) || to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = client.shutdown(Shutdown::Both);
        if !silent.load(Ordering::SeqCst) {
            let _ = server.shutdown(Shutdown::Both);
        }
    });
}

/// pgstream args connecting over TCP through `proxy`.
fn proxy_args(db: &TestDb, proxy: &Proxy, slot: &str, extra: &[&str]) -> Vec<String> {
    let port = proxy.port.to_string();
    let mut a: Vec<String> = [
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-d",
        &db.name,
        "-U",
        crate::harness::SUPERUSER,
        "--slot",
        slot,
        "--publication",
        "pub",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

fn active_pid(db: &TestDb, slot: &str) -> Option<i64> {
    db.sql(&format!(
        "SELECT active_pid FROM pg_replication_slots WHERE slot_name = '{slot}'"
    ))
    .parse()
    .ok()
}

#[test]
fn tcp_connection_cut_reconnects_through_the_proxy_and_loses_nothing() {
    let db = Cluster::shared().new_db("faults_proxy");
    setup_t(&db);
    let slot = "faults_proxy";
    create_slot(&db, slot);
    let proxy = Proxy::start(db.server().port);
    let via_proxy = |extra: &[&str]| proxy_args(&db, &proxy, slot, extra);

    let mut p = Proc::spawn(&via_proxy(&["-s", "1"]), &[]);
    wait_streaming(&db, slot, &mut p);
    db.insert_each(1..=10);
    wait_ids(&mut p, 1..=10, TIMEOUT);

    // Cut while idle.
    let before = proxy.accepted();
    assert!(proxy.cut() > 0, "no connection went through the proxy");
    db.insert_each(11..=20);
    wait_ids(&mut p, 1..=20, Duration::from_secs(60));
    assert!(
        proxy.accepted() > before,
        "pgstream did not reconnect through the proxy"
    );
    assert!(
        count_retrying(&p.stderr()) >= 1,
        "no retry warning:\n{}",
        p.stderr()
    );
    wait_streaming(&db, slot, &mut p);

    // Cut mid-stream: a backlog of 20 transactions of 1000 rows is held
    // back by the proxy, released, and cut after some of it has arrived.
    proxy.pause(true);
    let backlog: String = (0..20)
        .map(|i| {
            let from = 21 + i * 1000;
            format!(
                "INSERT INTO t SELECT i, md5(i::text) FROM generate_series({from}, {}) i;\n",
                from + 999
            )
        })
        .collect();
    db.sql_sync(&backlog);
    let total: i64 = 20 + 20_000;
    let lines_before = p.lines().len();
    proxy.pause(false);
    p.wait_lines(lines_before + 2000, TIMEOUT);
    let retries = count_retrying(&p.stderr());
    proxy.cut();
    let at_cut = p.lines().len();
    eprintln!("proxy: cut mid-stream at {at_cut} lines of {total}");
    assert!(
        (at_cut as i64) < total,
        "test premise: the cut must come before the backlog is through"
    );
    wait_ids(&mut p, 1..=total, Duration::from_secs(120));
    assert!(
        count_retrying(&p.stderr()) > retries,
        "no retry after the cut"
    );

    p.signal("INT");
    let out = p.wait_exit(Duration::from_secs(10));
    assert_eq!(out.code, Some(0), "{out:#?}");
    assert!(!out.stdout_unterminated, "torn last line");
    assert_retries_are_warnings(&out.stderr);
    let all = rows(&out.stdout_lines);
    let ids: BTreeSet<i64> = all.iter().map(|r| r.id).collect();
    assert_eq!(ids, (1..=total).collect(), "every row, nothing else");
    eprintln!(
        "proxy: {} lines for {total} rows; stderr:\n{}",
        all.len(),
        out.stderr
    );

    // With --no-loop, a cut connection exits 1 with a one-line message.
    db.wait_slot_inactive(slot, TIMEOUT);
    let mut p = Proc::spawn(&via_proxy(&["--no-loop"]), &[]);
    wait_streaming(&db, slot, &mut p);
    db.insert_each(total + 1..=total + 5);
    wait_ids(&mut p, total + 1..=total + 5, TIMEOUT);
    proxy.cut();
    let out = p.wait_exit(Duration::from_secs(10));
    eprintln!("proxy --no-loop: {:?}, stderr {:?}", out.code, out.stderr);
    assert_eq!(out.code, Some(1), "{out:#?}");
    assert_eq!(
        out.stderr.trim().lines().count(),
        1,
        "a one-line message:\n{}",
        out.stderr
    );
    assert!(!out.stdout_unterminated, "torn last line");

    // Nothing lost over all of it.
    db.wait_slot_inactive(slot, TIMEOUT);
    let out = run(&args(&db, slot, &["--end-lsn", "now"]), &[], TIMEOUT);
    assert_eq!(out.code, Some(0), "{out:#?}");
    let last: Vec<i64> = rows(&out.stdout_lines).iter().map(|r| r.id).collect();
    if let Some(&start) = last.first() {
        assert_eq!(
            last,
            (start..=total + 5).collect::<Vec<_>>(),
            "no gap at the end"
        );
    }
}

/// A network partition: pgstream's connection dies but the server does not
/// notice, so the old walsender holds the slot until `wal_sender_timeout`
/// (5 s on the test cluster, 60 s by default). pgstream must keep retrying
/// until the slot is free (the "slot is active" it meets is its own old
/// session, not another consumer), then resume without loss.
#[test]
fn network_partition_is_retried_until_the_server_releases_the_slot() {
    let db = Cluster::shared().new_db("faults_partition");
    setup_t(&db);
    let slot = "faults_partition";
    create_slot(&db, slot);
    let proxy = Proxy::start(db.server().port);
    let mut p = Proc::spawn(&proxy_args(&db, &proxy, slot, &["-s", "1"]), &[]);
    wait_streaming(&db, slot, &mut p);
    db.insert_each(1..=10);
    wait_ids(&mut p, 1..=10, TIMEOUT);
    let old = active_pid(&db, slot).expect("an active walsender");

    let t0 = Instant::now();
    assert!(
        proxy.partition() > 0,
        "no connection went through the proxy"
    );
    db.insert_each(11..=20);
    wait_ids(&mut p, 1..=20, Duration::from_secs(60));
    eprintln!(
        "partition: every row back after {:?}; stderr:\n{}",
        t0.elapsed(),
        p.stderr()
    );
    let new = active_pid(&db, slot);
    assert!(
        new.is_some() && new != Some(old),
        "a new walsender streams (old {old}, now {new:?})"
    );

    p.signal("INT");
    let out = p.wait_exit(Duration::from_secs(10));
    assert_eq!(out.code, Some(0), "{out:#?}");
    assert!(!out.stdout_unterminated, "torn last line");
    assert_retries_are_warnings(&out.stderr);
    let ids: BTreeSet<i64> = rows(&out.stdout_lines).iter().map(|r| r.id).collect();
    assert_eq!(ids, (1..=20).collect(), "every row, nothing else");
}

/// A clean stop right after a transaction whose commit comes well after its
/// last printed change (many unpublished changes follow in the same
/// transaction, so the Commit message arrives after the lines were handed
/// to the writer). The final status update must still acknowledge it (SPEC
/// §3, §5): the next run must not repeat it. `--max-changes 1` makes the
/// stop land exactly there.
#[test]
fn clean_stop_acknowledges_a_transaction_whose_commit_comes_late() {
    let db = Cluster::shared().new_db("faults_late_commit");
    db.sql(
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         CREATE TABLE other (id int, v text);
         CREATE PUBLICATION pub FOR TABLE t;",
    );
    let slot = "faults_late_commit";
    create_slot(&db, slot);
    db.sql_sync(
        "BEGIN;
         INSERT INTO t VALUES (1, 'a');
         INSERT INTO other SELECT i, md5(i::text) FROM generate_series(1, 200000) i;
         COMMIT;
         INSERT INTO t VALUES (2, 'b');",
    );
    let out = run(&args(&db, slot, &["--max-changes", "1"]), &[], TIMEOUT);
    assert_eq!(out.code, Some(0), "{out:#?}");
    let first = rows(&out.stdout_lines);
    assert_eq!(first.iter().map(|r| r.id).collect::<Vec<_>>(), [1]);
    assert_acknowledged(&db, slot, first[0].commit_lsn, "transaction 1");

    let out = run(&args(&db, slot, &["--end-lsn", "now"]), &[], TIMEOUT);
    assert_eq!(out.code, Some(0), "{out:#?}");
    let ids: Vec<i64> = rows(&out.stdout_lines).iter().map(|r| r.id).collect();
    assert_eq!(ids, [2], "the next run repeats nothing and loses nothing");
}

// ---------------------------------------------------------------------------
// 3. Huge transactions in bounded memory
// ---------------------------------------------------------------------------

/// Streams the slot's backlog until `n` lines have come out and the slot
/// is acknowledged up to `flushed`, reads the process's VmHWM, stops it
/// with SIGINT; returns the peak (kB) and the first and last lines.
fn peak_while_streaming(db: &TestDb, slot: &str, n: usize, flushed: &str) -> (u64, String, String) {
    let t0 = Instant::now();
    let (mut child, stdout) = Running::spawn(&args(db, slot, &["-s", "1"]));
    let reader = LineReader::spawn(stdout, false);
    let deadline = Instant::now() + Duration::from_secs(180);
    while reader.count() < n {
        if let Some(st) = child.exited() {
            panic!(
                "pgstream exited ({st}) after {} of {n} lines;\nstderr:\n{}",
                reader.count(),
                child.stderr()
            );
        }
        if Instant::now() >= deadline {
            panic!(
                "timed out with {} of {n} lines;\nstderr:\n{}",
                reader.count(),
                child.stderr()
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
    let streamed = t0.elapsed();
    // Nothing is in flight any more: the transaction is acknowledged within
    // a status interval or so (SPEC §3), while pgstream runs.
    let target = parse_lsn(flushed);
    let ack_deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let confirmed = db
            .confirmed_flush_lsn(slot)
            .map(|c| parse_lsn(&c))
            .unwrap_or(0);
        if confirmed >= target {
            break;
        }
        if let Some(st) = child.exited() {
            panic!("pgstream exited ({st});\nstderr:\n{}", child.stderr());
        }
        if Instant::now() >= ack_deadline {
            panic!(
                "{n} lines written, but after 30 s the slot ({}) is still short of {flushed}: the transaction is not acknowledged;\nstderr:\n{}",
                format_lsn(confirmed),
                child.stderr()
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
    let peak = vm_hwm_kb(child.pid());
    send_signal(child.pid(), libc::SIGINT);
    let st = child.wait_timeout(Duration::from_secs(10));
    let err = child.stderr();
    let st = st.unwrap_or_else(|| panic!("no exit within 10 s of SIGINT;\nstderr:\n{err}"));
    let seen = reader.finish();
    eprintln!(
        "memory: {n} lines ({} MB) in {streamed:?}, VmHWM {peak} kB",
        seen.bytes / 1_000_000
    );
    assert_eq!(st.code(), Some(0), "stderr:\n{err}");
    assert_eq!(seen.lines, n, "exactly the transaction's changes, once");
    assert!(seen.partial.is_empty(), "torn last line");
    (peak, seen.first.unwrap(), seen.last.unwrap())
}

/// After a clean stop that followed the whole of a transaction, the slot
/// must be past that transaction's commit record (SPEC §3, §5: the final
/// status update acknowledges every transaction written in full).
fn assert_acknowledged(db: &TestDb, slot: &str, commit_lsn: u64, what: &str) {
    db.wait_slot_inactive(slot, TIMEOUT);
    let confirmed = parse_lsn(&db.confirmed_flush_lsn(slot).expect("slot position"));
    assert!(
        confirmed > commit_lsn,
        "{what} was written in full before a clean stop, but the slot ({}) is not past its commit ({}): the next run repeats it",
        format_lsn(confirmed),
        format_lsn(commit_lsn)
    );
}

#[test]
fn memory_does_not_grow_with_transaction_size() {
    let db = Cluster::shared().new_db("faults_memory");
    db.sql(
        "CREATE TABLE big (id int PRIMARY KEY, v text);
         CREATE TABLE toasty (id int PRIMARY KEY, n int NOT NULL, v text);
         ALTER TABLE toasty ALTER COLUMN v SET STORAGE EXTERNAL;
         CREATE PUBLICATION pub FOR TABLE big, toasty;",
    );
    // 20,000 rows with 10 kB values stored out of line, uncompressed; they
    // exist before the slots, so only their update is streamed.
    let toast_rows = 20_000;
    db.sql_sync(&format!(
            "INSERT INTO toasty SELECT i, 0, repeat(md5(i::text), 320) FROM generate_series(1, {toast_rows}) i"
        ),
    );
    let toast_bytes: i64 = db
        .sql("SELECT pg_relation_size(reltoastrelid) FROM pg_class WHERE relname = 'toasty'")
        .parse()
        .unwrap();
    assert!(
        toast_bytes > toast_rows * 10_000,
        "test premise: the values are TOASTed out of line ({toast_bytes} bytes)"
    );
    // Each transaction gets a slot of its own, created just before it, so
    // that each run streams exactly that transaction.
    let small_n = 1_000;
    let big_n = 300_000;

    let slot = "faults_memory_small";
    create_slot(&db, slot);
    db.sql_sync(&format!(
        "INSERT INTO big SELECT i, repeat(md5(i::text), 3) FROM generate_series(1, {small_n}) i"
    ));
    let flushed = db.sql("SELECT pg_current_wal_flush_lsn()");
    let (small, first, last) = peak_while_streaming(&db, slot, small_n, &flushed);
    let (f, l) = (rows(&[first]), rows(&[last]));
    assert_eq!((f[0].id, l[0].id), (1, small_n as i64));

    let slot = "faults_memory_big";
    create_slot(&db, slot);
    db.sql_sync(&format!(
        "INSERT INTO big SELECT i, repeat(md5(i::text), 3) FROM generate_series({}, {}) i",
        small_n + 1,
        small_n + big_n
    ));
    let flushed = db.sql("SELECT pg_current_wal_flush_lsn()");
    let (big, first, last) = peak_while_streaming(&db, slot, big_n, &flushed);
    let (f, l) = (rows(&[first]), rows(&[last]));
    assert_eq!(
        (f[0].id, l[0].id),
        (small_n as i64 + 1, (small_n + big_n) as i64)
    );
    assert_eq!(f[0].commit_lsn, l[0].commit_lsn, "one transaction");

    let slot = "faults_memory_toast";
    create_slot(&db, slot);
    db.sql_sync("UPDATE toasty SET n = n + 1, v = upper(v)");
    let flushed = db.sql("SELECT pg_current_wal_flush_lsn()");
    let (toast, first, _) = peak_while_streaming(&db, slot, toast_rows as usize, &flushed);
    let v: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(v["op"], "update", "{first:.200}");
    assert_eq!(v["new"]["n"], 1);
    assert_eq!(
        v["new"]["v"].as_str().map(str::len),
        Some(10_240),
        "the new TOASTed value comes whole"
    );

    let bound = 4 * small + 8 * 1024;
    eprintln!(
        "memory: VmHWM {small} kB for {small_n} inserts, {big} kB for {big_n} inserts, {toast} kB for {toast_rows} updates of 10 kB TOASTed values (bound {bound} kB)"
    );
    assert!(
        big < bound,
        "peak memory grows with transaction size: {big} kB for {big_n} rows vs {small} kB for {small_n}"
    );
    assert!(
        toast < bound,
        "peak memory grows with TOASTed updates: {toast} kB for {toast_rows} rows vs {small} kB for {small_n}"
    );
}

// ---------------------------------------------------------------------------
// 4. Signals under load
// ---------------------------------------------------------------------------

/// A backlog of 60 transactions × 1000 rows streams to a reader that reads
/// and parses continuously; `sig` arrives mid-stream.
fn signal_under_load(sig: libc::c_int, name: &str, slot: &str) {
    let db = Cluster::shared().new_db(&format!("faults_{name}"));
    setup_t(&db);
    create_slot(&db, slot);
    let (txns, per_txn) = (60i64, 1000i64);
    let sql: String = (0..txns)
        .map(|t| {
            let from = t * per_txn + 1;
            format!(
                "INSERT INTO t SELECT i, md5(i::text) FROM generate_series({from}, {}) i;\n",
                from + per_txn - 1
            )
        })
        .collect();
    db.sql_sync(&sql);
    let total = txns * per_txn;

    let (mut child, stdout) = Running::spawn(&args(&db, slot, &[]));
    let reader = LineReader::spawn(stdout, true);
    wait_until("15,000 lines", Duration::from_secs(120), || {
        if let Some(st) = child.exited() {
            panic!("pgstream exited early ({st})");
        }
        (reader.count() >= 15_000).then_some(())
    });
    let t0 = Instant::now();
    send_signal(child.pid(), sig);
    let st = child.wait_timeout(Duration::from_secs(10));
    let took = t0.elapsed();
    let err = child.stderr();
    let st =
        st.unwrap_or_else(|| panic!("SIG{name} under load: no exit within 10 s;\nstderr:\n{err}"));
    let seen = reader.finish();
    eprintln!(
        "SIG{name} under load: exit {:?} in {took:?} (spec: 2 s), {} lines of {total}",
        st.code(),
        seen.lines
    );
    assert_eq!(
        st.code(),
        Some(0),
        "SIG{name} is a clean stop;\nstderr:\n{err}"
    );
    assert!(
        seen.partial.is_empty(),
        "SIG{name}: torn last line: {:?}",
        String::from_utf8_lossy(&seen.partial[..seen.partial.len().min(200)])
    );
    assert!(
        seen.bad.is_empty(),
        "lines that are not JSON change objects: {:?}",
        seen.bad
    );
    assert!(
        (seen.lines as i64) < total,
        "test premise: the signal came mid-stream"
    );
    let first = &seen.rows;
    assert_commit_order("the stopped run", first);
    let ids: Vec<i64> = first.iter().map(|r| r.id).collect();
    assert_eq!(
        ids,
        (1..=ids.len() as i64).collect::<Vec<_>>(),
        "in order, no gap"
    );

    // What the final status update acknowledged: every transaction written
    // in full, nothing of one that was cut.
    db.wait_slot_inactive(slot, TIMEOUT);
    let confirmed = parse_lsn(&db.confirmed_flush_lsn(slot).unwrap());
    let full = ids.len() as i64 / per_txn; // transactions printed in full
    let commit_of = |txn: i64| first[(txn * per_txn) as usize].commit_lsn;
    if full > 0 {
        let last_full = first[(full * per_txn - 1) as usize].commit_lsn;
        assert!(
            confirmed > last_full,
            "SIG{name}: the slot ({}) does not acknowledge the last transaction printed in full (commit at {})",
            format_lsn(confirmed),
            format_lsn(last_full)
        );
    }
    if ids.len() as i64 % per_txn != 0 {
        assert!(
            confirmed <= commit_of(full),
            "SIG{name}: the slot ({}) acknowledges past the cut transaction (commit at {})",
            format_lsn(confirmed),
            format_lsn(commit_of(full))
        );
    }

    // The next run starts with the first transaction not printed in full,
    // and has everything after it.
    let out = run(
        &args(&db, slot, &["--end-lsn", "now"]),
        &[],
        Duration::from_secs(120),
    );
    assert_eq!(out.code, Some(0), "{out:#?}");
    let second: Vec<i64> = rows(&out.stdout_lines).iter().map(|r| r.id).collect();
    let expected_start = full * per_txn + 1;
    assert_eq!(
        second.first(),
        Some(&expected_start),
        "SIG{name}: the next run must start with the cut transaction ({expected_start}): nothing written in full repeats, nothing is skipped"
    );
    assert_eq!(
        second,
        (expected_start..=total).collect::<Vec<_>>(),
        "the rest, in order, once"
    );
}

#[test]
fn sigterm_under_load_exits_0_with_whole_lines_and_loses_nothing() {
    signal_under_load(libc::SIGTERM, "TERM", "faults_sigterm_load");
}

#[test]
fn sigint_under_load_exits_0_with_whole_lines_and_loses_nothing() {
    signal_under_load(libc::SIGINT, "INT", "faults_sigint_load");
}
