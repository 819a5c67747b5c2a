//! wal2json decoder: the wal2json plugin's `format-version 2` (one JSON
//! document per XLogData) → the same [`Event`]s that pgoutput gives.
//!
//! Sans-IO like [`super::pgoutput`]. wal2json sends no relation messages, so
//! the decoder builds a [`Relation`] per table from the changes themselves
//! and from [`CatalogRequest::Table`] (replica identity, generated columns,
//! columns an update may leave out), and rebuilds it when a change no longer
//! fits it. What the catalog adds, and why:
//!
//! - `key`: wal2json's `pk` is the primary key whatever the replica identity;
//!   pgoutput's key is the identity index (`USING INDEX`), nothing under
//!   `NOTHING`, and the primary key in index order under `FULL`.
//! - unchanged TOAST: wal2json leaves such a column out of an update's
//!   `columns`; the table's varlena columns say which may be missing.
//! - generated columns: wal2json sends them, pgoutput (15) does not.
//!
//! Values arrive as JSON and leave as the PostgreSQL text form that
//! the encoder (`sink::encode::value`) expects: numbers keep their exact text,
//! strings are unescaped, `true`/`false` become `t`/`f`, bytea regains its
//! `\x`. They are copied into one reusable buffer, so a change allocates
//! nothing once the buffers have grown. Documents are read by [`doc`].
//!
//! Where wal2json 2.5 says less than pgoutput (NaN and ±Infinity written as
//! `null`, no truncate flags, message content cut at a NUL byte) the events
//! say less too. Begin is held back until the transaction's first event, so
//! an empty transaction emits nothing, as with pgoutput on PostgreSQL 15.
//!
//! Inferred, so not always as pgoutput says it: an update that kept its key
//! (same text) has no `old`; a replica identity change shows from the
//! table's next update or delete (an insert carries no identity); a column
//! dropped after updates had already left it out as unchanged TOAST is
//! named in `unchanged_toast` until the table's next insert.

mod doc;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Range;

use super::catalog::{Catalog, CatalogRequest, TableInfo};
use super::{DecodeError, Decoded, Decoder, Events};
use crate::event::ValueKind;
use crate::event::{Column, Event, Lsn, Message, Op, PgTimestamp, RawDatum, Relation, Row};
use doc::{lsn_of, parse, unescape, Col, Doc, Str, Val};

/// The `START_REPLICATION` options this decoder expects. Add `add-tables`
/// for `--publication`. Type names are left out: type OIDs say it all.
pub(crate) const OPTIONS: [(&str, &str); 11] = [
    ("format-version", "2"),
    ("include-xids", "1"),
    ("include-timestamp", "1"),
    ("include-lsn", "1"),
    ("include-types", "0"),
    ("include-type-oids", "1"),
    ("include-pk", "1"),
    ("include-transaction", "1"),
    ("include-not-null", "0"),
    ("write-in-chunks", "0"),
    ("actions", "insert,update,delete,truncate"),
];

/// bytea: wal2json strips the `\x` of its hex form (not for domains over it).
const BYTEA: u32 = 17;

/// The transaction that the next changes belong to.
#[derive(Debug, Clone, Copy)]
struct Tx {
    xid: u32,
    commit_lsn: Lsn,
    commit_ts: Option<PgTimestamp>,
    /// Whether its Begin event went out: only before its first event.
    begun: bool,
}

/// A table as the stream last showed it.
#[derive(Debug)]
struct Table {
    rel: Relation,
    /// Per column of `rel`: its type OID, and whether an update may leave
    /// it out (unchanged TOAST).
    meta: Vec<(u32, bool)>,
    /// `pg_class.relreplident` as it applies (`d`, `n`, `f`, `i`).
    identity: u8,
    /// The `pk` names the table was built with (DEFAULT, FULL): a change
    /// naming others means the table changed.
    pk: Option<Vec<String>>,
    /// Generated columns, which wal2json sends and pgoutput does not.
    generated: Vec<String>,
    /// Hashes of the sets of columns that updates left out and the catalog
    /// confirmed as TOASTable columns of the table (see [`Fit`]).
    verified: Vec<u64>,
}

