//! [`Lsn`]: a WAL position.

use std::fmt;
use std::str::FromStr;

/// A WAL position: a byte offset into the write-ahead log, printed and
/// parsed as PostgreSQL does (`16/B374D848`).
///
/// ```
/// use pgstream::Lsn;
///
/// let lsn: Lsn = "16/B374D848".parse().unwrap();
/// assert_eq!(lsn, Lsn(0x16_B374_D848));
/// assert_eq!(lsn.to_string(), "16/B374D848");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lsn(pub u64);

impl Lsn {
    /// `0/0`: no position (the server's "invalid" LSN).
    pub const ZERO: Lsn = Lsn(0);
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

/// The text was not `X/XXXXXXXX` (two hexadecimal numbers of up to 8 digits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseLsnError;

impl fmt::Display for ParseLsnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not an LSN (X/XXXXXXXX)")
    }
}

impl std::error::Error for ParseLsnError {}

impl FromStr for Lsn {
    type Err = ParseLsnError;

    /// Parses `X/XXXXXXXX`, surrounding whitespace allowed.
    fn from_str(s: &str) -> Result<Lsn, ParseLsnError> {
        let half = |h: &str| match h.len() {
            1..=8 => u32::from_str_radix(h, 16).map_err(|_| ParseLsnError),
            _ => Err(ParseLsnError),
        };
        let (hi, lo) = s.trim().split_once('/').ok_or(ParseLsnError)?;
        Ok(Lsn((u64::from(half(hi)?) << 32) | u64::from(half(lo)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let parse = |s: &str| s.parse::<Lsn>().ok();
        assert_eq!(Lsn(0x16_B374_D848).to_string(), "16/B374D848");
        assert_eq!(parse("16/B374D848"), Some(Lsn(0x16_B374_D848)));
        assert_eq!(parse("0/0"), Some(Lsn::ZERO));
        assert_eq!(parse(" 0/1A2B3C8\n"), Some(Lsn(0x1A2B3C8)));
        assert_eq!(parse("x/1"), None);
        assert_eq!(parse("1"), None);
        assert_eq!(parse("/1"), None);
        assert_eq!(parse("1/123456789"), None);
    }
}
