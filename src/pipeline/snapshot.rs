//! `--snapshot`: every existing row of the streamed tables as `read`
//! events, copied from the snapshot that the new slot exports, before the
//! stream starts at the slot's consistent point. See docs/snapshot.md.
//!
//! 1. A marker (a physical slot reserving no WAL, [`marker_name`]) is
//!    created, then the logical slot with `SNAPSHOT 'export'`. The
//!    replication connection then stays idle: its exported snapshot lives
//!    until its next command.
//! 2. A pool of `--pool-size` connections ([`super::pool`]) each imports
//!    the snapshot (`BEGIN ISOLATION LEVEL REPEATABLE READ;
//!    SET TRANSACTION SNAPSHOT …`) and copies tables from a shared queue,
//!    biggest first, a big table in ctid ranges that several connections
//!    copy at once ([`parts`]), with `COPY (SELECT …) TO STDOUT` in text format. Rows
//!    go to the handler as `read` events, in chunks of whole rows through a
//!    bounded channel, so memory stays bounded and a slow handler slows the
//!    copy down.
//! 3. Once the handler has completed every row, the marker is dropped and the
//!    caller starts streaming at the consistent point: the snapshot holds
//!    exactly the transactions that committed before it, the stream exactly
//!    those after.
//!
//! A snapshot that does not finish (signal, crash, lost connection) leaves
//! the slot and the marker behind; [`check`] then refuses every later run
//! (exit 2) until `--drop-slot` drops both ([`drop_marker`]). It cannot be
//! resumed: the exported snapshot died with its connection.
//!
//! Under systemd the snapshot runs before `READY=1`, so it extends the
//! start timeout (`EXTEND_TIMEOUT_USEC=`, with progress in `STATUS=`) when
//! it begins, when the copy begins and with every progress line, also while
//! a slow handler holds the copy up.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::mem;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use log::{debug, info, warn};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::{sleep_until, Instant};
use tokio_postgres::error::SqlState;

use super::SESSION_SETTINGS;
use crate::config::{Config, Plugin};
use crate::conninfo::ConnParams;
use crate::decode::copy::CopyRow;
use crate::error::{Error, Result};
use crate::event::{Event, Lsn, Op, Row};
use crate::replication::commands::{self, quote_literal};
use crate::replication::conn::ReplicationConn;
use crate::sink::{Completion, Handler};
use crate::sql::catalog::{pg_error, CatalogConn};
use crate::sql::pool::{self, Pool, Pooled};
use crate::sql::tables::{self, Table};
use crate::systemd::{Notifier, EXTEND_BY};

/// Copy tasks hand their rows over in chunks of about this size.
const CHUNK_BYTES: usize = 256 * 1024;
/// How often a progress line is logged (and systemd's start timeout
/// extended) while the snapshot runs.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);
const _: () = assert!(EXTEND_BY.as_secs() >= 4 * PROGRESS_EVERY.as_secs());
/// Longest slot name PostgreSQL accepts (NAMEDATALEN - 1).
const MAX_SLOT_NAME: usize = 63;
const MARKER_SUFFIX: &str = "_pgstream_snapshot";

/// Settings for the connections that take part in a snapshot, on top of
/// the output settings: a long copy must not be cut by a server-wide
/// timeout, and the exporting replication connection sits idle in its
/// transaction while the pool copies (as pg_dump sets them).
const NO_TIMEOUTS: &[(&str, &str)] = &[
    ("statement_timeout", "0"),
    ("lock_timeout", "0"),
    ("idle_in_transaction_session_timeout", "0"),
];

/// The replication connection's startup settings.
pub(crate) fn replication_settings(config: &Config) -> Vec<(&'static str, &'static str)> {
    let mut settings = SESSION_SETTINGS.to_vec();
    if config.snapshot {
        settings.extend_from_slice(NO_TIMEOUTS);
    }
    settings
}

