//! What the broker sinks share (SPEC §8): a [`Sink`] turns each event into a
//! message (the encoder's line, a destination from the template, an
//! idempotency id) and hands it to a delivery task, which sends messages in
//! order, many in flight, takes the broker's acknowledgements in order, and
//! after a failure sends again, in order, everything not acknowledged. A
//! transaction's completion waits until the broker acknowledged its last
//! message (and so every message before it).
//!
//! A broker is one [`Broker`] implementation (`nats.rs`, `redis.rs`,
//! `kafka.rs`): how to
//! connect, how to send a batch, what its errors mean.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{FuturesOrdered, StreamExt};
use log::{info, warn};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::encode::{Encoder, Format};
use super::id::Ids;
#[cfg(feature = "kafka")]
use super::kafka::Kafka;
use super::nats::Nats;
use super::redis::Redis;
use super::stats::SinkStats;
use super::template::Template;
use super::url::Target;
use super::{Completion, Handler, HandlerError};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::event::{Event, Op};

/// Messages handed to the delivery task but not yet acknowledged, at most:
/// beyond it the handler waits (and pgstream stops reading).
const MAX_UNACKED: usize = 4096;
/// Messages sent at once (one pipeline, or one run of publishes).
const BATCH: usize = 256;
/// The delivery task's intake.
const QUEUE: usize = 1024;
/// Retries after a broker failure wait this long, doubling up to
/// [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// One message: where it goes, its idempotency id, its body (the event's
/// line without the newline), and for a broker that partitions by key
/// ([`Broker::KEYED`]) the record key.
#[derive(Debug, Clone)]
pub(crate) struct Msg {
    pub(crate) dest: String,
    pub(crate) id: String,
    pub(crate) body: Bytes,
    /// The event's key as compact JSON, `schema.table` when it has none;
    /// `None` for a broker that takes no key (nothing computed for it).
    pub(crate) key: Option<Bytes>,
}

/// Where an event's messages go: [`Msg`] but the body.
#[derive(Debug)]
struct Route {
    dest: String,
    id: String,
    key: Option<Bytes>,
    /// An update's old key, for the first of its two records (a key
    /// change, in Debezium's format).
    old_key: Option<Bytes>,
}

/// Why the broker did not take a message.
#[derive(Debug, Clone)]
pub(crate) enum Failure {
    /// Only the operator can fix it (authentication, no stream for the
    /// subject, a key of the wrong type): exit 2.
    Config(String),
    /// Down, refusing or slow: retried with backoff (exit 1 with
    /// `--no-loop`).
    Down(String),
}

/// The broker's acknowledgement of a batch.
pub(crate) type Acked = Pin<Box<dyn Future<Output = Result<(), Failure>> + Send>>;

/// A broker: how to reach it and send to it.
pub(crate) trait Broker: Send + Sync + 'static {
    type Conn: Send;
    /// Its URL scheme, which names it in metrics.
    const NAME: &'static str;
    /// Batches that may await their acknowledgement at once.
    const IN_FLIGHT: usize;
    /// Whether messages carry a record key ([`Msg::key`]).
    const KEYED: bool = false;
    /// Characters a destination cannot hold (they become `_`).
    fn forbidden(c: char) -> bool;
    fn connect(&self) -> impl Future<Output = Result<Self::Conn, Failure>> + Send;
    /// Sends `batch` in order; the returned future resolves once the broker
    /// acknowledged all of it.
    fn send(
        &self,
        conn: &mut Self::Conn,
        batch: &[Msg],
    ) -> impl Future<Output = Result<Acked, Failure>> + Send;
}

/// What the delivery task tells the handler.
#[derive(Debug, Clone, Default)]
struct State {
    /// Messages acknowledged, counted from the first.
    acked: u64,
    /// The task gave up: a configuration error, or a failure with
    /// `--no-loop`.
    failed: Option<Failure>,
}

