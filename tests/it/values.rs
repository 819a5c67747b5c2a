//! What pgstream writes: every row of the Values table (SPEC.md §2), every op
//! with its fields and key order, replica identities, TOAST, truncate,
//! transactions and messages.
//!
//! Each test creates its tables and publication, runs pgstream once with
//! `--end-lsn now` (which creates the slot and emits nothing), runs its
//! workload, then drains the slot with a second `--end-lsn now` run and
//! compares the lines: parsed with serde_json, and as raw text where the
//! exact text matters (key order, number text).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::harness::{
    format_lsn, parse_lsn, run, run_lines, server_major, Cluster, TestDb, TIMEOUT,
};
use crate::jsontext::{entries, minify, Line};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// The spec's key order (SPEC.md §2; docs/output.md adds `subxid`).
const KEY_ORDER: [&str; 20] = [
    "op",
    "schema",
    "table",
    "lsn",
    "xid",
    "subxid",
    "commit_lsn",
    "commit_ts",
    "snapshot_lsn",
    "streamed",
    "prefix",
    "content",
    "content_base64",
    "transactional",
    "cascade",
    "restart_identity",
    "key",
    "old",
    "new",
    "unchanged_toast",
];

/// The fields that locate a change in the WAL, dropped by [`Line::shape`].
const POSITION_KEYS: [&str; 4] = ["lsn", "xid", "commit_lsn", "commit_ts"];

/// A test database with a publication and a pgstream slot on it.
struct Stream {
    db: TestDb,
    slot: String,
    /// The `--publication` argument.
    publication: String,
}

impl Stream {
    /// A fresh database; runs `setup` (which must create the publication(s)
    /// named in `publication`), then pgstream once to create the slot.
    fn new(setup: &str, publication: &str) -> Stream {
        let db = Cluster::shared().new_db("");
        db.sql(setup);
        let slot = format!("s_{}", db.name);
        assert!(slot.len() <= 63, "slot name too long: {slot}");
        let s = Stream {
            db,
            slot,
            publication: publication.to_string(),
        };
        let first = s.run_now(&[]);
        assert!(
            first.is_empty(),
            "the run that creates the slot emits nothing: {first:#?}"
        );
        assert!(s.db.slot_exists(&s.slot));
        s
    }

    fn sql(&self, sql: &str) -> String {
        self.db.sql(sql)
    }

    /// Waits until the WAL written so far is flushed (the test cluster runs
    /// with `synchronous_commit = off`, and the walsender sends only flushed
    /// WAL; this keeps the tests independent of whether `--end-lsn now` is
    /// read as the flush or the insert position), then drains the slot.
    /// Checks the run and every line (JSON object, key order, LSN and
    /// timestamp forms).
    fn drain(&self, extra: &[&str]) -> Vec<Line> {
        self.db.wait_flushed();
        self.run_now(extra)
    }

    fn run_now(&self, extra: &[&str]) -> Vec<Line> {
        let mut args = self.db.stream_args(&self.slot, &self.publication);
        args.extend(["--end-lsn", "now"].iter().map(|s| s.to_string()));
        args.extend(extra.iter().map(|s| s.to_string()));
        let lines: Vec<Line> = run_lines(&args)
            .into_iter()
            .map(|(raw, v)| Line { raw, v })
            .collect();
        for l in &lines {
            l.check_common();
        }
        lines
    }
}

impl Line {
    fn table(&self) -> Option<&str> {
        self.v.get("table").and_then(Value::as_str)
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.v.get(key)
    }

    fn str(&self, key: &str) -> &str {
        self.v[key]
            .as_str()
            .unwrap_or_else(|| panic!("{key} is not a string in {}", self.raw))
    }

    fn xid(&self) -> u64 {
        self.v["xid"]
            .as_u64()
            .unwrap_or_else(|| panic!("xid is not a number in {}", self.raw))
    }

    fn lsn(&self, key: &str) -> u64 {
        parse_lsn(self.str(key))
    }

    /// The top-level keys in the order they appear in the raw text.
    fn keys(&self) -> Vec<String> {
        entries(&self.raw).into_iter().map(|e| e.key).collect()
    }

    /// The raw text of a top-level value.
    fn raw(&self, key: &str) -> String {
        entries(&self.raw)
            .into_iter()
            .find(|e| e.key == key)
            .map(|e| e.value)
            .unwrap_or_else(|| panic!("no {key} in {}", self.raw))
    }

    /// The line without the fields that locate it in the WAL (and with
    /// them checked present): what the workload alone decides.
    fn shape(&self) -> Value {
        let mut v = self.v.clone();
        let obj = v.as_object_mut().unwrap();
        for k in POSITION_KEYS {
            assert!(obj.remove(k).is_some(), "no {k} in {}", self.raw);
        }
        v
    }

    /// Checks every line: known keys in the spec's order, well-formed LSNs
    /// and timestamps, an integer xid.
    fn check_common(&self) {
        let keys = self.keys();
        let mut pos = 0;
        for k in &keys {
            let at = KEY_ORDER
                .iter()
                .position(|o| o == k)
                .unwrap_or_else(|| panic!("unknown key {k:?} in {}", self.raw));
            assert!(
                at >= pos,
                "key {k:?} out of the spec's order in {}",
                self.raw
            );
            pos = at + 1;
        }
        for k in ["lsn", "commit_lsn", "snapshot_lsn"] {
            if let Some(v) = self.get(k) {
                let s = v.as_str().unwrap_or_default();
                assert!(is_lsn(s), "{k} is not an X/XXXXXXXX LSN in {}", self.raw);
            }
        }
        if let Some(v) = self.get("commit_ts") {
            let s = v.as_str().unwrap_or_default();
            assert!(
                is_utc_timestamp(s, true),
                "commit_ts is not RFC 3339 UTC in {}",
                self.raw
            );
        }
        if self.get("xid").is_some() {
            self.xid();
        }
    }
}

/// `^[0-9A-F]+/[0-9A-F]+$`.
fn is_lsn(s: &str) -> bool {
    let hex = |p: &str| !p.is_empty() && p.bytes().all(|c| matches!(c, b'0'..=b'9' | b'A'..=b'F'));
    matches!(s.split_once('/'), Some((hi, lo)) if hex(hi) && hex(lo))
}

/// `YYYY-MM-DDTHH:MM:SS[.f]` (+ `Z` when `zone`), the fraction 1–6 digits
/// without trailing zeros.
fn is_utc_timestamp(s: &str, zone: bool) -> bool {
    let Some(s) = (if zone { s.strip_suffix('Z') } else { Some(s) }) else {
        return false;
    };
    let (main, frac) = s.split_once('.').unwrap_or((s, ""));
    let shape_ok = main.len() == 19
        && main.bytes().enumerate().all(|(i, c)| match i {
            4 | 7 => c == b'-',
            10 => c == b'T',
            13 | 16 => c == b':',
            _ => c.is_ascii_digit(),
        });
    let frac_ok = !s.contains('.')
        || (1..=6).contains(&frac.len())
            && frac.bytes().all(|c| c.is_ascii_digit())
            && !frac.ends_with('0');
    shape_ok && frac_ok
}

/// Microseconds since the Unix epoch of a `YYYY-MM-DDTHH:MM:SS[.f]Z` string.
fn utc_micros(s: &str) -> i64 {
    assert!(is_utc_timestamp(s, true), "not RFC 3339 UTC: {s}");
    let s = &s[..s.len() - 1];
    let (main, frac) = s.split_once('.').unwrap_or((s, ""));
    let n = |r: std::ops::Range<usize>| main[r].parse::<i64>().unwrap();
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    let secs = n(11..13) * 3600 + n(14..16) * 60 + n(17..19);
    let frac: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<6}").parse().unwrap()
    };
    // Days from 1970-01-01 (H. Hinnant's days_from_civil).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    (days * 86_400 + secs) * 1_000_000 + frac
}

/// The `insert` lines of `table` by their `new.id`.
fn inserts_by_id<'a>(lines: &'a [Line], table: &str) -> BTreeMap<i64, &'a Line> {
    let mut map = BTreeMap::new();
    for l in lines.iter().filter(|l| l.table() == Some(table)) {
        assert_eq!(l.op(), "insert", "only inserts expected: {l:?}");
        let id = l.v["new"]["id"]
            .as_i64()
            .unwrap_or_else(|| panic!("no integer new.id: {l:?}"));
        assert!(map.insert(id, l).is_none(), "id {id} twice");
    }
    map
}

