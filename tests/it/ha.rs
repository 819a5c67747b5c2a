//! High availability (SPEC §7): libpq's host lists and
//! `target_session_attrs`, following a failover with a failover slot
//! (PostgreSQL 17+), decoding on a hot standby (16+), and a failover to a
//! server without the slot (exit 3, SPEC §6). Standbys are real: a cold
//! copy of a stopped primary ([`Cluster::make_standby`]), promoted with
//! `pg_ctl promote` while the old primary is stopped `-m immediate`.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{
    free_port, ha_bin, quote_literal, run, server_major, vec_of, version_skip, wait_until, Cluster,
    Proc, TestDb, TIMEOUT,
};

fn setup(db: &TestDb) {
    db.sql(
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         CREATE PUBLICATION p FOR TABLE t;",
    );
}

/// `-d` for a host list over TCP: `ports` in order, then `extra` settings.
fn host_list(db: &TestDb, ports: &[u16], extra: &str) -> Vec<String> {
    let hosts = vec!["127.0.0.1"; ports.len()].join(",");
    let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
    let conninfo = format!(
        "host={hosts} port={} dbname={} user=postgres connect_timeout=5 {extra}",
        ports.join(","),
        db.name
    );
    vec_of(&["-d", &conninfo])
}

fn ids(lines: &[Value]) -> Vec<i64> {
    lines
        .iter()
        .filter(|l| l["op"] == "insert")
        .map(|l| l["new"]["id"].as_i64().expect("id"))
        .collect()
}

fn stream_ids(p: &mut Proc) -> Vec<i64> {
    let lines: Vec<Value> = p
        .lines()
        .iter()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    ids(&lines)
}

/// Polls until each id of `want` has come out of `p`; `seen` is then every
/// inserted id out so far.
fn wait_ids(p: &mut Proc, seen: &mut Vec<i64>, want: &BTreeSet<i64>) {
    wait_until("the rows to come out", Duration::from_secs(60), || {
        *seen = stream_ids(p);
        let got: BTreeSet<i64> = seen.iter().copied().collect();
        want.is_subset(&got).then_some(())
    });
}

fn table_ids(db: &TestDb) -> BTreeSet<i64> {
    db.sql("SELECT id FROM t ORDER BY id")
        .lines()
        .map(|l| l.parse().expect("id"))
        .collect()
}

/// Each pgstream invocation form of the same host list (key/value, URI,
/// environment) passes over a host that refuses and streams from the next,
/// and says which one it took.
#[test]
fn host_list_passes_over_a_refusing_host_in_every_form() {
    let db = Cluster::shared().new_db("ha_list");
    setup(&db);
    let live = db.server().port;
    let dead = free_port();
    let slot = format!("{}_s", db.name);
    db.sql(&format!(
        "SELECT pg_create_logical_replication_slot({}, 'pgoutput')",
        quote_literal(&slot)
    ));
    let uri = format!(
        "postgresql://127.0.0.1:{dead},127.0.0.1:{live}/{}?user=postgres",
        db.name
    );
    let both = "127.0.0.1,127.0.0.1".to_string();
    let ports = format!("{dead},{live}");
    type Env<'a> = Vec<(&'a str, &'a str)>;
    let forms: Vec<(Vec<String>, Env<'_>)> = vec![
        (host_list(&db, &[dead, live], ""), vec![]),
        (vec_of(&["-d", &uri]), vec![]),
        (
            vec_of(&["-d", &db.name, "-U", "postgres"]),
            vec![("PGHOST", both.as_str()), ("PGPORT", ports.as_str())],
        ),
    ];
    for (n, (conn, env)) in (1..).zip(forms) {
        db.insert_each(n..=n);
        let mut args = conn;
        args.extend(vec_of(&[
            "--slot",
            &slot,
            "--publication",
            "p",
            "--end-lsn",
            "now",
        ]));
        let out = run(&args, &env, TIMEOUT);
        assert_eq!(out.code, Some(0), "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains(&format!(
                "using 127.0.0.1:{live} (primary, target_session_attrs=any)"
            )),
            "{args:?}: {}",
            out.stderr
        );
        assert_eq!(ids(&out.json()), vec![n], "{args:?}: {out:?}");
    }
}

