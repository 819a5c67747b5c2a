//! Redis Streams (`redis://`), through redis-rs: `XADD key [MAXLEN ~ N] *
//! id <id> event <line>`, many per pipeline on one multiplexed connection.
//! A message counts as written once Redis replied to its `XADD` (it is in
//! memory and, with AOF, in the append-only file by its fsync policy).

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, ErrorKind, RedisError};

use super::broker::{Acked, Broker, Failure, Msg};
use super::url::RedisTarget;

/// How long a connection attempt, and a reply, may take.
const TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) struct Redis {
    client: Client,
    maxlen: Option<u64>,
}

impl Redis {
    /// The client for `target`; a URL redis-rs refuses is an error.
    pub(crate) fn new(target: RedisTarget) -> Result<Redis, String> {
        let client = Client::open(target.url.as_str()).map_err(|e| e.to_string())?;
        Ok(Redis {
            client,
            maxlen: target.maxlen,
        })
    }
}

impl Broker for Redis {
    type Conn = MultiplexedConnection;
    const NAME: &'static str = "redis";
    // One pipeline at a time: Redis applies a connection's commands in
    // order, and the next pipeline leaves only once this one is answered,
    // so a failure never lets a later XADD in before an earlier one.
    const IN_FLIGHT: usize = 1;

    fn forbidden(_: char) -> bool {
        false
    }

    async fn connect(&self) -> Result<MultiplexedConnection, Failure> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT));
        self.client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| failure("cannot connect", e))
    }

    async fn send(
        &self,
        conn: &mut MultiplexedConnection,
        batch: &[Msg],
    ) -> Result<Acked, Failure> {
        let mut pipe = redis::pipe();
        for msg in batch {
            let xadd = pipe.cmd("XADD").arg(&msg.dest);
            if let Some(n) = self.maxlen {
                xadd.arg("MAXLEN").arg("~").arg(n);
            }
            xadd.arg("*")
                .arg("id")
                .arg(&msg.id)
                .arg("event")
                .arg(&msg.body[..])
                .ignore();
        }
        let mut conn = conn.clone();
        Ok(Box::pin(async move {
            pipe.query_async::<()>(&mut conn)
                .await
                .map_err(|e| failure("XADD failed", e))
        }))
    }
}

/// What `doing` ran into. Authentication, permissions and a key that is
/// not a stream need the operator; anything else may pass.
fn failure(doing: &str, e: RedisError) -> Failure {
    let config = matches!(
        e.kind(),
        ErrorKind::AuthenticationFailed | ErrorKind::InvalidClientConfig
    ) || matches!(
        e.code(),
        Some("WRONGPASS" | "NOAUTH" | "NOPERM" | "WRONGTYPE")
    );
    if config {
        Failure::Config(format!("{doing}: {e}"))
    } else {
        Failure::Down(format!("{doing}: {e}"))
    }
}
