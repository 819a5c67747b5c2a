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
//! catalog). Two-phase messages (proto ≥ 3): the changes between Begin
//! Prepare and Prepare carry the transaction's `gid` and no commit fields.
//! Inside a Stream Start … Stop block, changes carry their (sub)transaction
//! xid and are emitted `streamed`, without commit fields.
//!
//! The bytes come from the network, so the parser never panics: every read
//! goes through a bounds-checked `Reader` that rejects negative lengths and
//! names the byte offset where a message stopped making sense. Bytes after a
//! message's known fields are ignored: newer protocol versions append fields.

use std::collections::HashMap;

use super::catalog::{Catalog, CatalogRequest};
use super::{DecodeError, Decoded, Decoder, Events};
use crate::event::ValueKind;
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
    /// Inside a Begin Prepare … Prepare block: its changes carry `gid`.
    prepared: bool,
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
    /// The gid of the transaction being prepared (reused buffer).
    gid: Vec<u8>,
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

    /// The transaction fields of a change (or a transactional message)
    /// whose stream-block xid prefix was `xid`.
    fn set_change_tx<'d>(&'d self, ev: &mut Event<'d>, xid: Option<u32>) {
        set_tx(
            ev,
            self.tx,
            self.stream_xid.zip(xid),
            self.origin.as_deref(),
        );
        if self.stream_xid.is_none() && self.tx.is_some_and(|t| t.prepared) {
            ev.gid = Some(&self.gid);
        }
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
        self.set_change_tx(&mut ev, xid);
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
            self.set_change_tx(&mut ev, xid);
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
                let commit_lsn = r.lsn()?;
                let commit_ts = r.i64()?;
                let xid = r.u32()?;
                let tx = Tx {
                    xid,
                    commit_lsn: Some(commit_lsn),
                    commit_ts: Some(commit_ts),
                    prepared: false,
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
                ev.commit_lsn = Some(r.lsn()?);
                ev.end_lsn = Some(r.lsn()?);
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
                ev.lsn = Some(r.lsn()?);
                let prefix = r.cstr()?;
                let len = r.len32()?;
                let content = r.bytes(len)?;
                ev.message = Some(Message {
                    prefix,
                    content,
                    transactional,
                });
                if transactional {
                    self.set_change_tx(&mut ev, xid);
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
                ev.commit_lsn = Some(r.lsn()?);
                ev.end_lsn = Some(r.lsn()?);
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
            // Two-phase commit (proto ≥ 3).
            b'b' => {
                r.skip(24)?; // prepare LSN, end LSN, prepare timestamp
                let xid = r.u32()?;
                self.gid.clear();
                self.gid.extend_from_slice(r.cstr()?);
                let tx = Tx {
                    xid,
                    commit_lsn: None,
                    commit_ts: None,
                    prepared: true,
                };
                self.tx = Some(tx);
                self.origin = None;
                let mut ev = Event::new(Op::Begin);
                set_tx(&mut ev, Some(tx), None, None);
                ev.gid = Some(&self.gid);
                out.push(ev);
            }
            // Prepare and Stream Prepare: flags, the prepare's LSN and end,
            // its timestamp, xid, gid.
            b'P' | b'p' => {
                r.u8()?; // flags, unused
                let op = if tag == b'P' {
                    Op::Prepare
                } else {
                    Op::StreamPrepare
                };
                let mut ev = Event::new(op);
                ev.lsn = Some(r.lsn()?);
                ev.end_lsn = Some(r.lsn()?);
                ev.prepare_ts = Some(r.i64()?);
                ev.xid = Some(r.u32()?);
                ev.gid = Some(r.cstr()?);
                ev.origin = self.origin.as_deref().filter(|_| tag == b'P');
                if tag == b'P' {
                    self.tx = None;
                }
                out.push(ev);
            }
            b'K' => {
                r.u8()?; // flags, unused
                let mut ev = Event::new(Op::CommitPrepared);
                ev.commit_lsn = Some(r.lsn()?);
                ev.end_lsn = Some(r.lsn()?);
                ev.commit_ts = Some(r.i64()?);
                ev.xid = Some(r.u32()?);
                ev.gid = Some(r.cstr()?);
                out.push(ev);
            }
            b'r' => {
                r.u8()?; // flags, unused
                r.skip(8)?; // the prepare's end
                let mut ev = Event::new(Op::RollbackPrepared);
                ev.end_lsn = Some(r.lsn()?);
                r.skip(16)?; // prepare and rollback timestamps
                ev.xid = Some(r.u32()?);
                ev.gid = Some(r.cstr()?);
                out.push(ev);
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

    int_readers!(u8: u8, i16: i16, u32: u32, i32: i32, i64: i64);

    fn lsn(&mut self) -> Result<Lsn, DecodeError> {
        self.array().map(u64::from_be_bytes).map(Lsn)
    }

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
mod tests;
