//! `--format debezium` (issue 15, SPEC.md §9, docs/output.md "Debezium
//! format"): the envelope of Debezium's PostgreSQL connector as its JSON
//! converter writes it, for every op, replica identity, TOAST, truncate and
//! snapshot reads, and every value in Debezium's encoding for its type.
//!
//! Expected values are computed by the server in SQL (`extract(epoch …)`,
//! `date - '1970-01-01'`, `encode(…, 'base64')`, …) and compared with what
//! pgstream wrote; only the constants that Debezium hard-codes (its TOAST
//! placeholder, its infinities) are literals here.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::harness::{
    quote_literal, run, run_lines, server_major, vec_of, version_skip, Cluster, Proc, TestDb,
    TIMEOUT,
};
use crate::jsontext::{entries, Line};

/// The envelope's keys, always all there, in this order.
const ENVELOPE: [&str; 6] = ["before", "after", "source", "transaction", "op", "ts_ms"];

/// `source`'s keys, always all there, in this order.
const SOURCE: [&str; 12] = [
    "version",
    "connector",
    "name",
    "ts_ms",
    "snapshot",
    "db",
    "sequence",
    "schema",
    "table",
    "txId",
    "lsn",
    "xmin",
];

/// Debezium's `unavailable.value.placeholder`.
const TOAST: &str = "__debezium_unavailable_value";

/// A test database with a publication and a slot that pgstream created.
struct Dbz {
    db: TestDb,
    slot: String,
    publication: String,
}

impl Dbz {
    /// A fresh database; runs `setup` (which creates the publication
    /// `pub`), then pgstream once to create the slot.
    fn new(setup: &str) -> Dbz {
        let db = Cluster::shared().new_db("dbz");
        db.sql(setup);
        let slot = format!("s_{}", db.name);
        let d = Dbz {
            db,
            slot,
            publication: "pub".into(),
        };
        assert!(d.drain(&[]).is_empty(), "creating the slot emits nothing");
        d
    }

    fn sql(&self, sql: &str) -> String {
        self.db.sql(sql)
    }

    /// Drains the slot in the Debezium format (`extra` flags added) and
    /// checks every line's envelope.
    fn drain(&self, extra: &[&str]) -> Vec<Line> {
        self.db.wait_flushed();
        let mut args = self.db.stream_args(&self.slot, &self.publication);
        args.extend(vec_of(&["--format", "debezium", "--end-lsn", "now"]));
        args.extend(vec_of(extra));
        let before = now_ms();
        let lines: Vec<Line> = run_lines(&args)
            .into_iter()
            .map(|(raw, v)| Line { raw, v })
            .collect();
        let after = now_ms();
        let name = extra
            .iter()
            .position(|a| *a == "--topic-prefix")
            .map_or(self.slot.as_str(), |i| extra[i + 1]);
        for l in &lines {
            l.check(name, &self.db.name, before..=after);
        }
        lines
    }

    /// Runs `sql` (one transaction) and returns its 32-bit xid, the
    /// transaction's start time in ms, and the WAL positions (as numbers)
    /// before it and after its commit.
    fn tx(&self, sql: &str) -> Tx {
        let out = self.db.sql_sync(&format!(
            "SELECT pg_current_wal_insert_lsn() - '0/0';
             BEGIN;
             {sql};
             SELECT txid_current() % 4294967296, floor(extract(epoch FROM now()) * 1000)::bigint;
             COMMIT;
             SELECT pg_current_wal_insert_lsn() - '0/0',
                    ceil(extract(epoch FROM clock_timestamp()) * 1000)::bigint;"
        ));
        let rows: Vec<&str> = out.lines().filter(|l| !l.is_empty()).collect();
        let last = rows.len() - 1;
        let n = |s: &str| s.parse::<i64>().unwrap_or_else(|_| panic!("{s} in {out}"));
        let (xid, start) = rows[last - 1].split_once('|').unwrap();
        let (wal_after, end) = rows[last].split_once('|').unwrap();
        Tx {
            xid: n(xid),
            start_ms: n(start),
            end_ms: n(end),
            wal: n(rows[0])..n(wal_after),
        }
    }

    /// One JSON object per row of `select` (which must return `json`),
    /// computed by the server with the session settings of pgstream's.
    fn expected(&self, select: &str) -> Vec<Value> {
        let out = self.sql(&format!(
            "SET TimeZone = 'UTC'; SET DateStyle = 'ISO'; SET extra_float_digits = 3;
             {select}"
        ));
        out.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
            .collect()
    }
}

/// What the server says about one transaction of the workload.
struct Tx {
    xid: i64,
    start_ms: i64,
    end_ms: i64,
    /// From before its first change to after its commit record.
    wal: std::ops::Range<i64>,
}

fn now_ms() -> i64 {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(d.as_millis()).unwrap()
}

impl Line {
    fn source(&self, key: &str) -> &Value {
        &self.v["source"][key]
    }

    fn source_table(&self) -> &str {
        self.source("table").as_str().unwrap()
    }

    fn source_lsn(&self) -> i64 {
        self.source("lsn")
            .as_i64()
            .unwrap_or_else(|| panic!("no numeric source.lsn: {self:?}"))
    }

    /// `source.sequence`: a string holding `[last commit, lsn]`.
    fn sequence(&self) -> (Option<i64>, Option<i64>) {
        let text = self.source("sequence").as_str().unwrap();
        let v: Vec<Option<String>> =
            serde_json::from_str(text).unwrap_or_else(|e| panic!("sequence {text}: {e}"));
        assert_eq!(v.len(), 2, "{self:?}");
        let num = |s: &Option<String>| s.as_ref().map(|s| s.parse::<i64>().unwrap());
        (num(&v[0]), num(&v[1]))
    }

