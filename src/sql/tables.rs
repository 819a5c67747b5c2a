//! Which tables the snapshot copies, and how: their columns, key, value
//! kinds and `COPY` statement, read inside the exported snapshot so that
//! the list is the one of the slot's consistent point.
//!
//! - pgoutput: the publications' tables (`pg_publication_tables`), with
//!   their column lists and row filters (PostgreSQL 15+), as the stream
//!   publishes them.
//! - wal2json: the publications' tables with `--publication` (wal2json
//!   knows no column lists or row filters), else every permanent user table.
//!
//! Both then keep what `--table` / `--exclude-table` let through. Generated
//! columns are left out: neither stream carries them (pgoutput before
//! PostgreSQL 18 never publishes them; the wal2json decoder drops them).

use std::collections::BTreeMap;

use crate::config::{Config, Plugin};
use crate::decode::catalog::{Catalog, CatalogRequest};
use crate::error::Result;
use crate::event::{Column, Relation};
use crate::replication::commands::quote_ident;

use super::catalog::{pg_error, CatalogConn};

/// One table to copy.
#[derive(Debug)]
pub(crate) struct Table {
    /// Its columns as `read` events print them, and its key.
    pub relation: Relation,
    /// `COPY (SELECT …) TO STDOUT`.
    pub copy_sql: String,
    /// The pieces of that `SELECT`, for queries of parts of the table (a
    /// backfill's chunks): the column list, the `FROM` item and the
    /// publications' row filter.
    pub select: String,
    pub from: String,
    pub filter: Option<String>,
    /// On-disk size in bytes: the biggest tables are copied first.
    pub bytes: i64,
    /// Its size in blocks when its rows are in its own heap (not a
    /// partitioned table), so that it can be copied in ctid ranges.
    pub blocks: Option<u64>,
    /// `pg_class.reltuples`: an estimate for progress (-1 or 0: unknown).
    pub rows_estimate: f64,
}

/// What the publications say about one table.
#[derive(Debug, Default)]
struct Published {
    /// Column names, or `None` for all of them.
    columns: Option<Vec<String>>,
    /// Row filter expressions, OR-ed; `None` for every row.
    filters: Option<Vec<String>>,
}

