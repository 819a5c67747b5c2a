//! pgstream: PostgreSQL logical replication → one JSON line per change.
#![warn(missing_docs)]
#![allow(missing_docs)] // TODO: remove once the modules settle

pub mod decode;
pub mod error;
pub mod event;
