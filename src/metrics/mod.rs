//! Prometheus metrics and health (SPEC §10): what `--metrics-addr` serves.
//!
//! [`Metrics`] is one registry of counters and gauges that the pipeline
//! updates as it goes: every update on the streaming path is an atomic add
//! or store, no lock. Lag in bytes is derived when scraped. `metered.rs`
//! counts what reaches the handler (events, transactions, failures, and
//! commit-to-written lag); `http.rs` serves `/metrics` and `/healthz`.
//!
//! The encoding is the `prometheus` crate's text format 0.0.4, with metric
//! names exactly as registered. prometheus-client only writes OpenMetrics,
//! whose counter families drop `_total` from their `# HELP`/`# TYPE`
//! lines; Prometheus's text parser (`promtool check metrics`) then sees
//! `pgstream_events_total` as a metric without help text.

mod http;
mod metered;
mod sinks;

pub(crate) use metered::Metered;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus::{
    Encoder, Gauge, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

use crate::event::{Lsn, Op, PgTimestamp};
use crate::sink::stats::SinkStats;
use sinks::Sinks;

/// Every [`Op`], at its [`op_index`]: the per-op event counters.
const OPS: [Op; 16] = [
    Op::Insert,
    Op::Update,
    Op::Delete,
    Op::Truncate,
    Op::Read,
    Op::Message,
    Op::Begin,
    Op::Commit,
    Op::StreamCommit,
    Op::StreamAbort,
    Op::Relation,
    Op::Prepare,
    Op::CommitPrepared,
    Op::RollbackPrepared,
    Op::StreamPrepare,
    Op::BackfillDone,
];

/// Where `op`'s counter is. The match is exhaustive, so a new [`Op`] does
/// not compile until it has a counter (and a place in [`OPS`]).
const fn op_index(op: Op) -> usize {
    match op {
        Op::Insert => 0,
        Op::Update => 1,
        Op::Delete => 2,
        Op::Truncate => 3,
        Op::Read => 4,
        Op::Message => 5,
        Op::Begin => 6,
        Op::Commit => 7,
        Op::StreamCommit => 8,
        Op::StreamAbort => 9,
        Op::Relation => 10,
        Op::Prepare => 11,
        Op::CommitPrepared => 12,
        Op::RollbackPrepared => 13,
        Op::StreamPrepare => 14,
        Op::BackfillDone => 15,
    }
}

/// Seconds from the Unix epoch to PostgreSQL's (2000-01-01).
const PG_EPOCH_UNIX_SECS: f64 = 946_684_800.0;

/// What a run is doing, as `/healthz` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum State {
    /// Connecting to the server and checking it and the slot.
    Connecting,
    /// Copying the initial snapshot (`--snapshot`).
    Snapshot,
    Streaming,
    /// Waiting to reconnect after this error.
    Backoff(String),
    Stopping,
}

/// A run's metrics: pass one to [`run`](crate::run) in
/// [`Control::metrics`](crate::Control::metrics) and serve it with
/// [`Metrics::serve`]. Clones share the same values.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

