//! wal2json against pgoutput (SPEC.md §2: "The same workload yields the same
//! events whichever plugin decoded it, except where a plugin drops
//! information"; docs/output.md, "wal2json slots", lists the exceptions).
//!
//! [`same_workload_same_events_from_pgoutput_and_wal2json`] creates a
//! pgoutput slot and a wal2json slot at the same point, runs one workload
//! (every row of the Values table with its edge values, every op, replica
//! identities, TOAST, truncate, messages, transactions that roll back, odd
//! names, schema changes, partitions, generated columns), drains both slots
//! and compares the two event lists line by line, as raw text. The only
//! differences it lets through are the ones wal2json 2.5 cannot avoid, named
//! in [`known_exception`]; it also checks that each of them really happened,
//! so that the test proves it exercised them.
//!
//! [`wal2json_publication_restricts_tables`] checks what `--publication`
//! means for a wal2json slot (only the publication's tables; every table
//! without it), and [`wal2json_publication_follows_tables_added_while_streaming`]
//! that a table published while pgstream streams shows up as with pgoutput.
//! [`known_exception_excuses_only_what_it_names`] pins the exceptions down
//! on made-up lines.
//!
//! wal2json must be installed: these tests fail (they never skip) when it is
//! missing, saying how to install it — except in `make test-matrix`
//! (`PGSTREAM_TEST_MATRIX=1`), whose servers other than the machine's do not
//! ship wal2json: there they skip.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;

use crate::harness::{run_lines, vec_of, wait_until, Cluster, TestDb, TIMEOUT};
use crate::jsontext::{entries, Entry};

// ---------------------------------------------------------------------------
// The documented exceptions
// ---------------------------------------------------------------------------

/// docs/output.md: float4, float8 and numeric values that are NaN, Infinity
/// or -Infinity come out as `null` (plain columns only).
const NAN_AS_NULL: &str =
    "NaN/Infinity/-Infinity in a plain float4/float8/numeric column: null with wal2json";
/// docs/output.md: a truncate event has no `cascade` and no
/// `restart_identity` key.
const TRUNCATE_FLAGS: &str = "truncate: no cascade/restart_identity keys with wal2json";
/// docs/output.md: message content stops at its first NUL byte.
const MESSAGE_NUL: &str = "message content cut at its first NUL byte by wal2json";

/// The type OIDs whose specials wal2json writes as `null` (not their
/// arrays, not domains over them).
const PLAIN_FLOAT_TYPES: [u32; 3] = [700, 701, 1700];

/// Column types: (schema, table, column) → `pg_attribute.atttypid`.
type Types = HashMap<(String, String, String), u32>;

/// Which documented exception explains why the wal2json line `wj` differs
/// from the pgoutput line `pg`, if one does. It explains a difference only
/// when undoing exactly that loss of information on the pgoutput line gives
/// the wal2json line, byte for byte:
///
/// - [`NAN_AS_NULL`]: `"NaN"`, `"Infinity"` or `"-Infinity"` in `key`,
///   `old` or `new`, in a column whose declared type is float4, float8 or
///   numeric, replaced by `null`;
/// - [`TRUNCATE_FLAGS`]: a truncate without its `cascade` and
///   `restart_identity` keys;
/// - [`MESSAGE_NUL`]: a message whose content holds a NUL byte, with the
///   content cut there (then `content` if what is left is UTF-8, else
///   `content_base64`), everything else as it was.
fn known_exception(pg: &Line, wj: &Line, types: &Types) -> Option<&'static str> {
    match pg.op() {
        "insert" | "update" | "delete" => {
            let normalised = nan_as_null(pg, types)?;
            (normalised == wj.raw).then_some(NAN_AS_NULL)
        }
        "truncate" => {
            let all = entries(&pg.raw);
            let kept: Vec<Entry> = all
                .iter()
                .filter(|e| e.key != "cascade" && e.key != "restart_identity")
                .cloned()
                .collect();
            (kept.len() == all.len() - 2 && object(&kept) == wj.raw).then_some(TRUNCATE_FLAGS)
        }
        "message" => message_cut_at_nul(pg, wj).then_some(MESSAGE_NUL),
        _ => None,
    }
}

/// The pgoutput line with the specials of plain float/numeric columns as
/// `null`; None when it has none.
fn nan_as_null(pg: &Line, types: &Types) -> Option<String> {
    let schema = pg.v.get("schema")?.as_str()?.to_string();
    let table = pg.v.get("table")?.as_str()?.to_string();
    let mut changed = false;
    let mut top = entries(&pg.raw);
    for e in top
        .iter_mut()
        .filter(|e| matches!(e.key.as_str(), "key" | "old" | "new"))
    {
        let mut cols = entries(&e.value);
        for c in &mut cols {
            let plain = types
                .get(&(schema.clone(), table.clone(), c.key.clone()))
                .is_some_and(|t| PLAIN_FLOAT_TYPES.contains(t));
            if plain
                && matches!(
                    c.value.as_str(),
                    r#""NaN""# | r#""Infinity""# | r#""-Infinity""#
                )
            {
                c.value = "null".into();
                changed = true;
            }
        }
        e.value = object(&cols);
    }
    changed.then(|| object(&top))
}

/// Whether `wj` is the message `pg` with its content cut at the first NUL.
fn message_cut_at_nul(pg: &Line, wj: &Line) -> bool {
    let Some(full) = content_bytes(&pg.v) else {
        return false;
    };
    let Some(nul) = full.iter().position(|&b| b == 0) else {
        return false;
    };
    let cut = &full[..nul];
    let want_key = if std::str::from_utf8(cut).is_ok() {
        "content"
    } else {
        "content_base64"
    };
    let (pe, we) = (entries(&pg.raw), entries(&wj.raw));
    pe.len() == we.len()
        && pe.iter().zip(&we).all(|(p, w)| {
            if p.key == "content" || p.key == "content_base64" {
                w.key == want_key && content_bytes(&wj.v).as_deref() == Some(cut)
            } else {
                p.raw_key == w.raw_key && p.value == w.value
            }
        })
}

/// A message event's content as bytes (from `content` or `content_base64`).
fn content_bytes(v: &Value) -> Option<Vec<u8>> {
    if let Some(s) = v.get("content").and_then(Value::as_str) {
        return Some(s.as_bytes().to_vec());
    }
    let b64 = v.get("content_base64")?.as_str()?;
    Some(base64_decode(b64).unwrap_or_else(|| panic!("bad base64 {b64:?}")))
}

/// Standard base64 with padding (what pgstream writes).
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if s.len() % 4 != 0 {
        return None;
    }
    let mut out = Vec::new();
    for chunk in s.as_bytes().chunks(4) {
        let mut n = 0u32;
        let mut pad = 0;
        for &c in chunk {
            n <<= 6;
            if c == b'=' {
                pad += 1;
            } else {
                if pad > 0 {
                    return None;
                }
                n |= ALPHABET.iter().position(|&a| a == c)? as u32;
            }
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad.min(2)]);
    }
    Some(out)
}

// ---------------------------------------------------------------------------
// Lines and their raw text
// ---------------------------------------------------------------------------

/// One output line: its raw text and its parsed value.
#[derive(Clone)]
struct Line {
    raw: String,
    v: Value,
}

impl std::fmt::Debug for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&short(&self.raw))
    }
}