/// When no server of the list qualifies, pgstream keeps trying (each
/// reconnect walks the list again); with `--no-loop` it exits 1 with one
/// line naming each host and why it was passed over.
#[test]
fn no_qualifying_host_is_retried_and_no_loop_exits_1_naming_each_host() {
    let db = Cluster::shared().new_db("ha_none");
    setup(&db);
    let live = db.server().port;
    let dead = free_port();
    let slot = format!("{}_s", db.name);
    let mut args = host_list(&db, &[dead, live], "target_session_attrs=standby");
    args.extend(vec_of(&["--slot", &slot, "--publication", "p"]));

    let mut no_loop = args.clone();
    no_loop.push("--no-loop".into());
    let out = run(&no_loop, &[], TIMEOUT);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let last = out
        .stderr
        .trim()
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    assert!(
        last.contains("target_session_attrs=standby")
            && last.contains(&format!("127.0.0.1:{dead}"))
            && last.contains(&format!("127.0.0.1:{live}: is a primary, not standby")),
        "{}",
        out.stderr
    );
    assert!(!db.slot_exists(&slot), "a slot was created on a primary");

    // One host with attributes is checked too (PGTARGETSESSIONATTRS).
    let mut single = db.tcp_conn_args();
    single.extend(vec_of(&[
        "--slot",
        &slot,
        "--publication",
        "p",
        "--no-loop",
    ]));
    let out = run(&single, &[("PGTARGETSESSIONATTRS", "read-only")], TIMEOUT);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("127.0.0.1:{live}: is a primary, not read-only")),
        "{}",
        out.stderr
    );

    let mut p = Proc::spawn(&args, &[]);
    wait_until("a second walk over the list", TIMEOUT, || {
        (p.stderr().matches("is a primary, not standby").count() >= 2).then_some(())
    });
    assert!(p.try_wait().is_none(), "gave up: {}", p.stderr());
    p.signal("INT");
    let out = p.wait_exit(TIMEOUT);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
}

/// A primary and a hot standby of it on PostgreSQL `min_major`+; the
/// standby synchronises failover slots (17+), and the primary waits for it
/// before sending logical changes (`synchronized_standby_slots`).
fn primary_and_standby(min_major: u32, what: &str) -> Option<(Cluster, Cluster)> {
    let bin = ha_bin(min_major, what)?;
    let primary = Cluster::start_with_bin(&bin, &[]);
    let sync = primary.major_version() >= 17;
    let standby = primary.make_standby(
        "sb",
        if sync {
            &["sync_replication_slots = on"]
        } else {
            &[]
        },
    );
    if sync {
        primary.sql(
            "postgres",
            "ALTER SYSTEM SET synchronized_standby_slots = 'sb'; SELECT pg_reload_conf();",
        );
    }
    Some((primary, standby))
}

/// Whether `slot` on `standby` is a persistent synchronised copy with a
/// position (failover-ready). Asked in `postgres`: the test's database may
/// not have been replayed there yet.
fn is_synced(standby: &Cluster, slot: &str) -> bool {
    standby.sql(
        "postgres",
        &format!(
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name = {} AND synced
         AND NOT temporary AND confirmed_flush_lsn IS NOT NULL",
            quote_literal(slot)
        ),
    ) == "1"
}

/// Keeps inserting rows, one transaction each, from `first` on, into the
/// server of `db` until stopped; returns the join handle.
fn writer(db: &TestDb, first: i64, stop: Arc<AtomicBool>) -> thread::JoinHandle<()> {
    let (server, name) = (db.server().clone(), db.name.clone());
    thread::spawn(move || {
        let mut id = first;
        while !stop.load(Ordering::Relaxed) {
            // The server goes away under it: that ends the load.
            if server
                .try_sql(&name, &format!("INSERT INTO t VALUES ({id}, 'row {id}')"))
                .is_err()
            {
                return;
            }
            id += 1;
        }
    })
}

