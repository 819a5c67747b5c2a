//! Catalog queries over an ordinary tokio-postgres connection: server checks
//! before streaming, slot state, and the type and key facts decoders ask for.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use log::{debug, warn};
use tokio_postgres::config::SslMode;
use tokio_postgres::Client;

use crate::conninfo::ConnParams;
use crate::decode::catalog::{Catalog, CatalogRequest, TableColumn, TableInfo};
use crate::decode::value::builtin_kind;
use crate::error::{Error, Result, ServerError};
use crate::event::Lsn;
use crate::event::ValueKind;
use crate::tls::{self, Connector, Failed, MakeTls, Stage, Transport};

/// A replication slot as `pg_replication_slots` shows it. Read as the
/// row's JSON, so columns a server version lacks are simply absent.
#[derive(Debug, Clone, serde::Deserialize)]
pub(crate) struct SlotInfo {
    pub plugin: Option<String>,
    pub database: Option<String>,
    pub slot_type: String,
    pub active_pid: Option<i32>,
    #[serde(rename = "confirmed_flush_lsn")]
    pub confirmed_flush: Option<String>,
    /// `lost` once the server has invalidated the slot (13+).
    pub wal_status: Option<String>,
    /// A slot on a standby invalidated by a recovery conflict (16+).
    #[serde(default)]
    pub conflicting: Option<bool>,
    /// Why the slot was invalidated (17+).
    #[serde(default)]
    pub invalidation_reason: Option<String>,
    /// Decodes prepared transactions at PREPARE (14+).
    #[serde(default)]
    pub two_phase: Option<bool>,
    /// Synchronised to standbys (17+).
    #[serde(default)]
    pub failover: Option<bool>,
    /// A copy synchronised from the primary (17+); on a standby it cannot
    /// be streamed from.
    #[serde(default)]
    pub synced: Option<bool>,
}

impl SlotInfo {
    pub(crate) fn logical(&self) -> bool {
        self.slot_type == "logical"
    }

    /// Why the server will no longer stream this slot, if it will not.
    pub(crate) fn invalidation(&self) -> Option<String> {
        if let Some(reason) = &self.invalidation_reason {
            return Some(format!("invalidation_reason = {reason}"));
        }
        if self.conflicting == Some(true) {
            return Some("conflicting with recovery".into());
        }
        (self.wal_status.as_deref() == Some("lost")).then(|| "wal_status = lost".into())
    }
}

/// An ordinary SQL connection for catalog work.
pub(crate) struct CatalogConn {
    client: Client,
    pub server_version: i32,
}

impl CatalogConn {
    /// Connects with libpq's sslmode plan (see [`tls::with_retry`]); the
    /// connection task is spawned and logs its own end.
    pub(crate) async fn connect(params: &ConnParams) -> Result<Self> {
        Self::connect_with(params, &[]).await
    }

