//! `--sink URL`: which broker, where, as whom, and the settings in its
//! query string (SPEC §8). Nothing here keeps the URL whole: what is shown
//! in logs and errors ([`Target::shown`]) never holds the password.

use serde::Deserialize;

use super::template::Template;
use crate::error::{Error, Result};

/// A parsed `--sink` URL.
#[derive(Debug)]
pub(crate) enum Target {
    Nats(NatsTarget),
    Redis(RedisTarget),
    #[cfg(feature = "kafka")]
    Kafka(KafkaTarget),
}

/// `nats://[user:pass@]host[:port][,host…]?subject=TEMPLATE`
#[derive(Debug)]
pub(crate) struct NatsTarget {
    /// `nats://host:port`, one per server.
    pub(crate) servers: Vec<String>,
    /// User and password, percent-decoded.
    pub(crate) credentials: Option<(String, String)>,
    pub(crate) subject: Template,
}

/// `redis://[user:pass@]host[:port][/db]?stream=TEMPLATE&maxlen=N`
#[derive(Debug)]
pub(crate) struct RedisTarget {
    /// What redis-rs connects to: the URL without pgstream's query.
    pub(crate) url: String,
    pub(crate) stream: Template,
    pub(crate) maxlen: Option<u64>,
}

/// `kafka://host[:port][,host…]?topic=TEMPLATE`
#[derive(Debug)]
pub(crate) struct KafkaTarget {
    /// `host:port`, one per bootstrap server.
    pub(crate) servers: Vec<String>,
    pub(crate) topic: Template,
}

/// The query of a `nats://` URL: every setting it may hold, no other
/// (empty is unset).
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct NatsQuery {
    subject: String,
}

impl Default for NatsQuery {
    fn default() -> Self {
        NatsQuery {
            subject: "pgstream.{schema}.{table}".into(),
        }
    }
}

/// The query of a `redis://` URL.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RedisQuery {
    stream: String,
    maxlen: String,
}

impl Default for RedisQuery {
    fn default() -> Self {
        RedisQuery {
            stream: "pgstream:{schema}.{table}".into(),
            maxlen: String::new(),
        }
    }
}

/// The query of a `kafka://` URL.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct KafkaQuery {
    topic: String,
}

impl Default for KafkaQuery {
    fn default() -> Self {
        KafkaQuery {
            topic: "pgstream.{schema}.{table}".into(),
        }
    }
}

/// The schemes this build takes, for error messages.
#[cfg(feature = "kafka")]
const SCHEMES: &str = "nats://, redis:// or kafka://";
#[cfg(not(feature = "kafka"))]
const SCHEMES: &str = "nats:// or redis://";

impl Target {
    /// Parses a `--sink` URL; anything wrong is a usage error (exit 2)
    /// that does not repeat the password.
    pub(crate) fn parse(url: &str) -> Result<Target> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| Error::usage(format!("invalid --sink URL: expected {SCHEMES}")))?;
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (userinfo, hosts) = match rest.rsplit_once('@') {
            Some((userinfo, hosts)) => (Some(userinfo), hosts),
            None => (None, rest),
        };
        let (hosts, path) = hosts.split_once('/').unwrap_or((hosts, ""));
        let bad =
            |why: String| Error::usage(format!("invalid --sink URL {scheme}://{hosts}: {why}"));
        let pairs = url::form_urlencoded::parse(query.as_bytes()).into_owned();
        let query = serde::de::value::MapDeserializer::<_, serde::de::value::Error>::new(pairs);
        match scheme {
            "nats" => {
                let q = NatsQuery::deserialize(query).map_err(|e| bad(e.to_string()))?;
                let servers = servers(scheme, hosts, path, 4222, "nats://").map_err(bad)?;
                let credentials = userinfo.map(credentials).transpose().map_err(bad)?;
                Ok(Target::Nats(NatsTarget {
                    servers,
                    credentials,
                    subject: Template::parse(&q.subject).map_err(bad)?,
                }))
            }
            "redis" => {
                let q = RedisQuery::deserialize(query).map_err(|e| bad(e.to_string()))?;
                let (host, port) = host_port(hosts, 6379).map_err(bad)?;
                if !path.is_empty() && path.parse::<u32>().is_err() {
                    return Err(bad(format!("\"{path}\" is not a database number")));
                }
                if let Some(userinfo) = userinfo {
                    credentials(userinfo).map_err(bad)?;
                }
                let maxlen = match q.maxlen.as_str() {
                    "" => None,
                    n => Some(
                        n.parse::<u64>()
                            .map_err(|_| bad(format!("maxlen \"{n}\" is not a number")))?,
                    ),
                };
                let auth = userinfo.map(|u| format!("{u}@")).unwrap_or_default();
                Ok(Target::Redis(RedisTarget {
                    url: format!("redis://{auth}{host}:{port}/{path}"),
                    stream: Template::parse(&q.stream).map_err(bad)?,
                    maxlen,
                }))
            }
            #[cfg(feature = "kafka")]
            "kafka" => {
                let q = KafkaQuery::deserialize(query).map_err(|e| bad(e.to_string()))?;
                if userinfo.is_some() {
                    return Err(bad("a kafka:// URL takes no user or password (SASL is not supported)".into()));
                }
                let servers = servers(scheme, hosts, path, 9092, "").map_err(bad)?;
                Ok(Target::Kafka(KafkaTarget {
                    servers,
                    topic: Template::parse(&q.topic).map_err(bad)?,
                }))
            }
            #[cfg(not(feature = "kafka"))]
            "kafka" => Err(Error::usage(
                "--sink kafka:// is not in this build (built without the `kafka` feature, as the static binary is)",
            )),
            other => Err(Error::usage(format!(
                "invalid --sink URL: unknown scheme \"{other}\" ({SCHEMES})"
            ))),
        }
    }

    /// The broker as logs and errors show it: scheme and hosts, no user or
    /// password.
    pub(crate) fn shown(&self) -> String {
        match self {
            Target::Nats(n) => n.servers.join(","),
            Target::Redis(r) => {
                let tail = r
                    .url
                    .rsplit_once('@')
                    .map_or(&r.url["redis://".len()..], |(_, t)| t);
                format!("redis://{tail}")
            }
            #[cfg(feature = "kafka")]
            Target::Kafka(k) => format!("kafka://{}", k.servers.join(",")),
        }
    }
}