/// The point of failover slots: pgstream streams from the primary under
/// load, the primary dies, the standby (which synchronised the slot) is
/// promoted, and pgstream, walking its host list, resumes there from its
/// own acknowledged position. Every row of the new primary comes out, in
/// order, nothing from before the failover is skipped, and the run stops
/// cleanly.
#[test]
fn failover_slot_follows_a_promotion_and_nothing_is_lost() {
    let Some((primary, standby)) = primary_and_standby(17, "failover slots") else {
        return;
    };
    let db = primary.new_db("ha_failover");
    setup(&db);
    let slot = format!("{}_s", db.name);
    let mut args = host_list(
        &db,
        &[primary.port, standby.port],
        "target_session_attrs=read-write",
    );
    args.extend(vec_of(&[
        "--slot",
        &slot,
        "--publication",
        "p",
        "--failover",
        "--status-interval",
        "1",
    ]));
    let mut p = Proc::spawn(&args, &[]);
    p.wait_stderr("created slot", TIMEOUT);
    let sdb = db.on(&standby);

    let stop = Arc::new(AtomicBool::new(false));
    let load = writer(&db, 1, stop.clone());
    let mut seen = Vec::new();
    // The standby has the slot, synchronised (and so failover-ready) at a
    // position past some of the output.
    let lit = quote_literal(&slot);
    wait_until(
        "the slot to be synchronised",
        Duration::from_secs(90),
        || {
            seen = stream_ids(&mut p);
            (is_synced(&standby, &slot) && seen.len() >= 20).then_some(())
        },
    );
    assert_eq!(
        primary.sql(
            &db.name,
            &format!("SELECT failover FROM pg_replication_slots WHERE slot_name = {lit}")
        ),
        "t"
    );

    primary.stop("immediate");
    stop.store(true, Ordering::Relaxed);
    load.join().expect("writer");
    standby.promote();
    let after: i64 = 1_000_000;
    sdb.sql(&format!(
        "INSERT INTO t SELECT g, 'after' FROM generate_series({after}, {after} + 9) g"
    ));
    let want = table_ids(&sdb);
    wait_ids(&mut p, &mut seen, &want);
    p.wait_stderr(
        &format!("using 127.0.0.1:{} (primary", standby.port),
        TIMEOUT,
    );

    // Nothing the standby has is missing, nothing it lacks came out (the
    // primary sent nothing the standby had not confirmed), and the first
    // appearance of each row is in commit order.
    let got: BTreeSet<i64> = seen.iter().copied().collect();
    assert_eq!(got, want, "output rows differ from the new primary's");
    let mut firsts = Vec::new();
    for id in &seen {
        if !firsts.contains(id) {
            firsts.push(*id);
        }
    }
    assert!(
        firsts.windows(2).all(|w| w[0] < w[1]),
        "out of order: {seen:?}"
    );

    // The slot is an ordinary, active slot on the new primary, and its
    // position moves past the rows written there.
    let end = sdb.current_wal_lsn();
    sdb.wait_confirmed(&slot, &end, TIMEOUT);
    assert!(sdb.slot_active(&slot));
    p.signal("INT");
    let out = p.wait_exit(TIMEOUT);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
}

