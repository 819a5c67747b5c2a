//! The Kafka sink against tansu, a real Kafka-protocol broker
//! (`PGSTREAM_TEST_TANSU`, `make test-kafka`; each test skips, saying so,
//! without it). Records are read back with rdkafka's consumer, the client
//! pgstream produces with. Tansu keeps its data in memory, so there is no
//! kill-and-restart test here: a broker that is down is a frozen one
//! (SIGSTOP).

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use super::{
    args, assert_distinct_ids, create_slots, down_at_start_up, down_with_no_loop_exits_1, run_ok,
    setup, sigint_while_stopped, without_a_destination_exits_2_naming_it, workload, Broker, Kind,
    Stored, TABLES,
};
use crate::harness::{json_lines, kafka_skip, run, tansu_bin, TIMEOUT};

/// Partitions of each topic the tests create.
const PARTITIONS: i32 = 3;

/// Creates `topic` with [`PARTITIONS`] partitions, with tansu's own CLI.
pub(super) fn create_topic(b: &Broker, topic: &str) {
    let out = Command::new(tansu_bin().expect("PGSTREAM_TEST_TANSU"))
        .args(["topic", "create", topic, "--partitions"])
        .arg(PARTITIONS.to_string())
        .arg("--broker")
        .arg(format!("tcp://127.0.0.1:{}", b.port))
        .output()
        .expect("run tansu topic create");
    assert!(out.status.success(), "tansu topic create {topic}: {out:?}");
}

fn consumer(b: &Broker) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", format!("127.0.0.1:{}", b.port))
        .set("group.id", "pgstream-it")
        .set("enable.auto.commit", "false")
        .set("socket.timeout.ms", "2000")
        .set("enable.partition.eof", "true")
        .create()
        .expect("a Kafka consumer")
}

/// Records in `topic`, counted as read (tansu 0.6.0's ListOffsets
/// watermarks fell short of what its fetches return).
pub(super) fn count(b: &Broker, topic: &str) -> u64 {
    records(b).iter().filter(|r| r.stored.dest == topic).count() as u64
}

/// One record as read back.
#[derive(Debug, Clone)]
pub(super) struct Record {
    pub(super) partition: i32,
    pub(super) key: String,
    /// Topic, `pgstream-id` header and value.
    pub(super) stored: Stored,
}

/// Every record of the topics `pgstream.public.{t,u}`, partition by
/// partition, each in offset order.
pub(super) fn records(b: &Broker) -> Vec<Record> {
    TABLES
        .iter()
        .flat_map(|table| topic_records(b, &format!("pgstream.public.{table}")))
        .collect()
}

/// Every record of `topic`, partition by partition, each in offset order:
/// read from the start until each partition reports its end.
fn topic_records(b: &Broker, topic: &str) -> Vec<Record> {
    let c = consumer(b);
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("partition");
    }
    c.assign(&tpl).expect("assign");
    let mut open: BTreeSet<i32> = (0..PARTITIONS).collect();
    let mut got: BTreeMap<i32, Vec<Record>> = BTreeMap::new();
    let deadline = Instant::now() + TIMEOUT;
    while !open.is_empty() {
        assert!(
            Instant::now() < deadline,
            "{topic}: no end of partitions {open:?}"
        );
        let m = match c.poll(Duration::from_millis(100)) {
            None => continue,
            Some(Err(KafkaError::PartitionEOF(p))) => {
                open.remove(&p);
                continue;
            }
            Some(m) => m.expect("a record"),
        };
        let id = m
            .headers()
            .and_then(|h| h.iter().find(|h| h.key == "pgstream-id"))
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default();
        let text = |b: Option<&[u8]>| String::from_utf8_lossy(b.unwrap_or_default()).into_owned();
        got.entry(m.partition()).or_default().push(Record {
            partition: m.partition(),
            key: text(m.key()),
            stored: Stored {
                dest: m.topic().to_string(),
                id,
                body: text(m.payload()),
            },
        });
    }
    got.into_values().flatten().collect()
}

