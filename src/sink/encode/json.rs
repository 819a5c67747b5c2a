//! pgstream's format: one event → one JSON line, keys in the spec's order.
//!
//! Hand-written on purpose: the event borrows everything it prints, and
//! writing straight into the caller's buffer keeps the hot path free of
//! allocations (no intermediate `serde_json::Value`).

use std::io::Write as _;

use super::value::{
    write_base64, write_json_str, write_lsn, write_timestamp_micros, write_uint, write_value,
};
use crate::event::{Datum, Event, Lsn, Row};

/// Appends `event` as one JSON line (with its `\n`) to `out`.
pub(super) fn write_event(out: &mut Vec<u8>, ev: &Event<'_>) {
    out.extend_from_slice(b"{\"op\":\"");
    out.extend_from_slice(ev.op.as_str().as_bytes());
    out.push(b'"');
    if let Some(rel) = ev.relation {
        out.extend_from_slice(b",\"schema\":");
        write_json_str(out, rel.schema.as_bytes());
        out.extend_from_slice(b",\"table\":");
        write_json_str(out, rel.name.as_bytes());
    }
    if let Some(rows) = ev.rows {
        let _ = write!(out, ",\"rows\":{rows}");
    }
    if let Some(lsn) = ev.lsn {
        write_lsn_field(out, "lsn", lsn);
    }
    if let Some(xid) = ev.xid {
        write_key(out, "xid");
        write_uint(out, xid.into(), 1);
    }
    if let Some(subxid) = ev.subxid {
        write_key(out, "subxid");
        write_uint(out, subxid.into(), 1);
    }
    if let Some(gid) = ev.gid {
        out.extend_from_slice(b",\"gid\":");
        write_json_str(out, gid);
    }
    if let Some(lsn) = ev.commit_lsn {
        write_lsn_field(out, "commit_lsn", lsn);
    }
    if let Some(ts) = ev.commit_ts {
        out.extend_from_slice(b",\"commit_ts\":");
        write_timestamp_micros(out, ts);
    }
    if let Some(ts) = ev.prepare_ts {
        out.extend_from_slice(b",\"prepare_ts\":");
        write_timestamp_micros(out, ts);
    }
    if let Some(origin) = ev.origin {
        out.extend_from_slice(b",\"origin\":");
        write_json_str(out, origin.as_bytes());
    }
    if let Some(lsn) = ev.snapshot_lsn {
        write_lsn_field(out, "snapshot_lsn", lsn);
    }
    if ev.streamed {
        out.extend_from_slice(b",\"streamed\":true");
    }
    if let Some(m) = &ev.message {
        out.extend_from_slice(b",\"prefix\":");
        write_json_str(out, m.prefix);
        if std::str::from_utf8(m.content).is_ok() {
            out.extend_from_slice(b",\"content\":");
            write_json_str(out, m.content);
        } else {
            out.extend_from_slice(b",\"content_base64\":");
            write_base64(out, m.content);
        }
        let _ = write!(out, ",\"transactional\":{}", m.transactional);
    }
    if let Some(t) = ev.truncate {
        let _ = write!(
            out,
            ",\"cascade\":{},\"restart_identity\":{}",
            t.cascade, t.restart_identity
        );
    }
    let mark = out.len();
    out.extend_from_slice(b",\"key\":");
    if !write_key_object(out, ev) {
        out.truncate(mark);
    }
    if ev.op == crate::event::Op::Relation {
        if let Some(rel) = ev.relation {
            write_columns(out, rel);
        }
    }
    if let Some(old) = ev.old {
        write_row(out, "old", old);
    }
    if let Some(new) = ev.new {
        write_row(out, "new", new);
        write_unchanged_toast(out, new);
    }
    out.extend_from_slice(b"}\n");
}

/// Appends the event's `key` object (`{"id":7}`, compact) and says whether
/// it has one: a row change of a table with key columns. It is the line's
/// `key` and, for brokers that partition by key (Kafka), the record key.
pub(super) fn write_key_object(out: &mut Vec<u8>, ev: &Event<'_>) -> bool {
    let (row, fallback) = match (ev.new, ev.old) {
        (Some(new), old) => (new, old),
        (None, Some(old)) => (old, None),
        (None, None) => return false,
    };
    write_row_key(out, row, fallback)
}

