//! The walsender connection: ours, because tokio-postgres cannot start a
//! replication session or speak CopyBoth.
//!
//! [`protocol`] parses and encodes bytes (sans-IO); [`conn`] owns the socket;
//! [`commands`] builds the quoted replication commands.

pub(crate) mod commands;
pub(crate) mod conn;
pub(crate) mod protocol;
