//! The library's two examples (docs/library.md), run as black boxes against
//! the test server: `examples/log_changes.rs` prints each row change,
//! `examples/mirror.rs` keeps `pgstream_mirror` in step with the source
//! tables, across a clean stop and a `kill -9`.
//!
//! `cargo test` builds the examples next to the binary under test
//! ([`example_bin`](crate::harness::example_bin)); a missing one fails the
//! test.

use crate::harness::{
    format_lsn, parse_lsn, wait_equal, wait_until, Cluster, Output, Proc, TestDb, TIMEOUT,
};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// The publication every test here streams.
const PUBLICATION: &str = "pub";

/// Creates a pgoutput slot named after `slot` that the tests only peek at,
/// for the end LSN of each transaction ([`TestDb::commit_ends`]). Create it
/// before the changes.
fn create_aux_slot(db: &TestDb, slot: &str) {
    db.sql(&format!(
        "SELECT pg_create_logical_replication_slot('{}', 'pgoutput')",
        aux(slot)
    ));
}

fn aux(slot: &str) -> String {
    format!("{slot}_aux")
}

/// Waits until the example `p` streams from `slot` (it creates the slot
/// first): a change committed from then on reaches it. Panics with its
/// output if it exits first.
fn wait_streaming(db: &TestDb, slot: &str, p: &mut Proc) {
    wait_until(
        &format!("the example to stream from slot {slot}"),
        TIMEOUT,
        || {
            if p.try_wait().is_some() {
                let out = p.wait_exit(TIMEOUT);
                panic!("the example exited before streaming from {slot}\n{out:#?}");
            }
            db.walsender_streaming(slot).then_some(())
        },
    );
}

/// SIGINT: the example must stop cleanly, exit 0.
fn stop(p: &mut Proc) -> Output {
    p.signal("INT");
    let out = p.wait_exit(TIMEOUT);
    assert_eq!(out.code, Some(0), "SIGINT is a clean stop\n{out:#?}");
    out
}

/// After a clean stop: the slot is at or past the end of the last
/// transaction committed, so the handler path acknowledged everything and
/// the next run starts after it.
fn assert_acknowledged_all(db: &TestDb, slot: &str) {
    let ends = db.commit_ends(&aux(slot), PUBLICATION);
    let last = *ends
        .last()
        .expect("test premise: transactions were streamed");
    db.wait_slot_inactive(slot, TIMEOUT);
    let confirmed = parse_lsn(&db.confirmed_flush_lsn(slot).expect("slot position"));
    assert!(
        confirmed >= last,
        "after a clean stop the slot ({}) is not past the end of the last transaction ({}): \
         the next run repeats it",
        format_lsn(confirmed),
        format_lsn(last)
    );
}

// ---------------------------------------------------------------------------
// log_changes
// ---------------------------------------------------------------------------

/// Splits a `schema.table data` line; `data` must be JSON.
fn table_and_data(line: &str) -> (String, serde_json::Value) {
    let (table, data) = line
        .split_once(' ')
        .unwrap_or_else(|| panic!("not `table data`: {line:?}"));
    let data =
        serde_json::from_str(data).unwrap_or_else(|e| panic!("data is not JSON ({e}): {line:?}"));
    (table.to_string(), data)
}

