//! NATS JetStream (`nats://`), through async-nats, the NATS maintainers'
//! client. Each message is a JetStream publish with `Nats-Msg-Id` set to
//! its idempotency id, so the stream's duplicate window drops what a
//! restart sends again; it counts as written once the stream acknowledged
//! it (stored it).

use std::time::Duration;

use async_nats::jetstream::context::{GetStreamByNameErrorKind, PublishErrorKind};
use async_nats::jetstream::{self, message::PublishMessage};
use async_nats::{ConnectErrorKind, ConnectOptions};

use super::broker::{Acked, Broker, Failure, Msg};
use super::url::NatsTarget;

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) struct Nats {
    servers: Vec<String>,
    credentials: Option<(String, String)>,
}

impl Nats {
    pub(crate) fn new(target: NatsTarget) -> Nats {
        Nats {
            servers: target.servers,
            credentials: target.credentials,
        }
    }
}

impl Broker for Nats {
    type Conn = jetstream::Context;
    const NAME: &'static str = "nats";
    // 16 runs of `BATCH` (256) publishes awaiting their acks: 4096, under
    // the 5000 ack permits of an async-nats context, so a publish never
    // waits for a permit that only an unpolled ack would give back.
    const IN_FLIGHT: usize = 16;

    fn forbidden(c: char) -> bool {
        c.is_whitespace() || c == '*' || c == '>'
    }

    async fn connect(&self) -> Result<jetstream::Context, Failure> {
        let mut options = ConnectOptions::new().connection_timeout(CONNECT_TIMEOUT);
        if let Some((user, password)) = &self.credentials {
            options = options.user_and_password(user.clone(), password.clone());
        }
        let client = options
            .connect(self.servers.as_slice())
            .await
            .map_err(|e| match e.kind() {
                ConnectErrorKind::AuthorizationViolation | ConnectErrorKind::Authentication => {
                    Failure::Config(format!("the server refused the credentials: {e}"))
                }
                ConnectErrorKind::ServerParse | ConnectErrorKind::Tls => {
                    Failure::Config(format!("cannot connect: {e}"))
                }
                _ => Failure::Down(format!("cannot connect: {e}")),
            })?;
        Ok(jetstream::new(client))
    }

    async fn send(&self, js: &mut jetstream::Context, batch: &[Msg]) -> Result<Acked, Failure> {
        let mut acks = Vec::with_capacity(batch.len());
        for msg in batch {
            let publish = PublishMessage::build()
                .payload(msg.body.clone())
                .message_id(&msg.id);
            let ack = js
                .send_publish(msg.dest.clone(), publish)
                .await
                .map_err(|e| match e.kind() {
                    PublishErrorKind::TimedOut | PublishErrorKind::BrokenPipe => {
                        Failure::Down(format!("cannot publish: {e}"))
                    }
                    // A subject the server cannot take, a message over its
                    // max_payload: sending it again changes nothing.
                    _ => Failure::Config(format!("cannot publish to \"{}\": {e}", msg.dest)),
                })?;
            acks.push((msg.dest.clone(), ack));
        }
        let js = js.clone();
        Ok(Box::pin(async move {
            for (subject, ack) in acks {
                if let Err(e) = ack.await {
                    return Err(match e.kind() {
                        PublishErrorKind::StreamNotFound => no_stream(&js, &subject).await,
                        _ => Failure::Down(format!("no acknowledgement for \"{subject}\": {e}")),
                    });
                }
            }
            Ok(())
        }))
    }
}

/// A publish had no responders: no stream captures the subject, or the
/// server is shutting down (it answers the same). Ask the JetStream API.
async fn no_stream(js: &jetstream::Context, subject: &str) -> Failure {
    match js.stream_by_subject(subject).await {
        Err(e) if e.kind() == GetStreamByNameErrorKind::NotFound => Failure::Config(format!(
            "no JetStream stream captures subject \"{subject}\": create one (nats stream add --subjects '{subject}') or set ?subject="
        )),
        Ok(stream) => Failure::Down(format!(
            "stream {stream} did not answer for \"{subject}\" (the server may be shutting down)"
        )),
        Err(e) => Failure::Down(format!(
            "no responders for \"{subject}\", and the JetStream API did not answer: {e}"
        )),
    }
}
