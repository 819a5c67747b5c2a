//! Debezium's value encodings (docs/output.md "Debezium format", Values),
//! from PostgreSQL's text output, as Debezium 3.6.1's `PostgresValueConverter`
//! and `JdbcValueConverters` produce them with `time.precision.mode=adaptive`,
//! `decimal.handling.mode=string`, `binary.handling.mode=bytes` and
//! `interval.handling.mode=numeric`, and Jackson writes them.
//!
//! The text is parsed by the shared [`value`](super::super::value) parsers;
//! only the encodings are Debezium's. Text that does not parse is written
//! as a JSON string, as the pgstream format does.

use std::io::Write as _;

use super::super::value::{
    self, days_from_civil, decode_bytea, parse_date, parse_time, parse_timestamp, write_array,
    write_base64, write_clock, write_date_time, write_json_str, Base64, Stamp,
};
use crate::event::{Column, ValueKind};

/// Debezium's `unavailable.value.placeholder`, which stands for a TOASTed
/// value that an update did not change.
const PLACEHOLDER: &str = "__debezium_unavailable_value";

/// Array types Debezium has no schema for: it leaves such columns out
/// (`include.unknown.datatypes=false`). xml[], money[], name[], point[],
/// interval[], varbit[].
const NO_SCHEMA: [u32; 6] = [143, 791, 1003, 1017, 1187, 1563];

/// Whether Debezium leaves the column out of its rows.
pub(super) fn left_out(col: &Column) -> bool {
    NO_SCHEMA.contains(&col.type_oid)
}

/// Writes a column's value in Debezium's encoding for its type.
pub(super) fn write_value(out: &mut Vec<u8>, col: &Column, text: &[u8]) {
    // The precision of time types is their type modifier (6 without).
    let precision = if col.type_modifier < 0 {
        6
    } else {
        col.type_modifier
    };
    write_kind(out, &col.kind, precision, text);
}

/// Writes Debezium's placeholder for an unchanged TOASTed value, which
/// depends on the column's type (`UnchangedToastedPlaceholder`).
pub(super) fn write_placeholder(out: &mut Vec<u8>, col: &Column) {
    match (col.type_oid, &col.kind) {
        // int4[], int8[], date[]: the placeholder's bytes as numbers.
        (1007 | 1016 | 1182, _) => {
            out.push(b'[');
            for (i, b) in PLACEHOLDER.bytes().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let _ = write!(out, "{b}");
            }
            out.push(b']');
        }
        // uuid[]: Java's UUID.nameUUIDFromBytes of the placeholder.
        (2951, _) => out.extend_from_slice(b"[\"b68a35a7-17ad-35b3-af2a-ae46edb4545a\"]"),
        (1001, _) => {
            out.push(b'[');
            write_base64(out, PLACEHOLDER.as_bytes());
            out.push(b']');
        }
        (_, ValueKind::Array { .. }) => {
            out.push(b'[');
            write_json_str(out, PLACEHOLDER.as_bytes());
            out.push(b']');
        }
        (_, ValueKind::Bytea) => write_base64(out, PLACEHOLDER.as_bytes()),
        _ => write_json_str(out, PLACEHOLDER.as_bytes()),
    }
}

