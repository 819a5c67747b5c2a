//! What a broker sink tells the operator (SPEC §10): its delivery task
//! counts messages as they go and come back, and `/metrics` reads the
//! counts when scraped. Relaxed atomics: one writer, and a scrape needs no
//! ordering between them.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};

/// A broker sink's counts, shared by its clones: take one with
/// [`Sink::stats`](crate::Sink::stats) and give it to
/// [`Metrics::watch_sink`](crate::Metrics::watch_sink).
#[derive(Debug, Clone)]
pub struct SinkStats(Arc<Counts>);

#[derive(Debug)]
struct Counts {
    broker: &'static str,
    sent: AtomicU64,
    acked: AtomicU64,
    retried: AtomicU64,
    failures: AtomicU64,
    /// Why the broker cannot be reached or refuses, while it does.
    down: Mutex<Option<String>>,
}

impl SinkStats {
    pub(crate) fn new(broker: &'static str) -> SinkStats {
        SinkStats(Arc::new(Counts {
            broker,
            sent: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            down: Mutex::new(None),
        }))
    }

    /// The broker's URL scheme: `nats`, `redis`.
    pub fn broker(&self) -> &'static str {
        self.0.broker
    }

    /// Messages sent to the broker a first time.
    pub fn sent(&self) -> u64 {
        self.0.sent.load(Relaxed)
    }

    /// Messages the broker acknowledged.
    pub fn acked(&self) -> u64 {
        self.0.acked.load(Relaxed)
    }

    /// Messages sent again after a failure left them unacknowledged.
    pub fn retried(&self) -> u64 {
        self.0.retried.load(Relaxed)
    }

    /// Sessions with the broker that failed (down, refusing, timed out).
    pub fn failures(&self) -> u64 {
        self.0.failures.load(Relaxed)
    }

    /// Why the broker is unusable now, if it is.
    pub fn down(&self) -> Option<String> {
        self.down_slot().clone()
    }

    /// `n` messages went out, the first `again` of them a second time or more.
    pub(crate) fn sending(&self, n: usize, again: usize) {
        self.0.sent.fetch_add((n - again) as u64, Relaxed);
        self.0.retried.fetch_add(again as u64, Relaxed);
    }

    pub(crate) fn acknowledged(&self, n: usize) {
        self.0.acked.fetch_add(n as u64, Relaxed);
    }

    pub(crate) fn failed(&self, why: &str) {
        self.0.failures.fetch_add(1, Relaxed);
        *self.down_slot() = Some(why.to_owned());
    }

    /// A session is up again.
    pub(crate) fn up(&self) {
        *self.down_slot() = None;
    }

    fn down_slot(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.0.down.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_state() {
        let s = SinkStats::new("nats");
        s.sending(5, 0);
        s.acknowledged(2);
        s.failed("connection refused");
        assert_eq!(s.down().as_deref(), Some("connection refused"));
        s.up();
        s.sending(3, 3);
        s.acknowledged(3);
        let clone = s.clone();
        assert_eq!(
            (
                clone.sent(),
                clone.acked(),
                clone.retried(),
                clone.failures()
            ),
            (5, 5, 3, 1)
        );
        assert_eq!(clone.down(), None);
    }
}