/// The tables to copy, biggest first. Runs in the snapshot's transaction.
pub(crate) async fn list(
    conn: &CatalogConn,
    config: &Config,
    plugin: Plugin,
) -> Result<Vec<Table>> {
    let version = conn.server_version;
    let published = match (plugin, config.publications.is_empty()) {
        (Plugin::PgOutput, _) => {
            publication_tables(conn, &config.publications, version >= 150000).await?
        }
        (Plugin::Wal2Json, false) => {
            let tables = publication_tables(conn, &config.publications, false).await?;
            if version >= 130000 {
                leaves(conn, tables).await?
            } else {
                tables
            }
        }
        (Plugin::Wal2Json, true) => user_tables(conn).await?,
    };
    let mut catalog = Catalog::default();
    let mut tables = Vec::new();
    let mut unknown_types = Vec::new();
    for ((schema, name), publication) in published {
        if !config.tables.matches(&schema, &name) {
            continue;
        }
        let request = CatalogRequest::Table {
            schema: schema.clone(),
            name: name.clone(),
        };
        conn.fetch(&request, &mut catalog).await?;
        let Some(info) = catalog
            .table(&schema, &name)
            .filter(|i| i.replica_identity.is_some())
        else {
            continue; // dropped before the snapshot
        };
        let columns: Vec<_> = info
            .columns
            .iter()
            .filter(|c| !c.generated || (version >= 180000 && publication.columns.is_some()))
            .filter(|c| {
                publication
                    .columns
                    .as_ref()
                    .is_none_or(|list| list.contains(&c.name))
            })
            .collect();
        for c in &columns {
            if catalog.kind(c.type_oid).is_none() {
                unknown_types.push(c.type_oid);
            }
        }
        let key = key_columns(
            &info.key,
            info.replica_identity,
            &columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        );
        let (kind, bytes, rows_estimate, block_size) = size(conn, &schema, &name).await?;
        let blocks = (kind != "p" && block_size > 0).then(|| (bytes / block_size).max(0) as u64);
        let select: Vec<String> = columns.iter().map(|c| quote_ident(&c.name)).collect();
        let select = select.join(", ");
        let from = format!(
            "{}{}.{}",
            // A partitioned table's rows are in its partitions; any other
            // table's children are listed (and copied) on their own.
            if kind == "p" { "" } else { "ONLY " },
            quote_ident(&schema),
            quote_ident(&name),
        );
        let filter = publication
            .filters
            .as_ref()
            .map(|f| format!("({})", f.join(") OR (")));
        let copy_sql = format!(
            "COPY (SELECT {select} FROM {from}{}) TO STDOUT",
            match &filter {
                Some(f) => format!(" WHERE {f}"),
                None => String::new(),
            }
        );
        let relation = Relation {
            schema,
            name,
            columns: columns
                .iter()
                .enumerate()
                .map(|(i, c)| Column {
                    name: c.name.clone(),
                    kind: crate::event::ValueKind::Text, // resolved below
                    type_oid: c.type_oid,
                    type_modifier: c.type_modifier,
                    identity: key.contains(&i),
                })
                .collect(),
            key,
        };
        let oids = columns.iter().map(|c| c.type_oid).collect::<Vec<_>>();
        tables.push((
            Table {
                relation,
                copy_sql,
                select,
                from,
                filter,
                bytes,
                blocks,
                rows_estimate,
            },
            oids,
        ));
    }
    if !unknown_types.is_empty() {
        unknown_types.sort_unstable();
        unknown_types.dedup();
        conn.fetch(&CatalogRequest::Types(unknown_types), &mut catalog)
            .await?;
    }
    let mut tables: Vec<Table> = tables
        .into_iter()
        .map(|(mut t, oids)| {
            for (col, oid) in t.relation.columns.iter_mut().zip(oids) {
                col.kind = catalog.kind(oid).unwrap_or(crate::event::ValueKind::Text);
            }
            t
        })
        .collect();
    tables.sort_by_key(|t| std::cmp::Reverse(t.bytes));
    Ok(tables)
}

/// Indices of the key columns among the copied ones, as the pgoutput
/// decoder has them: the identity index's columns in column order, the
/// primary key (in index order) under `FULL`; none when one is not copied.
fn key_columns(key: &[String], identity: Option<u8>, columns: &[&str]) -> Vec<usize> {
    let found: Option<Vec<usize>> = key
        .iter()
        .map(|k| columns.iter().position(|c| c == k))
        .collect();
    let mut key = found.unwrap_or_default();
    if identity != Some(b'f') {
        key.sort_unstable();
    }
    key
}

/// The publications' tables, with column lists and row filters when
/// `lists` (PostgreSQL 15+ and pgoutput): a table in several publications
/// gets the union of their columns and rows, as PostgreSQL's own table
/// synchronization does.
async fn publication_tables(
    conn: &CatalogConn,
    publications: &[String],
    lists: bool,
) -> Result<BTreeMap<(String, String), Published>> {
    let sql = if lists {
        "SELECT schemaname::text, tablename::text, attnames::text[], rowfilter \
         FROM pg_publication_tables WHERE pubname = ANY($1)"
    } else {
        "SELECT DISTINCT schemaname::text, tablename::text, NULL::text[], NULL::text \
         FROM pg_publication_tables WHERE pubname = ANY($1)"
    };
    let rows = conn
        .client()
        .query(sql, &[&publications])
        .await
        .map_err(|e| pg_error(e, "listing the publications' tables".into()))?;
    let mut tables: BTreeMap<(String, String), Published> = BTreeMap::new();
    for r in &rows {
        let columns: Option<Vec<String>> = r.get(2);
        let filter: Option<String> = r.get(3);
        match tables.entry((r.get(0), r.get(1))) {
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(Published {
                    columns,
                    filters: filter.map(|f| vec![f]),
                });
            }
            std::collections::btree_map::Entry::Occupied(mut o) => {
                let p = o.get_mut();
                p.columns = match (p.columns.take(), columns) {
                    (Some(mut a), Some(b)) => {
                        a.extend(b.into_iter().filter(|c| !a.contains(c)).collect::<Vec<_>>());
                        Some(a)
                    }
                    _ => None,
                };
                p.filters = match (p.filters.take(), filter) {
                    (Some(mut a), Some(b)) => {
                        a.push(b);
                        Some(a)
                    }
                    _ => None,
                };
            }
        }
    }
    Ok(tables)
}

