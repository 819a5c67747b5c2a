//! The library's error type. Each variant knows its exit code and whether a
//! reconnect could fix it; `main` adds nothing but the `pgstream:` prefix.

use std::io;

use tokio_postgres::error::SqlState;

use crate::decode::DecodeError;
use crate::sink::HandlerError;

/// Result alias for the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error from the server (ErrorResponse), with its SQLSTATE.
#[derive(Debug, Clone)]
pub struct ServerError {
    /// SQLSTATE, e.g. [`SqlState::UNDEFINED_OBJECT`] (`42704`).
    pub code: SqlState,
    /// The primary message.
    pub message: String,
    /// DETAIL, if any.
    pub detail: Option<String>,
    /// HINT, if any.
    pub hint: Option<String>,
}

impl std::error::Error for ServerError {}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.message)?;
        if let Some(d) = &self.detail {
            write!(f, " ({d})")?;
        }
        if let Some(h) = &self.hint {
            write!(f, "; {}", h.trim_end_matches('.').to_lowercase())?;
        }
        Ok(())
    }
}

/// Everything that can stop pgstream.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bad flags or configuration, or a server state only the operator can
    /// fix (exit 2). The message says what to do.
    #[error("{0}")]
    Usage(String),
    /// The server refused or failed an operation.
    #[error("{context}: {source}")]
    Server {
        /// What pgstream was doing.
        context: String,
        /// What the server said.
        source: ServerError,
    },
    /// The connection could not be made or was lost.
    #[error("{context}: {source}")]
    Connection {
        /// What pgstream was doing.
        context: String,
        /// The socket's error.
        source: io::Error,
    },
    /// The server broke the protocol.
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// A runtime failure that reconnecting cannot repair (exit 1).
    #[error("{0}")]
    Runtime(String),
    /// A message from the slot that the decoder could not read.
    #[error("slot \"{slot}\" at {lsn}: {source}")]
    Decode {
        /// The slot streamed.
        slot: String,
        /// The message's WAL position.
        lsn: String,
        /// What was wrong with it.
        source: DecodeError,
    },
    /// Writing the output failed (a closed pipe is a clean stop, see
    /// [`Error::is_broken_pipe`]).
    #[error("cannot write output: {0}")]
    Output(io::Error),
    /// The slot pgstream streams from is gone or invalidated: changes may
    /// be missing, and no retry can bring them back (exit 3).
    #[error(
        "replication slot \"{slot}\" {reason}: changes since it was last read may be missing; resynchronise from a new slot with --snapshot (or --backfill)"
    )]
    SlotLost {
        /// The slot's name.
        slot: String,
        /// What became of it: `no longer exists`, `has been invalidated (…)`.
        reason: String,
    },
    /// A server state that passes by itself, retried like a lost connection
    /// (a synchronised slot on a standby before its promotion).
    #[error("{0}")]
    Waiting(String),
    /// The [`Handler`](crate::Handler) failed (exit 1).
    #[error("handler failed: {0}")]
    Handler(HandlerError),
}

impl Error {
    /// A usage/configuration error.
    pub fn usage(msg: impl Into<String>) -> Self {
        Error::Usage(msg.into())
    }

    /// A connection error with what we were doing.
    pub fn connection(context: impl Into<String>, source: io::Error) -> Self {
        Error::Connection {
            context: context.into(),
            source,
        }
    }

    /// The process exit code for this error (SPEC §5).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => 2,
            Error::SlotLost { .. } => 3,
            Error::Server { source, .. } if is_config_sqlstate(&source.code) => 2,
            Error::Output(e) if e.kind() == io::ErrorKind::BrokenPipe => 0,
            _ => 1,
        }
    }

    /// Whether reconnecting may cure this error.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Connection { .. } | Error::Waiting(_) => true,
            Error::Server { source, .. } => !is_config_sqlstate(&source.code),
            _ => false,
        }
    }

    /// A handler's error as the library reports it: [`Error::Handler`],
    /// never retried, but for an [`Error`] that no retry cures, which keeps
    /// its meaning and exit code (a closed output is a clean stop, a
    /// broker's configuration error exits 2).
    pub(crate) fn from_handler(e: HandlerError) -> Error {
        match e.downcast::<Error>() {
            Ok(e) if !e.is_transient() => *e,
            Ok(e) => Error::Handler(e),
            Err(e) => Error::Handler(e),
        }
    }

    /// Whether the reader of our output has gone away.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Output(e) if e.kind() == io::ErrorKind::BrokenPipe)
    }
}

/// SQLSTATEs that no retry can fix: authentication, privileges, missing
/// objects, configuration.
const CONFIG_SQLSTATES: [SqlState; 10] = [
    SqlState::INVALID_CATALOG_NAME,             // no such database
    SqlState::INSUFFICIENT_PRIVILEGE,           // no REPLICATION
    SqlState::UNDEFINED_OBJECT,                 // slot, publication
    SqlState::DUPLICATE_OBJECT,                 // slot exists
    SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE, // wal_level, invalidated slot
    SqlState::OBJECT_IN_USE,                    // slot active elsewhere
    SqlState::INVALID_NAME,
    SqlState::INVALID_PARAMETER_VALUE,
    SqlState::FEATURE_NOT_SUPPORTED,
    SqlState::CONFIGURATION_LIMIT_EXCEEDED, // max_replication_slots
];

/// A [`CONFIG_SQLSTATES`] code, or any of class 28 (invalid authorization
/// specification: a pg_hba reject, no such role, a wrong password).
fn is_config_sqlstate(code: &SqlState) -> bool {
    CONFIG_SQLSTATES.contains(code) || code.code().starts_with("28")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(code: SqlState) -> Error {
        Error::Server {
            context: "starting".into(),
            source: ServerError {
                code,
                message: "m".into(),
                detail: None,
                hint: None,
            },
        }
    }

    #[test]
    fn sqlstates_that_no_retry_fixes_exit_2() {
        for code in [SqlState::INVALID_PASSWORD, SqlState::OBJECT_IN_USE] {
            let e = server(code);
            assert_eq!((e.exit_code(), e.is_transient()), (2, false), "{e:?}");
        }
        let e = server(SqlState::ADMIN_SHUTDOWN);
        assert_eq!((e.exit_code(), e.is_transient()), (1, true));
    }
}