/// Reusable buffers for the change being decoded.
#[derive(Debug, Default)]
struct Scratch {
    /// Value texts (and message prefix and content); rows point into it.
    data: Vec<u8>,
    /// Unescaped names, for comparisons.
    names: Vec<u8>,
    old: Vec<RawDatum>,
    new: Vec<RawDatum>,
}

/// The wal2json decoder. Use one per replication session.
#[derive(Debug)]
pub(crate) struct Wal2Json {
    /// wal2json always sends messages; without `--include-messages` they
    /// are dropped here (pgoutput is simply not asked for them).
    messages: bool,
    /// By `schema NUL table` (unescaped); changes borrow from here.
    tables: HashMap<Vec<u8>, Table>,
    tx: Option<Tx>,
    /// The table whose catalog entry this message asked for, so the retry
    /// uses the answer instead of asking again. Cleared once the message is
    /// decoded.
    asked: Option<Vec<u8>>,
    /// The current document's column entries.
    cols: Vec<Col>,
    /// The current document's table key.
    key: Vec<u8>,
    scratch: Scratch,
    /// The relation of a truncate for a table not seen yet.
    other: Relation,
}

impl Wal2Json {
    /// A decoder with an empty table cache; `messages` keeps `M` documents.
    pub(crate) fn new(messages: bool) -> Self {
        Wal2Json {
            messages,
            tables: HashMap::new(),
            tx: None,
            asked: None,
            cols: Vec::new(),
            key: Vec::new(),
            scratch: Scratch::default(),
            other: Relation {
                schema: String::new(),
                name: String::new(),
                columns: Vec::new(),
                key: Vec::new(),
            },
        }
    }

    /// Sets `self.key` to the document's `schema NUL table`.
    fn table_key(&mut self, doc: &Doc, buf: &[u8]) -> Result<(), DecodeError> {
        let (Some(schema), Some(table)) = (doc.schema, doc.table) else {
            return Err(doc.err(0, "change without schema or table"));
        };
        self.key.clear();
        unescape(schema.raw(buf), &mut self.key);
        self.key.push(0);
        unescape(table.raw(buf), &mut self.key);
        Ok(())
    }

