//! Broker sinks (`--sink`, SPEC §8) against real brokers that the tests
//! start: `nats-server -js` and `redis-server` with AOF, each on a free
//! 127.0.0.1 port with its data in the test's own directory, and tansu (a
//! Kafka-protocol broker, `PGSTREAM_TEST_TANSU`, `make test-kafka`) with
//! its data in memory. Faults are real: the broker killed, stopped
//! (SIGSTOP) or not started yet.

#[cfg(feature = "kafka")]
mod kafka;

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use async_nats::jetstream;

use crate::metrics::{get, sample, scrape, spawn_metered};

#[cfg(feature = "kafka")]
use crate::harness::tansu_bin;
use crate::harness::{
    free_port, json_lines, parse_lsn, run, vec_of, wait_until, Cluster, Output, Proc, TestDb,
    TIMEOUT,
};

/// A broker process of the test; killed and its directory removed on drop.
struct Broker {
    kind: Kind,
    port: u16,
    dir: PathBuf,
    extra: Vec<String>,
    proc: Option<Proc>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Nats,
    Redis,
    #[cfg(feature = "kafka")]
    Kafka,
}

/// The tables of [`setup`]: each has its stream, subject or topic.
#[cfg(feature = "kafka")]
const TABLES: [&str; 2] = ["t", "u"];

impl Broker {
    /// A broker with `extra` arguments (credentials), not started yet.
    fn new(kind: Kind, extra: &[&str]) -> Broker {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("pgstream-it-broker-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("broker dir");
        Broker {
            kind,
            port,
            dir,
            extra: vec_of(extra),
            proc: None,
        }
    }

    fn started(kind: Kind, extra: &[&str]) -> Broker {
        let mut b = Broker::new(kind, extra);
        b.start();
        b
    }

    /// Starts the broker on its port and data directory (again, after a
    /// kill) and waits until it accepts connections.
    fn start(&mut self) {
        let port = self.port.to_string();
        let mut cmd = match self.kind {
            Kind::Nats => {
                let mut c = Command::new("nats-server");
                c.args(["-js", "-a", "127.0.0.1", "-p", &port, "-sd"])
                    .arg(self.dir.join("js"));
                c
            }
            Kind::Redis => {
                let mut c = Command::new("redis-server");
                c.args(["--port", &port, "--bind", "127.0.0.1", "--dir"])
                    .arg(&self.dir)
                    .args(["--appendonly", "yes", "--save", "", "--daemonize", "no"]);
                c
            }
            #[cfg(feature = "kafka")]
            Kind::Kafka => {
                let mut c = Command::new(tansu_bin().expect("PGSTREAM_TEST_TANSU"));
                let url = format!("tcp://127.0.0.1:{port}");
                c.args([
                    "broker",
                    "--listener-url",
                    &url,
                    "--advertised-listener-url",
                    &url,
                ])
                .args(["--storage-engine", "memory://tansu/"]);
                c
            }
        };
        cmd.args(&self.extra);
        self.proc = Some(Proc::from_command(cmd));
        wait_until("the broker to accept connections", TIMEOUT, || {
            TcpStream::connect(("127.0.0.1", self.port)).ok().map(drop)
        });
    }

    /// Creates what the default destinations need: a JetStream stream
    /// capturing `pgstream.>`, the topics `pgstream.public.{t,u}` (three
    /// partitions each); Redis creates its streams itself.
    fn prepare(&self) {
        match self.kind {
            Kind::Nats => create_stream(self, "pgstream.>"),
            Kind::Redis => {}
            #[cfg(feature = "kafka")]
            Kind::Kafka => {
                for table in TABLES {
                    kafka::create_topic(self, &format!("pgstream.public.{table}"));
                }
            }
        }
    }

    /// Takes the broker away, keeping what it stores: NATS and Redis are
    /// stopped (their data is on disk), tansu, whose data is in memory, is
    /// frozen (SIGSTOP: connections hang, requests time out).
    fn go_down(&mut self) {
        match self.kind {
            Kind::Nats | Kind::Redis => self.stop(),
            #[cfg(feature = "kafka")]
            Kind::Kafka => self.signal("STOP"),
        }
    }

    /// Brings back the broker [`Broker::go_down`] took away.
    fn come_back(&mut self) {
        match self.kind {
            Kind::Nats | Kind::Redis => self.start(),
            #[cfg(feature = "kafka")]
            Kind::Kafka => self.signal("CONT"),
        }
    }

    /// Sends `sig` to the broker process.
    fn signal(&self, sig: &str) {
        self.proc.as_ref().expect("broker running").signal(sig);
    }

    /// Kills the broker (SIGKILL) and waits for it to be gone.
    fn kill(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.signal("KILL");
            p.wait_exit(TIMEOUT);
        }
    }