/// Asserts that the raw `new` of `line` is exactly `want` (up to whitespace
/// between tokens): same keys in the same order, same number text.
fn assert_new(line: &Line, want: &str) {
    assert_new_except(line, want, &[]);
}

/// [`assert_new`] without comparing the values of the columns `skip` (whose
/// keys must still be there, in order).
fn assert_new_except(line: &Line, want: &str, skip: &[&str]) {
    let show = |e: Vec<crate::jsontext::Entry>| -> Vec<(String, String)> {
        e.into_iter()
            .map(
                |crate::jsontext::Entry {
                     key: k, value: v, ..
                 }| {
                    let v = if skip.contains(&k.as_str()) {
                        "…".into()
                    } else {
                        minify(&v)
                    };
                    (k, v)
                },
            )
            .collect()
    };
    let (got, want) = (show(entries(&line.raw("new"))), show(entries(want)));
    assert_eq!(got, want, "\n--- line: {}", line.raw);
}

/// The table's insert lines, checked to be exactly the ids `1..=n`.
fn rows<'a>(lines: &'a [Line], table: &str, n: i64) -> BTreeMap<i64, &'a Line> {
    let rows = inserts_by_id(lines, table);
    assert_eq!(
        rows.keys().copied().collect::<Vec<_>>(),
        (1..=n).collect::<Vec<_>>(),
        "rows of {table}: {lines:#?}"
    );
    rows
}

/// The significant digits of a decimal number's text (no sign, point,
/// exponent, leading or trailing zeros).
fn significant_digits(s: &str) -> String {
    let mantissa = s.split(['e', 'E']).next().unwrap();
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let d = digits.trim_start_matches('0').trim_end_matches('0');
    if d.is_empty() {
        "0".into()
    } else {
        d.into()
    }
}

// ---------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------

