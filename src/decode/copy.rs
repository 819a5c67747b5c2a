//! `COPY … TO STDOUT` text format → row values, sans-IO.
//!
//! The snapshot copies tables in PostgreSQL's text format, whose values are
//! the types' text output — what the value converter ([`super::value`])
//! already maps for streamed changes — so `read` events follow the same
//! mapping. A row is one line: values separated by a tab, `\N` for NULL,
//! and a backslash escaping the characters that would otherwise break the
//! line (`\\`, `\t`, `\n`, `\r`, `\b`, `\f`, `\v`, octal `\123`, hex `\x41`).
//!
//! [`CopyRow`] parses one line into [`RawDatum`]s over a reusable buffer:
//! a line without a backslash (the common case) is not copied at all.

use crate::event::RawDatum;

/// A line the parser cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CopyError {
    #[error("COPY row has {got} values, expected {want}")]
    Columns { got: usize, want: usize },
    #[error("COPY row longer than 4 GB")]
    TooLong,
}

/// Reusable scratch space for parsing rows.
#[derive(Debug, Default)]
pub(crate) struct CopyRow {
    /// Unescaped values of the last row that had a backslash.
    scratch: Vec<u8>,
    datums: Vec<RawDatum>,
}

impl CopyRow {
    /// Parses `line` (without its `\n`), which must hold `ncols` values.
    /// Returns the bytes the datums point into (`line` itself, or the
    /// unescaped copy) and one datum per column.
    pub(crate) fn parse<'a>(
        &'a mut self,
        line: &'a [u8],
        ncols: usize,
    ) -> Result<(&'a [u8], &'a [RawDatum]), CopyError> {
        self.datums.clear();
        if u32::try_from(line.len()).is_err() {
            return Err(CopyError::TooLong);
        }
        if ncols == 0 {
            // `SELECT FROM t`: each row is an empty line.
            return if line.is_empty() {
                Ok((line, &self.datums))
            } else {
                Err(CopyError::Columns { got: 1, want: 0 })
            };
        }
        let data: &[u8] = if line.contains(&b'\\') {
            self.split_escaped(line);
            &self.scratch
        } else {
            let mut start = 0;
            for (i, &b) in line.iter().enumerate() {
                if b == b'\t' {
                    self.datums.push(text(start, i));
                    start = i + 1;
                }
            }
            self.datums.push(text(start, line.len()));
            line
        };
        if self.datums.len() != ncols {
            return Err(CopyError::Columns {
                got: self.datums.len(),
                want: ncols,
            });
        }
        Ok((data, &self.datums))
    }

    /// The slow path: one scan that resolves escapes into `scratch` and
    /// ends a value at each unescaped tab. `\N` is NULL only as the whole
    /// raw value.
    fn split_escaped(&mut self, line: &[u8]) {
        self.scratch.clear();
        let (mut i, mut raw_start, mut start) = (0, 0, 0);
        loop {
            match line.get(i) {
                None | Some(b'\t') => {
                    if &line[raw_start..i] == b"\\N" {
                        self.scratch.truncate(start);
                        self.datums.push(RawDatum::Null);
                    } else {
                        self.datums.push(text(start, self.scratch.len()));
                    }
                    if i >= line.len() {
                        return;
                    }
                    i += 1;
                    raw_start = i;
                    start = self.scratch.len();
                }
                Some(b'\\') => i = unescape(line, i + 1, &mut self.scratch),
                Some(&b) => {
                    self.scratch.push(b);
                    i += 1;
                }
            }
        }
    }
}

/// Offsets fit: the line's length was checked against `u32`, and an
/// unescaped value is never longer than its escaped form.
fn text(start: usize, end: usize) -> RawDatum {
    RawDatum::Text {
        start: start as u32,
        end: end as u32,
    }
}