/// Appends the key object of `row` (key columns left unchanged in TOAST
/// taken from `fallback`, the old image) and says whether it has one.
pub(super) fn write_row_key(out: &mut Vec<u8>, row: Row<'_>, fallback: Option<Row<'_>>) -> bool {
    if row.relation.key.is_empty() {
        return false;
    }
    out.push(b'{');
    for (n, &i) in row.relation.key.iter().enumerate() {
        // A key column the update left TOASTed and untouched is only in
        // the old image.
        let datum = match (row.get(i), fallback) {
            (Datum::UnchangedToast, Some(old)) => old.get(i),
            (d, _) => d,
        };
        write_column(out, n == 0, &row.relation.columns[i], datum);
    }
    out.push(b'}');
    true
}

// Here rather than in the model, which imports nothing of the crate.
impl Row<'_> {
    /// The image as a JSON object, values typed as the JSON output types
    /// them (numbers, booleans, embedded JSON, RFC 3339 times…); unchanged
    /// TOAST values are left out. Allocates: for handlers, not the hot path.
    ///
    /// ```
    /// # fn f(event: &pgstream::Event<'_>) {
    /// if let Some(row) = event.new {
    ///     let row = row.to_json();
    ///     println!("id = {}", row["id"]);
    /// }
    /// # }
    /// ```
    pub fn to_json(&self) -> serde_json::Value {
        let mut out = Vec::new();
        write_row_object(&mut out, *self);
        serde_json::from_slice(&out).unwrap_or(serde_json::Value::Null)
    }
}

/// Writes `,"name":`, the start of a member after the first.
fn write_key(out: &mut Vec<u8>, name: &str) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
}

fn write_lsn_field(out: &mut Vec<u8>, name: &str, lsn: Lsn) {
    write_key(out, name);
    out.push(b'"');
    write_lsn(out, lsn);
    out.push(b'"');
}

fn write_column(out: &mut Vec<u8>, first: bool, col: &crate::event::Column, datum: Datum<'_>) {
    if !first {
        out.push(b',');
    }
    write_json_str(out, col.name.as_bytes());
    out.push(b':');
    match datum {
        Datum::Text(text) => write_value(out, &col.kind, text),
        Datum::Null | Datum::UnchangedToast => out.extend_from_slice(b"null"),
    }
}

/// Writes a row image; unchanged TOAST values are left out (never a
/// placeholder).
fn write_row(out: &mut Vec<u8>, name: &str, row: Row<'_>) {
    write_key(out, name);
    write_row_object(out, row);
}

/// Writes a row image as a JSON object.
fn write_row_object(out: &mut Vec<u8>, row: Row<'_>) {
    out.push(b'{');
    let mut first = true;
    for (col, datum) in row.columns() {
        if datum != Datum::UnchangedToast {
            write_column(out, first, col, datum);
            first = false;
        }
    }
    out.push(b'}');
}

/// A `relation` event's column list: name, type OID and modifier, and
/// whether the column is part of `key`.
fn write_columns(out: &mut Vec<u8>, rel: &crate::event::Relation) {
    out.extend_from_slice(b",\"columns\":[");
    for (i, col) in rel.columns.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"name\":");
        write_json_str(out, col.name.as_bytes());
        let _ = write!(
            out,
            ",\"type_oid\":{},\"type_modifier\":{},\"key\":{}}}",
            col.type_oid,
            col.type_modifier,
            rel.key.contains(&i)
        );
    }
    out.push(b']');
}

