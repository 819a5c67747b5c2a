//! wal2json document reader: one `format-version 2` document → the
//! [`Doc`] fields the decoder reads, as byte ranges into it. Column entries
//! go to the caller's reused `Vec`, so reading allocates nothing once that
//! has grown.
//!
//! The JSON reader is hand-written over bytes: wal2json copies a message's
//! bytes into the document as they are, so a document need not be UTF-8.
//! It never panics; a malformed document is a [`DecodeError`] naming the
//! action and the byte offset.

use std::ops::Range;

use crate::decode::DecodeError;
use crate::event::{Lsn, PgTimestamp};

/// How deep [`Scan::skip`] follows unknown nested values.
const MAX_DEPTH: u32 = 32;

pub(super) fn lsn_of(buf: &[u8], s: Str) -> Option<Lsn> {
    std::str::from_utf8(s.raw(buf))
        .ok()
        .and_then(|s| s.parse().ok())
}

/// Parses a `timestamptz` as PostgreSQL prints it with `DateStyle=ISO`,
/// `2026-11-23 21:54:32.123456+00`, into microseconds since 2000-01-01 UTC.
fn parse_timestamp(s: &[u8]) -> Option<PgTimestamp> {
    let mut p = Digits { s, pos: 0 };
    let year = p.int(4, 9)?;
    let month = p.sep(b'-')?.int(2, 2)?;
    let day = p.sep(b'-')?.int(2, 2)?;
    if !matches!(p.next(), Some(b' ' | b'T')) {
        return None;
    }
    let hour = p.int(2, 2)?;
    let min = p.sep(b':')?.int(2, 2)?;
    let sec = p.sep(b':')?.int(2, 2)?;
    let mut micros = 0;
    if p.peek() == Some(b'.') {
        p.pos += 1;
        let start = p.pos;
        let frac = p.int(1, 6)?;
        micros = frac * 10i64.pow(6 - (p.pos - start) as u32);
    }
    let sign = match p.next()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let mut offset = p.int(2, 2)? * 3600;
    for unit in [60, 1] {
        if p.peek() == Some(b':') {
            offset += p.sep(b':')?.int(2, 2)? * unit;
        }
    }
    let valid =
        (1..=12).contains(&month) && (1..=31).contains(&day) && hour < 25 && min < 60 && sec < 61;
    if !valid || p.pos != s.len() {
        return None;
    }
    // Days from 1970-01-01 (Howard Hinnant's days_from_civil), then 10957
    // days to PostgreSQL's epoch, 2000-01-01.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468 - 10957;
    let secs = days * 86_400 + hour * 3600 + min * 60 + sec - sign * offset;
    secs.checked_mul(1_000_000)?.checked_add(micros)
}

/// A cursor over the digits of a timestamp.
struct Digits<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Digits<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.pos += 1;
        Some(c)
    }

    fn sep(&mut self, c: u8) -> Option<&mut Self> {
        (self.next()? == c).then_some(self)
    }

    /// `min..=max` decimal digits.
    fn int(&mut self, min: usize, max: usize) -> Option<i64> {
        let rest = self.s.get(self.pos..)?;
        let n = rest
            .iter()
            .take(max)
            .take_while(|c| c.is_ascii_digit())
            .count();
        if n < min {
            return None;
        }
        let v = rest
            .iter()
            .take(n)
            .fold(0i64, |v, &c| v * 10 + i64::from(c - b'0'));
        self.pos += n;
        Some(v)
    }
}

/// A JSON string: the raw bytes between its quotes.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Str {
    pub(super) start: usize,
    end: usize,
    /// Holds a backslash escape: compare and copy through [`unescape`].
    pub(super) escaped: bool,
}

impl Str {
    pub(super) fn raw(self, buf: &[u8]) -> &[u8] {
        buf.get(self.start..self.end).unwrap_or_default()
    }
}

/// A scalar JSON value.
#[derive(Debug, Clone)]
pub(super) enum Val {
    Null,
    Bool(bool),
    /// A number's exact text.
    Num(Range<usize>),
    Str(Str),
}

/// One entry of `columns`, `identity` or `pk`.
#[derive(Debug, Clone)]
pub(super) struct Col {
    pub(super) name: Str,
    pub(super) oid: Option<u32>,
    /// Absent in `pk` entries.
    pub(super) value: Option<Val>,
}

