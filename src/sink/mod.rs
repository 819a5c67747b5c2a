//! Sinks: where decoded events go, and when they count as written.
//!
//! pgstream decodes the stream and calls a [`Handler`]; the handler says
//! when a transaction is done with, and only then is it acknowledged to the
//! server. Every sink is a handler: [`jsonl`] (the binary's stdout or
//! `--file`), and [`broker`]'s `Sink` for `--sink URL` with one module per
//! broker (`nats`, `redis`, `kafka`: the last behind the default feature
//! `kafka`), which share
//! the URL parsing (`url`), the destination templates (`template`) and the
//! idempotency ids (`id`); [`encode`] turns an event into the message body
//! they all send. docs/library.md describes the contract.

pub(crate) mod broker;
pub(crate) mod encode;
mod id;
pub(crate) mod jsonl;
#[cfg(feature = "kafka")]
mod kafka;
mod nats;
mod redis;
pub(crate) mod stats;
mod template;
mod url;

use std::future::Future;
use std::pin::Pin;

use crate::event::Event;

/// What a handler fails with: any error. An [`Error`](crate::Error) that
/// no retry cures keeps its own exit code and wording; anything else
/// becomes [`Error::Handler`](crate::Error::Handler).
pub type HandlerError = Box<dyn std::error::Error + Send + Sync>;

/// A boxed completion future.
pub(crate) type Work = Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send>>;

