//! Subject and stream-key templates: `{schema}`, `{table}`, `{op}` and
//! `{slot}` expand per event, `_` standing for a schema or table the event
//! does not have (a message, a transaction marker).

use crate::event::Event;

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template(Vec<Part>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Schema,
    Table,
    Op,
    Slot,
}

impl Template {
    /// Parses `text`; an unknown or unclosed `{…}` is an error that says so.
    pub(crate) fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let close = rest[open..]
                .find('}')
                .map(|i| i + open)
                .ok_or_else(|| format!("unclosed {{ in template \"{text}\""))?;
            parts.push(match &rest[open + 1..close] {
                "schema" => Part::Schema,
                "table" => Part::Table,
                "op" => Part::Op,
                "slot" => Part::Slot,
                other => {
                    return Err(format!(
                        "unknown {{{other}}} in template \"{text}\" (expected {{schema}}, {{table}}, {{op}} or {{slot}})"
                    ))
                }
            });
            rest = &rest[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        if parts.is_empty() {
            return Err("empty template".into());
        }
        Ok(Template(parts))
    }

    /// The template for `event`. In the names it puts in, each character
    /// for which `forbidden` holds becomes `_` (NATS subjects cannot hold
    /// whitespace, `*` or `>`).
    pub(crate) fn expand(
        &self,
        event: &Event<'_>,
        slot: &str,
        forbidden: fn(char) -> bool,
    ) -> String {
        let mut out = String::new();
        let mut put =
            |name: &str| out.extend(name.chars().map(|c| if forbidden(c) { '_' } else { c }));
        for part in &self.0 {
            match part {
                Part::Text(text) => put(text),
                Part::Schema => put(event.relation.map_or("_", |r| &r.schema)),
                Part::Table => put(event.relation.map_or("_", |r| &r.name)),
                Part::Op => put(event.op.as_str()),
                Part::Slot => put(slot),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Op, Relation};

    #[test]
    fn expands_names_and_underscores_what_is_missing() {
        let t = Template::parse("pg.{slot}.{schema}.{table}.{op}").unwrap();
        let rel = Relation {
            schema: "public".into(),
            name: "my table*".into(),
            columns: vec![],
            key: vec![],
        };
        let mut ev = Event::new(Op::Insert);
        ev.relation = Some(&rel);
        let nats = |c: char| c.is_whitespace() || c == '*' || c == '>';
        assert_eq!(t.expand(&ev, "s1", nats), "pg.s1.public.my_table_.insert");
        assert_eq!(
            t.expand(&ev, "s1", |_| false),
            "pg.s1.public.my table*.insert"
        );
        assert_eq!(
            t.expand(&Event::new(Op::Message), "s1", nats),
            "pg.s1._._.message"
        );
    }

    #[test]
    fn bad_templates_say_why() {
        assert!(Template::parse("a.{tabel}")
            .unwrap_err()
            .contains("unknown {tabel}"));
        assert!(Template::parse("a.{table")
            .unwrap_err()
            .contains("unclosed"));
        assert!(Template::parse("").is_err());
    }
}
