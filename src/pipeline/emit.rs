//! Where decoded events go: filters, stop rules, counts, JSON lines.

use crate::ack::Ack;
use crate::config::Config;
use crate::decode::Sink;
use crate::error::Result;
use crate::event::{Event, Lsn, Op};
use crate::output::write_event;
use crate::stats::Stats;

use super::Stop;

/// Where decoded events go: the stop rules, the change count, and the
/// JSON line for each event that is printed.
pub(super) struct Emitter<'a> {
    pub(super) config: &'a Config,
    pub(super) out: &'a mut Vec<u8>,
    pub(super) commit_end: &'a mut Option<Lsn>,
    pub(super) stop: &'a mut Option<Stop>,
    /// With --max-changes: the streamed transaction that holds the last
    /// change, whose stream_commit/abort ends the run.
    pub(super) stop_after_stream: &'a mut Option<u32>,
    pub(super) ack: &'a mut Ack,
    pub(super) stats: &'a mut Stats,
    pub(super) end_lsn: Option<Lsn>,
}

impl Emitter<'_> {
    fn max_reached(&self) -> bool {
        self.config
            .max_changes
            .is_some_and(|max| self.stats.changes >= max)
    }

    /// A transaction (plain or streamed) ended at `end`.
    fn finished(&mut self, end: Option<Lsn>, streamed_xid: Option<u32>) {
        *self.commit_end = end.or(*self.commit_end);
        self.stats.transactions += 1;
        let holds_last = match *self.stop_after_stream {
            Some(xid) => streamed_xid == Some(xid),
            None => streamed_xid.is_none(),
        };
        if self.max_reached() && holds_last {
            *self.stop = Some(Stop::MaxChanges);
        } else if let (Some(limit), Some(end)) = (self.end_lsn, end) {
            // Any later transaction commits after this one ends.
            if end > limit {
                *self.stop = Some(Stop::EndLsn);
            }
        }
    }
}

impl Sink for Emitter<'_> {
    fn event(&mut self, ev: &Event<'_>) -> Result<()> {
        if self.stop.is_some() {
            // Decided to stop mid-message (a Begin past --end-lsn): the rest
            // comes again next run.
            return Ok(());
        }
        if let Some(rel) = ev.relation {
            if !self.config.tables.matches(&rel.schema, &rel.name) {
                return Ok(());
            }
        }
        let past_end =
            |lsn: Option<Lsn>| matches!((self.end_lsn, lsn), (Some(end), Some(l)) if l > end);
        match ev.op {
            Op::Begin => {
                if past_end(ev.commit_lsn) {
                    *self.stop = Some(Stop::EndLsn);
                    return Ok(());
                }
                self.ack.begin();
                if self.config.include_tx {
                    write_event(self.out, ev);
                }
            }
            Op::Commit => {
                if self.config.include_tx {
                    write_event(self.out, ev);
                }
                self.ack.end();
                self.finished(ev.end_lsn, None);
            }
            Op::StreamCommit => {
                if past_end(ev.commit_lsn) {
                    *self.stop = Some(Stop::EndLsn);
                    return Ok(());
                }
                write_event(self.out, ev);
                if let Some(xid) = ev.xid {
                    self.ack.stream_closed(xid);
                }
                self.finished(ev.end_lsn, ev.xid);
            }
            Op::Relation => {
                if self.config.include_schema {
                    write_event(self.out, ev);
                }
            }
            Op::StreamAbort => {
                write_event(self.out, ev);
                if let (Some(xid), None) = (ev.xid, ev.subxid) {
                    self.ack.stream_closed(xid);
                    if *self.stop_after_stream == Some(xid) && self.max_reached() {
                        *self.stop = Some(Stop::MaxChanges);
                    }
                }
            }
            op => {
                if let (true, Some(xid), Some(lsn)) = (ev.streamed, ev.xid, ev.lsn) {
                    self.ack.stream_opened(xid, lsn);
                }
                write_event(self.out, ev);
                if op.is_change() {
                    self.stats.changes += 1;
                    if self.config.max_changes == Some(self.stats.changes) {
                        if ev.streamed {
                            *self.stop_after_stream = ev.xid;
                        } else if ev.message.is_some_and(|m| !m.transactional) {
                            // A non-transactional message is a unit of its own.
                            *self.stop = Some(Stop::MaxChanges);
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