    /// Stops the broker cleanly (SIGTERM), keeping its data.
    fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.signal("TERM");
            p.wait_exit(TIMEOUT);
        }
    }

    fn url(&self, userinfo: &str, query: &str) -> String {
        let scheme = match self.kind {
            Kind::Nats => "nats",
            Kind::Redis => "redis",
            #[cfg(feature = "kafka")]
            Kind::Kafka => "kafka",
        };
        format!("{scheme}://{userinfo}127.0.0.1:{}{query}", self.port)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("test runtime")
        .block_on(f)
}

/// Creates a JetStream stream `PG` capturing `subjects` (once JetStream is
/// up, which may take a moment after the port opens).
fn create_stream(b: &Broker, subjects: &str) {
    let url = b.url("", "");
    wait_until("a JetStream stream to be created", TIMEOUT, || {
        block_on(async {
            let client = async_nats::connect(url.as_str()).await.ok()?;
            let js = jetstream::new(client);
            js.create_stream(jetstream::stream::Config {
                name: "PG".into(),
                subjects: vec![subjects.into()],
                ..Default::default()
            })
            .await
            .ok()
            .map(drop)
        })
    });
}

/// One stored message: subject or stream key, idempotency id, body.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stored {
    dest: String,
    id: String,
    body: String,
}

/// Every message of stream `PG`, in stream order.
fn nats_messages(b: &Broker) -> Vec<Stored> {
    block_on(async {
        let client = async_nats::connect(b.url("", "").as_str())
            .await
            .expect("connect to nats");
        let js = jetstream::new(client);
        let mut stream = js.get_stream("PG").await.expect("stream PG");
        let state = stream.info().await.expect("stream info").state.clone();
        let mut out = Vec::new();
        for seq in state.first_sequence..=state.last_sequence {
            if state.messages == 0 {
                break;
            }
            let m = stream.get_raw_message(seq).await.expect("stored message");
            let id = m
                .headers
                .get("Nats-Msg-Id")
                .map(|v| v.as_str().to_string())
                .unwrap_or_default();
            out.push(Stored {
                dest: m.subject.to_string(),
                id,
                body: String::from_utf8_lossy(&m.payload).into_owned(),
            });
        }
        out
    })
}

fn nats_count(b: &Broker) -> u64 {
    block_on(async {
        let client = async_nats::connect(b.url("", "").as_str()).await.ok()?;
        let js = jetstream::new(client);
        let mut stream = js.get_stream("PG").await.ok()?;
        Some(stream.info().await.ok()?.state.messages)
    })
    .unwrap_or(0)
}

/// Every entry of the Redis streams whose keys match `pattern`, by key,
/// each in stream order.
fn redis_entries(b: &Broker, pattern: &str) -> BTreeMap<String, Vec<Stored>> {
    let client = redis::Client::open(b.url("", "")).expect("redis url");
    let mut con = client.get_connection().expect("connect to redis");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(pattern)
        .query(&mut con)
        .expect("KEYS");
    let mut out = BTreeMap::new();
    for key in keys {
        let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(&key)
            .arg("-")
            .arg("+")
            .query(&mut con)
            .expect("XRANGE");
        let field = |e: &redis::streams::StreamId, f: &str| -> String {
            e.get::<String>(f).unwrap_or_default()
        };
        let entries = reply
            .ids
            .iter()
            .map(|e| Stored {
                dest: key.clone(),
                id: field(e, "id"),
                body: field(e, "event"),
            })
            .collect();
        out.insert(key, entries);
    }
    out
}

fn setup(prefix: &str) -> TestDb {
    let db = Cluster::shared().new_db(prefix);
    db.sql(
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         CREATE TABLE u (id int PRIMARY KEY, v text);
         CREATE PUBLICATION pub FOR TABLE t, u;",
    );
    db
}

