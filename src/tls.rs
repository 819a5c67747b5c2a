//! TLS for both connections, with libpq's `sslmode` meanings.
//!
//! rustls (with the `ring` provider: no aws-lc, so no cmake or clang to
//! build it) does the TLS; this module decides *whether* and *how*:
//!
//! - [`first_transport`] / [`retry_transport`]: libpq's attempt order.
//!   `allow` tries plain first and retries once with TLS when the server
//!   rejects the login; `prefer` (the default) sends SSLRequest and retries
//!   once without TLS when the handshake fails or the login over TLS is
//!   rejected; `require` and `verify-*` never go without TLS. Unix sockets
//!   never use TLS. [`with_retry`] runs that plan for either connection.
//! - [`Connector`] (`connector.rs`): the rustls client configuration built
//!   from `sslmode`, `sslrootcert` (a file or `system`), `sslcert` and
//!   `sslkey`. As in libpq, a root certificate file that exists turns on
//!   chain verification in every TLS mode; `verify-ca` and `verify-full`
//!   demand one; only `verify-full` checks the host name.
//! - [`negotiate`]: SSLRequest and handshake on our walsender socket;
//!   [`MakeTls`] (`postgres.rs`): the same connector for tokio-postgres.
//! - [`server_end_point`] and [`scram_choice`] (`binding.rs`): SCRAM channel
//!   binding (`tls-server-end-point`, RFC 5929) when the server offers
//!   `SCRAM-SHA-256-PLUS`.
//!
//! A certificate that fails verification is a configuration error (exit 2)
//! whose message says which check failed. Key material is never logged.

mod binding;
mod connector;
mod postgres;

pub(crate) use binding::{scram_choice, Binding, TlsInfo};
pub(crate) use connector::Connector;
pub(crate) use postgres::{tokio_tls_failure, MakeTls};

use std::future::Future;

use bytes::BytesMut;
use log::{debug, info, warn};
use postgres_protocol::message::frontend;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_postgres::error::SqlState;
use tokio_rustls::client::TlsStream;

use connector::{describe, rustls_error, trust_of};

use crate::conninfo::{ConnParams, SslMode};
use crate::error::{Error, Result};

// ---------------------------------------------------------------------------
// Attempt plan
// ---------------------------------------------------------------------------

/// How one connection attempt treats TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    /// No SSLRequest.
    Plain,
    /// SSLRequest; go on without TLS when the server declines (`prefer`).
    IfOffered,
    /// SSLRequest; a server that declines is an error.
    Required,
}

/// Where a failed attempt stopped: what libpq's single retry looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// The server answered `N` to a required SSLRequest.
    Refused,
    /// Setting up TLS or the handshake failed.
    Handshake,
    /// The server rejected the login (an ErrorResponse during startup).
    Rejected { tls: bool },
    /// Anything else (TCP connect, a lost connection): no retry.
    Other,
}

/// A failed attempt.
#[derive(Debug)]
pub(crate) struct Failed {
    pub error: Error,
    pub stage: Stage,
}

impl Failed {
    pub(crate) fn new(stage: Stage, error: Error) -> Failed {
        Failed { error, stage }
    }
}

/// The first attempt's transport.
pub(crate) fn first_transport(params: &ConnParams) -> Transport {
    match params.sslmode {
        _ if params.is_unix_socket() => Transport::Plain,
        SslMode::Disable | SslMode::Allow => Transport::Plain,
        SslMode::Prefer => Transport::IfOffered,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => Transport::Required,
    }
}

/// libpq's one retry: `allow` after a rejected plain login, `prefer` after a
/// failed handshake or a rejected login over TLS.
pub(crate) fn retry_transport(mode: SslMode, failed: Stage) -> Option<Transport> {
    match (mode, failed) {
        (SslMode::Allow, Stage::Rejected { tls: false }) => Some(Transport::Required),
        (SslMode::Prefer, Stage::Handshake | Stage::Rejected { tls: true }) => {
            Some(Transport::Plain)
        }
        _ => None,
    }
}

/// Runs `attempt` with the first transport and, where libpq would, once more
/// with the other one. When an `allow` retry finds that the server has no
/// TLS, the first error is the one that explains the failure.
pub(crate) async fn with_retry<T, F, Fut>(params: &ConnParams, mut attempt: F) -> Result<T>
where
    F: FnMut(Transport) -> Fut,
    Fut: Future<Output = std::result::Result<T, Failed>>,
{
    let first = match attempt(first_transport(params)).await {
        Ok(t) => return Ok(t),
        Err(f) => f,
    };
    let Some(next) = retry_transport(params.sslmode, first.stage) else {
        return Err(first.error);
    };
    match first.stage {
        Stage::Handshake => warn!("{}; retrying without TLS (sslmode=prefer)", first.error),
        _ => info!(
            "{}; retrying {} TLS (sslmode={})",
            first.error,
            if next == Transport::Plain {
                "without"
            } else {
                "with"
            },
            params.sslmode
        ),
    }
    match attempt(next).await {
        Ok(t) => Ok(t),
        Err(second) if second.stage == Stage::Refused => Err(first.error),
        Err(second) => Err(second.error),
    }
}

/// The error for a server that answers `N` to a required SSLRequest.
pub(crate) fn refused(params: &ConnParams) -> Failed {
    Failed::new(
        Stage::Refused,
        Error::usage(format!(
            "cannot connect to {params}: server does not support SSL, but SSL was required (sslmode={})",
            params.sslmode
        )),
    )
}

