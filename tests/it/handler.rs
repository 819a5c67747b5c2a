//! The library's delivery contract (docs/library.md), with handlers in this
//! process: acknowledgement waits for completions, a handler error stops
//! the stream and its transaction comes again.

use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use pgstream::{Completion, Config, ConnArgs, Event, Handler, HandlerError, Op};
use tokio::sync::watch;

use crate::harness::{
    format_lsn, parse_lsn, quote_literal, server_major, version_skip, wait_until, Cluster, TestDb,
};

const WAIT: Duration = Duration::from_secs(30);

/// What a handler saw: inserted (or snapshot) ids, commit end positions,
/// and what each `commit` call completed.
#[derive(Default)]
struct Seen {
    ids: Vec<i64>,
    commits: Vec<u64>,
    units: Vec<&'static str>,
}

/// Where a [`Recorder`] fails.
#[derive(Clone, Copy)]
enum Fail {
    Never,
    /// In `event`, on the row with this id.
    Row(i64),
    /// In the completion of the transaction with this index (from 0).
    Completion(usize),
}

/// Records inserts and commits; fails as `fail` says; completes each
/// transaction once `gate` is open.
struct Recorder {
    seen: Arc<Mutex<Seen>>,
    fail: Fail,
    gate: watch::Receiver<bool>,
}

impl Handler for Recorder {
    async fn event(&mut self, event: &Event<'_>) -> Result<(), HandlerError> {
        if !matches!(event.op, Op::Insert | Op::Read) {
            return Ok(());
        }
        let id = event
            .new
            .and_then(|r| r.to_json()["id"].as_i64())
            .ok_or("no id")?;
        if matches!(self.fail, Fail::Row(row) if row == id) {
            return Err(format!("refusing row {id}").into());
        }
        self.seen.lock().unwrap().ids.push(id);
        Ok(())
    }

    async fn commit(&mut self, commit: &Event<'_>) -> Result<Completion, HandlerError> {
        let mut seen = self.seen.lock().unwrap();
        let unit = match (commit.op, commit.end_lsn, commit.snapshot_lsn) {
            (Op::Commit, Some(end), None) => {
                seen.commits.push(end.0);
                "transaction"
            }
            (Op::Commit, None, Some(_)) => "snapshot",
            (Op::Message, None, None) => "message",
            _ => return Err(format!("commit called with {commit:?}").into()),
        };
        seen.units.push(unit);
        let index = seen.commits.len().checked_sub(1);
        drop(seen);
        let fails =
            matches!(self.fail, Fail::Completion(n) if Some(n) == index && unit == "transaction");
        let mut gate = self.gate.clone();
        Ok(Completion::when(async move {
            gate.wait_for(|open| *open).await?;
            if fails {
                return Err("the transaction's completion failed".into());
            }
            Ok(())
        }))
    }
}

/// A run of the pipeline on its own thread.
struct Running {
    seen: Arc<Mutex<Seen>>,
    gate: watch::Sender<bool>,
    stop: watch::Sender<bool>,
    thread: thread::JoinHandle<pgstream::Result<()>>,
}

impl Running {
    fn start(db: &TestDb, slot: &str, fail: Fail, gate_open: bool) -> Running {
        Self::start_with(db, slot, fail, gate_open, |_| {})
    }

    fn start_with(
        db: &TestDb,
        slot: &str,
        fail: Fail,
        gate_open: bool,
        configure: impl FnOnce(&mut Config),
    ) -> Running {
        let mut config = Config::new(&ConnArgs::conninfo(db.conninfo()), slot).unwrap();
        config.publications = vec!["p".into()];
        config.status_interval = Duration::from_secs(1);
        configure(&mut config);
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (gate, gate_rx) = watch::channel(gate_open);
        let (stop, shutdown) = watch::channel(false);
        let mut handler = Recorder {
            seen: seen.clone(),
            fail,
            gate: gate_rx,
        };
        let thread = thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(pgstream::run(config, &mut handler, shutdown))
        });
        Running {
            seen,
            gate,
            stop,
            thread,
        }
    }

    fn ids(&self) -> Vec<i64> {
        self.seen.lock().unwrap().ids.clone()
    }

    fn commits(&self) -> Vec<u64> {
        self.seen.lock().unwrap().commits.clone()
    }

    fn units(&self) -> Vec<&'static str> {
        self.seen.lock().unwrap().units.clone()
    }

    /// Waits for the run to end by itself.
    fn finish(self) -> pgstream::Result<()> {
        wait_until("the run to end", WAIT, || {
            self.thread.is_finished().then_some(())
        });
        self.thread.join().unwrap()
    }

    fn stop(self) -> pgstream::Result<()> {
        self.stop.send(true).unwrap();
        self.finish()
    }
}

fn setup(prefix: &str) -> TestDb {
    let db = Cluster::shared().new_db(prefix);
    db.sql("CREATE TABLE t (id int PRIMARY KEY, v text); CREATE PUBLICATION p FOR TABLE t;");
    db
}

fn wait_streaming(db: &TestDb, slot: &str) {
    wait_until("the walsender to stream", WAIT, || {
        db.walsender_streaming(slot).then_some(())
    });
}

fn confirmed(db: &TestDb, slot: &str) -> u64 {
    parse_lsn(&db.confirmed_flush_lsn(slot).expect("slot"))
}