#[test]
fn numbers_bools_numeric_and_json() {
    // A negative numeric scale (rounding left of the point) is PostgreSQL
    // 15+; before, `ns` has scale 0 and keeps its values as given.
    let negative_scale = server_major() >= 15;
    let s = Stream::new(
        &format!(
            "CREATE TABLE ints (id int PRIMARY KEY, b bool, i2 int2, i4 int4, i8 int8, o oid);
             CREATE TABLE nums (id int PRIMARY KEY, n numeric, ns numeric({}));
             CREATE TABLE floats (id int PRIMARY KEY, f4 float4, f8 float8);
             CREATE TABLE js (id int PRIMARY KEY, j json, jb jsonb);
             CREATE PUBLICATION pub FOR TABLE ints, nums, floats, js;",
            if negative_scale { "5,-2" } else { "5,0" }
        ),
        "pub",
    );
    // numeric ±Infinity is PostgreSQL 14+: before, those rows hold NULL.
    let numeric_infinity = server_major() >= 14;
    let (inf, neg_inf) = if numeric_infinity {
        ("'Infinity'", "'-Infinity'")
    } else {
        ("NULL", "NULL")
    };
    s.sql(
        &r#"INSERT INTO ints VALUES
             (1, true, -32768, -2147483648, -9223372036854775808, 0),
             (2, false, 32767, 2147483647, 9223372036854775807, 4294967295),
             (3, NULL, NULL, NULL, NULL, NULL),
             (4, true, 0, -1, 0, 1);
           INSERT INTO nums VALUES
             (1, 12.50, 12345),
             (2, '1234567890123456789012345678901234567890', -12355),
             (3, 'NaN', NULL),
             (4, '-0.000', 0),
             (5, '0.00000000000000000001', NULL),
             (6, NUM_INF, NULL),
             (7, NUM_NEG_INF, NULL),
             (8, '-98765432109876543210.123456789012345678901', NULL),
             (9, NULL, NULL);
           INSERT INTO floats VALUES
             (1, 1.5, 1.5),
             (2, 0.1, 0.1),
             (3, 3.4028235e38, 1e300),
             (4, '-0', '-0'),
             (5, 1.17549435e-38, 1.23456789012345e-300),
             (6, 16777216, 9007199254740993),
             (7, 1e-45, 5e-324),
             (8, 123456.7, 0.30000000000000004),
             (9, 'NaN', 'NaN'),
             (10, 'Infinity', 'Infinity'),
             (11, '-Infinity', '-Infinity'),
             (12, NULL, NULL),
             (13, 100, 1e22);
           INSERT INTO js VALUES
             (1, '{"a" : 1.0,
                   "b": [1e2, 12345678901234567890123, -0.5E-3, 0],
             	"c": {"d": null, "e": "x\ty \"q\" \u00e9 \\"}, "t": [true, false]}',
                 '{"b": [1.0, 1e2, 12345678901234567890123], "a": {"x": "y"}}'),
             (2, '"a string"', '[]'),
             (3, '  12  ', 'null'),
             (4, NULL, NULL),
             (5, '[]', '{"n": -0.00100}');"#
            .replace("NUM_NEG_INF", neg_inf)
            .replace("NUM_INF", inf),
    );
    let lines = s.drain(&[]);
    assert_eq!(lines.len(), 4 + 9 + 13 + 5, "{lines:#?}");

    let ints = rows(&lines, "ints", 4);
    assert_new(
        ints[&1],
        r#"{"id":1,"b":true,"i2":-32768,"i4":-2147483648,"i8":-9223372036854775808,"o":0}"#,
    );
    assert_new(
        ints[&2],
        r#"{"id":2,"b":false,"i2":32767,"i4":2147483647,"i8":9223372036854775807,"o":4294967295}"#,
    );
    assert_new(
        ints[&3],
        r#"{"id":3,"b":null,"i2":null,"i4":null,"i8":null,"o":null}"#,
    );
    assert_new(ints[&4], r#"{"id":4,"b":true,"i2":0,"i4":-1,"i8":0,"o":1}"#);

    let nums = rows(&lines, "nums", 9);
    let (ns1, ns2) = if negative_scale {
        ("12300", "-12400")
    } else {
        ("12345", "-12355")
    };
    assert_new(nums[&1], &format!(r#"{{"id":1,"n":"12.50","ns":"{ns1}"}}"#));
    assert_new(
        nums[&2],
        &format!(r#"{{"id":2,"n":"1234567890123456789012345678901234567890","ns":"{ns2}"}}"#),
    );
    assert_new(nums[&3], r#"{"id":3,"n":"NaN","ns":null}"#);
    assert_new(nums[&4], r#"{"id":4,"n":"0.000","ns":"0"}"#);
    assert_new(
        nums[&5],
        r#"{"id":5,"n":"0.00000000000000000001","ns":null}"#,
    );
    if numeric_infinity {
        assert_new(nums[&6], r#"{"id":6,"n":"Infinity","ns":null}"#);
        assert_new(nums[&7], r#"{"id":7,"n":"-Infinity","ns":null}"#);
    } else {
        assert_new(nums[&6], r#"{"id":6,"n":null,"ns":null}"#);
        assert_new(nums[&7], r#"{"id":7,"n":null,"ns":null}"#);
    }
    assert_new(
        nums[&8],
        r#"{"id":8,"n":"-98765432109876543210.123456789012345678901","ns":null}"#,
    );
    assert_new(nums[&9], r#"{"id":9,"n":null,"ns":null}"#);

    // Floats: a JSON number that reads back as the same float, with no more
    // significant digits than the shortest exact form; specials as strings.
    let floats = rows(&lines, "floats", 13);
    let f4: [(i64, f32); 9] = [
        (1, 1.5),
        (2, 0.1),
        (3, 3.4028235e38),
        (4, -0.0),
        (5, f32::MIN_POSITIVE),
        (6, 16777216.0),
        (7, 1e-45),
        (8, 123456.7),
        (13, 100.0),
    ];
    let f8: [(i64, f64); 9] = [
        (1, 1.5),
        (2, 0.1),
        (3, 1e300),
        (4, -0.0),
        (5, 1.23456789012345e-300),
        (6, 9007199254740992.0),
        (7, 5e-324),
        (8, 0.30000000000000004),
        (13, 1e22),
    ];
    for (id, want) in f4 {
        let line = floats[&id];
        let raw = entries(&line.raw("new"))[1].value.clone();
        assert!(line.v["new"]["f4"].is_number(), "f4 not a number: {line:?}");
        let got: f32 = raw.parse().unwrap_or_else(|e| panic!("{raw}: {e}"));
        assert_eq!(got.to_bits(), want.to_bits(), "f4 {raw} in {line:?}");
        assert_eq!(
            significant_digits(&raw),
            significant_digits(&format!("{want:e}")),
            "f4 {raw} is not the shortest form in {line:?}"
        );
    }
    for (id, want) in f8 {
        let line = floats[&id];
        let raw = entries(&line.raw("new"))[2].value.clone();
        assert!(line.v["new"]["f8"].is_number(), "f8 not a number: {line:?}");
        let got: f64 = raw.parse().unwrap_or_else(|e| panic!("{raw}: {e}"));
        assert_eq!(got.to_bits(), want.to_bits(), "f8 {raw} in {line:?}");
        assert_eq!(
            significant_digits(&raw),
            significant_digits(&format!("{want:e}")),
            "f8 {raw} is not the shortest form in {line:?}"
        );
    }
    assert_new(floats[&9], r#"{"id":9,"f4":"NaN","f8":"NaN"}"#);
    assert_new(floats[&10], r#"{"id":10,"f4":"Infinity","f8":"Infinity"}"#);
    assert_new(
        floats[&11],
        r#"{"id":11,"f4":"-Infinity","f8":"-Infinity"}"#,
    );
    assert_new(floats[&12], r#"{"id":12,"f4":null,"f8":null}"#);

    // json keeps its text (only whitespace between tokens may go), jsonb is
    // PostgreSQL's normalised text; both embedded as values.
    let js = rows(&lines, "js", 5);
    assert_new(
        js[&1],
        r#"{"id":1,
            "j":{"a":1.0,"b":[1e2,12345678901234567890123,-0.5E-3,0],
                 "c":{"d":null,"e":"x\ty \"q\" \u00e9 \\"},"t":[true,false]},
            "jb":{"a":{"x":"y"},"b":[1.0,100,12345678901234567890123]}}"#,
    );
    assert_eq!(js[&1].v["new"]["j"]["c"]["e"], json!("x\ty \"q\" é \\"));
    assert_new(js[&2], r#"{"id":2,"j":"a string","jb":[]}"#);
    assert_new(js[&3], r#"{"id":3,"j":12,"jb":null}"#);
    assert_new(js[&4], r#"{"id":4,"j":null,"jb":null}"#);
    assert_new(js[&5], r#"{"id":5,"j":[],"jb":{"n":-0.00100}}"#);
}

#[test]
fn arrays() {
    let s = Stream::new(
        "CREATE TABLE arrs (id int PRIMARY KEY, ia int[], im int[][], ta text[], lb int[],
                            jba jsonb[], na numeric[], ba bytea[], tza timestamptz[],
                            fa float8[], ba2 bool[], i8a int8[]);
         CREATE PUBLICATION pub FOR TABLE arrs;",
        "pub",
    );
    s.sql(
        r#"INSERT INTO arrs VALUES
             (1, '{1,NULL,3}', '{{1,NULL},{NULL,4}}',
              ARRAY['a"b', 'c,d', '{e}', 'f\g', ' h ', 'NULL', NULL, '', 'i j', 'k''l', '"'],
              '[0:1]={1,2}',
              ARRAY['{"a": [1, 2.50]}'::jsonb, 'null', '"s"', NULL, '{"b": "}\","}'],
              '{12.50,NaN,NULL,-0.001}',
              ARRAY['\x0102ff'::bytea, ''::bytea, NULL],
              ARRAY['2026-11-23 21:54:32.5+05:30'::timestamptz, 'infinity', NULL,
                    '2026-01-01 05:30:00'],
              '{1.5,NaN,-Infinity,0.1,NULL}',
              '{t,f,NULL}',
              '{-9223372036854775808,9223372036854775807,NULL,0}'),
             (2, '{}', '{{{1,2}},{{3,NULL}}}',
              '{{"NULL",NULL},{"x y","}"}}',
              '[-2:0]={7,8,9}',
              '{}', NULL, NULL, NULL, NULL, NULL, '[5:5]={-1}'),
             (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
             (4, '{{NULL,NULL}}', '[1:1][3:4]={{5,6}}', '{"\\\"\\,"}', '{NULL}',
              NULL, NULL, '{"\\x00"}', '{-infinity}', '{-0,1e300}', NULL, NULL);"#,
    );
    let lines = s.drain(&[]);
    assert_eq!(lines.len(), 4, "{lines:#?}");
    let r = rows(&lines, "arrs", 4);
    assert_new(
        r[&1],
        r#"{"id":1,"ia":[1,null,3],"im":[[1,null],[null,4]],
            "ta":["a\"b","c,d","{e}","f\\g"," h ","NULL",null,"","i j","k'l","\""],
            "lb":[1,2],
            "jba":[{"a":[1,2.50]},null,"s",null,{"b":"}\","}],
            "na":["12.50","NaN",null,"-0.001"],
            "ba":["\\x0102ff","\\x",null],
            "tza":["2026-11-23T16:24:32.5Z","infinity",null,"2026-01-01T00:00:00Z"],
            "fa":[1.5,"NaN","-Infinity",0.1,null],
            "ba2":[true,false,null],
            "i8a":[-9223372036854775808,9223372036854775807,null,0]}"#,
    );
    assert_eq!(
        r[&1].v["new"]["ta"],
        json!(["a\"b", "c,d", "{e}", "f\\g", " h ", "NULL", null, "", "i j", "k'l", "\""])
    );
    assert_new(
        r[&2],
        r#"{"id":2,"ia":[],"im":[[[1,2]],[[3,null]]],"ta":[["NULL",null],["x y","}"]],
            "lb":[7,8,9],"jba":[],"na":null,"ba":null,"tza":null,"fa":null,"ba2":null,"i8a":[-1]}"#,
    );
    assert_new(
        r[&3],
        r#"{"id":3,"ia":null,"im":null,"ta":null,"lb":null,"jba":null,"na":null,
            "ba":null,"tza":null,"fa":null,"ba2":null,"i8a":null}"#,
    );
    // '{"\\\"\\,"}' is the one-element array of the text  \"\,  (the SQL
    // literal keeps backslashes; the array parser unescapes them once).
    assert_new_except(
        r[&4],
        r#"{"id":4,"ia":[[null,null]],"im":[[5,6]],"ta":["\\\"\\,"],"lb":[null],
            "jba":null,"na":null,"ba":["\\x00"],"tza":["-infinity"],"fa":[-0,1e300],"ba2":null,"i8a":null}"#,
        &["fa"],
    );
    let fa: Vec<f64> = entries(&r[&4].raw("new"))[9]
        .value
        .trim_matches(['[', ']'])
        .split(',')
        .map(|x| x.parse().unwrap())
        .collect();
    assert_eq!(
        (fa[0].to_bits(), fa[1]),
        ((-0.0f64).to_bits(), 1e300),
        "{:?}",
        r[&4]
    );
    assert_eq!(r[&4].v["new"]["ta"], json!(["\\\"\\,"]));
}

#[test]
fn timestamps_and_dates_ignore_server_settings() {
    let s = Stream::new(
        "CREATE TABLE times (id int PRIMARY KEY, tz timestamptz, ts timestamp, d date,
                             t time, iv interval);
         CREATE PUBLICATION pub FOR TABLE times;",
        "pub",
    );
    // The server's TimeZone is Asia/Kolkata and its DateStyle 'SQL, DMY':
    // inputs without an offset are Kolkata time, and none of it may show.
    s.sql(
        "INSERT INTO times VALUES
           (1, '2026-11-23 21:54:32.123456+00', '2026-11-23 21:54:32.123456', '2026-11-23',
               '21:54:32.123456', '1 day 2 hours'),
           (2, '2026-11-23 21:54:32.5+05:30', '2026-11-23 21:54:32.5', '2026-02-03',
               '00:00:00', '1 year 2 months 3 days 04:05:06.5'),
           (3, '2026-11-23 21:54:32-08', '2026-11-23 21:54:32', 'infinity',
               '23:59:59.999999', '-3 days'),
           (4, 'infinity', 'infinity', '-infinity', NULL, '0'),
           (5, '-infinity', '-infinity', '0044-03-15 BC', NULL, '-1 mon 1 day -00:00:01'),
           (6, '0044-03-15 12:00:00+00 BC', '0044-03-15 12:00:00 BC', NULL, NULL, NULL),
           (7, '2026-01-01 05:30:00', '2026-11-23 21:54:32.100', NULL, NULL, NULL),
           (8, '2026-11-23 21:54:32.000001+00', '2026-11-23 21:54:32.000010', NULL, NULL, NULL),
           (9, '2024-02-29 23:59:59.9-01', '0001-01-01 00:00:00', NULL, NULL, NULL),
           (10, NULL, NULL, NULL, NULL, NULL);",
    );
    let lines = s.drain(&[]);
    let r = rows(&lines, "times", 10);
    assert_new(
        r[&1],
        r#"{"id":1,"tz":"2026-11-23T21:54:32.123456Z","ts":"2026-11-23T21:54:32.123456",
            "d":"2026-11-23","t":"21:54:32.123456","iv":"P1DT2H"}"#,
    );
    assert_new(
        r[&2],
        r#"{"id":2,"tz":"2026-11-23T16:24:32.5Z","ts":"2026-11-23T21:54:32.5",
            "d":"2026-02-03","t":"00:00:00","iv":"P1Y2M3DT4H5M6.5S"}"#,
    );
    assert_new(
        r[&3],
        r#"{"id":3,"tz":"2026-11-24T05:54:32Z","ts":"2026-11-23T21:54:32",
            "d":"infinity","t":"23:59:59.999999","iv":"P-3D"}"#,
    );
    assert_new(
        r[&4],
        r#"{"id":4,"tz":"infinity","ts":"infinity","d":"-infinity","t":null,"iv":"PT0S"}"#,
    );
    assert_new(
        r[&5],
        r#"{"id":5,"tz":"-infinity","ts":"-infinity","d":"0044-03-15 BC","t":null,
            "iv":"P-1M1DT-1S"}"#,
    );
    assert_new(
        r[&6],
        r#"{"id":6,"tz":"-0043-03-15T12:00:00Z","ts":"-0043-03-15T12:00:00",
            "d":null,"t":null,"iv":null}"#,
    );
    assert_new(
        r[&7],
        r#"{"id":7,"tz":"2026-01-01T00:00:00Z","ts":"2026-11-23T21:54:32.1",
            "d":null,"t":null,"iv":null}"#,
    );
    assert_new(
        r[&8],
        r#"{"id":8,"tz":"2026-11-23T21:54:32.000001Z","ts":"2026-11-23T21:54:32.00001",
            "d":null,"t":null,"iv":null}"#,
    );
    assert_new(
        r[&9],
        r#"{"id":9,"tz":"2024-03-01T00:59:59.9Z","ts":"0001-01-01T00:00:00",
            "d":null,"t":null,"iv":null}"#,
    );
    assert_new(
        r[&10],
        r#"{"id":10,"tz":null,"ts":null,"d":null,"t":null,"iv":null}"#,
    );
}

#[test]
fn bytea_and_text() {
    let s = Stream::new(
        "CREATE TABLE blobs (id int PRIMARY KEY, b bytea, t text, c char(4), vc varchar(20));
         CREATE PUBLICATION pub FOR TABLE blobs;",
        "pub",
    );
    s.sql(
        r#"INSERT INTO blobs VALUES
             (1, '\x0102ff', 'quote " backslash \ done', 'ab', 'x');
           INSERT INTO blobs VALUES
             (2, '', E'line1\nline2\ttab\rcr', '', ''),
             (3, '\x00', chr(1) || chr(31) || chr(127) || 'end', NULL, NULL),
             (4, NULL, '😀 héllo 中文 ü', 'ü', '😀'),
             (5, 'abc'::bytea, '', NULL, 'NULL'),
             (6, decode('5c27', 'hex'), 'NULL', NULL, NULL),
             (7, decode(repeat('ab', 300), 'hex'), '{"not":"json"}', NULL, NULL);"#,
    );
    let lines = s.drain(&[]);
    let r = rows(&lines, "blobs", 7);
    assert_new(
        r[&1],
        r#"{"id":1,"b":"\\x0102ff","t":"quote \" backslash \\ done","c":"ab  ","vc":"x"}"#,
    );
    assert_eq!(r[&1].v["new"]["b"], json!(r"\x0102ff"));
    assert_eq!(r[&1].v["new"]["t"], json!(r#"quote " backslash \ done"#));
    assert_eq!(r[&2].v["new"]["b"], json!(r"\x"));
    assert_eq!(r[&2].v["new"]["t"], json!("line1\nline2\ttab\rcr"));
    assert_eq!(r[&2].v["new"]["c"], json!("    "));
    assert_eq!(r[&2].v["new"]["vc"], json!(""));
    assert_eq!(r[&3].v["new"]["b"], json!(r"\x00"));
    assert_eq!(r[&3].v["new"]["t"], json!("\u{1}\u{1f}\u{7f}end"));
    assert_new(
        r[&4],
        r#"{"id":4,"b":null,"t":"😀 héllo 中文 ü","c":"ü   ","vc":"😀"}"#,
    );
    assert_new(
        r[&5],
        r#"{"id":5,"b":"\\x616263","t":"","c":null,"vc":"NULL"}"#,
    );
    assert_new(
        r[&6],
        r#"{"id":6,"b":"\\x5c27","t":"NULL","c":null,"vc":null}"#,
    );
    assert_eq!(
        r[&7].v["new"]["b"],
        json!(format!(r"\x{}", "ab".repeat(300)))
    );
    assert_eq!(r[&7].v["new"]["t"], json!(r#"{"not":"json"}"#));
}

#[test]
fn domains_enums_and_other_types() {
    // Arrays of domains are PostgreSQL 11+: on 10, `dpa` and the domain
    // `later` are over int[] (same values, same output).
    let (posint_arr, posint2_arr) = if server_major() >= 11 {
        ("posint[]", "posint2[]")
    } else {
        ("int[]", "int[]")
    };
    let s = Stream::new(
        &r#"CREATE TYPE mood AS ENUM ('sad', 'happy', 'very "happy"');
           CREATE TYPE pair AS (n int, s text);
           CREATE DOMAIN posint AS int CHECK (VALUE > 0);
           CREATE DOMAIN posint2 AS posint;
           CREATE DOMAIN price AS numeric(10,2);
           CREATE DOMAIN label AS text;
           CREATE DOMAIN intlist AS int[];
           CREATE DOMAIN stamp AS timestamptz;
           CREATE DOMAIN doc AS jsonb;
           CREATE TABLE misc (id int PRIMARY KEY, dp posint, dp2 posint2, dm price, dl label,
                              dil intlist, dpa POSINT_ARR, dts stamp, dj doc, m mood, ma mood[],
                              u uuid, ip inet, r int4range, c pair, ca pair[], bits bit(4),
                              mac macaddr, b bool);
           CREATE PUBLICATION pub FOR TABLE misc;"#
            .replace("POSINT_ARR", posint_arr),
        "pub",
    );
    s.sql(
        &r#"INSERT INTO misc VALUES
             (1, 7, 8, 12.5, 'lbl', '{1,NULL,3}', '{4,5}', '2026-11-23 21:54:32.5+05:30',
              '{"k": [1.50, true]}', 'happy', '{sad,"very \"happy\""}',
              'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', '192.168.0.1/24', '[1,10)',
              ROW(1, 'a b'), ARRAY[ROW(1, 'a'), ROW(2, 'b c')]::pair[], B'1010',
              '08:00:2b:01:02:03', true),
             (2, NULL, NULL, NULL, NULL, NULL, NULL, 'infinity', 'null', 'very "happy"', '{}',
              NULL, '::1', 'empty', ROW(NULL, 'x,y'), NULL, NULL, NULL, false),
             (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
              NULL, NULL, '[5,)', NULL, NULL, NULL, NULL, NULL);
           -- The table changes while the slot is behind: the server describes
           -- it again, with a type pgstream has not seen yet.
           CREATE DOMAIN later AS POSINT2_ARR;
           ALTER TABLE misc ADD COLUMN extra later;
           INSERT INTO misc (id, extra) VALUES (4, '{1,2}');
           ALTER TABLE misc DROP COLUMN m, ALTER COLUMN dp TYPE bigint;
           INSERT INTO misc (id, dp) VALUES (5, 9000000000);"#
            .replace("POSINT2_ARR", posint2_arr),
    );
    let lines = s.drain(&[]);
    let r = rows(&lines, "misc", 5);
    assert_new(
        r[&1],
        r#"{"id":1,"dp":7,"dp2":8,"dm":"12.50","dl":"lbl","dil":[1,null,3],"dpa":[4,5],
            "dts":"2026-11-23T16:24:32.5Z","dj":{"k":[1.50,true]},"m":"happy",
            "ma":["sad","very \"happy\""],"u":"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "ip":"192.168.0.1/24","r":"[1,10)","c":"(1,\"a b\")",
            "ca":["(1,a)","(2,\"b c\")"],"bits":"1010","mac":"08:00:2b:01:02:03","b":true}"#,
    );
    assert_new(
        r[&2],
        r#"{"id":2,"dp":null,"dp2":null,"dm":null,"dl":null,"dil":null,"dpa":null,
            "dts":"infinity","dj":null,"m":"very \"happy\"","ma":[],"u":null,"ip":"::1",
            "r":"empty","c":"(,\"x,y\")","ca":null,"bits":null,"mac":null,"b":false}"#,
    );
    assert_eq!(r[&3].v["new"]["r"], json!("[5,)"));
    assert_new(
        r[&4],
        r#"{"id":4,"dp":null,"dp2":null,"dm":null,"dl":null,"dil":null,"dpa":null,"dts":null,
            "dj":null,"m":null,"ma":null,"u":null,"ip":null,"r":null,"c":null,"ca":null,
            "bits":null,"mac":null,"b":null,"extra":[1,2]}"#,
    );
    assert_new(
        r[&5],
        r#"{"id":5,"dp":9000000000,"dp2":null,"dm":null,"dl":null,"dil":null,"dpa":null,
            "dts":null,"dj":null,"ma":null,"u":null,"ip":null,"r":null,"c":null,"ca":null,
            "bits":null,"mac":null,"b":null,"extra":null}"#,
    );
}

// ---------------------------------------------------------------------------
// Ops and event fields
// ---------------------------------------------------------------------------

#[test]
fn every_op_with_its_fields_and_key_order() {
    let s = Stream::new(
        r#"CREATE SCHEMA app;
           CREATE TABLE app."MyTable" (id int PRIMARY KEY, "my col ""q""" text);
           CREATE PUBLICATION pub FOR TABLE app."MyTable";"#,
        "pub",
    );
    // The server's clock (µs since 1970) and WAL insert position, so that
    // commit_ts and commit_lsn can be placed between before and after COMMIT.
    let now = "SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint,
                      pg_current_wal_insert_lsn() - '0/0'::pg_lsn;";
    let out = s.sql(&format!(
        r#"BEGIN;
           SELECT txid_current();
           INSERT INTO app."MyTable" VALUES (1, 'a'), (2, 'b');
           UPDATE app."MyTable" SET "my col ""q""" = 'c' WHERE id = 1;
           DELETE FROM app."MyTable" WHERE id = 2;
           {now}
           COMMIT;
           {now}
           BEGIN;
           SELECT txid_current();
           TRUNCATE app."MyTable";
           {now}
           COMMIT;
           {now}"#
    ));
    let n: Vec<u64> = out
        .split(['\n', '|'])
        .map(|l| {
            l.trim()
                .parse()
                .unwrap_or_else(|_| panic!("psql said {out}"))
        })
        .collect();
    let [xid1, before1, lsn_before1, after1, lsn_after1, xid2, before2, lsn_before2, after2, lsn_after2] =
        n[..]
    else {
        panic!("unexpected psql output: {out}");
    };

    let lines = s.drain(&[]);
    let ops: Vec<&str> = lines.iter().map(Line::op).collect();
    // pgoutput decodes TRUNCATE from PostgreSQL 11 on; on 10 the second
    // transaction yields nothing.
    let truncate = server_major() >= 11;
    let want_ops: &[&str] = if truncate {
        &["insert", "insert", "update", "delete", "truncate"]
    } else {
        &["insert", "insert", "update", "delete"]
    };
    assert_eq!(ops, want_ops, "{lines:#?}");

    let col = "my col \"q\"";
    let change_keys = |tail: &[&'static str]| -> Vec<&'static str> {
        let mut k = vec![
            "op",
            "schema",
            "table",
            "lsn",
            "xid",
            "commit_lsn",
            "commit_ts",
        ];
        k.extend_from_slice(tail);
        k
    };
    let want: [(Vec<&str>, Value); 5] = [
        (
            change_keys(&["key", "new"]),
            json!({"op": "insert", "schema": "app", "table": "MyTable",
                   "key": {"id": 1}, "new": {"id": 1, col: "a"}}),
        ),
        (
            change_keys(&["key", "new"]),
            json!({"op": "insert", "schema": "app", "table": "MyTable",
                   "key": {"id": 2}, "new": {"id": 2, col: "b"}}),
        ),
        (
            change_keys(&["key", "new"]),
            json!({"op": "update", "schema": "app", "table": "MyTable",
                   "key": {"id": 1}, "new": {"id": 1, col: "c"}}),
        ),
        (
            change_keys(&["key", "old"]),
            json!({"op": "delete", "schema": "app", "table": "MyTable",
                   "key": {"id": 2}, "old": {"id": 2}}),
        ),
        (
            change_keys(&["cascade", "restart_identity"]),
            json!({"op": "truncate", "schema": "app", "table": "MyTable",
                   "cascade": false, "restart_identity": false}),
        ),
    ];
    for (line, (keys, shape)) in lines.iter().zip(want) {
        assert_eq!(line.keys(), keys, "key order of {line:?}");
        assert_eq!(line.shape(), shape, "{line:?}");
    }
    // The raw text of a whole line: the column name is escaped, and `new`
    // follows the table's column order.
    assert!(
        lines[0]
            .raw
            .starts_with(r#"{"op":"insert","schema":"app","table":"MyTable","lsn":""#),
        "{:?}",
        lines[0]
    );
    assert!(
        lines[0]
            .raw
            .ends_with(r#","key":{"id":1},"new":{"id":1,"my col \"q\"":"a"}}"#),
        "{:?}",
        lines[0]
    );

    // Transaction fields: xid as txid_current() said, one commit_lsn and
    // commit_ts per transaction, lsn increasing within it and before the
    // commit record, which starts between the WAL positions before and after
    // COMMIT; commit_ts between the clock before and after COMMIT.
    let (tx1, tx2) = lines.split_at(4);
    let mut txs = vec![(tx1, xid1, (before1, lsn_before1), (after1, lsn_after1))];
    if truncate {
        txs.push((tx2, xid2, (before2, lsn_before2), (after2, lsn_after2)));
    }
    for (tx, xid, (before, lsn_before), (after, lsn_after)) in txs {
        let commit_lsn = tx[0].lsn("commit_lsn");
        let commit_ts = tx[0].str("commit_ts").to_string();
        let mut prev = 0;
        for l in tx {
            assert_eq!(l.xid(), xid, "xid of {l:?}");
            assert_eq!(l.lsn("commit_lsn"), commit_lsn, "commit_lsn of {l:?}");
            assert_eq!(l.str("commit_ts"), commit_ts, "commit_ts of {l:?}");
            let lsn = l.lsn("lsn");
            assert!(lsn > prev, "lsn not increasing at {l:?}");
            assert!(lsn < lsn_before, "lsn not before COMMIT in {l:?}");
            prev = lsn;
        }
        assert!(
            lsn_before <= commit_lsn && commit_lsn < lsn_after,
            "commit_lsn {} not between the WAL insert positions before ({}) and after ({}) COMMIT",
            tx[0].str("commit_lsn"),
            format_lsn(lsn_before),
            format_lsn(lsn_after)
        );
        let ts = utc_micros(&commit_ts) as u64;
        assert!(
            before <= ts && ts <= after,
            "commit_ts {commit_ts} ({ts}) not between {before} and {after} (µs since 1970)"
        );
    }
    if truncate {
        assert!(tx2[0].lsn("commit_lsn") > tx1[0].lsn("commit_lsn"));
    }
}

// ---------------------------------------------------------------------------
// Replica identity
// ---------------------------------------------------------------------------

#[test]
fn replica_identities() {
    let s = Stream::new(
        "CREATE TABLE rdef (id int PRIMARY KEY, v text);
         CREATE TABLE rfull (id int PRIMARY KEY, v text, w int);
         ALTER TABLE rfull REPLICA IDENTITY FULL;
         CREATE TABLE rfull_nopk (a int, b text);
         ALTER TABLE rfull_nopk REPLICA IDENTITY FULL;
         CREATE TABLE ridx (id int PRIMARY KEY, a int NOT NULL, b int NOT NULL, c text);
         CREATE UNIQUE INDEX ridx_ab ON ridx (b, a);
         ALTER TABLE ridx REPLICA IDENTITY USING INDEX ridx_ab;
         CREATE TABLE rnone (id int PRIMARY KEY, v text);
         ALTER TABLE rnone REPLICA IDENTITY NOTHING;
         CREATE PUBLICATION pub FOR TABLE rdef, rfull, rfull_nopk, ridx;
         CREATE PUBLICATION pub_ins FOR TABLE rnone WITH (publish = 'insert');",
        "pub,pub_ins",
    );
    s.sql(
        "INSERT INTO rdef VALUES (1, 'a');
         UPDATE rdef SET v = 'b' WHERE id = 1;
         UPDATE rdef SET id = 2, v = 'c' WHERE id = 1;
         DELETE FROM rdef WHERE id = 2;
         INSERT INTO rfull VALUES (1, 'a', NULL);
         UPDATE rfull SET v = 'b' WHERE id = 1;
         UPDATE rfull SET id = 2 WHERE id = 1;
         DELETE FROM rfull WHERE id = 2;
         INSERT INTO rfull_nopk VALUES (1, 'a');
         UPDATE rfull_nopk SET b = 'b';
         DELETE FROM rfull_nopk;
         INSERT INTO ridx VALUES (1, 10, 20, 'x');
         UPDATE ridx SET c = 'y';
         UPDATE ridx SET id = 5;
         UPDATE ridx SET a = 11;
         DELETE FROM ridx;
         INSERT INTO rnone VALUES (1, 'a');
         UPDATE rnone SET v = 'b';
         DELETE FROM rnone;",
    );
    let lines = s.drain(&[]);
    let got: Vec<Value> = lines.iter().map(Line::shape).collect();
    let ev = |op: &str, table: &str, rest: Value| {
        let mut v = json!({"op": op, "schema": "public", "table": table});
        v.as_object_mut()
            .unwrap()
            .extend(rest.as_object().unwrap().clone());
        v
    };
    let want = vec![
        // DEFAULT: old only when the key changes, and then only the key.
        ev(
            "insert",
            "rdef",
            json!({"key": {"id": 1}, "new": {"id": 1, "v": "a"}}),
        ),
        ev(
            "update",
            "rdef",
            json!({"key": {"id": 1}, "new": {"id": 1, "v": "b"}}),
        ),
        ev(
            "update",
            "rdef",
            json!({"key": {"id": 2}, "old": {"id": 1}, "new": {"id": 2, "v": "c"}}),
        ),
        ev(
            "delete",
            "rdef",
            json!({"key": {"id": 2}, "old": {"id": 2}}),
        ),
        // FULL with a primary key: old is the whole row, key the primary key.
        ev(
            "insert",
            "rfull",
            json!({"key": {"id": 1}, "new": {"id": 1, "v": "a", "w": null}}),
        ),
        ev(
            "update",
            "rfull",
            json!({"key": {"id": 1}, "old": {"id": 1, "v": "a", "w": null},
                   "new": {"id": 1, "v": "b", "w": null}}),
        ),
        ev(
            "update",
            "rfull",
            json!({"key": {"id": 2}, "old": {"id": 1, "v": "b", "w": null},
                   "new": {"id": 2, "v": "b", "w": null}}),
        ),
        ev(
            "delete",
            "rfull",
            json!({"key": {"id": 2}, "old": {"id": 2, "v": "b", "w": null}}),
        ),
        // FULL without a primary key: no key.
        ev("insert", "rfull_nopk", json!({"new": {"a": 1, "b": "a"}})),
        ev(
            "update",
            "rfull_nopk",
            json!({"old": {"a": 1, "b": "a"}, "new": {"a": 1, "b": "b"}}),
        ),
        ev("delete", "rfull_nopk", json!({"old": {"a": 1, "b": "b"}})),
        // USING INDEX: the index columns, not the primary key.
        ev(
            "insert",
            "ridx",
            json!({"key": {"a": 10, "b": 20}, "new": {"id": 1, "a": 10, "b": 20, "c": "x"}}),
        ),
        ev(
            "update",
            "ridx",
            json!({"key": {"a": 10, "b": 20}, "new": {"id": 1, "a": 10, "b": 20, "c": "y"}}),
        ),
        ev(
            "update",
            "ridx",
            json!({"key": {"a": 10, "b": 20}, "new": {"id": 5, "a": 10, "b": 20, "c": "y"}}),
        ),
        ev(
            "update",
            "ridx",
            json!({"key": {"a": 11, "b": 20}, "old": {"a": 10, "b": 20},
                   "new": {"id": 5, "a": 11, "b": 20, "c": "y"}}),
        ),
        ev(
            "delete",
            "ridx",
            json!({"key": {"a": 11, "b": 20}, "old": {"a": 11, "b": 20}}),
        ),
        // NOTHING (published for inserts only): no key.
        ev("insert", "rnone", json!({"new": {"id": 1, "v": "a"}})),
    ];
    assert_eq!(got.len(), want.len(), "{lines:#?}");
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "line {i}: {:?}", lines[i]);
    }
    // Key columns in table order inside key and old.
    let idx_delete = &lines[15];
    assert_eq!(entries(&idx_delete.raw("key")).len(), 2);
    assert_eq!(
        minify(&idx_delete.raw("old")),
        r#"{"a":11,"b":20}"#,
        "{idx_delete:?}"
    );
}

// ---------------------------------------------------------------------------
// TOAST
// ---------------------------------------------------------------------------

#[test]
fn unchanged_toast_is_named_not_sent() {
    let s = Stream::new(
        "CREATE TABLE big (id int PRIMARY KEY, n int, body text, tail text);
         ALTER TABLE big ALTER COLUMN body SET STORAGE EXTERNAL;
         CREATE TABLE bigfull (id int PRIMARY KEY, n int, body text);
         ALTER TABLE bigfull ALTER COLUMN body SET STORAGE EXTERNAL;
         ALTER TABLE bigfull REPLICA IDENTITY FULL;
         CREATE PUBLICATION pub FOR TABLE big, bigfull;",
        "pub",
    );
    let value = "(SELECT string_agg(md5(i::text), '') FROM generate_series(1, 2000) i)";
    s.sql(&format!(
        "INSERT INTO big VALUES (1, 0, {value}, 't');
         INSERT INTO bigfull VALUES (1, 0, {value});
         UPDATE big SET n = 1;
         UPDATE bigfull SET n = 1;
         UPDATE big SET body = body || 'x', n = 2;"
    ));
    // The value really is out of line.
    for t in ["big", "bigfull"] {
        let toast = s.sql(&format!(
            "SELECT reltoastrelid::regclass FROM pg_class WHERE relname = '{t}'"
        ));
        let chunks = s.sql(&format!("SELECT count(*) FROM {toast}"));
        assert_ne!(chunks, "0", "{t}: nothing in {toast}");
    }
    let body = s.sql(&format!("SELECT {value}"));
    assert_eq!(body.len(), 64_000);

    let lines = s.drain(&[]);
    let ops: Vec<(&str, &str)> = lines.iter().map(|l| (l.op(), l.table().unwrap())).collect();
    assert_eq!(
        ops,
        [
            ("insert", "big"),
            ("insert", "bigfull"),
            ("update", "big"),
            ("update", "bigfull"),
            ("update", "big")
        ],
        "{lines:#?}"
    );
    assert_eq!(lines[0].v["new"]["body"], json!(body));
    assert_eq!(lines[1].v["new"]["body"], json!(body));

    // An update that leaves the TOASTed column alone: left out of new,
    // named in unchanged_toast, and no placeholder anywhere.
    let upd = &lines[2];
    assert_eq!(
        upd.keys(),
        [
            "op",
            "schema",
            "table",
            "lsn",
            "xid",
            "commit_lsn",
            "commit_ts",
            "key",
            "new",
            "unchanged_toast"
        ],
        "{upd:?}"
    );
    assert_eq!(
        upd.shape(),
        json!({"op": "update", "schema": "public", "table": "big", "key": {"id": 1},
               "new": {"id": 1, "n": 1, "tail": "t"}, "unchanged_toast": ["body"]}),
        "{upd:?}"
    );
    assert!(upd.raw.len() < 1000, "{upd:?}");

    // FULL: the old row is sent whole (with the value), new still lacks it.
    let full = &lines[3];
    assert_eq!(
        full.v["old"],
        json!({"id": 1, "n": 0, "body": body}),
        "old of the FULL update"
    );
    assert_eq!(
        full.v["new"],
        json!({"id": 1, "n": 1}),
        "{}",
        &full.raw[..300]
    );
    assert_eq!(full.v["unchanged_toast"], json!(["body"]));
    assert_eq!(full.v["key"], json!({"id": 1}));

    // An update of the TOASTed column: the whole new value, no unchanged_toast.
    let changed = &lines[4];
    assert_eq!(
        changed.shape(),
        json!({"op": "update", "schema": "public", "table": "big", "key": {"id": 1},
               "new": {"id": 1, "n": 2, "body": format!("{body}x"), "tail": "t"}}),
    );
}

// ---------------------------------------------------------------------------
// Truncate
// ---------------------------------------------------------------------------

#[test]
fn truncate_events_and_flags() {
    let s = Stream::new(
        "CREATE TABLE parent (id serial PRIMARY KEY);
         CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent);
         CREATE TABLE lone (id int PRIMARY KEY);
         CREATE TABLE unpub (id int PRIMARY KEY);
         CREATE PUBLICATION pub FOR TABLE parent, child, lone;
         INSERT INTO parent DEFAULT VALUES;
         INSERT INTO child VALUES (1, 1);
         INSERT INTO lone VALUES (1);",
        "pub",
    );
    // The inserts above came before the slot: not streamed.
    let out = s.sql(
        "BEGIN; SELECT txid_current(); TRUNCATE lone; COMMIT;
         BEGIN; SELECT txid_current(); TRUNCATE parent RESTART IDENTITY CASCADE; COMMIT;
         TRUNCATE unpub;",
    );
    let xids: Vec<u64> = out.lines().map(|l| l.parse().unwrap()).collect();
    let lines = s.drain(&[]);
    if server_major() < 11 {
        // pgoutput sends no Truncate message before PostgreSQL 11
        // (docs/compatibility.md): TRUNCATE goes unseen.
        assert!(lines.is_empty(), "{lines:#?}");
        return;
    }
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert_eq!(
        lines[0].shape(),
        json!({"op": "truncate", "schema": "public", "table": "lone",
               "cascade": false, "restart_identity": false})
    );
    assert_eq!(lines[0].xid(), xids[0]);
    // One event per table of the second TRUNCATE, in one transaction.
    let mut tables: Vec<&str> = lines[1..].iter().map(|l| l.table().unwrap()).collect();
    tables.sort_unstable();
    assert_eq!(tables, ["child", "parent"]);
    for l in &lines[1..] {
        assert_eq!(
            l.shape(),
            json!({"op": "truncate", "schema": "public", "table": l.table().unwrap(),
                   "cascade": true, "restart_identity": true})
        );
        assert_eq!(
            l.keys(),
            [
                "op",
                "schema",
                "table",
                "lsn",
                "xid",
                "commit_lsn",
                "commit_ts",
                "cascade",
                "restart_identity"
            ]
        );
        assert_eq!(l.xid(), xids[1], "{l:?}");
        assert_eq!(l.get("commit_lsn"), lines[1].get("commit_lsn"));
        assert_eq!(l.get("commit_ts"), lines[1].get("commit_ts"));
    }
    assert!(lines[1].lsn("commit_lsn") > lines[0].lsn("commit_lsn"));
}

// ---------------------------------------------------------------------------
// Transactions
// ---------------------------------------------------------------------------

#[test]
fn transactions_in_commit_order_with_include_tx() {
    let s = Stream::new(
        "CREATE EXTENSION dblink;
         CREATE TABLE t (id int PRIMARY KEY, v text);
         CREATE TABLE unpub (id int PRIMARY KEY);
         CREATE PUBLICATION pub FOR TABLE t;",
        "pub",
    );
    let conninfo = s.db.conninfo().replace('\'', "''");
    let out = s.sql(&format!(
        "BEGIN; SELECT txid_current(); INSERT INTO t VALUES (1); ROLLBACK;
         BEGIN; SELECT txid_current();
           INSERT INTO t VALUES (2);
           SAVEPOINT sp;
           INSERT INTO t VALUES (3);
           UPDATE t SET v = 'gone' WHERE id = 2;
           ROLLBACK TO SAVEPOINT sp;
           INSERT INTO t VALUES (4);
         COMMIT;
         BEGIN; SELECT txid_current(); INSERT INTO unpub VALUES (1); COMMIT;
         BEGIN; SELECT txid_current();
           SELECT pg_logical_emit_message(true, 'pfx', 'not asked for') IS NULL;
           SELECT pg_logical_emit_message(false, 'pfx', 'not asked for either') IS NULL;
         COMMIT;
         BEGIN; SELECT txid_current();
           INSERT INTO t VALUES (5);
           -- another session commits while this one is open
           SELECT xid FROM dblink('{conninfo}',
             'WITH i AS (INSERT INTO t VALUES (6) RETURNING 1) SELECT txid_current() FROM i')
             AS r(xid bigint);
         COMMIT;
         BEGIN; SELECT txid_current(); INSERT INTO t VALUES (7); COMMIT;"
    ));
    let xid: Vec<u64> = out
        .lines()
        .filter(|l| !l.is_empty() && *l != "f")
        .map(|l| {
            l.trim()
                .parse()
                .unwrap_or_else(|_| panic!("psql said {out}"))
        })
        .collect();
    let [rolled_back, x24, x_unpub, x_msg, x5, x6, x7] = xid[..] else {
        panic!("unexpected psql output: {out}");
    };

    let lines = s.drain(&["--include-tx"]);
    // PostgreSQL 15+ skips empty transactions; older servers send an empty
    // begin/commit pair (here for the transaction on the unpublished table
    // and the one with only a message), about which the spec says nothing:
    // drop such pairs, and on 15+ there must be none.
    let mut kept: Vec<&Line> = Vec::new();
    let mut empty_pairs: Vec<u64> = Vec::new();
    for l in &lines {
        if l.op() == "commit" && kept.last().is_some_and(|p| p.op() == "begin") {
            empty_pairs.push(l.xid());
            kept.pop();
        } else {
            kept.push(l);
        }
    }
    if server_major() >= 15 {
        assert!(
            empty_pairs.is_empty(),
            "empty transactions on 15+: {lines:#?}"
        );
    }
    let summary: Vec<(String, u64, Option<i64>)> = kept
        .iter()
        .map(|l| {
            (
                l.op().to_string(),
                l.xid(),
                l.v.get("new").map(|n| n["id"].as_i64().unwrap()),
            )
        })
        .collect();
    let tx = |op: &str, x: u64| (op.to_string(), x, None);
    let ins = |x: u64, id: i64| ("insert".to_string(), x, Some(id));
    assert_eq!(
        summary,
        [
            tx("begin", x24),
            ins(x24, 2),
            ins(x24, 4),
            tx("commit", x24),
            tx("begin", x6),
            ins(x6, 6),
            tx("commit", x6),
            tx("begin", x5),
            ins(x5, 5),
            tx("commit", x5),
            tx("begin", x7),
            ins(x7, 7),
            tx("commit", x7),
        ],
        "{lines:#?}"
    );
    for x in [rolled_back, x_unpub, x_msg] {
        assert!(
            kept.iter().all(|l| l.xid() != x),
            "transaction {x} must emit nothing (but an empty pair before 15): {lines:#?}"
        );
    }
    assert!(
        !empty_pairs.contains(&rolled_back),
        "a rolled-back transaction is never sent: {lines:#?}"
    );
    // begin/commit: exactly these keys, matching the changes between them;
    // transactions in commit order.
    let mut last_commit = 0;
    let mut i = 0;
    while i < kept.len() {
        let begin = kept[i];
        let end = i + kept[i..].iter().position(|l| l.op() == "commit").unwrap();
        let commit = kept[end];
        for m in [begin, commit] {
            assert_eq!(m.keys(), ["op", "xid", "commit_lsn", "commit_ts"], "{m:?}");
        }
        assert_eq!(begin.v["commit_lsn"], commit.v["commit_lsn"]);
        assert_eq!(begin.v["commit_ts"], commit.v["commit_ts"]);
        assert_eq!(begin.xid(), commit.xid());
        for c in &kept[i + 1..end] {
            assert_eq!(c.xid(), begin.xid(), "{c:?}");
            assert_eq!(c.v["commit_lsn"], begin.v["commit_lsn"], "{c:?}");
            assert_eq!(c.v["commit_ts"], begin.v["commit_ts"], "{c:?}");
        }
        let commit_lsn = begin.lsn("commit_lsn");
        assert!(commit_lsn > last_commit, "not in commit order at {begin:?}");
        last_commit = commit_lsn;
        i = end + 1;
    }
    // Transaction 5 started first (its change is earlier in the WAL) but
    // committed after 6.
    let lsn_of = |id: i64| {
        kept.iter()
            .find(|l| l.v.get("new").is_some_and(|n| n["id"] == json!(id)))
            .unwrap()
            .lsn("lsn")
    };
    assert!(lsn_of(5) < lsn_of(6));
    assert!(lines.iter().all(|l| l.op() != "message"), "{lines:#?}");
}

// ---------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------

#[test]
fn logical_messages() {
    let s = Stream::new(
        "CREATE TABLE t (id int PRIMARY KEY);
         CREATE PUBLICATION pub FOR TABLE t;",
        "pub",
    );
    let out = s.sql(
        r#"SELECT pg_logical_emit_message(false, 'pfx', 'hello');
          BEGIN;
            SELECT txid_current();
            SELECT pg_logical_emit_message(true, 'pfx', 'in tx');
            INSERT INTO t VALUES (1);
          COMMIT;
          BEGIN;
            SELECT txid_current();
            SELECT pg_logical_emit_message(false, 'pfx', 'kept though aborted');
            SELECT pg_logical_emit_message(true, 'pfx', 'aborted');
            INSERT INTO t VALUES (2);
          ROLLBACK;
          SELECT pg_logical_emit_message(false, 'p', '\xff00'::bytea);
          SELECT pg_logical_emit_message(false, 'p', '\x61006200'::bytea);
          SELECT pg_logical_emit_message(false, 'ünï', 'héllo 😀 \ "');
          SELECT pg_logical_emit_message(false, '', '');"#,
    );
    // Each pg_logical_emit_message returns the message's LSN (the end of
    // its record): the event's lsn.
    let out: Vec<&str> = out.lines().collect();
    let [m_hello, x_commit, m_in_tx, x_abort, m_kept, _m_aborted, m_b64, m_nul, m_utf8, m_empty] =
        out[..]
    else {
        panic!("unexpected psql output: {out:?}");
    };
    let x_commit: u64 = x_commit.parse().unwrap();
    let x_abort: u64 = x_abort.parse().unwrap();

    if server_major() < 14 {
        // pgoutput's `messages` option is PostgreSQL 14+: pgstream refuses
        // --include-messages (exit 2) before streaming anything, and without
        // it the changes come through and no message does.
        let mut args = s.db.stream_args(&s.slot, &s.publication);
        args.extend(["--end-lsn", "now", "--include-messages"].map(String::from));
        let out = run(&args, &[], TIMEOUT);
        assert_eq!(out.code, Some(2), "{}", out.stderr);
        assert!(out.stdout_lines.is_empty(), "{:?}", out.stdout_lines);
        assert!(
            out.stderr
                .contains("--include-messages needs PostgreSQL 14"),
            "{}",
            out.stderr
        );
        let lines = s.drain(&[]);
        let ops: Vec<&str> = lines.iter().map(Line::op).collect();
        assert_eq!(ops, ["insert"], "{lines:#?}");
        assert_eq!(lines[0].xid(), x_commit);
        let _ = (
            m_hello, m_in_tx, m_kept, m_b64, m_nul, m_utf8, m_empty, x_abort,
        );
        return;
    }

    let lines = s.drain(&["--include-messages"]);
    let ops: Vec<&str> = lines.iter().map(Line::op).collect();
    assert_eq!(
        ops,
        ["message", "message", "insert", "message", "message", "message", "message", "message"],
        "{lines:#?}"
    );
    let nontx_keys = ["op", "lsn", "prefix", "content", "transactional"];
    let msg = |l: &Line| {
        let mut v = l.v.clone();
        v.as_object_mut().unwrap().remove("lsn");
        v
    };

    assert_eq!(lines[0].keys(), nontx_keys, "{:?}", lines[0]);
    assert_eq!(
        msg(&lines[0]),
        json!({"op": "message", "prefix": "pfx", "content": "hello", "transactional": false})
    );

    let (txm, ins) = (&lines[1], &lines[2]);
    assert_eq!(
        txm.keys(),
        [
            "op",
            "lsn",
            "xid",
            "commit_lsn",
            "commit_ts",
            "prefix",
            "content",
            "transactional"
        ],
        "{txm:?}"
    );
    assert_eq!(
        txm.shape(),
        json!({"op": "message", "prefix": "pfx", "content": "in tx", "transactional": true})
    );
    assert_eq!(txm.xid(), x_commit);
    assert_eq!(ins.xid(), x_commit);
    assert_eq!(txm.v["commit_lsn"], ins.v["commit_lsn"]);
    assert_eq!(txm.v["commit_ts"], ins.v["commit_ts"]);
    assert!(txm.lsn("lsn") < txm.lsn("commit_lsn"));

    // The aborted transaction: only its non-transactional message.
    assert_eq!(lines[3].keys(), nontx_keys, "{:?}", lines[3]);
    assert_eq!(
        msg(&lines[3]),
        json!({"op": "message", "prefix": "pfx", "content": "kept though aborted",
               "transactional": false})
    );
    assert!(lines
        .iter()
        .all(|l| l.get("xid").and_then(Value::as_u64) != Some(x_abort)));

    // Content that is not UTF-8: base64, and no content key.
    assert_eq!(
        lines[4].keys(),
        ["op", "lsn", "prefix", "content_base64", "transactional"],
        "{:?}",
        lines[4]
    );
    assert_eq!(
        msg(&lines[4]),
        json!({"op": "message", "prefix": "p", "content_base64": "/wA=", "transactional": false})
    );
    // NUL bytes are valid UTF-8: kept in full.
    assert_eq!(
        lines[5].v["content"],
        json!("a\u{0}b\u{0}"),
        "{:?}",
        lines[5]
    );
    assert_eq!(lines[6].v["prefix"], json!("ünï"));
    assert_eq!(lines[6].v["content"], json!("héllo 😀 \\ \""));
    assert_eq!(
        msg(&lines[7]),
        json!({"op": "message", "prefix": "", "content": "", "transactional": false})
    );
    let lsns: Vec<&str> = lines
        .iter()
        .filter(|l| l.op() == "message")
        .map(|l| l.str("lsn"))
        .collect();
    assert_eq!(
        lsns,
        [m_hello, m_in_tx, m_kept, m_b64, m_nul, m_utf8, m_empty],
        "message lsns"
    );
}
