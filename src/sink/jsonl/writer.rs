//! The output thread: writes finished chunks of JSON lines to stdout or a
//! file, fsyncs a regular file, and reports how far it got.
//!
//! It runs on its own OS thread so that a slow reader blocks only this
//! thread: the replication connection keeps answering the server. It also
//! reopens `--file` when asked (log rotation), between two chunks that do
//! not split a transaction, so that the old file ends whole.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

/// Where the lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    Stdout,
    /// Appended to (created with mode 0600), and reopened on request.
    File(PathBuf),
}

/// A run of whole JSON lines, numbered in hand-over order.
#[derive(Debug)]
pub(crate) struct Chunk {
    pub seq: u64,
    pub bytes: Vec<u8>,
    /// The chunk ends where a unit of work (a transaction) ends: a reopen
    /// may follow it.
    pub boundary: bool,
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
pub(crate) type ErrorSlot = Arc<Mutex<Option<io::Error>>>;

/// Reopen requests: a counter that only grows, so that none is lost or
/// served twice, whoever reads it.
pub(crate) type Requests = Arc<AtomicU64>;

/// Handle to the output thread.
pub(crate) struct Writer {
    tx: SyncSender<Chunk>,
    progress: watch::Receiver<Progress>,
    spare: Receiver<Vec<u8>>,
    error: ErrorSlot,
    /// Set when a stop gives up waiting: queued chunks are then dropped, not
    /// written after the final acknowledgement (they would repeat).
    abandon: Arc<AtomicBool>,
    reopen: Requests,
}

/// Chunks that may wait for the thread; beyond that pgstream stops reading
/// from the server (backpressure).
const QUEUE: usize = 8;

/// How often an idle thread looks for a closed pipe or a reopen request.
const TICK: Duration = Duration::from_millis(200);

/// An open output and whether it can be made durable.
struct Sink {
    file: File,
    /// A regular file is fsynced before its lines count as written; a pipe,
    /// terminal or device cannot be (pg_recvlogical does the same).
    regular: bool,
}

impl Sink {
    /// Standard output, through a duplicate of its descriptor (unbuffered,
    /// and fstat tells whether it was redirected to a regular file).
    fn stdout() -> io::Result<Sink> {
        Sink::new(File::from(io::stdout().as_fd().try_clone_to_owned()?))
    }

    fn open(path: &Path) -> io::Result<Sink> {
        Sink::new(open_append(path)?)
    }

    fn new(file: File) -> io::Result<Sink> {
        let regular = file.metadata()?.is_file();
        Ok(Sink { file, regular })
    }

    /// Makes everything written so far durable.
    fn sync(&self) -> io::Result<()> {
        if self.regular {
            self.file.sync_data()?;
        }
        Ok(())
    }
}

/// Opens `path` for appending. A file it creates gets mode 0600 (the
/// lines are table data), and its directory entry is fsynced, so that a
/// crash cannot lose the file its acknowledged lines are in.
fn open_append(path: &Path) -> io::Result<File> {
    match OpenOptions::new().append(true).open(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        other => return other,
    }
    let file = match OpenOptions::new()
        .append(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        // Created by someone else meanwhile: theirs to keep as it is.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return OpenOptions::new().append(true).open(path)
        }
        other => other?,
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()?;
    Ok(file)
}

impl Writer {
    /// Opens the target and starts the thread.
    pub(crate) fn spawn(target: &Target) -> io::Result<Writer> {
        let (sink, path) = match target {
            Target::Stdout => (Sink::stdout()?, None),
            Target::File(path) => (Sink::open(path)?, Some(path.clone())),
        };
        let (tx, rx) = sync_channel::<Chunk>(QUEUE);
        let (spare_tx, spare) = sync_channel::<Vec<u8>>(QUEUE * 2);
        let (progress_tx, progress) = watch::channel(Progress::default());
        let writer = Writer {
            tx,
            progress,
            spare,
            error: Arc::default(),
            abandon: Arc::default(),
            reopen: Arc::default(),
        };
        let output = Output {
            sink,
            path,
            rx,
            spare: spare_tx,
            progress: progress_tx,
            error: writer.error.clone(),
            abandon: writer.abandon.clone(),
            reopen: writer.reopen.clone(),
            reopened: 0,
            boundary: true,
            durable: 0,
        };
        std::thread::Builder::new()
            .name("pgstream-writer".into())
            .spawn(move || output.run())?;
        Ok(writer)
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
        self.abandon.store(true, Ordering::Relaxed);
    }

