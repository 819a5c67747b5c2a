//! Ordinary SQL connections (tokio-postgres): which server of the host
//! list to use, catalog look-ups and checks, the tables a publication
//! holds, and a pool of connections for the pipeline's parallel copies.

pub(crate) mod catalog;
pub(crate) mod pool;
pub(crate) mod server;
pub(crate) mod tables;