/// The marker slot that exists while the initial snapshot of `slot` runs:
/// `<slot>_pgstream_snapshot`, or for a long slot name its first 36
/// characters and a hash of the whole name.
pub(crate) fn marker_name(slot: &str) -> String {
    if slot.len() + MARKER_SUFFIX.len() <= MAX_SLOT_NAME {
        return format!("{slot}{MARKER_SUFFIX}");
    }
    // FNV-1a: stable across runs and builds, unlike std's hasher.
    let hash = slot.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let keep = MAX_SLOT_NAME - MARKER_SUFFIX.len() - 9;
    let head: String = slot.chars().take(keep).collect();
    format!("{head}_{:08x}{MARKER_SUFFIX}", hash as u32)
}

/// Before a session uses the slot: refuses a slot whose initial snapshot
/// did not finish, drops a marker left without its slot, and refuses
/// `--snapshot` for a slot that this run did not create.
pub(crate) async fn check(
    config: &Config,
    catalog: &CatalogConn,
    slot_exists: bool,
    reconnect: bool,
) -> Result<()> {
    let marker = marker_name(&config.slot);
    let marked = catalog.slot(&marker).await?.is_some_and(|m| !m.logical());
    if marked && slot_exists {
        return Err(Error::usage(format!(
            "the initial snapshot of replication slot \"{}\" was interrupted (or is still being taken by \
             another pgstream): marker slot \"{marker}\" exists, so what was emitted is incomplete; drop the \
             slot with --drop-slot (which also drops the marker) and start again",
            config.slot
        )));
    }
    if marked {
        info!("dropping marker slot {marker}, left behind by a snapshot whose slot {} no longer exists", config.slot);
        drop_marker_sql(catalog, &marker).await?;
    }
    if config.snapshot && slot_exists && !reconnect {
        return Err(Error::usage(format!(
            "replication slot \"{}\" already exists; --snapshot needs a new slot, because the snapshot is \
             exported when the slot is created (its consistent point is where the stream starts): run \
             without --snapshot to go on streaming, or drop the slot with --drop-slot and run again",
            config.slot
        )));
    }
    Ok(())
}

/// `--drop-slot`: drops the marker of `slot` if there is one (a physical
/// slot of that name), over the replication connection (which accepts SQL).
pub(crate) async fn drop_marker(repl: &mut ReplicationConn, slot: &str) -> Result<()> {
    let marker = marker_name(slot);
    let rows = repl
        .simple_query(&format!(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
             WHERE slot_name = {} AND slot_type = 'physical'",
            quote_literal(&marker)
        ))
        .await?;
    if !rows.is_empty() {
        info!("dropped marker slot {marker} of an unfinished snapshot");
    }
    Ok(())
}