fn create_slots(db: &TestDb, slots: &[&str]) {
    for slot in slots {
        db.sql(&format!(
            "SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput')"
        ));
    }
}

fn args(db: &TestDb, slot: &str, extra: &[&str]) -> Vec<String> {
    let mut a = db.stream_args(slot, "pub");
    a.extend(vec_of(extra));
    a
}

/// A mixed workload: inserts in both tables, a multi-row transaction, an
/// update of a key, a delete.
fn workload(db: &TestDb) {
    db.sql_sync(
        "INSERT INTO t VALUES (1, 'a');
         INSERT INTO u VALUES (1, 'x');
         BEGIN; INSERT INTO t SELECT g, 'many' FROM generate_series(2, 6) g; INSERT INTO u VALUES (2, 'y'); COMMIT;
         UPDATE t SET v = 'b' WHERE id = 1;
         UPDATE t SET id = 10 WHERE id = 2;
         DELETE FROM u WHERE id = 1;",
    );
}

fn run_ok(args: &[String]) -> Output {
    let out = run(args, &[], TIMEOUT);
    assert_eq!(out.code, Some(0), "pgstream {args:?}\n{out:#?}");
    out
}

fn key_id(body: &str) -> i64 {
    let v: serde_json::Value = serde_json::from_str(body).expect("a JSON event");
    v["key"]["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no key.id in {body}"))
}

/// The ids are all distinct.
fn assert_distinct_ids(stored: &[Stored]) {
    let ids: BTreeSet<&str> = stored.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(
        ids.len(),
        stored.len(),
        "idempotency ids repeat: {stored:#?}"
    );
    assert!(!ids.contains(""), "a message without an id");
}

/// Inserts ids `range` into `t`, one transaction each.
fn insert_range(db: &TestDb, range: std::ops::RangeInclusive<i64>) {
    let sql: String = range
        .map(|i| format!("INSERT INTO t VALUES ({i}, 'row {i}');\n"))
        .collect();
    db.sql_sync(&sql);
}

/// A stdout run and a NATS run of `format` from twin slots give the same
/// events; subjects follow the default template, ids are distinct. With
/// `snapshot`, each run creates its slot after the workload and emits the
/// rows with `--snapshot`.
fn nats_matches_stdout(prefix: &str, format: &str, snapshot: bool) {
    let mut flags = vec![
        "--end-lsn",
        "now",
        "--format",
        format,
        "--topic-prefix",
        "shop",
    ];
    let db = setup(prefix);
    let (out_slot, nats_slot) = (format!("{prefix}_out"), format!("{prefix}_nats"));
    if snapshot {
        workload(&db);
        flags.push("--snapshot");
    } else {
        create_slots(&db, &[&out_slot, &nats_slot]);
        workload(&db);
    }
    let lines = run_ok(&args(&db, &out_slot, &flags)).stdout_lines;
    assert!(lines.len() >= 7, "{lines:#?}");

    let nats = Broker::started(Kind::Nats, &[]);
    create_stream(&nats, "pgstream.>");
    let url = nats.url("", "");
    let out = run_ok(&args(
        &db,
        &nats_slot,
        &[&["--sink", &url][..], &flags].concat(),
    ));
    assert!(out.stdout_lines.is_empty(), "{out:#?}");
    let stored = nats_messages(&nats);
    // Debezium's top-level ts_ms is when pgstream wrote the event, and a
    // snapshot row's source has its slot's position and the time it was
    // read.
    let written = |body: &str| match format {
        "debezium" => {
            let mut v: serde_json::Value = serde_json::from_str(body).expect("JSON");
            v.as_object_mut().map(|o| o.remove("ts_ms"));
            if let (true, Some(source)) = (snapshot, v["source"].as_object_mut()) {
                for varies in ["ts_ms", "lsn", "sequence"] {
                    source.remove(varies);
                }
            }
            v.to_string()
        }
        _ => body.to_string(),
    };
    let bodies: Vec<String> = stored.iter().map(|s| written(&s.body)).collect();
    let lines_written: Vec<String> = lines.iter().map(|l| written(l)).collect();
    assert_eq!(
        bodies, lines_written,
        "the messages are the stdout lines, in order"
    );
    for (s, line) in stored.iter().zip(json_lines(&lines)) {
        let table = line["table"]
            .as_str()
            .or(line["source"]["table"].as_str())
            .unwrap_or("_");
        assert_eq!(s.dest, format!("pgstream.public.{table}"));
    }
    assert_distinct_ids(&stored);

    // Everything was acknowledged to the server: a second run has nothing.
    flags.retain(|&f| f != "--snapshot");
    run_ok(&args(
        &db,
        &nats_slot,
        &[&["--sink", &url][..], &flags].concat(),
    ));
    assert_eq!(nats_messages(&nats).len(), stored.len());
}

