//! The output thread: writes finished chunks of JSON lines to stdout or a
//! file, flushes (fsyncs a file), and reports how far it got.
//!
//! It runs on its own OS thread so that a slow reader blocks only this
//! thread: the replication connection keeps answering the server.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::Duration;

use tokio::sync::watch;

/// Where the lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    Stdout,
    /// Appended to, and fsynced before anything in it is acknowledged.
    File(PathBuf),
}

/// A run of whole JSON lines, numbered in hand-over order.
#[derive(Debug)]
pub(crate) struct Chunk {
    pub seq: u64,
    pub bytes: Vec<u8>,
}

/// What the writer has durably written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Progress {
    /// Every chunk up to this one is written and flushed.
    pub seq: u64,
    /// Writing failed (the thread has stopped).
    pub failed: Option<io::ErrorKind>,
}

/// The error that stopped the output thread.
pub(crate) type ErrorSlot = std::sync::Arc<std::sync::Mutex<Option<io::Error>>>;

/// Handle to the output thread.
pub(crate) struct Writer {
    tx: SyncSender<Chunk>,
    progress: watch::Receiver<Progress>,
    spare: Receiver<Vec<u8>>,
    error: ErrorSlot,
    /// Set when a stop gives up waiting: queued chunks are then dropped, not
    /// written after the final acknowledgement (they would repeat).
    abandon: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// Chunks that may wait for the thread; beyond that pgstream stops reading
/// from the server (backpressure).
const QUEUE: usize = 8;

impl Writer {
    /// Opens the target and starts the thread.
    pub(crate) fn spawn(target: &Target) -> io::Result<Writer> {
        let sink: Box<dyn Write + Send> = match target {
            Target::Stdout => Box::new(io::stdout()),
            Target::File(path) => {
                Box::new(OpenOptions::new().create(true).append(true).open(path)?)
            }
        };
        let sync_file = match target {
            Target::File(path) => Some(OpenOptions::new().append(true).open(path)?),
            Target::Stdout => None,
        };
        let (tx, rx) = sync_channel::<Chunk>(QUEUE);
        let (spare_tx, spare) = sync_channel::<Vec<u8>>(QUEUE * 2);
        let (progress_tx, progress) = watch::channel(Progress::default());
        let error = std::sync::Arc::new(std::sync::Mutex::new(None));
        let error2 = error.clone();
        let abandon = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let abandoned = abandon.clone();
        let watch_pipe = *target == Target::Stdout;
        std::thread::Builder::new()
            .name("pgstream-writer".into())
            .spawn(move || {
                let mut state = Progress::default();
                let mut sink = sink;
                let fail = |e: io::Error, mut state: Progress| {
                    state.failed = Some(e.kind());
                    *error2.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                    let _ = progress_tx.send(state);
                };
                loop {
                    let first = match rx.recv_timeout(Duration::from_millis(200)) {
                        Ok(c) => c,
                        Err(RecvTimeoutError::Timeout) => {
                            // Nothing to write: notice a reader that went away.
                            if watch_pipe && stdout_reader_gone() {
                                return fail(io::ErrorKind::BrokenPipe.into(), state);
                            }
                            continue;
                        }
                        Err(RecvTimeoutError::Disconnected) => return,
                    };
                    let mut batch = Some(first);
                    let mut done = false;
                    while let Some(chunk) = batch.take() {
                        if abandoned.load(std::sync::atomic::Ordering::Relaxed) {
                            done = true;
                            break;
                        }
                        if let Err(e) = sink.write_all(&chunk.bytes) {
                            return fail(e, state);
                        }
                        state.seq = chunk.seq;
                        let mut bytes = chunk.bytes;
                        bytes.clear();
                        let _ = spare_tx.try_send(bytes);
                        batch = rx.try_recv().ok();
                    }
                    if let Err(e) = sink.flush() {
                        return fail(e, state);
                    }
                    if let Some(f) = &sync_file {
                        if let Err(e) = f.sync_data() {
                            return fail(e, state);
                        }
                    }
                    if progress_tx.send(state).is_err() || done {
                        return;
                    }
                }
            })?;
        Ok(Writer {
            tx,
            progress,
            spare,
            error,
            abandon,
        })
    }

    /// Hands a chunk over without waiting; gives it back when the queue is
    /// full (retry after the next progress report).
    pub(crate) fn try_send(&self, chunk: Chunk) -> Result<(), Chunk> {
        match self.tx.try_send(chunk) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(c) | TrySendError::Disconnected(c)) => Err(c),
        }
    }

    /// A cleared buffer to fill with the next chunk.
    pub(crate) fn buffer(&self) -> Vec<u8> {
        self.spare
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(128 * 1024))
    }

    /// Progress reports; `changed()` wakes after each flush.
    pub(crate) fn progress(&mut self) -> &mut watch::Receiver<Progress> {
        &mut self.progress
    }

    /// Writes nothing more that is queued (the chunk being written, if any,
    /// still completes).
    pub(crate) fn abandon(&self) {
        self.abandon
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// The error that stopped the thread, once.
    pub(crate) fn take_error(&self) -> Option<io::Error> {
        self.error.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Where the thread leaves its error, for a waiter that outlives a
    /// borrow of the writer.
    pub(crate) fn error_slot(&self) -> ErrorSlot {
        self.error.clone()
    }
}

/// Whether stdout is a pipe whose reader has closed it (poll reports an
/// error condition on the write end).
fn stdout_reader_gone() -> bool {
    let mut fds = libc::pollfd {
        fd: 1,
        events: 0,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    let n = unsafe { libc::poll(&mut fds, 1, 0) };
    n == 1 && fds.revents & (libc::POLLERR | libc::POLLHUP) != 0
}
