//! The systemd notification protocol (`sd_notify`): `READY=1` once
//! streaming, `STATUS=` with the acknowledged position, `WATCHDOG=1` while
//! the stream loop runs, `STOPPING=1` on shutdown, and `EXTEND_TIMEOUT_USEC=`
//! while a `--snapshot` copies before `READY=1`. A no-op when
//! `NOTIFY_SOCKET` is unset, as when run from a terminal.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use log::debug;

/// How far each `EXTEND_TIMEOUT_USEC=` reaches: several times the gap
/// between two of them, so that a busy moment never lets systemd's start
/// timeout run out while work is still going on.
pub(crate) const EXTEND_BY: Duration = Duration::from_secs(30);

/// A connection to the service manager, if there is one.
#[derive(Debug, Default)]
pub(crate) struct Notifier {
    socket: Option<(UnixDatagram, std::os::unix::net::SocketAddr)>,
    /// Half of `WATCHDOG_USEC`, when systemd expects pings.
    pub watchdog: Option<Duration>,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET` and `WATCHDOG_USEC` (honoured only when
    /// `WATCHDOG_PID` is unset or ours, as sd_notify does).
    pub(crate) fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Notifier {
        let socket = env("NOTIFY_SOCKET").and_then(|path| {
            let addr = socket_addr(&path)?;
            let sock = UnixDatagram::unbound().ok()?;
            Some((sock, addr))
        });
        let ours =
            env("WATCHDOG_PID").is_none_or(|pid| pid.trim() == std::process::id().to_string());
        let watchdog = env("WATCHDOG_USEC")
            .filter(|_| ours && socket.is_some())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|&us| us > 0)
            .map(|us| Duration::from_micros(us / 2));
        Notifier { socket, watchdog }
    }

    /// Sends one notification (newline-separated assignments).
    pub(crate) fn notify(&self, state: &str) {
        if let Some((sock, addr)) = &self.socket {
            if let Err(e) = sock.send_to_addr(state.as_bytes(), addr) {
                debug!("sd_notify failed: {e}");
            }
        }
    }

    /// Before `READY=1`: the start-up is still making progress (`status`),
    /// so systemd's start timeout is pushed [`EXTEND_BY`] beyond now.
    pub(crate) fn extend(&self, status: &str) {
        self.notify(&format!(
            "EXTEND_TIMEOUT_USEC={}\nSTATUS={status}",
            EXTEND_BY.as_micros()
        ));
    }
}

/// A filesystem path, or `@name` for the abstract namespace.
fn socket_addr(path: &str) -> Option<std::os::unix::net::SocketAddr> {
    if let Some(name) = path.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).ok()
    } else if path.starts_with('/') {
        std::os::unix::net::SocketAddr::from_pathname(path).ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_to_the_socket_and_halves_the_watchdog() {
        let dir = std::env::temp_dir().join(format!("pgstream-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let server = UnixDatagram::bind(&path).unwrap();
        let p = path.to_str().unwrap().to_string();
        let n = Notifier::from_env(&|k| match k {
            "NOTIFY_SOCKET" => Some(p.clone()),
            "WATCHDOG_USEC" => Some("4000000".into()),
            _ => None,
        });
        assert_eq!(n.watchdog, Some(Duration::from_secs(2)));
        n.notify("READY=1");
        let mut buf = [0u8; 64];
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1");
        n.extend("snapshot: 1/2 tables");
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(
            &buf[..len],
            b"EXTEND_TIMEOUT_USEC=30000000\nSTATUS=snapshot: 1/2 tables"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn inert_without_socket() {
        let n = Notifier::from_env(&|k| (k == "WATCHDOG_USEC").then(|| "1000".to_string()));
        assert!(n.watchdog.is_none());
        n.notify("READY=1");
    }
}
