//! pgstream's integration tests: one test binary, a `mod` per area.
//!
//! Every test talks to a real PostgreSQL started by [`harness`]: one shared
//! cluster per test process, a database per test. Run with `cargo test` (or
//! `make test`, which installs the server and wal2json first when it can).

mod backfill;
mod catalog;
mod channel_binding;
mod conventions;
mod debezium;
mod errors;
mod faults;
mod files;
mod filters;
mod ha;
mod handler;
mod harness;
mod jsontext;
mod library;
mod lifecycle;
mod metrics;
mod operations;
mod origins;
mod schema;
mod slots;
mod smoke;
mod snapshot;
mod status;
mod streaming;
mod tls;
mod values;
mod versions;
mod wal2json;