/// A broker sink (`--sink`): each event becomes one message to NATS
/// JetStream, Redis Streams or Kafka, and a transaction completes once the broker
/// acknowledged every message of it and before it (docs/sinks.md).
///
/// ```no_run
/// # async fn f(config: pgstream::Config) -> pgstream::Result<()> {
/// let mut sink = pgstream::Sink::new("nats://localhost:4222", &config)?;
/// let (_stop, shutdown) = tokio::sync::watch::channel(false);
/// pgstream::run(config, &mut sink, shutdown).await
/// # }
/// ```
pub struct Sink {
    /// Where the messages go, as logs show it (no password).
    shown: String,
    route: Template,
    forbidden: fn(char) -> bool,
    /// [`Broker::KEYED`]: compute each message's key.
    keyed: bool,
    slot: String,
    ids: Ids,
    encoder: Encoder,
    /// What the encoder wrote for the event at hand: one message per line.
    lines: Vec<u8>,
    /// The event's key at hand, when `keyed`.
    key: Vec<u8>,
    /// The route of the record the encoder holds back (Debezium's latest
    /// snapshot row): it goes out with a later event's, under its own.
    held: Option<Route>,
    tx: mpsc::Sender<Msg>,
    state: watch::Receiver<State>,
    task: JoinHandle<()>,
    stats: SinkStats,
    /// Messages handed to the task.
    sent: u64,
    /// The highest count a completion already waits for.
    promised: u64,
}

impl Sink {
    /// A sink for `url` (`nats://…`, `redis://…`, `kafka://…`, SPEC §8), for the slot
    /// and `no_loop` of `config`. Connects in the background at once (call
    /// it inside a Tokio runtime): a broker that is down is waited for,
    /// unless `no_loop`; one that refuses the credentials fails the run
    /// (exit 2). A bad URL is an [`Error::Usage`].
    pub fn new(url: &str, config: &Config) -> Result<Sink> {
        let target = Target::parse(url)?;
        let shown = target.shown();
        match target {
            Target::Nats(t) => Ok(Sink::start(t.subject.clone(), Nats::new(t), shown, config)),
            Target::Redis(t) => Sink::start_made(t.stream.clone(), Redis::new(t), shown, config),
            #[cfg(feature = "kafka")]
            Target::Kafka(t) => Sink::start_made(t.topic.clone(), Kafka::new(t), shown, config),
        }
    }

    /// [`start`](Sink::start)s a broker client whose making can fail (an
    /// option the client refuses): that is a usage error naming the URL.
    fn start_made<B: Broker>(
        route: Template,
        broker: std::result::Result<B, String>,
        shown: String,
        config: &Config,
    ) -> Result<Sink> {
        let broker = broker.map_err(|why| Error::usage(format!("{shown}: {why}")))?;
        Ok(Sink::start(route, broker, shown, config))
    }

    /// Spawns the delivery task to `broker`.
    fn start<B: Broker>(route: Template, broker: B, shown: String, config: &Config) -> Sink {
        let (tx, rx) = mpsc::channel(QUEUE);
        let (state_tx, state) = watch::channel(State::default());
        let retry = !config.no_loop;
        let stats = SinkStats::new(B::NAME);
        let task = tokio::spawn(deliver(
            broker,
            shown.clone(),
            rx,
            state_tx,
            stats.clone(),
            retry,
        ));
        Sink {
            shown,
            route,
            forbidden: B::forbidden,
            keyed: B::KEYED,
            slot: config.slot.clone(),
            ids: Ids::default(),
            encoder: Encoder::new(&Format::Pgstream),
            lines: Vec::new(),
            key: Vec::new(),
            held: None,
            tx,
            state,
            task,
            stats,
            sent: 0,
            promised: 0,
        }
    }

    /// Sends the events in `format` (`--format`) instead of pgstream's.
    pub fn with_format(mut self, format: Format) -> Sink {
        self.encoder = Encoder::new(&format);
        self
    }

    /// Its delivery counts, for [`Metrics::watch_sink`](crate::Metrics::watch_sink).
    pub fn stats(&self) -> SinkStats {
        self.stats.clone()
    }

    /// Where `event`'s `records` messages go, and their id and key.
    fn route(&mut self, event: &Event<'_>, records: usize) -> Route {
        Route {
            dest: self.route.expand(event, &self.slot, self.forbidden),
            id: self.ids.next(event),
            key: self.keyed.then(|| self.key(event, Encoder::write_key)),
            // Debezium writes a key change as the old key's delete, then
            // the new row's create: the delete goes under the old key.
            old_key: (self.keyed && records == 2 && event.op == Op::Update)
                .then(|| self.key(event, Encoder::write_old_key)),
        }
    }

