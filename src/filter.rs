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
        let bad = || {
            Error::usage(format!(
                "invalid table pattern \"{text}\"; use schema.table, with * as a wildcard"
            ))
        };
        let (schema, table) = match text.split_once('.') {
            Some((s, t)) if !s.is_empty() && !t.is_empty() && !t.contains('.') => {
                (Some(s.to_string()), t.to_string())
            }
            Some(_) => return Err(bad()),
            None if !text.is_empty() => (None, text.to_string()),
            None => return Err(bad()),
        };
        Ok(Pattern { schema, table })
    }

    fn matches(&self, schema: &str, table: &str) -> bool {
        self.schema
            .as_deref()
            .is_none_or(|p| glob(p.as_bytes(), schema.as_bytes()))
            && glob(self.table.as_bytes(), table.as_bytes())
    }
}

/// Compiled include and exclude patterns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TableFilter {
    include: Vec<Pattern>,
    exclude: Vec<Pattern>,
}

impl TableFilter {
    /// Compiles the patterns of `--table` and `--exclude-table`.
    pub(crate) fn new(include: &[String], exclude: &[String]) -> Result<TableFilter> {
        let compile = |v: &[String]| {
            v.iter()
                .map(|p| Pattern::parse(p.trim()))
                .collect::<Result<Vec<_>>>()
        };
        Ok(TableFilter {
            include: compile(include)?,
            exclude: compile(exclude)?,
        })
    }

    /// Whether changes of `schema.table` are streamed.
    pub(crate) fn matches(&self, schema: &str, table: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|p| p.matches(schema, table)))
            && !self.exclude.iter().any(|p| p.matches(schema, table))
    }
}

/// One entry of wal2json's `add-tables` / `filter-tables`: a schema and a
/// table name, `None` standing for wal2json's `*` (any). wal2json knows no
/// other wildcard.
pub(crate) type Wal2JsonTable<'a> = (Option<&'a str>, Option<&'a str>);

impl TableFilter {
    /// The patterns pushed down to wal2json, so that it does not even send
    /// the changes of tables that would be filtered out here. The filter
    /// still applies to what arrives; the push-down only has to be safe:
    ///
    /// - `add-tables`: one entry per include pattern, widened to what
    ///   wal2json can say (`ord*` in `shop` becomes `shop.*`); `None` when
    ///   there is no include pattern or one widens to every table.
    /// - `filter-tables`: the exclude patterns wal2json can say exactly
    ///   (each part a name without `*`, or `*` alone); the others are left to
    ///   this filter.
    pub(crate) fn wal2json_tables(
        &self,
    ) -> (Option<Vec<Wal2JsonTable<'_>>>, Vec<Wal2JsonTable<'_>>) {
        fn part(p: &str) -> Option<&str> {
            (!p.contains('*')).then_some(p)
        }
        let exact = |p: &str| p == "*" || !p.contains('*');
        let add: Vec<Wal2JsonTable<'_>> = self
            .include
            .iter()
            .map(|p| (p.schema.as_deref().and_then(part), part(&p.table)))
            .collect();
        let add = (!add.is_empty() && !add.contains(&(None, None))).then_some(add);
        let filter = self
            .exclude
            .iter()
            .filter(|p| p.schema.as_deref().is_none_or(exact) && exact(&p.table))
            .map(|p| (p.schema.as_deref().and_then(part), part(&p.table)))
            .collect();
        (add, filter)
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
        assert!(filter(&[], &[]).matches("any", "thing"));
    }

    #[test]
    fn pattern_without_schema_matches_any_schema() {
        let f = filter(&["orders"], &[]);
        assert!(f.matches("public", "orders"));
        assert!(f.matches("shop", "orders"));
        assert!(!f.matches("shop", "orders2"));
    }

    #[test]
    fn wal2json_push_down_is_safe() {
        let f = filter(
            &["shop.orders", "public.ord*", "audit.*", "events", "s*.t"],
            &["*.tmp", "public.x*", "s*.y", "old"],
        );
        let (add, exclude) = f.wal2json_tables();
        let add = add.unwrap();
        assert_eq!(
            add,
            [
                (Some("shop"), Some("orders")),
                (Some("public"), None),
                (Some("audit"), None),
                (None, Some("events")),
                (None, Some("t"))
            ]
        );
        // Only the exclude patterns wal2json can say exactly.
        assert_eq!(exclude, [(None, Some("tmp")), (None, Some("old"))]);
        // A pattern that widens to every table: no add-tables at all.
        assert_eq!(
            filter(&["shop.orders", "*_log"], &[]).wal2json_tables(),
            (None, vec![])
        );
        assert_eq!(filter(&[], &[]).wal2json_tables(), (None, vec![]));
    }

    #[test]
    fn bad_patterns() {
        for bad in ["", ".t", "s.", "a.b.c"] {
            assert_eq!(
                TableFilter::new(&[bad.to_string()], &[])
                    .unwrap_err()
                    .exit_code(),
                2,
                "{bad}"
            );
        }
    }
}