/// A synchronised copy of a slot on a standby is never streamed from:
/// pgstream says why and waits; once the standby is promoted it streams.
#[test]
fn synced_slot_on_a_standby_waits_for_a_promotion() {
    let Some((primary, standby)) = primary_and_standby(17, "failover slots") else {
        return;
    };
    let db = primary.new_db("ha_synced");
    setup(&db);
    let slot = format!("{}_s", db.name);
    // A first run creates the failover slot on the primary and acknowledges
    // a row, so the standby's copy can become persistent.
    let mut first = db.stream_args(&slot, "p");
    first.push("--failover".into());
    let mut p = Proc::spawn(&first, &[]);
    p.wait_stderr("created slot", TIMEOUT);
    db.insert_each(1..=3);
    p.wait_lines(3, TIMEOUT);
    let sdb = db.on(&standby);
    wait_until(
        "the slot to be synchronised",
        Duration::from_secs(90),
        || {
            db.insert_each(4..=4);
            db.sql("DELETE FROM t WHERE id = 4");
            is_synced(&standby, &slot).then_some(())
        },
    );
    p.signal("INT");
    assert_eq!(p.wait_exit(TIMEOUT).code, Some(0));

    let mut args = sdb.tcp_conn_args();
    args.extend(vec_of(&["--slot", &slot, "--publication", "p"]));
    let mut q = Proc::spawn(&args, &[]);
    q.wait_stderr("is a copy synchronised from the primary", TIMEOUT);
    assert!(q.try_wait().is_none(), "gave up: {}", q.stderr());
    assert_eq!(
        sdb.sql("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'walsender'"),
        "0",
        "streamed from a synchronised copy"
    );

    primary.stop("immediate");
    standby.promote();
    sdb.insert_each(10..=10);
    // What the copy's position had not passed may come again first.
    let mut seen = Vec::new();
    wait_ids(&mut q, &mut seen, &BTreeSet::from([10]));
    q.signal("INT");
    assert_eq!(q.wait_exit(TIMEOUT).code, Some(0));
}

/// A failover to a standby that never had the slot (no slot
/// synchronisation): the slot is missing there, so changes may be lost —
/// exit 3, and no new slot on the new primary.
#[test]
fn failover_to_a_server_without_the_slot_exits_3() {
    if server_major() < 12 && version_skip("a standby made with standby.signal needs 12+") {
        return;
    }
    let primary = Cluster::start(&[]);
    let standby = primary.make_standby("sb", &[]);
    let db = primary.new_db("ha_noslot");
    setup(&db);
    let slot = format!("{}_s", db.name);
    let mut args = host_list(
        &db,
        &[primary.port, standby.port],
        "target_session_attrs=read-write",
    );
    args.extend(vec_of(&["--slot", &slot, "--publication", "p"]));
    let mut p = Proc::spawn(&args, &[]);
    p.wait_stderr("created slot", TIMEOUT);
    db.insert_each(1..=2);
    p.wait_lines(2, TIMEOUT);
    let sdb = db.on(&standby);
    standby.wait_replayed(&primary);

    primary.stop("immediate");
    standby.promote();
    let out = p.wait_exit(Duration::from_secs(60));
    assert_eq!(out.code, Some(3), "{}", out.stderr);
    let last = out.stderr.trim().lines().last().unwrap_or_default();
    assert!(
        last.contains(&format!("\"{slot}\"")) && last.contains("may be missing"),
        "{}",
        out.stderr
    );
    assert!(
        !sdb.slot_exists(&slot),
        "a new slot was created after the failover"
    );
}

