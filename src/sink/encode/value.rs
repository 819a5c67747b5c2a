//! PostgreSQL text output → JSON, per the spec's Values table (SPEC.md §2):
//! the value mapping every output format shares.
//!
//! Decoders hand over a column's text form and its [`ValueKind`]; we append
//! one JSON value to the line being built. This is the hot path, so nothing
//! here allocates per call, and nothing panics on any input: text that does
//! not have its kind's expected form is written as a JSON string instead.
//! The session pins `DateStyle=ISO`, `TimeZone=UTC`,
//! `IntervalStyle=iso_8601`, `extra_float_digits=3` and `bytea_output=hex`,
//! which is the form we expect.

use std::cell::Cell;
use std::io::Write as _;

use crate::event::{Lsn, ValueKind};

/// Writes `text`, a value's PostgreSQL text output, as one JSON value of
/// `kind`; text without the kind's expected form becomes a JSON string.
pub(crate) fn write_value(out: &mut Vec<u8>, kind: &ValueKind, text: &[u8]) {
    let start = out.len();
    let written = match kind {
        ValueKind::Bool => match text {
            b"t" | b"true" => Some(&b"true"[..]),
            b"f" | b"false" => Some(&b"false"[..]),
            _ => None,
        }
        .map(|word| out.extend_from_slice(word)),
        ValueKind::Int => write_int(out, text),
        ValueKind::Float => write_float(out, text, false),
        ValueKind::Float4 => write_float(out, text, true),
        ValueKind::Numeric
        | ValueKind::Money
        | ValueKind::Date
        | ValueKind::Time
        | ValueKind::Timetz
        | ValueKind::Interval
        | ValueKind::Text => None,
        ValueKind::Json => write_json(out, text),
        ValueKind::Timestamptz => write_timestamp(out, text, true),
        ValueKind::Timestamp => write_timestamp(out, text, false),
        ValueKind::Bytea => write_bytea(out, text),
        ValueKind::Array { elem, delim } => write_array(out, elem, *delim, text, &write_value),
    };
    if written.is_none() {
        out.truncate(start);
        write_json_str(out, text);
    }
}

/// Writes `s` as a quoted JSON string; invalid UTF-8 becomes U+FFFD.
pub(crate) fn write_json_str(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    escape_str(out, s);
    out.push(b'"');
}

/// Writes a commit timestamp (microseconds since 2000-01-01 00:00:00 UTC, as
/// pgoutput sends it) as a quoted RFC 3339 UTC string, like `timestamptz`.
pub(crate) fn write_timestamp_micros(out: &mut Vec<u8>, micros: i64) {
    match micros {
        i64::MAX => return out.extend_from_slice(b"\"infinity\""),
        i64::MIN => return out.extend_from_slice(b"\"-infinity\""),
        _ => {}
    }
    const DAY: i64 = 86_400_000_000;
    // 10957 days from 1970-01-01 (the civil-day origin) to 2000-01-01.
    let (y, m, d) = civil_from_days(micros.div_euclid(DAY) + 10957);
    let rem = micros.rem_euclid(DAY);
    out.push(b'"');
    write_date_time(out, y, m, d, rem / 1_000_000);
    let mut frac = rem % 1_000_000;
    if frac != 0 {
        let mut width = 6;
        while frac % 10 == 0 {
            frac /= 10;
            width -= 1;
        }
        out.push(b'.');
        write_uint(out, frac as u64, width);
    }
    out.extend_from_slice(b"Z\"");
}

/// Writes an LSN as PostgreSQL prints it, `X/XXXXXXXX` (uppercase hex
/// without leading zeros), unquoted.
pub(crate) fn write_lsn(out: &mut Vec<u8>, lsn: Lsn) {
    write_hex(out, (lsn.0 >> 32) as u32);
    out.push(b'/');
    write_hex(out, lsn.0 as u32);
}

fn write_hex(out: &mut Vec<u8>, v: u32) {
    const UPPER: &[u8; 16] = b"0123456789ABCDEF";
    // Nibbles from the highest one set (at least one digit, for 0).
    let digits = (8 - v.leading_zeros() as usize / 4).max(1);
    let mut buf = [0; 8];
    for (k, b) in buf[..digits].iter_mut().enumerate() {
        *b = UPPER[(v >> (4 * (digits - 1 - k)) & 15) as usize];
    }
    out.extend_from_slice(&buf[..digits]);
}

