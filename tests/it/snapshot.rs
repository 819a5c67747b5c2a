//! `--snapshot` (issue 5): `read` events from the new slot's exported
//! snapshot, then the stream from its consistent point, with no row missed
//! and no change twice; table filters on both; an interrupted snapshot is
//! never skipped silently (docs/snapshot.md).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{
    command, json_lines, parse_lsn, quote_literal, run, vec_of, wait_until, Cluster, Output, Proc,
    TestDb, TIMEOUT,
};

/// pgstream args: connection, slot, plugin, and `extra`.
fn args(db: &TestDb, slot: &str, plugin: &str, extra: &[&str]) -> Vec<String> {
    let mut a = db.conn_args();
    a.extend(vec_of(&["--slot", slot, "-P", plugin]));
    a.extend(vec_of(extra));
    a
}

/// A pgoutput run with `--snapshot --end-lsn now` on `publications`, which
/// must exit 0.
fn snapshot_now(db: &TestDb, slot: &str, publications: &str) -> Output {
    let flags = [
        "--publication",
        publications,
        "--snapshot",
        "--end-lsn",
        "now",
    ];
    let out = run(&args(db, slot, "pgoutput", &flags), &[], TIMEOUT);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    out
}

/// The marker slot of an unfinished snapshot of `slot`.
fn marker(slot: &str) -> String {
    format!("{slot}_pgstream_snapshot")
}

fn slot_type(db: &TestDb, slot: &str) -> Option<String> {
    let t = db.sql(&format!(
        "SELECT slot_type FROM pg_replication_slots WHERE slot_name = {}",
        quote_literal(slot)
    ));
    (!t.is_empty()).then_some(t)
}

/// A JSON value with object keys sorted, as a string: equal rows compare
/// equal whatever the key order.
fn canon(v: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let m: BTreeMap<&String, Value> = m.iter().map(|(k, v)| (k, sorted(v))).collect();
                Value::Object(m.into_iter().map(|(k, v)| (k.clone(), v)).collect())
            }
            Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
            v => v.clone(),
        }
    }
    sorted(v).to_string()
}

fn s<'a>(ev: &'a Value, key: &str) -> &'a str {
    ev[key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} in {ev}"))
}

// ---------------------------------------------------------------------------
// Replay: read + streamed events rebuild every table exactly
// ---------------------------------------------------------------------------

/// Tables by name, rows by canonical key.
type State = BTreeMap<String, BTreeMap<String, Value>>;

/// Applies the output strictly: a read or insert of a key already there, or
/// an update or delete of a key not there, is a duplicate or a gap.
fn replay(events: &[Value]) -> State {
    let mut state = State::new();
    for ev in events {
        let op = s(ev, "op");
        if !matches!(op, "read" | "insert" | "update" | "delete") {
            continue;
        }
        let rows = state.entry(s(ev, "table").to_string()).or_default();
        let key = ev.get("key").unwrap_or_else(|| panic!("no key: {ev}"));
        // The key before the change: the key columns of `old` when sent.
        let old_key = match ev.get("old") {
            Some(old) => {
                let m = key
                    .as_object()
                    .unwrap()
                    .keys()
                    .map(|k| (k.clone(), old[k].clone()))
                    .collect();
                canon(&Value::Object(m))
            }
            None => canon(key),
        };
        match op {
            "read" | "insert" => {
                let prev = rows.insert(canon(key), ev["new"].clone());
                assert!(
                    prev.is_none(),
                    "{op} of a row already there (a duplicate): {ev}"
                );
            }
            "update" => {
                let before = rows
                    .remove(&old_key)
                    .unwrap_or_else(|| panic!("update of a missing row (a gap): {ev}"));
                let mut new = ev["new"].clone();
                for col in ev
                    .get("unchanged_toast")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let c = col.as_str().unwrap();
                    new[c] = before[c].clone();
                }
                assert!(
                    rows.insert(canon(key), new).is_none(),
                    "update onto an existing key: {ev}"
                );
            }
            _ => {
                assert!(
                    rows.remove(&old_key).is_some(),
                    "delete of a missing row (a gap): {ev}"
                );
            }
        }
    }
    state
}