/// The leaf partitions in place of a partitioned table, which a publication
/// lists with `publish_via_partition_root`: wal2json names the partition a
/// change went to, whatever the publication says.
async fn leaves(
    conn: &CatalogConn,
    tables: BTreeMap<(String, String), Published>,
) -> Result<BTreeMap<(String, String), Published>> {
    let mut out = BTreeMap::new();
    for ((schema, name), published) in tables {
        let rows = conn
            .client()
            .query(
                "SELECT n.nspname::text, c.relname::text \
                 FROM pg_partition_tree(format('%I.%I', $1::text, $2::text)::regclass) t \
                 JOIN pg_class c ON c.oid = t.relid JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE t.isleaf",
                &[&schema, &name],
            )
            .await
            .map_err(|e| pg_error(e, format!("listing the partitions of {schema}.{name}")))?;
        if rows.is_empty() {
            // Not partitioned (pg_partition_tree lists only partition trees).
            out.insert((schema, name), published);
            continue;
        }
        for r in &rows {
            out.insert(
                (r.get(0), r.get(1)),
                Published {
                    columns: published.columns.clone(),
                    filters: None,
                },
            );
        }
    }
    Ok(out)
}

/// Every permanent user table (what wal2json streams without a table list):
/// ordinary tables and partitions, not partitioned parents (wal2json names
/// the partition a change went to).
async fn user_tables(conn: &CatalogConn) -> Result<BTreeMap<(String, String), Published>> {
    let rows = conn
        .client()
        .query(
            "SELECT n.nspname::text, c.relname::text FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind = 'r' AND c.relpersistence = 'p' \
             AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
             AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'",
            &[],
        )
        .await
        .map_err(|e| pg_error(e, "listing the user tables".into()))?;
    Ok(rows
        .iter()
        .map(|r| ((r.get(0), r.get(1)), Published::default()))
        .collect())
}

/// A table's `relkind`, size in bytes (a partitioned table's: its
/// partitions') and row estimate.
async fn size(conn: &CatalogConn, schema: &str, name: &str) -> Result<(String, i64, f64, i64)> {
    let tree = if conn.server_version >= 120000 {
        "CASE WHEN c.relkind = 'p' THEN (SELECT coalesce(sum(pg_relation_size(t.relid)), 0)::int8 \
         FROM pg_partition_tree(c.oid) t) ELSE pg_relation_size(c.oid) END"
    } else {
        "pg_relation_size(c.oid)"
    };
    let row = conn
        .client()
        .query_one(
            &format!(
                "SELECT c.relkind::text, {tree}, c.reltuples::float8, \
                 current_setting('block_size')::int8 FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2"
            ),
            &[&schema, &name],
        )
        .await
        .map_err(|e| pg_error(e, format!("reading the size of {schema}.{name}")))?;
    Ok((row.get(0), row.get(1), row.get(2), row.get(3)))
}

#[cfg(test)]
mod tests {
    use super::key_columns;

    #[test]
    fn key_follows_the_pgoutput_decoder() {
        let cols = ["a", "b", "c"];
        let key = |k: &[&str], ri: u8| {
            key_columns(
                &k.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                Some(ri),
                &cols,
            )
        };
        // Identity index columns in column order; FULL: the primary key in index order.
        assert_eq!(key(&["c", "a"], b'd'), [0, 2]);
        assert_eq!(key(&["c", "a"], b'i'), [0, 2]);
        assert_eq!(key(&["c", "a"], b'f'), [2, 0]);
        // A key column that is not copied (column list): no key at all.
        assert!(key(&["a", "x"], b'd').is_empty());
        assert!(key(&[], b'n').is_empty());
    }
}