    /// The raw text of `after`'s (or `before`'s) column `col`.
    fn raw_col(&self, image: &str, col: &str) -> String {
        let image = entries(&self.raw)
            .into_iter()
            .find(|e| e.key == image)
            .unwrap()
            .value;
        entries(&image)
            .into_iter()
            .find(|e| e.key == col)
            .unwrap_or_else(|| panic!("no {col} in {image}"))
            .value
    }

    /// Checks what every line has: the keys in order, the constant source
    /// fields, `ts_ms` within the run.
    fn check(&self, name: &str, db: &str, run: std::ops::RangeInclusive<i64>) {
        let keys: Vec<String> = entries(&self.raw).into_iter().map(|e| e.key).collect();
        assert_eq!(keys, ENVELOPE, "{self:?}");
        let source = entries(&self.raw)
            .into_iter()
            .find(|e| e.key == "source")
            .unwrap()
            .value;
        let keys: Vec<String> = entries(&source).into_iter().map(|e| e.key).collect();
        assert_eq!(keys, SOURCE, "{self:?}");
        assert_eq!(self.source("version"), "3.6.1.Final", "{self:?}");
        assert_eq!(self.source("connector"), "postgresql", "{self:?}");
        assert_eq!(self.source("name"), name, "{self:?}");
        assert_eq!(self.source("db"), db, "{self:?}");
        assert_eq!(self.source("schema"), "public", "{self:?}");
        assert_eq!(self.source("xmin"), &Value::Null, "{self:?}");
        assert_eq!(self.v["transaction"], Value::Null, "{self:?}");
        let ts = self.v["ts_ms"].as_i64().expect("numeric ts_ms");
        assert!(
            run.contains(&ts),
            "ts_ms {ts} outside the run {run:?}: {self:?}"
        );
        assert!(self.source("ts_ms").is_i64(), "{self:?}");
        // sequence ends with lsn, which only a backfill row (Debezium's
        // incremental snapshot) has not.
        let lsn = self.source("lsn").as_i64();
        assert_eq!(self.sequence().1, lsn, "{self:?}");
        assert_eq!(
            lsn.is_none(),
            self.source("snapshot") == "incremental",
            "{self:?}"
        );
        let images = match self.op() {
            "c" | "r" => (false, true),
            "u" => (self.v["before"].is_object(), true),
            "d" => (true, false),
            "t" => (false, false),
            op => panic!("unknown op {op}: {self:?}"),
        };
        assert_eq!(
            (self.v["before"].is_object(), self.v["after"].is_object()),
            images,
            "{self:?}"
        );
    }

    /// Checks the fields that locate a change: its transaction's xid,
    /// commit time and WAL range, and that it is not a snapshot row.
    fn in_tx(&self, tx: &Tx) {
        assert_eq!(self.source("snapshot"), "false", "{self:?}");
        assert_eq!(self.source("txId").as_i64(), Some(tx.xid), "{self:?}");
        let ts = self.source("ts_ms").as_i64().unwrap();
        assert!(
            (tx.start_ms..=tx.end_ms).contains(&ts),
            "source.ts_ms {ts} is not the commit time, within {}..={}: {self:?}",
            tx.start_ms,
            tx.end_ms
        );
        assert!(
            tx.wal.contains(&self.source_lsn()),
            "lsn outside {:?}: {self:?}",
            tx.wal
        );
    }
}

/// `rows` by their `after.id`, checked to be `c` events of `table` with
/// exactly the ids `1..=n`.
fn by_id<'a>(lines: &'a [Line], table: &str, n: i64) -> BTreeMap<i64, &'a Line> {
    let mut map = BTreeMap::new();
    for l in lines.iter().filter(|l| l.source_table() == table) {
        assert_eq!(l.op(), "c", "{l:?}");
        let id = l.v["after"]["id"].as_i64().unwrap();
        assert!(map.insert(id, l).is_none(), "id {id} twice");
    }
    assert_eq!(
        map.keys().copied().collect::<Vec<_>>(),
        (1..=n).collect::<Vec<_>>()
    );
    map
}

/// Compares each row's `after` with the server's expectation (by `id`).
fn assert_rows(lines: &[Line], table: &str, expected: &[Value]) {
    let got = by_id(lines, table, expected.len() as i64);
    for want in expected {
        let id = want["id"].as_i64().unwrap();
        assert_eq!(
            &got[&id].v["after"], want,
            "{table} id {id}: {:?}",
            got[&id]
        );
    }
}

// ---------------------------------------------------------------------------
// Envelope and ops
// ---------------------------------------------------------------------------

