//! Per-sink metrics (`--sink`): the families are brought up to each
//! watched sink's [`SinkStats`] when scraped, so the delivery task only
//! adds to its atomics.

use std::sync::{Mutex, MutexGuard, PoisonError};

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

use crate::sink::stats::SinkStats;

pub(super) struct Sinks {
    watched: Mutex<Vec<Watched>>,
    sent: IntCounterVec,
    acked: IntCounterVec,
    retried: IntCounterVec,
    in_flight: IntGaugeVec,
    up: IntGaugeVec,
}

struct Watched {
    /// The `sink` label: the broker's scheme, `-2`, `-3`… for a second
    /// sink to the same kind of broker.
    label: String,
    stats: SinkStats,
    /// Failures already counted in `pgstream_sink_errors_total`.
    failures: u64,
}

impl Sinks {
    pub(super) fn new(registry: &Registry) -> Sinks {
        let counter = |name: &str, help: &str| {
            let c = IntCounterVec::new(Opts::new(name, help), &["sink"]).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGaugeVec::new(Opts::new(name, help), &["sink"]).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        Sinks {
            watched: Mutex::new(Vec::new()),
            sent: counter(
                "pgstream_sink_messages_sent_total",
                "Messages sent to the broker a first time.",
            ),
            acked: counter(
                "pgstream_sink_messages_acked_total",
                "Messages the broker acknowledged.",
            ),
            retried: counter(
                "pgstream_sink_messages_retried_total",
                "Messages sent again after a broker failure left them unacknowledged.",
            ),
            in_flight: gauge(
                "pgstream_sink_messages_in_flight",
                "Messages sent and not acknowledged yet.",
            ),
            up: gauge(
                "pgstream_sink_up",
                "1 while the broker takes messages, 0 while it is down or refusing.",
            ),
        }
    }

    pub(super) fn watch(&self, stats: SinkStats) {
        let mut watched = self.watched();
        let same = watched
            .iter()
            .filter(|w| w.stats.broker() == stats.broker())
            .count();
        let label = match same {
            0 => stats.broker().to_owned(),
            n => format!("{}-{}", stats.broker(), n + 1),
        };
        for family in [&self.sent, &self.acked, &self.retried] {
            family.with_label_values(&[&label]);
        }
        watched.push(Watched {
            label,
            stats,
            failures: 0,
        });
    }

    /// Brings the families up to the sinks' counts; returns the failures
    /// since the last call.
    pub(super) fn update(&self) -> u64 {
        let mut new_failures = 0;
        for w in self.watched().iter_mut() {
            let label = [w.label.as_str()];
            let (sent, acked) = (w.stats.sent(), w.stats.acked());
            for (family, value) in [
                (&self.sent, sent),
                (&self.acked, acked),
                (&self.retried, w.stats.retried()),
            ] {
                let c = family.with_label_values(&label);
                c.inc_by(value.saturating_sub(c.get()));
            }
            self.in_flight
                .with_label_values(&label)
                .set(i64::try_from(sent.saturating_sub(acked)).unwrap_or(i64::MAX));
            self.up
                .with_label_values(&label)
                .set(i64::from(w.stats.down().is_none()));
            let failures = w.stats.failures();
            new_failures += failures - w.failures;
            w.failures = failures;
        }
        new_failures
    }

    /// Why a watched broker is unusable, if one is.
    pub(super) fn down(&self) -> Option<String> {
        self.watched().iter().find_map(|w| w.stats.down())
    }

    fn watched(&self) -> MutexGuard<'_, Vec<Watched>> {
        self.watched.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
