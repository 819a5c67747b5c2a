//! [`JsonLines`]: the binary's handler, one JSON line per event on stdout
//! or appended to a file.
//!
//! Lines collect in a buffer that goes to the output thread
//! ([`crate::writer`]) in chunks: when it is big, and when pgstream is about
//! to wait ([`Handler::flush`]). A transaction's completion is the flush of
//! the chunk that holds its last line, so pgstream decodes on while the
//! thread writes, and commits that share a chunk share one completion.

use std::io;
use std::mem;
use std::path::PathBuf;

use tokio::sync::watch;

use crate::error::Error;
use crate::event::Event;
use crate::handler::{Completion, Handler, HandlerError};
use crate::output::write_event;
use crate::writer::{Chunk, Progress, Target, Writer};

/// A chunk is handed to the writer once this big, even mid-transaction.
const CHUNK_BYTES: usize = 256 * 1024;

/// Writes each event as one JSON line (docs/output.md). A transaction is
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
    /// Lines not yet handed to the writer.
    out: Vec<u8>,
    /// Number of the last chunk handed over.
    handed: u64,
    /// The highest chunk number a completion already waits for: a commit
    /// in the same chunk needs no completion of its own.
    promised: u64,
}

impl JsonLines {
    /// Lines to standard output. A reader that goes away (`EPIPE`, or a
    /// closed pipe noticed while idle) fails the handler with
    /// [`Error::Output`], which the binary treats as a clean stop.
    pub fn stdout() -> io::Result<JsonLines> {
        Self::to(Target::Stdout)
    }

    /// Lines appended to `path` (created if missing), fsynced before a
    /// transaction counts as complete.
    pub fn file(path: impl Into<PathBuf>) -> io::Result<JsonLines> {
        Self::to(Target::File(path.into()))
    }

    fn to(target: Target) -> io::Result<JsonLines> {
        let writer = Writer::spawn(&target)?;
        Ok(JsonLines {
            out: writer.buffer(),
            writer,
            handed: 0,
            promised: 0,
        })
    }

    /// Hands the buffered lines over, waiting while the writer's queue is
    /// full (backpressure).
    async fn hand_over(&mut self) -> Result<(), HandlerError> {
        self.handed += 1;
        let bytes = mem::replace(&mut self.out, self.writer.buffer());
        let mut chunk = Chunk {
            seq: self.handed,
            bytes,
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
        write_event(&mut self.out, event);
        if self.out.len() >= CHUNK_BYTES {
            self.hand_over().await?;
        }
        Ok(())
    }

    async fn commit(&mut self, _commit: &Event<'_>) -> Result<Completion, HandlerError> {
        Ok(self.completion())
    }

    async fn flush(&mut self) -> Result<Completion, HandlerError> {
        let completion = self.completion();
        if !self.out.is_empty() {
            self.hand_over().await?;
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
