//! pgstream: PostgreSQL logical replication → one JSON line per change.
//!
//! # Layout
//!
//! - [`cli`], [`config`], [`conninfo`]: flags, environment and `~/.pgpass`
//!   into one validated [`config::Config`].
//! - [`replication`]: our walsender connection (postgres-protocol over
//!   tokio sockets): startup, authentication, replication commands, CopyBoth.
//! - [`sql`]: ordinary tokio-postgres connections for catalog look-ups, and
//!   `--snapshot`'s parallel copy over a pool of them ([`sql::snapshot`]).
//! - [`decode`]: one [`decode::Decoder`] per output plugin, all producing
//!   [`event::Event`]s; [`decode::value`] maps PostgreSQL text to JSON.
//! - [`output`]: an event as one JSON line; [`writer`]: the output thread.
//! - [`filter`]: `--table` / `--exclude-table` patterns.
//! - [`ack`]: what may be acknowledged to the server, and when.
//! - [`pipeline`]: the loop that ties them together and reconnects.
//! - [`stats`]: progress and lag lines; [`systemd`]: sd_notify.
//!
//! The flow is connect → slot → stream → decode → write → acknowledge; the
//! only position ever acknowledged is the end of a transaction whose lines
//! are all written and flushed.
#![allow(missing_docs)]

pub mod ack;
pub mod argv;
pub mod cli;
pub mod config;
pub mod conninfo;
pub mod decode;
pub mod error;
pub mod event;
pub mod filter;
pub mod output;
pub mod pipeline;
pub mod replication;
pub mod sql;
pub mod stats;
pub mod systemd;
pub mod tls;
pub mod writer;

pub use config::Config;
pub use error::{Error, Result};
pub use pipeline::{run, Control};