#[test]
fn log_changes_prints_table_and_row() {
    let db = Cluster::shared().new_db("lib_log");
    let slot = "lib_log_changes";
    db.sql(
        "CREATE SCHEMA shop;
         CREATE TABLE shop.items (id int PRIMARY KEY, name text, qty int, price numeric(6,2));
         CREATE TABLE shop.unpublished (id int PRIMARY KEY);
         CREATE PUBLICATION pub FOR TABLE shop.items;",
    );
    create_aux_slot(&db, slot);

    // A URI; the mirror tests use a key=value conninfo.
    let mut p = Proc::spawn_example(
        "log_changes",
        &[db.tcp_uri("postgres"), slot.into(), PUBLICATION.into()],
    );
    wait_streaming(&db, slot, &mut p);
    db.sql_sync(
        "INSERT INTO shop.items VALUES (1, 'apple', 3, 2.50);
         INSERT INTO shop.unpublished VALUES (1);
         UPDATE shop.items SET name = 'green apple', qty = 4 WHERE id = 1;
         DELETE FROM shop.items WHERE id = 1;",
    );
    p.wait_lines(3, TIMEOUT);
    let out = stop(&mut p);

    let seen: Vec<(String, serde_json::Value)> =
        out.stdout_lines.iter().map(|l| table_and_data(l)).collect();
    // Typed as the output types them: int4 a number, text a string,
    // numeric an exact string. The update keeps the key, so it has no old
    // row; the delete's old row is the key.
    let want = vec![
        (
            "shop.items".to_string(),
            serde_json::json!({
                "op": "insert",
                "old": null,
                "new": {"id": 1, "name": "apple", "qty": 3, "price": "2.50"},
            }),
        ),
        (
            "shop.items".to_string(),
            serde_json::json!({
                "op": "update",
                "old": null,
                "new": {"id": 1, "name": "green apple", "qty": 4, "price": "2.50"},
            }),
        ),
        (
            "shop.items".to_string(),
            serde_json::json!({"op": "delete", "old": {"id": 1}, "new": null}),
        ),
    ];
    assert_eq!(seen, want, "{out:#?}");
    assert_acknowledged_all(&db, slot);
}

// ---------------------------------------------------------------------------
// mirror
// ---------------------------------------------------------------------------

/// A source database with keyed tables `accounts` (int key), `codes` (text
/// key, changed by updates) and `scratch` (truncated), a keyless `nokey`
/// (the mirror skips it), all published; and a separate target database.
fn mirror_dbs(slot: &str) -> (TestDb, TestDb) {
    let c = Cluster::shared();
    let src = c.new_db("lib_mirror_src");
    let dst = c.new_db("lib_mirror_dst");
    src.sql(
        "CREATE TABLE accounts (id int PRIMARY KEY, name text, balance int);
         CREATE TABLE codes (code text PRIMARY KEY, label text);
         CREATE TABLE scratch (id int PRIMARY KEY, v text);
         CREATE TABLE nokey (v text);
         CREATE PUBLICATION pub FOR TABLE accounts, codes, scratch, nokey;",
    );
    create_aux_slot(&src, slot);
    (src, dst)
}

/// Starts the mirror example from `src` into `dst` on `slot` and waits
/// until it streams.
fn start_mirror(src: &TestDb, dst: &TestDb, slot: &str) -> Proc {
    let mut p = Proc::spawn_example(
        "mirror",
        &[
            src.conninfo(),
            slot.into(),
            PUBLICATION.into(),
            dst.conninfo(),
        ],
    );
    wait_streaming(src, slot, &mut p);
    p
}

/// `tbl key row` lines, ordered, with the JSON as jsonb prints it.
const MIRROR_LINE: &str = "tbl || ' ' || key::text || ' ' || row::text";

/// What `pgstream_mirror` must hold for the source tables as they are now.
fn source_rows(src: &TestDb) -> Vec<String> {
    let out = src.sql(&format!(
        "SELECT {MIRROR_LINE} FROM (
           SELECT 'public.accounts' AS tbl, jsonb_build_object('id', id) AS key,
                  to_jsonb(a) AS row FROM accounts a
           UNION ALL
           SELECT 'public.codes', jsonb_build_object('code', code), to_jsonb(c) FROM codes c
           UNION ALL
           SELECT 'public.scratch', jsonb_build_object('id', id), to_jsonb(s) FROM scratch s
         ) m ORDER BY tbl, key::text"
    ));
    out.lines().map(str::to_string).collect()
}

/// What `pgstream_mirror` holds; an error (no table yet) as one line.
fn mirror_rows(dst: &TestDb) -> Vec<String> {
    match dst.try_sql(&format!(
        "SELECT {MIRROR_LINE} FROM pgstream_mirror ORDER BY tbl, key::text"
    )) {
        Ok(out) => out.lines().map(str::to_string).collect(),
        Err(e) => vec![format!("error: {e}")],
    }
}

/// Waits until the mirror equals the source tables; returns what they hold.
fn wait_mirrored(src: &TestDb, dst: &TestDb, what: &str) -> Vec<String> {
    let want = source_rows(src);
    wait_equal(
        &format!("pgstream_mirror to hold the source tables {what}"),
        TIMEOUT,
        &want,
        || mirror_rows(dst),
    );
    want
}

