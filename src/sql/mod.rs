//! Ordinary SQL connections (tokio-postgres): which server of the host
//! list to use, catalog look-ups and checks, and the initial snapshot's
//! parallel copy over a pool of them.

pub(crate) mod catalog;
pub(crate) mod pool;
pub(crate) mod server;
pub(crate) mod snapshot;
pub(crate) mod tables;
