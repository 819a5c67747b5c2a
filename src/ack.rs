//! What may be acknowledged to the server, and when: a pure state machine.
//!
//! The flush position only ever names the end of a commit record whose
//! transaction the handler has completed, or a keepalive's WAL end that
//! the handler has completed everything before (so that an idle or
//! filtered slot does not hold WAL back). It never moves backwards, and
//! never passes the first change of a streamed transaction still open.
//! Which completions are complete is the pipeline's business; this only
//! hears of positions.

use std::time::Duration;

use tokio::time::Instant;

use crate::event::Lsn;

/// Acknowledgement state for one run.
#[derive(Debug)]
pub(crate) struct Ack {
    /// Last position sent to the server.
    reported: Lsn,
    /// The furthest position whose work the handler completed.
    completed: Lsn,
    in_txn: bool,
    /// Streamed transactions begun and not yet committed or aborted, with
    /// the position of their first change: nothing past it is acknowledged
    /// while they are open.
    streams: Vec<(u32, Lsn)>,
    interval: Duration,
    last_update: Option<Instant>,
}

impl Ack {
    /// Starts at `start`, the slot's confirmed position.
    pub(crate) fn new(start: Lsn, interval: Duration) -> Self {
        Ack {
            reported: start,
            completed: start,
            in_txn: false,
            streams: Vec::new(),
            interval,
            last_update: None,
        }
    }

    /// A new connection: nothing is open, and the server expects an update
    /// at once.
    pub(crate) fn restart(&mut self, start: Lsn, interval: Duration) {
        self.reported = self.reported.max(start);
        self.completed = self.completed.max(start);
        self.in_txn = false;
        self.streams.clear();
        self.interval = interval;
        self.last_update = None;
    }

    /// Whether a transaction is open.
    pub(crate) fn in_txn(&self) -> bool {
        self.in_txn
    }

    /// A transaction (or streamed block) began.
    pub(crate) fn begin(&mut self) {
        self.in_txn = true;
    }

    /// The open transaction's commit has been decoded.
    pub(crate) fn end(&mut self) {
        self.in_txn = false;
    }

    /// A change of streamed transaction `xid` at `lsn` was seen.
    pub(crate) fn stream_opened(&mut self, xid: u32, lsn: Lsn) {
        if !self.streams.iter().any(|&(x, _)| x == xid) {
            self.streams.push((xid, lsn));
        }
    }

    /// Streamed transaction `xid` committed or aborted.
    pub(crate) fn stream_closed(&mut self, xid: u32) {
        self.streams.retain(|&(x, _)| x != xid);
    }

    /// The handler completed everything up to `lsn`.
    pub(crate) fn completed(&mut self, lsn: Lsn) {
        self.completed = self.completed.max(lsn);
    }

    /// The position that may be acknowledged now.
    pub(crate) fn position(&self) -> Lsn {
        let mut lsn = self.completed;
        if let Some(first) = self.streams.iter().map(|&(_, l)| l).min() {
            lsn = lsn.min(first);
        }
        self.reported.max(lsn)
    }

    /// The periodic update interval.
    pub(crate) fn interval(&self) -> Duration {
        self.interval
    }

    /// When the next periodic update is due.
    pub(crate) fn next_due(&self, now: Instant) -> Instant {
        self.last_update.map_or(now, |t| t + self.interval)
    }

    /// Records that a status update carrying `position()` was sent; returns
    /// that position.
    pub(crate) fn report(&mut self, now: Instant) -> Lsn {
        self.reported = self.position();
        self.last_update = Some(now);
        self.reported
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack() -> Ack {
        Ack::new(Lsn(100), Duration::from_secs(10))
    }

    #[test]
    fn advances_to_completed_positions() {
        let mut a = ack();
        assert_eq!(a.position(), Lsn(100));
        a.completed(Lsn(300));
        assert_eq!(a.position(), Lsn(300));
    }

    #[test]
    fn open_streamed_transactions_hold_the_position() {
        let mut a = ack();
        a.stream_opened(7, Lsn(150));
        a.stream_opened(7, Lsn(400));
        a.completed(Lsn(300));
        assert_eq!(
            a.position(),
            Lsn(150),
            "not past the open streamed transaction"
        );
        a.completed(Lsn(500));
        a.stream_closed(7);
        assert_eq!(a.position(), Lsn(500));
    }

    #[test]
    fn never_moves_backwards() {
        let mut a = ack();
        a.completed(Lsn(900));
        assert_eq!(a.report(Instant::now()), Lsn(900));
        a.completed(Lsn(400));
        assert_eq!(a.position(), Lsn(900));
        a.stream_opened(3, Lsn(200));
        assert_eq!(
            a.position(),
            Lsn(900),
            "a stream opened below what was reported"
        );
        a.restart(Lsn(50), Duration::from_secs(1));
        assert_eq!(a.position(), Lsn(900));
    }

    #[test]
    fn throttled_by_interval() {
        let mut a = ack();
        let t0 = Instant::now();
        assert_eq!(a.next_due(t0), t0, "the first update is due at once");
        a.report(t0);
        assert_eq!(
            a.next_due(t0 + Duration::from_secs(3)),
            t0 + Duration::from_secs(10)
        );
    }
}