/// One table's rows as the server has them now: `select` is a query giving
/// one JSON object per row, mapped as pgstream maps values.
fn table_now(db: &TestDb, select: &str) -> BTreeSet<String> {
    let json = db.sql(&format!(
        "SELECT coalesce(json_agg(r), '[]') FROM ({select}) q(r)"
    ));
    let rows: Vec<Value> = serde_json::from_str(&json).expect("json_agg output");
    rows.iter().map(canon).collect()
}

/// Concurrent writes while the snapshot is taken: pre-existing rows in
/// several tables (one of 200,000 rows); inserts, updates of old rows and
/// deletes run in the background from before the slot exists until after
/// the copy. Replaying `read` + streamed events gives every table's final
/// state exactly, and no change of the stream is older than the snapshot.
fn concurrent_writes_replay(plugin: &str) {
    let db = Cluster::shared().new_db("snaprep");
    db.sql(
        "CREATE TABLE big (id int PRIMARY KEY, v int NOT NULL, t text);
         INSERT INTO big SELECT g, g, 'row ' || g FROM generate_series(1, 200000) g;
         CREATE TABLE acct (region text, id int, balance numeric, note text, PRIMARY KEY (region, id));
         INSERT INTO acct SELECT 'r' || (g % 5), g, g * 1.5, E'tab\\there \\\\ \"q\"' FROM generate_series(1, 3000) g;
         CREATE TABLE full_t (id int PRIMARY KEY, payload jsonb);
         ALTER TABLE full_t REPLICA IDENTITY FULL;
         INSERT INTO full_t SELECT g, jsonb_build_object('g', g) FROM generate_series(1, 500) g;
         CREATE TABLE empty_t (id int PRIMARY KEY);
         CREATE TABLE done (id int PRIMARY KEY);
         CREATE PUBLICATION p FOR ALL TABLES;",
    );
    // The exporting connection sits idle in its transaction during the
    // copy: a server-wide timeout must not end it.
    db.sql(&format!(
        "ALTER DATABASE \"{}\" SET idle_in_transaction_session_timeout = '50ms'",
        db.name
    ));
    let slot = format!("{}_s", db.name);

    // Writes before, during and after the snapshot, one psql session.
    let iterations = 400;
    // (Not for this session, which a busy machine may pause mid-transaction.)
    let mut script = String::from("SET idle_in_transaction_session_timeout = 0;\n");
    for i in 1..=iterations {
        let old = (i * 617) % 200_000 + 1;
        let gone = (i * 331) % 200_000 + 1;
        script.push_str(&format!(
            "BEGIN;
             INSERT INTO big VALUES ({}, {i}, 'new {i}');
             UPDATE big SET v = v + 1000000, t = 'upd {i}' WHERE id = {old};
             DELETE FROM big WHERE id = {gone};
             UPDATE acct SET balance = balance + 1, note = E'n\\\\{i}' WHERE id = {};
             UPDATE acct SET id = id + 100000 WHERE id = {};
             INSERT INTO full_t VALUES ({}, '{{\"n\": {i}}}');
             UPDATE full_t SET payload = jsonb_build_object('u', {i}) WHERE id = {};
             DELETE FROM full_t WHERE id = {i};
             COMMIT;
             SELECT pg_sleep(0.005);\n",
            200_000 + i,
            i * 7 % 3000 + 1,
            i * 3 + 1,
            1000 + i,
            (i + 250) % 500 + 1,
        ));
    }
    let server = db.server().clone();
    let name = db.name.clone();
    let writer = thread::spawn(move || server.sql(&name, &script));
    wait_until("the first background writes", TIMEOUT, || {
        (db.sql("SELECT count(*) >= 20 FROM big WHERE id > 200000") == "t").then_some(())
    });

    let mut a = args(&db, &slot, plugin, &["--snapshot", "-s", "1", "-v"]);
    if plugin == "pgoutput" {
        a.extend(vec_of(&["--publication", "p"]));
    }
    let mut p = Proc::spawn(&a, &[]);
    // The end is taken once the slot exists: a busy machine may be slow to
    // create it, and a position from before would stop the run too early.
    p.wait_stderr("created slot", Duration::from_secs(60));
    writer.join().expect("writer thread");
    let end = db.sql("SET synchronous_commit = on; INSERT INTO done VALUES (1); SELECT pg_current_wal_insert_lsn()");
    db.wait_confirmed(&slot, &end, Duration::from_secs(60));
    p.signal("INT");
    let out = p.wait_exit(TIMEOUT);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(!out.stdout_unterminated);
    let events = out.json();
    assert!(
        out.stderr.contains("snapshot done: 5 tables"),
        "{}",
        out.stderr
    );

    // Every read first, all at one snapshot_lsn; every streamed change
    // from a transaction that committed after it, none twice.
    let reads = events.iter().take_while(|e| e["op"] == "read").count();
    assert!(
        events[reads..].iter().all(|e| e["op"] != "read"),
        "read events after streamed ones"
    );
    let points: BTreeSet<&str> = events[..reads]
        .iter()
        .map(|e| s(e, "snapshot_lsn"))
        .collect();
    assert_eq!(points.len(), 1, "{points:?}");
    let point = parse_lsn(points.first().unwrap());
    let mut seen = BTreeSet::new();
    for e in &events[reads..] {
        assert!(
            parse_lsn(s(e, "commit_lsn")) >= point,
            "a change from before the snapshot: {e}"
        );
        assert!(
            seen.insert((
                s(e, "commit_lsn").to_string(),
                s(e, "lsn").to_string(),
                e.to_string()
            )),
            "twice: {e}"
        );
    }
    let state = replay(&events);
    let new_read = events[..reads]
        .iter()
        .filter(|e| e["table"] == "big" && e["new"]["id"].as_i64() > Some(200_000))
        .count();
    let streamed = events.len() - reads;
    eprintln!("{plugin}: {reads} read events ({new_read} rows written before the slot), {streamed} streamed");
    assert!(
        new_read > 0 && streamed > 0,
        "the writes did not overlap the snapshot"
    );

    let expect = [
        ("big", "SELECT json_build_object('id', id, 'v', v, 't', t) FROM big"),
        (
            "acct",
            "SELECT json_build_object('region', region, 'id', id, 'balance', balance::text, 'note', note) FROM acct",
        ),
        ("full_t", "SELECT json_build_object('id', id, 'payload', payload) FROM full_t"),
        ("empty_t", "SELECT json_build_object('id', id) FROM empty_t"),
        ("done", "SELECT json_build_object('id', id) FROM done"),
    ];
    for (table, select) in expect {
        let got: BTreeSet<String> = state
            .get(table)
            .into_iter()
            .flatten()
            .map(|(_, row)| canon(row))
            .collect();
        let want = table_now(&db, select);
        assert_eq!(got.len(), want.len(), "{plugin}: rows of {table}");
        if got != want {
            let missing: Vec<_> = want.difference(&got).take(5).collect();
            let extra: Vec<_> = got.difference(&want).take(5).collect();
            panic!("{plugin}: {table} differs; missing {missing:?}, extra {extra:?}");
        }
    }
}