/// Kafka's default partitioner (the Java client's, librdkafka's
/// `murmur2_random` for a keyed record): murmur2 of the key, positive, mod
/// the partition count.
fn partition_of(key: &[u8]) -> i32 {
    ((murmur2(key) & 0x7fff_ffff) % PARTITIONS as u32) as i32
}

/// The Java client's `Utils.murmur2`.
fn murmur2(key: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = 0x9747_b28c ^ key.len() as u32;
    let mut chunks = key.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        h = h.wrapping_mul(M) ^ k.wrapping_mul(M);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        for (i, &byte) in rest.iter().enumerate().rev() {
            h ^= u32::from(byte) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

/// A started tansu with the default topics, or None (skipped).
fn kafka() -> Option<Broker> {
    if kafka_skip() {
        return None;
    }
    let b = Broker::started(Kind::Kafka, &[]);
    b.prepare();
    Some(b)
}

#[test]
fn murmur2_is_the_java_clients() {
    // Kafka's UtilsTest.testMurmur2.
    for (key, hash) in [
        ("21", -973_932_308),
        ("foobar", -790_332_482),
        ("a-little-bit-long-string", -985_981_536),
        ("a-little-bit-longer-string", -1_486_304_829),
        ("abc", 479_470_107),
    ] {
        assert_eq!(murmur2(key.as_bytes()) as i32, hash, "{key}");
    }
}

#[test]
fn kafka_records_equal_a_stdout_run_with_keys_headers_and_partitions() {
    let Some(kafka) = kafka() else { return };
    let db = setup("sink_kafka_eq");
    create_slots(&db, &["ske_out", "ske_kafka"]);
    workload(&db);
    // The same keys changed again and again: their order must hold.
    for n in 1..=5 {
        db.sql_sync(&format!("UPDATE t SET v = 'r{n}' WHERE id BETWEEN 3 AND 6"));
    }
    let flags = ["--end-lsn", "now"];
    let lines = run_ok(&args(&db, "ske_out", &flags)).stdout_lines;
    assert!(lines.len() >= 30, "{lines:#?}");
    let url = kafka.url("", "");
    let out = run_ok(&args(
        &db,
        "ske_kafka",
        &[&["--sink", &url][..], &flags].concat(),
    ));
    assert!(out.stdout_lines.is_empty(), "{out:#?}");

    let records = records(&kafka);
    assert_eq!(records.len(), lines.len(), "{records:#?}");
    // Each key's records, in partition order, are its stdout lines in
    // commit order; so every line is there once.
    let mut want: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for (line, v) in lines.iter().zip(json_lines(&lines)) {
        let table = v["table"].as_str().expect("a row change");
        let key = v["key"].to_string();
        want.entry(format!("{table} {key}")).or_default().push(line);
    }
    let mut got: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    let mut partitions = BTreeSet::new();
    for r in &records {
        let v: serde_json::Value = serde_json::from_str(&r.stored.body).expect("JSON");
        let table = v["table"].as_str().expect("a row change");
        assert_eq!(r.stored.dest, format!("pgstream.public.{table}"));
        assert_eq!(r.key, v["key"].to_string(), "the key is the event's key");
        assert_eq!(
            r.partition,
            partition_of(r.key.as_bytes()),
            "{}: not Kafka's partition for its key",
            r.key
        );
        partitions.insert(r.partition);
        got.entry(format!("{table} {}", r.key))
            .or_default()
            .push(&r.stored.body);
    }
    assert_eq!(got, want, "per key, the stdout lines in commit order");
    assert!(partitions.len() > 1, "the keys all went to one partition");
    let stored: Vec<Stored> = records.iter().map(|r| r.stored.clone()).collect();
    assert_distinct_ids(&stored);

    // Everything was acknowledged to the server: a second run has nothing.
    run_ok(&args(
        &db,
        "ske_kafka",
        &[&["--sink", &url][..], &flags].concat(),
    ));
    assert_eq!(self::records(&kafka).len(), records.len());
}

#[test]
fn kafka_record_of_a_table_without_a_key_is_keyed_by_its_table() {
    let Some(kafka) = kafka() else { return };
    let db = setup("sink_kafka_nokey");
    // No primary key, replica identity default: the events have no key.
    db.sql("ALTER TABLE u DROP CONSTRAINT u_pkey;");
    create_slots(&db, &["sink_kafka_nokey"]);
    db.sql_sync("INSERT INTO u VALUES (1, 'x'), (2, 'y');");
    let url = kafka.url("", "");
    run_ok(&args(
        &db,
        "sink_kafka_nokey",
        &["--sink", &url, "--end-lsn", "now"],
    ));
    let keys: BTreeSet<String> = records(&kafka).into_iter().map(|r| r.key).collect();
    assert_eq!(keys, BTreeSet::from(["public.u".to_string()]));
}

/// In Debezium's format a key change is a delete and a create: the delete
/// is keyed (and partitioned) by the old key, as Debezium keys it, so a
/// compacted topic drops the old key.
#[test]
fn kafka_debezium_key_change_deletes_under_the_old_key() {
    let Some(kafka) = kafka() else { return };
    let db = setup("sink_kafka_dbz_key");
    create_slots(&db, &["sink_kafka_dbz_key"]);
    db.sql_sync(
        "INSERT INTO t VALUES (2, 'a');
         UPDATE t SET id = 10 WHERE id = 2;",
    );
    let url = kafka.url("", "");
    run_ok(&args(
        &db,
        "sink_kafka_dbz_key",
        &["--sink", &url, "--format", "debezium", "--end-lsn", "now"],
    ));
    // Each key's operations, in its partition's order.
    let mut got: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in records(&kafka) {
        assert_eq!(r.partition, partition_of(r.key.as_bytes()), "{}", r.key);
        let v: serde_json::Value = serde_json::from_str(&r.stored.body).expect("JSON");
        let op = v["op"].as_str().expect("op").to_string();
        got.entry(r.key).or_default().push(op);
    }
    let want = BTreeMap::from([
        (
            r#"{"id":2}"#.to_string(),
            vec!["c".to_string(), "d".to_string()],
        ),
        (r#"{"id":10}"#.to_string(), vec!["c".to_string()]),
    ]);
    assert_eq!(got, want);
}

#[test]
fn kafka_frozen_at_start_up_holds_the_slot_until_it_answers() {
    if kafka_skip() {
        return;
    }
    down_at_start_up(Kind::Kafka, "sink_kafka_late");
}

#[test]
fn kafka_down_with_no_loop_exits_1() {
    if kafka_skip() {
        return;
    }
    down_with_no_loop_exits_1(Kind::Kafka, "sink_kafka_noloop");
}

#[test]
fn kafka_without_the_topic_exits_2_naming_it() {
    if kafka_skip() {
        return;
    }
    without_a_destination_exits_2_naming_it(Kind::Kafka, "sink_kafka_notopic");
}

#[test]
fn sigint_while_kafka_is_stopped_acknowledges_only_what_it_acknowledged() {
    if kafka_skip() {
        return;
    }
    sigint_while_stopped(Kind::Kafka, "sink_kafka_slow");
}

#[test]
fn bad_kafka_urls_exit_2_without_the_password() {
    let db = setup("sink_kafka_bad");
    for url in [
        "kafka://app:hunter2@127.0.0.1:9092",
        "kafka://127.0.0.1:9092?topic=a.{tabel}&password=hunter2",
        "kafka://127.0.0.1:notaport?x=hunter2",
    ] {
        let out = run(&args(&db, "sink_kafka_bad", &["--sink", url]), &[], TIMEOUT);
        assert_eq!(out.code, Some(2), "{url}: {out:#?}");
        assert!(!out.stderr.contains("hunter2"), "{url}: {}", out.stderr);
    }
}