/// Writes `bytes` as a quoted standard base64 string, with padding.
pub(crate) fn write_base64(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut b64 = Base64::start(out);
    bytes.iter().for_each(|&b| b64.push(b));
    b64.finish();
}

/// A quoted base64 string written a byte at a time (for bytes decoded on
/// the fly, as bytea's): [`start`](Base64::start), `push`, `finish`.
pub(crate) struct Base64<'a> {
    out: &'a mut Vec<u8>,
    /// Up to three bytes not yet written, and how many.
    bits: usize,
    len: usize,
}

impl<'a> Base64<'a> {
    pub(crate) fn start(out: &'a mut Vec<u8>) -> Base64<'a> {
        out.push(b'"');
        Base64 {
            out,
            bits: 0,
            len: 0,
        }
    }

    pub(crate) fn push(&mut self, b: u8) {
        self.bits = self.bits << 8 | usize::from(b);
        self.len += 1;
        if self.len == 3 {
            self.emit();
        }
    }

    /// The last bytes, the padding and the closing quote.
    pub(crate) fn finish(mut self) {
        if self.len > 0 {
            self.emit();
        }
        self.out.push(b'"');
    }

    fn emit(&mut self) {
        const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let n = self.bits << (8 * (3 - self.len));
        let digits = (0..=self.len).map(|k| B64[n >> (18 - 6 * k) & 63]);
        self.out
            .extend(digits.chain(std::iter::repeat(b'=')).take(4));
        (self.bits, self.len) = (0, 0);
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// What a byte inside a JSON string asks for, in [`ESCAPE`].
const PLAIN: u8 = 0;
/// Part of a multi-byte UTF-8 sequence, to check ([`Utf8`]).
const NON_ASCII: u8 = 1;
/// A control character without a short escape: `\u00XX`.
const UNICODE: u8 = b'u';

/// Per byte: [`PLAIN`] (copied as it is), [`NON_ASCII`], [`UNICODE`], or the
/// letter of its two-character escape (`\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`).
/// One lookup per byte finds the end of a run that can be copied at once.
static ESCAPE: [u8; 256] = {
    let mut t = [PLAIN; 256];
    let mut c = 0;
    while c < 256 {
        t[c] = match c as u8 {
            0x08 => b'b',
            0x0c => b'f',
            b'\n' => b'n',
            b'\r' => b'r',
            b'\t' => b't',
            0..0x20 => UNICODE,
            b'"' | b'\\' => c as u8,
            0x80.. => NON_ASCII,
            _ => PLAIN,
        };
        c += 1;
    }
    t
};

/// The index of the first byte of `s` from `i` on that is not [`PLAIN`]
/// (`s.len()` if none).
fn plain_end(s: &[u8], i: usize) -> usize {
    let rest = s.get(i..).unwrap_or_default();
    i + rest
        .iter()
        .position(|&c| ESCAPE[usize::from(c)] != PLAIN)
        .unwrap_or(rest.len())
}

/// UTF-8 checked once, lazily: from the first byte ≥ 0x80 to the end of the
/// text, or to its first invalid sequence, where checking starts again
/// after it. Pure ASCII is never looked at twice.
#[derive(Default)]
struct Utf8 {
    /// The text before this index is known to be valid (or replaced).
    valid_to: usize,
}

impl Utf8 {
    /// At a byte ≥ 0x80 at `s[i]`: `None` when it is part of a valid
    /// sequence, else the length of the invalid sequence that one U+FFFD
    /// replaces (as `String::from_utf8_lossy` does).
    fn invalid_len(&mut self, s: &[u8], i: usize) -> Option<usize> {
        if i < self.valid_to {
            return None;
        }
        let rest = s.get(i..).unwrap_or_default();
        match std::str::from_utf8(rest) {
            Ok(_) => self.valid_to = s.len(),
            Err(e) if e.valid_up_to() > 0 => self.valid_to = i + e.valid_up_to(),
            Err(e) => return Some(e.error_len().unwrap_or(rest.len())),
        }
        None
    }
}

const REPLACEMENT: &[u8] = "\u{FFFD}".as_bytes();

/// JSON-escapes `s`, copying runs that need no escape at once; invalid
/// UTF-8 becomes U+FFFD.
fn escape_str(out: &mut Vec<u8>, s: &[u8]) {
    let mut utf8 = Utf8::default();
    let (mut run, mut i) = (0, 0);
    loop {
        i = plain_end(s, i);
        let Some(&c) = s.get(i) else { break };
        let class = ESCAPE[usize::from(c)];
        if class == NON_ASCII {
            match utf8.invalid_len(s, i) {
                None => {
                    i += 1;
                    continue;
                }
                Some(n) => {
                    out.extend_from_slice(&s[run..i]);
                    out.extend_from_slice(REPLACEMENT);
                    i += n;
                }
            }
        } else {
            out.extend_from_slice(&s[run..i]);
            match class {
                UNICODE => out.extend_from_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(c >> 4)],
                    HEX[usize::from(c & 15)],
                ]),
                letter => out.extend_from_slice(&[b'\\', letter]),
            }
            i += 1;
        }
        run = i;
    }
    out.extend_from_slice(&s[run..]);
}