#[test]
fn concurrent_writes_replay_pgoutput() {
    concurrent_writes_replay("pgoutput");
}

#[test]
fn concurrent_writes_replay_wal2json() {
    if !Cluster::shared().wal2json_or_skip() {
        return;
    }
    concurrent_writes_replay("wal2json");
}

// ---------------------------------------------------------------------------
// The read events themselves
// ---------------------------------------------------------------------------

/// The part of a line after the fields that differ between a read and an
/// insert (`snapshot_lsn`; `lsn`, `xid`, `commit_lsn`, `commit_ts`).
fn tail(raw: &str) -> &str {
    let at = raw
        .find(",\"key\":")
        .or_else(|| raw.find(",\"new\":"))
        .unwrap_or_else(|| panic!("{raw}"));
    &raw[at..]
}

/// `read` events have exactly `op`, `schema`, `table`, `snapshot_lsn`,
/// `key` (absent without a key) and `new`, in that order; the key is the one
/// streamed changes carry (the identity index's columns in column order,
/// the primary key under FULL), and every value is written byte for byte as
/// in a streamed insert of the same row.
#[test]
fn read_events_match_streamed_inserts() {
    let db = Cluster::shared().new_db("snapread");
    // Versions: generated columns are PostgreSQL 12+ (none before: same
    // events); a primary key on a partitioned table is 11+ (on 10 each
    // partition has its own: same keys).
    let major = crate::harness::server_major();
    let adapt = |sql: &str| {
        let mut sql = sql.to_string();
        if major < 12 {
            sql = sql.replace("g int GENERATED ALWAYS AS (a * 2) STORED, ", "");
        }
        if major < 11 {
            sql = sql
                .replace(
                    "parted (id int PRIMARY KEY, v text)",
                    "parted (id int NOT NULL, v text)",
                )
                .replace(
                    "PARTITION OF parted FOR",
                    "PARTITION OF parted (PRIMARY KEY (id)) FOR",
                );
        }
        sql
    };
    db.sql(&adapt(
        "CREATE TABLE k_default (a int, b text, c jsonb, g int GENERATED ALWAYS AS (a * 2) STORED, PRIMARY KEY (b, a));
         CREATE TABLE k_full (a int, b int, c text, PRIMARY KEY (b, a));
         ALTER TABLE k_full REPLICA IDENTITY FULL;
         CREATE TABLE k_index (a int NOT NULL, b int NOT NULL, c text);
         CREATE UNIQUE INDEX k_index_u ON k_index (b, a);
         ALTER TABLE k_index REPLICA IDENTITY USING INDEX k_index_u;
         CREATE TABLE k_nothing (a int, c text);
         ALTER TABLE k_nothing REPLICA IDENTITY NOTHING;
         CREATE TABLE k_none (a int, c text);
         CREATE TABLE parted (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
         CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (100);
         CREATE TABLE parted_2 PARTITION OF parted FOR VALUES FROM (100) TO (200);
         CREATE TYPE mood AS ENUM ('ok', 'meh');
         CREATE DOMAIN posint AS int CHECK (VALUE > 0);
         CREATE TABLE vals (id int PRIMARY KEY, ts timestamptz, t timestamp, n numeric, f float8, r real, by bytea,
             arr text[], iarr int[], iv interval, tx text, d date, j json, m mood, p posint, bo boolean, u uuid);
         CREATE PUBLICATION p FOR ALL TABLES;",
    ));
    let rows = "
        INSERT INTO k_default VALUES (1, 'x', '{\"k\": [1, 2.50, null]}');
        INSERT INTO k_full VALUES (1, 2, 'full');
        INSERT INTO k_index VALUES (1, 2, 'index');
        INSERT INTO k_nothing VALUES (1, 'nothing');
        INSERT INTO k_none VALUES (1, 'none');
        INSERT INTO parted VALUES (1, 'one'), (150, 'one fifty');
        INSERT INTO vals VALUES (1, '2026-11-23 21:54:32.1234+02', '2026-01-02 03:04:05', 'NaN', 1.1, 'Infinity',
            '\\x00ff5c', ARRAY['a', NULL, 'q\"uote', 'back\\slash', 'tab\there'], '[0:1]={1,2}', '1 day 2 hours',
            E'line\\nbreak\\ttab \\\\ \u{e9} \\u2603', '2026-11-23', '{\"a\": 1.0}', 'meh', 7, true,
            'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'),
            (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '', NULL, NULL, NULL, NULL, NULL, NULL);";
    db.sql(rows);
    let slot = format!("{}_s", db.name);
    let out = snapshot_now(&db, &slot, "p");
    let reads = out.stdout_lines.clone();
    let read_events = out.json();
    assert_eq!(reads.len(), 9, "{reads:#?}");

    // The same rows again, through the stream.
    db.sql(&format!(
        "TRUNCATE k_default, k_full, k_index, k_nothing, k_none, parted, vals; {rows}"
    ));
    db.wait_flushed();
    let out = run(
        &args(
            &db,
            &slot,
            "pgoutput",
            &["--publication", "p", "--end-lsn", "now"],
        ),
        &[],
        TIMEOUT,
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let inserts: BTreeMap<String, String> = out
        .json()
        .iter()
        .zip(&out.stdout_lines)
        .filter(|(e, _)| e["op"] == "insert")
        .map(|(e, raw)| (format!("{}.{}", s(e, "table"), tail(raw)), raw.clone()))
        .collect();
    assert_eq!(inserts.len(), 9, "{inserts:#?}");

    let point = s(&read_events[0], "snapshot_lsn").to_string();
    for (raw, ev) in reads.iter().zip(&read_events) {
        let table = s(ev, "table");
        let head =
            format!("{{\"op\":\"read\",\"schema\":\"public\",\"table\":\"{table}\",\"snapshot_lsn\":\"{point}\",");
        assert!(raw.starts_with(&head), "{raw}");
        let keys: Vec<&str> = ev.as_object().unwrap().keys().map(String::as_str).collect();
        let want: BTreeSet<&str> = if matches!(table, "k_nothing" | "k_none") {
            ["op", "schema", "table", "snapshot_lsn", "new"].into()
        } else {
            ["op", "schema", "table", "snapshot_lsn", "key", "new"].into()
        };
        assert_eq!(keys.iter().copied().collect::<BTreeSet<_>>(), want, "{raw}");
        assert!(
            inserts.contains_key(&format!("{table}.{}", tail(raw))),
            "read event not as the streamed insert writes it:\n{raw}\ninserts:\n{:#?}",
            inserts.values().collect::<Vec<_>>()
        );
    }
    // Spot checks of the key order and of the values themselves.
    let by_table = |t: &str| {
        reads
            .iter()
            .find(|r| r.contains(&format!("\"table\":\"{t}\"")))
            .unwrap()
            .clone()
    };
    assert!(by_table("k_default")
        .contains(r#""key":{"a":1,"b":"x"},"new":{"a":1,"b":"x","c":{"k":[1,2.50,null]}}"#));
    assert!(
        by_table("k_full").contains(r#""key":{"b":2,"a":1}"#),
        "{}",
        by_table("k_full")
    );
    assert!(by_table("k_index").contains(r#""key":{"a":1,"b":2}"#));
    let v1 = reads
        .iter()
        .find(|r| r.contains(r#""key":{"id":1},"new":{"id":1,"ts""#))
        .unwrap();
    assert!(v1.contains(r#""ts":"2026-11-23T19:54:32.1234Z","t":"2026-01-02T03:04:05","n":"NaN","f":1.1,"r":"Infinity","by":"\\x00ff5c""#), "{v1}");
    assert!(v1.contains(r#""iarr":[1,2],"iv":"P1DT2H""#), "{v1}");
    assert!(v1.contains(r#""m":"meh","p":7,"bo":true"#), "{v1}");
    // The partitions, as the stream names them.
    assert!(reads
        .iter()
        .any(|r| r.contains(r#""table":"parted_2","snapshot_lsn""#)));
    db.sql(&format!(
        "SELECT pg_drop_replication_slot({})",
        quote_literal(&slot)
    ));
}

/// pgoutput's column lists and row filters (PostgreSQL 15+) shape the
/// snapshot as they shape the stream.
#[test]
fn publication_column_lists_and_row_filters() {
    let db = Cluster::shared().new_db("snapcols");
    if db.sql("SHOW server_version_num").parse::<u32>().unwrap() < 150000 {
        eprintln!("column lists and row filters need PostgreSQL 15");
        return;
    }
    db.sql(
        "CREATE TABLE cl (id int PRIMARY KEY, a int, secret text);
         INSERT INTO cl SELECT g, g, 's' FROM generate_series(1, 10) g;
         CREATE TABLE other (id int PRIMARY KEY);
         INSERT INTO other VALUES (1);
         CREATE PUBLICATION p1 FOR TABLE cl (id, a) WHERE (a > 5);
         CREATE PUBLICATION p2 FOR TABLE cl (id, a) WHERE (a = 1), other;",
    );
    let slot = format!("{}_s", db.name);
    let out = snapshot_now(&db, &slot, "p1,p2");
    let got: Vec<String> = out
        .json()
        .iter()
        .map(|e| format!("{} {}", s(e, "table"), e["new"]))
        .collect();
    let mut want: Vec<String> = [1, 6, 7, 8, 9, 10]
        .iter()
        .map(|i| format!("cl {{\"a\":{i},\"id\":{i}}}"))
        .collect();
    want.push("other {\"id\":1}".into());
    let mut got_sorted = got
        .iter()
        .map(|l| {
            let (t, v) = l.split_once(' ').unwrap();
            format!("{t} {}", canon(&serde_json::from_str(v).unwrap()))
        })
        .collect::<Vec<_>>();
    got_sorted.sort();
    want.sort();
    assert_eq!(got_sorted, want);
    db.sql(&format!(
        "SELECT pg_drop_replication_slot({})",
        quote_literal(&slot)
    ));
}

// ---------------------------------------------------------------------------
// Table filters on both paths
// ---------------------------------------------------------------------------

fn tables_of(lines: &[Value], op: &str) -> Vec<String> {
    let set: BTreeSet<String> = lines
        .iter()
        .filter(|e| e["op"] == op)
        .map(|e| format!("{}.{}", s(e, "schema"), s(e, "table")))
        .collect();
    set.into_iter().collect()
}

/// `--table` / `--exclude-table` select the snapshot's tables and the
/// stream's, with either plugin (wal2json: with and without a publication;
/// the patterns are also pushed down to it).
#[test]
fn filters_apply_to_snapshot_and_stream() {
    let db = Cluster::shared().new_db("snapfilt");
    db.sql(
        "CREATE SCHEMA shop;
         CREATE TABLE public.orders (id int PRIMARY KEY);
         CREATE TABLE public.orders_tmp (id int PRIMARY KEY);
         CREATE TABLE public.users (id int PRIMARY KEY);
         CREATE TABLE shop.orders (id int PRIMARY KEY);
         CREATE TABLE shop.lines (id int PRIMARY KEY);
         CREATE PUBLICATION p FOR ALL TABLES;
         CREATE PUBLICATION p_shop FOR TABLE shop.orders, shop.lines, public.users;
         INSERT INTO public.orders VALUES (1); INSERT INTO public.orders_tmp VALUES (1);
         INSERT INTO public.users VALUES (1); INSERT INTO shop.orders VALUES (1); INSERT INTO shop.lines VALUES (1);",
    );
    let cases: [(&str, &str, &[&str], &[&str]); 5] = [
        (
            "po",
            "pgoutput",
            &[
                "--publication",
                "p",
                "--table",
                "*.ord*",
                "--exclude-table",
                "public.*_tmp",
            ],
            &["public.orders", "shop.orders"],
        ),
        (
            "pi",
            "pgoutput",
            &[
                "--publication",
                "p",
                "--exclude-table",
                "*.orders*",
                "--pool-size",
                "1",
            ],
            &["public.users", "shop.lines"],
        ),
        (
            "wa",
            "wal2json",
            &["--table", "*.ord*", "--exclude-table", "public.*_tmp"],
            &["public.orders", "shop.orders"],
        ),
        (
            "wx",
            "wal2json",
            &["--table", "shop.*", "--exclude-table", "*.lines"],
            &["shop.orders"],
        ),
        (
            "wp",
            "wal2json",
            &["--publication", "p_shop", "--exclude-table", "shop.lines"],
            &["public.users", "shop.orders"],
        ),
    ];
    // The wal2json cases need wal2json (only the machine's server has it in
    // `make test-matrix`).
    let wal2json = Cluster::shared().wal2json_or_skip();
    for (n, (suffix, plugin, filters, want)) in cases.iter().enumerate() {
        if *plugin == "wal2json" && !wal2json {
            continue;
        }
        let slot = format!("{}_{suffix}", db.name);
        let snap = run(
            &args(
                &db,
                &slot,
                plugin,
                &[&["--snapshot", "--end-lsn", "now"], *filters].concat(),
            ),
            &[],
            TIMEOUT,
        );
        assert_eq!(snap.code, Some(0), "{suffix}: {}", snap.stderr);
        assert_eq!(tables_of(&snap.json(), "read"), *want, "{suffix}: snapshot");
        let id = n + 10;
        db.sql(&format!(
            "INSERT INTO public.orders VALUES ({id}); INSERT INTO public.orders_tmp VALUES ({id});
             INSERT INTO public.users VALUES ({id}); INSERT INTO shop.orders VALUES ({id}); INSERT INTO shop.lines VALUES ({id});"
        ));
        db.wait_flushed();
        let stream = run(
            &args(
                &db,
                &slot,
                plugin,
                &[&["--end-lsn", "now"], *filters].concat(),
            ),
            &[],
            TIMEOUT,
        );
        assert_eq!(stream.code, Some(0), "{suffix}: {}", stream.stderr);
        assert_eq!(
            tables_of(&stream.json(), "insert"),
            *want,
            "{suffix}: stream"
        );
        assert!(
            stream.json().iter().all(|e| e["op"] != "read"),
            "{suffix}: no snapshot without --snapshot"
        );
    }
}

// ---------------------------------------------------------------------------
// Refusals and interruptions
// ---------------------------------------------------------------------------

/// `--snapshot` needs a slot that this run creates: on an existing slot it
/// is a usage error that says why and what to do.
#[test]
fn snapshot_on_an_existing_slot_is_a_usage_error() {
    let db = Cluster::shared().new_db("snapexist");
    db.sql("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1); CREATE PUBLICATION p FOR ALL TABLES");
    let slot = format!("{}_s", db.name);
    let base = args(
        &db,
        &slot,
        "pgoutput",
        &["--publication", "p", "--end-lsn", "now"],
    );
    assert_eq!(run(&base, &[], TIMEOUT).code, Some(0));
    let out = run(
        &[base.clone(), vec_of(&["--snapshot"])].concat(),
        &[],
        TIMEOUT,
    );
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("replication slot \"{slot}\" already exists")),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("--drop-slot"), "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(out.stdout_lines.is_empty());
    db.sql(&format!(
        "SELECT pg_drop_replication_slot({})",
        quote_literal(&slot)
    ));
}

/// Starts `--snapshot` with an output nobody reads, so that it stays in the
/// copy (backpressure); returns once the copy has started.
fn stuck_snapshot(db: &TestDb, slot: &str) -> std::process::Child {
    let mut cmd = command(
        &args(
            db,
            slot,
            "pgoutput",
            &["--publication", "p", "--snapshot", "-v"],
        ),
        &[],
    );
    let log = std::env::temp_dir().join(format!("{slot}.stderr"));
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(fs::File::create(&log).unwrap());
    let child = cmd.spawn().expect("spawn pgstream");
    // Until CREATE_REPLICATION_SLOT returns, the slot is only ephemeral: a
    // stop then leaves no slot (and a marker that the next run drops).
    wait_until("the copy to start", TIMEOUT, || {
        fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("snapshot: copying")
            .then_some(())
    });
    assert_eq!(slot_type(db, slot).as_deref(), Some("logical"));
    assert_eq!(slot_type(db, &marker(slot)).as_deref(), Some("physical"));
    // Let the output pipe fill up: the copy is then waiting on it.
    thread::sleep(Duration::from_millis(300));
    child
}

/// An interrupted snapshot is never skipped: after a stop (SIGINT, exit 0
/// with a warning) or a `kill -9` during the copy, every later run exits 2
/// saying to drop the slot; `--drop-slot` drops the slot and the marker,
/// and the next `--snapshot` starts over. A marker left without its slot is
/// cleaned up.
#[test]
fn interrupted_snapshot_is_never_skipped() {
    let db = Cluster::shared().new_db("snapkill");
    db.sql(
        "CREATE TABLE big (id int PRIMARY KEY, t text);
         INSERT INTO big SELECT g, repeat('x', 100) FROM generate_series(1, 50000) g;
         CREATE PUBLICATION p FOR ALL TABLES;",
    );
    let slot = format!("{}_s", db.name);
    let plain = args(
        &db,
        &slot,
        "pgoutput",
        &["--publication", "p", "--end-lsn", "now"],
    );
    let refused = |what: &str| {
        for extra in [&[][..], &["--snapshot"][..]] {
            let out = run(&[plain.clone(), vec_of(extra)].concat(), &[], TIMEOUT);
            assert_eq!(out.code, Some(2), "{what} {extra:?}: {}", out.stderr);
            assert!(
                out.stderr.contains(&format!(
                    "the initial snapshot of replication slot \"{slot}\" was interrupted"
                )) && out.stderr.contains("--drop-slot"),
                "{what}: {}",
                out.stderr
            );
            assert!(out.stdout_lines.is_empty());
        }
    };
    let drop_slot = || {
        let out = run(
            &[db.conn_args(), vec_of(&["--slot", &slot, "--drop-slot"])].concat(),
            &[],
            TIMEOUT,
        );
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        assert_eq!(slot_type(&db, &slot), None);
        assert_eq!(
            slot_type(&db, &marker(&slot)),
            None,
            "--drop-slot leaves the marker"
        );
    };

    // A stop during the copy: exit 0 at once, with a warning.
    let mut child = stuck_snapshot(&db, &slot);
    let started = Instant::now();
    let st = std::process::Command::new("kill")
        .args(["-s", "INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no exit after SIGINT"
        );
        thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(0));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let log = fs::read_to_string(std::env::temp_dir().join(format!("{slot}.stderr"))).unwrap();
    assert!(log.contains("did not finish"), "{log}");
    refused("after SIGINT");
    drop_slot();

    // kill -9 during the copy.
    let mut child = stuck_snapshot(&db, &slot);
    child.kill().unwrap();
    child.wait().unwrap();
    refused("after kill -9");
    drop_slot();

    // A marker without its slot (a crash between the two creations).
    db.sql(&format!(
        "SELECT pg_create_physical_replication_slot({}, false, false)",
        quote_literal(&marker(&slot))
    ));
    let out = run(
        &[plain.clone(), vec_of(&["--snapshot"])].concat(),
        &[],
        Duration::from_secs(60),
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        json_lines(&out.stdout_lines)
            .iter()
            .filter(|e| e["op"] == "read")
            .count(),
        50000
    );
    assert_eq!(slot_type(&db, &marker(&slot)), None);
    assert_eq!(
        run(&plain, &[], TIMEOUT).code,
        Some(0),
        "a finished snapshot is not refused"
    );
    let _ = fs::remove_file(std::env::temp_dir().join(format!("{slot}.stderr")));
    db.sql(&format!(
        "SELECT pg_drop_replication_slot({})",
        quote_literal(&slot)
    ));
}

/// A big table is copied in ctid ranges over the pool, inside the one
/// exported snapshot: every row exactly once, as in the table.
#[test]
fn big_table_in_parallel_ranges_comes_out_exactly_once() {
    let db = Cluster::shared().new_db("snap_big");
    db.sql(
        "CREATE TABLE big (id int PRIMARY KEY, v int);
         INSERT INTO big SELECT g, g % 1000 FROM generate_series(1, 1000000) g;
         CREATE PUBLICATION p FOR TABLE big;",
    );
    let slot = format!("{}_s", db.name);
    let flags = [
        "--publication",
        "p",
        "--snapshot",
        "--pool-size",
        "4",
        "--end-lsn",
        "now",
    ];
    let out = run(
        &args(&db, &slot, "pgoutput", &flags),
        &[],
        Duration::from_secs(300),
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    if crate::harness::server_major() >= 14 {
        assert!(
            out.stderr.contains("copying public.big in 8 ranges"),
            "{}",
            out.stderr
        );
    }
    // A million lines: read with string searches, not a JSON parser.
    let number = |line: &str, after: &str| -> i64 {
        let at = line
            .find(after)
            .unwrap_or_else(|| panic!("no {after} in {line}"))
            + after.len();
        let digits: String = line[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().expect("a number")
    };
    let mut ids = Vec::with_capacity(1_000_000);
    let mut sum = 0i64;
    for line in &out.stdout_lines {
        assert!(
            line.starts_with(r#"{"op":"read","schema":"public","table":"big""#),
            "{line}"
        );
        ids.push(number(line, r#""new":{"id":"#));
        sum += number(line, r#","v":"#);
    }
    ids.sort_unstable();
    assert_eq!(ids.len(), 1_000_000);
    assert!(
        ids.iter().copied().eq(1..=1_000_000),
        "each row exactly once"
    );
    assert_eq!(sum.to_string(), db.sql("SELECT sum(v) FROM big"));
}