#[test]
fn ops_under_default_and_full_identity() {
    let d = Dbz::new(
        "CREATE TABLE ops (id int PRIMARY KEY, v text NOT NULL, w int);
         CREATE TABLE opsfull (id int PRIMARY KEY, v text, w int);
         ALTER TABLE opsfull REPLICA IDENTITY FULL;
         CREATE PUBLICATION pub FOR TABLE ops, opsfull;",
    );
    let txs = [
        d.tx("INSERT INTO ops VALUES (1, 'a', 10)"),
        d.tx("UPDATE ops SET w = 11 WHERE id = 1"),
        d.tx("UPDATE ops SET id = 2 WHERE id = 1"),
        d.tx("DELETE FROM ops WHERE id = 2"),
        d.tx("INSERT INTO opsfull VALUES (1, 'x', 1); UPDATE opsfull SET w = 2"),
        d.tx("UPDATE opsfull SET id = 5; DELETE FROM opsfull"),
        d.tx("INSERT INTO ops VALUES (3, 'b', NULL);
              SELECT pg_logical_emit_message(true, 'p', 'in a transaction');
              TRUNCATE ops, opsfull"),
    ];
    d.sql("SELECT pg_logical_emit_message(false, 'p', 'on its own')");
    // begin/commit and messages are asked for, and still not written.
    let lines = d.drain(&["--include-tx", "--include-messages"]);
    let shape: Vec<(&str, &str, usize)> = lines
        .iter()
        .map(|l| {
            let tx = txs
                .iter()
                .position(|t| t.wal.contains(&l.source_lsn()))
                .unwrap();
            (l.op(), l.source_table(), tx)
        })
        .collect();
    assert_eq!(
        shape,
        [
            ("c", "ops", 0),
            ("u", "ops", 1),
            ("d", "ops", 2),
            ("c", "ops", 2),
            ("d", "ops", 3),
            ("c", "opsfull", 4),
            ("u", "opsfull", 4),
            ("d", "opsfull", 5),
            ("c", "opsfull", 5),
            ("d", "opsfull", 5),
            ("c", "ops", 6),
            ("t", "ops", 6),
            ("t", "opsfull", 6),
        ],
        "{lines:#?}"
    );
    let images: Vec<(Value, Value)> = lines
        .iter()
        .map(|l| (l.v["before"].clone(), l.v["after"].clone()))
        .collect();
    let n = Value::Null;
    assert_eq!(
        images,
        [
            (n.clone(), json!({"id": 1, "v": "a", "w": 10})),
            // DEFAULT: no old row for an update that keeps the key.
            (n.clone(), json!({"id": 1, "v": "a", "w": 11})),
            // A key change: delete of the old key (its other columns are
            // not sent), then a create.
            (json!({"id": 1, "v": null, "w": null}), n.clone()),
            (n.clone(), json!({"id": 2, "v": "a", "w": 11})),
            (json!({"id": 2, "v": null, "w": null}), n.clone()),
            // FULL: whole old rows.
            (n.clone(), json!({"id": 1, "v": "x", "w": 1})),
            (
                json!({"id": 1, "v": "x", "w": 1}),
                json!({"id": 1, "v": "x", "w": 2})
            ),
            (json!({"id": 1, "v": "x", "w": 2}), n.clone()),
            (n.clone(), json!({"id": 5, "v": "x", "w": 2})),
            (json!({"id": 5, "v": "x", "w": 2}), n.clone()),
            (n.clone(), json!({"id": 3, "v": "b", "w": null})),
            (n.clone(), n.clone()),
            (n.clone(), n.clone()),
        ],
        "{lines:#?}"
    );
    for (l, &(_, _, tx)) in lines.iter().zip(&shape) {
        l.in_tx(&txs[tx]);
    }
    // A transaction's changes in WAL order, the two events of a key change
    // at the same position.
    assert_eq!(lines[2].source_lsn(), lines[3].source_lsn());
    assert!(lines[10].source_lsn() < lines[11].source_lsn());

    // sequence: [end of the last commit written before, lsn]. The end of a
    // commit record lies after the transaction's last change and at or
    // before the WAL position taken after it.
    let mut last_commit: Option<i64> = None;
    let mut prev_tx = None;
    for (l, &(_, _, tx)) in lines.iter().zip(&shape) {
        let (commit, lsn) = l.sequence();
        assert_eq!(lsn, Some(l.source_lsn()));
        if prev_tx != Some(tx) {
            match (prev_tx, commit) {
                (None, c) => assert_eq!(c, None, "no commit written before: {l:?}"),
                (Some(p), Some(c)) => {
                    assert!(c > last_commit.unwrap_or(0) && c <= txs[p].wal.end, "{l:?}");
                    assert!(c <= l.source_lsn(), "{l:?}");
                }
                (Some(_), None) => panic!("no last commit after one: {l:?}"),
            }
            last_commit = commit;
            prev_tx = Some(tx);
        }
        assert_eq!(
            commit, last_commit,
            "one last commit per transaction: {l:?}"
        );
    }
}

#[test]
fn topic_prefix_names_the_source_and_the_format_comes_from_the_environment() {
    let d = Dbz::new(
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         CREATE PUBLICATION pub FOR TABLE t;",
    );
    d.sql("INSERT INTO t VALUES (1, 'one')");
    let lines = d.drain(&["--topic-prefix", "shop"]);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert_eq!(lines[0].v["after"], json!({"id": 1, "v": "one"}));

    d.sql("INSERT INTO t VALUES (2, 'two')");
    d.db.wait_flushed();
    let mut args = d.db.stream_args(&d.slot, &d.publication);
    args.extend(vec_of(&["--end-lsn", "now"]));
    let out = run(&args, &[("PGSTREAM_FORMAT", "debezium")], TIMEOUT);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let v = out.json();
    assert_eq!(v.len(), 1, "{out:?}");
    assert_eq!(
        (&v[0]["op"], &v[0]["after"]["id"]),
        (&json!("c"), &json!(2))
    );
    assert_eq!(v[0]["source"]["name"], json!(d.slot));

    // The flag wins over the variable; pgstream's own format is unchanged.
    d.sql("INSERT INTO t VALUES (3, 'three')");
    d.db.wait_flushed();
    let mut args = d.db.stream_args(&d.slot, &d.publication);
    args.extend(vec_of(&["--end-lsn", "now", "--format", "pgstream"]));
    let out = run(&args, &[("PGSTREAM_FORMAT", "debezium")], TIMEOUT);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.json()[0]["op"], json!("insert"), "{out:?}");

    for bad in [
        vec_of(&["--format", "avro"]),
        vec_of(&["--format", "debezium", "--topic-prefix", ""]),
    ] {
        let mut args = d.db.stream_args(&d.slot, &d.publication);
        args.extend(bad);
        let out = run(&args, &[], TIMEOUT);
        assert_eq!(out.code, Some(2), "{args:?}: {out:?}");
        assert!(out.stdout_lines.is_empty(), "{out:?}");
        assert!(
            out.stderr.contains("--format") || out.stderr.contains("--topic-prefix"),
            "{}",
            out.stderr
        );
    }
}

