//! Decoders: one per output plugin, all behind [`Decoder`], all producing
//! [`Event`](crate::event::Event)s.
//!
//! Decoders are sans-IO. One call decodes one message into an [`Events`]
//! that borrows the decoder, the message and the catalog: the caller can
//! handle the events (and wait while doing so) before it decodes the next
//! message. When a message needs something only the catalog knows (a
//! type's base type, a table's primary key) the decoder answers
//! [`Decoded::Need`] without consuming the message or giving any event; the
//! pipeline fetches it into the [`Catalog`](catalog::Catalog) and hands the
//! same message again.

pub(crate) mod catalog;
pub(crate) mod copy;
pub(crate) mod pgoutput;
pub(crate) mod value;
pub(crate) mod wal2json;

use crate::event::{Event, Lsn};
use catalog::{Catalog, CatalogRequest};

/// The events one message decoded to, borrowing the decoder, the message
/// and the catalog (`'d`). Nearly every message gives at most one; pushing
/// the first allocates nothing.
#[derive(Debug, Default)]
pub(crate) struct Events<'d> {
    first: Option<Event<'d>>,
    /// The events after the first, in order.
    more: Vec<Event<'d>>,
}

impl<'d> Events<'d> {
    /// No events.
    pub(crate) fn new() -> Self {
        Events {
            first: None,
            more: Vec::new(),
        }
    }

    /// Adds an event after those already there. Transaction markers
    /// (`Begin`, `Commit`) are pushed too; the caller decides whether to
    /// print them.
    pub(crate) fn push(&mut self, ev: Event<'d>) {
        if self.first.is_none() {
            self.first = Some(ev);
        } else {
            self.more.push(ev);
        }
    }

    /// The events in the order they were pushed (stream order).
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Event<'d>> + '_ {
        self.first.iter().chain(&self.more)
    }
}

/// The outcome of decoding one message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded {
    /// The message was decoded; its events are in `out`.
    Done,
    /// Fetch this into the catalog and decode the same message again.
    Need(CatalogRequest),
}

/// Turns one plugin's messages into events.
pub(crate) trait Decoder: Send + Sync {
    /// Decodes one XLogData payload whose WAL position is `lsn` into `out`.
    /// On `Decoded::Need`, `out` holds nothing (the same message comes again).
    /// On an error, `out` may hold events pushed before the message was found
    /// malformed; they go with it.
    fn decode<'d>(
        &'d mut self,
        lsn: Lsn,
        data: &'d [u8],
        catalog: &'d Catalog,
        out: &mut Events<'d>,
    ) -> Result<Decoded, DecodeError>;
}

/// A message the decoder could not make sense of.
#[derive(Debug, thiserror::Error)]
#[error("malformed {plugin} message '{tag}' at byte {offset}: {what}")]
pub struct DecodeError {
    /// `pgoutput` or `wal2json`.
    pub plugin: &'static str,
    /// The message type, as a printable character.
    pub tag: char,
    /// Where in the message it stopped making sense.
    pub offset: usize,
    /// What was wrong.
    pub what: &'static str,
}

/// A fixed pseudo-random sequence (xorshift) for the decoders' fuzz tests:
/// the same inputs every run.
#[cfg(test)]
pub(crate) fn fuzz_numbers() -> impl FnMut() -> usize {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Op;

    #[test]
    fn events_keep_push_order() {
        let mut evs = Events::new();
        assert_eq!(evs.iter().count(), 0);
        evs.push(Event::new(Op::Begin));
        assert_eq!(evs.more.capacity(), 0, "the first push allocates nothing");
        evs.push(Event::new(Op::Insert));
        evs.push(Event::new(Op::Commit));
        let ops: Vec<Op> = evs.iter().map(|e| e.op).collect();
        assert_eq!(ops, [Op::Begin, Op::Insert, Op::Commit]);
    }
}