/// Decoding on a hot standby (16+): `prefer-standby` takes the standby
/// over the primary listed first; the slot's creation there says what it
/// waits for (with the hint), and rows written on the primary come out
/// through the standby. `--end-lsn now` is the standby's replay position:
/// a second run with it ends at once with nothing. A promotion under the
/// running stream keeps it going.
#[test]
fn decoding_on_a_standby_through_prefer_standby_and_a_promotion() {
    let Some((primary, standby)) = primary_and_standby(16, "decoding on a standby") else {
        return;
    };
    let db = primary.new_db("ha_standby");
    setup(&db);
    db.insert_each(1..=1);
    let sdb = db.on(&standby);
    standby.wait_replayed(&primary);
    let slot = format!("{}_s", db.name);
    let mut args = host_list(
        &db,
        &[primary.port, standby.port],
        "target_session_attrs=prefer-standby",
    );
    args.extend(vec_of(&["--slot", &slot, "--publication", "p"]));

    // read-write with the standby listed first takes the primary.
    let mut rw = host_list(
        &db,
        &[standby.port, primary.port],
        "target_session_attrs=read-write",
    );
    rw.extend(vec_of(&[
        "--slot",
        &format!("{slot}_rw"),
        "--publication",
        "p",
        "--end-lsn",
        "now",
    ]));
    let out = run(&rw, &[], TIMEOUT);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "using 127.0.0.1:{} (primary, target_session_attrs=read-write)",
            primary.port
        )),
        "{}",
        out.stderr
    );

    let mut p = Proc::spawn(&args, &[]);
    p.wait_stderr("pg_log_standby_snapshot()", TIMEOUT);
    wait_until("the slot on the standby", TIMEOUT, || {
        primary.sql("postgres", "SELECT pg_log_standby_snapshot()");
        sdb.slot_active(&slot).then_some(())
    });
    assert!(
        p.stderr().contains(&format!(
            "using 127.0.0.1:{} (standby, target_session_attrs=prefer-standby)",
            standby.port
        )),
        "{}",
        p.stderr()
    );
    assert!(!db.slot_exists(&slot), "the slot went to the primary");
    db.insert_each(2..=3);
    let mut seen = Vec::new();
    wait_ids(&mut p, &mut seen, &BTreeSet::from([2, 3]));
    p.signal("INT");
    assert_eq!(p.wait_exit(TIMEOUT).code, Some(0));

    // --end-lsn now: the standby's replay position; rows written since the
    // first run come out, then the run ends; a second one has nothing.
    db.insert_each(4..=5);
    standby.wait_replayed(&primary);
    let mut once = args.clone();
    once.extend(vec_of(&["--end-lsn", "now"]));
    let out = run(&once, &[], TIMEOUT);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(ids(&out.json()), vec![4, 5], "{out:?}");
    let out = run(&once, &[], TIMEOUT);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(ids(&out.json()), Vec::<i64>::new(), "{out:?}");

    // --snapshot on the standby: the slot made there exports its snapshot,
    // and the copy reads the standby's rows as of the slot's start.
    let mut snap = sdb.tcp_conn_args();
    snap.extend(vec_of(&[
        "--slot",
        &format!("{slot}_snap"),
        "--publication",
        "p",
        "--snapshot",
        "--end-lsn",
        "now",
    ]));
    let mut s = Proc::spawn(&snap, &[]);
    wait_until("the snapshot on the standby", TIMEOUT, || {
        primary.sql("postgres", "SELECT pg_log_standby_snapshot()");
        s.try_wait().map(|_| ())
    });
    let out = s.wait_exit(TIMEOUT);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let reads: BTreeSet<i64> = out
        .json()
        .iter()
        .filter(|l| l["op"] == "read")
        .map(|l| l["new"]["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(reads, table_ids(&sdb), "{out:?}");

    // A promotion under the running stream: the standby's walsender ends,
    // pgstream reconnects to the same (now primary) server and goes on.
    let mut single = sdb.tcp_conn_args();
    single.extend(vec_of(&["--slot", &slot, "--publication", "p"]));
    let mut p = Proc::spawn(&single, &[]);
    wait_until("the stream on the standby", TIMEOUT, || {
        sdb.slot_active(&slot).then_some(())
    });
    db.insert_each(6..=6);
    let mut seen = Vec::new();
    wait_ids(&mut p, &mut seen, &BTreeSet::from([6]));
    primary.stop("immediate");
    standby.promote();
    sdb.insert_each(7..=8);
    wait_ids(&mut p, &mut seen, &BTreeSet::from([7, 8]));
    assert_eq!(seen, vec![6, 7, 8], "{}", p.stderr());
    assert!(p.try_wait().is_none(), "{}", p.stderr());
    p.signal("INT");
    assert_eq!(p.wait_exit(TIMEOUT).code, Some(0));
}