// ---------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------

#[test]
fn scalar_values() {
    let numeric_infinity = server_major() >= 14;
    let d = Dbz::new(
        "CREATE TYPE mood AS ENUM ('sad', 'happy');
         CREATE DOMAIN posint AS int CHECK (VALUE > 0);
         CREATE DOMAIN label AS varchar(20);
         CREATE DOMAIN day AS date;
         CREATE TABLE sc (id int PRIMARY KEY, b bool, i2 int2, i4 int4, i8 int8, o oid,
                          n numeric, n2 numeric(7,2), m money, t text, vc varchar(10), c char(4),
                          nm name, j json, jb jsonb, u uuid, ip inet, cid cidr, mac macaddr,
                          r int4range, tr tstzrange, e mood, dp posint, dl label, dd day,
                          by bytea, x xml);
         CREATE PUBLICATION pub FOR TABLE sc;",
    );
    d.sql(&format!(
        r#"SET lc_monetary = 'C';
           INSERT INTO sc VALUES
             (1, true, -32768, -2147483648, -9223372036854775808, 4294967295,
              12.50, 12345.67, 1234.56, 'quote " and \', 'x', 'ab', 'nm',
              '{{"b": [1, 2.50e3], "a" :null}}', '{{"b": [1, 2.50e3], "a" :null}}',
              'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '192.168.0.1/24', '10.0.0.0/8',
              '08:00:2b:01:02:03', '[1,5)', '[2026-01-01 00:00+05:30,)', 'happy', 7, 'lbl',
              '2026-11-23', '\x0102ff', '<a>x</a>'),
             (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
              NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
             (3, false, 32767, 2147483647, 9223372036854775807, 0,
              'NaN', -0.5, -1234567.89, '', '', '', '', '"s"', '[]', '00000000-0000-0000-0000-000000000000',
              '::1', '::/0', 'ff:ff:ff:ff:ff:ff', 'empty', 'empty', 'sad', 1, '', '0044-03-15 BC',
              '', ''),
             (4, true, 0, 0, 0, 1, {inf}, 0, 0, E'line\nnext\ttab', 'é😀', '😀', 'n', '12', '{{}}',
              NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '1970-01-01',
              decode(repeat('00ff', 100), 'hex'), NULL),
             (5, NULL, NULL, NULL, NULL, NULL, {neg_inf}, NULL, NULL, NULL, NULL, NULL, NULL,
              NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '1969-12-31',
              NULL, NULL),
             (6, NULL, NULL, NULL, NULL, NULL, '0.00000000000000000001', NULL, NULL, NULL, NULL,
              NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
              NULL, NULL);"#,
        inf = if numeric_infinity { "'Infinity'" } else { "NULL" },
        neg_inf = if numeric_infinity { "'-Infinity'" } else { "NULL" },
    ));
    let lines = d.drain(&[]);
    let expected = d.expected(
        r#"SET lc_monetary = 'C';
           SELECT json_build_object(
             'id', id, 'b', b, 'i2', i2, 'i4', i4, 'i8', i8, 'o', o::bigint,
             'n', CASE WHEN n = 'NaN' THEN 'NAN'
                       WHEN n::text = 'Infinity' THEN 'POSITIVE_INFINITY'
                       WHEN n::text = '-Infinity' THEN 'NEGATIVE_INFINITY'
                       ELSE n::text END,
             'n2', n2::text, 'm', m::numeric::text, 't', t, 'vc', vc, 'c', textin(bpcharout(c)),
             'nm', nm, 'j', j::text, 'jb', jb::text, 'u', u::text, 'ip', textin(inet_out(ip)), 'cid', textin(cidr_out(cid)),
             'mac', mac::text, 'r', r::text, 'tr', tr::text, 'e', e::text, 'dp', dp::int,
             'dl', dl::text, 'dd', dd - '1970-01-01'::date,
             'by', translate(encode(by, 'base64'), E'\n', ''), 'x', x::text)
           FROM sc ORDER BY id"#,
    );
    assert_rows(&lines, "sc", &expected);
    // char(n) keeps its padding; numbers are JSON numbers.
    let r = by_id(&lines, "sc", 6);
    assert_eq!(r[&1].v["after"]["c"], json!("ab  "));
    assert_eq!(r[&1].raw_col("after", "i8"), "-9223372036854775808");
    assert_eq!(r[&1].v["after"]["m"], json!("1234.56"));
    assert_eq!(r[&3].v["after"]["n"], json!("NAN"));
    assert_eq!(r[&3].v["after"]["m"], json!("-1234567.89"));
    assert_eq!(r[&6].v["after"]["n"], json!("0.00000000000000000001"));
}

#[test]
fn float_values_as_java_prints_them() {
    let d = Dbz::new(
        "CREATE TABLE fl (id int PRIMARY KEY, f4 float4, f8 float8);
         CREATE PUBLICATION pub FOR TABLE fl;",
    );
    d.sql(
        "INSERT INTO fl VALUES
           (1, 1.5, 1.5), (2, 100, 100), (3, 16777216, 1e22), (4, '-0', '-0'),
           (5, 1e-45, 5e-324), (6, 0.1, 0.1), (7, 0.001, 0.001), (8, 1e-4, 1e-4),
           (9, 1234567, 1234567.0), (10, 1e7, 1e7), (11, 3.4028235e38, 1.7976931348623157e308),
           (12, 'NaN', 'NaN'), (13, 'Infinity', 'Infinity'), (14, '-Infinity', '-Infinity'),
           (15, NULL, NULL), (16, 123456.7, 0.30000000000000004);",
    );
    let lines = d.drain(&[]);
    let r = by_id(&lines, "fl", 16);
    // Java's Float.toString / Double.toString (JDK 19+, shortest digits),
    // which Jackson writes; non-finite values as strings.
    let java = [
        (1, "1.5", "1.5"),
        (2, "100.0", "100.0"),
        (3, "1.6777216E7", "1.0E22"),
        (4, "-0.0", "-0.0"),
        (5, "1.4E-45", "4.9E-324"),
        (6, "0.1", "0.1"),
        (7, "0.001", "0.001"),
        (8, "1.0E-4", "1.0E-4"),
        (9, "1234567.0", "1234567.0"),
        (10, "1.0E7", "1.0E7"),
        (11, "3.4028235E38", "1.7976931348623157E308"),
        (12, r#""NaN""#, r#""NaN""#),
        (13, r#""Infinity""#, r#""Infinity""#),
        (14, r#""-Infinity""#, r#""-Infinity""#),
        (15, "null", "null"),
        (16, "123456.7", "0.30000000000000004"),
    ];
    for (id, f4, f8) in java {
        let l = r[&id];
        assert_eq!(
            (l.raw_col("after", "f4"), l.raw_col("after", "f8")),
            (f4.into(), f8.into()),
            "{l:?}"
        );
    }
    // And each is the float the server holds.
    let server =
        d.sql("SET extra_float_digits = 3; SELECT id, f4, f8 FROM fl WHERE id <= 11 ORDER BY id");
    for row in server.lines() {
        let f: Vec<&str> = row.split('|').collect();
        let l = r[&f[0].parse::<i64>().unwrap()];
        let f4: f32 = l.raw_col("after", "f4").parse().unwrap();
        let f8: f64 = l.raw_col("after", "f8").parse().unwrap();
        assert_eq!(
            f4.to_bits(),
            f[1].parse::<f32>().unwrap().to_bits(),
            "{l:?}"
        );
        assert_eq!(
            f8.to_bits(),
            f[2].parse::<f64>().unwrap().to_bits(),
            "{l:?}"
        );
    }
}

#[test]
fn temporal_values() {
    let d = Dbz::new(
        "CREATE TABLE tm (id int PRIMARY KEY, d date, t time, t3 time(3), tt timetz,
                          ts timestamp, ts3 timestamp(3), ts0 timestamp(0),
                          tz timestamptz, tz3 timestamptz(3), tz0 timestamptz(0), iv interval);
         CREATE PUBLICATION pub FOR TABLE tm;",
    );
    // The server's TimeZone is not UTC (see harness): inputs without an
    // offset are local time, and none of it may show.
    d.sql(
        "INSERT INTO tm VALUES
           (1, '2026-11-23', '21:54:32.123456', '21:54:32.123', '21:54:32.5+05:30',
               '2026-11-23 21:54:32.123456', '2026-11-23 21:54:32.123', '2026-11-23 21:54:32',
               '2026-11-23 21:54:32.12+00', '2026-11-23 21:54:32.1+00', '2026-11-23 21:54:32+00',
               '1 year 2 months 3 days 04:05:06.5'),
           (2, '1969-12-31', '00:00:00', '00:00:00', '00:00:00-08', '1969-12-31 23:59:59.999999',
               '1969-12-31 23:59:59.999', '1900-01-01 00:00:00', '2026-01-01 05:30:00',
               '1999-12-31 23:59:59.999-01', '2026-01-01 00:00:00.4+00', '-3 days'),
           (3, '0044-03-15 BC', '24:00:00', '23:59:59.999', '23:59:59.999999+00',
               '0044-03-15 12:00:00 BC', '0044-03-15 12:00:00.5 BC', '2000-02-29 12:00:00',
               '2026-11-23 21:54:32.000001-08', '2026-11-23 21:54:32+00', '2026-11-23 21:54:32+00',
               '-1 mon +1 day -00:00:01.000001'),
           (4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '100 hours 0.123456 seconds'),
           (5, '2000-01-01', '12:00:00.000001', '12:00:00.1', '12:00:00.000001+01',
               '2000-01-01 00:00:00', '2000-01-01 00:00:00', '2000-01-01 00:00:00',
               '2000-01-01 00:00:00+00', '2000-01-01 00:00:00+00', '2000-01-01 00:00:00+00',
               '7 years 11 months 29 days 23:59:59.999999');",
    );
    let lines = d.drain(&[]);
    // The interval as Debezium's MicroDuration computes it, in doubles: a
    // month is 30.4375 days, the seconds whole plus micros / 1e6.
    let secs = "(trunc(extract(second FROM iv))::float8
                 + (extract(microseconds FROM iv) - trunc(extract(second FROM iv)) * 1000000)::float8
                   / 1000000::float8)";
    let expected = d.expected(&format!(
        r#"SELECT json_build_object(
             'id', id, 'd', d - '1970-01-01'::date,
             't', (extract(epoch FROM t) * 1000000)::bigint,
             't3', (extract(epoch FROM t3) * 1000)::bigint,
             'tt', (tt AT TIME ZONE 'UTC')::time::text || 'Z',
             'ts', (extract(epoch FROM ts) * 1000000)::bigint,
             'ts3', (extract(epoch FROM ts3) * 1000)::bigint,
             'ts0', (extract(epoch FROM ts0) * 1000)::bigint,
             'tz', to_char(tz AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
             'tz3', to_char(tz3 AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
             'tz0', to_char(tz0 AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
             'iv', trunc((((((extract(year FROM iv) * 12 + extract(month FROM iv))::float8
                             * 30.4375::float8 + extract(day FROM iv)::float8) * 24
                             + extract(hour FROM iv)::float8) * 60
                             + extract(minute FROM iv)::float8) * 60 + {secs})
                         * 1000000::float8)::bigint)
           FROM tm WHERE id <> 3 ORDER BY id"#
    ));
    let r = by_id(&lines, "tm", 5);
    for want in &expected {
        let id = want["id"].as_i64().unwrap();
        assert_eq!(&r[&id].v["after"], want, "id {id}: {:?}", r[&id]);
    }
    // Row 3: BC and 24:00:00, which to_char cannot print as Java does.
    let row3 = &d.expected(
        r#"SELECT json_build_object('d', d - '1970-01-01'::date,
             't', (extract(epoch FROM t) * 1000000)::bigint,
             'ts', (extract(epoch FROM ts) * 1000000)::bigint,
             'ts3', (extract(epoch FROM ts3) * 1000)::bigint)
           FROM tm WHERE id = 3"#,
    )[0];
    let a = &r[&3].v["after"];
    for k in ["d", "t", "ts", "ts3"] {
        assert_eq!(a[k], row3[k], "{k}: {:?}", r[&3]);
    }
    assert_eq!(a["t"], json!(86_400_000_000i64));
    assert_eq!(a["tt"], json!("23:59:59.999999Z"));
    assert_eq!(a["tz"], json!("2026-11-24T05:54:32.000001Z"));
    assert_eq!(a["tz3"], json!("2026-11-23T21:54:32.000Z"));
    assert_eq!(a["tz0"], json!("2026-11-23T21:54:32Z"));
    assert_eq!(
        r[&2].v["after"]["tz0"],
        json!("2026-01-01T00:00:00Z"),
        "rounded by the server"
    );
    assert_eq!(r[&4].v["after"]["iv"], json!(360_000_123_456i64));
}

#[test]
fn infinite_and_far_temporal_values() {
    let d = Dbz::new(
        "CREATE TABLE inf (id int PRIMARY KEY, d date, ts timestamp, ts3 timestamp(3),
                           tz timestamptz);
         CREATE PUBLICATION pub FOR TABLE inf;",
    );
    d.sql(
        "INSERT INTO inf VALUES
           (1, 'infinity', 'infinity', 'infinity', 'infinity'),
           (2, '-infinity', '-infinity', '-infinity', '-infinity'),
           (3, '10000-01-01', '10000-01-01 00:00:00', '10000-01-01 00:00:00',
               '0044-03-15 12:00:00.5+00 BC'),
           (4, NULL, NULL, NULL, '10000-01-01 00:00:00+00');",
    );
    let lines = d.drain(&[]);
    let r = by_id(&lines, "inf", 4);
    // Debezium's constants: a date's infinities are the days of
    // -5877611-06-21 and -22, a timestamp's pgjdbc's DATE_POSITIVE_INFINITY
    // and DATE_NEGATIVE_INFINITY (in µs, or ms with precision 0–3).
    assert_eq!(
        r[&1].v["after"],
        json!({"id": 1, "d": -2147472692i64, "ts": 9223372036825200000i64,
               "ts3": 9223372036825200i64, "tz": "infinity"})
    );
    assert_eq!(
        r[&2].v["after"],
        json!({"id": 2, "d": -2147472691i64, "ts": -9223372036832400000i64,
               "ts3": -9223372036832400i64, "tz": "-infinity"})
    );
    let far = &d.expected(
        "SELECT json_build_object('d', d - '1970-01-01'::date,
           'ts', (extract(epoch FROM ts) * 1000000)::bigint,
           'ts3', (extract(epoch FROM ts3) * 1000)::bigint) FROM inf WHERE id = 3",
    )[0];
    for k in ["d", "ts", "ts3"] {
        assert_eq!(r[&3].v["after"][k], far[k], "{k}: {:?}", r[&3]);
    }
    // ISO 8601 as Java prints it: a sign on years before 1 and after 9999.
    assert_eq!(
        r[&3].v["after"]["tz"],
        json!("-0043-03-15T12:00:00.500000Z")
    );
    assert_eq!(
        r[&4].v["after"]["tz"],
        json!("+10000-01-01T00:00:00.000000Z")
    );
}

#[test]
fn array_values() {
    let d = Dbz::new(
        "CREATE TYPE mood AS ENUM ('sad', 'happy');
         CREATE TABLE ar (id int PRIMARY KEY, ia int[], i8a int8[], ta text[], na numeric[],
                          da date[], tsa timestamp[], tza timestamptz[], ba bytea[], ua uuid[],
                          jba jsonb[], ba2 bool[], ea mood[], fa float8[], ma money[], iva interval[]);
         CREATE PUBLICATION pub FOR TABLE ar;",
    );
    d.sql(
        r#"INSERT INTO ar VALUES
             (1, '{1,NULL,3}', '{-9223372036854775808,9223372036854775807}',
              ARRAY['a"b', 'c,d', NULL, '', 'NULL'], '{12.50,NaN,NULL,-0.001}',
              '{2026-11-23,NULL,1969-12-31}', '{"2026-11-23 21:54:32.5",NULL}',
              '{"2026-11-23 21:54:32.5+05:30",infinity,NULL}', ARRAY['\x0102ff'::bytea, '', NULL],
              '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11,NULL}',
              ARRAY['{"a": [1, 2.50]}'::jsonb, 'null', NULL], '{t,f,NULL}', '{happy,NULL,sad}',
              '{1.5,NULL}', '{1.5}', '{1 day}'),
             (2, '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}'),
             (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);"#,
    );
    let lines = d.drain(&[]);
    // JSON array of `elem` (an expression of x) over the array column,
    // NULL for a NULL array.
    let agg = |col: &str, elem: &str| {
        format!(
            "CASE WHEN {col} IS NULL THEN NULL ELSE coalesce((SELECT json_agg({elem} ORDER BY o)
               FROM unnest({col}) WITH ORDINALITY u(x, o)), '[]') END"
        )
    };
    let expected = d.expected(&format!(
        r#"SELECT json_build_object('id', id, 'ia', to_json(ia), 'i8a', to_json(i8a),
             'ta', to_json(ta), 'na', {na}, 'da', {da}, 'tsa', {tsa}, 'tza', {tza}, 'ba', {ba},
             'ua', to_json(ua), 'jba', {jba}, 'ba2', to_json(ba2), 'ea', to_json(ea),
             'fa', to_json(fa))
           FROM ar ORDER BY id"#,
        na = agg("na", "CASE WHEN x = 'NaN' THEN 'NAN' ELSE x::text END"),
        da = agg("da", "x - '1970-01-01'::date"),
        tsa = agg("tsa", "(extract(epoch FROM x) * 1000000)::bigint"),
        tza = agg(
            "tza",
            r#"CASE WHEN x = 'infinity' THEN 'infinity'
                    ELSE to_char(x AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') END"#
        ),
        ba = agg("ba", r"translate(encode(x, 'base64'), E'\n', '')"),
        jba = agg("jba", "x::text"),
    ));
    // money[] and interval[]: Debezium has no schema for them, and leaves
    // the columns out; fa is compared as numbers (1.5 either way).
    assert_rows(&lines, "ar", &expected);
    let keys: Vec<String> = entries(&lines[0].raw)
        .into_iter()
        .find(|e| e.key == "after")
        .map(|e| entries(&e.value).into_iter().map(|e| e.key).collect())
        .unwrap();
    assert!(
        !keys.contains(&"ma".to_string()) && !keys.contains(&"iva".to_string()),
        "{keys:?}"
    );
}

