//! `--backfill`: re-reads published tables while the stream runs, chunk by
//! chunk in key order, as `read` events interleaved with the live changes
//! so that replaying the output gives each table's current contents.
//!
//! Each chunk is reconciled with the changes that raced it by watermarks in
//! the WAL, as Netflix's DBLog does:
//!
//! 1. A task on its own connection writes a low watermark (a
//!    non-transactional `pg_logical_emit_message`), reads the next chunk in
//!    one short statement (`COPY (SELECT … WHERE key > last ORDER BY key
//!    LIMIT n)`: no lock kept, no transaction left open), hands the rows
//!    over and writes a high watermark.
//! 2. The stream, between the two watermarks, notes the key of every change
//!    to the table. Those rows are newer in the stream than the chunk can
//!    be sure to be, so at the high watermark the chunk's other rows come
//!    out, and those are left out.
//! 3. A change the chunk cannot be reconciled with by key — a truncate, or
//!    a transaction whose changes came before it committed (streamed or
//!    prepared) — has the chunk read again.
//!
//! The stream drives: it asks the task for one chunk at a time, so a chunk
//! is the only thing held in memory, and a stream that is behind holds the
//! backfill back rather than the other way round. Watermarks carry a nonce
//! of the run and the chunk's number; others (an earlier run's, a chunk
//! abandoned by a reconnect) are ignored. A run cut short starts over on
//! the next: the output replays exactly either way, since every change
//! after a `read` comes after it.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use log::info;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use futures_util::StreamExt;

use crate::config::{Config, Plugin};
use crate::conninfo::ConnParams;
use crate::decode::copy::CopyRow;
use crate::error::{Error, Result};
use crate::event::{Datum, Event, Op, Relation, Row};
use crate::replication::commands::{quote_ident, quote_literal};
use crate::replication::conn::ReplicationConn;
use crate::sink::Handler;
use crate::sql::catalog::{pg_error, CatalogConn};
use crate::sql::tables;

use super::link::{Flow, Link};
use super::{SESSION_SETTINGS, SLOT_LOG};

/// The prefix of the watermark messages; never delivered.
pub(crate) const WATERMARK: &[u8] = b"pgstream.backfill";
/// How often a progress line is logged while a backfill runs.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// A run's backfill: which tables, how far; survives reconnects.
pub(crate) struct Backfill {
    /// Tells this run's watermarks from others'.
    run: String,
    chunk: usize,
    targets: Vec<Target>,
    /// The table being read (an index into `targets`).
    next: usize,
    /// The key of the last row read of it, as text.
    after: Option<Vec<Vec<u8>>>,
    /// Rows of it read so far.
    rows: u64,
    /// The chunk asked for last.
    seq: u64,
    window: Option<Window>,
    task: Option<Task>,
    progress_due: Instant,
    /// When the last progress line was due, and the rows read then.
    progress_from: (Instant, u64),
    /// Messages reach the handler (`--include-messages`), else only the
    /// backfill asked for them.
    deliver_messages: bool,
}

/// One table to backfill.
struct Target {
    relation: Arc<Relation>,
    select: String,
    from: String,
    filter: Option<String>,
    /// Quoted key column names, and their types for the literals.
    key: Vec<(String, String)>,
    /// Unquoted key column names, for finding them in a change's row.
    key_names: Vec<String>,
    estimate: u64,
}

/// Between a chunk's watermarks: the keys the stream changed meanwhile.
struct Window {
    seq: u64,
    keys: HashSet<Vec<u8>>,
    /// The chunk must be read again (see the module's doc).
    again: bool,
}

/// The chunk reader of one session.
struct Task {
    handle: JoinHandle<Result<()>>,
    asks: mpsc::Sender<Ask>,
    chunks: mpsc::Receiver<Chunk>,
}