#[test]
fn nats_messages_equal_a_stdout_run_with_subjects_and_ids() {
    nats_matches_stdout("sink_nats_eq", "pgstream", false);
}

#[test]
fn nats_messages_in_debezium_format_equal_a_stdout_run() {
    nats_matches_stdout("sink_nats_dbz", "debezium", false);
}

/// Debezium holds each snapshot row back until the next one shows whether
/// it is the last: each still goes to its own table's subject, the last too.
#[test]
fn nats_debezium_snapshot_rows_go_to_their_own_tables_subjects() {
    nats_matches_stdout("sink_nats_dbz_snap", "debezium", true);
}

/// Everything the broker holds for the tests' subjects or stream keys.
fn stored(b: &Broker) -> Vec<Stored> {
    match b.kind {
        Kind::Nats => nats_messages(b),
        Kind::Redis => redis_entries(b, "pgstream:*")
            .into_values()
            .flatten()
            .collect(),
        #[cfg(feature = "kafka")]
        Kind::Kafka => kafka::records(b).into_iter().map(|r| r.stored).collect(),
    }
}

/// 3000 one-row transactions, the broker killed after the first hundred
/// arrived and started again once pgstream noticed; returns what the
/// broker holds after a clean stop, which has every change (their order
/// and repeats are the caller's to check).
fn killed_under_load(broker: &mut Broker, prefix: &str, url: &str) -> Vec<Stored> {
    let db = setup(prefix);
    let mut p = Proc::spawn(&args(&db, prefix, &["--sink", url]), &[]);
    wait_until("pgstream to stream", TIMEOUT, || {
        db.walsender_streaming(prefix).then_some(())
    });
    insert_range(&db, 1..=1500);
    wait_until("messages to arrive", TIMEOUT, || {
        (stored_count(broker) >= 100).then_some(())
    });
    broker.kill();
    insert_range(&db, 1501..=2000);
    // What was sent meanwhile is not acknowledged: it is sent again.
    p.wait_stderr("retrying", TIMEOUT);
    broker.start();
    insert_range(&db, 2001..=3000);
    wait_until("all 3000 changes in the broker", TIMEOUT, || {
        let ids: BTreeSet<String> = stored(broker).into_iter().map(|s| s.id).collect();
        (ids.len() >= 3000).then_some(())
    });
    p.signal("INT");
    let out = p.wait_exit(TIMEOUT);
    assert_eq!(out.code, Some(0), "{out:#?}");
    let all = stored(broker);
    let ids: BTreeSet<i64> = all.iter().map(|s| key_id(&s.body)).collect();
    assert_eq!(ids, (1..=3000).collect::<BTreeSet<_>>(), "nothing lost");
    all
}

#[test]
fn nats_killed_under_load_loses_nothing_and_stores_each_change_once() {
    let mut nats = Broker::started(Kind::Nats, &[]);
    create_stream(&nats, "pgstream.>");
    let url = nats.url("", "?subject=pgstream.{slot}.{table}.{op}");
    let all = killed_under_load(&mut nats, "sink_nats_kill", &url);
    assert_eq!(all.len(), 3000, "each change exactly once (Nats-Msg-Id)");
    assert_distinct_ids(&all);
    assert!(all
        .iter()
        .all(|s| s.dest == "pgstream.sink_nats_kill.t.insert"));
}