// ---------------------------------------------------------------------------
// TOAST
// ---------------------------------------------------------------------------

#[test]
fn unchanged_toast_is_debeziums_placeholder() {
    let d = Dbz::new(
        "CREATE TABLE big (id int PRIMARY KEY, n int, body text, bin bytea, doc jsonb,
                           tags text[], nums int4[], bigs int8[], bins bytea[], ids uuid[],
                           days date[], fl float8[]);
         ALTER TABLE big ALTER COLUMN body SET STORAGE EXTERNAL, ALTER COLUMN bin SET STORAGE EXTERNAL,
           ALTER COLUMN doc SET STORAGE EXTERNAL, ALTER COLUMN tags SET STORAGE EXTERNAL,
           ALTER COLUMN nums SET STORAGE EXTERNAL, ALTER COLUMN bigs SET STORAGE EXTERNAL,
           ALTER COLUMN bins SET STORAGE EXTERNAL, ALTER COLUMN ids SET STORAGE EXTERNAL,
           ALTER COLUMN days SET STORAGE EXTERNAL, ALTER COLUMN fl SET STORAGE EXTERNAL;
         CREATE TABLE bigfull (LIKE big INCLUDING ALL);
         ALTER TABLE bigfull REPLICA IDENTITY FULL;
         CREATE PUBLICATION pub FOR TABLE big, bigfull;",
    );
    let values = "(SELECT string_agg(md5(i::text), '') FROM generate_series(1, 200) i),
                  (SELECT string_agg(md5(i::text), '') FROM generate_series(1, 200) i)::bytea,
                  to_jsonb((SELECT string_agg(md5(i::text), '') FROM generate_series(1, 200) i)),
                  (SELECT array_agg(md5(i::text)) FROM generate_series(1, 200) i),
                  (SELECT array_agg(i) FROM generate_series(1, 2000) i),
                  (SELECT array_agg(i::int8) FROM generate_series(1, 2000) i),
                  (SELECT array_agg(md5(i::text)::bytea) FROM generate_series(1, 200) i),
                  (SELECT array_agg(md5(i::text)::uuid) FROM generate_series(1, 200) i),
                  (SELECT array_agg(date '2000-01-01' + i) FROM generate_series(1, 2000) i),
                  (SELECT array_agg(i::float8) FROM generate_series(1, 2000) i)";
    d.sql(&format!(
        "INSERT INTO big VALUES (1, 0, {values});
         INSERT INTO bigfull VALUES (1, 0, {values});
         UPDATE big SET n = 1;
         UPDATE bigfull SET n = 1;"
    ));
    for t in ["big", "bigfull"] {
        let chunks = d.sql(&format!(
            "SELECT count(DISTINCT chunk_id) FROM pg_toast.pg_toast_{oid}",
            oid = d.sql(&format!("SELECT '{t}'::regclass::oid"))
        ));
        assert_eq!(chunks, "10", "{t}: every value is out of line");
    }
    let lines = d.drain(&[]);
    assert_eq!(
        lines
            .iter()
            .map(|l| (l.op(), l.source_table()))
            .collect::<Vec<_>>(),
        [
            ("c", "big"),
            ("c", "bigfull"),
            ("u", "big"),
            ("u", "bigfull")
        ],
        "{lines:#?}"
    );
    let bytes: Vec<u8> = TOAST.bytes().collect();
    let placeholders = json!({
        "id": 1, "n": 1,
        "body": TOAST,
        "bin": "X19kZWJleml1bV91bmF2YWlsYWJsZV92YWx1ZQ==",
        "doc": TOAST,
        "tags": [TOAST],
        "nums": bytes,
        "bigs": bytes,
        "bins": ["X19kZWJleml1bV91bmF2YWlsYWJsZV92YWx1ZQ=="],
        "ids": ["b68a35a7-17ad-35b3-af2a-ae46edb4545a"],
        "days": bytes,
        "fl": [TOAST],
    });
    assert_eq!(lines[2].v["after"], placeholders, "{:?}", lines[2]);
    assert_eq!(lines[2].v["before"], Value::Null, "{:?}", lines[2]);
    assert_eq!(lines[3].v["after"], placeholders, "{:?}", lines[3]);
    // The inserts and FULL's old row carry the values themselves.
    let full = &d.expected(
        "SELECT json_build_object('body', body, 'bin', encode(bin, 'base64'), 'doc', doc::text,
           'tags', to_json(tags), 'nums', to_json(nums))
         FROM big",
    )[0];
    let full_bin = full["bin"].as_str().unwrap().replace('\n', "");
    for image in [&lines[0].v["after"], &lines[3].v["before"]] {
        for k in ["body", "doc", "tags", "nums"] {
            assert_eq!(image[k], full[k], "{k}");
        }
        assert_eq!(image["bin"], json!(full_bin));
        assert_eq!(image["n"], json!(0));
    }
}

