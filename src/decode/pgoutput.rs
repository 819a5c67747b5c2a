//! pgoutput decoder: PostgreSQL's built-in logical replication plugin
//! (protocol versions 1–4) → [`Event`]s.
//!
//! Sans-IO: [`PgOutput::decode`] parses one XLogData payload into
//! [`Events`]. Events borrow the message, the relation cache and two
//! reusable scratch vectors, so a change message allocates nothing; only
//! Relation messages (once per table per session, and after schema changes)
//! do.
//!
//! Origin and Type messages are parsed and dropped (types come from the
//! catalog). Two-phase messages (proto ≥ 3) are parsed but emit nothing yet.
//! Inside a Stream Start … Stop block, changes carry their (sub)transaction
//! xid and are emitted `streamed`, without commit fields.
//!
//! The bytes come from the network, so the parser never panics: every read
//! goes through a bounds-checked `Reader` that rejects negative lengths and
//! names the byte offset where a message stopped making sense. Bytes after a
//! message's known fields are ignored: newer protocol versions append fields.

use std::collections::HashMap;

use super::catalog::{Catalog, CatalogRequest};
use super::value::ValueKind;
use super::{DecodeError, Decoded, Decoder, Events};
use crate::event::{
    Column, Event, Lsn, Message, Op, PgTimestamp, RawDatum, Relation, Row, TruncateFlags,
};

/// The transaction that the next changes belong to.
#[derive(Debug, Clone, Copy)]
struct Tx {
    xid: u32,
    /// Unknown inside a two-phase Begin Prepare … Prepare block.
    commit_lsn: Option<Lsn>,
    commit_ts: Option<PgTimestamp>,
}

/// The pgoutput decoder. Use one per replication session: the server sends
/// every relation once per session, so the cache does not outlive it.
#[derive(Debug, Default)]
pub(crate) struct PgOutput {
    /// Relation messages by relation OID; changes borrow from here.
    relations: HashMap<u32, Relation>,
    /// Set by Begin (and Begin Prepare), cleared by Commit (and Prepare).
    tx: Option<Tx>,
    /// Inside a Stream Start … Stop block: changes carry a leading xid.
    stream_xid: Option<u32>,
    /// The current transaction's replication origin (Origin message).
    origin: Option<String>,
    /// The relation whose primary key we last asked for, so the retry of
    /// the same `FULL` Relation message uses the answer instead of asking
    /// again.
    pk_asked: Option<u32>,
    /// Scratch for the old and new tuple of the change being decoded.
    old: Vec<RawDatum>,
    new: Vec<RawDatum>,
}

impl PgOutput {
    /// A decoder with an empty relation cache.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Reads the xid that prefixes messages inside a stream block.
    fn stream_prefix(&self, r: &mut Reader<'_>) -> Result<Option<u32>, DecodeError> {
        self.stream_xid.map(|_| r.u32()).transpose()
    }