#[test]
fn redis_killed_under_load_loses_nothing() {
    let mut redis = Broker::started(Kind::Redis, &[]);
    let url = redis.url("", "");
    let all = killed_under_load(&mut redis, "sink_redis_kill", &url);
    // At least once: a resent message repeats its id and its body.
    let mut by_id: BTreeMap<&str, &str> = BTreeMap::new();
    for s in &all {
        let body = by_id.entry(&s.id).or_insert(&s.body);
        assert_eq!(*body, s.body, "one id, two bodies");
    }
    assert_eq!(by_id.len(), 3000);
    // In commit order, but for repeats: each first occurrence comes in order.
    let mut seen = BTreeSet::new();
    let firsts: Vec<i64> = all
        .iter()
        .map(|s| key_id(&s.body))
        .filter(|id| seen.insert(*id))
        .collect();
    assert!(firsts.windows(2).all(|w| w[0] < w[1]), "out of order");
}

/// Changes stored in the broker's `pgstream…` subjects or streams for
/// table `t` (0 while it is down).
fn stored_count(b: &Broker) -> u64 {
    match b.kind {
        Kind::Nats => nats_count(b),
        Kind::Redis => redis::Client::open(b.url("", ""))
            .and_then(|c| c.get_connection())
            .and_then(|mut c| redis::cmd("XLEN").arg("pgstream:public.t").query(&mut c))
            .unwrap_or(0),
        #[cfg(feature = "kafka")]
        Kind::Kafka => kafka::count(b, "pgstream.public.t"),
    }
}

/// The broker is down when pgstream starts and while changes come: the
/// walsender stays, nothing is acknowledged; once it is back, everything
/// arrives, once.
fn down_at_start_up(kind: Kind, prefix: &str) {
    let db = setup(prefix);
    let (slot, twin) = (prefix, format!("{prefix}_twin"));
    let mut broker = Broker::started(kind, &[]);
    // The stream or topics exist, kept by a broker that is down.
    broker.prepare();
    broker.go_down();
    create_slots(&db, &[slot, &twin]);
    let mut p = Proc::spawn(&args(&db, slot, &["--sink", &broker.url("", "")]), &[]);
    wait_until("pgstream to stream", TIMEOUT, || {
        db.walsender_streaming(slot).then_some(())
    });
    insert_range(&db, 1..=20);
    let ends = db.commit_ends(&twin, "pub");
    assert_eq!(ends.len(), 20);
    // Six retries take longer than the test server's wal_sender_timeout
    // (5 s), as do two against a frozen broker (each waits 5 s for an
    // answer): the walsender must still be there.
    let retries = match kind {
        #[cfg(feature = "kafka")]
        Kind::Kafka => 2,
        _ => 6,
    };
    wait_until("the retries", TIMEOUT, || {
        (p.stderr().matches("retrying in").count() >= retries).then_some(())
    });
    assert!(db.walsender_streaming(slot), "the walsender timed out");
    let confirmed = || parse_lsn(&db.confirmed_flush_lsn(slot).expect("slot"));
    assert!(
        confirmed() < ends[0],
        "acknowledged what the broker never had"
    );

    broker.come_back();
    wait_until("the 20 changes in the broker", TIMEOUT, || {
        (stored_count(&broker) >= 20).then_some(())
    });
    wait_until("the slot to advance past them", TIMEOUT, || {
        (confirmed() >= ends[19]).then_some(())
    });
    p.signal("INT");
    let out = p.wait_exit(TIMEOUT);
    assert_eq!(out.code, Some(0), "{out:#?}");
    assert_eq!(stored_count(&broker), 20, "each change once");
}

#[test]
fn nats_down_at_start_up_holds_the_slot_until_it_starts() {
    down_at_start_up(Kind::Nats, "sink_nats_late");
}

#[test]
fn redis_down_at_start_up_holds_the_slot_until_it_starts() {
    down_at_start_up(Kind::Redis, "sink_redis_late");
}

/// With `--no-loop`, a broker that is not running ends the run: exit 1.
fn down_with_no_loop_exits_1(kind: Kind, prefix: &str) {
    let db = setup(prefix);
    let broker = Broker::new(kind, &[]);
    let out = run(
        &args(&db, prefix, &["--sink", &broker.url("", ""), "--no-loop"]),
        &[],
        TIMEOUT,
    );
    assert_eq!(out.code, Some(1), "{out:#?}");
    assert!(out.stderr.contains("cannot connect"), "{}", out.stderr);
}

#[test]
fn nats_down_with_no_loop_exits_1() {
    down_with_no_loop_exits_1(Kind::Nats, "sink_nats_noloop");
}