    /// Like [`CatalogConn::connect`], with `settings` sent in the startup
    /// packet (`options=-c name=value …`), so they hold from the first query
    /// and survive `RESET ALL`. Values must not contain spaces.
    pub(crate) async fn connect_with(
        params: &ConnParams,
        settings: &[(&str, &str)],
    ) -> Result<Self> {
        let context = || format!("cannot connect to {params}");
        let options: Vec<String> = settings
            .iter()
            .map(|(k, v)| format!("-c {k}={v}"))
            .collect();
        let options = options.join(" ");
        let options = options.as_str();
        let (client, conn) = tls::with_retry(params, |transport| async move {
            let mut config = params.to_tokio_config();
            if !options.is_empty() {
                config.options(options);
            }
            let make = match transport {
                Transport::Plain => {
                    config.ssl_mode(SslMode::Disable);
                    MakeTls::none()
                }
                Transport::IfOffered | Transport::Required => {
                    config.ssl_mode(if transport == Transport::Required {
                        SslMode::Require
                    } else {
                        SslMode::Prefer
                    });
                    MakeTls::new(
                        Connector::new(params).map_err(|e| Failed::new(Stage::Handshake, e))?,
                        params.channel_binding,
                    )
                }
            };
            let started = make.started();
            config.connect(make).await.map_err(|e| {
                if let Some(failed) = tls::tokio_tls_failure(&e, params) {
                    return failed;
                }
                let stage = match e.as_db_error() {
                    Some(_) => Stage::Rejected {
                        tls: started.load(Ordering::Relaxed),
                    },
                    None => Stage::Other,
                };
                Failed::new(
                    stage,
                    tls::explain_rejection(pg_error(e, context()), params),
                )
            })
        })
        .await?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                debug!("catalog connection ended: {e}");
            }
        });
        let v: String = client
            .query_one("SHOW server_version_num", &[])
            .await
            .map_err(|e| pg_error(e, "reading server_version_num".into()))?
            .get(0);
        Ok(CatalogConn {
            client,
            server_version: v.parse().unwrap_or(0),
        })
    }

    /// The tokio-postgres client, for what this type has no method for
    /// (the snapshot's transactions and COPY).
    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// Whether the connection has been lost or closed.
    pub(crate) fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// A server setting's raw value.
    pub(crate) async fn setting(&self, name: &str) -> Result<String> {
        let row = self
            .client
            .query_one("SELECT setting FROM pg_settings WHERE name = $1", &[&name])
            .await
            .map_err(|e| pg_error(e, format!("reading setting {name}")))?;
        Ok(row.get(0))
    }

    /// The server's WAL insert position: everything committed so far ends at
    /// or before it, flushed or not (IDENTIFY_SYSTEM's flush position would
    /// miss asynchronously committed transactions). On a standby, its
    /// replay position: what it can decode.
    ///
    /// A position just past a page header is moved back to the page start:
    /// no record lies in between, and the walsender reports record ends.
    pub(crate) async fn wal_insert_lsn(&self) -> Result<Lsn> {
        let text: String = self
            .client
            .query_one(
                "SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() \
                 ELSE pg_current_wal_insert_lsn() END::text",
                &[],
            )
            .await
            .map_err(|e| pg_error(e, "reading the WAL position".into()))?
            .get(0);
        let lsn = text
            .parse()
            .map_err(|_| Error::Protocol(format!("bad LSN {text:?}")))?;
        Ok(skip_page_header(lsn))
    }

    /// Those of `names` that are not publications of this database.
    pub(crate) async fn missing_publications(&self, names: &[String]) -> Result<Vec<String>> {
        let rows = self
            .client
            .query(
                "SELECT pubname::text FROM pg_publication WHERE pubname = ANY($1)",
                &[&names],
            )
            .await
            .map_err(|e| pg_error(e, "looking up publications".into()))?;
        let found: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        Ok(names
            .iter()
            .filter(|n| !found.contains(n))
            .cloned()
            .collect())
    }

    /// Whether any of these publications is FOR ALL TABLES.
    pub(crate) async fn any_all_tables(&self, names: &[String]) -> Result<bool> {
        let row = self
            .client
            .query_one("SELECT coalesce(bool_or(puballtables), false) FROM pg_publication WHERE pubname = ANY($1)", &[&names])
            .await
            .map_err(|e| pg_error(e, "looking up publications".into()))?;
        Ok(row.get(0))
    }

    /// The tables of these publications, as (schema, table).
    pub(crate) async fn publication_tables(
        &self,
        names: &[String],
    ) -> Result<Vec<(String, String)>> {
        let rows = self
            .client
            .query(
                "SELECT DISTINCT schemaname::text, tablename::text FROM pg_publication_tables \
                 WHERE pubname = ANY($1) ORDER BY 1, 2",
                &[&names],
            )
            .await
            .map_err(|e| pg_error(e, "looking up publication tables".into()))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// The slot, if it exists.
    pub(crate) async fn slot(&self, name: &str) -> Result<Option<SlotInfo>> {
        let row = self
            .client
            .query_opt(
                "SELECT to_json(s)::text FROM pg_replication_slots s WHERE slot_name = $1",
                &[&name],
            )
            .await
            .map_err(|e| pg_error(e, "looking up the slot".into()))?;
        row.map(|r| {
            serde_json::from_str(r.get(0))
                .map_err(|e| Error::Protocol(format!("pg_replication_slots row: {e}")))
        })
        .transpose()
    }

    /// Answers a decoder's request into `catalog`.
    pub(crate) async fn fetch(
        &self,
        request: &CatalogRequest,
        catalog: &mut Catalog,
    ) -> Result<()> {
        match request {
            CatalogRequest::Types(oids) => self.fetch_types(oids, catalog).await,
            CatalogRequest::PrimaryKey(relid) => {
                let rows = self
                    .client
                    .query(
                        "SELECT a.attname::text FROM pg_index i \
                         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
                         WHERE i.indrelid = $1 AND i.indisprimary \
                         ORDER BY array_position(i.indkey::int2[], a.attnum)",
                        &[relid],
                    )
                    .await
                    .map_err(|e| pg_error(e, "looking up a primary key".into()))?;
                catalog.insert_primary_key(*relid, rows.iter().map(|r| r.get(0)).collect());
                Ok(())
            }
            CatalogRequest::Table { schema, name } => {
                let info = self.table(schema, name).await?;
                debug!("table {schema}.{name}: {info:?}");
                catalog.insert_table(schema.clone(), name.clone(), info);
                Ok(())
            }
        }
    }

    /// A table's replica identity, key and columns, for the wal2json decoder;
    /// an empty [`TableInfo`] when there is no such table (any more).
    async fn table(&self, schema: &str, name: &str) -> Result<TableInfo> {
        let context = || format!("looking up table {schema}.{name}");
        // The key as pgoutput reports it: the replica identity index under
        // DEFAULT and USING INDEX, the primary key under FULL; index order.
        let row = self
            .client
            .query_opt(
                "SELECT c.oid, c.relreplident::text, coalesce((\
                   SELECT array_agg(a.attname::text ORDER BY k.n) FROM pg_index i \
                   CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, n) \
                   JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
                   WHERE i.indrelid = c.oid AND CASE c.relreplident \
                     WHEN 'i' THEN i.indisreplident WHEN 'n' THEN false ELSE i.indisprimary END), '{}') \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relname = $2",
                &[&schema, &name],
            )
            .await
            .map_err(|e| pg_error(e, context()))?;
        let Some(row) = row else {
            return Ok(TableInfo::default());
        };
        let relid: u32 = row.get(0);
        let ident: String = row.get(1);
        let generated = if self.server_version >= 120000 {
            "a.attgenerated <> ''"
        } else {
            "false"
        };
        let rows = self
            .client
            .query(
                &format!(
                    "SELECT a.attname::text, a.atttypid, {generated}, a.attlen = -1 AND a.attstorage <> 'p', a.atttypmod \
                     FROM pg_attribute a WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped \
                     ORDER BY a.attnum"
                ),
                &[&relid],
            )
            .await
            .map_err(|e| pg_error(e, context()))?;
        Ok(TableInfo {
            replica_identity: ident.bytes().next(),
            key: row.get(2),
            columns: rows
                .iter()
                .map(|r| TableColumn {
                    name: r.get(0),
                    type_oid: r.get(1),
                    generated: r.get(2),
                    toastable: r.get(3),
                    type_modifier: r.get(4),
                })
                .collect(),
        })
    }

    /// Resolves types through domains and arrays until every one is known.
    async fn fetch_types(&self, oids: &[u32], catalog: &mut Catalog) -> Result<()> {
        // oid → (typtype, typbasetype, typelem, typdelim, is_array)
        let mut facts: HashMap<u32, (i8, u32, u32, i8, bool)> = HashMap::new();
        let mut wanted: Vec<u32> = oids.to_vec();
        while !wanted.is_empty() {
            let rows = self
                .client
                .query(
                    "SELECT oid, typtype, typbasetype, typelem, typdelim, \
                     (typcategory = 'A' AND typelem <> 0 AND typlen = -1) \
                     FROM pg_type WHERE oid = ANY($1)",
                    &[&wanted],
                )
                .await
                .map_err(|e| pg_error(e, "looking up types".into()))?;
            let mut next = Vec::new();
            for r in &rows {
                let fact: (i8, u32, u32, i8, bool) =
                    (r.get(1), r.get(2), r.get(3), r.get(4), r.get(5));
                let oid: u32 = r.get(0);
                for dep in [fact.1, fact.2] {
                    if dep != 0 && builtin_kind(dep).is_none() && !facts.contains_key(&dep) {
                        next.push(dep);
                    }
                }
                facts.insert(oid, fact);
            }
            for oid in &wanted {
                if !facts.contains_key(oid) {
                    warn!("type {oid} not found in pg_type; its values are written as strings");
                    facts.insert(*oid, (b'b' as i8, 0, 0, b',' as i8, false));
                }
            }
            next.retain(|o| !facts.contains_key(o));
            wanted = next;
        }
        for oid in oids {
            let kind = resolve(*oid, &facts, 0);
            debug!("type {oid} maps to {kind:?}");
            catalog.insert_type(*oid, kind);
        }
        Ok(())
    }
}