/// `host[:port][,host[:port]…]` of a URL that has no path, each as
/// `{prefix}host:port`.
fn servers(
    scheme: &str,
    hosts: &str,
    path: &str,
    default: u16,
    prefix: &str,
) -> Result<Vec<String>, String> {
    if !path.is_empty() {
        return Err(format!("a {scheme}:// URL has no path"));
    }
    hosts
        .split(',')
        .map(|h| host_port(h, default).map(|(h, p)| format!("{prefix}{h}:{p}")))
        .collect()
}

/// `host[:port]`, with `default` as the port.
/// An IPv6 address is in brackets, `[::1]:4222`.
fn host_port(text: &str, default: u16) -> Result<(&str, u16), String> {
    let (host, port) = match text.strip_prefix('[').and_then(|t| t.split_once(']')) {
        Some((v6, rest)) => (&text[..v6.len() + 2], rest.strip_prefix(':')),
        None => match text.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        },
    };
    let port = match port {
        Some(p) => p.parse::<u16>().map_err(|_| format!("bad port \"{p}\""))?,
        None => default,
    };
    if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '/') {
        return Err(format!("bad host \"{host}\""));
    }
    Ok((host, port))
}

/// `user[:password]`, percent-decoded.
fn credentials(userinfo: &str) -> Result<(String, String), String> {
    let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .map(|s| s.into_owned())
            .map_err(|_| "user or password is not UTF-8 once percent-decoded".to_string())
    };
    Ok((decode(user)?, decode(password)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nats_urls() {
        let Target::Nats(n) = Target::parse("nats://u:p%40ss@a,b:4333?subject=x.{table}").unwrap()
        else {
            panic!("not nats")
        };
        assert_eq!(n.servers, ["nats://a:4222", "nats://b:4333"]);
        assert_eq!(n.credentials, Some(("u".into(), "p@ss".into())));
        assert_eq!(n.subject, Template::parse("x.{table}").unwrap());
    }

    #[test]
    fn redis_urls_keep_their_auth_for_redis_rs_and_hide_it_when_shown() {
        let t = Target::parse("redis://me:secret@h:7000/2?maxlen=100").unwrap();
        assert_eq!(t.shown(), "redis://h:7000/2");
        let Target::Redis(r) = t else {
            panic!("not redis")
        };
        assert_eq!(r.url, "redis://me:secret@h:7000/2");
        assert_eq!(r.maxlen, Some(100));
    }

    #[cfg(feature = "kafka")]
    #[test]
    fn kafka_urls() {
        let t = Target::parse("kafka://a,b:9093?topic=cdc.{table}").unwrap();
        assert_eq!(t.shown(), "kafka://a:9092,b:9093");
        let Target::Kafka(k) = t else {
            panic!("not kafka")
        };
        assert_eq!(k.servers, ["a:9092", "b:9093"]);
        assert_eq!(k.topic, Template::parse("cdc.{table}").unwrap());
    }

    #[test]
    fn bad_urls_are_usage_errors_without_the_password() {
        for url in [
            "nats://u:hunter2@h?subjet=x",
            "nats://u:hunter2@h:port",
            "redis://u:hunter2@h?maxlen=many",
            "redis://u:hunter2@h/db",
            "nats://u:hunter2@h?subject=a.{tabel}",
            "mqtt://u:hunter2@h",
            "kafka://u:hunter2@h",
            "kafka://h:9092/path?password=hunter2",
            "kafka://h?topic=a.{tabel}&x=hunter2",
            "u:hunter2@h",
        ] {
            let e = Target::parse(url).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{url}");
            assert!(!e.to_string().contains("hunter2"), "{url}: {e}");
        }
    }
}
