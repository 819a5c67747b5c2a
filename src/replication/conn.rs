//! The walsender connection: socket, TLS (see [`crate::tls`]), startup with
//! `replication=database`, authentication (trust, password, md5,
//! SCRAM-SHA-256 with channel binding over TLS), simple queries and
//! CopyBoth I/O. All parsing lives in [`super::protocol`] and
//! postgres-protocol; this file only moves bytes.

use std::io;

use bytes::{Bytes, BytesMut};
use fallible_iterator::FallibleIterator;
use log::{debug, info, warn};
use postgres_protocol::authentication::{md5_hash, sasl};
use postgres_protocol::message::{backend, frontend};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio_postgres::error::SqlState;

use super::protocol::{self, Frame};
use crate::conninfo::{ChannelBinding, ConnParams};
use crate::error::{Error, Result, ServerError};
use crate::tls::{self, Failed, Negotiated, Stage, TlsInfo, Transport};

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// One row of a simple query's result, in text form.
pub(crate) type Row = Vec<Option<String>>;

/// What arrives during CopyBoth.
#[derive(Debug)]
pub(crate) enum CopyEvent {
    /// A CopyData payload.
    Data(Bytes),
    /// The server ended the stream.
    Done,
}

/// A replication connection.
pub(crate) struct ReplicationConn {
    stream: Box<dyn Stream>,
    rbuf: BytesMut,
    wbuf: BytesMut,
    /// `server_version_num` equivalent, from the startup ParameterStatus.
    pub server_version: u32,
}

impl ReplicationConn {
    /// Connects and authenticates. `settings` are extra startup parameters
    /// (the session settings pgstream pins).
    pub(crate) async fn connect(params: &ConnParams, settings: &[(&str, &str)]) -> Result<Self> {
        let connect = Self::connect_inner(params, settings);
        match params.connect_timeout {
            Some(t) => tokio::time::timeout(t, connect).await.map_err(|_| {
                Error::connection(
                    format!("cannot connect to {params}"),
                    io::Error::new(io::ErrorKind::TimedOut, "timeout expired"),
                )
            })?,
            None => connect.await,
        }
    }

    /// One connection with libpq's sslmode plan: at most two attempts (see
    /// [`tls::with_retry`]).
    async fn connect_inner(params: &ConnParams, settings: &[(&str, &str)]) -> Result<Self> {
        tls::with_retry(params, |transport| {
            Self::attempt(params, settings, transport)
        })
        .await
    }

    /// Socket, SSL negotiation, startup and authentication.
    async fn attempt(
        params: &ConnParams,
        settings: &[(&str, &str)],
        transport: Transport,
    ) -> std::result::Result<Self, Failed> {
        let other = |e| {
            Failed::new(
                Stage::Other,
                Error::connection(format!("cannot connect to {params}"), e),
            )
        };
        let (stream, tls): (Box<dyn Stream>, Option<TlsInfo>) = match params.socket_path() {
            Some(path) => (
                Box::new(UnixStream::connect(&path).await.map_err(other)?),
                None,
            ),
            None => {
                let tcp = TcpStream::connect((params.host.as_str(), params.port))
                    .await
                    .map_err(other)?;
                tcp.set_nodelay(true).map_err(other)?;
                params.keepalives.apply(&tcp).map_err(other)?;
                match tls::negotiate(tcp, params, transport).await? {
                    Negotiated::Plain(tcp) => (Box::new(tcp), None),
                    Negotiated::Tls(s, info) => (s, Some(info)),
                }
            }
        };
        let on_tls = tls.is_some();
        let mut conn = ReplicationConn {
            stream,
            rbuf: BytesMut::with_capacity(64 * 1024),
            wbuf: BytesMut::with_capacity(1024),
            server_version: 0,
        };
        let startup = async {
            let mut startup = vec![
                ("user", params.user.as_str()),
                ("database", params.dbname.as_str()),
                ("replication", "database"),
                ("application_name", params.application_name.as_str()),
                ("client_encoding", "UTF8"),
            ];
            startup.extend_from_slice(settings);
            frontend::startup_message(startup.iter().copied(), &mut conn.wbuf)
                .map_err(protocol_err)?;
            conn.flush().await?;
            conn.authenticate(params, tls.as_ref()).await
        };
        match startup.await {
            Ok(()) => Ok(conn),
            Err(e @ Error::Server { .. }) => Err(Failed::new(
                Stage::Rejected { tls: on_tls },
                tls::explain_rejection(e, params),
            )),
            Err(e) => Err(Failed::new(Stage::Other, tls::explain_io(e, params))),
        }
    }

