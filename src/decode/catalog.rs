//! What decoders need to know from the catalog, fetched on demand by the
//! pipeline (see [`crate::sql::catalog`]) and cached for the session.

use std::collections::HashMap;

use crate::event::ValueKind;

/// Something a decoder asks the pipeline to look up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CatalogRequest {
    /// How these type OIDs map to JSON (domains, enums, arrays of them).
    Types(Vec<u32>),
    /// The primary key column names of a table (by relation OID).
    PrimaryKey(u32),
    /// A table's columns and replica identity, by name (wal2json names
    /// tables, never sends their shape). Always fetched afresh: the answer
    /// replaces what the catalog held.
    Table { schema: String, name: String },
}

/// What the wal2json decoder needs to know about a table that its changes
/// do not say: the replica identity, which columns are generated (wal2json
/// sends them, pgoutput does not) and which columns an update may leave out
/// because they are TOASTed and unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TableInfo {
    /// `pg_class.relreplident`: `b'd'`, `b'n'`, `b'f'` or `b'i'`; `None`
    /// when no such table exists (any more).
    pub replica_identity: Option<u8>,
    /// The key as pgoutput defines it, in index order: the replica identity
    /// index's columns under DEFAULT (the primary key) and USING INDEX, the
    /// primary key under FULL, empty under NOTHING or without such an index.
    pub key: Vec<String>,
    /// Live (not dropped) columns in `attnum` order.
    pub columns: Vec<TableColumn>,
}

/// One column of a [`TableInfo`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TableColumn {
    pub name: String,
    pub type_oid: u32,
    /// `atttypmod` (-1: none), as pgoutput reports it: a time type's
    /// precision, which the Debezium format needs.
    pub type_modifier: i32,
    /// `GENERATED ALWAYS AS … STORED`.
    pub generated: bool,
    /// Varlena with a storage other than `plain`: its value can live
    /// out of line and be left out of an update.
    pub toastable: bool,
}

/// Cached catalog facts.
#[derive(Debug, Default)]
pub(crate) struct Catalog {
    types: HashMap<u32, ValueKind>,
    primary_keys: HashMap<u32, Vec<String>>,
    /// By schema, then table name (nested so a look-up needs no key String).
    tables: HashMap<String, HashMap<String, TableInfo>>,
}

impl Catalog {
    /// How a type's text form maps to JSON: built-in types directly, others
    /// once looked up.
    pub(crate) fn kind(&self, oid: u32) -> Option<ValueKind> {
        super::value::builtin_kind(oid).or_else(|| self.types.get(&oid).cloned())
    }

    /// Records a looked-up type.
    pub(crate) fn insert_type(&mut self, oid: u32, kind: ValueKind) {
        self.types.insert(oid, kind);
    }

    /// The primary key of a relation, if looked up.
    pub(crate) fn primary_key(&self, relid: u32) -> Option<&[String]> {
        self.primary_keys.get(&relid).map(Vec::as_slice)
    }

    /// Records a looked-up primary key (empty when the table has none).
    pub(crate) fn insert_primary_key(&mut self, relid: u32, columns: Vec<String>) {
        self.primary_keys.insert(relid, columns);
    }

    /// Forgets a primary key so the next relation message looks it up again
    /// (the table may have changed).
    pub(crate) fn forget_primary_key(&mut self, relid: u32) {
        self.primary_keys.remove(&relid);
    }

    /// A table's shape, if looked up.
    pub(crate) fn table(&self, schema: &str, name: &str) -> Option<&TableInfo> {
        self.tables.get(schema)?.get(name)
    }

    /// Records a looked-up table, replacing what was known.
    pub(crate) fn insert_table(&mut self, schema: String, name: String, info: TableInfo) {
        self.tables.entry(schema).or_default().insert(name, info);
    }
}