/// Creates the slot exporting a snapshot, hands every row of the streamed
/// tables to the handler as `read` events, waits until it has completed
/// them, and returns the slot's consistent point (where streaming starts).
/// `notifier` hears of the progress (see the module's doc).
pub(crate) async fn take<H: Handler>(
    config: &Config,
    server: &ConnParams,
    catalog: &CatalogConn,
    repl: &mut ReplicationConn,
    plugin: Plugin,
    handler: &mut H,
    notifier: &Notifier,
) -> Result<Lsn> {
    let mut progress = Progress::new(notifier);
    // A temporary slot vanishes with the connection: nothing to mark.
    let marker = (!config.temporary_slot).then(|| marker_name(&config.slot));
    if let Some(m) = &marker {
        catalog
            .client()
            .execute(
                "SELECT pg_create_physical_replication_slot($1, false, false)",
                &[&m.as_str()],
            )
            .await
            .map_err(|e| explain_marker(pg_error(e, format!("creating marker slot {m}")), m))?;
    }
    let mut unfinished = Unfinished {
        slot: &config.slot,
        marker: marker.as_deref(),
        done: false,
    };
    let sql = commands::create_slot(
        &config.slot,
        plugin.name(),
        config.new_slot(true),
        repl.server_version,
    );
    // The slot waits for the transactions running at its creation to end.
    let rows = match ticking(&mut progress, repl.simple_query(&sql)).await {
        Ok(rows) => rows,
        Err(e) => {
            unfinished.done = true;
            if let Some(m) = &marker {
                if let Err(e) = drop_marker_sql(catalog, m).await {
                    warn!("{e}");
                }
            }
            return Err(e);
        }
    };
    let field = |i: usize| rows.first().and_then(|r| r.get(i).cloned().flatten());
    let (Some(point), Some(name)) = (field(1).as_deref().and_then(|s| s.parse().ok()), field(2))
    else {
        return Err(Error::Protocol(format!(
            "CREATE_REPLICATION_SLOT returned no snapshot: {rows:?}"
        )));
    };
    info!(
        target: crate::pipeline::SLOT_LOG,
        "created slot {} at {} with snapshot {name}: its stream begins there",
        config.slot,
        point
    );

    let mut settings = SESSION_SETTINGS.to_vec();
    settings.extend_from_slice(NO_TIMEOUTS);
    let pool = pool::new(server, config.pool_size, settings)?;
    let name: Arc<str> = name.into();
    let listing = async {
        let conn = pool::get(&pool).await?;
        begin(&conn, &name).await?;
        let tables = tables::list(&conn, config, plugin).await?;
        conn.client()
            .batch_execute("COMMIT")
            .await
            .map_err(|e| pg_error(e, "listing tables".into()))?;
        Ok::<_, Error>(tables)
    };
    let tables = ticking(&mut progress, listing).await?;
    progress.copying(&tables);
    info!(
        "snapshot: copying {} tables (about {} rows) over up to {} connections",
        tables.len(),
        progress.estimate,
        config.pool_size
    );
    copy(
        config,
        &pool,
        &name,
        Plan::new(tables, config.pool_size, catalog.server_version),
        point,
        handler,
        &mut progress,
    )
    .await?;
    drop(pool);

    if let Some(m) = &marker {
        drop_marker_sql(catalog, m).await?;
    }
    unfinished.done = true;
    info!("{}", progress.summary(point));
    Ok(point)
}

/// Warns, when a snapshot stops half way, what that means for the next run.
struct Unfinished<'a> {
    slot: &'a str,
    marker: Option<&'a str>,
    done: bool,
}

impl Drop for Unfinished<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        match self.marker {
            Some(m) => warn!(
                "the initial snapshot of slot {} did not finish, so the output is incomplete; the slot and \
                 its marker {m} stay, and later runs refuse to start until the slot is dropped with --drop-slot",
                self.slot
            ),
            None => warn!(
                "the initial snapshot of temporary slot {} did not finish, so the output is incomplete; \
                 the slot goes with the connection",
                self.slot
            ),
        }
    }
}

/// One piece of work reported by a copy task.
enum Piece {
    /// Whole rows of table `table` in COPY text format, and how many.
    Rows {
        table: usize,
        bytes: Vec<u8>,
        rows: u64,
    },
    /// Table `table` is copied in full.
    Done { table: usize, rows: u64 },
}

