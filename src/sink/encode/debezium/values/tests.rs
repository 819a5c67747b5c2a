use super::*;

fn col(kind: ValueKind, type_oid: u32, type_modifier: i32) -> Column {
    Column {
        type_modifier,
        ..Column::test("c", kind, type_oid, false)
    }
}

fn val(kind: ValueKind, typmod: i32, text: &str) -> String {
    let mut out = Vec::new();
    write_value(&mut out, &col(kind, 0, typmod), text.as_bytes());
    let s = String::from_utf8(out).unwrap();
    serde_json::from_str::<serde_json::Value>(&s).unwrap_or_else(|e| panic!("{s}: {e}"));
    s
}

fn arr(elem: ValueKind) -> ValueKind {
    ValueKind::Array {
        elem: Box::new(elem),
        delim: b',',
    }
}

#[test]
fn floats_as_java_prints_them() {
    use ValueKind::{Float, Float4};
    for (kind, text, java) in [
        (Float, "1.5", "1.5"),
        (Float, "100", "100.0"),
        (Float, "-0", "-0.0"),
        (Float, "0", "0.0"),
        (Float, "1e+22", "1.0E22"),
        (Float, "5e-324", "4.9E-324"),
        (Float, "1.7976931348623157e+308", "1.7976931348623157E308"),
        (Float, "0.001", "0.001"),
        (Float, "0.0001", "1.0E-4"),
        (Float, "1234567", "1234567.0"),
        (Float, "9999999.5", "9999999.5"),
        (Float, "10000000", "1.0E7"),
        (Float, "0.30000000000000004", "0.30000000000000004"),
        (Float, "-123.456e-10", "-1.23456E-8"),
        (Float, "2e+23", "2.0E23"),
        (Float, "NaN", "\"NaN\""),
        (Float, "-Infinity", "\"-Infinity\""),
        (Float4, "1e-45", "1.4E-45"),
        (Float4, "16777216", "1.6777216E7"),
        (Float4, "3.4028235e+38", "3.4028235E38"),
        (Float4, "0.1", "0.1"),
        (Float4, "123456.7", "123456.7"),
        (Float4, "Infinity", "\"Infinity\""),
        (Float, "junk", "\"junk\""),
    ] {
        assert_eq!(val(kind, -1, text), java, "{text}");
    }
}