    /// Insert, Update or Delete of the table `self.key` names.
    fn change<'d>(
        &'d mut self,
        lsn: Lsn,
        doc: &Doc,
        buf: &'d [u8],
        catalog: &Catalog,
        out: &mut Events<'d>,
    ) -> Result<Decoded, DecodeError> {
        // The column entries are lent out while the decoder changes itself.
        let cols = std::mem::take(&mut self.cols);
        let fit = self.fit((doc, &cols), buf, catalog);
        self.cols = cols;
        let fit = match fit? {
            Ok(fit) => fit,
            Err(need) => return Ok(Decoded::Need(need)),
        };
        let lsn = doc.lsn(buf)?.unwrap_or(lsn);
        let t = self.tables.get(&self.key);
        let t = t.ok_or_else(|| doc.err(0, "table not cached"))?;
        self.asked = None;
        open_tx(&mut self.tx, out);
        let op = match doc.action {
            b'I' => Op::Insert,
            b'U' => Op::Update,
            _ => Op::Delete,
        };
        let mut ev = Event::new(op);
        ev.relation = Some(&t.rel);
        ev.lsn = Some(lsn);
        set_tx(&mut ev, self.tx, doc.xid);
        let (rel, sc) = (&t.rel, &self.scratch);
        let row = |datums, key_only| Row {
            relation: rel,
            data: &sc.data,
            datums,
            key_only,
        };
        ev.old = fit.old.map(|key_only| row(&sc.old, key_only));
        ev.new = (doc.action != b'D').then(|| row(&sc.new, false));
        out.push(ev);
        Ok(Decoded::Done)
    }

    /// Matches a change with its table (building the table, or building it
    /// again, when it does not fit), filling the scratch rows; `cols` holds
    /// the document's column entries.
    fn fit(
        &mut self,
        (doc, cols): (&Doc, &[Col]),
        buf: &[u8],
        catalog: &Catalog,
    ) -> Result<Result<Fit, CatalogRequest>, DecodeError> {
        let part = |r: &Option<Range<usize>>| r.clone().map(|r| cols.get(r).unwrap_or_default());
        let action = doc.action;
        let s = Shape {
            action,
            n: part(&doc.columns),
            o: part(&doc.identity).filter(|_| action != b'I'),
            p: part(&doc.pk),
        };
        if action != b'D' && s.n.is_none() {
            return Err(doc.err(0, "insert or update without columns"));
        }
        if action == b'D' && s.o.is_none() {
            return Err(doc.err(0, "delete without identity"));
        }
        let cached = match self.tables.get(&self.key) {
            Some(t) => fill(t, &s, buf, &mut self.scratch)?,
            None => None,
        };
        let mut fit = match cached {
            Some(fit) => fit,
            None => match self.build(&s, doc, buf, catalog)? {
                Ok(fit) => fit,
                Err(need) => return Ok(Err(need)),
            },
        };
        if let Some(set) = fit.unverified {
            if let Some(need) = self.ask() {
                return Ok(Err(need));
            }
            let (schema, name) = split_key(&self.key);
            let info = catalog.table(&schema, &name);
            let t = self.tables.get_mut(&self.key);
            let t = t.ok_or_else(|| doc.err(0, "table not cached"))?;
            if confirmed(t, &self.scratch.new, info) {
                t.verified.push(set);
            } else {
                // A column dropped since the table was built: build it again
                // from what the catalog says now.
                self.tables.remove(&self.key);
                fit = match self.build(&s, doc, buf, catalog)? {
                    Ok(fit) => fit,
                    Err(need) => return Ok(Err(need)),
                };
            }
        }
        Ok(Ok(fit))
    }

    /// Asks for the current table's catalog entry, unless this message did.
    fn ask(&mut self) -> Option<CatalogRequest> {
        if self.asked.as_deref() == Some(self.key.as_slice()) {
            return None;
        }
        self.asked = Some(self.key.clone());
        let (schema, name) = split_key(&self.key);
        let (schema, name) = (schema.into_owned(), name.into_owned());
        Some(CatalogRequest::Table { schema, name })
    }

    /// Builds the table from a change, then fills the rows from it; the
    /// columns it takes as unchanged TOAST come from the catalog, so they
    /// need no check.
    fn build(
        &mut self,
        s: &Shape<'_>,
        doc: &Doc,
        buf: &[u8],
        catalog: &Catalog,
    ) -> Result<Result<Fit, CatalogRequest>, DecodeError> {
        if let Some(need) = self.rebuild(s, buf, catalog)? {
            return Ok(Err(need));
        }
        let t = self.tables.get_mut(&self.key);
        let t = t.ok_or_else(|| doc.err(0, "table not cached"))?;
        let mut fit = fill(t, s, buf, &mut self.scratch)?;
        let fit = fit
            .as_mut()
            .ok_or_else(|| doc.err(0, "change does not fit its own table"))?;
        t.verified.extend(fit.unverified.take());
        Ok(Ok(*fit))
    }

    /// Builds the table for a change that fits no cached one, asking the
    /// catalog first (once per message) when it knows nothing of the table,
    /// or something that disagrees with the change.
    fn rebuild(
        &mut self,
        s: &Shape<'_>,
        buf: &[u8],
        catalog: &Catalog,
    ) -> Result<Option<CatalogRequest>, DecodeError> {
        let (schema, table) = split_key(&self.key);
        let info = catalog.table(&schema, &table);
        let known = info.filter(|i| i.replica_identity.is_some());
        let generated = |name: &str| {
            known.is_some_and(|i| i.columns.iter().any(|c| c.generated && c.name == name))
        };
        let mut tmp = Vec::new();
        let mut cols = |c: &[Col]| -> Vec<(String, u32)> {
            let c = c
                .iter()
                .map(|c| (name_of(buf, c.name, &mut tmp), c.oid.unwrap_or(0)));
            c.filter(|(n, _)| !generated(n)).collect()
        };
        let (n, o) = (cols(s.n.unwrap_or_default()), s.o.map(cols));
        let p: Option<Vec<String>> =
            s.p.map(|p| p.iter().map(|c| name_of(buf, c.name, &mut tmp)).collect());
        let unknown_column = known.is_some_and(|i| {
            let mut all = n.iter().chain(o.iter().flatten());
            all.any(|(name, _)| !i.columns.iter().any(|c| c.name == *name))
        });
        let consistent = known.is_some_and(|i| consistent(i, &n, o.as_deref(), p.as_deref()));
        if info.is_none() || unknown_column || !consistent {
            if let Some(need) = self.ask() {
                return Ok(Some(need));
            }
        }
        let (identity, key_names) = match known.filter(|_| consistent) {
            Some(i) => {
                let ri = i.replica_identity.unwrap_or(b'd');
                let names = match (ri, &p) {
                    (b'd', Some(p)) => p.clone(),
                    (b'n', _) => Vec::new(),
                    _ => i.key.clone(),
                };
                (ri, names)
            }
            None => derive(s.action, &n, o.as_deref(), p.clone()),
        };
        let columns = shape(s.action, identity, &n, o.as_deref(), known);
        let mut key: Vec<usize> = key_names
            .iter()
            .map(|k| columns.iter().position(|c| c.0 == *k))
            .collect::<Option<_>>()
            .unwrap_or_default();
        if identity != b'f' {
            key.sort_unstable(); // pgoutput lists identity columns in column order
        }
        let mut unknown: Vec<u32> = Vec::new();
        let mut rel_cols = Vec::with_capacity(columns.len());
        for (name, oid, _) in &columns {
            let kind = catalog.kind(*oid).unwrap_or_else(|| {
                unknown.push(*oid);
                ValueKind::Text
            });
            let identity = identity == b'f' || (identity != b'n' && key_names.contains(name));
            // wal2json sends no type modifiers; the catalog has them.
            let type_modifier = known
                .and_then(|i| {
                    i.columns
                        .iter()
                        .find(|c| c.name == *name && c.type_oid == *oid)
                })
                .map_or(-1, |c| c.type_modifier);
            rel_cols.push(Column {
                name: name.clone(),
                kind,
                type_oid: *oid,
                type_modifier,
                identity,
            });
        }
        if !unknown.is_empty() {
            unknown.sort_unstable();
            unknown.dedup();
            return Ok(Some(CatalogRequest::Types(unknown)));
        }
        let (schema, name) = split_key(&self.key);
        let (schema, name) = (schema.into_owned(), name.into_owned());
        let generated = known.map(|i| i.columns.as_slice()).unwrap_or_default();
        let table = Table {
            rel: Relation {
                schema,
                name,
                columns: rel_cols,
                key,
            },
            meta: columns
                .iter()
                .map(|&(_, oid, toast)| (oid, toast))
                .collect(),
            identity,
            pk: p.filter(|_| matches!(identity, b'd' | b'f')),
            generated: generated
                .iter()
                .filter(|c| c.generated)
                .map(|c| c.name.clone())
                .collect(),
            verified: Vec::new(),
        };
        self.tables.insert(self.key.clone(), table);
        Ok(None)
    }

    /// Truncate: wal2json 2.5 sends no CASCADE/RESTART IDENTITY flags.
    fn truncate<'d>(
        &'d mut self,
        lsn: Lsn,
        doc: &Doc,
        buf: &'d [u8],
        out: &mut Events<'d>,
    ) -> Result<Decoded, DecodeError> {
        let lsn = doc.lsn(buf)?.unwrap_or(lsn);
        self.asked = None;
        open_tx(&mut self.tx, out);
        let rel = match self.tables.get(&self.key) {
            Some(t) => &t.rel,
            None => {
                let (schema, table) = (
                    doc.schema.unwrap_or_default(),
                    doc.table.unwrap_or_default(),
                );
                self.other.schema = name_of(buf, schema, &mut self.scratch.names);
                self.other.name = name_of(buf, table, &mut self.scratch.names);
                &self.other
            }
        };
        let mut ev = Event::new(Op::Truncate);
        ev.relation = Some(rel);
        ev.lsn = Some(lsn);
        set_tx(&mut ev, self.tx, doc.xid);
        out.push(ev);
        Ok(Decoded::Done)
    }

    fn message<'d>(
        &'d mut self,
        lsn: Lsn,
        doc: &Doc,
        buf: &'d [u8],
        out: &mut Events<'d>,
    ) -> Result<Decoded, DecodeError> {
        let (Some(transactional), Some(prefix), Some(content)) =
            (doc.transactional, doc.prefix, doc.content)
        else {
            return Err(doc.err(0, "message without transactional, prefix or content"));
        };
        let msg_lsn = doc.lsn(buf)?.unwrap_or(lsn);
        self.asked = None;
        if !self.messages {
            return Ok(Decoded::Done);
        }
        let data = &mut self.scratch.data;
        data.clear();
        unescape(prefix.raw(buf), data);
        let split = data.len();
        unescape(content.raw(buf), data);
        let (prefix, content) = data.split_at(split);
        let mut ev = Event::new(Op::Message);
        ev.lsn = Some(msg_lsn);
        ev.message = Some(Message {
            prefix,
            content,
            transactional,
        });
        if transactional {
            open_tx(&mut self.tx, out);
            set_tx(&mut ev, self.tx, doc.xid);
        }
        out.push(ev);
        Ok(Decoded::Done)
    }
}

