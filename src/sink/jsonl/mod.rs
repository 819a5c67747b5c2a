//! [`JsonLines`]: the binary's handler, one JSON line per event on stdout
//! or appended to a file.
//!
//! Lines collect in a buffer that goes to the output thread
//! ([`writer`]) in chunks: when it is big, and when pgstream is about
//! to wait ([`Handler::flush`]). A transaction's completion is the flush of
//! the chunk that holds its last line, so pgstream decodes on while the
//! thread writes, and commits that share a chunk share one completion.
//!
//! A reopen ([`Reopen`], log rotation) is done by the thread after a chunk
//! that ends a unit of work, so `commit` hands the buffer over early when
//! one is asked for.

mod writer;

use std::io;
use std::mem;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use tokio::sync::watch;

use crate::error::Error;
use crate::event::Event;
use crate::sink::encode::{Encoder, Format};
use crate::sink::{Completion, Handler, HandlerError};
use writer::{Chunk, Progress, Requests, Target, Writer};

/// A chunk is handed to the writer once this big, even mid-transaction.
const CHUNK_BYTES: usize = 256 * 1024;

/// Writes each event as one JSON line (docs/output.md), in pgstream's
/// format or another ([`with_format`](Self::with_format)). A transaction is
/// complete once its lines are written and flushed (and, for a file,
/// fsynced).
///
/// ```no_run
/// # async fn f(config: pgstream::Config) -> pgstream::Result<()> {
/// let mut out = pgstream::JsonLines::file("changes.jsonl").map_err(pgstream::Error::Output)?;
/// let (_stop, shutdown) = tokio::sync::watch::channel(false);
/// pgstream::run(config, &mut out, shutdown).await
/// # }
/// ```
pub struct JsonLines {
    writer: Writer,
    /// Lays the events out.
    encoder: Encoder,
    /// Lines not yet handed to the writer.
    out: Vec<u8>,
    /// Number of the last chunk handed over.
    handed: u64,
    /// The highest chunk number a completion already waits for: a commit
    /// in the same chunk needs no completion of its own.
    promised: u64,
    /// A unit of work (transaction) has events since its last `commit`.
    open: bool,
    /// The last chunk handed over ended inside a unit of work.
    tail_open: bool,
    /// Reopen requests already answered with a chunk that ends a unit.
    asked: u64,
}

/// Asks a [`JsonLines`] that appends to a file to close and reopen it, for
/// log rotation: rename the file, then call [`request`](Reopen::request).
/// The binary calls it on SIGHUP; the library installs no signal handler.
#[derive(Debug, Clone)]
pub struct Reopen(Requests);

impl Reopen {
    /// The output thread fsyncs and closes the file, then opens the path
    /// again (created with mode 0600 if missing), between two transactions:
    /// each line is in exactly one of the two files, and the old one ends
    /// with a whole transaction. When idle that is within a fraction of a
    /// second; inside a large transaction, at its end. Nothing happens on
    /// stdout.
    pub fn request(&self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }
}

impl JsonLines {
    /// Lines to standard output. A reader that goes away (`EPIPE`, or a
    /// closed pipe noticed while idle) fails the handler with
    /// [`Error::Output`], which the binary treats as a clean stop.
    pub fn stdout() -> io::Result<JsonLines> {
        Self::to(Target::Stdout)
    }

    /// Lines appended to `path` (created with mode 0600 if missing),
    /// fsynced before a transaction counts as complete (as stdout is when
    /// redirected to a regular file). See [`reopen_handle`](Self::reopen_handle)
    /// for log rotation.
    pub fn file(path: impl Into<PathBuf>) -> io::Result<JsonLines> {
        Self::to(Target::File(path.into()))
    }

    fn to(target: Target) -> io::Result<JsonLines> {
        let writer = Writer::spawn(&target)?;
        Ok(JsonLines {
            out: writer.buffer(),
            writer,
            encoder: Encoder::new(&Format::Pgstream),
            handed: 0,
            promised: 0,
            open: false,
            tail_open: false,
            asked: 0,
        })
    }

    /// Writes the events in `format` (`--format`) instead of pgstream's.
    ///
    /// ```no_run
    /// # fn f() -> std::io::Result<()> {
    /// use pgstream::{Format, JsonLines};
    ///
    /// let out = JsonLines::stdout()?.with_format(Format::Debezium {
    ///     topic_prefix: "shop".into(),
    ///     database: "shop".into(),
    /// });
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_format(mut self, format: Format) -> JsonLines {
        self.encoder = Encoder::new(&format);
        self
    }