impl Line {
    fn op(&self) -> &str {
        self.v["op"]
            .as_str()
            .unwrap_or_else(|| panic!("no op: {}", self.raw))
    }

    fn s(&self, key: &str) -> Option<&str> {
        self.v.get(key).and_then(Value::as_str)
    }

    /// What locates the event in the stream, for aligning the two lists
    /// when they differ: op, table, lsn, commit_lsn, prefix.
    fn identity(&self) -> String {
        let f = |k: &str| self.v.get(k).map(Value::to_string).unwrap_or_default();
        [
            f("op"),
            f("schema"),
            f("table"),
            f("lsn"),
            f("commit_lsn"),
            f("prefix"),
        ]
        .join(" ")
    }
}

/// A long line cut for display.
fn short(s: &str) -> String {
    const MAX: usize = 400;
    if s.len() <= MAX {
        return s.to_string();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…(+{} bytes)", &s[..end], s.len() - end)
}

/// The compact JSON object of `members` (pgstream writes no whitespace;
/// [`drain`] checks that this gives every line back as it was).
fn object(members: &[Entry]) -> String {
    let body: Vec<String> = members
        .iter()
        .map(|e| format!("{}:{}", e.raw_key, e.value))
        .collect();
    format!("{{{}}}", body.join(","))
}

// ---------------------------------------------------------------------------
// Running pgstream
// ---------------------------------------------------------------------------

/// The shared cluster, which must have wal2json: a test that needs it fails
/// (never skips) when it is missing, saying how to install it. Only in
/// `make test-matrix`, whose servers do not ship wal2json, is it None (the
/// test skips).
fn cluster_with_wal2json() -> Option<&'static Cluster> {
    let c = Cluster::shared();
    c.wal2json_or_skip().then_some(c)
}

/// Runs pgstream once with `--end-lsn now` on `slot` (created with `plugin`
/// if missing); checks the exit and every line.
fn run_now(
    db: &TestDb,
    slot: &str,
    plugin: &str,
    publication: Option<&str>,
    extra: &[&str],
) -> Vec<Line> {
    let mut args = db.conn_args();
    args.extend(vec_of(&["--slot", slot, "-P", plugin, "--end-lsn", "now"]));
    if let Some(p) = publication {
        args.extend(vec_of(&["--publication", p]));
    }
    args.extend(vec_of(extra));
    let lines: Vec<Line> = run_lines(&args)
        .into_iter()
        .map(|(raw, v)| Line { raw, v })
        .collect();
    for l in &lines {
        assert_eq!(
            object(&entries(&l.raw)),
            l.raw,
            "{plugin}: not compact JSON (the comparison rebuilds lines from their members)"
        );
    }
    lines
}

/// Every column's declared type in the database's own tables.
fn column_types(db: &TestDb) -> Types {
    let json = db.sql(
        "SELECT coalesce(json_agg(json_build_array(n.nspname, c.relname, a.attname, a.atttypid::int8)), '[]')
         FROM pg_attribute a
         JOIN pg_class c ON c.oid = a.attrelid
         JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
           AND n.nspname NOT IN ('pg_catalog', 'information_schema')",
    );
    let rows: Vec<(String, String, String, u32)> =
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    rows.into_iter()
        .map(|(s, t, c, oid)| ((s, t, c), oid))
        .collect()
}

// ---------------------------------------------------------------------------
// Comparing two event lists
// ---------------------------------------------------------------------------

/// What [`compare`] found.
#[derive(Default)]
struct Comparison {
    /// Exception → indexes (in the pgoutput list) of the lines it excused.
    excused: BTreeMap<&'static str, Vec<usize>>,
    /// One readable paragraph per difference that no exception explains.
    diffs: Vec<String>,
}

/// Compares the lists line by line. When they do not line up (an event only
/// one plugin gave), the lines are aligned on [`Line::identity`] so that the
/// report names the missing or extra events instead of every later line.
fn compare(pg: &[Line], wj: &[Line], types: &Types) -> Comparison {
    let mut c = Comparison::default();
    let pairs: Vec<(Option<usize>, Option<usize>)> = if pg.len() == wj.len() {
        (0..pg.len()).map(|i| (Some(i), Some(i))).collect()
    } else {
        align(pg, wj)
    };
    for (i, j) in pairs {
        match (i, j) {
            (Some(i), Some(j)) => {
                let (p, w) = (&pg[i], &wj[j]);
                if p.raw == w.raw {
                    continue;
                }
                match known_exception(p, w, types) {
                    Some(why) => c.excused.entry(why).or_default().push(i),
                    None => c.diffs.push(describe(i, p, j, w)),
                }
            }
            (Some(i), None) => c.diffs.push(format!(
                "pgoutput line {i} has no wal2json counterpart:\n  pgoutput: {}",
                short(&pg[i].raw)
            )),
            (None, Some(j)) => c.diffs.push(format!(
                "wal2json line {j} has no pgoutput counterpart:\n  wal2json: {}",
                short(&wj[j].raw)
            )),
            (None, None) => unreachable!(),
        }
    }
    c
}

