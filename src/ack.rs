//! What may be acknowledged to the server, and when: a pure state machine.
//!
//! The flush position only ever names the end of a commit record whose
//! transaction was written and flushed in full, or — when nothing is in
//! flight — a keepalive's WAL end, so that an idle or filtered slot does not
//! hold WAL back. It never moves backwards.
//!
//! Output is handed to the writer in numbered chunks; the writer reports the
//! highest chunk number it has flushed together with the last commit end it
//! contained.

use std::time::Duration;

use tokio::time::Instant;

use crate::event::Lsn;

/// Acknowledgement state for one replication session.
#[derive(Debug)]
pub struct Ack {
    /// Last position sent to the server.
    reported: Lsn,
    /// End of the last transaction written and flushed in full.
    flushed: Lsn,
    /// Chunks handed to the writer / confirmed flushed by it.
    handed: u64,
    confirmed: u64,
    in_txn: bool,
    /// A keepalive position seen while no transaction was open, safe to
    /// acknowledge once chunk `.1` (everything received before it) is flushed.
    idle: Option<(Lsn, u64)>,
    /// Streamed transactions begun and not yet committed or aborted, with
    /// the position of their first change: nothing past it is acknowledged
    /// while they are open.
    streams: Vec<(u32, Lsn)>,
    interval: Duration,
    last_update: Option<Instant>,
}

impl Ack {
    /// Starts at `start`, the slot's confirmed position.
    pub fn new(start: Lsn, interval: Duration) -> Self {
        Ack {
            reported: start,
            flushed: start,
            handed: 0,
            confirmed: 0,
            in_txn: false,
            idle: None,
            streams: Vec::new(),
            interval,
            last_update: None,
        }
    }

    /// A new connection: nothing is open, keepalives seen before no longer
    /// count, and the server expects an update at once.
    pub fn restart(&mut self, start: Lsn, interval: Duration) {
        self.reported = self.reported.max(start);
        self.flushed = self.flushed.max(start);
        self.in_txn = false;
        self.idle = None;
        self.streams.clear();
        self.interval = interval;
        self.last_update = None;
    }

    /// Whether a transaction is open.
    pub fn in_txn(&self) -> bool {
        self.in_txn
    }

    /// A transaction (or streamed block) began: nothing after this point is
    /// safe until its commit is flushed.
    pub fn begin(&mut self) {
        self.in_txn = true;
    }

    /// The open transaction's commit has been decoded.
    pub fn end(&mut self) {
        self.in_txn = false;
    }

    /// A change of streamed transaction `xid` at `lsn` was seen.
    pub fn stream_opened(&mut self, xid: u32, lsn: Lsn) {
        if !self.streams.iter().any(|&(x, _)| x == xid) {
            self.streams.push((xid, lsn));
        }
    }

    /// Streamed transaction `xid` committed or aborted.
    pub fn stream_closed(&mut self, xid: u32) {
        self.streams.retain(|&(x, _)| x != xid);
    }

    /// A chunk was handed to the writer; returns its number.
    pub fn handed(&mut self) -> u64 {
        self.handed += 1;
        self.handed
    }

    /// The writer flushed every chunk up to `seq`; `commit_end` is the end of
    /// the last transaction those chunks completed, if any.
    pub fn flushed(&mut self, seq: u64, commit_end: Option<Lsn>) {
        self.confirmed = self.confirmed.max(seq);
        if let Some(end) = commit_end {
            self.flushed = self.flushed.max(end);
        }
    }

    /// The server reported its WAL end in a keepalive. `unhanded`: output
    /// decoded before it is still buffered, and goes into the next chunk.
    pub fn keepalive(&mut self, wal_end: Lsn, unhanded: bool) {
        if !self.in_txn {
            self.idle = Some((wal_end, self.handed + u64::from(unhanded)));
        }
    }

    /// Whether every chunk handed over has been flushed.
    pub fn writer_idle(&self) -> bool {
        self.confirmed >= self.handed
    }

    /// The position that may be acknowledged now.
    pub fn position(&self) -> Lsn {
        let idle = match self.idle {
            Some((lsn, seq)) if self.confirmed >= seq => lsn,
            _ => 0,
        };
        let mut lsn = self.flushed.max(idle);
        if let Some(first) = self.streams.iter().map(|&(_, l)| l).min() {
            lsn = lsn.min(first);
        }
        self.reported.max(lsn)
    }

    /// The periodic update interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// When the next periodic update is due.
    pub fn next_due(&self, now: Instant) -> Instant {
        self.last_update.map_or(now, |t| t + self.interval)
    }

    /// Records that a status update carrying `position()` was sent; returns
    /// that position.
    pub fn report(&mut self, now: Instant) -> Lsn {
        self.reported = self.position();
        self.last_update = Some(now);
        self.reported
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack() -> Ack {
        Ack::new(100, Duration::from_secs(10))
    }

    #[test]
    fn advances_only_to_flushed_commits() {
        let mut a = ack();
        a.begin();
        let s1 = a.handed(); // first half of a big transaction
        a.flushed(s1, None);
        assert_eq!(
            a.position(),
            100,
            "a partly written transaction is not acknowledged"
        );
        a.end();
        let s2 = a.handed();
        assert_eq!(a.position(), 100, "handed over is not written");
        a.flushed(s2, Some(300));
        assert_eq!(a.position(), 300);
    }

    #[test]
    fn keepalive_counts_only_when_idle_and_written() {
        let mut a = ack();
        a.begin();
        a.keepalive(500, false);
        assert_eq!(a.position(), 100, "mid-transaction keepalive");
        a.end();
        let s = a.handed();
        a.keepalive(600, false);
        assert_eq!(
            a.position(),
            100,
            "chunk before the keepalive not yet flushed"
        );
        a.flushed(s, Some(550));
        assert_eq!(a.position(), 600);
    }

    #[test]
    fn keepalive_waits_for_lines_not_yet_handed_over() {
        let mut a = ack();
        a.keepalive(700, true);
        assert_eq!(
            a.position(),
            100,
            "buffered lines before the keepalive are not written"
        );
        let s = a.handed();
        a.flushed(s, Some(650));
        assert_eq!(a.position(), 700);
    }

    #[test]
    fn keepalive_before_a_new_transaction_stays_valid() {
        let mut a = ack();
        a.keepalive(200, false);
        a.begin();
        assert_eq!(a.position(), 200);
    }

    #[test]
    fn open_streamed_transactions_hold_the_position() {
        let mut a = ack();
        a.stream_opened(7, 150);
        a.stream_opened(7, 400);
        let s = a.handed();
        a.flushed(s, Some(300));
        a.keepalive(500, false);
        assert_eq!(a.position(), 150, "not past the open streamed transaction");
        a.stream_closed(7);
        assert_eq!(a.position(), 500);
    }

    #[test]
    fn never_moves_backwards() {
        let mut a = ack();
        a.keepalive(900, false);
        assert_eq!(a.report(Instant::now()), 900);
        let s = a.handed();
        a.flushed(s, Some(400));
        assert_eq!(a.position(), 900);
        a.flushed(s, Some(300));
        assert_eq!(a.position(), 900);
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

    #[test]
    fn writer_idle_tracks_chunks() {
        let mut a = ack();
        assert!(a.writer_idle());
        let s = a.handed();
        assert!(!a.writer_idle());
        a.flushed(s, None);
        assert!(a.writer_idle());
    }
}