#[test]
fn redis_down_with_no_loop_exits_1() {
    down_with_no_loop_exits_1(Kind::Redis, "sink_redis_noloop");
}

#[test]
fn bad_sink_urls_and_refused_credentials_exit_2_without_the_password() {
    let db = setup("sink_bad");
    let nats = Broker::started(Kind::Nats, &["--user", "app", "--pass", "right"]);
    let redis = Broker::started(Kind::Redis, &["--requirepass", "right"]);
    let cases = [
        "nats://app:hunter2@127.0.0.1?subjet=x".to_string(),
        "nats://app:hunter2@127.0.0.1:notaport".into(),
        "nats://app:hunter2@127.0.0.1?subject=a.{tabel}".into(),
        "redis://app:hunter2@127.0.0.1?maxlen=many".into(),
        "mqtt://app:hunter2@127.0.0.1".into(),
        nats.url("app:hunter2@", ""),
        redis.url(":hunter2@", ""),
    ];
    for url in &cases {
        let out = run(&args(&db, "sink_bad", &["--sink", url]), &[], TIMEOUT);
        assert_eq!(out.code, Some(2), "{url}: {out:#?}");
        assert!(!out.stderr.contains("hunter2"), "{url}: {}", out.stderr);
        let errors = out.stderr.lines().filter(|l| !l.contains(": info: "));
        assert_eq!(errors.count(), 1, "{url}: one line: {}", out.stderr);
    }
}

/// No stream (NATS) or topic (Kafka) for the default destination: exit 2
/// naming it.
fn without_a_destination_exits_2_naming_it(kind: Kind, prefix: &str) {
    let db = setup(prefix);
    let broker = Broker::started(kind, &[]);
    if kind == Kind::Nats {
        create_stream(&broker, "other.>");
    }
    let mut p = Proc::spawn(&args(&db, prefix, &["--sink", &broker.url("", "")]), &[]);
    wait_until("pgstream to stream", TIMEOUT, || {
        db.walsender_streaming(prefix).then_some(())
    });
    insert_range(&db, 1..=1);
    let out = p.wait_exit(TIMEOUT);
    assert_eq!(out.code, Some(2), "{out:#?}");
    assert!(
        out.stderr.contains("\"pgstream.public.t\""),
        "{}",
        out.stderr
    );
}

#[test]
fn nats_without_a_stream_for_the_subject_exits_2_naming_it() {
    without_a_destination_exits_2_naming_it(Kind::Nats, "sink_nostream");
}

/// SIGINT while the broker is frozen (SIGSTOP) with messages in flight:
/// pgstream exits 0 without waiting for it, and the slot is confirmed no
/// further than what the broker stored.
fn sigint_while_stopped(kind: Kind, prefix: &str) {
    let db = setup(prefix);
    let twin = format!("{prefix}_twin");
    create_slots(&db, &[prefix, &twin]);
    let broker = Broker::started(kind, &[]);
    broker.prepare();
    let mut p = Proc::spawn(&args(&db, prefix, &["--sink", &broker.url("", "")]), &[]);
    insert_range(&db, 1..=5);
    wait_until("the first five in the broker", TIMEOUT, || {
        (stored_count(&broker) >= 5).then_some(())
    });
    broker.signal("STOP");
    insert_range(&db, 6..=10);
    let ends = db.commit_ends(&twin, "pub");
    assert_eq!(ends.len(), 10);
    let t0 = Instant::now();
    p.signal("INT");
    let out = p.wait_exit(TIMEOUT);
    eprintln!(
        "SIGINT with the broker stopped: exited in {:?} (spec: within 2 s)",
        t0.elapsed()
    );
    assert_eq!(out.code, Some(0), "{out:#?}");
    broker.signal("CONT");
    // What reached the broker's socket before the exit may still be
    // stored now: the count only grows, and the bound with it.
    let stored = stored_count(&broker) as usize;
    let confirmed = parse_lsn(&db.confirmed_flush_lsn(prefix).expect("slot"));
    assert!(stored >= 5, "{stored}");
    assert!(
        confirmed <= ends[stored - 1],
        "acknowledged past what the broker stored ({stored} messages)"
    );
    assert!(
        confirmed >= ends[4],
        "the five acknowledged ones were acknowledged"
    );
}