/// Writes `text` of `kind` (array elements with the column's precision).
fn write_kind(out: &mut Vec<u8>, kind: &ValueKind, precision: i32, text: &[u8]) {
    let start = out.len();
    let written = match kind {
        ValueKind::Bool | ValueKind::Int => {
            value::write_value(out, kind, text);
            Some(())
        }
        ValueKind::Float => write_java_float::<f64>(out, text),
        ValueKind::Float4 => write_java_float::<f32>(out, text),
        // SpecialValueDecimal's names for PostgreSQL's special values; a
        // number is its text, the string written below.
        ValueKind::Numeric => match text {
            b"NaN" => Some(&b"\"NAN\""[..]),
            b"Infinity" => Some(&b"\"POSITIVE_INFINITY\""[..]),
            b"-Infinity" => Some(&b"\"NEGATIVE_INFINITY\""[..]),
            _ => None,
        }
        .map(|special| out.extend_from_slice(special)),
        ValueKind::Money => write_money(out, text),
        ValueKind::Bytea => {
            let mut b64 = Base64::start(out);
            decode_bytea(text, |b| b64.push(b)).map(|()| b64.finish())
        }
        ValueKind::Date => write_date(out, text),
        ValueKind::Time => parse_time(text, false).map(|t| {
            let micros = t.secs * 1_000_000 + frac_micros(t.frac);
            write_i64(
                out,
                if precision <= 3 {
                    micros / 1000
                } else {
                    micros
                },
            );
        }),
        ValueKind::Timetz => parse_time(text, true).map(|t| {
            // ZonedTime: the time in UTC, ISO 8601 (fraction without
            // trailing zeros, as PostgreSQL prints it).
            let secs = (t.secs - t.offset).rem_euclid(86_400);
            out.push(b'"');
            write_clock(out, secs);
            out.extend_from_slice(t.frac);
            out.extend_from_slice(b"Z\"");
        }),
        ValueKind::Timestamp => write_epoch(out, text, precision),
        ValueKind::Timestamptz => write_zoned(out, text, precision),
        ValueKind::Interval => write_interval(out, text),
        ValueKind::Array { elem, delim } => write_array(out, elem, *delim, text, &|out, k, t| {
            write_kind(out, k, precision, t)
        }),
        // json, jsonb (io.debezium.data.Json), text, uuid, enums, ranges,
        // inet…: a string of the text output.
        _ => {
            write_json_str(out, text);
            Some(())
        }
    };
    if written.is_none() {
        out.truncate(start);
        write_json_str(out, text);
    }
}

fn write_i64(out: &mut Vec<u8>, n: i64) {
    let _ = write!(out, "{n}");
}

/// Microseconds of a fraction `.ffffff` (empty: 0); digits past the sixth
/// are dropped.
fn frac_micros(frac: &[u8]) -> i64 {
    let digits = frac.get(1..).unwrap_or_default();
    (0..6).fold(0, |n, k| {
        n * 10 + digits.get(k).map_or(0, |d| i64::from(d - b'0'))
    })
}

/// `date` → days since 1970-01-01 (io.debezium.time.Date). Debezium maps
/// the infinities to the days of -5877611-06-21 and -22.
fn write_date(out: &mut Vec<u8>, text: &[u8]) -> Option<()> {
    let days = match text {
        b"infinity" => -2_147_472_692,
        b"-infinity" => -2_147_472_691,
        _ => {
            let (y, m, d) = parse_date(text)?;
            days_from_civil(y, m, d)
        }
    };
    write_i64(out, days);
    Some(())
}

/// `timestamp` → ms (precision 0–3, io.debezium.time.Timestamp) or µs
/// (MicroTimestamp) since the Unix epoch; the infinities are pgjdbc's
/// `DATE_POSITIVE_INFINITY` and `DATE_NEGATIVE_INFINITY`, taken as µs.
fn write_epoch(out: &mut Vec<u8>, text: &[u8], precision: i32) -> Option<()> {
    let micros = match text {
        b"infinity" => 9_223_372_036_825_200_000,
        b"-infinity" => -9_223_372_036_832_400_000,
        _ => {
            let Stamp {
                y,
                m,
                d,
                secs,
                frac,
            } = parse_timestamp(text, false)?;
            // Checked: the parser takes years PostgreSQL never prints.
            (days_from_civil(y, m, d).checked_mul(86_400)? + secs)
                .checked_mul(1_000_000)?
                .checked_add(frac_micros(frac))?
        }
    };
    write_i64(
        out,
        if precision <= 3 {
            micros.div_euclid(1000)
        } else {
            micros
        },
    );
    Some(())
}