/// Runs the copy tasks and hands their rows to the handler, then waits
/// until the handler has completed them all.
async fn copy<H: Handler>(
    config: &Config,
    pool: &Pool,
    snapshot: &Arc<str>,
    plan: Plan,
    point: Lsn,
    handler: &mut H,
    progress: &mut Progress<'_>,
) -> Result<()> {
    let Plan { tables, parts } = plan;
    let mut left = vec![0usize; tables.len()];
    let mut copied = vec![0u64; tables.len()];
    for part in &parts {
        left[part.table] += 1;
    }
    for (t, &n) in tables.iter().zip(&left).filter(|(_, &n)| n > 1) {
        let rel = &t.relation;
        info!(
            "snapshot: copying {}.{} in {n} ranges",
            rel.schema, rel.name
        );
    }
    let workers_wanted = config.pool_size.min(parts.len());
    let queue = Arc::new(Mutex::new(parts));
    // Room for a chunk per task beyond the ones being filled: a full
    // channel stops the tasks reading their COPY (backpressure).
    let (tx, mut rx) = mpsc::channel(config.pool_size.max(2));
    // Dropping the set (an error, or the session cancelled by a stop)
    // aborts the tasks, and with them their connections.
    let mut workers = JoinSet::new();
    for _ in 0..workers_wanted {
        workers.spawn(worker(
            pool.clone(),
            snapshot.clone(),
            tables.clone(),
            queue.clone(),
            tx.clone(),
        ));
    }
    drop(tx);
    let mut parser = CopyRow::default();
    loop {
        tokio::select! {
            biased;
            e = handler.failed() => return Err(Error::from_handler(e)),
            // A task ended; the first error ends the snapshot.
            Some(joined) = workers.join_next() => match joined {
                Ok(result) => result?,
                Err(e) => return Err(Error::Protocol(format!("snapshot copy task failed: {e}"))),
            },
            piece = rx.recv() => match piece {
                Some(Piece::Rows { table, bytes, rows }) => {
                    progress.rows += rows;
                    let delivered = deliver(&tables[table], &bytes, point, &mut parser, handler);
                    ticking(progress, delivered).await?;
                }
                Some(Piece::Done { table, rows }) => {
                    copied[table] += rows;
                    left[table] -= 1;
                    if left[table] == 0 {
                        progress.tables_done += 1;
                        let rel = &tables[table].relation;
                        debug!("snapshot: copied {}.{} ({} rows)", rel.schema, rel.name, copied[table]);
                    }
                }
                None => break,
            },
            _ = sleep_until(progress.due) => progress.tick(),
        }
    }
    while let Some(joined) = workers.join_next().await {
        joined.map_err(|e| Error::Protocol(format!("snapshot copy task failed: {e}")))??;
    }
    // The snapshot is a unit of its own: the handler completes it like a
    // transaction, then hands on what it buffered.
    let mut end = Event::new(Op::Commit);
    end.snapshot_lsn = Some(point);
    let completions = [
        ticking(progress, handler.commit(&end))
            .await
            .map_err(Error::from_handler)?,
        ticking(progress, handler.flush())
            .await
            .map_err(Error::from_handler)?,
    ];
    for work in completions.into_iter().filter_map(Completion::into_future) {
        ticking(progress, work).await.map_err(Error::from_handler)?;
    }
    Ok(())
}

/// Hands whole COPY rows of `table` to the handler as `read` events.
async fn deliver<H: Handler>(
    table: &Table,
    rows: &[u8],
    point: Lsn,
    parser: &mut CopyRow,
    handler: &mut H,
) -> Result<()> {
    let rel = &table.relation;
    let rows = rows.strip_suffix(b"\n").unwrap_or(rows);
    for line in rows.split(|&b| b == b'\n') {
        let (data, datums) = parser.parse(line, rel.columns.len()).map_err(|e| {
            Error::Protocol(format!("copying table {}.{}: {e}", rel.schema, rel.name))
        })?;
        let mut ev = Event::new(Op::Read);
        ev.relation = Some(rel);
        ev.snapshot_lsn = Some(point);
        ev.new = Some(Row {
            relation: rel,
            data,
            datums,
            key_only: false,
        });
        handler.event(&ev).await.map_err(Error::from_handler)?;
    }
    Ok(())
}

/// Starts a transaction on the exported snapshot.
async fn begin(conn: &Pooled, snapshot: &str) -> Result<()> {
    conn.client()
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT {}",
            quote_literal(snapshot)
        ))
        .await
        .map_err(|e| pg_error(e, "importing the slot's snapshot".into()))
}