/// The end of a JSON number starting at `i`, and how many exponent digits it has.
fn number_end(s: &[u8], mut i: usize) -> Option<(usize, usize)> {
    let digits = |s: &[u8], i: usize| {
        s.get(i..)
            .map_or(0, |r| r.iter().take_while(|c| c.is_ascii_digit()).count())
    };
    if s.get(i) == Some(&b'-') {
        i += 1;
    }
    match digits(s, i) {
        0 => return None,
        n if n > 1 && s[i] == b'0' => return None,
        n => i += n,
    }
    if s.get(i) == Some(&b'.') {
        match digits(s, i + 1) {
            0 => return None,
            n => i += 1 + n,
        }
    }
    let mut exp = 0;
    if matches!(s.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(s.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        exp = digits(s, i);
        if exp == 0 {
            return None;
        }
        i += exp;
    }
    Some((i, exp))
}

fn write_int(out: &mut Vec<u8>, t: &[u8]) -> Option<()> {
    // int8 has at most 19 digits; longer text is not an integer we expect.
    let (end, _) = number_end(t, 0).filter(|_| t.len() <= 20)?;
    (end == t.len() && t.iter().all(|&c| c == b'-' || c.is_ascii_digit()))
        .then(|| out.extend_from_slice(t))
}

fn write_float(out: &mut Vec<u8>, t: &[u8], single: bool) -> Option<()> {
    let shape = number_end(t, 0).filter(|&(end, _)| end == t.len());
    // As many significant digits as the type's longest shortest form: maybe
    // a server older than 12 (extra_float_digits = 3 prints 9 or 17 digits
    // there), so see whether a shorter form reads back the same.
    let digits = significant_digits(t);
    let long = digits >= if single { 9 } else { 17 };
    if !long && matches!(shape, Some((_, exp)) if exp < 3 && t.len() <= 25) {
        out.extend_from_slice(t);
        return Some(());
    }
    // Rare: a huge exponent (check it is finite), a form JSON forbids, or
    // that many digits.
    let text = std::str::from_utf8(t).ok()?;
    let v: f64 = if single {
        f64::from(text.parse::<f32>().ok()?)
    } else {
        text.parse().ok()?
    };
    if !v.is_finite() {
        return None;
    }
    if !long && shape.is_some() {
        out.extend_from_slice(t);
        return Some(());
    }
    let start = out.len();
    let large = v != 0.0 && !(1e-5..1e16).contains(&v.abs());
    match (single, large) {
        (true, true) => write!(out, "{:e}", v as f32).ok()?,
        (true, false) => write!(out, "{}", v as f32).ok()?,
        (false, true) => write!(out, "{v:e}").ok()?,
        (false, false) => write!(out, "{v}").ok()?,
    }
    // Keep the server's text when it is valid JSON and no longer than ours
    // (two shortest forms may differ in their last digit).
    if shape.is_some() && significant_digits(&out[start..]) >= digits {
        out.truncate(start);
        out.extend_from_slice(t);
    }
    Some(())
}

/// The significant digits of a decimal number's mantissa.
fn significant_digits(t: &[u8]) -> usize {
    let mantissa = t
        .split(|&c| c == b'e' || c == b'E')
        .next()
        .unwrap_or_default();
    let digits = mantissa.iter().filter(|c| c.is_ascii_digit());
    let leading_zeros = mantissa
        .iter()
        .take_while(|&&c| matches!(c, b'0' | b'.' | b'-'))
        .filter(|&&c| c == b'0')
        .count();
    digits.count() - leading_zeros
}

/// Container nesting for the JSON minifier, `true` for an object: a bit per
/// level for the first 256 levels, then a vector (allocated only that deep).
#[derive(Default)]
struct Nest {
    depth: usize,
    bits: [u64; 4],
    spill: Vec<bool>,
}

impl Nest {
    fn push(&mut self, object: bool) {
        let (d, b) = (self.depth, self.depth % 64);
        match self.bits.get_mut(d / 64) {
            Some(w) => *w = *w & !(1 << b) | u64::from(object) << b,
            None => {
                self.spill.truncate(d - 256);
                self.spill.push(object);
            }
        }
        self.depth += 1;
    }
    fn top(&self) -> Option<bool> {
        let d = self.depth.checked_sub(1)?;
        let bit = self.bits.get(d / 64).map(|w| w >> (d % 64) & 1 == 1);
        bit.or_else(|| self.spill.get(d - 256).copied())
    }
    /// Pops the innermost level if it is an object (`true`) or array (`false`).
    fn pop(&mut self, object: bool) -> Option<()> {
        (self.top()? == object).then(|| self.depth -= 1)
    }
    fn after_value(&self) -> Js {
        match self.depth {
            0 => Js::Done,
            _ => Js::CommaOrEnd,
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Js {
    Value,
    ValueOrEnd,
    Key,
    KeyOrEnd,
    Colon,
    CommaOrEnd,
    Done,
}

/// Embeds a json/jsonb text minified: whitespace between tokens dropped,
/// tokens copied byte for byte. `None` unless `t` is one valid JSON value.
fn write_json(out: &mut Vec<u8>, t: &[u8]) -> Option<()> {
    let mut nest = Nest::default();
    let mut utf8 = Utf8::default();
    let mut st = Js::Value;
    let mut i = 0;
    while let Some(&c) = t.get(i) {
        let value = matches!(st, Js::Value | Js::ValueOrEnd);
        st = match c {
            b' ' | b'\t' | b'\n' | b'\r' => st,
            b'{' | b'[' if value => {
                nest.push(c == b'{');
                out.push(c);
                if c == b'{' {
                    Js::KeyOrEnd
                } else {
                    Js::ValueOrEnd
                }
            }
            b'"' if value || matches!(st, Js::Key | Js::KeyOrEnd) => {
                i = json_string(out, t, i, &mut utf8)? - 1;
                if value {
                    nest.after_value()
                } else {
                    Js::Colon
                }
            }
            b'-' | b'0'..=b'9' if value => {
                let (end, _) = number_end(t, i)?;
                out.extend_from_slice(&t[i..end]);
                i = end - 1;
                nest.after_value()
            }
            b't' | b'f' | b'n' if value => {
                let word: &[u8] = match c {
                    b't' => b"true",
                    b'f' => b"false",
                    _ => b"null",
                };
                t.get(i..)?.starts_with(word).then_some(())?;
                out.extend_from_slice(word);
                i += word.len() - 1;
                nest.after_value()
            }
            b':' if st == Js::Colon => {
                out.push(c);
                Js::Value
            }
            b',' if st == Js::CommaOrEnd => {
                out.push(c);
                if nest.top()? {
                    Js::Key
                } else {
                    Js::Value
                }
            }
            b']' | b'}'
                if matches!(
                    (st, c),
                    (Js::CommaOrEnd, _) | (Js::ValueOrEnd, b']') | (Js::KeyOrEnd, b'}')
                ) =>
            {
                nest.pop(c == b'}')?;
                out.push(c);
                nest.after_value()
            }
            _ => return None,
        };
        i += 1;
    }
    (st == Js::Done).then_some(())
}

/// Copies the JSON string starting at `t[i] == b'"'`, checking its escapes,
/// and returns the index after its closing quote. Invalid UTF-8 becomes
/// U+FFFD, and a `\u` escape of an unpaired surrogate `\ufffd`.
fn json_string(out: &mut Vec<u8>, t: &[u8], i: usize, utf8: &mut Utf8) -> Option<usize> {
    let (mut run, mut i) = (i, i + 1);
    loop {
        i = plain_end(t, i);
        let c = *t.get(i)?;
        match ESCAPE[usize::from(c)] {
            b'"' => break,
            NON_ASCII => match utf8.invalid_len(t, i) {
                None => i += 1,
                Some(n) => {
                    out.extend_from_slice(&t[run..i]);
                    out.extend_from_slice(REPLACEMENT);
                    i += n;
                    run = i;
                }
            },
            b'\\' => match t.get(i + 1)? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                b'u' => match hex4(t, i + 2)? {
                    0xD800..=0xDBFF
                        if t.get(i + 6..i + 8) == Some(b"\\u")
                            && matches!(hex4(t, i + 8), Some(0xDC00..=0xDFFF)) =>
                    {
                        i += 12
                    }
                    0xD800..=0xDFFF => {
                        out.extend_from_slice(&t[run..i]);
                        out.extend_from_slice(b"\\ufffd");
                        i += 6;
                        run = i;
                    }
                    _ => i += 6,
                },
                _ => return None,
            },
            _ => return None, // a control character
        }
    }
    out.extend_from_slice(&t[run..=i]);
    Some(i + 1)
}

fn hex4(s: &[u8], i: usize) -> Option<u32> {
    let h = std::str::from_utf8(s.get(i..i + 4)?).ok()?;
    h.bytes()
        .all(|c| c.is_ascii_hexdigit())
        .then(|| u32::from_str_radix(h, 16).ok())?
}

/// A cursor over a timestamp's text.
struct Cur<'a>(&'a [u8], usize);

impl Cur<'_> {
    fn eat(&mut self, c: u8) -> bool {
        let hit = self.0.get(self.1) == Some(&c);
        self.1 += usize::from(hit);
        hit
    }
    fn num(&mut self, min: usize, max: usize) -> Option<i64> {
        let rest = self.0.get(self.1..)?;
        let n = rest.iter().take_while(|c| c.is_ascii_digit()).count();
        self.1 += n;
        (min..=max).contains(&n).then(|| {
            rest[..n]
                .iter()
                .fold(0, |v, &c| v * 10 + i64::from(c - b'0'))
        })
    }
    fn two(&mut self, max: i64) -> Option<i64> {
        self.num(2, 2).filter(|&v| v <= max)
    }
    fn field(&mut self, sep: u8, max: i64) -> Option<i64> {
        self.eat(sep).then_some(())?;
        self.two(max)
    }
}

/// A timestamp's fields: the proleptic Gregorian date (astronomical year),
/// the second of the day, and the fraction as printed (`""` or `.` and
/// digits); in UTC when it had an offset.
pub(crate) struct Stamp<'a> {
    pub(crate) y: i64,
    pub(crate) m: i64,
    pub(crate) d: i64,
    pub(crate) secs: i64,
    pub(crate) frac: &'a [u8],
}