#[test]
fn a_handler_error_stops_the_run_and_its_transaction_comes_again() {
    let db = setup("handler_error");
    let slot = "handler_error";
    let run = Running::start(&db, slot, Fail::Row(3), true);
    wait_streaming(&db, slot);
    db.insert_each(1..=4);
    let seen = run.seen.clone();
    let err = run.finish().expect_err("the handler failed");
    assert_eq!(err.to_string(), "handler failed: refusing row 3");
    assert_eq!(err.exit_code(), 1);
    assert!(matches!(err, pgstream::Error::Handler(_)), "{err:?}");
    let (ids, commits) = {
        let s = seen.lock().unwrap();
        (s.ids.clone(), s.commits.clone())
    };
    assert_eq!(ids, [1, 2], "nothing after the failing row");
    assert_eq!(commits.len(), 2);
    let acked = confirmed(&db, slot);

    // The failed transaction was not acknowledged: it comes again, whole.
    let again = Running::start(&db, slot, Fail::Never, true);
    wait_until("rows 3 and 4 again", WAIT, || {
        (again.ids().len() >= 2).then_some(())
    });
    let commits = again.commits();
    again.stop().unwrap();
    assert!(
        acked < commits[0],
        "acknowledged {} is past the failed transaction's end {}",
        format_lsn(acked),
        format_lsn(commits[0])
    );
}

#[test]
fn only_completed_transactions_are_acknowledged() {
    if server_major() < 12 && version_skip("pg_stat_replication.reply_time is 12+") {
        return;
    }
    let db = setup("handler_completion");
    let slot = "handler_completion";
    let run = Running::start(&db, slot, Fail::Never, false);
    wait_streaming(&db, slot);
    db.insert_each(1..=1);
    wait_until("the commit", WAIT, || {
        (!run.commits().is_empty()).then_some(())
    });
    // Decoding goes on while the completion is pending.
    db.insert_each(2..=2);
    wait_until("row 2", WAIT, || (run.ids() == [1, 2]).then_some(()));
    let end = run.commits()[0];

    // Status updates keep coming (every second), but none sent since the
    // transaction was seen passes it. (Their send time is the client's.)
    let seen_at = db.sql("SELECT extract(epoch FROM clock_timestamp())");
    wait_until("a status update sent since", WAIT, || {
        let newer = db.sql(&format!(
            "SELECT extract(epoch FROM r.reply_time) > {seen_at} FROM pg_stat_replication r
               JOIN pg_replication_slots s ON s.active_pid = r.pid
             WHERE s.slot_name = {}",
            quote_literal(slot)
        ));
        (newer == "t").then_some(())
    });
    assert!(
        confirmed(&db, slot) < end,
        "acknowledged {} before the completion of the transaction ending at {}",
        db.confirmed_flush_lsn(slot).unwrap_or_default(),
        format_lsn(end)
    );

    run.gate.send(true).unwrap();
    let ends = run.commits();
    db.wait_confirmed(slot, &format_lsn(ends[1]), WAIT);
    run.stop().unwrap();
}

#[test]
fn every_unit_of_work_ends_with_a_commit_call() {
    let db = setup("handler_units");
    let slot = "handler_units";
    db.insert_each(1..=2);
    // pgoutput has messages from 14 on.
    let messages = server_major() >= 14 || !version_skip("messages before 14");
    let run = Running::start_with(&db, slot, Fail::Never, true, |c| {
        c.snapshot = true;
        c.include_messages = messages;
    });
    wait_until("the snapshot", WAIT, || {
        (run.units() == ["snapshot"]).then_some(())
    });
    assert_eq!(run.ids(), [1, 2], "the snapshot's rows before its commit");
    wait_streaming(&db, slot);
    let mut want = vec!["snapshot"];
    if messages {
        db.sql_sync("SELECT pg_logical_emit_message(false, 'alone', 'x')");
        want.push("message");
    }
    db.insert_each(3..=3);
    want.push("transaction");
    wait_until("a message and a transaction", WAIT, || {
        (run.units().len() == want.len()).then_some(())
    });
    assert_eq!(run.units(), want);
    run.stop().unwrap();
}

#[test]
fn a_failed_completion_is_not_acknowledged_nor_anything_after_it() {
    let db = setup("handler_completion_error");
    let slot = "handler_completion_error";
    let run = Running::start(&db, slot, Fail::Completion(1), false);
    wait_streaming(&db, slot);
    db.insert_each(1..=3);
    wait_until("three commits", WAIT, || {
        (run.commits().len() == 3).then_some(())
    });
    let commits = run.commits();
    run.gate.send(true).unwrap();
    let err = run.finish().expect_err("the completion failed");
    assert_eq!(
        err.to_string(),
        "handler failed: the transaction's completion failed"
    );
    // Transaction 1 completed (and a keepalive after it may have moved the
    // position on a little); transaction 2 failed, so not its end.
    let acked = confirmed(&db, slot);
    assert!(
        (commits[0]..commits[1]).contains(&acked),
        "acknowledged {} is not in [end of transaction 1, end of transaction 2) (commit ends {})",
        format_lsn(acked),
        commits
            .iter()
            .map(|&c| format_lsn(c))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let again = Running::start(&db, slot, Fail::Never, true);
    wait_until("rows 2 and 3 again", WAIT, || {
        (again.ids() == [2, 3]).then_some(())
    });
    again.stop().unwrap();
}