    /// Parses a Relation message into the cache, unless the catalog lacks
    /// something: then nothing changes (but `pk_asked`) and the pipeline
    /// retries with the same bytes.
    fn relation<'d>(
        &'d mut self,
        r: &mut Reader<'d>,
        catalog: &Catalog,
        out: &mut Events<'d>,
    ) -> Result<Decoded, DecodeError> {
        self.stream_prefix(r)?;
        let relid = r.u32()?;
        let schema = match r.cstr()? {
            b"" => "pg_catalog".to_owned(), // pgoutput's spelling of pg_catalog
            s => lossy(s),
        };
        let name = lossy(r.cstr()?);
        let at = r.pos;
        let identity = r.u8()?;
        if !matches!(identity, b'd' | b'n' | b'f' | b'i') {
            return Err(r.err_at(at, "unknown replica identity"));
        }
        let ncols = r.count16()?;
        // Each column takes at least 10 bytes: don't trust ncols for capacity.
        let mut columns = Vec::with_capacity(ncols.min(r.remaining() / 10));
        let mut unknown = Vec::new();
        for _ in 0..ncols {
            let flags = r.u8()?;
            let cname = lossy(r.cstr()?);
            let oid = r.u32()?;
            let type_modifier = r.i32()?;
            let kind = catalog.kind(oid).unwrap_or_else(|| {
                unknown.push(oid);
                ValueKind::Text
            });
            columns.push(Column {
                name: cname,
                kind,
                type_oid: oid,
                type_modifier,
                identity: flags & 1 != 0,
            });
        }
        if !unknown.is_empty() {
            unknown.sort_unstable();
            unknown.dedup();
            return Ok(Decoded::Need(CatalogRequest::Types(unknown)));
        }
        let key = match identity {
            b'n' => Vec::new(),
            // FULL flags every column: the key is the primary key, asked for
            // on every such message since it may have changed.
            b'f' => match catalog.primary_key(relid) {
                Some(pk) if self.pk_asked == Some(relid) => pk
                    .iter()
                    .map(|n| columns.iter().position(|c| c.name == *n))
                    .collect::<Option<Vec<_>>>()
                    .unwrap_or_default(), // a PK column not published: no key
                _ => {
                    self.pk_asked = Some(relid);
                    return Ok(Decoded::Need(CatalogRequest::PrimaryKey(relid)));
                }
            },
            _ => columns
                .iter()
                .enumerate()
                .filter(|(_, c)| c.identity)
                .map(|(i, _)| i)
                .collect(),
        };
        self.pk_asked = None;
        let rel = Relation {
            schema,
            name,
            columns,
            key,
        };
        let rel = match self.relations.entry(relid) {
            std::collections::hash_map::Entry::Occupied(mut e) => {
                e.insert(rel);
                e.into_mut()
            }
            std::collections::hash_map::Entry::Vacant(e) => e.insert(rel),
        };
        let mut ev = Event::new(Op::Relation);
        ev.relation = Some(rel);
        out.push(ev);
        Ok(Decoded::Done)
    }

    /// Insert, Update or Delete.
    fn change<'d>(
        &'d mut self,
        tag: u8,
        lsn: Lsn,
        r: &mut Reader<'d>,
        out: &mut Events<'d>,
    ) -> Result<(), DecodeError> {
        let xid = self.stream_prefix(r)?;
        let at = r.pos;
        let relid = r.u32()?;
        let rel = self
            .relations
            .get(&relid)
            .ok_or_else(|| r.err_at(at, "change for unknown relation"))?;
        let ncols = rel.columns.len();
        let mut at = r.pos;
        let mut sub = r.u8()?;
        let mut old_key_only = None;
        if tag != b'I' && matches!(sub, b'K' | b'O') {
            tuple(r, ncols, &mut self.old)?;
            old_key_only = Some(sub == b'K');
            if tag == b'U' {
                at = r.pos;
                sub = r.u8()?;
            }
        }
        let has_new = tag != b'D';
        if has_new && sub != b'N' {
            return Err(r.err_at(at, "expected new tuple 'N'"));
        } else if has_new {
            tuple(r, ncols, &mut self.new)?;
        } else if old_key_only.is_none() {
            return Err(r.err_at(at, "expected old tuple 'K' or 'O'"));
        }
        let op = match tag {
            b'I' => Op::Insert,
            b'U' => Op::Update,
            _ => Op::Delete,
        };
        let mut ev = Event::new(op);
        ev.relation = Some(rel);
        ev.lsn = Some(lsn);
        set_tx(
            &mut ev,
            self.tx,
            self.stream_xid.zip(xid),
            self.origin.as_deref(),
        );
        let data = r.buf;
        ev.old = old_key_only.map(|key_only| Row {
            relation: rel,
            data,
            datums: &self.old,
            key_only,
        });
        ev.new = has_new.then_some(Row {
            relation: rel,
            data,
            datums: &self.new,
            key_only: false,
        });
        out.push(ev);
        Ok(())
    }

    /// Truncate: one event per relation, all relations checked first so a
    /// bad message emits nothing.
    fn truncate<'d>(
        &'d mut self,
        lsn: Lsn,
        r: &mut Reader<'d>,
        out: &mut Events<'d>,
    ) -> Result<(), DecodeError> {
        let xid = self.stream_prefix(r)?;
        let n = r.u32()?;
        let opts = r.u8()?;
        let mut ids = r.clone();
        for _ in 0..n {
            let at = r.pos;
            if !self.relations.contains_key(&r.u32()?) {
                return Err(r.err_at(at, "truncate of unknown relation"));
            }
        }
        let flags = TruncateFlags {
            cascade: opts & 1 != 0,
            restart_identity: opts & 2 != 0,
        };
        for _ in 0..n {
            let mut ev = Event::new(Op::Truncate);
            ev.relation = self.relations.get(&ids.u32()?);
            ev.lsn = Some(lsn);
            ev.truncate = Some(flags);
            set_tx(
                &mut ev,
                self.tx,
                self.stream_xid.zip(xid),
                self.origin.as_deref(),
            );
            out.push(ev);
        }
        Ok(())
    }
}

