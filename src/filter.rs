//! `--table` / `--exclude-table`: `schema.table` patterns with `*`
//! wildcards, compiled once and applied to every change.
//!
//! A pattern without a dot names tables in any schema. A table is streamed
//! when it matches some `--table` pattern (or none were given) and no
//! `--exclude-table` pattern.

use crate::error::{Error, Result};

/// One `schema.table` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    schema: Option<String>,
    table: String,
}

impl Pattern {
    fn parse(text: &str) -> Result<Pattern> {
        let bad = || Error::usage(format!("invalid table pattern \"{text}\"; use schema.table, with * as a wildcard"));
        let (schema, table) = match text.split_once('.') {
            Some((s, t)) if !s.is_empty() && !t.is_empty() && !t.contains('.') => (Some(s.to_string()), t.to_string()),
            Some(_) => return Err(bad()),
            None if !text.is_empty() => (None, text.to_string()),
            None => return Err(bad()),
        };
        Ok(Pattern { schema, table })
    }

    fn matches(&self, schema: &str, table: &str) -> bool {
        self.schema.as_deref().is_none_or(|p| glob(p.as_bytes(), schema.as_bytes())) && glob(self.table.as_bytes(), table.as_bytes())
    }
}

/// Compiled include and exclude patterns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableFilter {
    include: Vec<Pattern>,
    exclude: Vec<Pattern>,
}

impl TableFilter {
    /// Compiles the patterns of `--table` and `--exclude-table`.
    pub fn new(include: &[String], exclude: &[String]) -> Result<TableFilter> {
        let compile = |v: &[String]| v.iter().map(|p| Pattern::parse(p.trim())).collect::<Result<Vec<_>>>();
        Ok(TableFilter { include: compile(include)?, exclude: compile(exclude)? })
    }

    /// Whether no pattern was given: everything passes.
    pub fn is_empty(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty()
    }

    /// Whether changes of `schema.table` are streamed.
    pub fn matches(&self, schema: &str, table: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|p| p.matches(schema, table)))
            && !self.exclude.iter().any(|p| p.matches(schema, table))
    }
}

/// `*` matches any run of characters; everything else matches itself.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    // Iterative matching with one backtrack point: linear in practice.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(include: &[&str], exclude: &[&str]) -> TableFilter {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        TableFilter::new(&v(include), &v(exclude)).unwrap()
    }

    #[test]
    fn globs() {
        assert!(glob(b"*", b""));
        assert!(glob(b"ord*", b"orders"));
        assert!(glob(b"*ers", b"orders"));
        assert!(glob(b"o*d*s", b"orders"));
        assert!(!glob(b"o*x", b"orders"));
        assert!(glob(b"orders", b"orders"));
        assert!(!glob(b"order", b"orders"));
        assert!(glob(b"a*b*c", b"aXbYbZc"));
    }

    #[test]
    fn include_and_exclude() {
        let f = filter(&["public.*", "audit.log"], &["public.tmp_*"]);
        assert!(f.matches("public", "orders"));
        assert!(!f.matches("public", "tmp_x"));
        assert!(f.matches("audit", "log"));
        assert!(!f.matches("audit", "other"));
        let f = filter(&[], &["*.secret"]);
        assert!(f.matches("any", "orders"));
        assert!(!f.matches("any", "secret"));
        assert!(filter(&[], &[]).is_empty());
    }

    #[test]
    fn pattern_without_schema_matches_any_schema() {
        let f = filter(&["orders"], &[]);
        assert!(f.matches("public", "orders"));
        assert!(f.matches("shop", "orders"));
        assert!(!f.matches("shop", "orders2"));
    }

    #[test]
    fn bad_patterns() {
        for bad in ["", ".t", "s.", "a.b.c"] {
            assert_eq!(TableFilter::new(&[bad.to_string()], &[]).unwrap_err().exit_code(), 2, "{bad}");
        }
    }
}
