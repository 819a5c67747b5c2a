//! The pipeline: connect → slot → stream → decode → write → acknowledge,
//! reconnecting with capped backoff when the connection is lost.

use std::mem;
use std::time::Duration;

use futures_util::FutureExt;
use log::{debug, info, warn};
use tokio::sync::watch;
use tokio::time::{sleep, sleep_until, timeout, Instant};

use crate::ack::Ack;
use crate::config::{no_publication, Config, EndLsn, Plugin};
use crate::decode::catalog::{Catalog, CatalogRequest};
use crate::decode::pgoutput::PgOutput;
use crate::decode::wal2json::{self, Wal2Json};
use crate::decode::{Decoded, Decoder, Sink};
use crate::error::{Error, Result};
use crate::event::{fmt_lsn, parse_lsn, Event, Lsn, Op};
use crate::output::write_event;
use crate::replication::commands;
use crate::replication::conn::{CopyEvent, ReplicationConn};
use crate::replication::protocol::{pg_now, standby_status_update, CopyMessage};
use crate::sql::catalog::{CatalogConn, SlotInfo};
use crate::sql::snapshot;
use crate::stats::Stats;
use crate::systemd::Notifier;
use crate::writer::{Chunk, Writer};

/// Session settings pinned on every connection so that values print the
/// same whatever the server's defaults are.
pub const SESSION_SETTINGS: &[(&str, &str)] = &[
    ("DateStyle", "ISO"),
    ("TimeZone", "UTC"),
    ("IntervalStyle", "iso_8601"),
    ("extra_float_digits", "3"),
    ("bytea_output", "hex"),
];

/// A chunk is handed to the writer once this big, even mid-transaction.
const CHUNK_BYTES: usize = 256 * 1024;
/// The longest pause between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long a stop may wait for the writer before giving up on it.
const STOP_GRACE: Duration = Duration::from_millis(1500);
/// How long to wait for a slot that the previous run's walsender may still
/// hold (it notices a dead client within moments).
const SLOT_RELEASE_WAIT: Duration = Duration::from_secs(3);

/// Why a session ends without error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Signal,
    EndLsn,
    MaxChanges,
}

/// State that outlives one connection.
struct RunState {
    ack: Ack,
    catalog: Catalog,
    end_lsn: Option<Lsn>,
    stats: Stats,
    notifier: Notifier,
    /// Set once the first session has read the slot's position.
    started: bool,
}

/// How the caller steers a run: `shutdown` turning true asks for a clean
/// stop; each change of `report` asks for a progress line (SIGUSR1).
pub struct Control {
    pub shutdown: watch::Receiver<bool>,
    pub report: watch::Receiver<()>,
}

impl Control {
    /// Control by a shutdown flag alone.
    pub fn new(shutdown: watch::Receiver<bool>) -> Control {
        // A sender dropped at once: `report` never fires.
        let (_, report) = watch::channel(());
        Control { shutdown, report }
    }
}

/// Runs until a clean stop (Ok), or an error that reconnecting cannot fix.
pub async fn run(config: Config, control: Control) -> Result<()> {
    if config.drop_slot {
        return drop_slot(&config).await;
    }
    let mut writer = Writer::spawn(&config.output).map_err(|e| match &config.output {
        crate::writer::Target::File(p) => Error::usage(format!("cannot open {}: {e}", p.display())),
        crate::writer::Target::Stdout => Error::Output(e),
    })?;
    let mut st = RunState {
        ack: Ack::new(0, status_interval(&config, None)),
        catalog: Catalog::default(),
        end_lsn: match config.end_lsn {
            Some(EndLsn::At(lsn)) => Some(lsn),
            _ => None,
        },
        stats: Stats::default(),
        notifier: Notifier::from_env(&|k| std::env::var(k).ok()),
        started: false,
    };
    let result = reconnect_loop(&config, control, &mut writer, &mut st).await;
    st.notifier.notify("STOPPING=1");
    info!("{}", st.stats.summary());
    result
}