#[test]
fn numeric_money_and_strings() {
    use ValueKind::{Json, Money, Numeric, Text};
    for (kind, text, want) in [
        (Numeric, "12.50", r#""12.50""#),
        (Numeric, "NaN", r#""NAN""#),
        (Numeric, "Infinity", r#""POSITIVE_INFINITY""#),
        (Numeric, "-Infinity", r#""NEGATIVE_INFINITY""#),
        (Money, "$1,234.56", r#""1234.56""#),
        (Money, "-$1,234,567.89", r#""-1234567.89""#),
        (Money, "($0.50)", r#""-0.50""#),
        (Money, "-$0.00", r#""0.00""#),
        (Money, "€5", r#""5""#),
        (Money, "1.234,56 €", r#""1.234,56 €""#),
        (Json, r#"{"a": [1, 2.50e3]}"#, r#""{\"a\": [1, 2.50e3]}""#),
        (Text, "x\"y", r#""x\"y""#),
    ] {
        assert_eq!(val(kind, -1, text), want, "{text}");
    }
}

#[test]
fn temporal_values() {
    use ValueKind::{Date, Interval, Time, Timestamp, Timestamptz, Timetz};
    for (kind, typmod, text, want) in [
        (Date, -1, "1970-01-01", "0"),
        (Date, -1, "1969-12-31", "-1"),
        (Date, -1, "2026-11-23", "20780"),
        (Date, -1, "0001-01-01 BC", "-719528"),
        (Date, -1, "infinity", "-2147472692"),
        (Date, -1, "-infinity", "-2147472691"),
        (Time, -1, "21:54:32.123456", "78872123456"),
        (Time, 3, "21:54:32.123", "78872123"),
        (Time, -1, "24:00:00", "86400000000"),
        (Timetz, -1, "21:54:32.5+05:30", r#""16:24:32.5Z""#),
        (Timetz, -1, "00:00:00-08", r#""08:00:00Z""#),
        (Timestamp, -1, "1970-01-01 00:00:01.5", "1500000"),
        (Timestamp, 3, "1969-12-31 23:59:59.999", "-1"),
        (Timestamp, -1, "infinity", "9223372036825200000"),
        (Timestamp, 0, "-infinity", "-9223372036832400"),
        (
            Timestamptz,
            -1,
            "2026-11-23 21:54:32.12+00",
            r#""2026-11-23T21:54:32.120000Z""#,
        ),
        (
            Timestamptz,
            3,
            "2026-11-23 21:54:32-08",
            r#""2026-11-24T05:54:32.000Z""#,
        ),
        (
            Timestamptz,
            0,
            "2026-11-23 21:54:32+00",
            r#""2026-11-23T21:54:32Z""#,
        ),
        (
            Timestamptz,
            -1,
            "0044-03-15 12:00:00+00 BC",
            r#""-0043-03-15T12:00:00.000000Z""#,
        ),
        (
            Timestamptz,
            -1,
            "10000-01-01 00:00:00+00",
            r#""+10000-01-01T00:00:00.000000Z""#,
        ),
        (Timestamptz, -1, "-infinity", r#""-infinity""#),
        (Interval, -1, "PT0S", "0"),
        (Interval, -1, "P1DT2H", "93600000000"),
        (Interval, -1, "P1M", "2629800000000"),
        (Interval, -1, "P-1M1DT-1.000001S", "-2543401000001"),
        (Interval, -1, "PT100H0.123456S", "360000123456"),
        (Interval, -1, "1 day", r#""1 day""#),
    ] {
        assert_eq!(val(kind.clone(), typmod, text), want, "{kind:?} {text}");
    }
}

#[test]
fn bytea_and_arrays() {
    use ValueKind::{Bytea, Int, Numeric, Timestamp};
    assert_eq!(val(Bytea, -1, "\\x0102ff"), r#""AQL/""#);
    assert_eq!(val(Bytea, -1, "\\x"), r#""""#);
    assert_eq!(val(Bytea, -1, "ab\\000\\\\"), r#""YWIAXA==""#);
    assert_eq!(val(arr(Int), -1, "{1,NULL,3}"), "[1,null,3]");
    assert_eq!(val(arr(Numeric), -1, "{1.5,NaN}"), r#"["1.5","NAN"]"#);
    assert_eq!(val(arr(Bytea), -1, r#"{"\\x01",NULL}"#), r#"["AQ==",null]"#);
    assert_eq!(
        val(arr(Timestamp), 3, r#"{"1970-01-01 00:00:01"}"#),
        "[1000]"
    );
}

#[test]
fn placeholders_and_left_out_columns() {
    let p = |kind: ValueKind, oid: u32| {
        let mut out = Vec::new();
        write_placeholder(&mut out, &col(kind, oid, -1));
        String::from_utf8(out).unwrap()
    };
    assert_eq!(p(ValueKind::Text, 25), r#""__debezium_unavailable_value""#);
    assert_eq!(
        p(ValueKind::Json, 3802),
        r#""__debezium_unavailable_value""#
    );
    assert_eq!(
        p(ValueKind::Bytea, 17),
        r#""X19kZWJleml1bV91bmF2YWlsYWJsZV92YWx1ZQ==""#
    );
    assert_eq!(
        p(arr(ValueKind::Text), 1009),
        r#"["__debezium_unavailable_value"]"#
    );
    assert_eq!(
        p(arr(ValueKind::Bytea), 1001),
        r#"["X19kZWJleml1bV91bmF2YWlsYWJsZV92YWx1ZQ=="]"#
    );
    assert_eq!(
        p(arr(ValueKind::Text), 2951),
        r#"["b68a35a7-17ad-35b3-af2a-ae46edb4545a"]"#
    );
    let bytes: Vec<u8> = PLACEHOLDER.bytes().collect();
    assert_eq!(
        p(arr(ValueKind::Int), 1016),
        serde_json::to_string(&bytes).unwrap()
    );
    assert!(left_out(&col(arr(ValueKind::Money), 791, -1)));
    assert!(!left_out(&col(arr(ValueKind::Int), 1007, -1)));
}

#[test]
fn fuzz() {
    for precision in [3, 6] {
        super::super::super::value::tests::fuzz_writer(&|out, kind, text| {
            write_kind(out, kind, precision, text)
        });
    }
}
