//! What decoders need to know from the catalog, fetched on demand by the
//! pipeline (see [`crate::sql::catalog`]) and cached for the session.

use std::collections::HashMap;

use super::value::ValueKind;

/// Something a decoder asks the pipeline to look up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogRequest {
    /// How these type OIDs map to JSON (domains, enums, arrays of them).
    Types(Vec<u32>),
    /// The primary key column names of a table (by relation OID).
    PrimaryKey(u32),
}

/// Cached catalog facts.
#[derive(Debug, Default)]
pub struct Catalog {
    types: HashMap<u32, ValueKind>,
    primary_keys: HashMap<u32, Vec<String>>,
}

impl Catalog {
    /// How a type's text form maps to JSON: built-in types directly, others
    /// once looked up.
    pub fn kind(&self, oid: u32) -> Option<ValueKind> {
        super::value::builtin_kind(oid).or_else(|| self.types.get(&oid).cloned())
    }

    /// Records a looked-up type.
    pub fn insert_type(&mut self, oid: u32, kind: ValueKind) {
        self.types.insert(oid, kind);
    }

    /// The primary key of a relation, if looked up.
    pub fn primary_key(&self, relid: u32) -> Option<&[String]> {
        self.primary_keys.get(&relid).map(Vec::as_slice)
    }

    /// Records a looked-up primary key (empty when the table has none).
    pub fn insert_primary_key(&mut self, relid: u32, columns: Vec<String>) {
        self.primary_keys.insert(relid, columns);
    }

    /// Forgets a primary key so the next relation message looks it up again
    /// (the table may have changed).
    pub fn forget_primary_key(&mut self, relid: u32) {
        self.primary_keys.remove(&relid);
    }
}