/// One copy task: its own connection and transaction on the snapshot,
/// tables from the shared queue until it is empty.
async fn worker(
    pool: Pool,
    snapshot: Arc<str>,
    tables: Arc<[Table]>,
    queue: Arc<Mutex<VecDeque<Part>>>,
    tx: mpsc::Sender<Piece>,
) -> Result<()> {
    let next = || queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
    let Some(mut part) = next() else {
        return Ok(());
    };
    let conn = pool::get(&pool).await?;
    begin(&conn, &snapshot).await?;
    loop {
        copy_part(&conn, &tables, &part, &tx).await?;
        match next() {
            Some(p) => part = p,
            None => break,
        }
    }
    conn.client()
        .batch_execute("COMMIT")
        .await
        .map_err(|e| pg_error(e, "ending the snapshot".into()))
}

/// A table, or a range of its blocks, for one copy task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Part {
    table: usize,
    /// Blocks `start..end` (`end` open for the last range), or the whole
    /// table.
    blocks: Option<(u64, Option<u64>)>,
}

/// The tables to copy, and the parts the copy tasks take them in.
struct Plan {
    tables: Arc<[Table]>,
    parts: VecDeque<Part>,
}

impl Plan {
    fn new(tables: Vec<Table>, pool_size: usize, server_version: i32) -> Plan {
        let parts = parts(&tables, pool_size, server_version);
        Plan {
            tables: tables.into(),
            parts,
        }
    }
}

/// Blocks below which a table is copied whole.
const SPLIT_BLOCKS: u64 = 1024;

/// The work of the copy tasks: each table whole, but a big one split into
/// ctid ranges (TID range scans, 14+) so that the pool copies it in
/// parallel, about two ranges per connection. The last range is open: the
/// size is read at listing time.
fn parts(tables: &[Table], pool_size: usize, server_version: i32) -> VecDeque<Part> {
    let mut parts = VecDeque::new();
    for (table, t) in tables.iter().enumerate() {
        let blocks = t.blocks.unwrap_or(0);
        if server_version < 140000 || pool_size < 2 || blocks < SPLIT_BLOCKS {
            parts.push_back(Part {
                table,
                blocks: None,
            });
            continue;
        }
        let n = (pool_size as u64 * 2).min(blocks / (SPLIT_BLOCKS / 2));
        let step = blocks.div_ceil(n);
        let mut start = 0;
        while start < blocks {
            let end = start + step;
            parts.push_back(Part {
                table,
                blocks: Some((start, (end < blocks).then_some(end))),
            });
            start = end;
        }
    }
    parts
}

/// Copies one part of a table, sending its rows in chunks of whole rows.
async fn copy_part(
    conn: &Pooled,
    tables: &[Table],
    part: &Part,
    tx: &mpsc::Sender<Piece>,
) -> Result<()> {
    let table = part.table;
    let t = &tables[table];
    let rel = &t.relation;
    let context = || format!("copying table {}.{}", rel.schema, rel.name);
    let ranged;
    let sql = match part.blocks {
        None => t.copy_sql.as_str(),
        Some((start, end)) => {
            let mut conditions: Vec<String> = t.filter.iter().cloned().collect();
            conditions.push(format!("ctid >= '({start},0)'::tid"));
            if let Some(end) = end {
                conditions.push(format!("ctid < '({end},0)'::tid"));
            }
            ranged = format!(
                "COPY (SELECT {} FROM {} WHERE {}) TO STDOUT",
                t.select,
                t.from,
                conditions.join(" AND ")
            );
            &ranged
        }
    };
    let stream = conn
        .client()
        .copy_out(sql)
        .await
        .map_err(|e| pg_error(e, context()))?;
    let mut stream = pin!(stream);
    let mut out = Vec::with_capacity(CHUNK_BYTES * 5 / 4);
    let (mut rows, mut total) = (0u64, 0u64);
    while let Some(data) = stream.next().await {
        let data = data.map_err(|e| pg_error(e, context()))?;
        out.extend_from_slice(&data);
        rows += data.iter().filter(|&&b| b == b'\n').count() as u64;
        // The server sends a row per message, but only whole rows go out.
        if out.len() >= CHUNK_BYTES && out.ends_with(b"\n") {
            total += rows;
            let bytes = mem::replace(&mut out, Vec::with_capacity(CHUNK_BYTES * 5 / 4));
            tx.send(Piece::Rows {
                table,
                bytes,
                rows: mem::take(&mut rows),
            })
            .await
            .map_err(|_| abandoned())?;
        }
    }
    if !out.is_empty() && !out.ends_with(b"\n") {
        return Err(Error::Protocol(format!(
            "{}: the last row has no end",
            context()
        )));
    }
    total += rows;
    if !out.is_empty() {
        tx.send(Piece::Rows {
            table,
            bytes: out,
            rows,
        })
        .await
        .map_err(|_| abandoned())?;
    }
    tx.send(Piece::Done { table, rows: total })
        .await
        .map_err(|_| abandoned())
}