impl Drop for Task {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// A chunk to read.
struct Ask {
    seq: u64,
    sql: String,
}

/// A chunk read: whole rows in COPY text format.
struct Chunk {
    seq: u64,
    bytes: Vec<u8>,
}

/// What the stream does with an event, once the backfill has seen it.
pub(super) enum Seen {
    /// Deliver it as usual.
    Pass,
    /// Not for the handler (a watermark, or a message only the backfill
    /// asked for).
    Skip,
    /// A high watermark: the chunk's rows come out now.
    High,
}

impl Backfill {
    /// The published tables `config.backfill` names, checked: each needs a
    /// key to be read in order. `None` without `--backfill`.
    pub(super) async fn resolve(
        config: &Config,
        catalog: &CatalogConn,
        plugin: Plugin,
    ) -> Result<Option<Backfill>> {
        let Some(patterns) = &config.backfill else {
            return Ok(None);
        };
        let listed = tables::list(catalog, config, plugin).await?;
        let mut targets = Vec::new();
        let mut keyless = Vec::new();
        for t in listed {
            let rel = &t.relation;
            if !patterns.matches(&rel.schema, &rel.name) {
                continue;
            }
            if rel.key.is_empty() {
                keyless.push(format!("{}.{}", rel.schema, rel.name));
                continue;
            }
            let key_names: Vec<String> = rel
                .key
                .iter()
                .map(|&i| rel.columns[i].name.clone())
                .collect();
            let mut key = Vec::new();
            for (name, &i) in key_names.iter().zip(&rel.key) {
                let row = catalog
                    .client()
                    .query_one(
                        "SELECT format_type($1::oid, NULL)",
                        &[&rel.columns[i].type_oid],
                    )
                    .await
                    .map_err(|e| pg_error(e, "reading a key column's type".into()))?;
                key.push((quote_ident(name), row.get::<_, String>(0)));
            }
            targets.push(Target {
                estimate: t.rows_estimate.max(0.0) as u64,
                relation: Arc::new(t.relation),
                select: t.select,
                from: t.from,
                filter: t.filter,
                key,
                key_names,
            });
        }
        if !keyless.is_empty() {
            keyless.sort();
            return Err(Error::usage(format!(
                "--backfill: {} has neither a primary key nor a replica identity index, so it cannot be read \
                 in key order; give it a primary key (or REPLICA IDENTITY USING INDEX) or leave it out",
                keyless.join(", ")
            )));
        }
        if targets.is_empty() {
            return Err(Error::usage(
                "--backfill matches no table that the stream publishes",
            ));
        }
        // Small tables first: they finish soon and show progress.
        targets.sort_by_key(|t| t.estimate);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Ok(Some(Backfill {
            run: format!("{}.{}", std::process::id(), now.as_micros()),
            chunk: config.backfill_chunk,
            targets,
            next: 0,
            after: None,
            rows: 0,
            seq: 0,
            window: None,
            task: None,
            progress_due: Instant::now() + PROGRESS_EVERY,
            progress_from: (Instant::now(), 0),
            deliver_messages: config.include_messages,
        }))
    }

    fn done(&self) -> bool {
        self.next >= self.targets.len()
    }

    /// Starts this session's chunk reader on `server` and asks for the next
    /// chunk. A chunk asked for in an earlier session is abandoned.
    pub(super) fn start(&mut self, server: &ConnParams) {
        self.window = None;
        self.task = None;
        if self.done() {
            return;
        }
        if self.next == 0 && self.after.is_none() {
            let t = &self.targets[0];
            info!(
                target: SLOT_LOG,
                "backfill: reading {} tables, {}.{} first",
                self.targets.len(),
                t.relation.schema,
                t.relation.name
            );
        }
        let (asks, ask_rx) = mpsc::channel(1);
        let (chunk_tx, chunks) = mpsc::channel(1);
        let handle = tokio::spawn(read_chunks(
            server.clone(),
            self.run.clone(),
            ask_rx,
            chunk_tx,
        ));
        self.task = Some(Task {
            handle,
            asks,
            chunks,
        });
        self.ask();
    }