/// Resolves the escape whose backslash is just before `line[i]` into
/// `out`; returns the index after it. A backslash before any other
/// character (the delimiter included) stands for that character; a
/// trailing one for itself.
fn unescape(line: &[u8], mut i: usize, out: &mut Vec<u8>) -> usize {
    let Some(&c) = line.get(i) else {
        out.push(b'\\');
        return i;
    };
    i += 1;
    let digit = |i: usize, radix: u32| line.get(i).and_then(|&d| (d as char).to_digit(radix));
    match c {
        b'b' => out.push(8),
        b'f' => out.push(12),
        b'n' => out.push(b'\n'),
        b'r' => out.push(b'\r'),
        b't' => out.push(b'\t'),
        b'v' => out.push(11),
        b'0'..=b'7' => {
            let mut v = u32::from(c - b'0');
            for _ in 0..2 {
                match digit(i, 8) {
                    Some(d) => {
                        v = v * 8 + d;
                        i += 1;
                    }
                    None => break,
                }
            }
            out.push(v as u8); // only the low byte, as PostgreSQL does
        }
        b'x' if digit(i, 16).is_some() => {
            let mut v = 0;
            for _ in 0..2 {
                match digit(i, 16) {
                    Some(d) => {
                        v = v * 16 + d;
                        i += 1;
                    }
                    None => break,
                }
            }
            out.push(v as u8);
        }
        other => out.push(other),
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(line: &[u8], ncols: usize) -> Vec<Option<Vec<u8>>> {
        let mut row = CopyRow::default();
        let (data, datums) = row.parse(line, ncols).unwrap();
        datums
            .iter()
            .map(|d| match *d {
                RawDatum::Text { start, end } => Some(data[start as usize..end as usize].to_vec()),
                _ => None,
            })
            .collect()
    }

    fn s(v: &str) -> Option<Vec<u8>> {
        Some(v.as_bytes().to_vec())
    }

    #[test]
    fn plain_rows_are_split_on_tabs() {
        assert_eq!(values(b"1\tabc\t", 3), [s("1"), s("abc"), s("")]);
        assert_eq!(values(b"", 1), [s("")]);
        assert_eq!(values(b"x", 1), [s("x")]);
    }

    #[test]
    fn null_and_escapes() {
        assert_eq!(
            values(b"\\N\t\\\\N\ta\\tb\\nc", 3),
            [None, s("\\N"), s("a\tb\nc")]
        );
        assert_eq!(values(b"\\b\\f\\r\\v\\\\", 1), [s("\u{8}\u{c}\r\u{b}\\")]);
        assert_eq!(values(b"\\101\\7\\0101", 1), [s("A\u{7}\u{8}1")]);
        assert_eq!(values(b"\\x41\\x4g\\xz", 1), [s("A\u{4}gxz")]);
        assert_eq!(values(b"a\\", 1), [s("a\\")]);
        assert_eq!(values(b"\\q\t\\N", 2), [s("q"), None]);
        // A backslash before a raw tab makes it part of the value.
        assert_eq!(values(b"a\\\tb\tc", 2), [s("a\tb"), s("c")]);
    }

    #[test]
    fn utf8_passes_through() {
        assert_eq!(values("é\t\\\\ü".as_bytes(), 2), [s("é"), s("\\ü")]);
    }

    #[test]
    fn wrong_column_count_is_an_error() {
        let mut row = CopyRow::default();
        assert_eq!(
            row.parse(b"1\t2", 3).unwrap_err(),
            CopyError::Columns { got: 2, want: 3 }
        );
        assert_eq!(
            row.parse(b"1\\t2", 2).unwrap_err(),
            CopyError::Columns { got: 1, want: 2 }
        );
        assert!(row.parse(b"", 0).is_ok());
        assert!(row.parse(b"x", 0).is_err());
    }

    #[test]
    fn buffers_are_reused() {
        let mut row = CopyRow::default();
        for line in [&b"a\\tb\tc"[..], b"d\te", b"\\N\tf"] {
            let (_, datums) = row.parse(line, 2).unwrap();
            assert_eq!(datums.len(), 2);
        }
    }
}
