//! libpq's TCP keepalive settings (`keepalives`, `keepalives_idle`,
//! `keepalives_interval`, `keepalives_count`) and `tcp_user_timeout`, applied
//! to the replication socket (ours) and to tokio-postgres's catalog and
//! snapshot sockets. They keep an idle connection open through NATs and
//! firewalls, and make the kernel close one whose peer vanished without a
//! FIN or RST, which the next query then notices.

use std::os::fd::AsFd;
use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};

use super::{ConnInfoError, Opts};

/// Where not configured: probes after a minute of silence, 10 s apart, 6 of
/// them, so a dead peer is noticed within about two minutes, and NATs
/// (which forget an idle flow after a few minutes) keep the connection.
/// libpq leaves these to the OS instead (two hours of silence on Linux),
/// too long for a daemon whose catalog connection idles for hours.
const IDLE: Duration = Duration::from_secs(60);
const INTERVAL: Duration = Duration::from_secs(10);
const COUNT: u32 = 6;

/// TCP keepalive and user timeout settings of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Keepalives {
    /// `keepalives`: 0 turns them off (on by default, as in libpq).
    pub enabled: bool,
    /// `keepalives_idle`: silence before the first probe.
    pub idle: Duration,
    /// `keepalives_interval`: between unanswered probes.
    pub interval: Duration,
    /// `keepalives_count`: unanswered probes before the kernel gives up.
    pub count: u32,
    /// `tcp_user_timeout` (milliseconds in libpq): how long sent data may
    /// stay unacknowledged before the kernel closes the connection; `None`
    /// leaves the OS default.
    pub user_timeout: Option<Duration>,
}

impl Default for Keepalives {
    fn default() -> Self {
        Keepalives {
            enabled: true,
            idle: IDLE,
            interval: INTERVAL,
            count: COUNT,
            user_timeout: None,
        }
    }
}

impl Keepalives {
    /// Takes the settings out of `o`. Values are integers as in libpq; one
    /// of 0 or less keeps the default (libpq would pass it to the kernel,
    /// which refuses it for all but `tcp_user_timeout`, where 0 means the
    /// OS default).
    pub(super) fn take(o: &mut Opts) -> Result<Keepalives, ConnInfoError> {
        let mut int = |key: &'static str| {
            o.take(key)
                .map(|v| match v.trim().parse::<i64>() {
                    Ok(n) => Ok(n),
                    Err(_) => Err(ConnInfoError::InvalidValue(key, v)),
                })
                .transpose()
        };
        let positive = |n: Option<i64>| n.and_then(|n| u32::try_from(n).ok()).filter(|&n| n > 0);
        let secs = |n: Option<i64>, default| {
            positive(n).map_or(default, |s| Duration::from_secs(s.into()))
        };
        let d = Keepalives::default();
        Ok(Keepalives {
            enabled: int("keepalives")?.is_none_or(|n| n != 0),
            idle: secs(int("keepalives_idle")?, d.idle),
            interval: secs(int("keepalives_interval")?, d.interval),
            count: positive(int("keepalives_count")?).unwrap_or(d.count),
            user_timeout: positive(int("tcp_user_timeout")?)
                .map(|ms| Duration::from_millis(ms.into())),
        })
    }

    /// Sets them on a TCP socket of ours (the replication connection).
    pub(crate) fn apply(&self, socket: &impl AsFd) -> std::io::Result<()> {
        let socket = SockRef::from(socket);
        if self.enabled {
            socket.set_tcp_keepalive(
                &TcpKeepalive::new()
                    .with_time(self.idle)
                    .with_interval(self.interval)
                    .with_retries(self.count),
            )?;
        }
        if let Some(t) = self.user_timeout {
            socket.set_tcp_user_timeout(Some(t))?;
        }
        Ok(())
    }

    /// Has tokio-postgres set them on the sockets it opens.
    pub(crate) fn configure(&self, config: &mut tokio_postgres::Config) {
        config
            .keepalives(self.enabled)
            .keepalives_idle(self.idle)
            .keepalives_interval(self.interval)
            .keepalives_retries(self.count);
        if let Some(t) = self.user_timeout {
            config.tcp_user_timeout(t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keepalives(conninfo: &str) -> Result<Keepalives, ConnInfoError> {
        Keepalives::take(&mut super::super::parse(conninfo)?)
    }

    #[test]
    fn defaults_and_given_values() {
        assert_eq!(keepalives("host=x"), Ok(Keepalives::default()));
        assert_eq!(
            keepalives(
                "keepalives=1 keepalives_idle=7 keepalives_interval=3 keepalives_count=2 \
                 tcp_user_timeout=1500"
            ),
            Ok(Keepalives {
                enabled: true,
                idle: Duration::from_secs(7),
                interval: Duration::from_secs(3),
                count: 2,
                user_timeout: Some(Duration::from_millis(1500)),
            })
        );
        let uri = keepalives("postgresql://h/db?keepalives=0&keepalives_idle=0&tcp_user_timeout=0");
        assert_eq!(
            uri,
            Ok(Keepalives {
                enabled: false,
                ..Keepalives::default()
            })
        );
    }

    #[test]
    fn a_value_that_is_not_an_integer_is_refused() {
        assert_eq!(
            keepalives("keepalives_idle=soon"),
            Err(ConnInfoError::InvalidValue(
                "keepalives_idle",
                "soon".to_string()
            ))
        );
        assert!(keepalives("keepalives=yes").is_err());
    }

    #[test]
    fn applied_to_a_real_socket() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let socket = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let k = keepalives(
            "keepalives_idle=7 keepalives_interval=3 keepalives_count=2 tcp_user_timeout=1500",
        )
        .unwrap();
        k.apply(&socket).unwrap();
        let s = SockRef::from(&socket);
        assert!(s.keepalive().unwrap());
        assert_eq!(s.tcp_keepalive_time().unwrap(), Duration::from_secs(7));
        assert_eq!(s.tcp_keepalive_interval().unwrap(), Duration::from_secs(3));
        assert_eq!(s.tcp_keepalive_retries().unwrap(), 2);
        assert_eq!(
            s.tcp_user_timeout().unwrap(),
            Some(Duration::from_millis(1500))
        );

        let off = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        keepalives("keepalives=0").unwrap().apply(&off).unwrap();
        assert!(!SockRef::from(&off).keepalive().unwrap());
    }
}
