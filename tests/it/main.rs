//! pgstream's integration tests: one test binary, a `mod` per area.
//!
//! Every test talks to a real PostgreSQL started by [`harness`]: one shared
//! cluster per test process, a database per test. Run with `cargo test` (or
//! `make test`, which installs the server and wal2json first when it can).

mod harness;
mod jsontext;
mod smoke;
mod values;
mod lifecycle;
mod errors;
mod faults;
mod operations;
mod tls;
mod filters;
mod wal2json;
mod streaming;
mod origins;
mod schema;
mod versions;
mod snapshot;