/// A time of day's fields: the second of the day, the fraction as printed,
/// and the offset east of UTC in seconds (0 without one).
pub(crate) struct Clock<'a> {
    pub(crate) secs: i64,
    pub(crate) frac: &'a [u8],
    pub(crate) offset: i64,
}

/// `HH:MM:SS[.ffffff]`, then `±HH[:MM[:SS]]` when `tz`; hour 24 only as
/// `24:00:00` (time's upper bound).
fn clock<'a>(c: &mut Cur<'a>, tz: bool) -> Option<Clock<'a>> {
    let secs =
        c.num(2, 2).filter(|&h| h <= 24)? * 3600 + c.field(b':', 59)? * 60 + c.field(b':', 59)?;
    let frac_start = c.1;
    if c.eat(b'.') {
        c.num(1, 12)?;
    }
    let frac = &c.0[frac_start..c.1];
    let mut offset = 0;
    if tz {
        let sign = match (c.eat(b'+'), c.eat(b'-')) {
            (true, _) => 1,
            (_, true) => -1,
            _ => return None,
        };
        offset = c.two(99)? * 3600;
        if c.eat(b':') {
            offset += c.two(59)? * 60;
            if c.eat(b':') {
                offset += c.two(59)?;
            }
        }
        offset *= sign;
    }
    Some(Clock { secs, frac, offset })
}