    /// Answers the server's authentication requests; `tls` is the TLS
    /// session's channel-binding data (`None` on a plain connection).
    async fn authenticate(&mut self, params: &ConnParams, tls: Option<&TlsInfo>) -> Result<()> {
        let password = || {
            params
                .password
                .as_deref()
                .map(str::as_bytes)
                .ok_or_else(|| {
                    Error::usage(format!(
                        "password authentication failed for user \"{}\": no password supplied; \
                     set PGPASSWORD or add it to ~/.pgpass",
                        params.user
                    ))
                })
        };
        let mut scram: Option<sasl::ScramSha256> = None;
        // Whether PLUS was chosen, and whether its exchange completed.
        let (mut plus, mut bound) = (false, false);
        let require = params.channel_binding == ChannelBinding::Require;
        // libpq's check_expected_areq: with channel_binding=require, answer
        // nothing but SCRAM, and accept only a login that was bound.
        let refuse_unbound = || {
            Error::usage(format!(
                "cannot connect to {params}: channel binding is required, but the server asks \
                 for an authentication method without it; use scram-sha-256 in pg_hba.conf, \
                 or set channel_binding=prefer"
            ))
        };
        loop {
            match self.read_message().await? {
                backend::Message::AuthenticationOk if require && !bound => {
                    return Err(refuse_unbound());
                }
                backend::Message::AuthenticationOk => {}
                backend::Message::AuthenticationCleartextPassword
                | backend::Message::AuthenticationMd5Password(_)
                    if require =>
                {
                    return Err(refuse_unbound());
                }
                backend::Message::AuthenticationCleartextPassword => {
                    frontend::password_message(password()?, &mut self.wbuf)
                        .map_err(protocol_err)?;
                    self.flush().await?;
                }
                backend::Message::AuthenticationMd5Password(body) => {
                    let hash = md5_hash(params.user.as_bytes(), password()?, body.salt());
                    frontend::password_message(hash.as_bytes(), &mut self.wbuf)
                        .map_err(protocol_err)?;
                    self.flush().await?;
                }
                backend::Message::AuthenticationSasl(body) => {
                    let mechanisms: Vec<String> = body
                        .mechanisms()
                        .map(|m| Ok(m.to_string()))
                        .collect()
                        .map_err(protocol_err)?;
                    let (mechanism, binding) =
                        tls::scram_choice(&mechanisms, tls, params.channel_binding).map_err(
                            |e| Error::usage(format!("cannot connect to {params}: {e}")),
                        )?;
                    plus = matches!(binding, tls::Binding::ServerEndPoint(_));
                    debug!(
                        "authenticating with {mechanism} (channel binding: {})",
                        binding.name()
                    );
                    let s = sasl::ScramSha256::new(password()?, binding.to_sasl());
                    frontend::sasl_initial_response(mechanism, s.message(), &mut self.wbuf)
                        .map_err(protocol_err)?;
                    scram = Some(s);
                    self.flush().await?;
                }
                backend::Message::AuthenticationSaslContinue(body) => {
                    let s = scram.as_mut().ok_or_else(|| unexpected("SASL continue"))?;
                    s.update(body.data()).map_err(protocol_err)?;
                    frontend::sasl_response(s.message(), &mut self.wbuf).map_err(protocol_err)?;
                    self.flush().await?;
                }
                backend::Message::AuthenticationSaslFinal(body) => {
                    let s = scram.as_mut().ok_or_else(|| unexpected("SASL final"))?;
                    s.finish(body.data()).map_err(protocol_err)?;
                    bound = plus;
                }
                backend::Message::ParameterStatus(body) => {
                    let (name, value) = (
                        body.name().map_err(protocol_err)?,
                        body.value().map_err(protocol_err)?,
                    );
                    if name == "server_version" {
                        self.server_version = parse_server_version(value);
                    }
                }
                backend::Message::BackendKeyData(_) => {}
                backend::Message::NoticeResponse(body) => log_notice(&body),
                backend::Message::ReadyForQuery(_) => return Ok(()),
                backend::Message::ErrorResponse(body) => {
                    return Err(server_error(&body, format!("cannot connect to {params}")));
                }
                backend::Message::AuthenticationGss
                | backend::Message::AuthenticationSspi
                | backend::Message::AuthenticationKerberosV5
                | backend::Message::AuthenticationScmCredential => {
                    return Err(Error::usage(
                        "server asks for an authentication method pgstream does not support \
                         (GSS/SSPI/Kerberos); use password, md5 or scram-sha-256 in pg_hba.conf",
                    ));
                }
                _ => return Err(unexpected("message during authentication")),
            }
        }
    }

