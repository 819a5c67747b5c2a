//! The walsender connection: ours, because tokio-postgres cannot start a
//! replication session or speak CopyBoth.
//!
//! [`protocol`] parses and encodes bytes (sans-IO); [`conn`] owns the socket;
//! [`commands`] builds the quoted replication commands.

pub mod commands;
pub mod conn;
pub mod protocol;