impl Decoder for Wal2Json {
    fn decode<'d>(
        &'d mut self,
        lsn: Lsn,
        data: &'d [u8],
        catalog: &'d Catalog,
        out: &mut Events<'d>,
    ) -> Result<Decoded, DecodeError> {
        let doc = parse(data, &mut self.cols)?;
        match doc.action {
            b'B' => {
                let xid = doc.xid.ok_or_else(|| doc.err(0, "begin without xid"))?;
                let commit_lsn = doc
                    .lsn(data)?
                    .ok_or_else(|| doc.err(0, "begin without lsn"))?;
                let commit_ts = doc.timestamp(data)?;
                self.tx = Some(Tx {
                    xid,
                    commit_lsn,
                    commit_ts,
                    begun: false,
                });
            }
            b'C' => {
                let commit_lsn = doc
                    .lsn(data)?
                    .ok_or_else(|| doc.err(0, "commit without lsn"))?;
                let end = doc
                    .nextlsn
                    .ok_or_else(|| doc.err(0, "commit without nextlsn"))?;
                let end_lsn = lsn_of(data, end).ok_or_else(|| doc.err(end.start, "bad nextlsn"))?;
                let commit_ts = doc.timestamp(data)?;
                // A transaction that emitted nothing ends silently.
                if let Some(tx) = self.tx.take().filter(|tx| tx.begun) {
                    let mut ev = Event::new(Op::Commit);
                    ev.xid = Some(tx.xid);
                    ev.commit_lsn = Some(commit_lsn);
                    ev.end_lsn = Some(end_lsn);
                    ev.commit_ts = commit_ts.or(tx.commit_ts);
                    out.push(ev);
                }
            }
            // The events of these borrow the decoder, which must not change
            // after they are made: each finishes the message itself.
            b'I' | b'U' | b'D' => {
                self.table_key(&doc, data)?;
                return self.change(lsn, &doc, data, catalog, out);
            }
            b'T' => {
                self.table_key(&doc, data)?;
                return self.truncate(lsn, &doc, data, out);
            }
            _ => return self.message(lsn, &doc, data, out), // parse admits nothing else
        }
        self.asked = None;
        Ok(Decoded::Done)
    }
}

