//! Debezium's format (SPEC §9, docs/output.md "Debezium format"): the
//! change events of Debezium 3.6.1's PostgreSQL connector as its JSON
//! converter writes them with `schemas.enable=false` and
//! `decimal.handling.mode=string`.
//!
//! One event is zero records (transaction markers, messages), one, or two
//! (a key change is a delete and a create). The last row of `--snapshot` is
//! marked `"last"`, which only the snapshot's end tells: each snapshot row
//! is held back until the next one (or that end) comes.

mod values;

use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use super::value::write_json_str;
use crate::event::{Datum, Event, Op, Row};

/// The Debezium release this format follows (`source.version`).
const VERSION: &str = "3.6.1.Final";

/// Milliseconds from 1970-01-01 to 2000-01-01 (PostgreSQL's epoch).
const PG_EPOCH_MS: i64 = 946_684_800_000;

/// The Debezium encoder's settings and what it remembers between events.
#[derive(Debug)]
pub(crate) struct Debezium {
    /// `{"version":…,"connector":"postgresql","name":…,"ts_ms":`, escaped once.
    head: Box<[u8]>,
    /// `,"db":…`, escaped once.
    db: Box<[u8]>,
    /// End of the last commit record seen: `sequence`'s first element.
    last_commit: Option<u64>,
    /// The latest snapshot row, not yet written.
    held: Vec<u8>,
    /// Where in `held` its `snapshot` marker (`true`) is.
    mark: usize,
}

/// `source.snapshot`.
#[derive(Clone, Copy)]
enum Snapshot {
    /// A change of the stream.
    False,
    /// A `--snapshot` row (`last` is patched in over it: same length).
    True,
    /// A `--backfill` row: Debezium's incremental snapshot.
    Incremental,
}

impl Debezium {
    /// `name` is `source.name` (`--topic-prefix`), `database` `source.db`.
    pub(crate) fn new(name: &str, database: &str) -> Debezium {
        let mut head = Vec::new();
        head.extend_from_slice(b"{\"version\":\"");
        head.extend_from_slice(VERSION.as_bytes());
        head.extend_from_slice(b"\",\"connector\":\"postgresql\",\"name\":");
        write_json_str(&mut head, name.as_bytes());
        head.extend_from_slice(b",\"ts_ms\":");
        let mut db = b",\"db\":".to_vec();
        write_json_str(&mut db, database.as_bytes());
        Debezium {
            head: head.into(),
            db: db.into(),
            last_commit: None,
            held: Vec::new(),
            mark: 0,
        }
    }

    /// Appends the records of `ev` (zero, one or two lines) to `out`.
    pub(crate) fn write_event(&mut self, out: &mut Vec<u8>, ev: &Event<'_>) {
        self.release(out, ev);
        let stream = Snapshot::False;
        let (op, before, after, snapshot) = match ev.op {
            Op::Insert => (b'c', None, ev.new, stream),
            Op::Update => match (ev.old, ev.new) {
                (Some(old), Some(new)) if key_changed(old, new) => {
                    // The old key's delete, then the new row's create.
                    self.record(out, ev, b'd', Some(old), None, stream);
                    (b'c', None, Some(new), stream)
                }
                (old, new) => (b'u', old, new, stream),
            },
            Op::Delete => (b'd', ev.old, None, stream),
            Op::Truncate => (b't', None, None, stream),
            Op::Read if ev.snapshot_lsn.is_some() => (b'r', None, ev.new, Snapshot::True),
            Op::Read => (b'r', None, ev.new, Snapshot::Incremental),
            _ => return,
        };
        if let Snapshot::True = snapshot {
            let mut held = std::mem::take(&mut self.held);
            self.mark = self.record(&mut held, ev, op, before, after, snapshot);
            self.held = held;
        } else {
            self.record(out, ev, op, before, after, snapshot);
        }
    }

    /// Notes a unit of work's end: a transaction's commit position (for
    /// `sequence`), or the snapshot's end, which writes its last row.
    pub(crate) fn commit(&mut self, out: &mut Vec<u8>, ev: &Event<'_>) {
        self.release(out, ev);
        if let Some(end) = ev.end_lsn {
            self.last_commit = Some(end.0);
        }
    }

    /// Whether a snapshot row is held back.
    pub(crate) fn holds(&self) -> bool {
        !self.held.is_empty()
    }

