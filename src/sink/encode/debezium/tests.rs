use super::*;
use crate::event::{Column, Lsn, RawDatum, Relation, ValueKind};

fn rel() -> Relation {
    let col = Column::test;
    Relation {
        schema: "public".into(),
        name: "orders".into(),
        columns: vec![
            col("id", ValueKind::Int, 23, true),
            col("body", ValueKind::Text, 25, false),
            col(
                "cash",
                ValueKind::Array {
                    elem: Box::new(ValueKind::Money),
                    delim: b',',
                },
                791,
                false,
            ),
        ],
        key: vec![0],
    }
}

/// The bytes `start..end` of a row's data.
fn text(start: u32, end: u32) -> RawDatum {
    RawDatum::Text { start, end }
}

fn row<'a>(r: &'a Relation, data: &'a [u8], datums: &'a [RawDatum], key_only: bool) -> Row<'a> {
    Row {
        relation: r,
        data,
        datums,
        key_only,
    }
}

/// The lines written, each checked to be one JSON object, with `ts_ms`
/// (the clock) replaced by 0.
fn lines(out: &[u8]) -> Vec<serde_json::Value> {
    let text = std::str::from_utf8(out).unwrap();
    assert!(text.is_empty() || text.ends_with('\n'));
    text.lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert!(v["ts_ms"].as_i64().unwrap() > 1_700_000_000_000);
            v["ts_ms"] = 0.into();
            v
        })
        .collect()
}

fn change<'a>(op: Op, r: &'a Relation) -> Event<'a> {
    let mut ev = Event::new(op);
    ev.relation = Some(r);
    ev.lsn = Some(Lsn(0x1A2B6A0));
    ev.xid = Some(742);
    ev.commit_lsn = Some(Lsn(0x1A2B700));
    // 2026-11-23T21:54:32.123456Z
    ev.commit_ts = Some(848_786_072_123_456);
    ev
}

#[test]
fn a_key_change_is_a_delete_and_a_create() {
    let r = rel();
    let mut dbz = Debezium::new("shop", "db\"1");
    let mut out = Vec::new();
    let mut commit = Event::new(Op::Commit);
    commit.end_lsn = Some(Lsn(100));
    dbz.commit(&mut out, &commit);
    assert!(out.is_empty());

    let old = [text(0, 1), RawDatum::Null, RawDatum::Null];
    let new = [text(1, 2), RawDatum::UnchangedToast, text(2, 6)];
    let mut ev = change(Op::Update, &r);
    ev.old = Some(row(&r, b"78{$1}", &old, true));
    ev.new = Some(row(&r, b"78{$1}", &new, false));
    dbz.write_event(&mut out, &ev);
    let source = serde_json::json!({"version": "3.6.1.Final", "connector": "postgresql",
        "name": "shop", "ts_ms": 1795470872123i64, "snapshot": "false", "db": "db\"1",
        "sequence": "[\"100\",\"27440800\"]", "schema": "public", "table": "orders",
        "txId": 742, "lsn": 27440800, "xmin": null});
    assert_eq!(
        lines(&out),
        [
            serde_json::json!({"before": {"id": 7, "body": null}, "after": null,
                "source": source, "transaction": null, "op": "d", "ts_ms": 0}),
            serde_json::json!({"before": null,
                "after": {"id": 8, "body": "__debezium_unavailable_value"},
                "source": source, "transaction": null, "op": "c", "ts_ms": 0}),
        ]
    );
    assert!(out.starts_with(br#"{"before":{"id":7,"body":null},"after":null,"source":{"version""#));

    // The key unchanged: one update; its key-only old row is `before`.
    out.clear();
    ev.new = Some(row(&r, b"78{$1}", &old, false));
    dbz.write_event(&mut out, &ev);
    let v = lines(&out);
    assert_eq!(v.len(), 1);
    assert_eq!(
        (&v[0]["op"], &v[0]["before"]),
        (&"u".into(), &serde_json::json!({"id": 7, "body": null}))
    );
}

#[test]
fn the_last_snapshot_row_is_marked_and_markers_are_not_written() {
    let r = rel();
    let mut dbz = Debezium::new("s", "d");
    let mut out = Vec::new();
    let datums = [text(0, 1), RawDatum::Null, RawDatum::Null];
    for data in [b"1", b"2"] {
        let mut ev = Event::new(Op::Read);
        ev.relation = Some(&r);
        ev.snapshot_lsn = Some(Lsn(500));
        ev.new = Some(row(&r, data, &datums, false));
        dbz.write_event(&mut out, &ev);
    }
    assert_eq!(lines(&out).len(), 1, "the latest row is held");
    let mut end = Event::new(Op::Commit);
    end.snapshot_lsn = Some(Lsn(500));
    dbz.commit(&mut out, &end);
    let v = lines(&out);
    let marks: Vec<_> = v
        .iter()
        .map(|l| (&l["op"], &l["source"]["snapshot"], &l["after"]["id"]))
        .collect();
    assert_eq!(
        marks,
        [
            (&"r".into(), &"true".into(), &1.into()),
            (&"r".into(), &"last".into(), &2.into())
        ]
    );
    assert_eq!(v[1]["source"]["sequence"], "[null,\"500\"]");
    assert_eq!(
        (&v[1]["source"]["lsn"], &v[1]["source"]["txId"]),
        (&500.into(), &serde_json::Value::Null)
    );

    out.clear();
    for op in [
        Op::Begin,
        Op::Commit,
        Op::Message,
        Op::StreamAbort,
        Op::Relation,
    ] {
        dbz.write_event(&mut out, &Event::new(op));
    }
    assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out));
    let mut ev = change(Op::Truncate, &r);
    ev.commit_ts = None;
    dbz.write_event(&mut out, &ev);
    let v = lines(&out);
    assert_eq!(
        (&v[0]["op"], &v[0]["before"], &v[0]["after"]),
        (
            &"t".into(),
            &serde_json::Value::Null,
            &serde_json::Value::Null
        )
    );
}

#[test]
fn a_backfill_row_is_an_incremental_read_without_position() {
    let r = rel();
    let mut dbz = Debezium::new("s", "d");
    let mut out = Vec::new();
    let datums = [text(0, 1), RawDatum::Null, RawDatum::Null];
    let mut ev = Event::new(Op::Read);
    ev.relation = Some(&r);
    ev.new = Some(row(&r, b"9", &datums, false));
    dbz.write_event(&mut out, &ev);
    dbz.write_event(&mut out, &Event::new(Op::BackfillDone));
    let v = lines(&out);
    assert_eq!(v.len(), 1, "written at once, backfill_done not at all");
    let s = &v[0]["source"];
    assert_eq!(
        (
            &v[0]["op"],
            &s["snapshot"],
            &s["lsn"],
            &s["txId"],
            &s["sequence"]
        ),
        (
            &"r".into(),
            &"incremental".into(),
            &serde_json::Value::Null,
            &serde_json::Value::Null,
            &"[null,null]".into()
        )
    );
}