/// Pushes the held-back Begin before a transaction's first event.
fn open_tx(tx: &mut Option<Tx>, out: &mut Events<'_>) {
    if let Some(tx) = tx.as_mut().filter(|tx| !tx.begun) {
        let mut ev = Event::new(Op::Begin);
        set_tx(&mut ev, Some(*tx), None);
        out.push(ev);
        tx.begun = true;
    }
}

/// The transaction fields of an event: those of the open transaction, else
/// the document's own xid.
fn set_tx(ev: &mut Event<'_>, tx: Option<Tx>, xid: Option<u32>) {
    match tx {
        Some(tx) => {
            ev.xid = Some(tx.xid);
            ev.commit_lsn = Some(tx.commit_lsn);
            ev.commit_ts = tx.commit_ts;
        }
        None => ev.xid = xid,
    }
}

/// How a change fits its table.
#[derive(Debug, Clone, Copy)]
struct Fit {
    /// Whether there is an old image, and if so whether it is key-only.
    old: Option<bool>,
    /// The update left out columns, a set not seen before (its hash): the
    /// catalog must confirm them, since a column dropped since the table was
    /// built is left out just the same. A FULL old row proves them.
    unverified: Option<u64>,
}

/// A change's column lists: `columns`, `identity` and `pk`.
struct Shape<'c> {
    action: u8,
    n: Option<&'c [Col]>,
    o: Option<&'c [Col]>,
    p: Option<&'c [Col]>,
}

