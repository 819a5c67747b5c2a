//! Ordinary SQL connections (tokio-postgres): catalog look-ups and checks,
//! and the initial snapshot's parallel copy over a pool of them.

pub mod catalog;
pub mod pool;
pub mod snapshot;
pub mod tables;