#[test]
fn sigint_while_nats_is_stopped_acknowledges_only_what_it_acknowledged() {
    sigint_while_stopped(Kind::Nats, "sink_slow");
}

#[test]
fn sigint_while_redis_is_stopped_acknowledges_only_what_it_acknowledged() {
    sigint_while_stopped(Kind::Redis, "sink_redis_slow");
}

#[test]
fn redis_entries_equal_a_stdout_run_with_keys_ids_and_maxlen() {
    let db = setup("sink_redis_eq");
    create_slots(&db, &["sre_out", "sre_redis"]);
    workload(&db);
    let lines = run_ok(&args(&db, "sre_out", &["--end-lsn", "now"])).stdout_lines;
    let redis = Broker::started(Kind::Redis, &[]);
    let url = redis.url("", "?stream=cdc:{table}&maxlen=1000");
    run_ok(&args(
        &db,
        "sre_redis",
        &["--sink", &url, "--end-lsn", "now"],
    ));
    let entries = redis_entries(&redis, "cdc:*");
    assert_eq!(
        entries.keys().collect::<Vec<_>>(),
        ["cdc:t", "cdc:u"],
        "{entries:#?}"
    );
    for (key, stored) in &entries {
        let table = &key["cdc:".len()..];
        let want: Vec<&String> = lines
            .iter()
            .zip(json_lines(&lines))
            .filter(|(_, v)| v["table"] == table)
            .map(|(l, _)| l)
            .collect();
        let got: Vec<&String> = stored.iter().map(|s| &s.body).collect();
        assert_eq!(got, want, "{key}: the lines of its table, in commit order");
    }
    let all: Vec<Stored> = entries.into_values().flatten().collect();
    assert_eq!(all.len(), lines.len());
    assert_distinct_ids(&all);
    run_ok(&args(
        &db,
        "sre_redis",
        &["--sink", &url, "--end-lsn", "now"],
    ));
    assert_eq!(
        redis_entries(&redis, "cdc:*")
            .values()
            .map(Vec::len)
            .sum::<usize>(),
        all.len()
    );
}

/// With `--metrics-addr`, the sink's acknowledged count agrees with what
/// the broker stored, and `/healthz` says the broker is down while it is
/// (SPEC §10), then streams again once it is back.
#[test]
fn sink_metrics_follow_the_broker_and_health_says_when_it_is_down() {
    let db = setup("sink_metrics");
    create_slots(&db, &["sink_metrics"]);
    let mut nats = Broker::started(Kind::Nats, &[]);
    create_stream(&nats, "pgstream.>");
    let (mut p, addr) = spawn_metered(args(&db, "sink_metrics", &["--sink", &nats.url("", "")]));
    let acked = |addr: &str| {
        sample(
            &scrape(addr),
            "pgstream_sink_messages_acked_total{sink=\"nats\"}",
        )
    };
    insert_range(&db, 1..=5);
    wait_until("the broker's count in the metrics", TIMEOUT, || {
        let stored = nats_count(&nats);
        (stored >= 5 && acked(&addr) == Some(stored as f64)).then_some(())
    });
    nats.stop();
    insert_range(&db, 6..=6);
    wait_until("healthz: broker down", TIMEOUT, || {
        get(&addr, "/healthz").filter(|(code, body)| *code == 503 && body.contains("broker down"))
    });
    assert_eq!(
        sample(&scrape(&addr), "pgstream_sink_up{sink=\"nats\"}"),
        Some(0.0)
    );
    nats.start();
    wait_until("healthz 200 again", TIMEOUT, || {
        get(&addr, "/healthz").filter(|(code, _)| *code == 200)
    });
    wait_until("the sixth acknowledged", TIMEOUT, || {
        let stored = nats_count(&nats);
        (stored >= 6 && acked(&addr) == Some(stored as f64)).then_some(())
    });
    let text = scrape(&addr);
    assert_eq!(sample(&text, "pgstream_sink_up{sink=\"nats\"}"), Some(1.0));
    assert!(
        sample(&text, "pgstream_sink_errors_total").unwrap_or(0.0) >= 1.0,
        "{text}"
    );
    p.signal("INT");
    assert_eq!(p.wait_exit(TIMEOUT).code, Some(0));
}