    /// Asks the reader for the next chunk.
    fn ask(&mut self) {
        let Some(task) = &self.task else { return };
        self.seq += 1;
        let t = &self.targets[self.next];
        let cols: Vec<&str> = t.key.iter().map(|(name, _)| name.as_str()).collect();
        let mut conditions: Vec<String> = t.filter.iter().cloned().collect();
        if let Some(after) = &self.after {
            let values: Vec<String> = after
                .iter()
                .zip(&t.key)
                .map(|(v, (_, ty))| format!("{}::{ty}", quote_literal(&String::from_utf8_lossy(v))))
                .collect();
            conditions.push(format!("({}) > ({})", cols.join(", "), values.join(", ")));
        }
        let sql = format!(
            "COPY (SELECT {} FROM {}{} ORDER BY {} LIMIT {}) TO STDOUT",
            t.select,
            t.from,
            if conditions.is_empty() {
                String::new()
            } else {
                format!(" WHERE {}", conditions.join(" AND "))
            },
            cols.join(", "),
            self.chunk
        );
        // Room for one ask: the previous one was taken before its chunk came.
        let _ = task.asks.try_send(Ask { seq: self.seq, sql });
    }

    /// Resolves when this session's reader failed; never otherwise.
    pub(super) async fn failed(&mut self) -> Error {
        if let Some(task) = &mut self.task {
            match (&mut task.handle).await {
                Ok(Err(e)) => {
                    self.task = None;
                    return e;
                }
                Err(e) if !e.is_cancelled() => {
                    self.task = None;
                    return Error::Protocol(format!("the backfill task failed: {e}"));
                }
                _ => self.task = None,
            }
        }
        std::future::pending().await
    }

    /// Looks at an event before it is delivered: watermarks open and close
    /// a chunk's window, and changes inside one are noted.
    pub(super) fn see(&mut self, ev: &Event<'_>) -> Seen {
        if let Some(m) = &ev.message {
            if m.prefix != WATERMARK {
                return if self.deliver_messages {
                    Seen::Pass
                } else {
                    Seen::Skip
                };
            }
            let text = String::from_utf8_lossy(m.content);
            let mut parts = text.rsplitn(3, ':');
            let (Some(mark), Some(seq), Some(run)) = (parts.next(), parts.next(), parts.next())
            else {
                return Seen::Skip;
            };
            let seq: u64 = seq.parse().unwrap_or(0);
            if run != self.run || seq != self.seq || self.task.is_none() {
                return Seen::Skip;
            }
            return match (mark, &self.window) {
                ("low", None) => {
                    self.window = Some(Window {
                        seq,
                        keys: HashSet::new(),
                        again: false,
                    });
                    Seen::Skip
                }
                ("high", Some(w)) if w.seq == seq => Seen::High,
                _ => Seen::Skip,
            };
        }
        let Some(window) = &mut self.window else {
            return Seen::Pass;
        };
        let target = &self.targets[self.next];
        match ev.op {
            Op::StreamCommit
            | Op::StreamPrepare
            | Op::Prepare
            | Op::CommitPrepared
            | Op::RollbackPrepared => window.again = true,
            _ => {}
        }
        let ours = ev
            .relation
            .is_some_and(|r| r.name == target.relation.name && r.schema == target.relation.schema);
        if ours {
            if ev.op == Op::Truncate || ev.streamed || ev.gid.is_some() {
                window.again = true;
            }
            for row in [ev.old, ev.new].into_iter().flatten() {
                window.keys.insert(key_of(&row, &target.key_names));
            }
        }
        Seen::Pass
    }

