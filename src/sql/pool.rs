//! A pool of [`CatalogConn`]s (deadpool), for the snapshot's parallel copy
//! and its catalog queries.
//!
//! The pool is deadpool's; the connections are made by our own manager with
//! [`CatalogConn::connect_with`], so each one follows libpq's `sslmode`
//! attempt plan (see [`crate::tls::with_retry`]), keeps our error
//! classification (exit 2 for what only the operator can fix) and is a
//! `CatalogConn`, whose catalog look-ups work on it as they do on the
//! pipeline's own connection. deadpool-postgres's manager would take our
//! `MakeTls`, but with one fixed `sslmode` (no `prefer`/`allow` retry) and
//! only tokio-postgres errors. See docs/snapshot.md.

use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};

use super::catalog::CatalogConn;
use crate::conninfo::ConnParams;
use crate::error::{Error, Result};

/// Makes and checks pooled connections.
pub(crate) struct Manager {
    params: ConnParams,
    /// Settings sent at connection start (see [`CatalogConn::connect_with`]).
    settings: Vec<(&'static str, &'static str)>,
}

impl managed::Manager for Manager {
    type Type = CatalogConn;
    type Error = Error;

    async fn create(&self) -> Result<CatalogConn> {
        CatalogConn::connect_with(&self.params, &self.settings).await
    }

    /// A connection that was lost is replaced, not handed out.
    async fn recycle(&self, conn: &mut CatalogConn, _: &Metrics) -> RecycleResult<Error> {
        if conn.is_closed() {
            return Err(RecycleError::message("connection closed"));
        }
        Ok(())
    }
}

/// The pool; connections are opened on demand, at most `size` at once.
pub(crate) type Pool = managed::Pool<Manager>;

/// A connection taken from the pool (back to it when dropped).
pub(crate) type Pooled = managed::Object<Manager>;

/// A pool of at most `size` connections to `params`, each started with
/// `settings`.
pub(crate) fn new(
    params: &ConnParams,
    size: usize,
    settings: Vec<(&'static str, &'static str)>,
) -> Result<Pool> {
    Pool::builder(Manager {
        params: params.clone(),
        settings,
    })
    .max_size(size.max(1))
    .build()
    .map_err(|e| Error::Protocol(format!("cannot build the connection pool: {e}")))
}

/// Takes a connection, opening one when none is idle and the pool is not
/// full (else waits for one to come back).
pub(crate) async fn get(pool: &Pool) -> Result<Pooled> {
    pool.get().await.map_err(|e| match e {
        managed::PoolError::Backend(e) => e,
        e => Error::connection(
            "taking a pooled connection",
            std::io::Error::other(e.to_string()),
        ),
    })
}