    /// A handle that asks for the file to be reopened (log rotation); it
    /// may be used from any thread or task, as long as pgstream runs.
    pub fn reopen_handle(&self) -> Reopen {
        Reopen(self.writer.reopen_requests())
    }

    /// Whether a reopen was asked for since the last chunk that answered one.
    fn reopen_asked(&mut self) -> bool {
        let requests = self.writer.reopen_requests().load(Ordering::Acquire);
        let asked = requests > self.asked;
        self.asked = requests;
        asked
    }

    /// Hands the buffered lines over, waiting while the writer's queue is
    /// full (backpressure). `boundary`: they end a unit of work.
    async fn hand_over(&mut self, boundary: bool) -> Result<(), HandlerError> {
        self.handed += 1;
        self.tail_open = !boundary;
        let bytes = mem::replace(&mut self.out, self.writer.buffer());
        let mut chunk = Chunk {
            seq: self.handed,
            bytes,
            boundary,
        };
        loop {
            self.check()?;
            match self.writer.try_send(chunk) {
                Ok(()) => return Ok(()),
                Err(back) => chunk = back,
            }
            // A dropped sender (thread gone) shows as a failure above.
            let _ = self.writer.progress().changed().await;
        }
    }

    /// The writer's failure, if it has failed.
    fn check(&mut self) -> Result<(), HandlerError> {
        let failed = self.writer.progress().borrow().failed.is_some();
        if failed {
            return Err(self.error());
        }
        Ok(())
    }

    fn error(&self) -> HandlerError {
        let e = self
            .writer
            .take_error()
            .unwrap_or_else(|| io::ErrorKind::BrokenPipe.into());
        Box::new(Error::Output(e))
    }

    /// A completion for everything received so far: the flush of the chunk
    /// that will hold the last line.
    fn completion(&mut self) -> Completion {
        let seq = self.handed + u64::from(!self.out.is_empty());
        if seq <= self.promised {
            return Completion::done();
        }
        self.promised = seq;
        let mut progress: watch::Receiver<Progress> = self.writer.progress().clone();
        let error = self.writer.error_slot();
        Completion::when(async move {
            let p = *progress
                .wait_for(|p| p.seq >= seq || p.failed.is_some())
                .await
                .map_err(|_| Error::Output(io::ErrorKind::BrokenPipe.into()))?;
            match p.failed {
                Some(kind) if p.seq < seq => {
                    let e = error.lock().unwrap_or_else(|p| p.into_inner()).take();
                    Err(Box::new(Error::Output(e.unwrap_or_else(|| kind.into()))) as HandlerError)
                }
                _ => Ok(()),
            }
        })
    }
}

impl std::fmt::Debug for JsonLines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonLines")
            .field("buffered", &self.out.len())
            .field("handed", &self.handed)
            .field("promised", &self.promised)
            .finish_non_exhaustive()
    }
}

impl Handler for JsonLines {
    async fn event(&mut self, event: &Event<'_>) -> Result<(), HandlerError> {
        self.encoder.write_event(&mut self.out, event);
        self.open = true;
        if self.out.len() >= CHUNK_BYTES {
            self.hand_over(false).await?;
        }
        Ok(())
    }

    async fn commit(&mut self, commit: &Event<'_>) -> Result<Completion, HandlerError> {
        self.encoder.commit(&mut self.out, commit);
        self.open = false;
        // The writer must learn that the unit ended: when a reopen waits
        // for it, or when the unit's last line went in a chunk handed over
        // mid-unit (an idle writer would wait for the next unit otherwise).
        if self.reopen_asked() || (self.out.is_empty() && self.tail_open) {
            self.hand_over(true).await?;
        }
        Ok(self.completion())
    }

    async fn flush(&mut self) -> Result<Completion, HandlerError> {
        let completion = self.completion();
        if !self.out.is_empty() {
            self.hand_over(!self.open).await?;
        }
        Ok(completion)
    }

    async fn failed(&mut self) -> HandlerError {
        let _ = self
            .writer
            .progress()
            .wait_for(|p| p.failed.is_some())
            .await;
        self.error()
    }

    fn cancel(&mut self) {
        self.writer.abandon();
    }
}