impl Decoder for PgOutput {
    fn decode<'d>(
        &'d mut self,
        lsn: Lsn,
        data: &'d [u8],
        catalog: &'d Catalog,
        out: &mut Events<'d>,
    ) -> Result<Decoded, DecodeError> {
        let mut r = Reader::new(data);
        let tag = r.u8()?;
        r.tag = if tag.is_ascii_graphic() {
            char::from(tag)
        } else {
            '?'
        };
        match tag {
            b'B' => {
                let commit_lsn = r.u64()?;
                let commit_ts = r.i64()?;
                let xid = r.u32()?;
                let tx = Tx {
                    xid,
                    commit_lsn: Some(commit_lsn),
                    commit_ts: Some(commit_ts),
                };
                self.tx = Some(tx);
                self.origin = None;
                let mut ev = Event::new(Op::Begin);
                set_tx(&mut ev, Some(tx), None, None);
                out.push(ev);
            }
            b'C' => {
                r.u8()?; // flags, unused
                let mut ev = Event::new(Op::Commit);
                ev.commit_lsn = Some(r.u64()?);
                ev.end_lsn = Some(r.u64()?);
                ev.commit_ts = Some(r.i64()?);
                ev.xid = self.tx.take().map(|t| t.xid);
                ev.origin = self.origin.as_deref();
                out.push(ev);
            }
            // Origin: the transaction was applied by another replication
            // system; its changes name it. (Type messages: nothing to keep,
            // types are resolved through the catalog.)
            b'O' => {
                r.skip(8)?; // origin LSN
                self.origin = Some(String::from_utf8_lossy(r.cstr()?).into_owned());
            }
            b'Y' => {
                self.stream_prefix(&mut r)?;
                r.skip(4)?; // oid
                r.cstr()?; // namespace
                r.cstr()?; // name
            }
            b'R' => return self.relation(&mut r, catalog, out),
            b'I' | b'U' | b'D' => self.change(tag, lsn, &mut r, out)?,
            b'T' => self.truncate(lsn, &mut r, out)?,
            b'M' => {
                let xid = self.stream_prefix(&mut r)?;
                let transactional = r.u8()? & 1 != 0;
                let mut ev = Event::new(Op::Message);
                ev.lsn = Some(r.u64()?);
                let prefix = r.cstr()?;
                let len = r.len32()?;
                let content = r.bytes(len)?;
                ev.message = Some(Message {
                    prefix,
                    content,
                    transactional,
                });
                if transactional {
                    set_tx(
                        &mut ev,
                        self.tx,
                        self.stream_xid.zip(xid),
                        self.origin.as_deref(),
                    );
                }
                out.push(ev);
            }
            b'S' => {
                let xid = r.u32()?;
                r.u8()?; // first segment
                self.stream_xid = Some(xid);
            }
            b'E' => self.stream_xid = None,
            b'c' => {
                let mut ev = Event::new(Op::StreamCommit);
                ev.xid = Some(r.u32()?);
                r.u8()?; // flags, unused
                ev.commit_lsn = Some(r.u64()?);
                ev.end_lsn = Some(r.u64()?);
                ev.commit_ts = Some(r.i64()?);
                out.push(ev);
            }
            b'A' => {
                let xid = r.u32()?;
                let subxid = r.u32()?;
                if r.remaining() > 0 {
                    r.skip(16)?; // abort LSN and timestamp: proto 4, streaming=parallel
                }
                let mut ev = Event::new(Op::StreamAbort);
                ev.xid = Some(xid);
                ev.subxid = (subxid != xid).then_some(subxid);
                out.push(ev);
            }
            // Two-phase commit (proto ≥ 3): parsed, no events yet. Changes
            // between Begin Prepare and Prepare carry the xid only.
            b'b' => {
                r.skip(24)?; // prepare LSN, end LSN, prepare timestamp
                let xid = r.u32()?;
                r.cstr()?; // gid
                self.tx = Some(Tx {
                    xid,
                    commit_lsn: None,
                    commit_ts: None,
                });
            }
            // Prepare, Stream Prepare, Commit Prepared: flags, two LSNs, a
            // timestamp, xid, gid. Rollback Prepared has one more timestamp.
            b'P' | b'p' | b'K' | b'r' => {
                r.skip(if tag == b'r' { 1 + 32 + 4 } else { 1 + 24 + 4 })?;
                r.cstr()?;
                if tag == b'P' {
                    self.tx = None;
                }
            }
            _ => return Err(r.err_at(0, "unknown message type")),
        }
        Ok(Decoded::Done)
    }
}

/// Fills in the transaction fields of a change: inside a stream block the
/// streamed transaction's xid, and `subxid` when the change belongs to one
/// of its subtransactions (what a `stream_abort` with that subxid undoes);
/// else the current transaction.
fn set_tx<'a>(
    ev: &mut Event<'a>,
    tx: Option<Tx>,
    stream: Option<(u32, u32)>,
    origin: Option<&'a str>,
) {
    ev.origin = origin;
    if let Some((top, own)) = stream {
        ev.streamed = true;
        ev.xid = Some(top);
        ev.subxid = (own != top).then_some(own);
    } else if let Some(tx) = tx {
        ev.xid = Some(tx.xid);
        ev.commit_lsn = tx.commit_lsn;
        ev.commit_ts = tx.commit_ts;
    }
}

