//! Ordinary SQL connections (tokio-postgres): catalog look-ups and checks.

pub mod catalog;
