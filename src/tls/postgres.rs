//! tokio-postgres's side of [`Connector`], for the catalog and snapshot
//! connections: a `MakeTlsConnect` that also reports channel-binding data
//! and whether the server agreed to TLS, and refuses, as libpq does, a
//! server that offers SCRAM-SHA-256-PLUS with a certificate it cannot hash
//! (tokio-postgres would fall back to plain SCRAM).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::client::TlsStream;

use super::binding::{offers_scram_plus, Unbindable};
use super::connector::{describe, rustls_error, trust_of};
use super::{refused, Connector, Failed, Stage, TlsInfo};
use crate::conninfo::{ChannelBinding, ConnParams};
use crate::error::Error;

/// tokio-postgres's side of [`Connector`]; remembers whether a handshake
/// was started (whether the server said `S`), which decides libpq's retry.
#[derive(Clone)]
pub(crate) struct MakeTls {
    connector: Option<Connector>,
    started: Arc<AtomicBool>,
    binding: ChannelBinding,
}

impl MakeTls {
    /// For a plain attempt (tokio-postgres never calls it then).
    pub(crate) fn none() -> MakeTls {
        MakeTls {
            connector: None,
            started: Arc::default(),
            binding: ChannelBinding::default(),
        }
    }

    pub(crate) fn new(connector: Connector, binding: ChannelBinding) -> MakeTls {
        MakeTls {
            connector: Some(connector),
            started: Arc::default(),
            binding,
        }
    }

    /// Whether a handshake has been started.
    pub(crate) fn started(&self) -> Arc<AtomicBool> {
        self.started.clone()
    }
}

impl<S> tokio_postgres::tls::MakeTlsConnect<S> for MakeTls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = PgTlsStream<S>;
    type TlsConnect = MakeTls;
    type Error = io::Error;

    /// The host name comes from our parameters, not from tokio-postgres.
    fn make_tls_connect(&mut self, _domain: &str) -> io::Result<MakeTls> {
        Ok(self.clone())
    }
}

impl<S> tokio_postgres::tls::TlsConnect<S> for MakeTls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = PgTlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<PgTlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            self.started.store(true, Ordering::Relaxed);
            let connector = self
                .connector
                .ok_or_else(|| io::Error::other("TLS is not configured"))?;
            let s = connector.handshake(stream).await?;
            let info = TlsInfo::of(&s);
            // Only an unhashable certificate needs the first message read.
            let watch = (info.server_end_point.is_none()
                && self.binding != ChannelBinding::Disable)
                .then(Vec::new);
            Ok(PgTlsStream {
                inner: s,
                info,
                watch,
            })
        })
    }
}

/// A TLS stream for tokio-postgres, with its channel binding data.
pub(crate) struct PgTlsStream<S> {
    inner: TlsStream<S>,
    info: TlsInfo,
    /// The server's first bytes, while they may yet offer SCRAM-SHA-256-PLUS
    /// that we cannot bind.
    watch: Option<Vec<u8>>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for PgTlsStream<S> {
    fn channel_binding(&self) -> tokio_postgres::tls::ChannelBinding {
        match &self.info.server_end_point {
            Some(hash) => tokio_postgres::tls::ChannelBinding::tls_server_end_point(hash.clone()),
            None => tokio_postgres::tls::ChannelBinding::none(),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for PgTlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        std::task::ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        if let Some(seen) = &mut self.watch {
            let new = &buf.filled()[before..];
            seen.extend_from_slice(new);
            match offers_scram_plus(seen) {
                Some(true) => return Poll::Ready(Err(io::Error::other(Unbindable))),
                Some(false) => self.watch = None,
                None if new.is_empty() => self.watch = None, // end of stream
                None => {}
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for PgTlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Sorts a tokio-postgres connect error: TLS failures become our
/// configuration errors with their stage; `None` for everything else.
pub(crate) fn tokio_tls_failure(e: &tokio_postgres::Error, params: &ConnParams) -> Option<Failed> {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let io = s.downcast_ref::<io::Error>();
        if let Some(u) = io.and_then(|e| e.get_ref()?.downcast_ref::<Unbindable>()) {
            let e = Error::usage(format!("cannot connect to {params}: {u}"));
            return Some(Failed::new(Stage::Other, e));
        }
        if let Some(t) = s.downcast_ref::<io::Error>().and_then(rustls_error) {
            let msg = format!(
                "cannot connect to {params}: {}",
                describe(t, &trust_of(params), &params.host)
            );
            return Some(Failed::new(Stage::Handshake, Error::usage(msg)));
        }
        source = s.source();
    }
    let text = e.to_string();
    if text.starts_with("error performing TLS handshake") {
        let cause = std::error::Error::source(e)
            .map(|s| s.to_string())
            .unwrap_or_default();
        if cause == "server does not support TLS" {
            return Some(refused(params));
        }
        let io = io::Error::other(format!("TLS handshake failed: {cause}"));
        return Some(Failed::new(
            Stage::Handshake,
            Error::connection(format!("cannot connect to {params}"), io),
        ));
    }
    None
}
