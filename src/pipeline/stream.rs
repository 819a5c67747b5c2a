//! The streaming loop of one connection: one `select!` with stated
//! priorities; decoded events go to the handler through [`Link::admit`],
//! catalog facts they need come through [`Stream::look_up`].

use std::future::Future;
use std::time::Duration;

use futures_util::FutureExt;
use log::{debug, warn};
use tokio::time::{sleep_until, timeout, Instant};

use crate::conninfo::ConnParams;
use crate::decode::catalog::{Catalog, CatalogRequest};
use crate::decode::{Decoded, Decoder, Events};
use crate::error::{Error, Result};
use crate::event::{Event, Lsn};
use crate::replication::conn::{CopyEvent, ReplicationConn};
use crate::replication::protocol::{pg_now, standby_status_update, CopyMessage};
use crate::sink::Handler;
use crate::sql::catalog::CatalogConn;

use super::backfill::{Backfill, Seen};
use super::emit::Action;
use super::link::{Flow, Link};
use super::{lookup_limit, silence_limit, CANCEL_GRACE, MAX_PENDING};

/// Messages read back to back before the loop looks at its timers and
/// signals again.
const READ_BURST: u32 = 1024;

/// The streaming loop of one session.
pub(super) struct Stream<'s> {
    pub(super) repl: ReplicationConn,
    pub(super) catalog: CatalogConn,
    /// The server of the host list this session uses: a replaced catalog
    /// connection must go to it too.
    pub(super) server: ConnParams,
    pub(super) decoder: Box<dyn Decoder>,
    pub(super) link: Link<'s>,
    /// When the server was last heard from: a connection silent for too
    /// long (dead without a FIN or RST) is given up and reconnected.
    pub(super) last_heard: Instant,
    pub(super) wal_sender_timeout: Duration,
}