    /// Appends the held snapshot row if `ev` lets it go, and says whether
    /// it did: a change comes after it, or the snapshot ends (its commit),
    /// which makes it the `"last"`.
    pub(crate) fn release(&mut self, out: &mut Vec<u8>, ev: &Event<'_>) -> bool {
        if self.held.is_empty() {
            return false;
        }
        if ev.op == Op::Commit && ev.snapshot_lsn.is_some() {
            self.held[self.mark..self.mark + 4].copy_from_slice(b"last");
        } else if !ev.op.is_change() {
            return false;
        }
        out.append(&mut self.held);
        true
    }

    /// Writes one record; returns where its `snapshot` marker is in `out`.
    fn record(
        &self,
        out: &mut Vec<u8>,
        ev: &Event<'_>,
        op: u8,
        before: Option<Row<'_>>,
        after: Option<Row<'_>>,
        snapshot: Snapshot,
    ) -> usize {
        let now = now_ms();
        out.extend_from_slice(b"{\"before\":");
        write_image(out, before);
        out.extend_from_slice(b",\"after\":");
        write_image(out, after);
        out.extend_from_slice(b",\"source\":");
        out.extend_from_slice(&self.head);
        // Debezium's commit time is pgoutput's, in µs: truncated to ms.
        let ts = ev
            .commit_ts
            .map_or(now, |micros| micros.div_euclid(1000) + PG_EPOCH_MS);
        let _ = write!(out, "{ts},\"snapshot\":\"");
        let mark = out.len();
        out.extend_from_slice(match snapshot {
            Snapshot::False => &b"false"[..],
            Snapshot::True => b"true",
            Snapshot::Incremental => b"incremental",
        });
        out.push(b'"');
        out.extend_from_slice(&self.db);
        // A backfill row has no position (Debezium leaves it out of an
        // incremental snapshot's source).
        let lsn = match snapshot {
            Snapshot::Incremental => None,
            _ => ev.lsn.or(ev.snapshot_lsn).map(|l| l.0),
        };
        out.extend_from_slice(b",\"sequence\":\"[");
        write_quoted_lsn(out, self.last_commit);
        out.push(b',');
        write_quoted_lsn(out, lsn);
        out.extend_from_slice(b"]\",\"schema\":");
        match ev.relation {
            Some(rel) => {
                write_json_str(out, rel.schema.as_bytes());
                out.extend_from_slice(b",\"table\":");
                write_json_str(out, rel.name.as_bytes());
            }
            None => out.extend_from_slice(b"null,\"table\":null"),
        }
        out.extend_from_slice(b",\"txId\":");
        write_number(out, ev.xid.map(u64::from));
        out.extend_from_slice(b",\"lsn\":");
        write_number(out, lsn);
        let _ = writeln!(
            out,
            ",\"xmin\":null}},\"transaction\":null,\"op\":\"{}\",\"ts_ms\":{now}}}",
            char::from(op)
        );
        mark
    }
}

/// Whether an update changed its row's key (a column the new row left
/// unchanged in TOAST did not change).
fn key_changed(old: Row<'_>, new: Row<'_>) -> bool {
    new.relation.key.iter().any(|&i| match new.get(i) {
        Datum::UnchangedToast => false,
        d => d != old.get(i),
    })
}

/// A row image with every column (`null` for those a key-only image lacks),
/// or `null`.
fn write_image(out: &mut Vec<u8>, row: Option<Row<'_>>) {
    let Some(row) = row else {
        out.extend_from_slice(b"null");
        return;
    };
    out.push(b'{');
    let mut first = true;
    for (i, col) in row.relation.columns.iter().enumerate() {
        if values::left_out(col) {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        write_json_str(out, col.name.as_bytes());
        out.push(b':');
        match row.get(i) {
            _ if row.key_only && !col.identity => out.extend_from_slice(b"null"),
            Datum::Text(text) => values::write_value(out, col, text),
            Datum::UnchangedToast => values::write_placeholder(out, col),
            _ => out.extend_from_slice(b"null"),
        }
    }
    out.push(b'}');
}

/// An LSN as `sequence` holds it: a decimal string inside a JSON string.
fn write_quoted_lsn(out: &mut Vec<u8>, lsn: Option<u64>) {
    match lsn {
        Some(l) => {
            let _ = write!(out, "\\\"{l}\\\"");
        }
        None => out.extend_from_slice(b"null"),
    }
}

fn write_number(out: &mut Vec<u8>, n: Option<u64>) {
    match n {
        Some(n) => {
            let _ = write!(out, "{n}");
        }
        None => out.extend_from_slice(b"null"),
    }
}

/// The wall clock in ms since the Unix epoch (`ts_ms`).
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests;