/// `timestamptz` → ZonedTimestamp: ISO 8601 in UTC with as many fraction
/// digits as the precision (none, and no point, for precision 0), the year
/// signed when negative or above 9999 (Java's `ISO_LOCAL_DATE`).
fn write_zoned(out: &mut Vec<u8>, text: &[u8], precision: i32) -> Option<()> {
    if text == b"infinity" || text == b"-infinity" {
        write_json_str(out, text);
        return Some(());
    }
    let Stamp {
        y,
        m,
        d,
        secs,
        frac,
    } = parse_timestamp(text, true)?;
    out.push(b'"');
    if y > 9999 {
        out.push(b'+');
    }
    write_date_time(out, y, m, d, secs);
    match usize::try_from(precision).unwrap_or(0).min(6) {
        0 => out.extend_from_slice(frac),
        width => {
            out.push(b'.');
            let digits = frac.get(1..).unwrap_or_default();
            out.extend((0..width).map(|k| digits.get(k).copied().unwrap_or(b'0')));
        }
    }
    out.extend_from_slice(b"Z\"");
    Some(())
}

/// `interval` (ISO 8601, as the session prints it) → MicroDuration, as
/// Debezium computes it from pgjdbc's `PGInterval`: in doubles, a month
/// being 30.4375 days, truncated to µs.
fn write_interval(out: &mut Vec<u8>, text: &[u8]) -> Option<()> {
    let rest = text.strip_prefix(b"P")?;
    let (mut years, mut months, mut days, mut hours, mut minutes) = (0i32, 0i32, 0i32, 0i32, 0i32);
    let mut seconds_micros = 0i64;
    let mut time = false;
    let mut i = 0;
    while i < rest.len() {
        if rest[i] == b'T' {
            time = true;
            i += 1;
            continue;
        }
        let neg = rest[i] == b'-';
        let start = i + usize::from(neg);
        let whole_len = rest[start..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        let mut end = start + whole_len;
        let mut frac: &[u8] = b"";
        if rest.get(end) == Some(&b'.') {
            let n = rest[end + 1..]
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .count();
            frac = &rest[end..end + 1 + n];
            end += 1 + n;
        }
        let whole: i64 = std::str::from_utf8(&rest[start..start + whole_len])
            .ok()?
            .parse()
            .ok()?;
        let sign = if neg { -1 } else { 1 };
        let int = || i32::try_from(sign * whole).ok();
        match (time, rest.get(end)?) {
            (false, b'Y') if frac.is_empty() => years = int()?,
            (false, b'M') if frac.is_empty() => months = int()?,
            (false, b'D') if frac.is_empty() => days = int()?,
            (true, b'H') if frac.is_empty() => hours = int()?,
            (true, b'M') if frac.is_empty() => minutes = int()?,
            (true, b'S') => {
                seconds_micros = sign
                    * whole
                        .checked_mul(1_000_000)?
                        .checked_add(frac_micros(frac))?;
            }
            _ => return None,
        }
        i = end + 1;
    }
    // PGInterval keeps whole seconds and microseconds, and hands out their
    // sum as a double.
    let seconds = (seconds_micros / 1_000_000) as f64 + (seconds_micros % 1_000_000) as f64 / 1e6;
    let number_of_days =
        f64::from(years.wrapping_mul(12).wrapping_add(months)) * 30.4375 + f64::from(days);
    let number_of_seconds =
        ((number_of_days * 24.0 + f64::from(hours)) * 60.0 + f64::from(minutes)) * 60.0 + seconds;
    // Java's (long) cast: toward zero, saturating.
    write_i64(out, (number_of_seconds * 1e6) as i64);
    Some(())
}

/// `money` → the amount as a plain decimal string, as Debezium's
/// `PostgresMoney` cleans it (sign or parentheses, one leading currency
/// symbol, thousands separators) and `BigDecimal.toPlainString` prints it.
fn write_money(out: &mut Vec<u8>, text: &[u8]) -> Option<()> {
    let s = std::str::from_utf8(text).ok()?;
    let negative = s.starts_with(['-', '(']);
    let s = s.strip_prefix('-').unwrap_or(s);
    let s = s
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .unwrap_or(s);
    let s = match s.chars().next()? {
        c if c.is_ascii_digit() || c == '.' => s,
        c => &s[c.len_utf8()..],
    };
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |p: &str| p.bytes().all(|c| c.is_ascii_digit() || c == b',');
    if int.is_empty() && frac.is_empty()
        || !digits(int)
        || !frac.bytes().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    // BigDecimal drops leading zeros, and the sign of zero.
    let int = int.trim_start_matches(['0', ',']);
    let zero = int.is_empty() && frac.bytes().all(|c| c == b'0');
    out.push(b'"');
    if negative && !zero {
        out.push(b'-');
    }
    match int {
        "" => out.push(b'0'),
        int => out.extend(int.bytes().filter(|&c| c != b',')),
    }
    if !frac.is_empty() {
        out.push(b'.');
        out.extend_from_slice(frac.as_bytes());
    }
    out.push(b'"');
    Some(())
}

/// The float types, for [`write_java_float`].
trait Float: Copy + std::fmt::LowerExp + std::str::FromStr + PartialEq {
    fn is_finite(self) -> bool;
    fn is_sign_negative(self) -> bool;
}

impl Float for f32 {
    fn is_finite(self) -> bool {
        f32::is_finite(self)
    }
    fn is_sign_negative(self) -> bool {
        f32::is_sign_negative(self)
    }
}

impl Float for f64 {
    fn is_finite(self) -> bool {
        f64::is_finite(self)
    }
    fn is_sign_negative(self) -> bool {
        f64::is_sign_negative(self)
    }
}

/// float4/float8 as Java's `Float.toString`/`Double.toString` print them
/// and Jackson writes them: JDK 19 on, the shortest digits that read back,
/// but two when one would do and a two-digit decimal is closer (`4.9E-324`);
/// always a point and a digit after it; `E` notation below 10⁻³ and from
/// 10⁷. NaN and the infinities as strings.
fn write_java_float<F: Float>(out: &mut Vec<u8>, text: &[u8]) -> Option<()> {
    if let b"NaN" | b"Infinity" | b"-Infinity" = text {
        write_json_str(out, text);
        return Some(());
    }
    let v: F = std::str::from_utf8(text).ok()?.parse().ok()?;
    if !v.is_finite() {
        return None;
    }
    let mut buf = [0u8; 48];
    let mut form = fmt_into(&mut buf, format_args!("{v:e}"))?;
    let mut two = [0u8; 48];
    if !form.contains('.') {
        let closer = fmt_into(&mut two, format_args!("{v:.1e}"))?;
        if closer.parse::<F>().ok() == Some(v) {
            form = closer;
        }
    }
    let (mantissa, exp) = form.split_once('e')?;
    let exp: i32 = exp.parse().ok()?;
    if v.is_sign_negative() {
        out.push(b'-');
    }
    // The significant digits, trailing zeros dropped (but the first).
    let mut digits = [b'0'; 40];
    let mut n = 0;
    for c in mantissa.bytes().filter(u8::is_ascii_digit).take(40) {
        digits[n] = c;
        n += 1;
    }
    while n > 1 && digits[n - 1] == b'0' {
        n -= 1;
    }
    let digits = &digits[..n.max(1)];
    let digit = |k: usize| digits.get(k).copied().unwrap_or(b'0');
    if (-3..7).contains(&exp) {
        if exp < 0 {
            out.extend_from_slice(b"0.");
            out.extend(std::iter::repeat_n(b'0', (-exp - 1) as usize));
            out.extend_from_slice(digits);
        } else {
            let point = exp as usize + 1;
            out.extend((0..point).map(digit));
            out.push(b'.');
            out.extend((point..digits.len().max(point + 1)).map(digit));
        }
    } else {
        out.push(digits[0]);
        out.push(b'.');
        out.extend((1..digits.len().max(2)).map(digit));
        let _ = write!(out, "E{exp}");
    }
    Some(())
}

/// Formats into `buf` without allocating; the text written.
fn fmt_into<'b>(buf: &'b mut [u8; 48], args: std::fmt::Arguments<'_>) -> Option<&'b str> {
    let mut w = std::io::Cursor::new(&mut buf[..]);
    w.write_fmt(args).ok()?;
    let n = usize::try_from(w.position()).ok()?;
    std::str::from_utf8(&buf[..n]).ok()
}

#[cfg(test)]
mod tests;