    /// Runs a simple query and returns its rows (of the last result set).
    pub(crate) async fn simple_query(&mut self, sql: &str) -> Result<Vec<Row>> {
        debug!("replication command: {sql}");
        frontend::query(sql, &mut self.wbuf).map_err(protocol_err)?;
        self.flush().await?;
        let mut rows = Vec::new();
        let mut error = None;
        loop {
            match self.read_message().await? {
                backend::Message::RowDescription(_) => rows.clear(),
                backend::Message::DataRow(body) => {
                    let buf = body.buffer();
                    let row: Row = body
                        .ranges()
                        .map(|r| Ok(r.map(|r| String::from_utf8_lossy(&buf[r]).into_owned())))
                        .collect()
                        .map_err(protocol_err)?;
                    rows.push(row);
                }
                backend::Message::ErrorResponse(body) => {
                    error = Some(server_error(&body, sql_context(sql)))
                }
                backend::Message::NoticeResponse(body) => log_notice(&body),
                backend::Message::ReadyForQuery(_) => {
                    return match error {
                        Some(e) => Err(e),
                        None => Ok(rows),
                    }
                }
                _ => {}
            }
        }
    }

    /// Sends `START_REPLICATION …` and waits for CopyBothResponse.
    pub(crate) async fn start_copy_both(&mut self, sql: &str) -> Result<()> {
        debug!("replication command: {sql}");
        frontend::query(sql, &mut self.wbuf).map_err(protocol_err)?;
        self.flush().await?;
        loop {
            let frame = self.read_frame().await?;
            match frame.tag {
                b'W' => return Ok(()),
                b'E' => {
                    let e = self.frame_error(frame, sql_context(sql))?;
                    // Drain up to ReadyForQuery so the connection stays usable.
                    while self.read_frame().await?.tag != backend::READY_FOR_QUERY_TAG {}
                    return Err(e);
                }
                b'N' => self.frame_notice(frame),
                _ => return Err(unexpected("reply to START_REPLICATION")),
            }
        }
    }

    /// Receives the next CopyData payload. Cancel-safe: a complete frame is
    /// only taken off the buffer when it is returned.
    pub(crate) async fn recv(&mut self) -> Result<CopyEvent> {
        loop {
            let frame = self.read_frame().await?;
            match frame.tag {
                backend::COPY_DATA_TAG => return Ok(CopyEvent::Data(frame.body)),
                backend::COPY_DONE_TAG => return Ok(CopyEvent::Done),
                backend::ERROR_RESPONSE_TAG => {
                    return Err(self.frame_error(frame, "replication stream".to_string())?)
                }
                backend::NOTICE_RESPONSE_TAG => self.frame_notice(frame),
                // CommandComplete/ReadyForQuery after CopyDone, ParameterStatus.
                _ => {}
            }
        }
    }

    /// Queues bytes (an encoded CopyData) and sends them.
    pub(crate) async fn send(&mut self, encode: impl FnOnce(&mut BytesMut)) -> Result<()> {
        encode(&mut self.wbuf);
        self.flush().await
    }

    /// Ends CopyBoth: sends CopyDone and reads until the server has finished
    /// (CopyDone, CommandComplete, ReadyForQuery), then says goodbye.
    pub(crate) async fn finish(mut self) -> Result<()> {
        frontend::copy_done(&mut self.wbuf);
        self.flush().await?;
        loop {
            let frame = self.read_frame().await?;
            match frame.tag {
                backend::READY_FOR_QUERY_TAG => break,
                backend::ERROR_RESPONSE_TAG => {
                    return Err(self.frame_error(frame, "ending the replication stream".into())?)
                }
                _ => {}
            }
        }
        frontend::terminate(&mut self.wbuf);
        self.flush().await?;
        let _ = self.stream.shutdown().await;
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        let buf = self.wbuf.split();
        self.stream.write_all(&buf).await.map_err(lost)?;
        self.stream.flush().await.map_err(lost)
    }