impl Stream<'_> {
    pub(super) async fn run<H: Handler>(
        &mut self,
        handler: &mut H,
        catalog: &mut Catalog,
    ) -> Result<()> {
        let first_reply = self.link.st.end_lsn.is_some();
        self.link.send_status(&mut self.repl, first_reply).await?;
        let mut burst = 0;
        loop {
            // While the server has more ready, keep decoding: the handler
            // buffers, and is flushed once we are about to wait. A long
            // burst still lets the select below see signals and timers.
            if self.reading() && self.link.dirty && burst < READ_BURST {
                if let Some(message) = self.repl.recv().now_or_never() {
                    burst += 1;
                    if self.on_message(message?, handler, catalog).await? == Flow::GiveUp {
                        return self.abandon(handler).await;
                    }
                    continue;
                }
                burst = 0;
            }
            let idle = burst < READ_BURST;
            burst = 0;
            if self.link.dirty && (idle || !self.reading()) {
                if self.link.flush(&mut self.repl, handler, None).await? == Flow::GiveUp {
                    return self.abandon(handler).await;
                }
                continue;
            }
            if self.link.stop.requested() && self.link.st.completions.is_empty() {
                return Ok(());
            }
            if !self.reading() {
                // Not reading: the server's silence means nothing now.
                self.last_heard = Instant::now();
            }
            let silence = self.last_heard + silence_limit(self.wal_sender_timeout);
            let quiet = self.last_heard.elapsed() >= self.link.st.ack.interval();
            tokio::select! {
                biased;
                // Everything but reading, in Link::wake's order.
                wake = self.link.wake() => {
                    if self.link.on_wake(wake?, &mut self.repl, quiet).await? == Flow::GiveUp {
                        return self.abandon(handler).await;
                    }
                }
                e = handler.failed() => return Err(Error::from_handler(e)),
                // A server silent through several replies asked for is gone.
                _ = sleep_until(silence), if self.reading() => {
                    return Err(Error::connection(
                        "connection to server lost",
                        std::io::Error::new(std::io::ErrorKind::TimedOut, format!(
                            "no message from the server for {}s",
                            silence_limit(self.wal_sender_timeout).as_secs()
                        )),
                    ));
                }
                // PRIORITY 6: server data, unless stopping or backed up.
                message = self.repl.recv(), if self.reading() => {
                    if self.on_message(message?, handler, catalog).await? == Flow::GiveUp {
                        return self.abandon(handler).await;
                    }
                }
            }
        }
    }

    /// Whether to read the server: not once stopping, nor while too many
    /// completions are pending (backpressure).
    fn reading(&self) -> bool {
        !self.link.stop.requested() && self.link.st.completions.len() < MAX_PENDING
    }

    /// A stop gave up waiting: the handler drops what it has not started,
    /// and what completes within a moment still counts.
    async fn abandon<H: Handler>(&mut self, handler: &mut H) -> Result<()> {
        warn!("the handler did not finish in time; acknowledging what it completed");
        handler.cancel();
        let deadline = Instant::now() + CANCEL_GRACE;
        while !self.link.st.completions.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            match timeout(left, self.link.st.completions.next()).await {
                Ok(Ok(Some(lsn))) => self.link.completed(lsn),
                Ok(Ok(None)) => {}
                Ok(Err(_)) | Err(_) => break,
            }
        }
        Ok(())
    }

    async fn on_message<H: Handler>(
        &mut self,
        message: CopyEvent,
        handler: &mut H,
        catalog: &mut Catalog,
    ) -> Result<Flow> {
        self.last_heard = Instant::now();
        let bytes = match message {
            CopyEvent::Data(bytes) => bytes,
            CopyEvent::Done => {
                return Err(Error::connection(
                    "replication stream ended by the server",
                    std::io::ErrorKind::ConnectionAborted.into(),
                ))
            }
        };
        match CopyMessage::parse(bytes).map_err(|e| Error::Protocol(e.to_string()))? {
            CopyMessage::Keepalive { wal_end, reply } => {
                let st = &mut *self.link.st;
                st.stats.server = st.stats.server.max(wal_end);
                st.metrics.received(wal_end, st.stats.server);
                if !st.ack.in_txn() {
                    if st.completions.is_empty() && !self.link.dirty {
                        st.metrics.caught_up();
                    }
                    // Everything before it is complete once the handler has
                    // completed what it holds.
                    let flow = self.link.flush(&mut self.repl, handler, Some(wal_end));
                    if flow.await? == Flow::GiveUp {
                        return Ok(Flow::GiveUp);
                    }
                    self.check_end(wal_end);
                }
                if reply {
                    self.link.send_status(&mut self.repl, false).await?;
                }
            }
            CopyMessage::XLogData {
                wal_start,
                wal_end,
                data,
            } => {
                let st = &mut *self.link.st;
                st.stats.server = st.stats.server.max(wal_end);
                st.metrics.received(wal_start, st.stats.server);
                loop {
                    let mut events = Events::new();
                    let decoded = self
                        .decoder
                        .decode(wal_start, &data, catalog, &mut events)
                        .map_err(|source| Error::Decode {
                            slot: self.link.config.slot.clone(),
                            lsn: wal_start.to_string(),
                            source,
                        })?;
                    match decoded {
                        Decoded::Done => {
                            for ev in events.iter() {
                                let seen = match &mut self.link.st.backfill {
                                    Some(backfill) => backfill.see(ev),
                                    None => Seen::Pass,
                                };
                                let flow = match seen {
                                    Seen::Pass => {
                                        deliver(&mut self.link, &mut self.repl, handler, ev).await?
                                    }
                                    Seen::Skip => Flow::Go,
                                    Seen::High => {
                                        Backfill::emit(&mut self.link, &mut self.repl, handler, ev)
                                            .await?
                                    }
                                };
                                if flow == Flow::GiveUp {
                                    return Ok(Flow::GiveUp);
                                }
                            }
                            break;
                        }
                        Decoded::Need(request) => {
                            drop(events);
                            if let CatalogRequest::PrimaryKey(relid) = request {
                                catalog.forget_primary_key(relid);
                            }
                            if self.look_up(&request, catalog).await? == Flow::GiveUp {
                                return Ok(Flow::GiveUp);
                            }
                        }
                    }
                }
            }
        }
        Ok(Flow::Go)
    }

    /// Answers a decoder's catalog request while status updates go on. A
    /// look-up on a lost catalog connection, or one that takes longer than
    /// [`lookup_limit`], is tried once more on a new connection; if that
    /// fails too, the session ends and the reconnect loop resumes from the
    /// last acknowledged position.
    async fn look_up(&mut self, request: &CatalogRequest, catalog: &mut Catalog) -> Result<Flow> {
        let limit = lookup_limit(self.wal_sender_timeout);
        let server = &self.server;
        let conn = &mut self.catalog;
        let work = async {
            let mut retried = false;
            loop {
                let result = if conn.is_closed() {
                    Err(Error::connection(
                        "catalog connection lost",
                        std::io::ErrorKind::ConnectionAborted.into(),
                    ))
                } else {
                    within(limit, "a catalog look-up", conn.fetch(request, catalog)).await
                };
                match result {
                    Err(e) if e.is_transient() && !retried => {
                        warn!("{e}; reconnecting the catalog connection");
                        retried = true;
                        let connect = CatalogConn::connect(server);
                        *conn =
                            within(limit, "reconnecting the catalog connection", connect).await?;
                    }
                    result => return result,
                }
            }
        };
        let done = self.link.keep_up(&mut self.repl, work).await?;
        // Not reading meanwhile: the server's silence meant nothing.
        self.last_heard = Instant::now();
        Ok(done.map_or(Flow::GiveUp, |()| Flow::Go))
    }

    /// With --end-lsn, after a keepalive outside any transaction: stop once
    /// the server is past the end, else ask again shortly.
    fn check_end(&mut self, wal_end: Lsn) {
        if let Some(end) = self.link.st.end_lsn {
            if wal_end >= end {
                debug!("reached --end-lsn {end} (server at {wal_end})");
                self.link.stop.request(super::Stop::EndLsn);
            } else {
                self.link.timers.poll_soon();
            }
        }
    }

    /// Ends the session: a final status update acknowledging what the
    /// handler completed, then CopyDone. `result` is the loop's outcome.
    pub(super) async fn close(self, result: Result<()>) -> Result<()> {
        let Stream { mut repl, link, .. } = self;
        if matches!(&result, Ok(()) | Err(Error::Output(_) | Error::Handler(_))) {
            let lsn = link.st.ack.report(Instant::now());
            link.st.stats.acked = lsn;
            link.st.metrics.acknowledged(lsn);
            debug!("final status update: flushed {lsn}");
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

/// `work`, or a connection error (transient) when it takes over `limit`.
async fn within<T>(
    limit: Duration,
    what: &str,
    work: impl Future<Output = Result<T>>,
) -> Result<T> {
    timeout(limit, work).await.unwrap_or_else(|_| {
        Err(Error::connection(
            format!("{what} got no answer"),
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("nothing from the server for {}s", limit.as_secs()),
            ),
        ))
    })
}

/// Hands one decoded event to the handler, as [`Link::admit`] decides.
async fn deliver<H: Handler>(
    link: &mut Link<'_>,
    repl: &mut ReplicationConn,
    handler: &mut H,
    ev: &Event<'_>,
) -> Result<Flow> {
    let action = link.admit(ev);
    if matches!(action, Action::Deliver | Action::Commit { deliver: true }) {
        link.dirty = true;
        if link.guard(repl, handler.event(ev)).await?.is_none() {
            return Ok(Flow::GiveUp);
        }
    }
    if let Action::Commit { .. } = action {
        link.dirty = true;
        let Some(completion) = link.guard(repl, handler.commit(ev)).await? else {
            return Ok(Flow::GiveUp);
        };
        link.push(ev.end_lsn, completion);
    }
    Ok(Flow::Go)
}