/// Inserts, updates, deletes, a multi-statement transaction and a keyless
/// row.
const FIRST_CHANGES: &str = "
    INSERT INTO accounts VALUES (1, 'ann', 100), (2, 'bob', 50), (3, 'cy', 0);
    UPDATE accounts SET balance = balance + 25 WHERE id = 2;
    DELETE FROM accounts WHERE id = 3;
    INSERT INTO codes VALUES ('a', 'alpha'), ('b', 'beta');
    INSERT INTO scratch VALUES (1, 'x'), (2, 'y');
    INSERT INTO nokey VALUES ('not mirrored: no key');
    BEGIN;
    INSERT INTO accounts VALUES (4, 'dee', 7);
    UPDATE codes SET label = 'BETA' WHERE code = 'b';
    DELETE FROM accounts WHERE id = 1;
    COMMIT;";

/// Changes to rows the mirror already holds: an update that changes the
/// key, a truncate, an insert after it, a plain update.
fn second_changes() -> String {
    // pgoutput sends no Truncate before PostgreSQL 11
    // (docs/compatibility.md): there, empty the table row by row.
    let empty = if crate::harness::server_major() >= 11 {
        "TRUNCATE scratch"
    } else {
        "DELETE FROM scratch"
    };
    format!(
        "UPDATE codes SET code = 'z', label = 'zulu' WHERE code = 'a';
         {empty};
         INSERT INTO scratch VALUES (3, 'after the truncate');
         UPDATE accounts SET name = 'bobby' WHERE id = 2;"
    )
}

#[test]
fn mirror_keeps_a_copy_in_step() {
    let slot = "lib_mirror_step";
    let (src, dst) = mirror_dbs(slot);
    let mut p = start_mirror(&src, &dst, slot);

    src.sql_sync(FIRST_CHANGES);
    let first = wait_mirrored(&src, &dst, "after the first changes");
    // Test premise: the rows the second changes remove are there.
    for row in [
        r#"public.codes {"code": "a"}"#,
        r#"public.scratch {"id": 1}"#,
    ] {
        assert!(
            first.iter().any(|l| l.starts_with(row)),
            "{row} missing: {first:#?}"
        );
    }

    src.sql_sync(&second_changes());
    let second = wait_mirrored(&src, &dst, "after the key change and the truncate");
    assert!(
        second
            .iter()
            .any(|l| l.starts_with(r#"public.codes {"code": "z"}"#)),
        "test premise: the key change is in the source: {second:#?}"
    );

    stop(&mut p);
    assert_acknowledged_all(&src, slot);
    assert_eq!(mirror_rows(&dst), second, "the stop changed the mirror");
}

#[test]
fn mirror_resumes_after_kill_without_loss() {
    let slot = "lib_mirror_kill";
    let (src, dst) = mirror_dbs(slot);
    let mut p = start_mirror(&src, &dst, slot);

    src.sql_sync(FIRST_CHANGES);
    wait_mirrored(&src, &dst, "before the kill");
    // Forty one-row transactions racing the kill: it may land while some
    // are mirrored but not yet acknowledged, or mid target transaction.
    let racing: String = (100..140)
        .map(|i| format!("INSERT INTO accounts VALUES ({i}, 'racing {i}', {i});\n"))
        .collect();
    src.sql_sync(&racing);
    p.signal("KILL");
    let out = p.wait_exit(TIMEOUT);
    assert_eq!(out.signal, Some(9), "{out:#?}");
    src.wait_slot_inactive(slot, TIMEOUT);

    // While it is down: every kind of change, to rows it may or may not
    // have mirrored.
    src.sql_sync(&second_changes());
    src.sql_sync(
        "UPDATE accounts SET balance = -balance WHERE id BETWEEN 100 AND 139;
         DELETE FROM accounts WHERE id % 3 = 0 AND id >= 100;
         INSERT INTO accounts VALUES (200, 'while down', 0);",
    );

    let mut p = start_mirror(&src, &dst, slot);
    let want = wait_mirrored(&src, &dst, "after the restart");
    assert!(
        want.iter()
            .any(|l| l.starts_with(r#"public.accounts {"id": 200}"#)),
        "test premise: {want:#?}"
    );
    stop(&mut p);
    assert_acknowledged_all(&src, slot);
}
