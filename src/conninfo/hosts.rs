//! libpq's multi-host settings: `host=a,b port=1,2` (or one port for all),
//! `target_session_attrs` and `load_balance_hosts`. Parsing only; walking
//! the list is `crate::sql::server`'s.

use std::fmt;
use std::str::FromStr;

use super::ConnInfoError;

/// One server of a host list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// A host name or IP address, or a unix socket directory (`/…`).
    pub host: String,
    pub port: u16,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.starts_with('/') {
            write!(f, "{} (port {})", self.host, self.port)
        } else if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Pairs a comma-separated host list with a port list of the same length
/// or a single port, as libpq does; an empty entry is the default.
pub(crate) fn endpoints(
    hosts: &str,
    ports: Option<&str>,
    default_host: &str,
    default_port: u16,
) -> Result<Vec<Endpoint>, ConnInfoError> {
    let hosts: Vec<&str> = hosts.split(',').map(str::trim).collect();
    let ports: Vec<u16> = match ports {
        None => vec![default_port],
        Some(p) => p
            .split(',')
            .map(|p| match p.trim() {
                "" => Ok(default_port),
                t => match t.parse::<u16>() {
                    Ok(n) if n > 0 => Ok(n),
                    _ => Err(ConnInfoError::InvalidValue("port", p.to_string())),
                },
            })
            .collect::<Result<_, _>>()?,
    };
    if ports.len() != 1 && ports.len() != hosts.len() {
        return Err(ConnInfoError::PortCount {
            ports: ports.len(),
            hosts: hosts.len(),
        });
    }
    Ok(hosts
        .iter()
        .enumerate()
        .map(|(i, h)| Endpoint {
            host: if h.is_empty() { default_host } else { h }.to_string(),
            port: ports[if ports.len() == 1 { 0 } else { i }],
        })
        .collect())
}

/// `target_session_attrs`: which kind of server a connection must reach.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum SessionAttrs {
    #[default]
    Any,
    /// `SHOW transaction_read_only` is `off`.
    ReadWrite,
    /// `SHOW transaction_read_only` is `on`.
    ReadOnly,
    /// Not in recovery.
    Primary,
    /// In recovery (a hot standby).
    Standby,
    /// A standby if the list has one that answers, else any server.
    PreferStandby,
}

impl SessionAttrs {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SessionAttrs::Any => "any",
            SessionAttrs::ReadWrite => "read-write",
            SessionAttrs::ReadOnly => "read-only",
            SessionAttrs::Primary => "primary",
            SessionAttrs::Standby => "standby",
            SessionAttrs::PreferStandby => "prefer-standby",
        }
    }

    /// Whether a server whose `transaction_read_only` and
    /// `pg_is_in_recovery()` are as given qualifies.
    pub(crate) fn accepts(self, read_only: bool, in_recovery: bool) -> bool {
        match self {
            SessionAttrs::Any | SessionAttrs::PreferStandby => true,
            SessionAttrs::ReadWrite => !read_only,
            SessionAttrs::ReadOnly => read_only,
            SessionAttrs::Primary => !in_recovery,
            SessionAttrs::Standby => in_recovery,
        }
    }
}

impl FromStr for SessionAttrs {
    type Err = ConnInfoError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "any" => SessionAttrs::Any,
            "read-write" => SessionAttrs::ReadWrite,
            "read-only" => SessionAttrs::ReadOnly,
            "primary" => SessionAttrs::Primary,
            "standby" => SessionAttrs::Standby,
            "prefer-standby" => SessionAttrs::PreferStandby,
            _ => {
                return Err(ConnInfoError::InvalidValue(
                    "target_session_attrs",
                    s.to_string(),
                ))
            }
        })
    }
}

/// `load_balance_hosts=random`: whether to shuffle the list per attempt.
pub(crate) fn load_balance(value: &str) -> Result<bool, ConnInfoError> {
    match value {
        "disable" => Ok(false),
        "random" => Ok(true),
        _ => Err(ConnInfoError::InvalidValue(
            "load_balance_hosts",
            value.to_string(),
        )),
    }
}

/// `list` in a random order (Fisher–Yates on std's randomly keyed hasher:
/// spreading connections needs no cryptographic randomness).
pub(crate) fn shuffled<T: Clone>(list: &[T]) -> Vec<T> {
    use std::hash::{BuildHasher, Hasher};
    let mut out = list.to_vec();
    let state = std::collections::hash_map::RandomState::new();
    for i in (1..out.len()).rev() {
        let mut h = state.build_hasher();
        h.write_usize(i);
        let j = (h.finish() % (i as u64 + 1)) as usize;
        out.swap(i, j);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eps(list: &[Endpoint]) -> Vec<String> {
        list.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn host_and_port_lists() {
        let e = endpoints("a,b", Some("1,2"), "localhost", 5432).unwrap();
        assert_eq!(eps(&e), ["a:1", "b:2"]);
        let e = endpoints("a,,/tmp", Some("7"), "localhost", 5432).unwrap();
        assert_eq!(eps(&e), ["a:7", "localhost:7", "/tmp (port 7)"]);
        let e = endpoints("a,b", Some(",9"), "localhost", 5432).unwrap();
        assert_eq!(eps(&e), ["a:5432", "b:9"]);
        let e = endpoints("::1", None, "localhost", 5432).unwrap();
        assert_eq!(eps(&e), ["[::1]:5432"]);
        assert_eq!(
            endpoints("a,b,c", Some("1,2"), "x", 1).unwrap_err(),
            ConnInfoError::PortCount { ports: 2, hosts: 3 }
        );
        assert!(endpoints("a", Some("x"), "x", 1).is_err());
    }

    #[test]
    fn session_attrs() {
        use SessionAttrs::*;
        let all = [Any, ReadWrite, ReadOnly, Primary, Standby, PreferStandby];
        for a in all {
            assert_eq!(a.as_str().parse::<SessionAttrs>().unwrap(), a);
        }
        assert!(ReadWrite.accepts(false, false) && !ReadWrite.accepts(true, true));
        assert!(Standby.accepts(true, true) && !Standby.accepts(false, false));
        assert!(ReadOnly.accepts(true, false) && !Primary.accepts(true, true));
        assert!("master".parse::<SessionAttrs>().is_err());
        assert!(load_balance("random").unwrap() && !load_balance("disable").unwrap());
        assert!(load_balance("on").is_err());
    }

    #[test]
    fn shuffled_keeps_every_entry() {
        let list: Vec<u32> = (0..20).collect();
        let mut s = shuffled(&list);
        s.sort_unstable();
        assert_eq!(s, list);
    }
}