/// Fills the scratch rows from a change if it fits table `t`; `None` when
/// it does not (the table changed, or the change is not like the last).
fn fill(
    t: &Table,
    s: &Shape<'_>,
    buf: &[u8],
    sc: &mut Scratch,
) -> Result<Option<Fit>, DecodeError> {
    let Scratch {
        data,
        names,
        old,
        new,
    } = sc;
    if let Some(pk) = &t.pk {
        let p = s.p.unwrap_or_default();
        let same = |(c, name): (&Col, &String)| same_name(buf, c.name, name, names);
        if p.len() != pk.len() || !p.iter().zip(pk).all(same) {
            return Ok(None);
        }
    }
    data.clear();
    let mut left_out = 0;
    if let Some(n) = s.n {
        let mode = if s.action == b'U' {
            Mode::Update
        } else {
            Mode::Complete
        };
        match image(t, buf, n, mode, data, names, new)? {
            Some(set) => left_out = set,
            None => return Ok(None),
        }
    }
    let key_only = t.identity != b'f';
    let unverified =
        (left_out != 0 && key_only && !t.verified.contains(&left_out)).then_some(left_out);
    let Some(o) = s.o else {
        // An insert (a delete always has one; wal2json 2.5 drops updates
        // of tables without identity).
        return Ok(Some(Fit {
            old: None,
            unverified,
        }));
    };
    let mode = if key_only { Mode::Key } else { Mode::Complete };
    if t.identity == b'n' || image(t, buf, o, mode, data, names, old)?.is_none() {
        return Ok(None);
    }
    // For an update that kept its key, wal2json takes the identity from the
    // new row; pgoutput sends no old image then.
    let kept = |(i, c): (usize, &Column)| !c.identity || same_datum(data, old.get(i), new.get(i));
    let kept = s.action == b'U' && key_only && t.rel.columns.iter().enumerate().all(kept);
    Ok(Some(Fit {
        old: (!kept).then_some(key_only),
        unverified,
    }))
}

/// Whether the catalog confirms that the columns an update left out are
/// TOASTable columns of the table (a gone table confirms anything).
fn confirmed(t: &Table, new: &[RawDatum], info: Option<&TableInfo>) -> bool {
    let Some(info) = info.filter(|i| i.replica_identity.is_some()) else {
        return true;
    };
    let left_out = t
        .rel
        .columns
        .iter()
        .zip(new)
        .filter(|(_, d)| **d == RawDatum::UnchangedToast);
    let toastable = |name: &String| {
        info.columns
            .iter()
            .any(|c| c.name == *name && c.toastable && !c.generated)
    };
    left_out.map(|(c, _)| &c.name).all(toastable)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Every column (an insert, a FULL old row).
    Complete,
    /// Every column but unchanged TOAST (an update's new row).
    Update,
    /// The identity columns only (a DEFAULT or USING INDEX old key).
    Key,
}