/// The fields of one wal2json document that the decoder reads.
#[derive(Debug, Default)]
pub(super) struct Doc {
    pub(super) action: u8,
    pub(super) xid: Option<u32>,
    timestamp: Option<Str>,
    lsn: Option<Str>,
    pub(super) nextlsn: Option<Str>,
    pub(super) schema: Option<Str>,
    pub(super) table: Option<Str>,
    /// Ranges of the decoder's column entries.
    pub(super) columns: Option<Range<usize>>,
    pub(super) identity: Option<Range<usize>>,
    pub(super) pk: Option<Range<usize>>,
    pub(super) transactional: Option<bool>,
    pub(super) prefix: Option<Str>,
    pub(super) content: Option<Str>,
}

impl Doc {
    pub(super) fn err(&self, offset: usize, what: &'static str) -> DecodeError {
        DecodeError {
            plugin: "wal2json",
            tag: char::from(self.action),
            offset,
            what,
        }
    }

    pub(super) fn lsn(&self, buf: &[u8]) -> Result<Option<Lsn>, DecodeError> {
        self.lsn
            .map(|s| lsn_of(buf, s).ok_or_else(|| self.err(s.start, "bad lsn")))
            .transpose()
    }

    pub(super) fn timestamp(&self, buf: &[u8]) -> Result<Option<PgTimestamp>, DecodeError> {
        let ts = |s: Str| {
            parse_timestamp(s.raw(buf))
                .ok_or_else(|| self.err(s.start, "bad timestamp (DateStyle must be ISO)"))
        };
        self.timestamp.map(ts).transpose()
    }
}

/// Reads one document; its column entries go to `cols`.
pub(super) fn parse(buf: &[u8], cols: &mut Vec<Col>) -> Result<Doc, DecodeError> {
    cols.clear();
    let mut s = Scan {
        buf,
        pos: 0,
        tag: '?',
    };
    let mut d = Doc::default();
    s.members(&mut |s, key| {
        match key {
            b"action" => {
                let at = s.pos;
                match s.string()?.raw(buf) {
                    &[a @ (b'B' | b'C' | b'I' | b'U' | b'D' | b'T' | b'M')] => {
                        d.action = a;
                        s.tag = char::from(a);
                    }
                    _ => return Err(s.err_at(at, "unknown action")),
                }
            }
            b"xid" => d.xid = s.nullable(Scan::u32)?,
            b"timestamp" => d.timestamp = s.nullable(Scan::string)?,
            b"lsn" => d.lsn = Some(s.string()?),
            b"nextlsn" => d.nextlsn = Some(s.string()?),
            b"schema" => d.schema = Some(s.string()?),
            b"table" => d.table = Some(s.string()?),
            b"columns" => d.columns = Some(s.columns(cols, true)?),
            b"identity" => d.identity = Some(s.columns(cols, true)?),
            b"pk" => d.pk = Some(s.columns(cols, false)?),
            b"transactional" => {
                d.transactional = match s.scalar()? {
                    Val::Bool(b) => Some(b),
                    _ => return Err(s.err("expected true or false")),
                }
            }
            b"prefix" => d.prefix = Some(s.string()?),
            b"content" => d.content = Some(s.string()?),
            _ => s.skip(0)?,
        }
        Ok(())
    })?;
    s.ws();
    if s.pos < buf.len() {
        return Err(s.err("data after the document"));
    }
    if d.action == 0 {
        return Err(s.err_at(0, "document without action"));
    }
    Ok(d)
}

/// A cursor over one document.
struct Scan<'a> {
    buf: &'a [u8],
    pos: usize,
    /// The action, once read, for errors.
    tag: char,
}

type Members<'f, 'a> = dyn FnMut(&mut Scan<'a>, &'a [u8]) -> Result<(), DecodeError> + 'f;

impl<'a> Scan<'a> {
    fn err_at(&self, offset: usize, what: &'static str) -> DecodeError {
        DecodeError {
            plugin: "wal2json",
            tag: self.tag,
            offset,
            what,
        }
    }

    /// An error here, or "document ends early" past the end.
    fn err(&self, what: &'static str) -> DecodeError {
        self.err_at(
            self.pos,
            if self.pos < self.buf.len() {
                what
            } else {
                "document ends early"
            },
        )
    }