/// Parses TupleData for a relation of `ncols` columns into `out`.
fn tuple(r: &mut Reader<'_>, ncols: usize, out: &mut Vec<RawDatum>) -> Result<(), DecodeError> {
    let at = r.pos;
    if r.count16()? != ncols {
        return Err(r.err_at(at, "column count differs from the relation's"));
    }
    out.clear();
    for _ in 0..ncols {
        let at = r.pos;
        let datum = match r.u8()? {
            b'n' => RawDatum::Null,
            b'u' => RawDatum::UnchangedToast,
            b't' => {
                let len = r.len32()?;
                let start = r.offset()?;
                r.bytes(len)?;
                RawDatum::Text {
                    start,
                    end: r.offset()?,
                }
            }
            b'b' => return Err(r.err_at(at, "binary tuple data not requested")),
            _ => return Err(r.err_at(at, "unknown tuple value kind")),
        };
        out.push(datum);
    }
    Ok(())
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Big-endian integer readers for [`Reader`].
macro_rules! int_readers {
    ($($name:ident: $t:ty),*) => {$(
        fn $name(&mut self) -> Result<$t, DecodeError> {
            self.array().map(<$t>::from_be_bytes)
        }
    )*};
}

/// A bounds-checked big-endian cursor over one message.
#[derive(Clone)]
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// The message type, for errors.
    tag: char,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader {
            buf,
            pos: 0,
            tag: '?',
        }
    }

    fn err_at(&self, offset: usize, what: &'static str) -> DecodeError {
        DecodeError {
            plugin: "pgoutput",
            tag: self.tag,
            offset,
            what,
        }
    }

    fn err(&self, what: &'static str) -> DecodeError {
        self.err_at(self.pos, what)
    }

    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let b = self
            .pos
            .checked_add(n)
            .and_then(|end| self.buf.get(self.pos..end))
            .ok_or_else(|| self.err("message ends early"))?;
        self.pos += n;
        Ok(b)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let b = self.bytes(N)?;
        <[u8; N]>::try_from(b).map_err(|_| self.err("message ends early"))
    }

    int_readers!(u8: u8, i16: i16, u32: u32, i32: i32, u64: u64, i64: i64);

    fn skip(&mut self, n: usize) -> Result<(), DecodeError> {
        self.bytes(n).map(drop)
    }

    /// A NUL-terminated string, without the NUL.
    fn cstr(&mut self) -> Result<&'a [u8], DecodeError> {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        let n = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| self.err("unterminated string"))?;
        let s = self.bytes(n)?;
        self.bytes(1)?;
        Ok(s)
    }

    /// An Int16 column count, which must not be negative.
    fn count16(&mut self) -> Result<usize, DecodeError> {
        let at = self.pos;
        usize::try_from(self.i16()?).map_err(|_| self.err_at(at, "negative column count"))
    }

    /// An Int32 byte length, which must not be negative.
    fn len32(&mut self) -> Result<usize, DecodeError> {
        let at = self.pos;
        usize::try_from(self.i32()?).map_err(|_| self.err_at(at, "negative length"))
    }

    /// The position as a [`RawDatum`] offset.
    fn offset(&self) -> Result<u32, DecodeError> {
        u32::try_from(self.pos).map_err(|_| self.err("message too large"))
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Write;

    use super::*;
    use crate::event::Datum;

    /// Builds a message byte by byte.
    struct Msg(Vec<u8>);

    macro_rules! put {
        ($($name:ident: $t:ty),*) => {$(
            fn $name(mut self, v: $t) -> Self {
                self.0.extend_from_slice(&v.to_be_bytes());
                self
            }
        )*};
    }

    /// A tuple value: null, unchanged TOAST, text.
    enum V {
        N,
        U,
        T(&'static str),
    }
    use V::*;

    impl Msg {
        put!(u8: u8, i16: i16, u32: u32, i32: i32, u64: u64);

        fn new(tag: u8) -> Self {
            Msg(vec![tag])
        }

        fn raw(mut self, b: &[u8]) -> Self {
            self.0.extend_from_slice(b);
            self
        }

        fn s(self, s: &str) -> Self {
            self.raw(s.as_bytes()).u8(0)
        }

        /// Int32 length and bytes.
        fn data(self, b: &[u8]) -> Self {
            self.i32(b.len() as i32).raw(b)
        }

        /// The xid that messages carry inside a stream block.
        fn xid(self, stream: Option<u32>) -> Self {
            match stream {
                Some(x) => self.u32(x),
                None => self,
            }
        }

        /// A tuple kind byte (`N`, `K`, `O`) and TupleData.
        fn tuple(self, kind: u8, vals: &[V]) -> Self {
            let m = self.u8(kind).i16(vals.len() as i16);
            vals.iter().fold(m, |m, v| match v {
                N => m.u8(b'n'),
                U => m.u8(b'u'),
                T(s) => m.u8(b't').data(s.as_bytes()),
            })
        }
    }

    /// Columns of `public.t`, relation 1.
    const T_COLS: &[(u8, &str, u32)] = &[(1, "id", 23), (0, "a", 25), (0, "b", 25)];

    /// A Relation message; columns are (flags, name, type oid).
    fn rel(stream: Option<u32>, relid: u32, ident: u8, cols: &[(u8, &str, u32)]) -> Vec<u8> {
        let m = Msg::new(b'R').xid(stream).u32(relid).s("public");
        let m = m.s(&format!("r{relid}")).u8(ident).i16(cols.len() as i16);
        let m = cols
            .iter()
            .fold(m, |m, (f, n, oid)| m.u8(*f).s(n).u32(*oid).i32(-1));
        m.0
    }

    fn begin(xid: u32) -> Vec<u8> {
        Msg::new(b'B').u64(100).u64(7).u32(xid).0
    }

    fn commit() -> Vec<u8> {
        Msg::new(b'C').u8(0).u64(100).u64(108).u64(7).0
    }

    /// Insert, Update or Delete of relation 1 (or `relid` for Insert).
    fn ins(stream: Option<u32>, relid: u32, vals: &[V]) -> Vec<u8> {
        Msg::new(b'I').xid(stream).u32(relid).tuple(b'N', vals).0
    }

    fn upd(old: Option<(u8, &[V])>, new: &[V]) -> Vec<u8> {
        let m = Msg::new(b'U').u32(1);
        let m = match old {
            Some((kind, t)) => m.tuple(kind, t),
            None => m,
        };
        m.tuple(b'N', new).0
    }

    fn del(kind: u8, old: &[V]) -> Vec<u8> {
        Msg::new(b'D').u32(1).tuple(kind, old).0
    }

    /// Prepare-like messages: flags, two LSNs, timestamp(s), xid, gid.
    fn prep(tag: u8) -> Vec<u8> {
        let m = Msg::new(tag).u8(0).u64(1).u64(2).u64(3);
        let m = if tag == b'r' { m.u64(4) } else { m };
        m.u32(77).s("gid").0
    }

    /// A one-line summary of an event.
    fn summary(e: &Event<'_>) -> String {
        let mut s = e.op.as_str().to_owned();
        if let Some(r) = e.relation {
            write!(s, " {}.{}", r.schema, r.name).unwrap();
        }
        let (xid, subxid) = (e.xid.map(u64::from), e.subxid.map(u64::from));
        let ts = e.commit_ts.and_then(|t| u64::try_from(t).ok());
        let (lsn, commit_lsn, end) = (e.lsn, e.commit_lsn, e.end_lsn);
        let fields = [lsn, commit_lsn, end, xid, subxid, ts];
        let names = ["lsn", "commit_lsn", "end", "xid", "subxid", "ts"];
        for (k, v) in names.into_iter().zip(fields) {
            if let Some(v) = v {
                write!(s, " {k}={v}").unwrap();
            }
        }
        if e.streamed {
            s.push_str(" streamed");
        }
        if let Some(t) = e.truncate {
            write!(s, " cascade={} restart={}", t.cascade, t.restart_identity).unwrap();
        }
        if let Some(m) = e.message {
            let text = |b| String::from_utf8_lossy(b).into_owned();
            let (p, c, tx) = (text(m.prefix), text(m.content), m.transactional);
            write!(s, " msg={p}:{c} tx={tx}").unwrap();
        }
        for (k, row) in [("old", e.old), ("new", e.new)] {
            let Some(row) = row else { continue };
            write!(s, " {k}{}=", if row.key_only { "[K]" } else { "" }).unwrap();
            for (c, d) in row.columns() {
                let v = match d {
                    Datum::Null => "null".into(),
                    Datum::UnchangedToast => "~".into(),
                    Datum::Text(t) => String::from_utf8_lossy(t),
                };
                write!(s, "{}:{v},", c.name).unwrap();
            }
        }
        s
    }

    /// Decodes one message; returns the outcome and a summary of each event.
    fn decode_one(
        d: &mut PgOutput,
        lsn: Lsn,
        m: &[u8],
        cat: &Catalog,
    ) -> (Result<Decoded, DecodeError>, Vec<String>) {
        let mut out = Events::new();
        let res = d.decode(lsn, m, cat, &mut out);
        (res, out.iter().map(summary).collect())
    }

    /// A decoder that knows `public.r1(id, a, b)` (identity DEFAULT) and
    /// `public.r2(k)` (identity USING INDEX).
    fn decoder() -> PgOutput {
        let mut d = PgOutput::new();
        let r2 = rel(None, 2, b'i', &[(1, "k", 23)]);
        feed(&mut d, &[&rel(None, 1, b'd', T_COLS), &r2]);
        d
    }

    /// Decodes messages at lsn 5, each of which must be `Done`.
    fn run(d: &mut PgOutput, cat: &Catalog, msgs: &[&[u8]]) -> Vec<String> {
        let mut lines = Vec::new();
        for m in msgs {
            let (res, events) = decode_one(d, 5, m, cat);
            assert_eq!(res.unwrap(), Decoded::Done, "{m:?}");
            lines.extend(events);
        }
        lines
    }

    fn feed(d: &mut PgOutput, msgs: &[&[u8]]) -> Vec<String> {
        run(d, &Catalog::default(), msgs)
    }

    fn try_decode(d: &mut PgOutput, m: &[u8]) -> Result<Decoded, DecodeError> {
        decode_one(d, 5, m, &Catalog::default()).0
    }

    fn err(d: &mut PgOutput, m: &[u8]) -> (char, usize, &'static str) {
        let e = try_decode(d, m).unwrap_err();
        (e.tag, e.offset, e.what)
    }

    #[test]
    fn begin_insert_commit() {
        let mut d = decoder();
        let i = ins(None, 1, &[T("7"), T("x"), N]);
        let out = feed(&mut d, &[&begin(741), &i, &commit()]);
        assert_eq!(
            out,
            [
                "begin commit_lsn=100 xid=741 ts=7",
                "insert public.r1 lsn=5 commit_lsn=100 xid=741 ts=7 new=id:7,a:x,b:null,",
                "commit commit_lsn=100 end=108 xid=741 ts=7",
            ]
        );
        assert!(d.tx.is_none());
    }

    #[test]
    fn updates_and_deletes() {
        let new: &[V] = &[T("7"), T("y"), U];
        let msgs = [
            upd(Some((b'K', &[T("6"), N, N])), new),
            upd(Some((b'O', &[T("6"), T("x"), T("z")])), new),
            upd(None, new),
            del(b'K', &[T("7"), N, N]),
            del(b'O', &[T("7"), T(""), N]),
        ];
        let msgs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
        assert_eq!(
            feed(&mut decoder(), &msgs),
            [
                "update public.r1 lsn=5 old[K]=id:6, new=id:7,a:y,b:~,",
                "update public.r1 lsn=5 old=id:6,a:x,b:z, new=id:7,a:y,b:~,",
                "update public.r1 lsn=5 new=id:7,a:y,b:~,",
                "delete public.r1 lsn=5 old[K]=id:7,",
                "delete public.r1 lsn=5 old=id:7,a:,b:null,",
            ]
        );
    }

    #[test]
    fn truncate_two_tables() {
        let mut d = decoder();
        let t = Msg::new(b'T').u32(2).u8(3).u32(2).u32(1).0;
        let out = feed(&mut d, &[&begin(9), &t]);
        let tail = "lsn=5 commit_lsn=100 xid=9 ts=7 cascade=true restart=true";
        assert_eq!(
            out[1..],
            [
                format!("truncate public.r2 {tail}"),
                format!("truncate public.r1 {tail}")
            ]
        );
        // An unknown relid anywhere: an error and no events at all.
        let bad = Msg::new(b'T').u32(2).u8(0).u32(1).u32(99).0;
        let (e, events) = decode_one(&mut d, 5, &bad, &Catalog::default());
        assert_eq!(e.unwrap_err().what, "truncate of unknown relation");
        assert!(events.is_empty());
    }

    #[test]
    fn messages() {
        let m = |flags| Msg::new(b'M').u8(flags).u64(42).s("pfx").data(b"hi").0;
        let out = feed(&mut decoder(), &[&m(0), &begin(3), &m(1)]);
        assert_eq!(out[0], "message lsn=42 msg=pfx:hi tx=false");
        assert_eq!(
            out[2],
            "message lsn=42 commit_lsn=100 xid=3 ts=7 msg=pfx:hi tx=true"
        );
    }

    #[test]
    fn relation_replacement_and_identities() {
        let mut d = decoder();
        let r1 = rel(None, 1, b'd', &[(0, "a", 25), (1, "id", 20)]);
        let i = ins(None, 1, &[T("x"), T("8")]);
        let out = feed(&mut d, &[&r1, &i]);
        assert_eq!(
            out,
            ["relation public.r1", "insert public.r1 lsn=5 new=a:x,id:8,"]
        );
        assert_eq!(d.relations[&1].key, [1]);
        let old_shape = ins(None, 1, &[T("7"), T("x"), N]);
        assert_eq!(
            err(&mut d, &old_shape),
            ('I', 6, "column count differs from the relation's")
        );
        let n = rel(None, 3, b'n', &[(0, "a", 23)]);
        let i = rel(None, 4, b'i', &[(0, "a", 23), (1, "b", 23), (1, "c", 23)]);
        feed(&mut d, &[&n, &i]);
        assert!(d.relations[&3].key.is_empty());
        assert_eq!(d.relations[&4].key, [1, 2]);
        assert!(d.relations[&4].columns[1].identity && !d.relations[&4].columns[0].identity);
    }

    #[test]
    fn identity_full_asks_primary_key_every_time() {
        let (mut d, mut cat) = (decoder(), Catalog::default());
        let f = rel(None, 5, b'f', &[(1, "a", 23), (1, "b", 23)]);
        cat.insert_primary_key(5, vec!["b".into()]); // maybe stale: asked anyway
        let need = Decoded::Need(CatalogRequest::PrimaryKey(5));
        let ask = |d: &mut PgOutput, cat: &Catalog| {
            let (res, events) = decode_one(d, 0, &f, cat);
            assert!(events.is_empty(), "{events:?}");
            res
        };
        assert_eq!(ask(&mut d, &cat).unwrap(), need);
        assert!(!d.relations.contains_key(&5));
        cat.forget_primary_key(5);
        cat.insert_primary_key(5, vec!["a".into()]);
        run(&mut d, &cat, &[&f]);
        assert_eq!(d.relations[&5].key, [0]);
        // The next FULL message asks again; no primary key means no key.
        assert_eq!(ask(&mut d, &cat).unwrap(), need);
        cat.insert_primary_key(5, vec![]);
        run(&mut d, &cat, &[&f]);
        assert!(d.relations[&5].key.is_empty());
    }

    #[test]
    fn unknown_types_need_catalog_without_state_change() {
        let (mut d, mut cat) = (decoder(), Catalog::default());
        let e = [(0, "e", 16400), (0, "f", 16390), (0, "g", 16400)];
        let r = rel(None, 1, b'd', &[(1, "id", 23), e[0], e[1], e[2]]);
        let need = Decoded::Need(CatalogRequest::Types(vec![16390, 16400]));
        let (res, events) = decode_one(&mut d, 0, &r, &cat);
        assert_eq!((res.unwrap(), events.len()), (need, 0));
        assert_eq!(d.relations[&1].columns.len(), 3, "old relation kept");
        cat.insert_type(16390, ValueKind::Json);
        cat.insert_type(16400, ValueKind::Text);
        run(&mut d, &cat, &[&r]);
        assert_eq!(d.relations[&1].columns[2].kind, ValueKind::Json);
    }

    #[test]
    fn streaming() {
        let mut d = decoder();
        let s = Some(50);
        let start = Msg::new(b'S').u32(50).u8(1).0;
        let ty = Msg::new(b'Y').xid(s).u32(16500).s("public").s("mood").0;
        let msg = Msg::new(b'M').xid(s).u8(1).u64(42).s("p").data(b"").0;
        let stop = Msg::new(b'E').0;
        let r6 = rel(s, 6, b'd', &[(1, "id", 23)]);
        let i6 = ins(Some(51), 6, &[T("1")]);
        let out = feed(&mut d, &[&begin(1), &start, &r6, &ty, &i6, &msg, &stop]);
        assert_eq!(out[1], "relation public.r6");
        assert_eq!(
            out[2..],
            [
                "insert public.r6 lsn=5 xid=50 subxid=51 streamed new=id:1,",
                "message lsn=42 xid=50 streamed msg=p: tx=true",
            ]
        );
        assert!(d.stream_xid.is_none());
        let sc = Msg::new(b'c').u32(50).u8(0).u64(200).u64(208).u64(9).0;
        let abort = Msg::new(b'A').u32(50).u32(50).0;
        let abort_sub = Msg::new(b'A').u32(50).u32(51).u64(300).u64(10).0;
        assert_eq!(
            feed(&mut d, &[&sc, &abort, &abort_sub]),
            [
                "stream_commit commit_lsn=200 end=208 xid=50 ts=9",
                "stream_abort xid=50",
                "stream_abort xid=50 subxid=51",
            ]
        );
    }

    #[test]
    fn two_phase_origin_and_type_emit_nothing() {
        let mut d = decoder();
        let bp = Msg::new(b'b').u64(1).u64(2).u64(3).u32(77).s("gid").0;
        let origin = Msg::new(b'O').u64(1).s("node").0;
        let ty = Msg::new(b'Y').u32(16500).s("public").s("mood").0;
        let i = ins(None, 2, &[T("1")]);
        let (p, k, sp, r) = (prep(b'P'), prep(b'K'), prep(b'p'), prep(b'r'));
        let out = feed(&mut d, &[&bp, &i, &p, &k, &sp, &r, &origin, &ty]);
        assert_eq!(out, ["insert public.r2 lsn=5 xid=77 new=k:1,"]);
        assert!(d.tx.is_none());
    }

    /// A valid message of every type, and whether it belongs in a stream.
    #[rustfmt::skip]
    fn samples() -> Vec<(bool, Vec<u8>)> {
        let s = Some(50);
        let plain = [
            begin(1), commit(), prep(b'P'), prep(b'K'), prep(b'p'), prep(b'r'),
            Msg::new(b'b').u64(1).u64(2).u64(3).u32(77).s("gid").0,
            Msg::new(b'O').u64(1).s("node").0,
            Msg::new(b'Y').u32(16500).s("public").s("mood").0,
            rel(None, 1, b'd', T_COLS),
            ins(None, 1, &[T("7"), T("x"), N]),
            upd(Some((b'K', &[T("6"), N, N])), &[T("7"), U, T("")]),
            upd(None, &[T("7"), U, N]),
            del(b'O', &[T("6"), T("a"), N]),
            Msg::new(b'T').u32(2).u8(1).u32(1).u32(2).0,
            Msg::new(b'M').u8(1).u64(42).s("p").data(b"abc").0,
            Msg::new(b'S').u32(50).u8(0).0,
            Msg::new(b'E').0,
            Msg::new(b'c').u32(50).u8(0).u64(200).u64(208).u64(9).0,
            Msg::new(b'A').u32(50).u32(51).u64(300).u64(10).0,
        ];
        let streamed = [
            rel(s, 1, b'd', T_COLS),
            ins(s, 1, &[T("7"), T("x"), N]),
            Msg::new(b'D').u32(50).u32(1).tuple(b'K', &[T("7"), N, N]).0,
            Msg::new(b'T').u32(50).u32(1).u8(0).u32(1).0,
            Msg::new(b'M').u32(50).u8(1).u64(42).s("p").data(b"x").0,
            Msg::new(b'Y').u32(50).u32(16500).s("public").s("mood").0,
        ];
        let plain = plain.into_iter().map(|m| (false, m));
        plain.chain(streamed.into_iter().map(|m| (true, m))).collect()
    }

    fn decoder_in(streamed: bool) -> PgOutput {
        let mut d = decoder();
        d.stream_xid = streamed.then_some(50);
        d
    }

    #[test]
    fn every_truncated_message_is_an_error() {
        for (streamed, m) in samples() {
            try_decode(&mut decoder_in(streamed), &m).unwrap();
            for len in 0..m.len() {
                // Stream Abort without the proto-4 parallel fields is whole.
                if m.first() == Some(&b'A') && len == 9 {
                    continue;
                }
                let res = try_decode(&mut decoder_in(streamed), &m[..len]);
                assert!(res.is_err(), "{m:?} cut at {len}: {res:?}");
            }
        }
    }

    #[test]
    #[rustfmt::skip]
    fn malformed() {
        let mut d = decoder();
        let one = |m: Msg| m.u32(2).u8(b'N').i16(1);
        assert_eq!(err(&mut d, &[]), ('?', 0, "message ends early"));
        assert_eq!(err(&mut d, b"Z1"), ('Z', 0, "unknown message type"));
        assert_eq!(err(&mut d, &ins(None, 9, &[T("1")])), ('I', 1, "change for unknown relation"));
        assert_eq!(err(&mut d, &ins(None, 2, &[N, N])), ('I', 6, "column count differs from the relation's"));
        assert_eq!(err(&mut d, &Msg::new(b'I').u32(2).u8(b'N').i16(-1).0), ('I', 6, "negative column count"));
        assert_eq!(err(&mut d, &one(Msg::new(b'I')).u8(b't').i32(-1).0), ('I', 9, "negative length"));
        assert_eq!(err(&mut d, &one(Msg::new(b'I')).u8(b'b').data(b"").0), ('I', 8, "binary tuple data not requested"));
        assert_eq!(err(&mut d, &one(Msg::new(b'I')).u8(b'x').0), ('I', 8, "unknown tuple value kind"));
        assert_eq!(err(&mut d, &Msg::new(b'U').u32(2).tuple(b'K', &[N]).u8(b'X').0), ('U', 9, "expected new tuple 'N'"));
        assert_eq!(err(&mut d, &one(Msg::new(b'D')).u8(b'n').0), ('D', 5, "expected old tuple 'K' or 'O'"));
        assert_eq!(err(&mut d, &Msg::new(b'M').u8(0).u64(1).s("p").i32(-5).0), ('M', 12, "negative length"));
        assert_eq!(err(&mut d, &Msg::new(b'R').u32(1).s("s").s("t").u8(b'd').i16(-1).0).2, "negative column count");
        assert_eq!(err(&mut d, &rel(None, 1, b'x', &[])), ('R', 15, "unknown replica identity"));
        assert_eq!(err(&mut d, &Msg::new(b'T').u32(u32::MAX).u8(0).u32(1).0), ('T', 10, "message ends early"));
        assert_eq!(err(&mut d, &Msg::new(b'O').u64(1).raw(b"no nul").0), ('O', 9, "unterminated string"));
    }

    #[test]
    fn fuzzed_messages_never_panic() {
        let samples = samples();
        let mut next = crate::decode::fuzz_numbers();
        let mut d = decoder();
        for i in 0..100_000 {
            if i % 1000 == 0 {
                d = decoder(); // don't let junk relations pile up
            }
            let (streamed, m) = &samples[next() % samples.len()];
            let mut m = m.clone();
            for _ in 0..=next() % 4 {
                let at = next() % (m.len() + 1);
                match (next() % 4, m.get_mut(at)) {
                    (0, Some(b)) => *b = next() as u8,
                    (1, Some(b)) => *b ^= 0x80,
                    (2, _) => m.truncate(at),
                    _ => m.insert(at, [0, 0xff, b'n', b'u', b't'][next() % 5]),
                }
            }
            d.stream_xid = streamed.then_some(50);
            let _ = d.decode(5, &m, &Catalog::default(), &mut Events::new());
        }
    }
}
