//! Decoders: one per output plugin, all behind [`Decoder`], all producing
//! [`Event`](crate::event::Event)s.
//!
//! Decoders are sans-IO. When a message needs something only the catalog
//! knows (a type's base type, a table's primary key) the decoder answers
//! [`Decoded::Need`] without consuming the message; the pipeline fetches it
//! into the [`Catalog`](catalog::Catalog) and hands the same message again.

pub mod catalog;
pub mod copy;
pub mod pgoutput;
pub mod value;
pub mod wal2json;

use crate::event::{Event, Lsn};
use catalog::{Catalog, CatalogRequest};

/// Receives decoded events in stream order.
pub trait Sink {
    /// Takes one event. Transaction markers (`Begin`, `Commit`) always come
    /// through; the sink decides whether to print them.
    fn event(&mut self, event: &Event<'_>) -> Result<(), crate::error::Error>;
}

/// The outcome of decoding one message.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// The message was decoded; its events went to the sink.
    Done,
    /// Fetch this into the catalog and decode the same message again.
    Need(CatalogRequest),
}

/// Turns one plugin's messages into events.
pub trait Decoder: Send {
    /// Decodes one XLogData payload whose WAL position is `lsn`.
    fn decode(
        &mut self,
        lsn: Lsn,
        data: &[u8],
        catalog: &Catalog,
        sink: &mut dyn Sink,
    ) -> Result<Decoded, DecodeError>;
}

/// A message the decoder could not make sense of.
#[derive(Debug, thiserror::Error)]
#[error("malformed {plugin} message '{tag}' at byte {offset}: {what}")]
pub struct DecodeError {
    pub plugin: &'static str,
    /// The message type, as a printable character.
    pub tag: char,
    pub offset: usize,
    pub what: &'static str,
}