/// Matches one row image with the table's columns, writing a datum per
/// column into `out`; `None` when it does not fit, else a hash of the set
/// of columns left out (0 for none).
fn image(
    t: &Table,
    buf: &[u8],
    cols: &[Col],
    mode: Mode,
    data: &mut Vec<u8>,
    names: &mut Vec<u8>,
    out: &mut Vec<RawDatum>,
) -> Result<Option<u64>, DecodeError> {
    out.clear();
    let mut left_out = 0u64;
    let generated = |c: &Col| {
        t.generated
            .iter()
            .any(|g| same_name(buf, c.name, g, &mut Vec::new()))
    };
    let mut rest = cols.iter().filter(|c| !generated(c)).peekable();
    for (col, &(oid, toast)) in t.rel.columns.iter().zip(&t.meta) {
        let wanted = mode != Mode::Key || col.identity;
        if let Some(c) = rest
            .peek()
            .filter(|c| wanted && c.oid == Some(oid) && same_name(buf, c.name, &col.name, names))
        {
            out.push(value(buf, c, data)?);
            rest.next();
        } else if mode == Mode::Key && !col.identity {
            out.push(RawDatum::Null);
        } else if mode == Mode::Update && toast {
            left_out = add_to_set(left_out, out.len());
            out.push(RawDatum::UnchangedToast);
        } else {
            return Ok(None);
        }
    }
    Ok(rest.next().is_none().then_some(left_out))
}

/// Adds a column position to a set's hash (FNV-1a; 0 is the empty set).
fn add_to_set(hash: u64, i: usize) -> u64 {
    let h = if hash == 0 {
        0xcbf2_9ce4_8422_2325
    } else {
        hash
    };
    ((h ^ i as u64).wrapping_mul(0x100_0000_01b3)).max(1)
}

/// Appends a column's value, as PostgreSQL's text form, to `data`.
fn value(buf: &[u8], c: &Col, data: &mut Vec<u8>) -> Result<RawDatum, DecodeError> {
    let start = data.len();
    match &c.value {
        None | Some(Val::Null) => return Ok(RawDatum::Null),
        Some(Val::Bool(b)) => data.push(if *b { b't' } else { b'f' }),
        Some(Val::Num(r)) => data.extend_from_slice(buf.get(r.clone()).unwrap_or_default()),
        Some(Val::Str(s)) => {
            if c.oid == Some(BYTEA) {
                data.extend_from_slice(b"\\x");
            }
            unescape(s.raw(buf), data);
        }
    }
    let offset = |x: usize| {
        u32::try_from(x).map_err(|_| DecodeError {
            plugin: "wal2json",
            tag: '?',
            offset: 0,
            what: "document too large",
        })
    };
    Ok(RawDatum::Text {
        start: offset(start)?,
        end: offset(data.len())?,
    })
}

fn same_datum(data: &[u8], a: Option<&RawDatum>, b: Option<&RawDatum>) -> bool {
    let text = |d: &RawDatum| match *d {
        RawDatum::Text { start, end } => data.get(start as usize..end as usize),
        _ => None,
    };
    match (a, b) {
        (Some(RawDatum::Null), Some(RawDatum::Null)) => true,
        (Some(a), Some(b)) => text(a).is_some_and(|x| text(b) == Some(x)),
        _ => false,
    }
}

/// Whether a replica identity read from the catalog agrees with a change.
fn consistent(
    i: &TableInfo,
    n: &[(String, u32)],
    o: Option<&[(String, u32)]>,
    p: Option<&[String]>,
) -> bool {
    let same_set = |a: &[String], b: &mut dyn Iterator<Item = &String>| {
        let b: Vec<&String> = b.collect();
        a.len() == b.len() && b.iter().all(|x| a.contains(x))
    };
    let ri = i.replica_identity.unwrap_or(0);
    // A primary key added or dropped since the catalog was read.
    if ri == b'f' && p.is_some_and(|p| !same_set(&i.key, &mut p.iter())) {
        return false;
    }
    match (ri, o) {
        (_, None) => true, // an insert, or an update without identity
        (b'f', Some(o)) => n.iter().all(|(c, _)| o.iter().any(|(x, _)| x == c)),
        (b'd', Some(o)) => same_set(p.unwrap_or(&i.key), &mut o.iter().map(|c| &c.0)),
        (b'i', Some(o)) => same_set(&i.key, &mut o.iter().map(|c| &c.0)),
        _ => false,
    }
}

