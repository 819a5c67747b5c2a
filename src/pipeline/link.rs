//! Everything a session does besides reading the server: stop requests,
//! completions, status updates, timers. The stream loop waits on it between
//! messages, and [`Link::keep_up`] waits on it while a handler call or a
//! catalog look-up is pending, so the server hears from us even while the
//! handler is slow or the catalog connection hangs.

use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use log::{debug, info};
use tokio::sync::watch;
use tokio::time::{sleep_until, Instant};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::event::Lsn;
use crate::replication::conn::ReplicationConn;
use crate::replication::protocol::{pg_now, standby_status_update};
use crate::sink::{Completion, Handler, HandlerError};

use super::{stop_requested, RunState, Stop, STOP_GRACE};
use crate::metrics::State;

/// Whether the session goes on, or a stop gave up waiting for the handler
/// (its grace ran out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flow {
    Go,
    GiveUp,
}

/// What woke the session up.
pub(super) enum Wake {
    Stop,
    /// The oldest completion completed, allowing this position.
    Completed(Option<Lsn>),
    Status,
    /// `--end-lsn`: time to ask the server where it is.
    Poll,
    Report,
    Stats,
    Watchdog,
    /// A stop waited `STOP_GRACE` for the handler: give up on it.
    Deadline,
    /// The backfill's chunk reader failed.
    Backfill(Error),
}

/// A session's state apart from the connection and the decoder.
pub(super) struct Link<'s> {
    pub(super) config: &'s Config,
    pub(super) st: &'s mut RunState,
    requests: Requests<'s>,
    pub(super) stop: Stopping,
    pub(super) timers: Timers,
    /// The handler got events since its last flush.
    pub(super) dirty: bool,
}

/// What the caller asks of the run ([`crate::Control`]).
struct Requests<'s> {
    shutdown: &'s mut watch::Receiver<bool>,
    report: &'s mut watch::Receiver<()>,
    /// Whether `report` can still fire (its sender is alive).
    reports: bool,
}

/// Resolves on each progress report asked for; never once nobody can ask
/// any more (`reports` turns false).
async fn report_asked(report: &mut watch::Receiver<()>, reports: &mut bool) {
    if *reports && report.changed().await.is_ok() {
        return;
    }
    *reports = false;
    std::future::pending().await
}

/// Whether, and how soon, the session stops.
#[derive(Debug, Default)]
pub(super) struct Stopping {
    why: Option<Stop>,
    /// With --max-changes: the streamed transaction that holds the last
    /// change, whose stream_commit/abort ends the run.
    pub(super) after_stream: Option<u32>,
    /// When waiting for the handler gives up (`STOP_GRACE` after the stop).
    deadline: Option<Instant>,
}

impl Stopping {
    /// Stop reading: the session ends once the handler's completions are in.
    pub(super) fn request(&mut self, why: Stop) {
        self.why = Some(why);
    }

    pub(super) fn requested(&self) -> bool {
        self.why.is_some()
    }

    /// The stop's deadline, set on first asking.
    fn deadline(&mut self) -> Option<Instant> {
        if self.why.is_some() && self.deadline.is_none() {
            self.deadline = Some(Instant::now() + STOP_GRACE);
        }
        self.deadline
    }
}

/// The session's own timers; `None` is off.
#[derive(Debug)]
pub(super) struct Timers {
    /// With --end-lsn: when to ask the server for its position again.
    poll: Option<Instant>,
    stats: Option<Instant>,
    watchdog: Option<Instant>,
}

impl Timers {
    /// Asks the server where it is again shortly (--end-lsn).
    pub(super) fn poll_soon(&mut self) {
        self.poll = Some(Instant::now() + Duration::from_millis(100));
    }

    fn every(interval: Option<Duration>) -> Option<Instant> {
        interval.map(|d| Instant::now() + d)
    }
}

