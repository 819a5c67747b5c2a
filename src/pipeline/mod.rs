//! The pipeline: connect → slot → stream → decode → write → acknowledge,
//! reconnecting with capped backoff when the connection is lost.
//!
//! [`setup`] checks the server and the slot and starts streaming;
//! [`stream`] is the loop of one connection, [`link`] what it does besides
//! reading; [`emit`] decides which events reach the handler (filters, stop
//! rules, counts); [`completions`] holds the handler's pending completions.

mod backfill;
mod completions;
mod emit;
mod link;
mod setup;
mod snapshot;
mod stream;

use completions::Completions;
use link::Link;
use setup::start_stream;
use stream::Stream;

use std::time::Duration;

use log::{info, warn};
use tokio::sync::watch;
use tokio::time::{sleep, timeout, Instant};
use tokio_postgres::error::SqlState;

use crate::ack::Ack;
use crate::config::{Config, EndLsn};
use crate::decode::catalog::Catalog;
use crate::error::{Error, Result};
use crate::event::Lsn;
use crate::metrics::{Metered, Metrics, State};
use crate::replication::commands;
use crate::replication::conn::ReplicationConn;
use crate::sink::Handler;
use crate::stats::Stats;
use crate::systemd::Notifier;

/// Session settings pinned on every connection so that values print the
/// same whatever the server's defaults are.
pub(crate) const SESSION_SETTINGS: &[(&str, &str)] = &[
    ("DateStyle", "ISO"),
    ("TimeZone", "UTC"),
    ("IntervalStyle", "iso_8601"),
    ("extra_float_digits", "3"),
    ("bytea_output", "hex"),
];

/// Completions that may be pending before pgstream stops reading from the
/// server (backpressure on a handler that completes slowly).
const MAX_PENDING: usize = 64;
/// The longest pause between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long a stop may wait for the handler's completions before giving
/// up on them.
const STOP_GRACE: Duration = Duration::from_millis(1200);
/// After that, how long completions already under way may take.
const CANCEL_GRACE: Duration = Duration::from_millis(200);
/// How long to wait for a slot that the previous run's walsender may still
/// hold (it notices a dead client within moments).
const SLOT_RELEASE_WAIT: Duration = Duration::from_secs(3);

/// The log target of where the stream comes from (the server chosen from a
/// host list, a slot's creation), shown at the binary's default level.
pub const SLOT_LOG: &str = "pgstream::slot";

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
    /// The handler's completions: a reconnect does not forget them.
    completions: Completions,
    end_lsn: Option<Lsn>,
    stats: Stats,
    notifier: Notifier,
    metrics: Metrics,
    /// Set once the first session has read the slot's position.
    started: bool,
    /// `--backfill`'s progress.
    backfill: Option<backfill::Backfill>,
}

/// How the caller steers and watches a run: `shutdown` turning true asks
/// for a clean stop (what SIGINT and SIGTERM do to the binary); each change
/// of `report` asks for a progress line in the log (SIGUSR1); `metrics`,
/// if given, is kept up to date (`--metrics-addr`).
///
/// ```
/// let (stop, shutdown) = tokio::sync::watch::channel(false);
/// let (report, reports) = tokio::sync::watch::channel(());
/// let metrics = pgstream::Metrics::new();
/// let control = pgstream::Control { shutdown, report: reports, metrics: Some(metrics.clone()) };
/// // Later: report.send(()) logs a progress line, stop.send(true) stops.
/// # drop((stop, report, control));
/// ```
#[derive(Debug)]
pub struct Control {
    /// `true` asks for a clean stop.
    pub shutdown: watch::Receiver<bool>,
    /// Each change logs a progress line.
    pub report: watch::Receiver<()>,
    /// Updated as the run goes; serve it with [`Metrics::serve`].
    pub metrics: Option<Metrics>,
}

impl Control {
    /// Control by a shutdown flag alone.
    pub fn new(shutdown: watch::Receiver<bool>) -> Control {
        // A sender dropped at once: `report` never fires.
        let (_, report) = watch::channel(());
        Control {
            shutdown,
            report,
            metrics: None,
        }
    }
}

impl From<watch::Receiver<bool>> for Control {
    fn from(shutdown: watch::Receiver<bool>) -> Control {
        Control::new(shutdown)
    }
}