// ---------------------------------------------------------------------------
// Snapshot
// ---------------------------------------------------------------------------

#[test]
fn snapshot_rows_are_reads_and_the_last_is_marked() {
    let db = Cluster::shared().new_db("dbz");
    db.sql(
        "CREATE TABLE a (id int PRIMARY KEY, v text);
         CREATE TABLE b (id int PRIMARY KEY, d date);
         INSERT INTO a SELECT i, 'a' || i FROM generate_series(1, 3) i;
         INSERT INTO b VALUES (1, '2026-11-23'), (2, NULL);
         CREATE PUBLICATION pub FOR TABLE a, b;",
    );
    let slot = format!("s_{}", db.name);
    let d = Dbz {
        db,
        slot,
        publication: "pub".into(),
    };
    let lines = d.drain(&["--snapshot"]);
    assert_eq!(lines.len(), 5, "{lines:#?}");
    let marks: Vec<&Value> = lines.iter().map(|l| l.source("snapshot")).collect();
    assert_eq!(
        marks,
        ["true", "true", "true", "true", "last"],
        "{lines:#?}"
    );
    let lsn = lines[0].source_lsn();
    for l in &lines {
        assert_eq!(l.op(), "r", "{l:?}");
        assert_eq!(l.v["before"], Value::Null, "{l:?}");
        assert_eq!(l.source("txId"), &Value::Null, "{l:?}");
        assert_eq!(l.source_lsn(), lsn, "one consistent point: {l:?}");
        assert_eq!(l.sequence(), (None, Some(lsn)), "{l:?}");
    }
    let mut rows: Vec<(String, Value)> = lines
        .iter()
        .map(|l| (l.source_table().to_string(), l.v["after"].clone()))
        .collect();
    rows.sort_by_key(|(t, v)| (t.clone(), v["id"].as_i64()));
    let days = d.sql("SELECT '2026-11-23'::date - '1970-01-01'::date");
    assert_eq!(
        rows,
        [
            ("a".into(), json!({"id": 1, "v": "a1"})),
            ("a".into(), json!({"id": 2, "v": "a2"})),
            ("a".into(), json!({"id": 3, "v": "a3"})),
            (
                "b".into(),
                json!({"id": 1, "d": days.parse::<i64>().unwrap()})
            ),
            ("b".into(), json!({"id": 2, "d": null})),
        ]
    );
    // The slot's consistent point: where the stream starts, at or before
    // what the run acknowledged.
    let confirmed = d.sql(&format!(
        "SELECT confirmed_flush_lsn - '0/0' FROM pg_replication_slots WHERE slot_name = {}",
        quote_literal(&d.slot)
    ));
    assert!(lsn <= confirmed.parse::<i64>().unwrap());

    // The stream after it.
    let tx = d.tx("INSERT INTO a VALUES (4, 'a4')");
    let lines = d.drain(&[]);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert_eq!(lines[0].op(), "c");
    lines[0].in_tx(&tx);
    assert!(lines[0].source_lsn() > lsn);
}