/// Receives the stream's events, in order, and completes its transactions.
///
/// pgstream calls [`event`](Handler::event) for every event that the
/// [`Config`](crate::Config) selects, then [`commit`](Handler::commit) for
/// every unit of work that ends: a transaction (`commit` or
/// `stream_commit`), a message outside any transaction, the initial
/// snapshot. A transaction is acknowledged to the server once its
/// [`Completion`] has completed, never before, so the server keeps every
/// transaction that a handler has not finished and sends it again after a
/// restart: delivery is at-least-once.
///
/// An `Err` from any method (or completion) stops the stream at once: what
/// completed before is acknowledged, the failing transaction and anything
/// after it are not (they come again next run), and [`run`](crate::run)
/// returns [`Error::Handler`](crate::Error::Handler), which is never
/// retried. An [`Error`](crate::Error) that no retry cures stays itself,
/// with its exit code: an [`Error::Output`](crate::Error::Output) (a closed
/// output is a clean stop for [`JsonLines`](crate::JsonLines)), an
/// [`Error::Usage`](crate::Error::Usage) (a broker refusing the
/// credentials, [`Sink`](crate::Sink)), an
/// [`Error::Runtime`](crate::Error::Runtime).
///
/// While a call is pending, pgstream keeps answering the server (a slow
/// handler does not get the connection timed out) but reads nothing more:
/// a handler slows the stream down by taking its time. A stop that waits
/// too long drops the call (and [`cancel`](Handler::cancel) follows), as
/// a stop during the initial snapshot drops the snapshot: calls must be
/// safe to abandon at an `.await`.
///
/// ```
/// use pgstream::{Completion, Event, Handler, HandlerError};
///
/// /// Prints each row change's table and operation.
/// struct Print;
///
/// impl Handler for Print {
///     async fn event(&mut self, event: &Event<'_>) -> Result<(), HandlerError> {
///         if let Some(rel) = event.relation {
///             println!("{} {}.{}", event.op.as_str(), rel.schema, rel.name);
///         }
///         Ok(())
///     }
///
///     async fn commit(&mut self, _commit: &Event<'_>) -> Result<Completion, HandlerError> {
///         // Printed is done with.
///         Ok(Completion::done())
///     }
/// }
/// ```
pub trait Handler: Send {
    /// Takes one event. It borrows pgstream's buffers, so copy out what
    /// must outlive the call. Begin and commit events come only with
    /// [`Config::include_tx`](crate::Config::include_tx).
    fn event(&mut self, event: &Event<'_>)
        -> impl Future<Output = Result<(), HandlerError>> + Send;

    /// The unit of work whose last event came before `commit` is complete;
    /// the returned [`Completion`] says when its effects are durable.
    /// `commit` is the unit's last event:
    ///
    /// - a transaction's `Commit` or `StreamCommit` event, with `end_lsn`
    ///   (the position acknowledged once the completion completes);
    /// - with [`Config::two_phase`](crate::Config::two_phase), a
    ///   `Prepare` or `StreamPrepare` event, and later a `CommitPrepared`
    ///   or `RollbackPrepared` event, each with `end_lsn`: once a prepare
    ///   is acknowledged its changes are never sent again;
    /// - a `Message` event emitted outside any transaction (delivered to
    ///   [`event`](Handler::event) just before);
    /// - for the initial snapshot (`Config::snapshot`), a `Commit` event
    ///   with `snapshot_lsn` and no `end_lsn`: streaming starts once it is
    ///   complete.
    fn commit(
        &mut self,
        commit: &Event<'_>,
    ) -> impl Future<Output = Result<Completion, HandlerError>> + Send;

    /// Hand on anything buffered: pgstream is about to wait (the server
    /// has nothing ready, reading is held back, or a stop was asked for),
    /// or the server's keepalive outside a transaction is to be
    /// acknowledged, or the snapshot ended. The completion covers every
    /// event received so far. A handler that does its work in
    /// [`commit`](Handler::commit) needs nothing here, since every event
    /// delivered belongs to a unit that `commit` completes (but for the
    /// changes of a streamed transaction that ends in `stream_abort`).
    fn flush(&mut self) -> impl Future<Output = Result<Completion, HandlerError>> + Send {
        async { Ok(Completion::done()) }
    }

    /// Resolves if the handler fails on its own while pgstream waits for
    /// the server (say, its output was closed). Never, by default. A new
    /// future is made for each wait and dropped when something else comes
    /// first, so it must be cancel-safe.
    fn failed(&mut self) -> impl Future<Output = HandlerError> + Send {
        std::future::pending()
    }

    /// A stop waited too long (about 1.2 s) for the handler: pgstream has
    /// dropped the call under way, if any, gives the pending completions
    /// 0.2 s more, then acknowledges only those that completed. Work the
    /// handler runs on its own (a queue, a thread) and has not started
    /// must now be dropped rather than done after that final
    /// acknowledgement.
    fn cancel(&mut self) {}

    /// The connection to the server was lost and a new session starts: the
    /// units of work that had not completed come again from their start,
    /// so their events repeat. A handler that numbers events per unit
    /// (idempotency ids) starts counting again.
    fn restart(&mut self) {}
}

/// When a transaction's effects are durable, as told by
/// [`Handler::commit`] and [`Handler::flush`].
///
/// Completions complete in the order they were returned: a transaction is
/// acknowledged only once it and every transaction before it are complete.
/// A pending completion lets pgstream go on decoding meanwhile (say, while
/// an output thread writes), and pgstream polls one completion at a time, so
/// their futures run in order.
#[must_use]
pub struct Completion(Option<Work>);

impl Completion {
    /// Complete as soon as the completions returned before it are.
    pub fn done() -> Completion {
        Completion(None)
    }

    /// Complete when `work` resolves `Ok`; an `Err` stops the stream.
    ///
    /// ```
    /// use pgstream::{Completion, HandlerError};
    ///
    /// /// Completes a transaction once its lines are queued downstream.
    /// fn send(tx: tokio::sync::mpsc::Sender<String>, batch: Vec<String>) -> Completion {
    ///     Completion::when(async move {
    ///         for line in batch {
    ///             tx.send(line).await?;
    ///         }
    ///         Ok::<(), HandlerError>(())
    ///     })
    /// }
    /// ```
    pub fn when<F>(work: F) -> Completion
    where
        F: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        Completion(Some(Box::pin(work)))
    }

    pub(crate) fn into_future(self) -> Option<Work> {
        self.0
    }
}

impl std::fmt::Debug for Completion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Completion(pending)"
        } else {
            "Completion(done)"
        })
    }
}