/// Adds what to do to a pg_hba rejection of a plain connection made with
/// `sslmode=disable` (the server wants TLS from this host).
pub(crate) fn explain_rejection(error: Error, params: &ConnParams) -> Error {
    match error {
        Error::Server {
            context,
            mut source,
        } if params.sslmode == SslMode::Disable
            && source.code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
            && (source.message.contains("no encryption") || source.message.contains("SSL off"))
            && source.hint.is_none() =>
        {
            source.hint = Some(
                "the server may accept only encrypted connections from this host: \
                 use sslmode=require or stronger instead of sslmode=disable"
                    .into(),
            );
            Error::Server { context, source }
        }
        e => e,
    }
}

// ---------------------------------------------------------------------------
// Our walsender socket
// ---------------------------------------------------------------------------

/// A socket after SSL negotiation.
pub(crate) enum Negotiated<S> {
    Plain(S),
    Tls(Box<TlsStream<S>>, TlsInfo),
}

/// Sends SSLRequest unless `transport` is plain, reads the one-byte answer
/// and does the handshake when the server agrees.
pub(crate) async fn negotiate<S>(
    mut stream: S,
    params: &ConnParams,
    transport: Transport,
) -> std::result::Result<Negotiated<S>, Failed>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if transport == Transport::Plain {
        return Ok(Negotiated::Plain(stream));
    }
    let connector = Connector::new(params).map_err(|e| Failed::new(Stage::Handshake, e))?;
    let lost = |e| {
        Failed::new(
            Stage::Other,
            Error::connection(format!("cannot connect to {params}"), e),
        )
    };
    let mut buf = BytesMut::new();
    frontend::ssl_request(&mut buf);
    stream.write_all(&buf).await.map_err(lost)?;
    stream.flush().await.map_err(lost)?;
    // Exactly one byte: nothing unencrypted may be buffered past it.
    let mut answer = [0u8; 1];
    stream.read_exact(&mut answer).await.map_err(lost)?;
    match answer[0] {
        b'S' => match connector.handshake(stream).await {
            Ok(s) => {
                let info = TlsInfo::of(&s);
                Ok(Negotiated::Tls(Box::new(s), info))
            }
            Err(e) => Err(Failed::new(Stage::Handshake, connector.error(e, params))),
        },
        b'N' if transport == Transport::IfOffered => {
            debug!("server does not support SSL; going on without TLS (sslmode=prefer)");
            Ok(Negotiated::Plain(stream))
        }
        b'N' => Err(refused(params)),
        other => Err(Failed::new(
            Stage::Other,
            Error::Protocol(format!(
                "received invalid response to SSL negotiation: {other:#04x}"
            )),
        )),
    }
}

/// A connection error whose cause is TLS (a server's late alert, say, after
/// it checked our client certificate) becomes a configuration error.
pub(crate) fn explain_io(error: Error, params: &ConnParams) -> Error {
    match error {
        Error::Connection { context, source } => match rustls_error(&source) {
            Some(t) => Error::usage(format!(
                "cannot connect to {params}: {}",
                describe(t, &trust_of(params), &params.host)
            )),
            None => Error::Connection { context, source },
        },
        e => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn params(conninfo: &str) -> ConnParams {
        let args = crate::conninfo::ConnArgs {
            dbname: Some(conninfo.into()),
            ..Default::default()
        };
        ConnParams::resolve(&args, &|k: &str| (k == "USER").then(|| "alice".to_string())).unwrap()
    }

    #[test]
    fn attempt_order_follows_libpq() {
        use Stage::*;
        use Transport::*;
        let first = |c: &str| first_transport(&params(c));
        assert_eq!(first("host=h sslmode=disable"), Plain);
        assert_eq!(first("host=h sslmode=allow"), Plain);
        assert_eq!(first("host=h"), IfOffered);
        assert_eq!(first("host=h sslmode=require"), Required);
        assert_eq!(first("host=h sslmode=verify-full"), Required);
        assert_eq!(first("host=/tmp sslmode=verify-full"), Plain);
        let cases = [
            (SslMode::Allow, Rejected { tls: false }, Some(Required)),
            (SslMode::Allow, Other, None),
            (SslMode::Prefer, Handshake, Some(Plain)),
            (SslMode::Prefer, Rejected { tls: true }, Some(Plain)),
            (SslMode::Prefer, Rejected { tls: false }, None),
            (SslMode::Require, Handshake, None),
            (SslMode::Require, Rejected { tls: true }, None),
            (SslMode::VerifyFull, Refused, None),
            (SslMode::Disable, Rejected { tls: false }, None),
        ];
        for (mode, stage, want) in cases {
            assert_eq!(retry_transport(mode, stage), want, "{mode} {stage:?}");
        }
    }

    #[test]
    fn rejected_plain_login_with_disable_says_what_to_do() {
        let e = || {
            Error::Server {
            context: "cannot connect".into(),
            source: crate::error::ServerError {
                code: SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
                message: "pg_hba.conf rejects connection for host \"127.0.0.1\", user \"u\", no encryption".into(),
                detail: None,
                hint: None,
            },
        }
        };
        let shown = explain_rejection(e(), &params("host=h sslmode=disable")).to_string();
        assert!(shown.contains("use sslmode=require or stronger"), "{shown}");
        let shown = explain_rejection(e(), &params("host=h sslmode=prefer")).to_string();
        assert!(!shown.contains("sslmode=require"), "{shown}");
    }
}