    /// The counter that asks for a reopen when incremented.
    pub(crate) fn reopen_requests(&self) -> Requests {
        self.reopen.clone()
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

/// The thread's side of [`Writer`].
struct Output {
    sink: Sink,
    /// The file to reopen on request (none for stdout).
    path: Option<PathBuf>,
    rx: Receiver<Chunk>,
    spare: SyncSender<Vec<u8>>,
    progress: watch::Sender<Progress>,
    error: ErrorSlot,
    abandon: Arc<AtomicBool>,
    reopen: Requests,
    /// Reopen requests served so far.
    reopened: u64,
    /// The last chunk written ended a unit of work.
    boundary: bool,
    /// The last chunk written and synced.
    durable: u64,
}

impl Output {
    fn run(mut self) {
        if let Err(e) = self.serve() {
            let kind = e.kind();
            *self.error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
            let _ = self.progress.send(Progress {
                seq: self.durable,
                failed: Some(kind),
            });
        }
    }

    /// Writes what comes until the handle is dropped or abandons the rest.
    fn serve(&mut self) -> io::Result<()> {
        loop {
            let first = match self.rx.recv_timeout(TICK) {
                Ok(c) => c,
                Err(RecvTimeoutError::Timeout) => {
                    // Nothing to write: notice a reader that went away.
                    if self.path.is_none() && !self.sink.regular && stdout_reader_gone() {
                        return Err(io::ErrorKind::BrokenPipe.into());
                    }
                    self.reopen_if_asked()?;
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            };
            // The old file is synced: a reopen asked for since goes first.
            self.reopen_if_asked()?;
            let mut next = Some(first);
            let mut written = self.durable;
            let mut done = false;
            while let Some(chunk) = next.take() {
                if self.abandon.load(Ordering::Relaxed) {
                    done = true;
                    break;
                }
                self.sink.file.write_all(&chunk.bytes)?;
                written = chunk.seq;
                self.boundary = chunk.boundary;
                let mut bytes = chunk.bytes;
                bytes.clear();
                let _ = self.spare.try_send(bytes);
                // A reopen waits for no more than this chunk.
                if !self.asked() {
                    next = self.rx.try_recv().ok();
                }
            }
            // Only what is synced is reported: a failed fsync completes
            // nothing that it covers.
            self.sink.sync()?;
            self.durable = written;
            let state = Progress {
                seq: written,
                failed: None,
            };
            if self.progress.send(state).is_err() || done {
                return Ok(());
            }
            self.reopen_if_asked()?;
        }
    }

    /// Whether a reopen was asked for and can be done now: the last chunk
    /// ended a unit of work, so the old file ends with a whole transaction.
    fn asked(&self) -> bool {
        self.boundary && self.reopen.load(Ordering::Acquire) > self.reopened
    }

    /// Closes the file and opens `path` again, if asked. Everything written
    /// to the old file is synced by then; later chunks go to the new one.
    fn reopen_if_asked(&mut self) -> io::Result<()> {
        if !self.asked() {
            return Ok(());
        }
        self.reopened = self.reopen.load(Ordering::Acquire);
        let Some(path) = &self.path else {
            return Ok(());
        };
        self.sink = Sink::open(path).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot reopen {}: {e}", path.display()))
        })?;
        log::info!("reopened {}", path.display());
        Ok(())
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