    async fn fill(&mut self) -> Result<()> {
        if self.rbuf.capacity() - self.rbuf.len() < 8 * 1024 {
            self.rbuf.reserve(64 * 1024);
        }
        let n = self.stream.read_buf(&mut self.rbuf).await.map_err(lost)?;
        if n == 0 {
            return Err(lost(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "server closed the connection unexpectedly",
            )));
        }
        Ok(())
    }

    async fn read_frame(&mut self) -> Result<Frame> {
        loop {
            if let Some(frame) = protocol::next_frame(&mut self.rbuf).map_err(protocol_err)? {
                return Ok(frame);
            }
            self.fill().await?;
        }
    }

    async fn read_message(&mut self) -> Result<backend::Message> {
        loop {
            if let Some(m) = backend::Message::parse(&mut self.rbuf).map_err(protocol_err)? {
                return Ok(m);
            }
            self.fill().await?;
        }
    }

    fn frame_error(&mut self, frame: Frame, context: String) -> Result<Error> {
        match reparse(frame)? {
            backend::Message::ErrorResponse(body) => Ok(server_error(&body, context)),
            _ => Err(unexpected("error frame")),
        }
    }

    fn frame_notice(&mut self, frame: Frame) {
        if let Ok(backend::Message::NoticeResponse(body)) = reparse(frame) {
            log_notice(&body);
        }
    }
}

/// Hands a split-off frame back to postgres-protocol's parser.
fn reparse(frame: Frame) -> Result<backend::Message> {
    let mut buf = BytesMut::with_capacity(frame.body.len() + 5);
    buf.extend_from_slice(&[frame.tag]);
    buf.extend_from_slice(&(frame.body.len() as i32 + 4).to_be_bytes());
    buf.extend_from_slice(&frame.body);
    backend::Message::parse(&mut buf)
        .map_err(protocol_err)?
        .ok_or_else(|| unexpected("short frame"))
}

/// `15.4 (Debian …)` → 150004; `9.6.1` → 90601.
fn parse_server_version(v: &str) -> u32 {
    let numeric = v
        .split(|c: char| !c.is_ascii_digit() && c != '.')
        .next()
        .unwrap_or("");
    let mut parts = numeric.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    if major >= 10 {
        major * 10000 + minor
    } else {
        major * 10000 + minor * 100 + parts.next().unwrap_or(0)
    }
}

fn fields(body: &backend::ErrorResponseBody) -> ServerError {
    let mut e = ServerError {
        // Every ErrorResponse carries one (field C), so this stays unseen.
        code: SqlState::INTERNAL_ERROR,
        message: String::new(),
        detail: None,
        hint: None,
    };
    let mut it = body.fields();
    while let Ok(Some(f)) = it.next() {
        let v = String::from_utf8_lossy(f.value_bytes()).into_owned();
        match f.type_() {
            b'C' => e.code = SqlState::from_code(&v),
            b'M' => e.message = v,
            b'D' => e.detail = Some(v),
            b'H' => e.hint = Some(v),
            _ => {}
        }
    }
    e
}

fn server_error(body: &backend::ErrorResponseBody, context: String) -> Error {
    Error::Server {
        context,
        source: fields(body),
    }
}

fn log_notice(body: &backend::NoticeResponseBody) {
    let mut it = body.fields();
    let (mut severity, mut message) = (String::new(), String::new());
    while let Ok(Some(f)) = it.next() {
        match f.type_() {
            b'V' => severity = String::from_utf8_lossy(f.value_bytes()).into_owned(),
            b'M' => message = String::from_utf8_lossy(f.value_bytes()).into_owned(),
            _ => {}
        }
    }
    match severity.as_str() {
        "WARNING" => warn!("server: {message}"),
        "NOTICE" | "INFO" => info!("server: {message}"),
        _ => debug!("server: {message}"),
    }
}

/// The command's first words, for error context (never a whole command).
fn sql_context(sql: &str) -> String {
    let words: Vec<&str> = sql.split_whitespace().take(2).collect();
    words.join(" ").to_lowercase()
}

fn lost(e: io::Error) -> Error {
    Error::connection("connection to server lost", e)
}

fn protocol_err(e: io::Error) -> Error {
    Error::Protocol(e.to_string())
}

fn unexpected(what: &str) -> Error {
    Error::Protocol(format!("unexpected {what}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn server_version() {
        assert_eq!(
            super::parse_server_version("15.18 (Debian 15.18-0+deb12u1)"),
            150018
        );
        assert_eq!(super::parse_server_version("18beta1"), 180000);
        assert_eq!(super::parse_server_version("9.6.24"), 90624);
    }
}