fn abandoned() -> Error {
    Error::connection("snapshot", io::Error::other("the snapshot was abandoned"))
}

async fn drop_marker_sql(catalog: &CatalogConn, marker: &str) -> Result<()> {
    match catalog
        .client()
        .execute("SELECT pg_drop_replication_slot($1)", &[&marker])
        .await
    {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_db_error()
                .is_some_and(|d| *d.code() == SqlState::UNDEFINED_OBJECT) =>
        {
            Ok(())
        }
        Err(e) => Err(pg_error(e, format!("dropping marker slot {marker}"))),
    }
}

/// Adds what to do when the marker cannot be created.
fn explain_marker(e: Error, marker: &str) -> Error {
    match &e {
        Error::Server { source, .. } if source.code == SqlState::CONFIGURATION_LIMIT_EXCEEDED => Error::usage(format!(
            "{e}; --snapshot needs one more replication slot (marker {marker}) while it runs: \
             raise max_replication_slots or drop an unused slot"
        )),
        Error::Server { source, .. } if source.code == SqlState::DUPLICATE_OBJECT => Error::usage(format!(
            "{e}; another pgstream may be taking a snapshot for this slot; if not, drop the marker with \
             SELECT pg_drop_replication_slot('{marker}')"
        )),
        _ => e,
    }
}

/// Awaits `work`, keeping the progress lines and systemd's start timeout
/// going meanwhile (a slow handler or a slot waiting for old transactions
/// must not get the service killed).
async fn ticking<T>(progress: &mut Progress<'_>, work: impl Future<Output = T>) -> T {
    let mut work = pin!(work);
    loop {
        tokio::select! {
            biased;
            done = &mut work => return done,
            _ = sleep_until(progress.due) => progress.tick(),
        }
    }
}

/// Counters for the progress lines, and their systemd notifications.
struct Progress<'n> {
    notifier: &'n Notifier,
    /// When the next progress line (and timeout extension) is due.
    due: Instant,
    /// Whether the tables are known and being copied.
    copying: bool,
    tables: usize,
    tables_done: usize,
    rows: u64,
    /// Sum of the tables' `reltuples`.
    estimate: u64,
    started: Instant,
    last: (Instant, u64),
}