/// `--backfill` rows are Debezium's incremental-snapshot reads: `r` with
/// `snapshot` `"incremental"` and no position; `backfill_done` is not
/// written.
#[test]
fn backfill_rows_are_incremental_snapshot_reads() {
    if server_major() < 14 && version_skip("--backfill needs PostgreSQL 14+") {
        return;
    }
    let d = Dbz::new(
        "CREATE TABLE bf (id int PRIMARY KEY, v text);
         INSERT INTO bf SELECT g, 'v' || g FROM generate_series(1, 3) g;
         CREATE PUBLICATION pub FOR TABLE bf;",
    );
    let mut args = d.db.stream_args(&d.slot, &d.publication);
    args.extend(vec_of(&["--format", "debezium", "--backfill", "public.bf"]));
    let mut p = Proc::spawn(&args, &[]);
    p.wait_lines(3, TIMEOUT);
    let tx = d.tx("INSERT INTO bf VALUES (4, 'v4')");
    p.wait_lines(4, TIMEOUT);
    p.signal("INT");
    let out = p.wait_exit(TIMEOUT);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let run = 0..=now_ms();
    let lines: Vec<Line> = out
        .stdout_lines
        .iter()
        .zip(out.json())
        .map(|(raw, v)| Line {
            raw: raw.clone(),
            v,
        })
        .collect();
    assert_eq!(lines.len(), 4, "{lines:#?}");
    for (i, l) in lines[..3].iter().enumerate() {
        l.check(&d.slot, &d.db.name, run.clone());
        assert_eq!(
            (l.op(), l.source("snapshot")),
            ("r", &json!("incremental")),
            "{l:?}"
        );
        assert_eq!(l.source("txId"), &Value::Null, "{l:?}");
        let id = i as i64 + 1;
        assert_eq!(
            l.v["after"],
            json!({"id": id, "v": format!("v{id}")}),
            "{l:?}"
        );
    }
    lines[3].check(&d.slot, &d.db.name, run);
    assert_eq!(lines[3].op(), "c");
    lines[3].in_tx(&tx);
}
