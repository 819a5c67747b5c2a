//! The streaming loop of one connection: one `select!` with stated
//! priorities, hand-over to the writer, status updates.

use std::mem;
use std::time::Duration;

use futures_util::FutureExt;
use log::{debug, info, warn};
use tokio::sync::watch;
use tokio::time::{sleep_until, timeout, Instant};

use crate::config::Config;
use crate::decode::catalog::CatalogRequest;
use crate::decode::{Decoded, Decoder};
use crate::error::{Error, Result};
use crate::event::{fmt_lsn, Lsn};
use crate::replication::conn::{CopyEvent, ReplicationConn};
use crate::replication::protocol::{pg_now, standby_status_update, CopyMessage};
use crate::sql::catalog::CatalogConn;
use crate::writer::{Chunk, Writer};

use super::emit::Emitter;
use super::{silence_limit, stop_requested, RunState, Stop, CHUNK_BYTES, STOP_GRACE, WRITE_GRACE};

/// The streaming loop of one session.
pub(super) struct Stream<'c> {
    pub(super) config: &'c Config,
    pub(super) repl: ReplicationConn,
    pub(super) catalog: CatalogConn,
    pub(super) decoder: Box<dyn Decoder>,
    /// Lines not yet handed to the writer.
    pub(super) out: Vec<u8>,
    /// End of the last transaction completed in `out`.
    pub(super) commit_end: Option<Lsn>,
    /// A chunk the writer's full queue has not taken yet.
    pub(super) pending: Option<Chunk>,
    pub(super) stop: Option<Stop>,
    pub(super) stop_after_stream: Option<u32>,
    /// With --end-lsn: when to ask the server for its position again.
    pub(super) poll_at: Option<Instant>,
    /// When the server was last heard from: a connection silent for too
    /// long (dead without a FIN or RST) is given up and reconnected.
    pub(super) last_heard: Instant,
    pub(super) wal_sender_timeout: Duration,
}

impl Stream<'_> {
    pub(super) async fn run(
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
            if self.pending.is_none()
                && self.stop.is_none()
                && !self.out.is_empty()
                && self.out.len() < CHUNK_BYTES
            {
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
                    // Nothing queued may reach the output after the final
                    // acknowledgement; a chunk mid-write gets a moment.
                    writer.abandon();
                    if timeout(WRITE_GRACE, writer.progress().changed()).await.is_ok() {
                        let p = *writer.progress().borrow_and_update();
                        st.ack.flushed(p.seq, p.commit_end);
                    }
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
            self.pending = Some(Chunk {
                seq: st.ack.handed(),
                bytes,
                commit_end: self.commit_end.take(),
            });
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
                st.ack
                    .keepalive(wal_end, !self.out.is_empty() || self.commit_end.is_some());
                st.stats.server = st.stats.server.max(wal_end);
                if let Some(end) = st.end_lsn {
                    if !st.ack.in_txn() {
                        if wal_end >= end {
                            debug!(
                                "reached --end-lsn {} (server at {})",
                                fmt_lsn(end),
                                fmt_lsn(wal_end)
                            );
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
            CopyMessage::XLogData {
                wal_start,
                wal_end,
                data,
            } => loop {
                st.stats.server = st.stats.server.max(wal_end);
                let RunState {
                    ack,
                    catalog,
                    end_lsn,
                    stats,
                    ..
                } = &mut *st;
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
                let decoded = self
                    .decoder
                    .decode(wal_start, &data, catalog, &mut sink)
                    .map_err(|source| Error::Decode {
                        slot: self.config.slot.clone(),
                        lsn: fmt_lsn(wal_start),
                        source,
                    })?;
                match decoded {
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
            st.notifier.notify(&format!(
                "STATUS=streaming from slot {}, acknowledged {}",
                self.config.slot,
                fmt_lsn(lsn)
            ));
        }
        self.repl
            .send(|buf| standby_status_update(lsn, pg_now(), reply, buf))
            .await
    }

    /// Ends the session: a final status update acknowledging what was
    /// written, then CopyDone. `result` is the loop's outcome.
    pub(super) async fn close(self, st: &mut RunState, result: Result<()>) -> Result<()> {
        let Stream { mut repl, .. } = self;
        if matches!(&result, Ok(()) | Err(Error::Output(_))) {
            let lsn = st.ack.report(Instant::now());
            st.stats.acked = lsn;
            debug!("final status update: flushed {}", fmt_lsn(lsn));
            repl.send(|buf| standby_status_update(lsn, pg_now(), false, buf))
                .await?;
            match timeout(Duration::from_millis(500), repl.finish()).await {
                Ok(Err(e)) => debug!("ending the stream: {e}"),
                Err(_) => debug!("the server did not end the stream in time"),
                Ok(Ok(())) => {}
            }
        }
        result
    }
}