    /// Hands the rows of the chunk whose high watermark is `high` to the
    /// handler, but those the stream changed meanwhile, and asks for the
    /// next chunk.
    pub(super) async fn emit<H: Handler>(
        link: &mut Link<'_>,
        repl: &mut ReplicationConn,
        handler: &mut H,
        high: &Event<'_>,
    ) -> Result<Flow> {
        let Some(bf) = link.st.backfill.as_mut() else {
            return Ok(Flow::Go);
        };
        let (Some(window), Some(task)) = (bf.window.take(), bf.task.as_mut()) else {
            return Ok(Flow::Go);
        };
        let chunk = match task.chunks.try_recv() {
            Ok(c) if c.seq == window.seq => c,
            _ => {
                return Err(Error::Protocol(format!(
                    "backfill: no rows for chunk {} at its high watermark",
                    window.seq
                )))
            }
        };
        if window.again {
            bf.ask();
            return Ok(Flow::Go);
        }
        let target = &bf.targets[bf.next];
        let relation = target.relation.clone();
        let key_names = target.key_names.clone();
        let full = chunk.bytes.iter().filter(|&&b| b == b'\n').count() >= bf.chunk;
        let mut parser = CopyRow::default();
        let mut last = None;
        let mut read = 0u64;
        let rows = chunk.bytes.strip_suffix(b"\n").unwrap_or(&chunk.bytes);
        for line in rows.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let (data, datums) = parser.parse(line, relation.columns.len()).map_err(|e| {
                Error::Protocol(format!(
                    "backfill of {}.{}: {e}",
                    relation.schema, relation.name
                ))
            })?;
            let row = Row {
                relation: &relation,
                data,
                datums,
                key_only: false,
            };
            let key = key_of(&row, &key_names);
            let skip = window.keys.contains(&key);
            last = Some(key);
            if skip {
                continue;
            }
            let mut ev = Event::new(Op::Read);
            ev.relation = Some(&relation);
            ev.new = Some(row);
            link.dirty = true;
            if link.guard(repl, handler.event(&ev)).await?.is_none() {
                return Ok(Flow::GiveUp);
            }
            read += 1;
        }
        let Some(bf) = link.st.backfill.as_mut() else {
            return Ok(Flow::Go);
        };
        bf.rows += read;
        if let Some(last) = &last {
            bf.after = Some(split_key(last));
        }
        if full {
            bf.progress();
        } else {
            let mut ev = Event::new(Op::BackfillDone);
            ev.relation = Some(&relation);
            ev.rows = Some(bf.rows);
            info!(
                target: SLOT_LOG,
                "backfill: {}.{} done, {} rows",
                relation.schema,
                relation.name,
                bf.rows
            );
            (bf.next, bf.after, bf.rows) = (bf.next + 1, None, 0);
            bf.progress_from = (Instant::now(), 0);
            if bf.done() {
                info!(target: SLOT_LOG, "backfill: every table done");
                bf.task = None;
            }
            link.dirty = true;
            if link.guard(repl, handler.event(&ev)).await?.is_none() {
                return Ok(Flow::GiveUp);
            }
        }
        // The chunk is a unit of work of its own, as a non-transactional
        // message is; it allows no new position.
        let Some(completion) = link.guard(repl, handler.commit(high)).await? else {
            return Ok(Flow::GiveUp);
        };
        link.push(None, completion);
        if let Some(bf) = link.st.backfill.as_mut() {
            bf.ask();
        }
        Ok(Flow::Go)
    }

    /// A progress line now and then.
    fn progress(&mut self) {
        let now = Instant::now();
        if now < self.progress_due {
            return;
        }
        self.progress_due = now + PROGRESS_EVERY;
        let (then, before) = self.progress_from;
        self.progress_from = (now, self.rows);
        let rate = self.rows.saturating_sub(before) as f64
            / now.duration_since(then).as_secs_f64().max(1e-3);
        let t = &self.targets[self.next];
        let share = match t.estimate {
            0 => String::new(),
            e => {
                let left = e.saturating_sub(self.rows) as f64 / rate.max(1.0);
                format!(
                    " of about {e} ({:.0}%, about {:.0}s left)",
                    (self.rows as f64 * 100.0 / e as f64).min(100.0),
                    left
                )
            }
        };
        info!(
            target: SLOT_LOG,
            "backfill: {}.{} {} rows{share}, {rate:.0} rows/s, table {} of {}",
            t.relation.schema,
            t.relation.name,
            self.rows,
            self.next + 1,
            self.targets.len()
        );
    }
}