/// The replica identity and key a change implies, when the catalog cannot
/// say (the table is gone, or changed again since).
fn derive(
    action: u8,
    n: &[(String, u32)],
    o: Option<&[(String, u32)]>,
    p: Option<Vec<String>>,
) -> (u8, Vec<String>) {
    let p = p.unwrap_or_default();
    let Some(o) = o else { return (b'd', p) };
    let names: Vec<String> = o.iter().map(|c| c.0.clone()).collect();
    if names == p {
        (b'd', p)
    } else if action == b'U' && n.iter().all(|c| names.contains(&c.0)) {
        (b'f', p)
    } else {
        (b'i', names)
    }
}

/// A table's columns as a change shows them: (name, type OID, may be left
/// out of an update). Columns an update left out come from the old row
/// (FULL) or the catalog, in their place.
fn shape(
    action: u8,
    identity: u8,
    n: &[(String, u32)],
    o: Option<&[(String, u32)]>,
    info: Option<&TableInfo>,
) -> Vec<(String, u32, bool)> {
    let toast = |name: &str| {
        info.and_then(|i| i.columns.iter().find(|c| c.name == name))
            .is_none_or(|c| c.toastable)
    };
    let with = |c: &[(String, u32)], t: Option<bool>| -> Vec<(String, u32, bool)> {
        c.iter()
            .map(|(name, oid)| (name.clone(), *oid, t.unwrap_or_else(|| toast(name))))
            .collect()
    };
    let catalog = |only_toast: bool| -> Vec<(String, u32, bool)> {
        let cols = info.map(|i| i.columns.as_slice()).unwrap_or_default();
        let cols = cols
            .iter()
            .filter(|c| !c.generated && (!only_toast || c.toastable));
        cols.map(|c| (c.name.clone(), c.type_oid, c.toastable))
            .collect()
    };
    match (action, o) {
        (b'I', _) => with(n, None),
        (b'U', o) => {
            let mut cols = with(n, None);
            if identity != b'f' {
                merge(&mut cols, &catalog(true));
            }
            merge(&mut cols, &with(o.unwrap_or_default(), Some(true)));
            cols
        }
        (_, o) if identity == b'f' => with(o.unwrap_or_default(), None),
        (_, o) => {
            let mut cols = catalog(false);
            merge(&mut cols, &with(o.unwrap_or_default(), None));
            cols
        }
    }
}

/// Adds the columns of `extra` that `cols` lacks, each after the column
/// that precedes it in `extra`.
fn merge(cols: &mut Vec<(String, u32, bool)>, extra: &[(String, u32, bool)]) {
    let mut after = 0;
    for e in extra {
        match cols.iter().position(|c| c.0 == e.0) {
            Some(i) => after = i + 1,
            None => {
                cols.insert(after.min(cols.len()), e.clone());
                after += 1;
            }
        }
    }
}

/// The schema and table name in a table key.
fn split_key(key: &[u8]) -> (Cow<'_, str>, Cow<'_, str>) {
    let split = key.iter().position(|&b| b == 0).unwrap_or(key.len());
    (
        lossy(key.get(..split).unwrap_or_default()),
        lossy(key.get(split + 1..).unwrap_or_default()),
    )
}

fn lossy(b: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(b)
}

/// A JSON string's text, unescaped, as an owned (lossy) string.
fn name_of(buf: &[u8], s: Str, tmp: &mut Vec<u8>) -> String {
    tmp.clear();
    unescape(s.raw(buf), tmp);
    lossy(tmp).into_owned()
}

/// Whether a JSON string's text is `name`.
fn same_name(buf: &[u8], s: Str, name: &str, tmp: &mut Vec<u8>) -> bool {
    let raw = s.raw(buf);
    if !s.escaped && raw == name.as_bytes() {
        return true;
    }
    tmp.clear();
    unescape(raw, tmp);
    lossy(tmp) == name
}
