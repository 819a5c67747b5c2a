//! Which decoded events reach the handler: filters, `--include-*`, stop
//! rules, the change count and the acknowledgement state they imply.

use crate::event::{Event, Lsn, Op};

use super::link::Link;
use super::Stop;

/// What to do with one decoded event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    Skip,
    Deliver,
    /// A transaction ended: deliver it if `deliver`, then complete it.
    Commit {
        deliver: bool,
    },
}

impl Link<'_> {
    fn max_reached(&self) -> bool {
        self.config
            .max_changes
            .is_some_and(|max| self.st.stats.changes >= max)
    }

    /// A transaction (plain or streamed) ended at `end`.
    fn finished(&mut self, end: Option<Lsn>, streamed_xid: Option<u32>) {
        self.st.stats.transactions += 1;
        let holds_last = match self.stop.after_stream {
            Some(xid) => streamed_xid == Some(xid),
            None => streamed_xid.is_none(),
        };
        if self.max_reached() && holds_last {
            self.stop.request(Stop::MaxChanges);
        } else if let (Some(limit), Some(end)) = (self.st.end_lsn, end) {
            // Any later transaction commits after this one ends.
            if end > limit {
                self.stop.request(Stop::EndLsn);
            }
        }
    }

    /// Decides what becomes of `ev`, updating the stop rules and the
    /// acknowledgement state as it goes.
    pub(super) fn admit(&mut self, ev: &Event<'_>) -> Action {
        if self.stop.requested() {
            // Decided to stop mid-message (a Begin past --end-lsn): the rest
            // comes again next run.
            return Action::Skip;
        }
        if let Some(rel) = ev.relation {
            if !self.config.tables.matches(&rel.schema, &rel.name) {
                return Action::Skip;
            }
        }
        let end_lsn = self.st.end_lsn;
        let past_end = |lsn: Option<Lsn>| matches!((end_lsn, lsn), (Some(end), Some(l)) if l > end);
        let shown = |yes: bool| if yes { Action::Deliver } else { Action::Skip };
        match ev.op {
            Op::Begin => {
                if past_end(ev.commit_lsn) {
                    self.stop.request(Stop::EndLsn);
                    return Action::Skip;
                }
                self.st.ack.begin();
                shown(self.config.include_tx)
            }
            Op::Commit => {
                self.st.ack.end();
                self.finished(ev.end_lsn, None);
                Action::Commit {
                    deliver: self.config.include_tx,
                }
            }
            // A prepared transaction is a unit of its own: the server never
            // sends its changes again once its prepare is acknowledged.
            Op::Prepare => {
                self.st.ack.end();
                self.finished(ev.end_lsn, None);
                Action::Commit { deliver: true }
            }
            Op::CommitPrepared | Op::RollbackPrepared => {
                if past_end(ev.commit_lsn) {
                    self.stop.request(Stop::EndLsn);
                    return Action::Skip;
                }
                self.finished(ev.end_lsn, None);
                Action::Commit { deliver: true }
            }
            Op::StreamCommit | Op::StreamPrepare => {
                if past_end(ev.commit_lsn.or(ev.lsn)) {
                    self.stop.request(Stop::EndLsn);
                    return Action::Skip;
                }
                if let Some(xid) = ev.xid {
                    self.st.ack.stream_closed(xid);
                }
                self.finished(ev.end_lsn, ev.xid);
                Action::Commit { deliver: true }
            }
            Op::Relation => shown(self.config.include_schema),
            Op::StreamAbort => {
                if let (Some(xid), None) = (ev.xid, ev.subxid) {
                    self.st.ack.stream_closed(xid);
                    if self.stop.after_stream == Some(xid) && self.max_reached() {
                        self.stop.request(Stop::MaxChanges);
                    }
                }
                Action::Deliver
            }
            op => {
                if let (true, Some(xid), Some(lsn)) = (ev.streamed, ev.xid, ev.lsn) {
                    self.st.ack.stream_opened(xid, lsn);
                }
                // A non-transactional message is a unit of its own.
                let alone = ev.message.is_some_and(|m| !m.transactional);
                if op.is_change() {
                    self.st.stats.changes += 1;
                    if self.config.max_changes == Some(self.st.stats.changes) {
                        if ev.streamed {
                            self.stop.after_stream = ev.xid;
                        } else if alone {
                            self.stop.request(Stop::MaxChanges);
                        }
                    }
                }
                if alone {
                    Action::Commit { deliver: true }
                } else {
                    Action::Deliver
                }
            }
        }
    }
}