/// Sleeps until `at`; never when `None`.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl<'s> Link<'s> {
    pub(super) fn new(
        config: &'s Config,
        st: &'s mut RunState,
        shutdown: &'s mut watch::Receiver<bool>,
        report: &'s mut watch::Receiver<()>,
    ) -> Self {
        Link {
            timers: Timers {
                poll: None,
                stats: Timers::every(config.stats_interval),
                watchdog: Timers::every(st.notifier.watchdog),
            },
            config,
            st,
            requests: Requests {
                shutdown,
                report,
                reports: true,
            },
            stop: Stopping::default(),
            dirty: false,
        }
    }

    /// Waits for the next thing to do other than reading the server.
    pub(super) async fn wake(&mut self) -> Result<Wake> {
        let deadline = self.stop.deadline();
        let status_at = self.st.ack.next_due(Instant::now());
        let stopping = self.stop.requested();
        let timers = &self.timers;
        let Requests {
            shutdown,
            report,
            reports,
        } = &mut self.requests;
        let backfill = async {
            match &mut self.st.backfill {
                Some(b) => b.failed().await,
                None => std::future::pending().await,
            }
        };
        Ok(tokio::select! {
            biased;
            // PRIORITY 1: a stop request: stop reading, flush, acknowledge.
            _ = stop_requested(shutdown), if !stopping => Wake::Stop,
            // PRIORITY 2: a completion: more may be acknowledged, and
            // reading may resume.
            done = self.st.completions.next() => Wake::Completed(done.map_err(Error::from_handler)?),
            // PRIORITY 3: a periodic status update (also keeps the server
            // from timing us out while the handler is slow).
            _ = sleep_until(status_at) => Wake::Status,
            _ = sleep_until_some(deadline) => Wake::Deadline,
            // PRIORITY 4: ask the server where it is (--end-lsn).
            _ = sleep_until_some(timers.poll) => Wake::Poll,
            // PRIORITY 5: progress reports and the systemd watchdog.
            _ = report_asked(report, reports) => Wake::Report,
            _ = sleep_until_some(timers.stats) => Wake::Stats,
            _ = sleep_until_some(timers.watchdog) => Wake::Watchdog,
            e = backfill => Wake::Backfill(e),
        })
    }

    /// Acts on a wake-up. `quiet`: the server has not been heard from for a
    /// status interval (a status update then asks for a reply, proving the
    /// connection alive).
    pub(super) async fn on_wake(
        &mut self,
        wake: Wake,
        repl: &mut ReplicationConn,
        quiet: bool,
    ) -> Result<Flow> {
        match wake {
            Wake::Stop => {
                info!("stopping");
                self.st.metrics.set_state(State::Stopping);
                self.st.notifier.notify("STOPPING=1");
                self.stop.request(Stop::Signal);
            }
            Wake::Completed(lsn) => {
                if let Some(lsn) = lsn {
                    self.completed(lsn);
                }
            }
            Wake::Status => self.send_status(repl, quiet).await?,
            Wake::Poll => {
                self.timers.poll = None;
                self.send_status(repl, true).await?;
            }
            Wake::Report => info!("{}", self.st.stats.report()),
            Wake::Stats => {
                info!("{}", self.st.stats.report());
                self.timers.stats = Timers::every(self.config.stats_interval);
            }
            Wake::Watchdog => {
                self.st.notifier.notify("WATCHDOG=1");
                self.timers.watchdog = Timers::every(self.st.notifier.watchdog);
            }
            Wake::Deadline => return Ok(Flow::GiveUp),
            Wake::Backfill(e) => return Err(e),
        }
        Ok(Flow::Go)
    }

    /// Awaits a handler call while keeping up everything else. `None`: a
    /// stop gave up waiting for it.
    pub(super) async fn guard<T>(
        &mut self,
        repl: &mut ReplicationConn,
        call: impl Future<Output = Result<T, HandlerError>>,
    ) -> Result<Option<T>> {
        self.keep_up(repl, async { call.await.map_err(Error::from_handler) })
            .await
    }

    /// Awaits `work` while keeping up everything else. `None`: a stop gave
    /// up waiting for it.
    pub(super) async fn keep_up<T>(
        &mut self,
        repl: &mut ReplicationConn,
        work: impl Future<Output = Result<T, Error>>,
    ) -> Result<Option<T>> {
        let mut work = pin!(work);
        loop {
            tokio::select! {
                biased;
                r = &mut work => return r.map(Some),
                wake = self.wake() => {
                    // Not reading meanwhile: the server's silence means nothing.
                    if self.on_wake(wake?, repl, false).await? == Flow::GiveUp {
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// Has the handler hand on what it buffered, and queues the completion
    /// of everything so far, which allows `lsn` (if any).
    pub(super) async fn flush<H: Handler>(
        &mut self,
        repl: &mut ReplicationConn,
        handler: &mut H,
        lsn: Option<Lsn>,
    ) -> Result<Flow> {
        let Some(completion) = self.guard(repl, handler.flush()).await? else {
            return Ok(Flow::GiveUp);
        };
        self.push(lsn, completion);
        self.dirty = false;
        Ok(Flow::Go)
    }

    /// Queues the completion of everything up to `lsn`.
    pub(super) fn push(&mut self, lsn: Option<Lsn>, completion: Completion) {
        if let Some(lsn) = self.st.completions.push(lsn, completion) {
            self.completed(lsn);
        }
    }

    /// The handler completed everything up to `lsn`.
    pub(super) fn completed(&mut self, lsn: Lsn) {
        self.st.ack.completed(lsn);
        self.st.stats.written = self.st.stats.written.max(lsn);
        self.st.metrics.written(self.st.stats.written);
    }

    pub(super) async fn send_status(
        &mut self,
        repl: &mut ReplicationConn,
        reply: bool,
    ) -> Result<()> {
        let lsn = self.st.ack.report(Instant::now());
        debug!("status update: flushed {lsn}");
        if lsn != self.st.stats.acked {
            self.st.stats.acked = lsn;
            self.st.metrics.acknowledged(lsn);
            self.st.notifier.notify(&format!(
                "STATUS=streaming from slot {}, acknowledged {}",
                self.config.slot, lsn
            ));
        }
        repl.send(|buf| standby_status_update(lsn, pg_now(), reply, buf))
            .await
    }
}
