//! Which values of the libpq options pgstream ignores are harmless, the
//! environment variables it refuses, and `channel_binding`.
//!
//! An option pgstream does not act on may only be ignored with a value whose
//! being ignored changes nothing: ignoring `gssencmode=require` or
//! `sslnegotiation=direct` would connect where libpq refuses to.

use std::fmt;
use std::str::FromStr;

use super::ConnInfoError;

/// libpq's environment variables for options pgstream ignores or refuses, and
/// the keyword of each (the ones it acts on are `super::ENV_VARS`). Their
/// values go through the same checks as a conninfo string's.
pub(super) const CHECKED_ENV_VARS: &str = "PGHOSTADDR=hostaddr PGCHANNELBINDING=channel_binding \
    PGREQUIREAUTH=require_auth PGSERVICE=service PGSERVICEFILE=servicefile \
    PGSSLNEGOTIATION=sslnegotiation PGOPTIONS=options PGREQUIRESSL=requiressl \
    PGSSLCOMPRESSION=sslcompression PGSSLCERTMODE=sslcertmode PGSSLCRL=sslcrl \
    PGSSLCRLDIR=sslcrldir PGSSLSNI=sslsni PGREQUIREPEER=requirepeer \
    PGSSLMINPROTOCOLVERSION=ssl_min_protocol_version \
    PGSSLMAXPROTOCOLVERSION=ssl_max_protocol_version PGMINPROTOCOLVERSION=min_protocol_version \
    PGMAXPROTOCOLVERSION=max_protocol_version PGGSSENCMODE=gssencmode PGKRBSRVNAME=krbsrvname \
    PGGSSLIB=gsslib PGGSSDELEGATION=gssdelegation PGCLIENTENCODING=client_encoding";

/// Session defaults libpq sends at connection start. pgstream pins its own
/// session settings (its output's formats depend on them), so these are
/// refused rather than overridden in silence.
pub(super) const SESSION_ENV_VARS: &str = "PGDATESTYLE PGTZ PGGEQO";

/// `Some(why)` when ignoring `key=value` would change what the connection
/// does; `None` when the value is harmless (or the key is not one of these).
pub(super) fn refusal(key: &str, value: &str) -> Option<&'static str> {
    let lower = value.to_ascii_lowercase();
    let harmless: &[&str] = match key {
        // pgstream sends its own, pinned settings.
        "options" => &[],
        "client_encoding" => &["utf8", "utf-8", "unicode"],
        // pgstream has no GSSAPI: `prefer` then means what libpq's `prefer`
        // does without credentials.
        "gssencmode" => &["disable", "prefer"],
        "sslnegotiation" => &["postgres"],
        // rustls sends the client certificate only when the server asks.
        "sslcertmode" => &["allow"],
        "sslsni" => &["1"],
        // rustls speaks TLS 1.2 and 1.3 only, at least what these ask for.
        "ssl_min_protocol_version" => &["tlsv1", "tlsv1.1", "tlsv1.2"],
        "ssl_max_protocol_version" => &["tlsv1.3"],
        // pgstream speaks protocol 3.0.
        "min_protocol_version" => &["3.0"],
        "max_protocol_version" => &["3.0", "3.2", "latest"],
        _ => return None,
    };
    (!harmless.contains(&lower.as_str())).then_some(match key {
        "options" | "client_encoding" => "pgstream pins its session settings",
        _ => "pgstream does not implement it",
    })
}

/// libpq's `channel_binding`: whether SCRAM authentication binds itself to
/// the TLS session (`SCRAM-SHA-256-PLUS`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum ChannelBinding {
    /// Never bind.
    Disable,
    /// Bind when the server offers it over TLS; fail, as libpq does, when it
    /// is offered but the certificate's hash cannot be computed.
    #[default]
    Prefer,
    /// Fail unless the server authenticated with channel binding.
    Require,
}

impl ChannelBinding {
    /// The libpq spelling.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ChannelBinding::Disable => "disable",
            ChannelBinding::Prefer => "prefer",
            ChannelBinding::Require => "require",
        }
    }

    /// tokio-postgres's setting, for the catalog connections.
    pub(crate) fn to_tokio(self) -> tokio_postgres::config::ChannelBinding {
        use tokio_postgres::config::ChannelBinding as T;
        match self {
            ChannelBinding::Disable => T::Disable,
            ChannelBinding::Prefer => T::Prefer,
            ChannelBinding::Require => T::Require,
        }
    }
}

impl FromStr for ChannelBinding {
    type Err = ConnInfoError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "disable" => ChannelBinding::Disable,
            "prefer" => ChannelBinding::Prefer,
            "require" => ChannelBinding::Require,
            _ => {
                return Err(ConnInfoError::InvalidValue(
                    "channel_binding",
                    s.to_string(),
                ))
            }
        })
    }
}

impl fmt::Display for ChannelBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