/// A longest-common-subsequence alignment on the lines' identities.
fn align(pg: &[Line], wj: &[Line]) -> Vec<(Option<usize>, Option<usize>)> {
    let (a, b): (Vec<String>, Vec<String>) = (
        pg.iter().map(Line::identity).collect(),
        wj.iter().map(Line::identity).collect(),
    );
    let (n, m) = (a.len(), b.len());
    let mut l = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            l[i][j] = if a[i] == b[j] {
                l[i + 1][j + 1] + 1
            } else {
                l[i + 1][j].max(l[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            out.push((Some(i), Some(j)));
            i += 1;
            j += 1;
        } else if j >= m || (i < n && l[i + 1][j] >= l[i][j + 1]) {
            out.push((Some(i), None));
            i += 1;
        } else {
            out.push((None, Some(j)));
            j += 1;
        }
    }
    out
}

/// Both lines, then what differs: top-level members, and column by column
/// inside `key`, `old` and `new`.
fn describe(i: usize, pg: &Line, j: usize, wj: &Line) -> String {
    let mut out = format!(
        "line {i} (wal2json line {j}) differs:\n  pgoutput: {}\n  wal2json: {}\n",
        short(&pg.raw),
        short(&wj.raw)
    );
    let (pe, we) = (entries(&pg.raw), entries(&wj.raw));
    let pk: Vec<&str> = pe.iter().map(|e| e.key.as_str()).collect();
    let wk: Vec<&str> = we.iter().map(|e| e.key.as_str()).collect();
    if pk != wk {
        out.push_str(&format!(
            "    keys: pgoutput {pk:?}\n          wal2json {wk:?}\n"
        ));
    }
    let find = |es: &[Entry], k: &str| es.iter().find(|e| e.key == k).map(|e| e.value.clone());
    let mut all: Vec<&str> = pk.clone();
    all.extend(wk.iter().filter(|k| !pk.contains(k)));
    let show = |v: &Option<String>| v.as_deref().map(short).unwrap_or_else(|| "(absent)".into());
    for k in all {
        let (p, w) = (find(&pe, k), find(&we, k));
        if p == w {
            continue;
        }
        let objects = matches!(k, "key" | "old" | "new")
            && p.as_deref().is_some_and(|s| s.starts_with('{'))
            && w.as_deref().is_some_and(|s| s.starts_with('{'));
        if !objects {
            out.push_str(&format!(
                "    {k}: pgoutput {} / wal2json {}\n",
                show(&p),
                show(&w)
            ));
            continue;
        }
        let (pc, wc) = (entries(&p.unwrap()), entries(&w.unwrap()));
        let pn: Vec<&str> = pc.iter().map(|e| e.key.as_str()).collect();
        let wn: Vec<&str> = wc.iter().map(|e| e.key.as_str()).collect();
        if pn != wn {
            out.push_str(&format!(
                "    {k} columns: pgoutput {pn:?}\n    {:width$}  wal2json {wn:?}\n",
                "",
                width = k.len() + 8
            ));
        }
        for col in pn.iter().chain(wn.iter().filter(|c| !pn.contains(c))) {
            let (a, b) = (find(&pc, col), find(&wc, col));
            if a != b {
                out.push_str(&format!(
                    "    {k}.{col:?}: pgoutput {} / wal2json {}\n",
                    show(&a),
                    show(&b)
                ));
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// The workload
// ---------------------------------------------------------------------------

/// Tables, types and the publication, created before the slots.
const SETUP: &str = r##"
CREATE EXTENSION dblink;
CREATE SCHEMA app;
CREATE SCHEMA "Odd Schema.x";
CREATE SCHEMA "*";

-- Values (SPEC.md §2)
CREATE TABLE ints (id int PRIMARY KEY, b bool, i2 int2, i4 int4, i8 int8, o oid);
CREATE TABLE nums (id int PRIMARY KEY, n numeric, ns numeric(5,-2));
CREATE TABLE floats (id int PRIMARY KEY, f4 float4, f8 float8);
ALTER TABLE floats REPLICA IDENTITY FULL;
CREATE TABLE js (id int PRIMARY KEY, j json, jb jsonb);
CREATE TABLE arrs (id int PRIMARY KEY, ia int[], im int[][], ta text[], lb int[],
                   jba jsonb[], na numeric[], ba bytea[], tza timestamptz[],
                   fa float8[], ba2 bool[], i8a int8[]);
CREATE TABLE times (id int PRIMARY KEY, tz timestamptz, ts timestamp, d date,
                    t time, iv interval);
CREATE TABLE blobs (id int PRIMARY KEY, b bytea, t text, c char(4), vc varchar(20));
CREATE TYPE mood AS ENUM ('sad', 'happy', 'very "happy"');
CREATE TYPE pair AS (n int, s text);
CREATE DOMAIN posint AS int CHECK (VALUE > 0);
CREATE DOMAIN posint2 AS posint;
CREATE DOMAIN price AS numeric(10,2);
CREATE DOMAIN label AS text;
CREATE DOMAIN intlist AS int[];
CREATE DOMAIN stamp AS timestamptz;
CREATE DOMAIN doc AS jsonb;
CREATE DOMAIN fdom AS float8;
CREATE DOMAIN ndom AS numeric;
CREATE DOMAIN bdom AS bytea;
CREATE TABLE misc (id int PRIMARY KEY, dp posint, dp2 posint2, dm price, dl label,
                   dil intlist, dpa posint[], dts stamp, dj doc, m mood, ma mood[],
                   u uuid, ip inet, r int4range, c pair, ca pair[], bits bit(4),
                   mac macaddr, b bool);
-- Specials where wal2json keeps them: domains and arrays.
CREATE TABLE specials (id int PRIMARY KEY, fd fdom, nd ndom, pr price, f4a float4[],
                       na numeric[], bd bdom);

-- Replica identities
CREATE TABLE rdef (id int PRIMARY KEY, v text);
CREATE TABLE rfull (id int PRIMARY KEY, v text, w int);
ALTER TABLE rfull REPLICA IDENTITY FULL;
CREATE TABLE rfull_nopk (a int, b text);
ALTER TABLE rfull_nopk REPLICA IDENTITY FULL;
CREATE TABLE ridx (id int PRIMARY KEY, a int NOT NULL, b int NOT NULL, c text);
CREATE UNIQUE INDEX ridx_ab ON ridx (b, a);
ALTER TABLE ridx REPLICA IDENTITY USING INDEX ridx_ab;
CREATE TABLE rcomp (b int, a int, v text, PRIMARY KEY (a, b));
CREATE TABLE rcompf (x int, b int, a int, v text, PRIMARY KEY (a, b));
ALTER TABLE rcompf REPLICA IDENTITY FULL;
-- No identity: published for inserts only (updates would be refused).
CREATE TABLE rnone (id int PRIMARY KEY, v text);
ALTER TABLE rnone REPLICA IDENTITY NOTHING;
CREATE TABLE rnopk (a int, b text);

-- TOAST
CREATE TABLE big (id int PRIMARY KEY, n int, body text, tail text);
ALTER TABLE big ALTER COLUMN body SET STORAGE EXTERNAL;
CREATE TABLE bigfull (id int PRIMARY KEY, n int, body text);
ALTER TABLE bigfull ALTER COLUMN body SET STORAGE EXTERNAL;
ALTER TABLE bigfull REPLICA IDENTITY FULL;
CREATE TABLE bigidx (id int PRIMARY KEY, u int NOT NULL, n int, body jsonb, bb bytea);
ALTER TABLE bigidx ALTER COLUMN body SET STORAGE EXTERNAL;
ALTER TABLE bigidx ALTER COLUMN bb SET STORAGE EXTERNAL;
CREATE UNIQUE INDEX bigidx_u ON bigidx (u);
ALTER TABLE bigidx REPLICA IDENTITY USING INDEX bigidx_u;

-- Truncate
CREATE TABLE parent (id serial PRIMARY KEY);
CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent);
CREATE TABLE lone (id int PRIMARY KEY);

-- Odd names
CREATE TABLE app."MyTable" (id int PRIMARY KEY, "my col ""q""" text);
CREATE TABLE "Odd Schema.x"."we.ird, ta\ble *'q""" ("a.b,c*" int PRIMARY KEY, "ünï cöl" text,
                                                    "back\slash" int, "tab	col" text);
CREATE TABLE "*"."*" (id int PRIMARY KEY);
CREATE TABLE "UPPER case" ("Id" int PRIMARY KEY, "Value" text, "select" int);

-- Generated columns, partitions
CREATE TABLE gen (id int PRIMARY KEY, a int, g int GENERATED ALWAYS AS (a * 2) STORED, z text);
CREATE TABLE part (id int, k int, v text, PRIMARY KEY (id, k)) PARTITION BY RANGE (k);
CREATE TABLE part_lo PARTITION OF part FOR VALUES FROM (0) TO (10);
CREATE TABLE part_hi PARTITION OF part FOR VALUES FROM (10) TO (20);

-- More identities and shapes
CREATE TABLE ridx_nopk (a int NOT NULL, b text, c int);
CREATE UNIQUE INDEX ridx_nopk_a ON ridx_nopk (a);
ALTER TABLE ridx_nopk REPLICA IDENTITY USING INDEX ridx_nopk_a;
CREATE TABLE rfull_odd (id int PRIMARY KEY, j json, pt point, g int GENERATED ALWAYS AS (id * 10) STORED);
ALTER TABLE rfull_odd REPLICA IDENTITY FULL;
-- A dropped column before the slots, and one added after it
CREATE TABLE holes (id int PRIMARY KEY, x int, y text);
ALTER TABLE holes DROP COLUMN x;
ALTER TABLE holes ADD COLUMN z int;
-- Schema changes while the slots are behind
CREATE TABLE evolve (id int PRIMARY KEY, a int, b text);
CREATE TABLE pkchange (a int PRIMARY KEY, b int NOT NULL, v text);
CREATE TABLE pkchangef (a int PRIMARY KEY, b int NOT NULL, v text);
ALTER TABLE pkchangef REPLICA IDENTITY FULL;

CREATE PUBLICATION p FOR ALL TABLES;
"##;

/// Every table of [`SETUP`] that gets changes, as the events name it.
const TABLES: [(&str, &str); 42] = [
    ("public", "ints"),
    ("public", "nums"),
    ("public", "floats"),
    ("public", "js"),
    ("public", "arrs"),
    ("public", "times"),
    ("public", "blobs"),
    ("public", "misc"),
    ("public", "specials"),
    ("public", "rdef"),
    ("public", "rfull"),
    ("public", "rfull_nopk"),
    ("public", "ridx"),
    ("public", "rcomp"),
    ("public", "rcompf"),
    ("public", "rnone"),
    ("public", "rnopk"),
    ("public", "big"),
    ("public", "bigfull"),
    ("public", "bigidx"),
    ("public", "parent"),
    ("public", "child"),
    ("public", "lone"),
    ("app", "MyTable"),
    ("Odd Schema.x", "we.ird, ta\\ble *'q\""),
    ("*", "*"),
    ("public", "UPPER case"),
    ("public", "gen"),
    ("public", "part_lo"),
    ("public", "part_hi"),
    ("public", "ridx_nopk"),
    ("public", "rfull_odd"),
    ("public", "holes"),
    ("public", "evolve"),
    ("public", "pkchange"),
    ("public", "pkchangef"),
    ("public", "created_later"),
    ("public", "gone"),
    ("public", "renamed_from"),
    ("public", "renamed_to"),
    ("app", "moved"),
    ("public", "moved"),
];

/// The workload, after the slots. `{conninfo}` is replaced (dblink).
const WORKLOAD: &str = r##"
-- Every row of the Values table, with edge values
INSERT INTO ints VALUES
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
  (6, 'Infinity', NULL),
  (7, '-Infinity', NULL),
  (8, '-98765432109876543210.123456789012345678901', NULL),
  (9, NULL, NULL),
  (10, 'NaN', 'NaN');
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
  (13, 100, 1e22),
  (14, 'NaN', 1.5);
INSERT INTO js VALUES
  (1, '{"a" : 1.0,
        "b": [1e2, 12345678901234567890123, -0.5E-3, 0],
  	"c": {"d": null, "e": "x\ty \"q\" \u00e9 \\"}, "t": [true, false]}',
      '{"b": [1.0, 1e2, 12345678901234567890123], "a": {"x": "y"}}'),
  (2, '"a string"', '[]'),
  (3, '  12  ', 'null'),
  (4, NULL, NULL),
  (5, '[]', '{"n": -0.00100}'),
  (6, '{"nan": "NaN", "inf": 1e300, "big": 123456789012345678901234567890}', '"Infinity"');
INSERT INTO arrs VALUES
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
   NULL, '{Infinity,-Infinity}', '{"\\x00"}', '{-infinity}', '{-0,1e300,Infinity}', NULL, NULL);
INSERT INTO times VALUES
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
  (10, NULL, NULL, NULL, NULL, NULL);
INSERT INTO blobs VALUES
  (1, '\x0102ff', 'quote " backslash \ done', 'ab', 'x'),
  (2, '', E'line1\nline2\ttab\rcr', '', ''),
  (3, '\x00', chr(1) || chr(31) || chr(127) || 'end', NULL, NULL),
  (4, NULL, '😀 héllo 中文 ü', 'ü', '😀'),
  (5, 'abc'::bytea, '', NULL, 'NULL'),
  (6, decode('5c27', 'hex'), 'NULL', NULL, NULL),
  (7, decode(repeat('ab', 300), 'hex'), '{"not":"json"}', NULL, NULL),
  (8, '\x5c7830', E'\\x30 \\u0000 \\\\', 'null', 'true');
INSERT INTO misc VALUES
  (1, 7, 8, 12.5, 'lbl', '{1,NULL,3}', '{4,5}', '2026-11-23 21:54:32.5+05:30',
   '{"k": [1.50, true]}', 'happy', '{sad,"very \"happy\""}',
   'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', '192.168.0.1/24', '[1,10)',
   ROW(1, 'a b'), ARRAY[ROW(1, 'a'), ROW(2, 'b c')]::pair[], B'1010',
   '08:00:2b:01:02:03', true),
  (2, NULL, NULL, NULL, NULL, NULL, NULL, 'infinity', 'null', 'very "happy"', '{}',
   NULL, '::1', 'empty', ROW(NULL, 'x,y'), NULL, NULL, NULL, false),
  (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
   NULL, NULL, '[5,)', NULL, NULL, NULL, NULL, NULL);
INSERT INTO specials VALUES
  (1, 'NaN', 'NaN', 'NaN', '{NaN,Infinity,-Infinity}', '{NaN,Infinity,-Infinity}', '\x00ff'),
  (2, 'Infinity', 'Infinity', 1.5, NULL, NULL, ''),
  (3, '-Infinity', '-Infinity', NULL, '{1.5,-0}', '{1.50}', NULL),
  (4, 1.5, 2.50, 12.5, '{}', '{}', '\x5c');

-- Updates and deletes of those rows
UPDATE ints SET i8 = i8 - 1, b = NOT b WHERE id = 2;
DELETE FROM ints WHERE id = 3;
UPDATE nums SET n = 'Infinity' WHERE id = 1;
UPDATE nums SET n = 1.5 WHERE id = 3;
UPDATE nums SET id = 11 WHERE id = 10;
DELETE FROM nums WHERE id = 7;
UPDATE floats SET f4 = 'NaN', f8 = '-Infinity' WHERE id = 1;
UPDATE floats SET f8 = 2.5 WHERE id = 9;
UPDATE floats SET id = 15 WHERE id = 14;
DELETE FROM floats WHERE id IN (10, 11, 12);
UPDATE js SET jb = jb || '{"z": [1.50]}' WHERE id = 1;
DELETE FROM js WHERE id = 4;
UPDATE arrs SET fa = '{NaN}', ia = '{9}' WHERE id = 1;
DELETE FROM arrs WHERE id = 3;
UPDATE times SET id = 11 WHERE id = 10;
UPDATE times SET tz = 'infinity' WHERE id = 1;
UPDATE blobs SET b = '\xdeadbeef' WHERE id = 1;
DELETE FROM blobs WHERE id = 3;
UPDATE misc SET ma = '{happy}', c = ROW(2, 'q"') WHERE id = 1;
UPDATE specials SET fd = 'NaN', nd = '-Infinity' WHERE id = 4;
DELETE FROM specials WHERE id = 1;
-- The table changes while the slots are behind.
CREATE DOMAIN later AS posint2[];
ALTER TABLE misc ADD COLUMN extra later;
INSERT INTO misc (id, extra) VALUES (4, '{1,2}');
UPDATE misc SET extra = '{3}' WHERE id = 1;
ALTER TABLE misc DROP COLUMN m, ALTER COLUMN dp TYPE bigint;
INSERT INTO misc (id, dp) VALUES (5, 9000000000);
DELETE FROM misc WHERE id = 2;

-- Replica identities
INSERT INTO rdef VALUES (1, 'a');
UPDATE rdef SET v = 'b' WHERE id = 1;
UPDATE rdef SET id = 2, v = 'c' WHERE id = 1;
UPDATE rdef SET v = NULL WHERE id = 2;
DELETE FROM rdef WHERE id = 2;
INSERT INTO rfull VALUES (1, 'a', NULL);
UPDATE rfull SET v = 'b' WHERE id = 1;
UPDATE rfull SET id = 2 WHERE id = 1;
UPDATE rfull SET w = 3 WHERE id = 2;
DELETE FROM rfull WHERE id = 2;
INSERT INTO rfull_nopk VALUES (1, 'a'), (1, 'a');
UPDATE rfull_nopk SET b = 'b';
DELETE FROM rfull_nopk;
INSERT INTO ridx VALUES (1, 10, 20, 'x');
UPDATE ridx SET c = 'y';
UPDATE ridx SET id = 5;
UPDATE ridx SET a = 11;
DELETE FROM ridx;
INSERT INTO rcomp VALUES (1, 2, 'x');
UPDATE rcomp SET v = 'y';
UPDATE rcomp SET a = 3;
DELETE FROM rcomp;
INSERT INTO rcompf VALUES (0, 1, 2, 'x');
UPDATE rcompf SET v = 'y';
UPDATE rcompf SET a = 3;
DELETE FROM rcompf;
INSERT INTO rnone VALUES (1, 'a');
INSERT INTO rnopk VALUES (1, 'a'), (NULL, NULL);

-- TOAST: an update that leaves a TOASTed value alone, under each identity
INSERT INTO big VALUES (1, 0, (SELECT string_agg(md5(i::text), '') FROM generate_series(1, 2000) i), 't');
INSERT INTO bigfull VALUES (1, 0, (SELECT string_agg(md5(i::text), '') FROM generate_series(1, 2000) i));
INSERT INTO bigidx VALUES (1, 1, 0,
  (SELECT jsonb_agg(md5(i::text)) FROM generate_series(1, 2000) i),
  (SELECT string_agg(decode(md5(i::text), 'hex'), '') FROM generate_series(1, 2000) i));
UPDATE big SET n = 1;
UPDATE bigfull SET n = 1;
UPDATE bigidx SET n = 1;
UPDATE bigidx SET u = 2;
UPDATE big SET body = body || 'x', n = 2;
UPDATE big SET tail = NULL;
UPDATE bigfull SET id = 2;
DELETE FROM bigfull;
DELETE FROM bigidx;
DELETE FROM big;

-- Odd names
INSERT INTO app."MyTable" VALUES (1, 'a'), (2, 'b');
UPDATE app."MyTable" SET "my col ""q""" = 'c' WHERE id = 1;
DELETE FROM app."MyTable" WHERE id = 2;
INSERT INTO "Odd Schema.x"."we.ird, ta\ble *'q""" VALUES (1, 'ü', 2, 'x');
UPDATE "Odd Schema.x"."we.ird, ta\ble *'q""" SET "ünï cöl" = 'v';
UPDATE "Odd Schema.x"."we.ird, ta\ble *'q""" SET "a.b,c*" = 5;
DELETE FROM "Odd Schema.x"."we.ird, ta\ble *'q""";
INSERT INTO "*"."*" VALUES (1);
DELETE FROM "*"."*";
INSERT INTO "UPPER case" VALUES (1, 'v', 2);
UPDATE "UPPER case" SET "Value" = 'w';
DELETE FROM "UPPER case";

-- Generated columns, partitions
INSERT INTO gen (id, a, z) VALUES (1, 2, 'z');
UPDATE gen SET a = 3;
DELETE FROM gen;
INSERT INTO part VALUES (1, 1, 'a'), (2, 15, 'b');
UPDATE part SET v = 'c' WHERE id = 1;
UPDATE part SET k = 12 WHERE id = 1;
DELETE FROM part WHERE id = 2;

-- More identities and shapes
INSERT INTO ridx_nopk VALUES (1, 'x', 1);
UPDATE ridx_nopk SET b = 'y';
UPDATE ridx_nopk SET a = 2;
DELETE FROM ridx_nopk;
INSERT INTO rfull_odd VALUES (1, '{"a": [1, 2.50]}', '(1.5,-2)');
UPDATE rfull_odd SET pt = '(0,0)';
UPDATE rfull_odd SET id = 2;
DELETE FROM rfull_odd;
INSERT INTO holes VALUES (1, 'y', 3);
UPDATE holes SET z = 4;
DELETE FROM holes;

-- Schema changes while the slots are behind, between and inside transactions
INSERT INTO evolve VALUES (1, 1, 'a');
ALTER TABLE evolve ADD COLUMN c int DEFAULT 7;
INSERT INTO evolve VALUES (2, 2, 'b', 8);
UPDATE evolve SET a = 10 WHERE id = 1;
BEGIN;
  UPDATE evolve SET b = 'in tx' WHERE id = 1;
  ALTER TABLE evolve DROP COLUMN a;
  UPDATE evolve SET b = 'after drop' WHERE id = 1;
  ALTER TABLE evolve ALTER COLUMN c TYPE text;
  INSERT INTO evolve VALUES (3, 'c', 'text now');
  ALTER TABLE evolve ADD COLUMN a int;
  INSERT INTO evolve VALUES (4, 'd', 'e', 44);
COMMIT;
DELETE FROM evolve WHERE id = 2;
INSERT INTO pkchange VALUES (1, 10, 'a');
UPDATE pkchange SET v = 'b';
UPDATE pkchange SET a = 2;
ALTER TABLE pkchange DROP CONSTRAINT pkchange_pkey, ADD PRIMARY KEY (b);
INSERT INTO pkchange VALUES (3, 30, 'c');
UPDATE pkchange SET v = 'd';
UPDATE pkchange SET b = 31 WHERE a = 3;
DELETE FROM pkchange;
INSERT INTO pkchangef VALUES (1, 10, 'a');
UPDATE pkchangef SET v = 'b';
-- (Changing the primary key of a FULL table while the slots are behind is
-- left out: pgoutput's key is the primary key when pgstream reads the
-- catalog, wal2json's the one at the time of the change; docs/output.md.)
INSERT INTO pkchangef VALUES (3, 30, 'c');
UPDATE pkchangef SET v = 'd';
DELETE FROM pkchangef;
-- Tables created, renamed, moved and dropped while the slots are behind
CREATE TABLE created_later (id int PRIMARY KEY, v text);
INSERT INTO created_later VALUES (1, 'created after the slots');
CREATE TABLE gone (id int PRIMARY KEY);
INSERT INTO gone VALUES (1);
DROP TABLE gone;
CREATE TABLE renamed_from (id int PRIMARY KEY);
INSERT INTO renamed_from VALUES (1);
ALTER TABLE renamed_from RENAME TO renamed_to;
INSERT INTO renamed_to VALUES (2);
CREATE TABLE moved (id int PRIMARY KEY);
INSERT INTO moved VALUES (1);
ALTER TABLE moved SET SCHEMA app;
INSERT INTO app.moved VALUES (2);

-- Transactions: one rolled back, a rolled-back and a released savepoint,
-- several tables in one, one committed inside another
BEGIN;
  INSERT INTO rdef VALUES (100, 'rolled back');
  SELECT pg_logical_emit_message(true, 'pfx', 'rolled back with its transaction') IS NULL;
  SELECT pg_logical_emit_message(false, 'pfx', 'kept though aborted') IS NULL;
  UPDATE ints SET i2 = 5;
ROLLBACK;
BEGIN;
  INSERT INTO rdef VALUES (200, 'a');
  SAVEPOINT s1;
  INSERT INTO rdef VALUES (201, 'gone');
  UPDATE rdef SET v = 'gone' WHERE id = 200;
  SELECT pg_logical_emit_message(true, 'pfx', 'gone with the savepoint') IS NULL;
  SELECT pg_logical_emit_message(false, 'pfx', 'kept though its savepoint rolled back') IS NULL;
  ROLLBACK TO SAVEPOINT s1;
  INSERT INTO rdef VALUES (202, 'b');
  SAVEPOINT s2;
  UPDATE rdef SET v = 'kept' WHERE id = 202;
  SELECT pg_logical_emit_message(true, 'pfx', 'in a released savepoint') IS NULL;
  RELEASE SAVEPOINT s2;
  INSERT INTO ints VALUES (100, true, 1, 1, 1, 1);
  DELETE FROM rdef WHERE id = 200;
COMMIT;
BEGIN;
  INSERT INTO rdef VALUES (300, 'started first, committed second');
  SELECT x FROM dblink('{conninfo}',
    'WITH i AS (INSERT INTO ints VALUES (301, false) RETURNING 1) SELECT 1 FROM i')
    AS r(x int);
  INSERT INTO rdef VALUES (302, 'after the other commit');
COMMIT;

-- Messages
SELECT pg_logical_emit_message(false, 'pfx', 'hello') IS NULL;
BEGIN;
  SELECT pg_logical_emit_message(true, 'pfx', 'in tx') IS NULL;
  INSERT INTO rdef VALUES (400, 'with messages');
  SELECT pg_logical_emit_message(true, 'p', '\x410042'::bytea) IS NULL;
  SELECT pg_logical_emit_message(false, 'ntx in tx', 'x') IS NULL;
  SELECT pg_logical_emit_message(true, 'p', '\x41ff'::bytea) IS NULL;
COMMIT;
SELECT pg_logical_emit_message(true, 'alone', 'a transaction with only a message') IS NULL;
SELECT pg_logical_emit_message(false, 'p', '\xff00'::bytea) IS NULL;
SELECT pg_logical_emit_message(false, 'p', '\x61006200'::bytea) IS NULL;
SELECT pg_logical_emit_message(false, 'p', '\x6100ff'::bytea) IS NULL;
SELECT pg_logical_emit_message(false, 'p', '\x00'::bytea) IS NULL;
SELECT pg_logical_emit_message(false, 'p', '\xfffe'::bytea) IS NULL;
SELECT pg_logical_emit_message(false, 'p', '\x61ff62'::bytea) IS NULL;
SELECT pg_logical_emit_message(false, 'ünï', 'héllo 😀 \ "') IS NULL;
SELECT pg_logical_emit_message(false, '', '') IS NULL;
SELECT pg_logical_emit_message(true, 'ctl', E'tab\there\nnewline \u0001 \u001f \\u0000') IS NULL;

-- Truncate
INSERT INTO parent DEFAULT VALUES;
INSERT INTO child VALUES (1, 1);
INSERT INTO lone VALUES (1);
TRUNCATE lone;
TRUNCATE parent RESTART IDENTITY CASCADE;
TRUNCATE app."MyTable", rdef;
-- (TRUNCATE of the partitioned table itself: wal2json adds an event for the
-- parent; docs/output.md.)
TRUNCATE part_lo, part_hi;
BEGIN;
  INSERT INTO lone VALUES (5);
  TRUNCATE lone CONTINUE IDENTITY RESTRICT;
  INSERT INTO lone VALUES (6);
COMMIT;
INSERT INTO parent DEFAULT VALUES;
"##;

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[test]
fn same_workload_same_events_from_pgoutput_and_wal2json() {
    let Some(cluster) = cluster_with_wal2json() else {
        return;
    };
    let db = cluster.new_db("w2j_differential");
    db.sql(SETUP);
    let (pg_slot, wj_slot) = (format!("p_{}", db.name), format!("w_{}", db.name));
    assert!(wj_slot.len() <= 63, "slot name too long: {wj_slot}");
    let flags = ["--include-messages", "--include-tx"];

    // Both slots at the same point: nothing happens between the two runs.
    for (slot, plugin) in [(&pg_slot, "pgoutput"), (&wj_slot, "wal2json")] {
        let first = run_now(&db, slot, plugin, Some("p"), &flags);
        assert!(
            first.is_empty(),
            "the run that creates {slot} emits nothing: {first:#?}"
        );
        assert_eq!(db.slot_plugin(slot).as_deref(), Some(plugin));
    }

    let conninfo = db.conninfo().replace('\'', "''");
    db.sql(&WORKLOAD.replace("{conninfo}", &conninfo));
    db.wait_flushed();
    let pg = run_now(&db, &pg_slot, "pgoutput", Some("p"), &flags);
    let wj = run_now(&db, &wj_slot, "wal2json", Some("p"), &flags);
    let types = column_types(&db);

    // The workload did what it is meant to: every op, every table.
    let ops: BTreeSet<&str> = pg.iter().map(Line::op).collect();
    for op in [
        "begin", "commit", "insert", "update", "delete", "truncate", "message",
    ] {
        assert!(ops.contains(op), "no {op} event from pgoutput: {pg:#?}");
    }
    let tables: BTreeSet<(&str, &str)> = pg
        .iter()
        .filter_map(|l| Some((l.s("schema")?, l.s("table")?)))
        .collect();
    for t in TABLES {
        assert!(tables.contains(&t), "no event for {t:?} from pgoutput");
    }

    let c = compare(&pg, &wj, &types);
    let counts: BTreeMap<&str, usize> = c.excused.iter().map(|(k, v)| (*k, v.len())).collect();
    if !c.diffs.is_empty() || pg.len() != wj.len() {
        const SHOWN: usize = 60;
        panic!(
            "pgoutput and wal2json disagree: {} lines from pgoutput, {} from wal2json; \
             {} difference(s) that no documented exception explains \
             (documented exceptions seen: {counts:?}):\n\n{}{}",
            pg.len(),
            wj.len(),
            c.diffs.len(),
            c.diffs
                .iter()
                .take(SHOWN)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n"),
            if c.diffs.len() > SHOWN {
                format!("\n… and {} more", c.diffs.len() - SHOWN)
            } else {
                String::new()
            }
        );
    }

    // Each documented exception happened, on exactly the lines that should
    // show it: the pgoutput lines that carry what wal2json drops.
    let should = |f: &dyn Fn(&Line) -> bool| -> Vec<usize> {
        (0..pg.len()).filter(|&i| f(&pg[i])).collect()
    };
    let expected: [(&str, Vec<usize>); 3] = [
        (
            NAN_AS_NULL,
            should(&|l| {
                matches!(l.op(), "insert" | "update" | "delete") && nan_as_null(l, &types).is_some()
            }),
        ),
        (TRUNCATE_FLAGS, should(&|l| l.op() == "truncate")),
        (
            MESSAGE_NUL,
            should(&|l| l.op() == "message" && content_bytes(&l.v).is_some_and(|b| b.contains(&0))),
        ),
    ];
    for (why, lines) in expected {
        assert!(!lines.is_empty(), "the workload never exercised: {why}");
        let got = c.excused.get(why).cloned().unwrap_or_default();
        assert_eq!(
            got,
            lines,
            "{why}: excused on pgoutput lines {got:?}, expected on {lines:?}:\n{}",
            lines
                .iter()
                .map(|&i| format!(
                    "  pgoutput: {}\n  wal2json: {}",
                    short(&pg[i].raw),
                    short(&wj[i].raw)
                ))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    let excused: usize = c.excused.values().map(Vec::len).sum();
    assert!(
        c.excused
            .keys()
            .all(|k| [NAN_AS_NULL, TRUNCATE_FLAGS, MESSAGE_NUL].contains(k)),
        "{counts:?}"
    );
    eprintln!(
        "wal2json differential: {} events, {} identical, {excused} excused: {counts:?}",
        pg.len(),
        pg.len() - excused
    );
}

#[test]
fn wal2json_publication_restricts_tables() {
    let Some(cluster) = cluster_with_wal2json() else {
        return;
    };
    let db = cluster.new_db("w2j_publication");
    db.sql(
        "CREATE SCHEMA sch;
         CREATE TABLE pubt (id int PRIMARY KEY, v text);
         CREATE TABLE other (id int PRIMARY KEY, v text);
         CREATE TABLE \"odd, name.*\" (id int PRIMARY KEY);
         CREATE TABLE sch.inschema (id int PRIMARY KEY);
         CREATE TABLE sch.\"other.too\" (id int PRIMARY KEY);
         CREATE TABLE \"tab\tname\" (id int PRIMARY KEY);
         CREATE PUBLICATION p FOR TABLE pubt, \"odd, name.*\";
         CREATE PUBLICATION p_schema FOR TABLES IN SCHEMA sch;
         CREATE PUBLICATION p_empty;
         CREATE PUBLICATION p_tab FOR TABLE \"tab\tname\";",
    );
    // (slot, --publication when the slot is created)
    let slots = [
        ("wj_pub", Some("p")),
        ("wj_schema", Some("p_schema")),
        ("wj_both", Some("p,p_schema")),
        ("wj_empty", Some("p_empty")),
        ("wj_tab", None),
        ("wj_all", None),
    ];
    for (slot, publication) in slots {
        let first = run_now(&db, slot, "wal2json", publication, &[]);
        assert!(first.is_empty(), "{slot}: {first:#?}");
    }
    db.sql(
        "INSERT INTO pubt VALUES (1, 'a');
         INSERT INTO other VALUES (1, 'a');
         INSERT INTO \"odd, name.*\" VALUES (1);
         INSERT INTO sch.inschema VALUES (1);
         INSERT INTO sch.\"other.too\" VALUES (1);
         INSERT INTO \"tab\tname\" VALUES (1);
         BEGIN;
           UPDATE other SET v = 'b';
           UPDATE pubt SET v = 'b';
           DELETE FROM other;
         COMMIT;
         INSERT INTO other VALUES (2, 'x');
         UPDATE other SET v = 'c';
         UPDATE \"tab\tname\" SET id = 2;
         DELETE FROM pubt;
         TRUNCATE other;
         TRUNCATE other, pubt;",
    );
    db.wait_flushed();
    let table = |l: &Line| {
        (
            l.s("schema").unwrap().to_string(),
            l.s("table").unwrap().to_string(),
        )
    };
    let t = |s: &str, n: &str| (s.to_string(), n.to_string());

    // Without --publication: every table.
    let all = run_now(&db, "wj_all", "wal2json", None, &[]);
    let seen: BTreeSet<(String, String)> = all.iter().map(table).collect();
    assert_eq!(
        seen,
        BTreeSet::from([
            t("public", "pubt"),
            t("public", "other"),
            t("public", "odd, name.*"),
            t("public", "tab\tname"),
            t("sch", "inschema"),
            t("sch", "other.too"),
        ]),
        "a wal2json slot without --publication streams every table: {all:#?}"
    );
    assert_eq!(
        all.iter().filter(|l| l.s("table") == Some("other")).count(),
        7,
        "every change of the unpublished table, without --publication: {all:#?}"
    );

    // With --publication: only the publication's tables, each event as the
    // unrestricted slot gave it.
    let only = |pubs: &[(String, String)]| -> Vec<String> {
        all.iter()
            .filter(|l| pubs.contains(&table(l)))
            .map(|l| l.raw.clone())
            .collect()
    };
    let cases = [
        (
            "wj_pub",
            "p",
            vec![t("public", "pubt"), t("public", "odd, name.*")],
        ),
        (
            "wj_schema",
            "p_schema",
            vec![t("sch", "inschema"), t("sch", "other.too")],
        ),
        (
            "wj_both",
            "p,p_schema",
            vec![
                t("public", "pubt"),
                t("public", "odd, name.*"),
                t("sch", "inschema"),
                t("sch", "other.too"),
            ],
        ),
        ("wj_empty", "p_empty", vec![]),
        // A table name with a tab: wal2json's add-tables parser splits on
        // whitespace unless it is escaped.
        ("wj_tab", "p_tab", vec![t("public", "tab\tname")]),
    ];
    for (slot, publication, tables) in cases {
        let got = run_now(&db, slot, "wal2json", Some(publication), &[]);
        let raw: Vec<String> = got.iter().map(|l| l.raw.clone()).collect();
        assert!(
            got.iter().all(|l| tables.contains(&table(l))),
            "--publication {publication}: an event for a table outside it: {got:#?}"
        );
        assert_eq!(
            raw,
            only(&tables),
            "--publication {publication}: the events of its tables, as without --publication"
        );
        if !tables.is_empty() {
            assert!(
                !got.is_empty(),
                "--publication {publication}: no events at all"
            );
        }
    }
}

/// A long-running pgstream (no `--end-lsn`) on each plugin, with a
/// publication FOR ALL TABLES and one FOR TABLE: a table created while they
/// stream, and a table added to the publication while they stream, are
/// published from then on (pgoutput reads the publication as of each
/// change), so the wal2json stream must show their changes too.
#[test]
fn wal2json_publication_follows_tables_added_while_streaming() {
    let Some(cluster) = cluster_with_wal2json() else {
        return;
    };
    let db = cluster.new_db("w2j_live");
    db.sql(
        "CREATE TABLE base (id int PRIMARY KEY);
         CREATE TABLE added (id int PRIMARY KEY);
         CREATE PUBLICATION pall FOR ALL TABLES;
         CREATE PUBLICATION plist FOR TABLE base;",
    );
    // (slot, plugin, publication)
    let streams = [
        ("p_all", "pgoutput", "pall"),
        ("w_all", "wal2json", "pall"),
        ("p_list", "pgoutput", "plist"),
        ("w_list", "wal2json", "plist"),
    ];
    for (slot, plugin, publication) in streams {
        let first = run_now(&db, slot, plugin, Some(publication), &[]);
        assert!(first.is_empty(), "{slot}: {first:#?}");
    }
    let mut procs: Vec<crate::harness::Proc> = streams
        .iter()
        .map(|(slot, plugin, publication)| {
            let mut args = db.conn_args();
            args.extend(vec_of(&[
                "--slot",
                slot,
                "-P",
                plugin,
                "--publication",
                publication,
            ]));
            crate::harness::Proc::spawn(&args, &[])
        })
        .collect();
    for (slot, _, _) in streams {
        wait_until(&format!("{slot} to be streaming"), TIMEOUT, || {
            db.slot_active(slot).then_some(())
        });
    }
    db.sql(
        "INSERT INTO base VALUES (1);
         CREATE TABLE fresh (id int PRIMARY KEY);
         INSERT INTO fresh VALUES (1);
         ALTER PUBLICATION plist ADD TABLE added;
         INSERT INTO added VALUES (1);
         INSERT INTO base VALUES (2);",
    );
    // Everything up to the last insert, which every stream shows.
    let last = |l: &String| l.contains(r#""table":"base""#) && l.contains(r#""new":{"id":2}"#);
    let mut out: Vec<Vec<String>> = Vec::new();
    for (p, (slot, _, _)) in procs.iter_mut().zip(streams) {
        let lines = wait_until(&format!("{slot} to show the last insert"), TIMEOUT, || {
            let l = p.lines();
            l.iter().any(last).then_some(l)
        });
        out.push(lines);
    }
    for p in &procs {
        p.signal("TERM");
    }
    for p in &mut procs {
        let o = p.wait_exit(TIMEOUT);
        assert_eq!(o.code, Some(0), "{o:?}");
    }
    let tables = json_tables;
    assert_eq!(
        tables(&out[0]),
        ["base", "fresh", "added", "base"],
        "pgoutput, FOR ALL TABLES: {:#?}",
        out[0]
    );
    assert_eq!(
        tables(&out[2]),
        ["base", "added", "base"],
        "pgoutput, FOR TABLE then ADD TABLE: {:#?}",
        out[2]
    );
    // The documented exception: with a FOR TABLE publication, wal2json gets
    // the table list when pgstream connects, so a table added while it
    // streams shows up only after the next reconnect.
    let without_added: Vec<String> = out[2]
        .iter()
        .filter(|l| !l.contains(r#""table":"added""#))
        .cloned()
        .collect();
    let mut failures = Vec::new();
    for (pg, wj, what) in [
        (
            &out[0],
            &out[1],
            "publication FOR ALL TABLES, a table created while streaming",
        ),
        (
            &without_added,
            &out[3],
            "publication FOR TABLE, ALTER PUBLICATION … ADD TABLE while streaming",
        ),
    ] {
        if wj != pg {
            failures.push(format!(
                "{what}:\n--- pgoutput:\n{}\n--- wal2json:\n{}",
                pg.join("\n"),
                wj.join("\n")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "a wal2json stream must show the same events as pgoutput for a table published \
         while it streams:\n\n{}",
        failures.join("\n\n")
    );
}

/// The `table` of each line.
fn json_tables(lines: &[String]) -> Vec<String> {
    crate::harness::json_lines(lines)
        .iter()
        .map(|v| v["table"].as_str().unwrap_or("?").to_string())
        .collect()
}

/// [`known_exception`] on made-up lines: it excuses exactly the documented
/// losses, and nothing that comes with them.
#[test]
fn known_exception_excuses_only_what_it_names() {
    let line = |raw: &str| Line {
        raw: raw.to_string(),
        v: serde_json::from_str(raw).unwrap(),
    };
    let types: Types = [("f", 701), ("n", 1700), ("t", 25), ("fa", 1022)]
        .into_iter()
        .map(|(c, oid)| (("s".to_string(), "t".to_string(), c.to_string()), oid))
        .collect();
    let ex = |pg: &str, wj: &str| known_exception(&line(pg), &line(wj), &types);
    let ins = |new: &str| {
        format!(
            r#"{{"op":"insert","schema":"s","table":"t","lsn":"0/1","xid":1,"commit_lsn":"0/2","key":{{"id":1}},"new":{new}}}"#
        )
    };
    // NaN and ±Infinity in plain float/numeric columns.
    let pg = ins(r#"{"id":1,"f":"NaN","n":"-Infinity","t":"NaN","fa":["NaN"]}"#);
    assert_eq!(
        ex(
            &pg,
            &ins(r#"{"id":1,"f":null,"n":null,"t":"NaN","fa":["NaN"]}"#)
        ),
        Some(NAN_AS_NULL)
    );
    for wj in [
        r#"{"id":1,"f":null,"n":"-Infinity","t":"NaN","fa":["NaN"]}"#, // one kept
        r#"{"id":1,"f":null,"n":null,"t":null,"fa":["NaN"]}"#,         // text column
        r#"{"id":1,"f":null,"n":null,"t":"NaN","fa":[null]}"#,         // array element
        r#"{"id":2,"f":null,"n":null,"t":"NaN","fa":["NaN"]}"#,        // something else too
    ] {
        assert_eq!(ex(&pg, &ins(wj)), None, "{wj}");
    }
    assert_eq!(
        ex(&ins(r#"{"id":1,"f":1.5}"#), &ins(r#"{"id":1,"f":null}"#)),
        None
    );

    // Truncate flags.
    let tr = |tail: &str, lsn: &str| {
        format!(
            r#"{{"op":"truncate","schema":"s","table":"t","lsn":"{lsn}","xid":1,"commit_lsn":"0/2"{tail}}}"#
        )
    };
    let pg = tr(r#","cascade":true,"restart_identity":false"#, "0/1");
    assert_eq!(ex(&pg, &tr("", "0/1")), Some(TRUNCATE_FLAGS));
    assert_eq!(ex(&pg, &tr("", "0/9")), None);
    assert_eq!(ex(&pg, &tr(r#","cascade":true"#, "0/1")), None);

    // Message content cut at a NUL byte.
    let msg = |content: &str| {
        format!(r#"{{"op":"message","lsn":"0/1","prefix":"p",{content},"transactional":false}}"#)
    };
    let cases = [
        (r#""content":"a\u0000b""#, r#""content":"a""#, true),
        (r#""content":"\u0000""#, r#""content":"""#, true),
        (
            r#""content_base64":"/wA=""#,
            r#""content_base64":"/w==""#,
            true,
        ),
        (r#""content_base64":"YQD/""#, r#""content":"a""#, true),
        (r#""content":"a\u0000b""#, r#""content":"ab""#, false),
        (
            r#""content":"a\u0000b""#,
            r#""content_base64":"YQ==""#,
            false,
        ),
        (r#""content":"ab""#, r#""content":"a""#, false),
        (r#""content_base64":"/wA=""#, r#""content":"""#, false),
    ];
    for (pg, wj, excused) in cases {
        let want = excused.then_some(MESSAGE_NUL);
        assert_eq!(ex(&msg(pg), &msg(wj)), want, "{pg} / {wj}");
    }
    assert_eq!(
        ex(
            &msg(r#""content":"a\u0000""#),
            &msg(r#""content":"a""#).replace(r#""p""#, r#""q""#)
        ),
        None
    );
    assert_eq!(base64_decode("YWJj").as_deref(), Some(&b"abc"[..]));
    assert_eq!(base64_decode("YQ==").as_deref(), Some(&b"a"[..]));
}
