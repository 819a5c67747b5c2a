//! The pipeline: connect → slot → stream → decode → write → acknowledge,
//! reconnecting with capped backoff when the connection is lost.
//!
//! [`setup`] checks the server and the slot and starts streaming;
//! [`stream`] is the loop of one connection; [`emit`] decides what each
//! decoded event becomes (lines, stop rules, counts).

mod emit;
mod setup;
mod stream;

use setup::start_stream;
use stream::Stream;

use std::time::Duration;

use log::{info, warn};
use tokio::sync::watch;
use tokio::time::{sleep, timeout, Instant};

use crate::ack::Ack;
use crate::config::{Config, EndLsn};
use crate::decode::catalog::Catalog;
use crate::error::{Error, Result};
use crate::event::Lsn;
use crate::replication::commands;
use crate::replication::conn::ReplicationConn;
use crate::sql::snapshot;
use crate::stats::Stats;
use crate::systemd::Notifier;
use crate::writer::Writer;

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
const STOP_GRACE: Duration = Duration::from_millis(1200);
/// After that, how long the chunk being written may take to finish.
const WRITE_GRACE: Duration = Duration::from_millis(200);
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
    if st.started {
        info!("{}", st.stats.summary());
    }
    result
}

/// Runs sessions, reconnecting with capped backoff after transient errors.
async fn reconnect_loop(
    config: &Config,
    control: Control,
    writer: &mut Writer,
    st: &mut RunState,
) -> Result<()> {
    let Control {
        mut shutdown,
        mut report,
    } = control;
    let mut backoff = Duration::from_secs(1);
    loop {
        let mut streamed = false;
        let result = session(
            config,
            writer,
            st,
            &mut shutdown,
            &mut report,
            &mut streamed,
        )
        .await;
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
    let dropped = repl
        .simple_query(&commands::drop_slot(&config.slot))
        .await
        .map_err(|e| match e {
            Error::Server { source, .. } if source.code == "42704" => Error::usage(format!(
                "replication slot \"{}\" does not exist",
                config.slot
            )),
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
    let user = if config.status_interval.is_zero() {
        Duration::from_secs(3600)
    } else {
        config.status_interval
    };
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
    st.notifier.notify(&format!(
        "READY=1\nSTATUS=streaming from slot {}",
        config.slot
    ));
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