/// `lsn` without the WAL page header it may point just past (default 8 kB
/// pages and 16 MB segments: short and long header sizes).
fn skip_page_header(Lsn(lsn): Lsn) -> Lsn {
    const PAGE: u64 = 8192;
    const SEGMENT: u64 = 16 * 1024 * 1024;
    Lsn(if lsn % SEGMENT == 40 {
        lsn - 40
    } else if lsn % PAGE == 24 {
        lsn - 24
    } else {
        lsn
    })
}

fn resolve(oid: u32, facts: &HashMap<u32, (i8, u32, u32, i8, bool)>, depth: u32) -> ValueKind {
    if let Some(kind) = builtin_kind(oid) {
        return kind;
    }
    let Some(&(typtype, base, elem, delim, is_array)) = facts.get(&oid) else {
        return ValueKind::Text;
    };
    if depth > 32 {
        return ValueKind::Text;
    }
    if typtype == b'd' as i8 && base != 0 {
        resolve(base, facts, depth + 1)
    } else if is_array {
        ValueKind::Array {
            elem: Box::new(resolve(elem, facts, depth + 1)),
            delim: delim as u8,
        }
    } else {
        ValueKind::Text
    }
}

/// Turns a tokio-postgres error into ours, keeping the SQLSTATE.
pub(crate) fn pg_error(e: tokio_postgres::Error, context: String) -> Error {
    if let Some(db) = e.as_db_error() {
        return Error::Server {
            context,
            source: ServerError {
                code: db.code().clone(),
                message: db.message().to_string(),
                detail: db.detail().map(str::to_string),
                hint: db.hint().map(str::to_string),
            },
        };
    }
    let text = match std::error::Error::source(&e) {
        Some(source) => format!("{e}: {source}"),
        None => e.to_string(),
    };
    if text.contains("password missing") {
        return Error::usage(format!(
            "{context}: no password supplied; set PGPASSWORD or add it to ~/.pgpass"
        ));
    }
    if text.starts_with("invalid configuration") || text.starts_with("authentication") {
        return Error::usage(format!("{context}: {text}"));
    }
    Error::connection(context, std::io::Error::other(text))
}

#[cfg(test)]
mod tests {
    use crate::event::Lsn;

    #[test]
    fn page_headers_are_skipped() {
        use super::skip_page_header as skip;
        assert_eq!(skip(Lsn(0x1945940)), Lsn(0x1945940));
        assert_eq!(skip(Lsn(0x2000 + 24)), Lsn(0x2000));
        assert_eq!(skip(Lsn(0x100_0000 + 40)), Lsn(0x100_0000));
    }
}
