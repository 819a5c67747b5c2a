//! Event → message body, for every sink (SPEC §9).
//!
//! A format is one [`Format`] variant and one module that lays an event out
//! ([`json`] pgstream's, [`debezium`] Debezium's); the value mapping they
//! share (parsing PostgreSQL's text output; JSON strings, numbers,
//! timestamps, base64) is [`value`], so a new format parses no value twice.
//! Everything writes straight into the caller's buffer: no allocation per
//! event.

mod debezium;
mod json;
pub(crate) mod value;

use crate::event::Event;

/// How each event is laid out (`--format`, docs/output.md): a property of
/// the encoder that every sink shares, so every sink writes either.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// pgstream's own JSON line (SPEC §2).
    #[default]
    Pgstream,
    /// The change events of Debezium's PostgreSQL connector, as its JSON
    /// converter writes them (SPEC §9). Only row changes and truncates are
    /// written.
    Debezium {
        /// `source.name` (`--topic-prefix`; the binary's default is the
        /// slot name).
        topic_prefix: String,
        /// `source.db`: the database's name.
        database: String,
    },
}

/// A [`Format`] at work, with what it remembers between events.
#[derive(Debug)]
pub(crate) enum Encoder {
    Pgstream,
    Debezium(Box<debezium::Debezium>),
}

impl Encoder {
    pub(crate) fn new(format: &Format) -> Encoder {
        match format {
            Format::Pgstream => Encoder::Pgstream,
            Format::Debezium {
                topic_prefix,
                database,
            } => Encoder::Debezium(Box::new(debezium::Debezium::new(topic_prefix, database))),
        }
    }

    /// Appends what `event` becomes, whole lines each with its `\n`: one
    /// (pgstream), or zero to two (Debezium).
    pub(crate) fn write_event(&mut self, out: &mut Vec<u8>, event: &Event<'_>) {
        match self {
            Encoder::Pgstream => json::write_event(out, event),
            Encoder::Debezium(d) => d.write_event(out, event),
        }
    }

    /// Whether the format holds a record back (Debezium's latest
    /// `--snapshot` row, written once the next event shows whether it is
    /// the last).
    pub(crate) fn holds(&self) -> bool {
        matches!(self, Encoder::Debezium(d) if d.holds())
    }

    /// Appends the record held back if `event` lets it go (it would go
    /// first in what [`write_event`](Encoder::write_event) or
    /// [`commit`](Encoder::commit) appends for `event`); says whether it
    /// did. For a sink that routes each record by its own event.
    pub(crate) fn release(&mut self, out: &mut Vec<u8>, event: &Event<'_>) -> bool {
        match self {
            Encoder::Pgstream => false,
            Encoder::Debezium(d) => d.release(out, event),
        }
    }

    /// Appends the key of `event`'s old image (an update's, a delete's) as
    /// compact JSON, and says whether it has one.
    pub(crate) fn write_old_key(out: &mut Vec<u8>, event: &Event<'_>) -> bool {
        event
            .old
            .is_some_and(|old| json::write_row_key(out, old, None))
    }

    /// Appends the event's key as compact JSON (`{"id":7}`, as in
    /// pgstream's line, whatever the format) and says whether it has one.
    pub(crate) fn write_key(out: &mut Vec<u8>, event: &Event<'_>) -> bool {
        json::write_key_object(out, event)
    }

    /// Called when a unit of work ends (`Handler::commit`, whose event is
    /// `commit`): appends what the format held back for it, if anything.
    pub(crate) fn commit(&mut self, out: &mut Vec<u8>, commit: &Event<'_>) {
        if let Encoder::Debezium(d) = self {
            d.commit(out, commit);
        }
    }
}