impl<'n> Progress<'n> {
    /// Before the slot exists; extends the start timeout at once.
    fn new(notifier: &'n Notifier) -> Progress<'n> {
        let now = Instant::now();
        notifier.extend("snapshot: creating the slot");
        Progress {
            notifier,
            due: now + PROGRESS_EVERY,
            copying: false,
            tables: 0,
            tables_done: 0,
            rows: 0,
            estimate: 0,
            started: now,
            last: (now, 0),
        }
    }

    /// The copy of `tables` begins; extends the start timeout at once.
    fn copying(&mut self, tables: &[Table]) {
        let now = Instant::now();
        self.copying = true;
        self.tables = tables.len();
        self.estimate = tables.iter().map(|t| t.rows_estimate.max(0.0) as u64).sum();
        (self.started, self.last) = (now, (now, 0));
        let status = self.report();
        self.notifier.extend(&status);
    }

    /// A progress line while copying, and a timeout extension either way.
    fn tick(&mut self) {
        if self.copying {
            let status = self.report();
            info!("{status}");
            self.notifier.extend(&status);
        } else {
            self.notifier.extend("snapshot: creating the slot");
        }
        self.due = Instant::now() + PROGRESS_EVERY;
    }

    /// Progress since the previous line.
    fn report(&mut self) -> String {
        let now = Instant::now();
        let rate = (self.rows - self.last.1) as f64
            / now.duration_since(self.last.0).as_secs_f64().max(1e-3);
        self.last = (now, self.rows);
        let share = match self.estimate {
            0 => String::new(),
            e => format!(
                " (about {:.0}%)",
                (self.rows as f64 * 100.0 / e as f64).min(100.0)
            ),
        };
        format!(
            "snapshot: {}/{} tables, {} rows{share}, {rate:.0} rows/s",
            self.tables_done, self.tables, self.rows
        )
    }

    fn summary(&self, point: Lsn) -> String {
        let secs = self.started.elapsed().as_secs_f64();
        format!(
            "snapshot done: {} tables, {} rows in {secs:.1}s ({:.0} rows/s); streaming from {}",
            self.tables_done,
            self.rows,
            self.rows as f64 / secs.max(1e-3),
            point
        )
    }
}

#[cfg(test)]
mod tests {
    use super::{marker_name, parts, Part, SPLIT_BLOCKS};
    use crate::event::Relation;
    use crate::sql::tables::Table;

    fn table(blocks: u64) -> Table {
        Table {
            relation: Relation {
                schema: "s".into(),
                name: "t".into(),
                columns: vec![],
                key: vec![],
            },
            copy_sql: String::new(),
            select: String::new(),
            from: String::new(),
            filter: None,
            bytes: 0,
            blocks: Some(blocks),
            rows_estimate: 0.0,
        }
    }

    #[test]
    fn big_tables_split_into_contiguous_ranges_ending_open() {
        let tables = [table(10_000), table(10)];
        let p = parts(&tables, 4, 170000);
        let ranges: Vec<_> = p
            .iter()
            .filter(|p| p.table == 0)
            .map(|p| p.blocks.unwrap())
            .collect();
        assert_eq!(ranges.len(), 8);
        assert_eq!(ranges[0].0, 0);
        for w in ranges.windows(2) {
            assert_eq!(w[0].1, Some(w[1].0), "contiguous");
        }
        assert_eq!(ranges.last().unwrap().1, None, "the last range is open");
        assert_eq!(
            p.back(),
            Some(&Part {
                table: 1,
                blocks: None
            })
        );
        // Whole: before 14 (no TID range scans), one connection, small.
        assert!(parts(&tables, 4, 130000).iter().all(|p| p.blocks.is_none()));
        assert!(parts(&tables, 1, 170000).iter().all(|p| p.blocks.is_none()));
        assert_eq!(parts(&[table(SPLIT_BLOCKS)], 4, 170000).len(), 2);
    }

    #[test]
    fn marker_names_fit() {
        assert_eq!(marker_name("orders"), "orders_pgstream_snapshot");
        let long = "a".repeat(63);
        let m = marker_name(&long);
        assert!(m.len() <= 63, "{m}");
        assert!(m.ends_with("_pgstream_snapshot"));
        assert_eq!(m, marker_name(&long), "stable");
        assert_ne!(m, marker_name(&format!("{}b", "a".repeat(62))));
        assert_eq!(marker_name(&"b".repeat(45)).len(), 63);
    }
}