    /// Routes what the encoder wrote for `event` (after what it let go of
    /// for an earlier one, if `released`) and hands it to the delivery
    /// task; a record the encoder holds back keeps `event`'s route until
    /// it is let go of.
    async fn send(&mut self, event: &Event<'_>, released: bool) -> Result<(), HandlerError> {
        if self.state.borrow().failed.is_some() {
            return Err(self.error());
        }
        let mut lines = std::mem::take(&mut self.lines);
        let mut at = 0;
        if let Some(route) = self.held.take_if(|_| released) {
            at = lines
                .iter()
                .position(|&b| b == b'\n')
                .map_or(lines.len(), |n| n + 1);
            self.deliver(&lines[..at], &route).await?;
        }
        let records = lines[at..].iter().filter(|&&b| b == b'\n').count();
        if records > 0 {
            let route = self.route(event, records);
            self.deliver(&lines[at..], &route).await?;
        } else if self.encoder.holds() && self.held.is_none() {
            // `event` wrote nothing: its record is the one held back.
            self.held = Some(self.route(event, 1));
        }
        lines.clear();
        self.lines = lines;
        Ok(())
    }

    /// Hands each line in `lines` to the delivery task as one message
    /// under `route`: the first with its id, any further one (Debezium
    /// may write two) with `.1`, `.2`….
    async fn deliver(&mut self, lines: &[u8], route: &Route) -> Result<(), HandlerError> {
        for (k, line) in lines
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .enumerate()
        {
            let msg = Msg {
                dest: route.dest.clone(),
                id: if k == 0 {
                    route.id.clone()
                } else {
                    format!("{}.{k}", route.id)
                },
                body: Bytes::copy_from_slice(line),
                key: match (k, &route.old_key) {
                    (0, Some(old)) => Some(old.clone()),
                    _ => route.key.clone(),
                },
            };
            if self.tx.send(msg).await.is_err() {
                return Err(self.error());
            }
            self.sent += 1;
        }
        Ok(())
    }

    /// A record key of `event`, as `write` (its key, or its old image's)
    /// gives it as compact JSON, else `schema.table` (`_` for what it
    /// lacks, as in templates).
    fn key(&mut self, event: &Event<'_>, write: fn(&mut Vec<u8>, &Event<'_>) -> bool) -> Bytes {
        self.key.clear();
        if !write(&mut self.key, event) {
            let (schema, table) = event
                .relation
                .map_or(("_", "_"), |r| (r.schema.as_str(), r.name.as_str()));
            self.key.extend_from_slice(schema.as_bytes());
            self.key.push(b'.');
            self.key.extend_from_slice(table.as_bytes());
        }
        Bytes::copy_from_slice(&self.key)
    }

    /// The delivery task's failure, as the run reports it.
    fn error(&self) -> HandlerError {
        let failed = self.state.borrow().failed.clone();
        Box::new(into_error(failed.unwrap_or_else(|| {
            Failure::Down(format!("{}: delivery stopped", self.shown))
        })))
    }

    /// A completion for every message handed over so far.
    fn completion(&mut self) -> Completion {
        let seq = self.sent;
        if seq <= self.promised {
            return Completion::done();
        }
        self.promised = seq;
        let mut state = self.state.clone();
        Completion::when(async move {
            let seen = state
                .wait_for(|s| s.acked >= seq || s.failed.is_some())
                .await
                .map(|s| (s.acked, s.failed.clone()));
            match seen {
                Ok((acked, _)) if acked >= seq => Ok(()),
                Ok((_, failed)) => Err(Box::new(into_error(
                    failed.unwrap_or_else(|| Failure::Down("delivery stopped".into())),
                )) as HandlerError),
                // The task was cancelled (a stop that gave up): this is
                // never acknowledged.
                Err(_) => std::future::pending().await,
            }
        })
    }
}

