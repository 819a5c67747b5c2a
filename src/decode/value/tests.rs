use super::*;
use ValueKind as K;

#[test]
fn oids() {
    assert_eq!(builtin_kind(16), Some(K::Bool));
    assert_eq!(builtin_kind(20), Some(K::Int));
    assert_eq!(builtin_kind(701), Some(K::Float));
    assert_eq!(builtin_kind(1700), Some(K::Numeric));
    assert_eq!(builtin_kind(3802), Some(K::Json));
    assert_eq!(builtin_kind(1184), Some(K::Timestamptz));
    assert_eq!(builtin_kind(1114), Some(K::Timestamp));
    assert_eq!(builtin_kind(17), Some(K::Bytea));
    assert_eq!(builtin_kind(2950), Some(K::Text));
    assert_eq!(
        [1082, 1083, 1266, 1186, 790].map(builtin_kind),
        [K::Date, K::Time, K::Timetz, K::Interval, K::Money].map(Some)
    );
    assert_eq!(
        builtin_kind(1007),
        Some(K::Array {
            elem: Box::new(K::Int),
            delim: b','
        })
    );
    assert_eq!(
        builtin_kind(3807),
        Some(K::Array {
            elem: Box::new(K::Json),
            delim: b','
        })
    );
    assert_eq!(
        builtin_kind(1020),
        Some(K::Array {
            elem: Box::new(K::Text),
            delim: b';'
        })
    );
    assert_eq!((builtin_kind(16384), builtin_kind(0)), (None, None));
    for (array, elem) in ARRAYS {
        assert!(scalar_kind(elem).is_some() && scalar_kind(array).is_none());
    }
}