    fn ws(&mut self) {
        while matches!(self.buf.get(self.pos), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.buf.get(self.pos).copied()
    }

    fn expect(&mut self, c: u8, what: &'static str) -> Result<(), DecodeError> {
        if self.peek() != Some(c) {
            return Err(self.err(what));
        }
        self.pos += 1;
        Ok(())
    }

    /// After a member: true after a comma, false after `close`.
    fn more(&mut self, close: u8) -> Result<bool, DecodeError> {
        match self.peek() {
            Some(b',') => self.pos += 1,
            Some(c) if c == close => {
                self.pos += 1;
                return Ok(false);
            }
            _ => return Err(self.err("expected a comma or a closing bracket")),
        }
        Ok(true)
    }

    /// An object: `f` reads each member's value, given its raw key.
    fn members(&mut self, f: &mut Members<'_, 'a>) -> Result<(), DecodeError> {
        self.expect(b'{', "expected an object")?;
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            let key = self.string()?.raw(self.buf);
            self.expect(b':', "expected a colon")?;
            f(self, key)?;
            if !self.more(b'}')? {
                return Ok(());
            }
        }
    }

    /// An array: `f` reads each element.
    fn elements(
        &mut self,
        f: &mut dyn FnMut(&mut Self) -> Result<(), DecodeError>,
    ) -> Result<(), DecodeError> {
        self.expect(b'[', "expected an array")?;
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            f(self)?;
            if !self.more(b']')? {
                return Ok(());
            }
        }
    }

    /// `columns`, `identity` or `pk`: objects with `name`, `typeoid` and
    /// (unless `pk`) `value`; other members are skipped.
    fn columns(&mut self, cols: &mut Vec<Col>, values: bool) -> Result<Range<usize>, DecodeError> {
        let start = cols.len();
        self.elements(&mut |s| {
            let at = s.pos;
            let (mut name, mut oid, mut value) = (None, None, None);
            s.members(&mut |s, key| {
                match key {
                    b"name" => name = Some(s.string()?),
                    b"typeoid" => oid = Some(s.u32()?),
                    b"value" if values => value = Some(s.scalar()?),
                    _ => s.skip(0)?,
                }
                Ok(())
            })?;
            let name = name.ok_or_else(|| s.err_at(at, "column without name"))?;
            if values && (oid.is_none() || value.is_none()) {
                return Err(s.err_at(at, "column without typeoid or value"));
            }
            cols.push(Col { name, oid, value });
            Ok(())
        })?;
        Ok(start..cols.len())
    }

    /// `null` or what `f` reads.
    fn nullable<T>(
        &mut self,
        f: fn(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Option<T>, DecodeError> {
        if self.peek() == Some(b'n') {
            return self.word(b"null").map(|_| None);
        }
        f(self).map(Some)
    }

    fn word(&mut self, w: &[u8]) -> Result<(), DecodeError> {
        let end = self.pos.saturating_add(w.len());
        if self.buf.get(self.pos..end) != Some(w) {
            return Err(self.err("expected a value"));
        }
        self.pos = end;
        Ok(())
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        let at = self.pos;
        match self.scalar()? {
            Val::Num(r) => {
                let text = self.buf.get(r).unwrap_or_default();
                let v = std::str::from_utf8(text).ok().and_then(|t| t.parse().ok());
                v.ok_or_else(|| self.err_at(at, "expected an unsigned integer"))
            }
            _ => Err(self.err_at(at, "expected an unsigned integer")),
        }
    }

    /// A string, number, `true`, `false` or `null`.
    fn scalar(&mut self) -> Result<Val, DecodeError> {
        match self.peek() {
            Some(b'"') => self.string().map(Val::Str),
            Some(b'n') => self.word(b"null").map(|_| Val::Null),
            Some(b't') => self.word(b"true").map(|_| Val::Bool(true)),
            Some(b'f') => self.word(b"false").map(|_| Val::Bool(false)),
            Some(b'-' | b'0'..=b'9') => {
                // wal2json prints what the type's output function wrote, if
                // it has only these characters; write_value checks the form.
                let start = self.pos;
                let len = self.buf.get(start..).unwrap_or_default().iter();
                let len = len
                    .take_while(|c| matches!(c, b'0'..=b'9' | b'+' | b'-' | b'.' | b'e' | b'E'))
                    .count();
                self.pos += len;
                Ok(Val::Num(start..self.pos))
            }
            _ => Err(self.err("expected a value")),
        }
    }

    /// A string; its escapes are checked here, decoded by [`unescape`].
    /// Other bytes are taken as they are: wal2json does not check UTF-8.
    fn string(&mut self) -> Result<Str, DecodeError> {
        self.expect(b'"', "expected a string")?;
        let start = self.pos;
        let mut escaped = false;
        loop {
            let rest = self.buf.get(self.pos..).unwrap_or_default();
            let Some(i) = rest.iter().position(|&c| c == b'"' || c == b'\\') else {
                self.pos = self.buf.len();
                return Err(self.err("document ends early"));
            };
            self.pos += i;
            if rest.get(i) == Some(&b'"') {
                self.pos += 1;
                return Ok(Str {
                    start,
                    end: self.pos - 1,
                    escaped,
                });
            }
            escaped = true;
            let len = match rest.get(i + 1) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => 2,
                Some(b'u')
                    if rest
                        .get(i + 2..i + 6)
                        .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) =>
                {
                    6
                }
                _ => return Err(self.err("bad escape in string")),
            };
            self.pos += len;
        }
    }

    /// Any value, nested at most [`MAX_DEPTH`] deep.
    fn skip(&mut self, depth: u32) -> Result<(), DecodeError> {
        if depth > MAX_DEPTH {
            return Err(self.err("nesting too deep"));
        }
        match self.peek() {
            Some(b'{') => self.members(&mut |s, _| s.skip(depth + 1)),
            Some(b'[') => self.elements(&mut |s| s.skip(depth + 1)),
            _ => self.scalar().map(drop),
        }
    }
}