fn into_error(failure: Failure) -> Error {
    match failure {
        Failure::Config(why) => Error::Usage(why),
        Failure::Down(why) => Error::Runtime(why),
    }
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink")
            .field("broker", &self.shown)
            .field("sent", &self.sent)
            .field("acked", &self.state.borrow().acked)
            .finish_non_exhaustive()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Handler for Sink {
    async fn event(&mut self, event: &Event<'_>) -> Result<(), HandlerError> {
        let released = self.encoder.release(&mut self.lines, event);
        self.encoder.write_event(&mut self.lines, event);
        self.send(event, released).await
    }

    async fn commit(&mut self, commit: &Event<'_>) -> Result<Completion, HandlerError> {
        // What the format held back for the unit (Debezium's last snapshot
        // row) goes before the unit's completion, under its own route.
        let released = self.encoder.release(&mut self.lines, commit);
        self.encoder.commit(&mut self.lines, commit);
        self.send(commit, released).await?;
        self.ids.end();
        Ok(self.completion())
    }

    async fn flush(&mut self) -> Result<Completion, HandlerError> {
        Ok(self.completion())
    }

    async fn failed(&mut self) -> HandlerError {
        if self.state.wait_for(|s| s.failed.is_some()).await.is_err() {
            std::future::pending::<()>().await;
        }
        self.error()
    }

    fn cancel(&mut self) {
        // Whatever is not acknowledged yet is not sent after the final
        // status update: it comes again next run.
        self.task.abort();
    }

    fn restart(&mut self) {
        self.ids.restart();
    }
}

/// The delivery task: sessions with the broker until the sink is dropped,
/// a configuration error, or (without `retry`) any failure.
async fn deliver<B: Broker>(
    broker: B,
    shown: String,
    mut rx: mpsc::Receiver<Msg>,
    state: watch::Sender<State>,
    stats: SinkStats,
    retry: bool,
) {
    let mut queue = Unacked::default();
    let mut backoff = MIN_BACKOFF;
    let mut failures = 0u32;
    loop {
        let failure =
            match session(&broker, &mut rx, &mut queue, &state, &stats, &mut failures).await {
                Ok(()) => return,
                Err(failure) => failure,
            };
        let why = match failure {
            Failure::Down(why) if retry => {
                stats.failed(&why);
                why
            }
            Failure::Down(why) => {
                state.send_modify(|s| s.failed = Some(Failure::Down(format!("{shown}: {why}"))));
                return;
            }
            Failure::Config(why) => {
                state.send_modify(|s| s.failed = Some(Failure::Config(format!("{shown}: {why}"))));
                return;
            }
        };
        if failures == 0 {
            backoff = MIN_BACKOFF;
        }
        failures += 1;
        warn!(
            "{shown}: {why}; {} messages unacknowledged, retrying in {:.1}s",
            queue.msgs.len(),
            backoff.as_secs_f64()
        );
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Messages taken in and not acknowledged yet, oldest first.
#[derive(Default)]
struct Unacked {
    msgs: VecDeque<Msg>,
    /// How many of `msgs`, from the front, an earlier session already sent
    /// (what a new session sends again).
    tried: usize,
}

/// One connection: sends what `queue` holds, then what comes in, and
/// counts the acknowledgements in order. `Ok` once the sink is gone and
/// everything was acknowledged.
async fn session<B: Broker>(
    broker: &B,
    rx: &mut mpsc::Receiver<Msg>,
    queue: &mut Unacked,
    state: &watch::Sender<State>,
    stats: &SinkStats,
    failures: &mut u32,
) -> Result<(), Failure> {
    let mut conn = broker.connect().await?;
    stats.up();
    if *failures > 0 {
        info!(
            "broker reachable again; sending {} unacknowledged messages",
            queue.msgs.len()
        );
    }
    let mut in_flight = FuturesOrdered::new();
    // How many of the queue, from the front, this session has sent.
    let mut sent = 0;
    let mut intake = Vec::with_capacity(BATCH);
    let mut open = true;
    loop {
        if sent < queue.msgs.len() && in_flight.len() < B::IN_FLIGHT {
            let n = (queue.msgs.len() - sent).min(BATCH);
            let batch = &queue.msgs.make_contiguous()[sent..sent + n];
            let acked = broker.send(&mut conn, batch).await?;
            stats.sending(n, queue.tried.saturating_sub(sent).min(n));
            in_flight.push_back(async move { acked.await.map(|()| n) });
            sent += n;
            queue.tried = queue.tried.max(sent);
            continue;
        }
        if !open && queue.msgs.is_empty() {
            return Ok(());
        }
        tokio::select! {
            biased;
            Some(done) = in_flight.next() => {
                let n = done?;
                queue.msgs.drain(..n);
                queue.tried -= n;
                sent -= n;
                *failures = 0;
                stats.acknowledged(n);
                state.send_modify(|s| s.acked += n as u64);
            }
            got = rx.recv_many(&mut intake, BATCH), if open && queue.msgs.len() < MAX_UNACKED => {
                if got == 0 {
                    open = false;
                }
                queue.msgs.extend(intake.drain(..));
            }
            else => return Ok(()),
        }
    }
}