/// A row's key values, each as its length and text (NULL: `u32::MAX`).
fn key_of(row: &Row<'_>, names: &[String]) -> Vec<u8> {
    let mut key = Vec::new();
    for name in names {
        match row.get_named(name) {
            Some(Datum::Text(t)) => {
                key.extend_from_slice(&(t.len() as u32).to_le_bytes());
                key.extend_from_slice(t);
            }
            _ => key.extend_from_slice(&u32::MAX.to_le_bytes()),
        }
    }
    key
}

/// The values [`key_of`] packed.
fn split_key(mut key: &[u8]) -> Vec<Vec<u8>> {
    let mut values = Vec::new();
    while let Some((len, rest)) = key.split_first_chunk::<4>() {
        let len = u32::from_le_bytes(*len);
        if len == u32::MAX {
            values.push(Vec::new());
            key = rest;
            continue;
        }
        let (value, rest) = rest.split_at((len as usize).min(rest.len()));
        values.push(value.to_vec());
        key = rest;
    }
    values
}

/// The chunk reader: for each chunk asked for, the low watermark, the
/// chunk's query, its rows handed over, the high watermark.
async fn read_chunks(
    server: ConnParams,
    run: String,
    mut asks: mpsc::Receiver<Ask>,
    chunks: mpsc::Sender<Chunk>,
) -> Result<()> {
    let conn = CatalogConn::connect_with(&server, SESSION_SETTINGS).await?;
    let mark = |seq: u64, which: &str| format!("{run}:{seq}:{which}");
    // A non-transactional message is not flushed by itself: the walsender
    // only sends it once something flushes the WAL, which on a quiet server
    // may be never. 17+ flushes it when asked; before, it is written inside
    // a transaction that takes an xid, whose commit then flushes it
    // (synchronously; pgoutput sends nothing for the empty transaction from
    // 15 on).
    let flush_asked = conn.server_version >= 170000;
    let watermark = |text: String| {
        let sql = if flush_asked {
            format!(
                "SELECT pg_logical_emit_message(false, 'pgstream.backfill', {}, true)",
                quote_literal(&text)
            )
        } else {
            format!(
                "SET synchronous_commit = on; BEGIN; SELECT pg_current_xact_id(); \
                 SELECT pg_logical_emit_message(false, 'pgstream.backfill', {}); COMMIT",
                quote_literal(&text)
            )
        };
        let conn = &conn;
        async move {
            conn.client()
                .batch_execute(&sql)
                .await
                .map_err(|e| pg_error(e, "writing a backfill watermark".into()))
        }
    };
    while let Some(ask) = asks.recv().await {
        watermark(mark(ask.seq, "low")).await?;
        let context = || "reading a backfill chunk".to_string();
        let stream = conn
            .client()
            .copy_out(ask.sql.as_str())
            .await
            .map_err(|e| pg_error(e, context()))?;
        let mut stream = std::pin::pin!(stream);
        let mut bytes = Vec::new();
        while let Some(data) = stream.next().await {
            bytes.extend_from_slice(&data.map_err(|e| pg_error(e, context()))?);
        }
        if chunks
            .send(Chunk {
                seq: ask.seq,
                bytes,
            })
            .await
            .is_err()
        {
            return Ok(());
        }
        watermark(mark(ask.seq, "high")).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::split_key;

    #[test]
    fn keys_split_back() {
        let mut key = Vec::new();
        for v in [&b"12"[..], b"", b"a,b"] {
            key.extend_from_slice(&(v.len() as u32).to_le_bytes());
            key.extend_from_slice(v);
        }
        assert_eq!(
            split_key(&key),
            vec![b"12".to_vec(), vec![], b"a,b".to_vec()]
        );
    }
}
