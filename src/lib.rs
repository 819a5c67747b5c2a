//! pgstream: PostgreSQL logical replication, one event per row change.
//!
//! The `pgstream` binary prints each change as a JSON line. This library is
//! the same pipeline with your own [`Handler`] in place of the JSON Lines
//! writer: connect → slot → stream → decode → handle → acknowledge, where a
//! transaction is acknowledged to the server only once the handler has
//! completed it (at-least-once delivery).
//!
//! ```no_run
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() -> pgstream::Result<()> {
//!     let conn = pgstream::ConnArgs::conninfo("host=localhost dbname=shop");
//!     let mut config = pgstream::Config::new(&conn, "shop_slot")?;
//!     config.publications = vec!["shop_pub".into()];
//!     let mut handler = pgstream::JsonLines::stdout().map_err(pgstream::Error::Output)?;
//!     let (_stop, shutdown) = tokio::sync::watch::channel(false); // send(true) stops
//!     pgstream::run(config, &mut handler, shutdown).await
//! }
//! ```
//!
//! That is the binary in five lines (with `tokio` and its `macros` and `rt`
//! features as a dependency); put your own [`Handler`] in place of
//! [`JsonLines`] to do something else with each change.
//!
//! # Map
//!
//! - [`Config`] (with [`ConnArgs`]): what to stream and where from.
//! - [`run`]: streams until a stop is asked for ([`Control`]), the configured
//!   end is reached, or an [`Error`] no reconnection can cure.
//! - [`Handler`]: receives each [`Event`] and completes transactions with a
//!   [`Completion`]; every sink is one, [`JsonLines`] is the binary's.
//! - [`status`]: the database's logical slots, their lag and retained WAL
//!   (`pgstream status`).
//! - [`event`]: the event model, borrowed from pgstream's buffers, with the
//!   table ([`event::Relation`]), typed values ([`event::Row::to_json`])
//!   and WAL positions ([`Lsn`]).
//! - [`Error`]: what stops a run, with its exit code; a server's error
//!   ([`ServerError`]) keeps its [`SqlState`].
//!
//! Inside, each layer imports only those below it: the pipeline (setup, the
//! snapshot stage, the stream loop) drives the sinks (the handler trait,
//! the shared encoder, JSON Lines), the walsender client and ordinary SQL;
//! decoders turn plugin output into the model, which imports nothing.
//!
//! docs/library.md describes the delivery contract; docs/architecture.md
//! the modules inside.
#![warn(missing_docs, unreachable_pub)]

mod ack;
mod config;
mod conninfo;
mod decode;
mod error;
pub mod event;
mod filter;
mod metrics;
mod pipeline;
mod replication;
mod sink;
mod sql;
mod stats;
pub mod status;
mod systemd;
mod tls;

pub use config::{Config, EndLsn, Plugin};
pub use conninfo::ConnArgs;
pub use decode::DecodeError;
pub use error::{Error, Result, ServerError};
pub use event::{Event, Lsn, Op, ParseLsnError};
pub use metrics::Metrics;
pub use pipeline::{run, Control, SLOT_LOG};
pub use sink::broker::Sink;
pub use sink::encode::Format;
pub use sink::jsonl::{JsonLines, Reopen};
pub use sink::stats::SinkStats;
pub use sink::{Completion, Handler, HandlerError};
/// SQLSTATE codes, as [`ServerError::code`] holds them.
pub use tokio_postgres::error::SqlState;

/// docs/library.md's example compiles (`cargo test --doc`).
#[cfg(doctest)]
#[doc = include_str!("../docs/library.md")]
struct LibraryDoc;
