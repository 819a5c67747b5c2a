//! PostgreSQL text output → JSON, per the spec's Values table.
//! (Interface stub: being implemented.)

/// How a column's text form becomes JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueKind {
    Bool,
    /// int2, int4, int8, oid: the text is copied as a JSON number.
    Int,
    Float,
    /// numeric: an exact string.
    Numeric,
    /// json, jsonb: embedded as a value.
    Json,
    Timestamptz,
    Timestamp,
    Bytea,
    /// Everything else: a JSON string of the text output.
    Text,
    /// An array of `elem`, whose text form separates elements with `delim`.
    Array { elem: Box<ValueKind>, delim: u8 },
}

/// The kind of a built-in type OID, `None` for types to look up.
pub fn builtin_kind(_oid: u32) -> Option<ValueKind> {
    todo!()
}