/// Appends a checked JSON string's text to `out`. A lone surrogate
/// becomes U+FFFD; other bytes are copied as they are.
pub(super) fn unescape(raw: &[u8], out: &mut Vec<u8>) {
    let mut rest = raw;
    while let Some(i) = rest.iter().position(|&c| c == b'\\') {
        let (plain, esc) = rest.split_at(i);
        out.extend_from_slice(plain);
        let hex = |at: usize| {
            let h = esc
                .get(at..at + 4)
                .and_then(|h| std::str::from_utf8(h).ok());
            h.and_then(|h| u32::from_str_radix(h, 16).ok())
        };
        let (c, len) = match esc.get(1) {
            Some(b'b') => ('\u{8}', 2),
            Some(b'f') => ('\u{c}', 2),
            Some(b'n') => ('\n', 2),
            Some(b'r') => ('\r', 2),
            Some(b't') => ('\t', 2),
            Some(b'u') => match (hex(2), esc.get(6..8), hex(8)) {
                (Some(hi @ 0xD800..=0xDBFF), Some(b"\\u"), Some(lo @ 0xDC00..=0xDFFF)) => {
                    let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                    (char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER), 12)
                }
                (Some(c), ..) => (char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER), 6),
                (None, ..) => (char::REPLACEMENT_CHARACTER, esc.len()),
            },
            Some(&c) => (char::from(c), 2), // `"`, `\`, `/`
            None => ('\\', 1),
        };
        let mut utf8 = [0; 4];
        out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
        rest = esc.get(len..).unwrap_or_default();
    }
    out.extend_from_slice(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        let t = |s: &str| parse_timestamp(s.as_bytes());
        assert_eq!(t("2000-01-01 00:00:00+00"), Some(0));
        assert_eq!(t("2000-01-01 00:00:00.5+00"), Some(500_000));
        assert_eq!(t("2000-01-01 00:00:00.000001+00"), Some(1));
        assert_eq!(t("2000-01-01 01:30:00+01:30"), Some(0));
        assert_eq!(t("1999-12-31 23:00:00-01"), Some(0));
        assert_eq!(t("1999-12-31 23:59:59+00"), Some(-1_000_000));
        assert_eq!(
            t("2026-11-23 21:54:32.123456+00"),
            Some(848_786_072_123_456)
        );
        assert_eq!(t("2000-03-01 00:00:00+00"), Some(60 * 86_400_000_000));
        for bad in [
            "",
            "2000-01-01",
            "2000-01-01 00:00:00",
            "2000-13-01 00:00:00+00",
            "2000-01-01 00:00:00.1234567+00",
            "2000-01-01 00:00:00+00 BC",
            "infinity",
            "01/01/2000 00:00:00+00",
            "2000-01-01 00:00:00+0",
        ] {
            assert_eq!(t(bad), None, "{bad}");
        }
    }

    #[test]
    fn unescaping() {
        let u = |s: &str| {
            let mut out = Vec::new();
            unescape(s.as_bytes(), &mut out);
            out
        };
        assert_eq!(u(r#"a\"b\\c\/d\b\f\n\r\t"#), b"a\"b\\c/d\x08\x0c\n\r\t");
        assert_eq!(u(r"\u00e9\u0001\u0000"), "é\u{1}\0".as_bytes());
        assert_eq!(u(r"\ud83d\ude00!"), "😀!".as_bytes());
        assert_eq!(u(r"\ud83dx\ude00"), "\u{fffd}x\u{fffd}".as_bytes());
        assert_eq!(
            u("\u{e9}\\"),
            "é\\".as_bytes(),
            "a trailing backslash is kept"
        );
    }
}
