//! Kafka (`kafka://`), through rdkafka: librdkafka, the client most Kafka
//! tooling is built on, bundled and linked statically so that the version
//! is the one tested (Debian's 2.0.2 cannot even talk to some brokers).
//!
//! Each message is a record produced with `acks=all` by an idempotent
//! producer: the key is the event's key as compact JSON (`schema.table`
//! when it has none), so one key's changes land in one partition, in order;
//! the header `pgstream-id` is the idempotency id. A record counts as
//! written once the broker acknowledged it, that is, every in-sync replica
//! has it. Topics are never created: one that does not exist is a
//! configuration error (exit 2) naming it.

use std::collections::HashSet;
use std::time::Duration;

use log::debug;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::ClientContext;

use super::broker::{Acked, Broker, Failure, Msg};
use super::url::KafkaTarget;

/// How long the first contact with the cluster, and a topic's metadata,
/// may take.
const TIMEOUT: Duration = Duration::from_secs(5);
/// How long librdkafka keeps trying to deliver a record before it reports
/// it failed; the delivery task then connects again and sends it again.
const DELIVERY_TIMEOUT: &str = "30000";

pub(crate) struct Kafka {
    config: ClientConfig,
}

/// A producer, and the topics it found to exist.
pub(crate) struct Conn {
    producer: FutureProducer<Quiet>,
    topics: HashSet<String>,
}

/// librdkafka's own log lines and errors go to debug: it reports every
/// failed connection attempt, and the delivery task already says, once per
/// retry, that the broker is down.
#[derive(Clone)]
pub(crate) struct Quiet;

impl ClientContext for Quiet {
    fn log(&self, _level: RDKafkaLogLevel, fac: &str, line: &str) {
        debug!("librdkafka: {fac} {line}");
    }

    fn error(&self, error: KafkaError, reason: &str) {
        debug!("librdkafka: {error}: {reason}");
    }
}

impl Kafka {
    /// The producer settings for `target`; what librdkafka refuses is an
    /// error when connecting.
    pub(crate) fn new(target: KafkaTarget) -> Result<Kafka, String> {
        if target.servers.is_empty() {
            return Err("no bootstrap server".into());
        }
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", target.servers.join(","))
            .set("acks", "all")
            .set("enable.idempotence", "true")
            // pgstream never creates topics, even on a broker that would.
            .set("allow.auto.create.topics", "false")
            // The Java client's partitioner, so a key lands where other
            // producers (Kafka Connect, Debezium) put it.
            .set("partitioner", "murmur2_random")
            .set("message.timeout.ms", DELIVERY_TIMEOUT)
            .set("linger.ms", "5")
            .set("client.id", "pgstream");
        Ok(Kafka { config })
    }
}

impl Broker for Kafka {
    type Conn = Conn;
    const NAME: &'static str = "kafka";
    // librdkafka orders records per partition itself (idempotence keeps
    // the order through its retries), so many batches may wait at once.
    const IN_FLIGHT: usize = 16;
    const KEYED: bool = true;

    /// Kafka topic names hold only ASCII letters, digits, `.`, `_`, `-`.
    fn forbidden(c: char) -> bool {
        !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    }

    async fn connect(&self) -> Result<Conn, Failure> {
        let producer: FutureProducer<Quiet> = self
            .config
            .create_with_context(Quiet)
            .map_err(|e| Failure::Config(format!("bad producer settings: {e}")))?;
        // librdkafka connects lazily and forever: ask for the cluster's
        // metadata to know it is there (and fail at once with --no-loop).
        let probe = producer.clone();
        blocking(move || probe.client().fetch_metadata(None, TIMEOUT).map(drop))
            .await
            .map_err(|e| Failure::Down(format!("cannot connect: {e}")))?;
        Ok(Conn {
            producer,
            topics: HashSet::new(),
        })
    }

    async fn send(&self, conn: &mut Conn, batch: &[Msg]) -> Result<Acked, Failure> {
        let mut acks = Vec::with_capacity(batch.len());
        for msg in batch {
            if !conn.topics.contains(&msg.dest) {
                check_topic(&conn.producer, &msg.dest).await?;
                conn.topics.insert(msg.dest.clone());
            }
            let headers = OwnedHeaders::new().insert(Header {
                key: "pgstream-id",
                value: Some(msg.id.as_bytes()),
            });
            let key = msg.key.as_deref().unwrap_or_default();
            let record = FutureRecord::to(&msg.dest)
                .payload(&msg.body[..])
                .key(key)
                .headers(headers);
            let ack = conn
                .producer
                .send_result(record)
                .map_err(|(e, _)| failure(&msg.dest, e))?;
            acks.push((msg.dest.clone(), ack));
        }
        Ok(Box::pin(async move {
            for (topic, ack) in acks {
                match ack.await {
                    Ok(Ok(_)) => {}
                    Ok(Err((e, _))) => return Err(failure(&topic, e)),
                    Err(_) => return Err(Failure::Down("the producer was closed".into())),
                }
            }
            Ok(())
        }))
    }
}

/// Whether `topic` exists: its metadata, asked of the cluster.
async fn check_topic(producer: &FutureProducer<Quiet>, topic: &str) -> Result<(), Failure> {
    let probe = producer.clone();
    let name = topic.to_string();
    let error = blocking(move || {
        let metadata = probe.client().fetch_metadata(Some(&name), TIMEOUT)?;
        Ok(metadata.topics().first().and_then(|t| t.error()))
    })
    .await
    .map_err(|e| Failure::Down(format!("no metadata for topic \"{topic}\": {e}")))?;
    match error.map(RDKafkaErrorCode::from) {
        None => Ok(()),
        Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic) => {
            Err(Failure::Config(format!(
                "topic \"{topic}\" does not exist: create it (kafka-topics.sh --create --topic {topic}) or set ?topic="
            )))
        }
        Some(code) => Err(failure(topic, KafkaError::MetadataFetch(code))),
    }
}

/// Runs librdkafka's blocking `f` off the runtime's threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, KafkaError> + Send + 'static,
) -> Result<T, KafkaError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or(Err(KafkaError::Canceled))
}

/// What only the operator can fix (a missing or forbidden topic, a record
/// over the broker's size limit) is a configuration error; anything else
/// may pass.
fn failure(topic: &str, e: KafkaError) -> Failure {
    use RDKafkaErrorCode as C;
    let config = matches!(
        e.rdkafka_error_code(),
        Some(
            C::UnknownTopicOrPartition
                | C::UnknownTopic
                | C::TopicAuthorizationFailed
                | C::ClusterAuthorizationFailed
                | C::TransactionalIdAuthorizationFailed
                | C::MessageSizeTooLarge
                | C::InvalidTopic
                | C::InvalidRecord
        )
    );
    if config {
        Failure::Config(format!("cannot produce to \"{topic}\": {e}"))
    } else {
        Failure::Down(format!("no acknowledgement for \"{topic}\": {e}"))
    }
}