fn write_unchanged_toast(out: &mut Vec<u8>, row: Row<'_>) {
    let mut first = true;
    for (col, datum) in row.columns() {
        if datum == Datum::UnchangedToast {
            out.extend_from_slice(if first {
                b",\"unchanged_toast\":["
            } else {
                b","
            });
            write_json_str(out, col.name.as_bytes());
            first = false;
        }
    }
    if !first {
        out.push(b']');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Column, Message, Op, RawDatum, Relation, TruncateFlags, ValueKind};

    fn rel() -> Relation {
        let col = |name, kind, identity| Column::test(name, kind, 25, identity);
        Relation {
            schema: "public".into(),
            name: "orders".into(),
            columns: vec![
                col("id", ValueKind::Int, true),
                col("total", ValueKind::Numeric, false),
                col("tags", ValueKind::Text, false),
            ],
            key: vec![0],
        }
    }

    fn line(ev: &Event<'_>) -> String {
        let mut out = Vec::new();
        write_event(&mut out, ev);
        let s = String::from_utf8(out).unwrap();
        assert!(s.ends_with('\n') && s.matches('\n').count() == 1);
        serde_json::from_str::<serde_json::Value>(&s).expect("valid JSON");
        s.trim_end().to_string()
    }

    #[test]
    fn update_with_key_old_new_and_toast() {
        let r = rel();
        let data = b"7" as &[u8];
        let new_datums = [
            RawDatum::Text { start: 0, end: 1 },
            RawDatum::Null,
            RawDatum::UnchangedToast,
        ];
        let old_datums = [
            RawDatum::Text { start: 0, end: 1 },
            RawDatum::Null,
            RawDatum::Null,
        ];
        let mut ev = Event::new(Op::Update);
        ev.relation = Some(&r);
        ev.lsn = Some(Lsn(0x1A2B6A0));
        ev.xid = Some(742);
        ev.commit_lsn = Some(Lsn(0x1A2B700));
        ev.commit_ts = Some(0);
        ev.old = Some(Row {
            relation: &r,
            data,
            datums: &old_datums,
            key_only: true,
        });
        ev.new = Some(Row {
            relation: &r,
            data,
            datums: &new_datums,
            key_only: false,
        });
        assert_eq!(
            line(&ev),
            r#"{"op":"update","schema":"public","table":"orders","lsn":"0/1A2B6A0","xid":742,"commit_lsn":"0/1A2B700","commit_ts":"2000-01-01T00:00:00Z","key":{"id":7},"old":{"id":7},"new":{"id":7,"total":null},"unchanged_toast":["tags"]}"#
        );
    }

    #[test]
    fn delete_takes_key_from_old() {
        let r = rel();
        let datums = [
            RawDatum::Text { start: 0, end: 2 },
            RawDatum::Null,
            RawDatum::Null,
        ];
        let mut ev = Event::new(Op::Delete);
        ev.relation = Some(&r);
        ev.old = Some(Row {
            relation: &r,
            data: b"42",
            datums: &datums,
            key_only: true,
        });
        assert_eq!(
            line(&ev),
            r#"{"op":"delete","schema":"public","table":"orders","key":{"id":42},"old":{"id":42}}"#
        );
    }

    #[test]
    fn no_key_without_identity_columns() {
        let mut r = rel();
        r.key.clear();
        let datums = [RawDatum::Null, RawDatum::Null, RawDatum::Null];
        let mut ev = Event::new(Op::Insert);
        ev.relation = Some(&r);
        ev.new = Some(Row {
            relation: &r,
            data: b"",
            datums: &datums,
            key_only: false,
        });
        assert_eq!(
            line(&ev),
            r#"{"op":"insert","schema":"public","table":"orders","new":{"id":null,"total":null,"tags":null}}"#
        );
    }

    #[test]
    fn truncate_and_messages() {
        let r = rel();
        let mut ev = Event::new(Op::Truncate);
        ev.relation = Some(&r);
        ev.truncate = Some(TruncateFlags {
            cascade: true,
            restart_identity: false,
        });
        assert_eq!(
            line(&ev),
            r#"{"op":"truncate","schema":"public","table":"orders","cascade":true,"restart_identity":false}"#
        );
        let mut ev = Event::new(Op::Message);
        ev.lsn = Some(Lsn(1));
        ev.message = Some(Message {
            prefix: b"p",
            content: b"hi \"x\"",
            transactional: false,
        });
        assert_eq!(
            line(&ev),
            r#"{"op":"message","lsn":"0/1","prefix":"p","content":"hi \"x\"","transactional":false}"#
        );
        ev.message = Some(Message {
            prefix: b"p",
            content: b"\xff\x00",
            transactional: true,
        });
        assert_eq!(
            line(&ev),
            r#"{"op":"message","lsn":"0/1","prefix":"p","content_base64":"/wA=","transactional":true}"#
        );
    }
}