/// `YYYY-MM-DD` (the year as printed, 1 BC being 1).
fn ymd(c: &mut Cur<'_>) -> Option<(i64, i64, i64)> {
    let year = c.num(4, 9)?;
    Some((year, c.field(b'-', 12)?, c.field(b'-', 31)?))
}

/// Checks a date and turns a BC year (` BC` after the value) astronomical.
fn civil(c: &Cur<'_>, (year, month, day): (i64, i64, i64)) -> Option<(i64, i64, i64)> {
    let bc = match c.0.get(c.1..)? {
        b"" => false,
        b" BC" => true,
        _ => return None,
    };
    if year == 0 || month == 0 || day == 0 {
        return None;
    }
    // Astronomical year numbering: 1 BC is year 0.
    let year = if bc { 1 - year } else { year };
    (day <= days_in_month(year, month)).then_some((year, month, day))
}

/// `YYYY-MM-DD[ BC]`, a `date`'s text.
pub(crate) fn parse_date(t: &[u8]) -> Option<(i64, i64, i64)> {
    let mut c = Cur(t, 0);
    let date = ymd(&mut c)?;
    civil(&c, date)
}

/// `HH:MM:SS[.ffffff]` (`time`), with an offset when `tz` (`timetz`).
pub(crate) fn parse_time(t: &[u8], tz: bool) -> Option<Clock<'_>> {
    let mut c = Cur(t, 0);
    let clock = clock(&mut c, tz)?;
    (c.1 == t.len()).then_some(clock)
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff][±HH[:MM[:SS]]][ BC]`, converted to UTC
/// when `tz` (which requires the offset).
pub(crate) fn parse_timestamp(t: &[u8], tz: bool) -> Option<Stamp<'_>> {
    let mut c = Cur(t, 0);
    let date = ymd(&mut c)?;
    (c.eat(b' ') || c.eat(b'T')).then_some(())?;
    let Clock { secs, frac, offset } = clock(&mut c, tz).filter(|k| k.secs < 86_400)?;
    let (mut y, mut m, mut d) = civil(&c, date)?;
    let mut secs = secs;
    if offset != 0 {
        let s = secs - offset;
        (y, m, d) = civil_from_days(days_from_civil(y, m, d) + s.div_euclid(86_400));
        secs = s.rem_euclid(86_400);
    }
    Some(Stamp {
        y,
        m,
        d,
        secs,
        frac,
    })
}

/// A timestamp's text → quoted ISO 8601, in UTC (`Z`) when `tz`.
fn write_timestamp(out: &mut Vec<u8>, t: &[u8], tz: bool) -> Option<()> {
    let Stamp {
        y,
        m,
        d,
        secs,
        frac,
    } = parse_timestamp(t, tz)?;
    out.push(b'"');
    write_date_time(out, y, m, d, secs);
    out.extend_from_slice(frac);
    out.extend_from_slice(if tz { b"Z\"" } else { b"\"" });
    Some(())
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468
}

/// The proleptic Gregorian date (astronomical year) of days since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `YYYY-MM-DDTHH:MM:SS`, the year at least 4 digits and signed when
/// negative.
pub(crate) fn write_date_time(out: &mut Vec<u8>, y: i64, m: i64, d: i64, secs: i64) {
    if y < 0 {
        out.push(b'-');
    }
    write_uint(out, y.unsigned_abs(), 4);
    let [m, d] = [m, d].map(two_digits);
    out.extend_from_slice(&[b'-', m[0], m[1], b'-', d[0], d[1], b'T']);
    write_clock(out, secs);
}

/// `HH:MM:SS` of a second of the day.
pub(crate) fn write_clock(out: &mut Vec<u8>, secs: i64) {
    let [h, m, s] = [secs / 3600, secs / 60 % 60, secs % 60].map(two_digits);
    out.extend_from_slice(&[h[0], h[1], b':', m[0], m[1], b':', s[0], s[1]]);
}

/// The last two decimal digits of `v`, in one lookup.
fn two_digits(v: i64) -> [u8; 2] {
    PAIRS[v.rem_euclid(100) as usize]
}

/// `00` to `99`: numbers are written two digits per lookup.
static PAIRS: [[u8; 2]; 100] = {
    let mut t = [[0; 2]; 100];
    let mut i = 0;
    while i < 100 {
        t[i] = [b'0' + (i / 10) as u8, b'0' + (i % 10) as u8];
        i += 1;
    }
    t
};

/// Writes `v` in decimal, zero-padded to at least `width` digits. By hand
/// rather than with `write!`: the `core::fmt` machinery costs several times
/// more per number, and the `itoa` crate does not pad, which timestamps
/// need.
pub(crate) fn write_uint(out: &mut Vec<u8>, mut v: u64, width: usize) {
    let mut buf = [b'0'; 20];
    let mut i = buf.len();
    while v >= 100 {
        i -= 2;
        buf[i..i + 2].copy_from_slice(&PAIRS[(v % 100) as usize]);
        v /= 100;
    }
    if v >= 10 {
        i -= 2;
        buf[i..i + 2].copy_from_slice(&PAIRS[v as usize]);
    } else {
        i -= 1;
        buf[i] = b'0' + v as u8;
    }
    // The buffer starts as zeros: padding is starting earlier.
    out.extend_from_slice(&buf[i.min(buf.len() - width.clamp(1, 20))..]);
}

/// Hex-form bytea is copied; escape-form bytea is decoded and written in hex.
fn write_bytea(out: &mut Vec<u8>, t: &[u8]) -> Option<()> {
    if t.starts_with(b"\\x") {
        write_json_str(out, t);
        return Some(());
    }
    out.extend_from_slice(b"\"\\\\x");
    decode_bytea(t, |b| {
        out.extend_from_slice(&[HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]])
    })?;
    out.push(b'"');
    Some(())
}

/// Hands each byte of a bytea's text (hex or escape form) to `f`; `None`
/// when the text is neither.
pub(crate) fn decode_bytea(t: &[u8], mut f: impl FnMut(u8)) -> Option<()> {
    if let Some(hex) = t.strip_prefix(b"\\x") {
        let digit = |c: u8| char::from(c).to_digit(16).map(|d| d as u8);
        if hex.len() % 2 != 0 {
            return None;
        }
        for pair in hex.chunks(2) {
            f(digit(pair[0])? << 4 | digit(pair[1])?);
        }
        return Some(());
    }
    let mut i = 0;
    while let Some(&c) = t.get(i) {
        let (b, len) = match (c, t.get(i + 1..i + 4)) {
            (b'\\', _) if t.get(i + 1) == Some(&b'\\') => (b'\\', 2),
            (b'\\', Some(&[x @ b'0'..=b'3', y @ b'0'..=b'7', z @ b'0'..=b'7'])) => {
                ((x - b'0') << 6 | (y - b'0') << 3 | (z - b'0'), 4)
            }
            (b'\\', _) => return None,
            _ => (c, 1),
        };
        f(b);
        i += len;
    }
    Some(())
}

thread_local! {
    /// Reused buffer for unescaping quoted array elements that hold backslashes.
    static SCRATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Whitespace as PostgreSQL's array parser sees it (`scanner_isspace`).
fn is_space(c: &u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn skip_ws(t: &[u8], i: usize) -> usize {
    i + t
        .get(i..)
        .map_or(0, |r| r.iter().take_while(|c| is_space(c)).count())
}

/// The index after an optional `[lo:hi]...=` dimension prefix.
fn skip_dims(t: &[u8]) -> Option<usize> {
    let mut i = 0;
    if t.first() != Some(&b'[') {
        return Some(0);
    }
    let int = |i: usize| {
        number_end(t, i)
            .filter(|&(end, _)| t[i..end].iter().all(|c| *c == b'-' || c.is_ascii_digit()))
    };
    while t.get(i) == Some(&b'[') {
        i = int(i + 1)?.0;
        if t.get(i) == Some(&b':') {
            i = int(i + 1)?.0;
        }
        (t.get(i) == Some(&b']')).then_some(())?;
        i += 1;
    }
    (t.get(i) == Some(&b'=')).then_some(i + 1)
}

#[derive(Clone, Copy, PartialEq)]
enum Arr {
    /// After `{`: an element, `{` or `}`.
    Open,
    /// After a delimiter: an element or `{`.
    Elem,
    /// After an element or `}`: a delimiter or `}`.
    Next,
}

/// Writes a quoted array element with backslash escapes, unescaped in a
/// reused per-thread buffer. It is taken out while in use, so elements of
/// nested kinds each get their own.
fn write_unescaped(out: &mut Vec<u8>, elem: &ValueKind, body: &[u8], write: &WriteValue<'_>) {
    let mut buf = SCRATCH.try_with(Cell::take).unwrap_or_default();
    buf.clear();
    let mut k = 0;
    while let Some(&b) = body.get(k) {
        k += usize::from(b == b'\\');
        buf.extend(body.get(k));
        k += 1;
    }
    write(out, elem, &buf);
    if buf.capacity() <= 1 << 16 {
        let _ = SCRATCH.try_with(|s| s.set(buf));
    }
}

/// How a format writes one value (an array's elements).
pub(crate) type WriteValue<'a> = dyn Fn(&mut Vec<u8>, &ValueKind, &[u8]) + 'a;

/// Parses an array literal of any dimension into nested JSON arrays, each
/// element written by `write`.
pub(crate) fn write_array(
    out: &mut Vec<u8>,
    elem: &ValueKind,
    delim: u8,
    t: &[u8],
    write: &WriteValue<'_>,
) -> Option<()> {
    let mut i = skip_ws(t, skip_dims(t)?);
    (t.get(i) == Some(&b'{')).then_some(())?;
    out.push(b'[');
    let (mut depth, mut st) = (1usize, Arr::Open);
    i += 1;
    while depth > 0 {
        i = skip_ws(t, i);
        let c = *t.get(i)?;
        st = match (st, c) {
            (Arr::Open | Arr::Next, b'}') => {
                out.push(b']');
                depth -= 1;
                i += 1;
                Arr::Next
            }
            (Arr::Next, _) if c == delim => {
                out.push(b',');
                i += 1;
                Arr::Elem
            }
            (Arr::Next, _) => return None,
            (_, b'{') => {
                out.push(b'[');
                depth += 1;
                i += 1;
                Arr::Open
            }
            (_, b'"') => {
                let (mut j, mut escaped) = (i + 1, false);
                loop {
                    match t.get(j)? {
                        b'"' => break,
                        b'\\' => (j, escaped) = (j + 2, true),
                        _ => j += 1,
                    }
                }
                let body = t.get(i + 1..j)?;
                if escaped {
                    write_unescaped(out, elem, body, write);
                } else {
                    write(out, elem, body);
                }
                i = j + 1;
                Arr::Next
            }
            _ => {
                let len = t[i..]
                    .iter()
                    .take_while(|&&b| b != delim && b != b'}')
                    .count();
                let mut token = &t[i..i + len];
                while let [rest @ .., last] = token {
                    if !is_space(last) {
                        break;
                    }
                    token = rest;
                }
                if token.is_empty() || token.iter().any(|b| matches!(b, b'{' | b'"' | b'\\')) {
                    return None;
                }
                if token.eq_ignore_ascii_case(b"NULL") {
                    out.extend_from_slice(b"null");
                } else {
                    write(out, elem, token);
                }
                i += len;
                Arr::Next
            }
        };
    }
    (skip_ws(t, i) == t.len()).then_some(())
}

#[cfg(test)]
pub(crate) mod tests;