/// Runs sessions, reconnecting with capped backoff after transient errors.
async fn reconnect_loop(config: &Config, control: Control, writer: &mut Writer, st: &mut RunState) -> Result<()> {
    let Control { mut shutdown, mut report } = control;
    let mut backoff = Duration::from_secs(1);
    loop {
        let mut streamed = false;
        let result = session(config, writer, st, &mut shutdown, &mut report, &mut streamed).await;
        match result {
            Ok(()) => return Ok(()),
            Err(e) if e.is_transient() && !config.no_loop && !*shutdown.borrow() => {
                if streamed {
                    backoff = Duration::from_secs(1);
                }
                warn!("{e}; retrying in {}s", backoff.as_secs());
                tokio::select! {
                    _ = sleep(backoff) => {}
                    _ = stop_requested(&mut shutdown) => return Ok(()),
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            Err(e) => return Err(e),
        }
    }
}

async fn drop_slot(config: &Config) -> Result<()> {
    let mut repl = ReplicationConn::connect(&config.conn, SESSION_SETTINGS).await?;
    let dropped = repl.simple_query(&commands::drop_slot(&config.slot)).await.map_err(|e| match e {
        Error::Server { source, .. } if source.code == "42704" => {
            Error::usage(format!("replication slot \"{}\" does not exist", config.slot))
        }
        e => e,
    });
    // With the slot gone (or never there), so is its unfinished snapshot.
    if matches!(&dropped, Ok(_) | Err(Error::Usage(_))) {
        snapshot::drop_marker(&mut repl, &config.slot).await?;
    }
    dropped?;
    info!("dropped slot {}", config.slot);
    let _ = timeout(Duration::from_secs(1), repl.finish()).await;
    Ok(())
}

/// The status interval: the user's, but at most half of the server's
/// `wal_sender_timeout`, so that the server hears from us in time even
/// while output is blocked and its keepalive requests sit unread.
fn status_interval(config: &Config, wal_sender_timeout_ms: Option<u64>) -> Duration {
    let user = if config.status_interval.is_zero() { Duration::from_secs(3600) } else { config.status_interval };
    match wal_sender_timeout_ms {
        Some(ms) if ms > 0 => user.min(Duration::from_millis(ms / 2)),
        _ => user,
    }
}

/// One connection's worth of work.
async fn session(
    config: &Config,
    writer: &mut Writer,
    st: &mut RunState,
    shutdown: &mut watch::Receiver<bool>,
    report: &mut watch::Receiver<()>,
    streamed: &mut bool,
) -> Result<()> {
    // A stop during set-up (a slow connect, a slot wait) ends the run at once.
    let mut stop_watch = shutdown.clone();
    let (repl, catalog, decoder, wal_sender_timeout) = tokio::select! {
        biased;
        _ = stop_requested(&mut stop_watch) => return Ok(()),
        r = start_stream(config, st, writer) => r?,
    };
    *streamed = true;
    st.notifier.notify(&format!("READY=1\nSTATUS=streaming from slot {}", config.slot));
    let mut stream = Stream {
        config,
        repl,
        catalog,
        decoder,
        out: writer.buffer(),
        commit_end: None,
        pending: None,
        stop: None,
        stop_after_stream: None,
        poll_at: None,
        last_heard: Instant::now(),
        wal_sender_timeout,
    };
    let result = stream.run(writer, st, shutdown, report).await;
    stream.close(st, result).await
}

/// How long the server may stay silent before the connection is given up:
/// like PostgreSQL's own `wal_receiver_timeout` (60 s), and never less than
/// twice `wal_sender_timeout`, since a walsender busy decoding a large
/// transaction may only answer at half its timeout.
fn silence_limit(wal_sender_timeout: Duration) -> Duration {
    (wal_sender_timeout * 2).max(Duration::from_secs(60))
}

/// Resolves once a stop has been requested (never, if the sender is gone).
async fn stop_requested(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Checks the server, finds or creates the slot and starts streaming.
async fn start_stream(
    config: &Config,
    st: &mut RunState,
    writer: &mut Writer,
) -> Result<(ReplicationConn, CatalogConn, Box<dyn Decoder>, Duration)> {
    let catalog = CatalogConn::connect(&config.conn).await?;
    let wal_level = catalog.setting("wal_level").await?;
    if wal_level != "logical" {
        return Err(Error::usage(format!(
            "wal_level is \"{wal_level}\"; set wal_level = logical in postgresql.conf and restart the server"
        )));
    }
    let wst: u64 = catalog.setting("wal_sender_timeout").await?.parse().unwrap_or(0);
    // On a reconnect the slot may still be held by the walsender of the
    // lost connection: that clears up by itself, so it is retried.
    let reconnect = st.started;
    let slot = wait_for_slot(config, &catalog, reconnect).await?;
    let plugin = check_slot(config, slot.as_ref())?;
    snapshot::check(config, &catalog, slot.is_some(), reconnect).await?;
    if plugin == Plugin::PgOutput && config.publications.is_empty() {
        return Err(no_publication());
    }
    let missing = catalog.missing_publications(&config.publications).await?;
    if !missing.is_empty() {
        return Err(Error::usage(format!(
            "publication \"{}\" does not exist in database \"{}\"; create it with CREATE PUBLICATION {} FOR ALL TABLES (or FOR TABLE …)",
            missing[0],
            config.conn.dbname,
            commands::quote_ident(&missing[0])
        )));
    }
    let (options, decoder) = match plugin {
        Plugin::PgOutput => pgoutput_options(config, catalog.server_version)?,
        Plugin::Wal2Json => wal2json_options(config, &catalog).await?,
    };

    let mut repl = ReplicationConn::connect(&config.conn, &snapshot::replication_settings(config))
        .await
        .map_err(explain_connect)?;
    repl.simple_query("IDENTIFY_SYSTEM").await?;
    if config.end_lsn == Some(EndLsn::Now) && st.end_lsn.is_none() {
        let now = catalog.wal_insert_lsn().await?;
        st.end_lsn = Some(now);
        debug!("--end-lsn now is {}", fmt_lsn(now));
    }
    if slot.is_none() && reconnect && config.temporary_slot {
        // Recreating it would silently skip what happened in between.
        return Err(Error::Runtime(format!(
            "the temporary slot \"{}\" was dropped with the lost connection; changes since then are not in any slot — run again to start over",
            config.slot
        )));
    }
    let confirmed = match &slot {
        Some(s) => {
            debug!("reusing slot {} (plugin {})", config.slot, plugin.name());
            s.confirmed_flush.as_deref().and_then(parse_lsn).unwrap_or(0)
        }
        None if config.snapshot => {
            let RunState { ack, stats, .. } = &mut *st;
            snapshot::take(config, &catalog, &mut repl, plugin, writer, ack, stats).await?
        }
        None => {
            let rows = repl
                .simple_query(&commands::create_slot(&config.slot, plugin.name(), config.temporary_slot))
                .await?;
            let point = rows.first().and_then(|r| r.get(1).cloned().flatten()).and_then(|s| parse_lsn(&s));
            info!("created slot {} at {}", config.slot, point.map(fmt_lsn).unwrap_or_default());
            point.unwrap_or(0)
        }
    };
    let start = config.start_lsn.filter(|_| !st.started).unwrap_or(0);
    st.started = true;
    st.ack.restart(confirmed.max(start), status_interval(config, Some(wst)));

    repl.start_copy_both(&commands::start_replication(&config.slot, start, &options))
        .await
        .map_err(|e| explain_slot_error(config, e, reconnect))?;
    info!("streaming from slot {} ({})", config.slot, plugin.name());
    Ok((repl, catalog, decoder, Duration::from_millis(wst)))
}

type PluginSetup = (Vec<(&'static str, String)>, Box<dyn Decoder>);

/// pgoutput's START_REPLICATION options, for the negotiated protocol.
fn pgoutput_options(config: &Config, server_version: i32) -> Result<PluginSetup> {
    let proto = proto_version(config, server_version)?;
    if config.include_messages && server_version < 140000 {
        return Err(Error::usage("--include-messages needs PostgreSQL 14 or later"));
    }
    debug!("pgoutput protocol version {proto}");
    let mut options = vec![
        ("proto_version", proto.to_string()),
        ("publication_names", commands::publication_names(&config.publications)),
    ];
    if config.include_messages {
        options.push(("messages", "true".into()));
    }
    if config.streaming {
        if proto < 2 {
            return Err(Error::usage(
                "--streaming needs pgoutput protocol 2 or later (PostgreSQL 14+)",
            ));
        }
        options.push(("streaming", "on".into()));
    }
    if let Some(origin) = &config.origin {
        if server_version < 160000 {
            return Err(Error::usage("--origin needs PostgreSQL 16 or later"));
        }
        options.push(("origin", origin.clone()));
    }
    Ok((options, Box::new(PgOutput::new())))
}

/// wal2json's options. `--publication` becomes `add-tables` with the
/// publications' tables as they are now (resolved again on reconnect) —
/// unless one is FOR ALL TABLES, which needs no list (and a list by name
/// would miss tables created or renamed later). `--table`/`--exclude-table`
/// are pushed down as far as wal2json's table lists can say them (the filter
/// still applies to what arrives).
async fn wal2json_options(config: &Config, catalog: &CatalogConn) -> Result<PluginSetup> {
    if config.proto_version.is_some() {
        return Err(Error::usage("--proto-version applies to pgoutput slots only"));
    }
    if config.streaming {
        return Err(Error::usage("--streaming needs a pgoutput slot: wal2json cannot stream in-progress transactions"));
    }
    if config.origin.is_some() {
        return Err(Error::usage("--origin applies to pgoutput slots only"));
    }
    let mut options: Vec<(&'static str, String)> =
        wal2json::OPTIONS.iter().map(|&(k, v)| (k, v.to_string())).collect();
    let list = |tables: &[(Option<&str>, Option<&str>)]| {
        let part = |p: Option<&str>| p.map_or_else(|| "*".to_string(), wal2json_escape);
        tables.iter().map(|&(s, t)| format!("{}.{}", part(s), part(t))).collect::<Vec<_>>().join(",")
    };
    if !config.publications.is_empty() && !catalog.any_all_tables(&config.publications).await? {
        // The published tables that --table/--exclude-table let through.
        let tables = catalog.publication_tables(&config.publications).await?;
        let tables: Vec<_> = tables
            .iter()
            .filter(|(s, t)| config.tables.matches(s, t))
            .map(|(s, t)| (Some(s.as_str()), Some(t.as_str())))
            .collect();
        if tables.is_empty() {
            // No table is published (or let through): let none through.
            options.push(("filter-tables", "*.*".into()));
        } else {
            options.push(("add-tables", list(&tables)));
        }
    } else {
        let (add, exclude) = config.tables.wal2json_tables();
        if let Some(add) = add {
            options.push(("add-tables", list(&add)));
        }
        if !exclude.is_empty() {
            options.push(("filter-tables", list(&exclude)));
        }
    }
    Ok((options, Box::new(Wal2Json::new(config.include_messages))))
}

/// wal2json's table-list escaping: a backslash before the characters its
/// parser treats specially.
fn wal2json_escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_whitespace() || c == '\x0b' || matches!(c, '\'' | ',' | '.' | '*' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Reads the slot, waiting briefly for a previous run's walsender to let go.
async fn wait_for_slot(config: &Config, catalog: &CatalogConn, reconnect: bool) -> Result<Option<SlotInfo>> {
    let deadline = Instant::now() + SLOT_RELEASE_WAIT;
    loop {
        let slot = catalog.slot(&config.slot).await?;
        match &slot {
            Some(SlotInfo { active_pid: Some(pid), .. }) => {
                if Instant::now() >= deadline {
                    return Err(slot_in_use(config, &pid.to_string(), reconnect));
                }
                sleep(Duration::from_millis(50)).await;
            }
            _ => return Ok(slot),
        }
    }
}

fn slot_in_use(config: &Config, pid: &str, reconnect: bool) -> Error {
    if reconnect {
        return Error::connection(
            format!("replication slot \"{}\" is still active for PID {pid}", config.slot),
            std::io::Error::other("waiting for the previous connection's walsender to exit"),
        );
    }
    Error::usage(format!(
        "replication slot \"{}\" is active for PID {pid}; stop the other consumer or use another slot",
        config.slot
    ))
}

/// The slot's plugin, after checking that the slot can be used as asked.
fn check_slot(config: &Config, slot: Option<&SlotInfo>) -> Result<Plugin> {
    let Some(slot) = slot else {
        if !config.create_slot {
            return Err(Error::usage(format!(
                "replication slot \"{}\" does not exist; run without --no-create-slot to create it",
                config.slot
            )));
        }
        return Ok(config.plugin.unwrap_or(Plugin::PgOutput));
    };
    let name = &config.slot;
    if !slot.logical {
        return Err(Error::usage(format!("replication slot \"{name}\" is a physical slot; use a logical slot")));
    }
    if slot.database.as_deref() != Some(config.conn.dbname.as_str()) {
        return Err(Error::usage(format!(
            "replication slot \"{name}\" belongs to database \"{}\", not \"{}\"; connect to that database with -d or use another slot",
            slot.database.as_deref().unwrap_or("?"),
            config.conn.dbname
        )));
    }
    if slot.wal_status.as_deref() == Some("lost") {
        return Err(Error::usage(format!(
            "replication slot \"{name}\" has been invalidated (wal_status = lost); drop it with --drop-slot and create it again"
        )));
    }
    let server_plugin = slot.plugin.as_deref().unwrap_or("");
    let plugin = Plugin::from_name(server_plugin).ok_or_else(|| {
        Error::usage(format!(
            "replication slot \"{name}\" uses plugin {server_plugin}, which pgstream cannot decode; use a pgoutput or wal2json slot"
        ))
    })?;
    if let Some(wanted) = config.plugin {
        if wanted != plugin {
            return Err(Error::usage(format!(
                "replication slot \"{name}\" uses plugin {}, not {}; drop --plugin or use another slot",
                plugin.name(),
                wanted.name()
            )));
        }
    }
    Ok(plugin)
}

/// The pgoutput protocol version to ask for.
fn proto_version(config: &Config, server: i32) -> Result<u32> {
    let max = match server {
        v if v >= 160000 => 4,
        v if v >= 150000 => 3,
        v if v >= 140000 => 2,
        _ => 1,
    };
    match config.proto_version {
        Some(v) if v > max => Err(Error::usage(format!(
            "--proto-version {v} is not supported by this server (PostgreSQL {}); use {max} or lower",
            server / 10000
        ))),
        Some(v) => Ok(v),
        None => Ok(max),
    }
}

/// Adds what to do to the connection errors only the operator can fix.
fn explain_connect(e: Error) -> Error {
    match &e {
        Error::Server { source, .. } if source.code == "42501" => Error::usage(format!(
            "{e}; grant it with ALTER ROLE … REPLICATION (and allow replication connections in pg_hba.conf)"
        )),
        _ => e,
    }
}

fn explain_slot_error(config: &Config, e: Error, reconnect: bool) -> Error {
    match &e {
        Error::Server { source, .. } if source.code == "55006" => {
            let pid = source.message.rsplit(' ').next().unwrap_or("?").to_string();
            slot_in_use(config, &pid, reconnect)
        }
        _ => e,
    }
}

/// The streaming loop of one session.
struct Stream<'c> {
    config: &'c Config,
    repl: ReplicationConn,
    catalog: CatalogConn,
    decoder: Box<dyn Decoder>,
    /// Lines not yet handed to the writer.
    out: Vec<u8>,
    /// End of the last transaction completed in `out`.
    commit_end: Option<Lsn>,
    /// A chunk the writer's full queue has not taken yet.
    pending: Option<Chunk>,
    stop: Option<Stop>,
    stop_after_stream: Option<u32>,
    /// With --end-lsn: when to ask the server for its position again.
    poll_at: Option<Instant>,
    /// When the server was last heard from: a connection silent for too
    /// long (dead without a FIN or RST) is given up and reconnected.
    last_heard: Instant,
    wal_sender_timeout: Duration,
}

impl Stream<'_> {
    async fn run(
        &mut self,
        writer: &mut Writer,
        st: &mut RunState,
        shutdown: &mut watch::Receiver<bool>,
        report: &mut watch::Receiver<()>,
    ) -> Result<()> {
        let stats_every = self.config.stats_interval;
        let mut stats_at = stats_every.map(|d| Instant::now() + d);
        let mut watchdog_at = st.notifier.watchdog.map(|d| Instant::now() + d);
        self.send_status(st, st.end_lsn.is_some()).await?;
        let mut stop_deadline = None;
        loop {
            // While the server has more ready, keep filling the buffer: a
            // chunk goes to the writer when it is big, when we stop, or when
            // the stream goes idle (nothing more to read right now).
            if self.pending.is_none() && self.stop.is_none() && !self.out.is_empty() && self.out.len() < CHUNK_BYTES {
                if let Some(event) = self.repl.recv().now_or_never() {
                    self.on_event(event?, st).await?;
                    continue;
                }
            }
            self.hand_over(writer, st);
            if self.pending.is_some() {
                // Not reading: the server's silence means nothing now.
                self.last_heard = Instant::now();
            }
            if self.stop.is_some() && self.pending.is_none() && st.ack.writer_idle() {
                return Ok(());
            }
            if self.stop.is_some() && stop_deadline.is_none() {
                stop_deadline = Some(Instant::now() + STOP_GRACE);
            }
            let status_at = st.ack.next_due(Instant::now());
            let far = Instant::now() + Duration::from_secs(3600);
            tokio::select! {
                biased;
                // PRIORITY 1: a stop request: stop reading, flush, acknowledge.
                _ = stop_requested(shutdown), if self.stop.is_none() => {
                    info!("stopping");
                    st.notifier.notify("STOPPING=1");
                    self.stop = Some(Stop::Signal);
                }
                // PRIORITY 2: the writer flushed: more may be acknowledged and
                // its queue has room again.
                changed = writer.progress().changed() => {
                    let p = *writer.progress().borrow_and_update();
                    if changed.is_err() || p.failed.is_some() {
                        st.ack.flushed(p.seq, p.commit_end);
                        let e = writer.take_error().unwrap_or_else(|| std::io::ErrorKind::BrokenPipe.into());
                        return Err(Error::Output(e));
                    }
                    st.ack.flushed(p.seq, p.commit_end);
                    st.stats.bytes = p.bytes;
                    st.stats.written = p.commit_end.unwrap_or(st.stats.written);
                }
                // PRIORITY 3: a periodic status update (also keeps the server
                // from timing us out while output is blocked). After a quiet
                // interval it asks for a reply, proving the connection alive.
                _ = sleep_until(status_at) => {
                    let quiet = self.last_heard.elapsed() >= st.ack.interval();
                    self.send_status(st, quiet).await?;
                }
                // A server silent through several replies asked for is gone.
                _ = sleep_until(self.last_heard + silence_limit(self.wal_sender_timeout)), if self.pending.is_none() && self.stop.is_none() => {
                    return Err(Error::connection(
                        "connection to server lost",
                        std::io::Error::new(std::io::ErrorKind::TimedOut, format!(
                            "no message from the server for {}s",
                            silence_limit(self.wal_sender_timeout).as_secs()
                        )),
                    ));
                }
                // PRIORITY 4: ask the server where it is (--end-lsn).
                _ = sleep_until(self.poll_at.unwrap_or(far)), if self.poll_at.is_some() => {
                    self.poll_at = None;
                    self.send_status(st, true).await?;
                }
                // PRIORITY 5: progress reports and the systemd watchdog.
                _ = report.changed() => info!("{}", st.stats.report()),
                _ = sleep_until(stats_at.unwrap_or(far)), if stats_at.is_some() => {
                    info!("{}", st.stats.report());
                    stats_at = stats_every.map(|d| Instant::now() + d);
                }
                _ = sleep_until(watchdog_at.unwrap_or(far)), if watchdog_at.is_some() => {
                    st.notifier.notify("WATCHDOG=1");
                    watchdog_at = st.notifier.watchdog.map(|d| Instant::now() + d);
                }
                // PRIORITY 6: server data, unless output is backed up or we stop.
                event = self.repl.recv(), if self.pending.is_none() && self.stop.is_none() => {
                    self.on_event(event?, st).await?;
                }
                // A writer that cannot finish in time is left behind.
                _ = sleep_until(stop_deadline.unwrap_or(far)), if stop_deadline.is_some() => {
                    warn!("output did not drain in time; acknowledging what was written");
                    return Ok(());
                }
            }
        }
    }

    /// Cuts what is buffered into a chunk and offers it to the writer. A
    /// commit whose lines went out earlier travels alone, in order, so its
    /// end is acknowledged only after them.
    fn hand_over(&mut self, writer: &Writer, st: &mut RunState) {
        if self.pending.is_none() && (!self.out.is_empty() || self.commit_end.is_some()) {
            let bytes = mem::replace(&mut self.out, writer.buffer());
            self.pending = Some(Chunk { seq: st.ack.handed(), bytes, commit_end: self.commit_end.take() });
        }
        if let Some(chunk) = self.pending.take() {
            self.pending = writer.try_send(chunk).err();
        }
    }

    async fn on_event(&mut self, event: CopyEvent, st: &mut RunState) -> Result<()> {
        self.last_heard = Instant::now();
        match event {
            CopyEvent::Data(bytes) => self.on_copy_data(bytes, st).await,
            CopyEvent::Done => Err(Error::connection(
                "replication stream ended by the server",
                std::io::ErrorKind::ConnectionAborted.into(),
            )),
        }
    }

    async fn on_copy_data(&mut self, bytes: bytes::Bytes, st: &mut RunState) -> Result<()> {
        match CopyMessage::parse(bytes).map_err(|e| Error::Protocol(e.to_string()))? {
            CopyMessage::Keepalive { wal_end, reply } => {
                st.ack.keepalive(wal_end, !self.out.is_empty() || self.commit_end.is_some());
                st.stats.server = st.stats.server.max(wal_end);
                if let Some(end) = st.end_lsn {
                    if !st.ack.in_txn() {
                        if wal_end >= end {
                            debug!("reached --end-lsn {} (server at {})", fmt_lsn(end), fmt_lsn(wal_end));
                            self.stop = Some(Stop::EndLsn);
                        } else {
                            self.poll_at = Some(Instant::now() + Duration::from_millis(100));
                        }
                    }
                }
                if reply {
                    self.send_status(st, false).await?;
                }
            }
            CopyMessage::XLogData { wal_start, wal_end, data } => loop {
                st.stats.server = st.stats.server.max(wal_end);
                let RunState { ack, catalog, end_lsn, stats, .. } = &mut *st;
                let mut sink = Emitter {
                    config: self.config,
                    out: &mut self.out,
                    commit_end: &mut self.commit_end,
                    stop: &mut self.stop,
                    stop_after_stream: &mut self.stop_after_stream,
                    ack,
                    stats,
                    end_lsn: *end_lsn,
                };
                match self.decoder.decode(wal_start, &data, catalog, &mut sink)? {
                    Decoded::Done => break,
                    Decoded::Need(request) => {
                        if let CatalogRequest::PrimaryKey(relid) = request {
                            st.catalog.forget_primary_key(relid);
                        }
                        self.catalog.fetch(&request, &mut st.catalog).await?;
                    }
                }
            },
        }
        Ok(())
    }

    async fn send_status(&mut self, st: &mut RunState, reply: bool) -> Result<()> {
        let lsn = st.ack.report(Instant::now());
        debug!("status update: flushed {}", fmt_lsn(lsn));
        if lsn != st.stats.acked {
            st.stats.acked = lsn;
            st.notifier.notify(&format!("STATUS=streaming from slot {}, acknowledged {}", self.config.slot, fmt_lsn(lsn)));
        }
        self.repl.send(|buf| standby_status_update(lsn, pg_now(), reply, buf)).await
    }

    /// Ends the session: a final status update acknowledging what was
    /// written, then CopyDone. `result` is the loop's outcome.
    async fn close(self, st: &mut RunState, result: Result<()>) -> Result<()> {
        let Stream { mut repl, .. } = self;
        if matches!(&result, Ok(()) | Err(Error::Output(_))) {
            let lsn = st.ack.report(Instant::now());
            st.stats.acked = lsn;
            debug!("final status update: flushed {}", fmt_lsn(lsn));
            repl.send(|buf| standby_status_update(lsn, pg_now(), false, buf)).await?;
            match timeout(Duration::from_millis(500), repl.finish()).await {
                Ok(Err(e)) => debug!("ending the stream: {e}"),
                Err(_) => debug!("the server did not end the stream in time"),
                Ok(Ok(())) => {}
            }
        }
        result
    }
}

/// Where decoded events go: the stop rules, the change count, and the
/// JSON line for each event that is printed.
struct Emitter<'a> {
    config: &'a Config,
    out: &'a mut Vec<u8>,
    commit_end: &'a mut Option<Lsn>,
    stop: &'a mut Option<Stop>,
    /// With --max-changes: the streamed transaction that holds the last
    /// change, whose stream_commit/abort ends the run.
    stop_after_stream: &'a mut Option<u32>,
    ack: &'a mut Ack,
    stats: &'a mut Stats,
    end_lsn: Option<Lsn>,
}

impl Emitter<'_> {
    fn max_reached(&self) -> bool {
        self.config.max_changes.is_some_and(|max| self.stats.changes >= max)
    }

    /// A transaction (plain or streamed) ended at `end`.
    fn finished(&mut self, end: Option<Lsn>, streamed_xid: Option<u32>) {
        *self.commit_end = end.or(*self.commit_end);
        self.stats.transactions += 1;
        let holds_last = match *self.stop_after_stream {
            Some(xid) => streamed_xid == Some(xid),
            None => streamed_xid.is_none(),
        };
        if self.max_reached() && holds_last {
            *self.stop = Some(Stop::MaxChanges);
        } else if let (Some(limit), Some(end)) = (self.end_lsn, end) {
            // Any later transaction commits after this one ends.
            if end > limit {
                *self.stop = Some(Stop::EndLsn);
            }
        }
    }
}

impl Sink for Emitter<'_> {
    fn event(&mut self, ev: &Event<'_>) -> Result<()> {
        if self.stop.is_some() {
            // Decided to stop mid-message (a Begin past --end-lsn): the rest
            // comes again next run.
            return Ok(());
        }
        if let Some(rel) = ev.relation {
            if !self.config.tables.matches(&rel.schema, &rel.name) {
                return Ok(());
            }
        }
        let past_end = |lsn: Option<Lsn>| matches!((self.end_lsn, lsn), (Some(end), Some(l)) if l > end);
        match ev.op {
            Op::Begin => {
                if past_end(ev.commit_lsn) {
                    *self.stop = Some(Stop::EndLsn);
                    return Ok(());
                }
                self.ack.begin();
                if self.config.include_tx {
                    write_event(self.out, ev);
                }
            }
            Op::Commit => {
                if self.config.include_tx {
                    write_event(self.out, ev);
                }
                self.ack.end();
                self.finished(ev.end_lsn, None);
            }
            Op::StreamCommit => {
                if past_end(ev.commit_lsn) {
                    *self.stop = Some(Stop::EndLsn);
                    return Ok(());
                }
                write_event(self.out, ev);
                if let Some(xid) = ev.xid {
                    self.ack.stream_closed(xid);
                }
                self.finished(ev.end_lsn, ev.xid);
            }
            Op::Relation => {
                if self.config.include_schema {
                    write_event(self.out, ev);
                }
            }
            Op::StreamAbort => {
                write_event(self.out, ev);
                if let (Some(xid), None) = (ev.xid, ev.subxid) {
                    self.ack.stream_closed(xid);
                    if *self.stop_after_stream == Some(xid) && self.max_reached() {
                        *self.stop = Some(Stop::MaxChanges);
                    }
                }
            }
            op => {
                if let (true, Some(xid), Some(lsn)) = (ev.streamed, ev.xid, ev.lsn) {
                    self.ack.stream_opened(xid, lsn);
                }
                write_event(self.out, ev);
                if op.is_change() {
                    self.stats.changes += 1;
                    if self.config.max_changes == Some(self.stats.changes) {
                        if ev.streamed {
                            *self.stop_after_stream = ev.xid;
                        } else if ev.message.is_some_and(|m| !m.transactional) {
                            // A non-transactional message is a unit of its own.
                            *self.stop = Some(Stop::MaxChanges);
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