/// Streams the slot into `handler` until a clean stop (`Ok`: a stop
/// request, `end_lsn` or `max_changes` reached) or an error that
/// reconnecting cannot fix. Lost connections are retried with backoff
/// (1 s doubling to 30 s) unless [`Config::no_loop`] is set.
///
/// On a stop request, pgstream stops reading, flushes the handler, waits
/// for its completions (about a second at most), acknowledges what
/// completed and ends the replication connection.
///
/// The future is `Send` when the handler is, so it can run on a task of its
/// own:
///
/// ```no_run
/// # fn spawn(config: pgstream::Config) -> std::io::Result<()> {
/// let mut handler = pgstream::JsonLines::file("changes.jsonl")?;
/// let (stop, shutdown) = tokio::sync::watch::channel(false);
/// let task = tokio::spawn(async move { pgstream::run(config, &mut handler, shutdown).await });
/// // … later: stop.send(true), then task.await
/// # drop((stop, task)); Ok(())
/// # }
/// ```
pub async fn run<H: Handler>(
    config: Config,
    handler: &mut H,
    control: impl Into<Control>,
) -> Result<()> {
    config.validate()?;
    if config.drop_slot {
        return drop_slot(&config).await;
    }
    let control = control.into();
    let metrics = control.metrics.clone().unwrap_or_default();
    let mut handler = Metered {
        inner: handler,
        metrics: metrics.clone(),
    };
    let mut st = RunState {
        ack: Ack::new(Lsn::ZERO, status_interval(&config, None)),
        completions: Completions::default(),
        end_lsn: match config.end_lsn {
            Some(EndLsn::At(lsn)) => Some(lsn),
            _ => None,
        },
        stats: Stats::default(),
        notifier: Notifier::from_env(&|k| std::env::var(k).ok()),
        metrics,
        started: false,
        backfill: None,
    };
    let result = reconnect_loop(&config, &mut handler, control, &mut st).await;
    st.metrics.set_state(State::Stopping);
    st.notifier.notify("STOPPING=1");
    if st.started {
        info!("{}", st.stats.summary());
    }
    result
}

/// Runs sessions, reconnecting with capped backoff after transient errors.
async fn reconnect_loop<H: Handler>(
    config: &Config,
    handler: &mut H,
    control: Control,
    st: &mut RunState,
) -> Result<()> {
    let Control {
        mut shutdown,
        mut report,
        ..
    } = control;
    let mut catalog = Catalog::default();
    let mut backoff = Duration::from_secs(1);
    loop {
        let mut streamed = false;
        let result = session(
            config,
            handler,
            st,
            &mut catalog,
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
                st.metrics.set_state(State::Backoff(e.to_string()));
                tokio::select! {
                    _ = sleep(backoff) => {}
                    _ = stop_requested(&mut shutdown) => return Ok(()),
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                st.metrics.reconnecting();
                st.metrics.set_state(State::Connecting);
            }
            Err(e) => return Err(e),
        }
    }
}

async fn drop_slot(config: &Config) -> Result<()> {
    let server = if config.conn.has_choice() {
        crate::sql::server::connect(&config.conn).await?.1.params
    } else {
        config.conn.clone()
    };
    let mut repl = ReplicationConn::connect(&server, SESSION_SETTINGS).await?;
    let dropped = repl
        .simple_query(&commands::drop_slot(&config.slot))
        .await
        .map_err(|e| match e {
            Error::Server { source, .. } if source.code == SqlState::UNDEFINED_OBJECT => {
                Error::usage(format!(
                    "replication slot \"{}\" does not exist",
                    config.slot
                ))
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
async fn session<H: Handler>(
    config: &Config,
    handler: &mut H,
    st: &mut RunState,
    catalog: &mut Catalog,
    shutdown: &mut watch::Receiver<bool>,
    report: &mut watch::Receiver<()>,
    streamed: &mut bool,
) -> Result<()> {
    // A stop during set-up (a slow connect, a slot wait) ends the run at once.
    let mut stop_watch = shutdown.clone();
    let started = tokio::select! {
        biased;
        _ = stop_requested(&mut stop_watch) => return Ok(()),
        r = start_stream(config, st, handler) => r?,
    };
    *streamed = true;
    st.metrics.set_state(State::Streaming);
    st.notifier.notify(&format!(
        "READY=1\nSTATUS=streaming from slot {} on {}",
        config.slot,
        if config.conn.has_choice() {
            &started.server.endpoint
        } else {
            &started.server.params.host
        }
    ));
    if let Some(backfill) = &mut st.backfill {
        backfill.start(&started.server.params);
    }
    let mut stream = Stream {
        repl: started.repl,
        catalog: started.catalog,
        server: started.server.params,
        decoder: started.decoder,
        link: Link::new(config, st, shutdown, report),
        last_heard: Instant::now(),
        wal_sender_timeout: started.wal_sender_timeout,
    };
    let result = stream.run(handler, catalog).await;
    stream.close(result).await
}

/// How long the server may stay silent before the connection is given up:
/// like PostgreSQL's own `wal_receiver_timeout` (60 s), and never less than
/// twice `wal_sender_timeout`, since a walsender busy decoding a large
/// transaction may only answer at half its timeout.
fn silence_limit(wal_sender_timeout: Duration) -> Duration {
    (wal_sender_timeout * 2).max(Duration::from_secs(60))
}

/// How long a catalog look-up may take before its connection is taken for
/// dead (a NAT that dropped it, a hung backend): a look-up answers in
/// milliseconds, so as long as the server waits for a silent replication
/// client, at least 5 s, 60 s when the server does not time out.
fn lookup_limit(wal_sender_timeout: Duration) -> Duration {
    if wal_sender_timeout.is_zero() {
        Duration::from_secs(60)
    } else {
        wal_sender_timeout.max(Duration::from_secs(5))
    }
}

/// Resolves once a stop has been requested (never, if the sender is gone).
async fn stop_requested(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}
