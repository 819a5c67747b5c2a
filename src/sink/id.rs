//! Idempotency ids: the same for an event each time it is replayed, and
//! distinct between events, so a broker (JetStream's duplicate window) or a
//! consumer can drop what a restart sends again.
//!
//! An id is `UNIT-N`: the unit of work the event belongs to, and the event's
//! ordinal among the events this sink received for that unit. The unit is
//! named by what the server fixes for it: a transaction's `commit_lsn`; a
//! streamed transaction's `x` + xid (its commit is not known while it
//! streams, and its changes may come in several chunks between other
//! transactions); the snapshot's `s` + `snapshot_lsn`; a message outside
//! any transaction, `m` + its LSN. The server sends a unit again from its
//! start, so the ordinals come out the same as long as the flags that
//! select events are (filters, `--include-*`).

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::event::{Event, Op};

/// Counts each unit's events.
#[derive(Debug, Default)]
pub(crate) struct Ids {
    /// The open (non-streamed) unit and its next ordinal.
    unit: Option<(String, u64)>,
    /// Streamed transactions under way: xid → next ordinal.
    streams: HashMap<u32, u64>,
}

impl Ids {
    /// The id of `event`, the next one of its unit.
    pub(crate) fn next(&mut self, event: &Event<'_>) -> String {
        let stream_end = matches!(
            (event.op, event.subxid),
            (Op::StreamCommit | Op::StreamPrepare, _) | (Op::StreamAbort, None)
        );
        let streamed = event.streamed || stream_end || event.op == Op::StreamAbort;
        if let (true, Some(xid)) = (streamed, event.xid) {
            let n = self.streams.entry(xid).or_insert(0);
            let id = format!("x{xid}-{n}");
            *n += 1;
            if stream_end {
                self.streams.remove(&xid);
            }
            return id;
        }
        let mut unit = String::new();
        let _ = match (event.snapshot_lsn, event.commit_lsn, event.xid, event.lsn) {
            (Some(lsn), ..) => write!(unit, "s{lsn}"),
            (None, Some(lsn), ..) => write!(unit, "{lsn}"),
            (None, None, Some(xid), _) => write!(unit, "t{xid}"),
            (None, None, None, Some(lsn)) => write!(unit, "m{lsn}"),
            (None, None, None, None) => write!(unit, "_"),
        };
        if self.unit.as_ref().is_none_or(|(open, _)| *open != unit) {
            self.unit = Some((unit, 0));
        }
        let Some((unit, n)) = self.unit.as_mut() else {
            unreachable!("set above")
        };
        let id = format!("{unit}-{n}");
        *n += 1;
        id
    }

    /// A unit of work ended (`Handler::commit`): the next event starts
    /// another, even one the server names the same.
    pub(crate) fn end(&mut self) {
        self.unit = None;
    }

    /// The stream starts again (a lost connection): the units under way
    /// come again from their start.
    pub(crate) fn restart(&mut self) {
        self.unit = None;
        self.streams.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Lsn;

    fn ev(op: Op, xid: u32, commit: Option<u64>, streamed: bool) -> Event<'static> {
        let mut e = Event::new(op);
        e.xid = Some(xid);
        e.commit_lsn = commit.map(Lsn);
        e.streamed = streamed;
        e
    }

    #[test]
    fn ordinals_per_unit_the_same_after_a_restart() {
        let mut ids = Ids::default();
        let insert = ev(Op::Insert, 7, Some(0x10), false);
        assert_eq!([ids.next(&insert), ids.next(&insert)], ["0/10-0", "0/10-1"]);
        ids.restart();
        assert_eq!(ids.next(&insert), "0/10-0", "a replay gets the same ids");
        ids.end();
        let next_tx = ev(Op::Insert, 8, Some(0x20), false);
        assert_eq!(ids.next(&next_tx), "0/20-0");
    }

    #[test]
    fn streamed_transactions_count_across_chunks() {
        let mut ids = Ids::default();
        let streamed = ev(Op::Insert, 9, None, true);
        assert_eq!(ids.next(&streamed), "x9-0");
        let other = ev(Op::Insert, 10, Some(0x30), false);
        assert_eq!(ids.next(&other), "0/30-0");
        ids.end();
        assert_eq!(ids.next(&streamed), "x9-1");
        let commit = ev(Op::StreamCommit, 9, Some(0x40), false);
        assert_eq!(ids.next(&commit), "x9-2");
        assert_eq!(
            ids.next(&streamed),
            "x9-0",
            "a new stream of xid 9 (after wraparound) starts over"
        );
    }

    #[test]
    fn snapshot_reads_and_lone_messages() {
        let mut ids = Ids::default();
        let mut read = Event::new(Op::Read);
        read.snapshot_lsn = Some(Lsn(0x50));
        assert_eq!([ids.next(&read), ids.next(&read)], ["s0/50-0", "s0/50-1"]);
        let mut message = Event::new(Op::Message);
        message.lsn = Some(Lsn(0x60));
        assert_eq!(ids.next(&message), "m0/60-0");
    }
}
