//! Which [`ValueKind`] a built-in type OID has (types the server defines
//! later, domains and enums, are looked up in the catalog). Writing a value
//! of a kind is the encoder's (`sink::encode::value`).

use crate::event::ValueKind;

/// Built-in scalar types written as their text output (a JSON string).
#[rustfmt::skip]
const TEXT_OIDS: [u32; 38] = [
    18, 19, 22, 24, 25, 27, 28, 29, 30, // char name int2vector regproc text tid xid cid oidvector
    142, 600, 601, 602, 603, 604, 628, 718, // xml point lseg path box polygon line circle
    650, 774, 829, 869, 1042, 1043, // cidr macaddr8 macaddr inet bpchar varchar
    1560, 1562, // bit varbit
    2205, 2206, 2950, 3220, 3614, 3615, 4072, // regclass regtype uuid pg_lsn tsvector tsquery jsonpath
    3904, 3906, 3908, 3910, 3912, 3926, // int4range numrange tsrange tstzrange daterange int8range
];

/// Built-in array types `(array OID, element OID)`: pg_type's `typarray`,
/// for the element types above.
#[rustfmt::skip]
const ARRAYS: [(u32, u32); 56] = [
    (1000, 16), (1001, 17), (1002, 18), (1003, 19), (1016, 20), (1005, 21), (1006, 22),
    (1007, 23), (1008, 24), (1009, 25), (1028, 26), (1010, 27), (1011, 28), (1012, 29),
    (1013, 30), (199, 114), (143, 142), (1017, 600), (1018, 601), (1019, 602), (1020, 603),
    (1027, 604), (629, 628), (651, 650), (1021, 700), (1022, 701), (719, 718), (775, 774),
    (791, 790), (1040, 829), (1041, 869), (1014, 1042), (1015, 1043), (1182, 1082), (1183, 1083),
    (1115, 1114), (1185, 1184), (1187, 1186), (1270, 1266), (1561, 1560), (1563, 1562), (1231, 1700),
    (2210, 2205), (2211, 2206), (2951, 2950), (3221, 3220), (3643, 3614), (3645, 3615), (3807, 3802),
    (3905, 3904), (3907, 3906), (3909, 3908), (3911, 3910), (3913, 3912), (3927, 3926), (4073, 4072),
];

/// The kind of a built-in type OID (and of arrays of them), `None` for types
/// to look up in the catalog.
pub(crate) fn builtin_kind(oid: u32) -> Option<ValueKind> {
    if let Some(kind) = scalar_kind(oid) {
        return Some(kind);
    }
    let &(_, elem) = ARRAYS.iter().find(|&&(array, _)| array == oid)?;
    // box is the only built-in type whose array delimiter is not a comma.
    let delim = if elem == 603 { b';' } else { b',' };
    Some(ValueKind::Array {
        elem: Box::new(scalar_kind(elem)?),
        delim,
    })
}

fn scalar_kind(oid: u32) -> Option<ValueKind> {
    Some(match oid {
        16 => ValueKind::Bool,
        20 | 21 | 23 | 26 => ValueKind::Int,
        700 => ValueKind::Float4,
        701 => ValueKind::Float,
        1700 => ValueKind::Numeric,
        114 | 3802 => ValueKind::Json,
        1184 => ValueKind::Timestamptz,
        1114 => ValueKind::Timestamp,
        17 => ValueKind::Bytea,
        1082 => ValueKind::Date,
        1083 => ValueKind::Time,
        1266 => ValueKind::Timetz,
        1186 => ValueKind::Interval,
        790 => ValueKind::Money,
        _ if TEXT_OIDS.contains(&oid) => ValueKind::Text,
        _ => return None,
    })
}

#[cfg(test)]
mod tests;