struct Inner {
    registry: Registry,
    events: Vec<IntCounter>,
    transactions: IntCounter,
    received: IntGauge,
    written: IntGauge,
    acknowledged: IntGauge,
    server_wal_end: IntGauge,
    lag_bytes: IntGauge,
    lag_seconds: Gauge,
    reconnects: IntCounter,
    streaming: IntGauge,
    last_event: Gauge,
    sink_errors: IntCounter,
    sinks: Sinks,
    /// Written on state changes only, never per event.
    state: Mutex<State>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A registry holding every metric SPEC §10 lists, at zero.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let events = IntCounterVec::new(
            Opts::new(
                "pgstream_events_total",
                "Events handed to the output, by op.",
            ),
            &["op"],
        )
        .expect("valid metric");
        let build = IntGaugeVec::new(
            Opts::new("pgstream_build_info", "pgstream's version; always 1."),
            &["version"],
        )
        .expect("valid metric");
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let float = |name: &str, help: &str| {
            let g = Gauge::new(name, help).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let inner = Inner {
            events: OPS
                .iter()
                .map(|op| events.with_label_values(&[op.as_str()]))
                .collect(),
            transactions: counter(
                "pgstream_transactions_total",
                "Transactions handed to the output.",
            ),
            received: gauge(
                "pgstream_received_lsn",
                "WAL position received from the server, in bytes.",
            ),
            written: gauge(
                "pgstream_written_lsn",
                "WAL position up to which the output has written everything, in bytes.",
            ),
            acknowledged: gauge(
                "pgstream_acknowledged_lsn",
                "WAL position acknowledged to the server (its confirmed_flush_lsn), in bytes.",
            ),
            server_wal_end: gauge(
                "pgstream_server_wal_end_lsn",
                "The server's WAL end as it last reported it, in bytes.",
            ),
            lag_bytes: gauge(
                "pgstream_lag_bytes",
                "Server WAL end minus the acknowledged position, in bytes.",
            ),
            lag_seconds: float(
                "pgstream_replication_lag_seconds",
                "From commit to written, for the latest transaction; 0 when caught up and idle.",
            ),
            reconnects: counter(
                "pgstream_reconnects_total",
                "Connection attempts after a lost or refused connection.",
            ),
            streaming: gauge(
                "pgstream_streaming",
                "1 while streaming from the slot, else 0.",
            ),
            last_event: float(
                "pgstream_last_event_timestamp_seconds",
                "Commit time of the latest event handed to the output, as a Unix timestamp.",
            ),
            sink_errors: counter(
                "pgstream_sink_errors_total",
                "Failures of the output (writes, flushes, completions).",
            ),
            state: Mutex::new(State::Connecting),
            sinks: Sinks::new(&registry),
            registry,
        };
        inner
            .registry
            .register(Box::new(events))
            .expect("unique metric");
        inner
            .registry
            .register(Box::new(build))
            .expect("unique metric");
        Metrics(Arc::new(inner))
    }

    /// Adds a broker sink's counts (`pgstream_sink_messages_*{sink}`,
    /// `pgstream_sink_up`) and its failures (`pgstream_sink_errors_total`);
    /// `/healthz` reports it down while it is.
    pub fn watch_sink(&self, stats: SinkStats) {
        self.0.sinks.watch(stats);
    }

    /// The metrics in Prometheus's text format.
    pub fn encode(&self) -> String {
        let m = &self.0;
        m.sink_errors.inc_by(m.sinks.update());
        m.lag_bytes.set(
            m.server_wal_end
                .get()
                .saturating_sub(m.acknowledged.get())
                .max(0),
        );
        let mut out = Vec::new();
        prometheus::TextEncoder::new()
            .encode(&m.registry.gather(), &mut out)
            .expect("writing to a Vec");
        String::from_utf8(out).expect("the text format is UTF-8")
    }

    /// `Ok` while streaming, else why not, in a few words.
    pub fn health(&self) -> Result<(), String> {
        match self.state() {
            State::Streaming => match self.0.sinks.down() {
                None => Ok(()),
                Some(why) => Err(format!("broker down: {why}")),
            },
            State::Connecting => Err("connecting".into()),
            State::Snapshot => Err("copying the initial snapshot".into()),
            State::Backoff(reason) => Err(format!("backoff: {reason}")),
            State::Stopping => Err("stopping".into()),
        }
    }

    fn state(&self) -> State {
        self.0
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn set_state(&self, state: State) {
        self.0.streaming.set(i64::from(state == State::Streaming));
        *self.0.state.lock().unwrap_or_else(PoisonError::into_inner) = state;
    }

    pub(crate) fn reconnecting(&self) {
        self.0.reconnects.inc();
    }

    /// XLogData from `lsn` or a keepalive up to it arrived.
    pub(crate) fn received(&self, lsn: Lsn, server_wal_end: Lsn) {
        self.0
            .received
            .set(gauge_lsn(lsn).max(self.0.received.get()));
        self.0.server_wal_end.set(gauge_lsn(server_wal_end));
    }

    /// The handler completed everything up to `lsn`.
    pub(crate) fn written(&self, lsn: Lsn) {
        self.0.written.set(gauge_lsn(lsn));
    }

    pub(crate) fn acknowledged(&self, lsn: Lsn) {
        self.0.acknowledged.set(gauge_lsn(lsn));
    }

    /// A keepalive found everything handed on written: no lag.
    pub(crate) fn caught_up(&self) {
        self.0.lag_seconds.set(0.0);
    }

    pub(crate) fn event(&self, op: Op, commit_ts: Option<PgTimestamp>) {
        self.0.events[op_index(op)].inc();
        if let Some(ts) = commit_ts {
            self.0.last_event.set(unix_secs(ts));
        }
    }

    pub(crate) fn transaction(&self) {
        self.0.transactions.inc();
    }

    /// A transaction committed at `commit_ts` is written now.
    pub(crate) fn transaction_written(&self, commit_ts: PgTimestamp) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        // Clocks of different hosts may disagree: never below zero.
        self.0
            .lag_seconds
            .set((now - unix_secs(commit_ts)).max(0.0));
    }

    pub(crate) fn sink_error(&self) {
        self.0.sink_errors.inc();
    }
}

/// An LSN as a gauge's value: LSNs stay far below 2^63.
fn gauge_lsn(lsn: Lsn) -> i64 {
    i64::try_from(lsn.0).unwrap_or(i64::MAX)
}

fn unix_secs(ts: PgTimestamp) -> f64 {
    ts as f64 / 1e6 + PG_EPOCH_UNIX_SECS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_index_their_counters() {
        for (i, op) in OPS.iter().enumerate() {
            assert_eq!(op_index(*op), i, "{op:?}");
        }
    }

    #[test]
    fn names_are_exactly_the_specs() {
        let m = Metrics::new();
        m.event(Op::Insert, Some(0));
        m.received(Lsn(0x30), Lsn(0x40));
        m.acknowledged(Lsn(0x10));
        let text = m.encode();
        for line in [
            "pgstream_events_total{op=\"insert\"} 1",
            "pgstream_events_total{op=\"delete\"} 0",
            "pgstream_transactions_total 0",
            "pgstream_received_lsn 48",
            "pgstream_written_lsn 0",
            "pgstream_acknowledged_lsn 16",
            "pgstream_server_wal_end_lsn 64",
            "pgstream_lag_bytes 48",
            "pgstream_replication_lag_seconds 0",
            "pgstream_reconnects_total 0",
            "pgstream_streaming 0",
            "pgstream_last_event_timestamp_seconds 946684800",
            "pgstream_sink_errors_total 0",
            &format!(
                "pgstream_build_info{{version=\"{}\"}} 1",
                env!("CARGO_PKG_VERSION")
            ),
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
        assert!(
            text.contains("# TYPE pgstream_events_total counter"),
            "{text}"
        );
    }

    #[test]
    fn health_follows_the_state() {
        let m = Metrics::new();
        assert_eq!(m.health(), Err("connecting".into()));
        m.set_state(State::Streaming);
        assert_eq!(m.health(), Ok(()));
        assert!(m.encode().contains("\npgstream_streaming 1\n"));
        m.set_state(State::Backoff("connection refused".into()));
        assert_eq!(m.health(), Err("backoff: connection refused".into()));
    }

    #[test]
    fn sinks_are_counted_and_a_down_one_is_unhealthy() {
        let m = Metrics::new();
        m.set_state(State::Streaming);
        let (first, second) = (SinkStats::new("nats"), SinkStats::new("nats"));
        m.watch_sink(first.clone());
        m.watch_sink(second.clone());
        first.sending(10, 0);
        first.acknowledged(4);
        first.failed("connection refused");
        first.sending(6, 6);
        assert_eq!(m.health(), Err("broker down: connection refused".into()));
        let text = m.encode();
        for line in [
            "pgstream_sink_messages_sent_total{sink=\"nats\"} 10",
            "pgstream_sink_messages_acked_total{sink=\"nats\"} 4",
            "pgstream_sink_messages_retried_total{sink=\"nats\"} 6",
            "pgstream_sink_messages_in_flight{sink=\"nats\"} 6",
            "pgstream_sink_up{sink=\"nats\"} 0",
            "pgstream_sink_up{sink=\"nats-2\"} 1",
            "pgstream_sink_errors_total 1",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
        first.up();
        first.acknowledged(6);
        assert_eq!(m.health(), Ok(()));
        let text = m.encode();
        assert!(text.contains("\npgstream_sink_messages_acked_total{sink=\"nats\"} 10\n"));
        assert!(text.contains("\npgstream_sink_errors_total 1\n"), "{text}");
    }

    #[test]
    fn lag_is_never_negative() {
        let m = Metrics::new();
        // A commit stamped an hour ahead of this clock.
        let future = (SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
            - PG_EPOCH_UNIX_SECS
            + 3600.0)
            * 1e6;
        m.transaction_written(future as PgTimestamp);
        assert!(m
            .encode()
            .contains("\npgstream_replication_lag_seconds 0\n"));
    }
}
