//! libpq-compatible connection parameters.
//!
//! Operators expect pgstream to find its server the way `psql` and
//! `pg_recvlogical` do. This module merges, in psql's order of precedence:
//!
//! 1. a `key=value` conninfo string or `postgres[ql]://` URI given as `-d`;
//! 2. the `-h`, `-p`, `-U` flags (and `-d` when it is a plain database name);
//! 3. the `PG*` environment variables;
//! 4. libpq's defaults,
//!
//! then looks the password up in the password file (`passfile`, `PGPASSFILE`
//! or `~/.pgpass`) when none was given, per host. Host lists (`host=a,b
//! port=1,2`, `postgresql://a:1,b:2/db`) with `target_session_attrs` and
//! `load_balance_hosts` are parsed in [`hosts`]. A libpq setting pgstream
//! does not implement is refused wherever it comes from (`values.rs`).
//! Passwords never appear in `Debug`, `Display` or errors.

mod hosts;

pub(crate) use hosts::{Endpoint, SessionAttrs};

use std::collections::HashMap;
use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

mod keepalive;
pub(crate) use keepalive::Keepalives;
mod values;
pub(crate) use values::ChannelBinding;

/// Application name reported to the server unless one is configured.
pub(crate) const DEFAULT_APPLICATION_NAME: &str = "pgstream";
/// Socket directory used by default when it exists (Debian/Ubuntu builds).
const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";
const DEFAULT_PORT: u16 = 5432;

/// Options accepted for libpq compatibility but without effect here, with a
/// value that [`values::refusal`] finds harmless.
const IGNORED: &str = "options client_encoding gssencmode gsslib \
    gssdelegation krbsrvname sslcompression sslsni sslcertmode sslnegotiation \
    ssl_min_protocol_version ssl_max_protocol_version min_protocol_version max_protocol_version \
    replication";
/// Real libpq options whose meaning (mostly security checks) we cannot honour:
/// silently ignoring them would be worse than refusing.
const UNSUPPORTED: &str = "service servicefile requirepeer require_auth requiressl sslcrl \
    sslcrldir sslpassword sslkeylogfile oauth_issuer oauth_client_id oauth_client_secret oauth_scope";

/// A bad connection setting. Messages are one terse lowercase line and never
/// contain a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ConnInfoError {
    /// A key that libpq does not know.
    #[error("invalid connection option \"{0}\"")]
    InvalidOption(String),
    /// A libpq option (or value) that pgstream cannot honour, and why.
    #[error("unsupported connection option \"{0}\": {1}; remove it")]
    Unsupported(String, &'static str),
    /// The same from its environment variable: the variable, the option, why.
    #[error("unsupported environment variable {0} ({1}): {2}; unset it")]
    UnsupportedEnv(&'static str, String, &'static str),
    /// `channel_binding=require` where TLS is never used.
    #[error("channel_binding=require needs TLS, but {0}")]
    BindingWithoutTls(&'static str),
    /// A conninfo key not followed by `=`.
    #[error("missing \"=\" after \"{0}\" in connection info string")]
    MissingEquals(String),
    /// A `'` without its closing quote.
    #[error("unterminated quoted string in connection info string")]
    UnterminatedQuote,
    /// A malformed `postgres://` URI.
    #[error("invalid URI: {0}")]
    InvalidUri(String),
    /// A bad `port` (not in 1..=65535), `sslmode` or `connect_timeout` (not an
    /// integer): the keyword and the value.
    #[error("invalid {0} \"{1}\"")]
    InvalidValue(&'static str, String),
    /// A port list that does not match the host list.
    #[error("could not match {ports} port numbers to {hosts} hosts")]
    PortCount {
        /// Ports given.
        ports: usize,
        /// Hosts given.
        hosts: usize,
    },
    /// `sslrootcert=system` with an sslmode weaker than `verify-full`.
    #[error("weak sslmode \"{0}\" may not be used with sslrootcert=system (use \"verify-full\")")]
    WeakSslMode(SslMode),
    /// No user given and none found in the environment.
    #[error(
        "could not determine the user name: use -U or set PGUSER (USER and LOGNAME are unset)"
    )]
    NoUser,
}

/// Connection flags as given on the command line (all optional).
#[derive(Clone, Default)]
pub struct ConnArgs {
    /// `-d`: a database name, a conninfo string or a URI.
    pub dbname: Option<String>,
    /// `-h`: host name, IP address or unix socket directory.
    pub host: Option<String>,
    /// `-p`: port (validated after merging).
    pub port: Option<String>,
    /// `-U`: user name.
    pub username: Option<String>,
    /// `--sslmode`: libpq's sslmode names (default `prefer`).
    pub sslmode: Option<String>,
    /// `--sslrootcert`: CA certificates to verify the server with
    /// (`system`: the operating system's store).
    pub sslrootcert: Option<String>,
    /// `--sslcert`: client certificate.
    pub sslcert: Option<String>,
    /// `--sslkey`: the client certificate's key.
    pub sslkey: Option<String>,
}

impl ConnArgs {
    /// Settings from a libpq conninfo string (`host=… dbname=…`) or a
    /// `postgres://` URI; what it leaves out comes from the environment.
    pub fn conninfo(conninfo: impl Into<String>) -> ConnArgs {
        ConnArgs {
            dbname: Some(conninfo.into()),
            ..ConnArgs::default()
        }
    }

    /// The password written into `dbname`'s conninfo string or URI, if any
    /// (say, to hide it from `ps`).
    pub fn password(&self) -> Option<String> {
        let d = self.dbname.as_deref().filter(|d| is_conninfo(d))?;
        parse(d).ok()?.0.remove("password")
    }
}

/// A conninfo string or URI in `dbname` may carry a password, so it is hidden.
impl fmt::Debug for ConnArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dbname = self
            .dbname
            .as_deref()
            .map(|d| if is_conninfo(d) { "<conninfo>" } else { d });
        f.debug_struct("ConnArgs")
            .field("dbname", &dbname)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("sslmode", &self.sslmode)
            .field("sslrootcert", &self.sslrootcert)
            .field("sslcert", &self.sslcert)
            .field("sslkey", &self.sslkey)
            .finish()
    }
}

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum SslMode {
    /// Never use TLS.
    Disable,
    /// Try without TLS first, then with.
    Allow,
    /// Try TLS first, then without (libpq's default).
    #[default]
    Prefer,
    /// TLS, without certificate checks.
    Require,
    /// TLS, and the server certificate must chain to `sslrootcert`.
    VerifyCa,
    /// As `VerifyCa`, and the certificate must name the host.
    VerifyFull,
}

impl SslMode {
    /// The libpq spelling, e.g. `verify-full`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

impl FromStr for SslMode {
    type Err = ConnInfoError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return Err(ConnInfoError::InvalidValue("sslmode", s.to_string())),
        })
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Resolved parameters for one server connection, and the host list it
/// was chosen from ([`ConnParams::at`] makes the parameters for another).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct ConnParams {
    /// A host name or IP address, or a unix socket directory (starts with `/`).
    pub host: String,
    /// TCP port, also the suffix of the socket file name.
    pub port: u16,
    /// Every server of the list, `host`/`port` first (unless shuffled).
    pub hosts: Vec<Endpoint>,
    /// Which kind of server a connection must reach.
    pub target_session_attrs: SessionAttrs,
    /// `load_balance_hosts=random`: try the list in a random order.
    pub load_balance: bool,
    /// Where each host's password is looked up, when none was given.
    passfile: Option<PathBuf>,
    /// Role to log in as.
    pub user: String,
    /// Database to connect to (the slot's database).
    pub dbname: String,
    /// From conninfo, `PGPASSWORD` or the password file.
    pub password: Option<String>,
    /// Shown in `pg_stat_activity` / `pg_stat_replication`.
    pub application_name: String,
    /// Per-attempt connect timeout; `None` waits forever.
    pub connect_timeout: Option<Duration>,
    /// TLS policy (ignored over unix sockets, as in libpq).
    pub sslmode: SslMode,
    /// CA certificate file (or `system`), by default `~/.postgresql/root.crt`
    /// (`None` without HOME). Used when it exists; `verify-*` require it.
    pub sslrootcert: Option<String>,
    /// Client certificate file, by default `~/.postgresql/postgresql.crt`;
    /// sent when it exists.
    pub sslcert: Option<String>,
    /// Client private key file, by default `~/.postgresql/postgresql.key`.
    pub sslkey: Option<String>,
    /// TCP keepalives and `tcp_user_timeout` (not for unix sockets).
    pub keepalives: Keepalives,
    /// SCRAM channel binding policy, for both connections.
    pub channel_binding: ChannelBinding,
}

impl fmt::Debug for ConnParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnParams")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("hosts", &self.hosts)
            .field("target_session_attrs", &self.target_session_attrs)
            .field("load_balance", &self.load_balance)
            .field("user", &self.user)
            .field("dbname", &self.dbname)
            .field("password", &self.password.as_ref().map(|_| "********"))
            .field("application_name", &self.application_name)
            .field("connect_timeout", &self.connect_timeout)
            .field("sslmode", &self.sslmode)
            .field("sslrootcert", &self.sslrootcert)
            .field("sslcert", &self.sslcert)
            .field("sslkey", &self.sslkey)
            .field("keepalives", &self.keepalives)
            .field("channel_binding", &self.channel_binding)
            .finish()
    }
}

/// A conninfo string without the password, for logs:
/// `host=/tmp port=5432 user=alice dbname=db`.
impl fmt::Display for ConnParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "host={} port={} user={} dbname={}",
            Quoted(&self.host),
            self.port,
            Quoted(&self.user),
            Quoted(&self.dbname)
        )
    }
}

/// Writes a conninfo value, quoted and escaped when needed.
struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        if !s.is_empty() && !s.contains(|c: char| c.is_whitespace() || c == '\'' || c == '\\') {
            return f.write_str(s);
        }
        f.write_str("'")?;
        for c in s.chars() {
            if c == '\'' || c == '\\' {
                f.write_str("\\")?;
            }
            write!(f, "{c}")?;
        }
        f.write_str("'")
    }
}

impl ConnParams {
    /// Merges flags, the conninfo/URI given as `-d`, the environment (read only
    /// through `env`, including `HOME`) and the password file.
    ///
    /// Precedence follows psql, which hands libpq `-h`/`-p`/`-U` *before* the
    /// expanded `-d` string: settings inside a conninfo/URI `-d` override the
    /// flags, flags override `PG*` variables, and those override the defaults
    /// (host `/var/run/postgresql` if it exists else `localhost`, port 5432,
    /// user `$USER`/`$LOGNAME`, dbname = user, application_name `pgstream`,
    /// `sslrootcert`/`sslcert`/`sslkey` under `$HOME/.postgresql/`; sslmode
    /// `verify-full` with `sslrootcert=system`, `prefer` otherwise).
    /// Empty values count as unset.
    pub(crate) fn resolve(
        args: &ConnArgs,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ConnParams, ConnInfoError> {
        Self::resolve_with(args, env, Path::new(DEFAULT_SOCKET_DIR).is_dir())
    }

    fn resolve_with(
        args: &ConnArgs,
        env: &dyn Fn(&str) -> Option<String>,
        socket_dir_exists: bool,
    ) -> Result<ConnParams, ConnInfoError> {
        let (mut flags, mut given) = (Opts::default(), Opts::default());
        match args.dbname.as_deref() {
            Some(d) if is_conninfo(d) => given = parse(d)?,
            d => flags.set("dbname", d.unwrap_or_default().to_string())?,
        }
        flags.set("host", args.host.clone().unwrap_or_default())?;
        flags.set("port", args.port.clone().unwrap_or_default())?;
        flags.set("user", args.username.clone().unwrap_or_default())?;
        for (key, value) in [
            ("sslmode", &args.sslmode),
            ("sslrootcert", &args.sslrootcert),
            ("sslcert", &args.sslcert),
            ("sslkey", &args.sslkey),
        ] {
            flags.set(key, value.clone().unwrap_or_default())?;
        }
        let mut o = given.or(flags).or(Opts::from_env(env)?);

        // hostaddr is taken as the host; libpq would connect to it but check
        // certificates and .pgpass against a different host.
        let host_list = match (o.take("host"), o.take("hostaddr")) {
            (Some(h), Some(a)) if h != a => {
                return Err(ConnInfoError::Unsupported(
                    "hostaddr".into(),
                    "pgstream does not implement it together with a different host",
                ))
            }
            (h, a) => h.or(a).unwrap_or_default(),
        };
        let default_host = if socket_dir_exists {
            DEFAULT_SOCKET_DIR
        } else {
            "localhost"
        };
        let hosts = hosts::endpoints(
            &host_list,
            o.take("port").as_deref(),
            default_host,
            DEFAULT_PORT,
        )?;
        let target_session_attrs = o
            .take("target_session_attrs")
            .map(|a| a.parse())
            .transpose()?
            .unwrap_or_default();
        let load_balance = o
            .take("load_balance_hosts")
            .map(|v| hosts::load_balance(&v))
            .transpose()?
            .unwrap_or(false);
        let user = o
            .take("user")
            .or_else(|| get(env, "USER"))
            .or_else(|| get(env, "LOGNAME"));
        let user = user.ok_or(ConnInfoError::NoUser)?;
        let connect_timeout = match o.take("connect_timeout") {
            // libpq: whole seconds, <= 0 means none, and at least 2 s.
            Some(t) => match t.trim().parse::<i64>() {
                Ok(n) if n <= 0 => None,
                Ok(n) => Some(Duration::from_secs(n.max(2) as u64)),
                Err(_) => return Err(ConnInfoError::InvalidValue("connect_timeout", t)),
            },
            None => None,
        };
        let sslmode: Option<SslMode> = o.take("sslmode").map(|m| m.parse()).transpose()?;
        let sslrootcert = o.take("sslrootcert");
        // libpq: the system's roots are only trusted with host name checks.
        let sslmode = match (sslmode, sslrootcert.as_deref()) {
            (None, Some("system")) => SslMode::VerifyFull,
            (Some(m), Some("system")) if m != SslMode::VerifyFull => {
                return Err(ConnInfoError::WeakSslMode(m))
            }
            (m, _) => m.unwrap_or_default(),
        };
        // libpq's default certificate files, under the HOME we were given.
        let home_file = |name: &str| {
            get(env, "HOME").map(|h| {
                Path::new(&h)
                    .join(".postgresql")
                    .join(name)
                    .display()
                    .to_string()
            })
        };
        let channel_binding: ChannelBinding = o
            .take("channel_binding")
            .map(|b| b.parse())
            .transpose()?
            .unwrap_or_default();
        if channel_binding == ChannelBinding::Require {
            if hosts.iter().any(|h| h.host.starts_with('/')) {
                return Err(ConnInfoError::BindingWithoutTls(
                    "unix sockets never use it; give a TCP host",
                ));
            }
            if sslmode == SslMode::Disable {
                return Err(ConnInfoError::BindingWithoutTls(
                    "sslmode is disable; use sslmode=require or stronger",
                ));
            }
        }
        let app = o
            .take("application_name")
            .or(o.take("fallback_application_name"));
        let mut params = ConnParams {
            host: hosts[0].host.clone(),
            port: hosts[0].port,
            hosts,
            target_session_attrs,
            load_balance,
            passfile: None,
            dbname: o.take("dbname").unwrap_or_else(|| user.clone()),
            user,
            password: o.take("password"),
            application_name: app.unwrap_or_else(|| DEFAULT_APPLICATION_NAME.to_string()),
            connect_timeout,
            sslmode,
            sslrootcert: sslrootcert.or_else(|| home_file("root.crt")),
            sslcert: o.take("sslcert").or_else(|| home_file("postgresql.crt")),
            sslkey: o.take("sslkey").or_else(|| home_file("postgresql.key")),
            keepalives: Keepalives::take(&mut o)?,
            channel_binding,
        };
        if params.password.is_none() {
            let home = || get(env, "HOME").map(|h| Path::new(&h).join(".pgpass"));
            params.passfile = o.take("passfile").map(PathBuf::from).or_else(home);
            params.password = params.passfile_password();
        }
        Ok(params)
    }

    /// The parameters for `server` of the host list: its password is looked
    /// up again in the password file, unless one was given.
    pub(crate) fn at(&self, server: &Endpoint) -> ConnParams {
        let mut p = self.clone();
        p.host.clone_from(&server.host);
        p.port = server.port;
        if self.passfile.is_some() {
            p.password = p.passfile_password();
        }
        p
    }

    /// Whether there is a choice to make: several hosts, or a kind of
    /// server to insist on.
    pub(crate) fn has_choice(&self) -> bool {
        self.hosts.len() > 1 || self.target_session_attrs != SessionAttrs::Any
    }

    /// The host list in the order to try it this time.
    pub(crate) fn attempt_order(&self) -> Vec<Endpoint> {
        if self.load_balance {
            hosts::shuffled(&self.hosts)
        } else {
            self.hosts.clone()
        }
    }

    /// True when `host` names a unix socket directory.
    pub(crate) fn is_unix_socket(&self) -> bool {
        self.host.starts_with('/')
    }

    /// The unix socket path (`{dir}/.s.PGSQL.{port}`) when host is a socket directory.
    pub(crate) fn socket_path(&self) -> Option<PathBuf> {
        self.is_unix_socket()
            .then(|| Path::new(&self.host).join(format!(".s.PGSQL.{}", self.port)))
    }

    /// A `tokio_postgres::Config` for ordinary SQL connections to the same server.
    ///
    /// sslmode maps to tokio-postgres's three modes (`allow` → prefer,
    /// `verify-*` → require; certificate checks belong to the TLS connector,
    /// and `CatalogConn::connect` sets the mode of each attempt per libpq's
    /// plan, see `crate::tls`). Over a unix socket TLS is disabled, as libpq
    /// never uses it there.
    pub(crate) fn to_tokio_config(&self) -> tokio_postgres::Config {
        use tokio_postgres::config::SslMode as T;
        let mut c = tokio_postgres::Config::new();
        if self.is_unix_socket() {
            c.host_path(&self.host);
        } else {
            c.host(&self.host);
        }
        c.port(self.port)
            .user(&self.user)
            .dbname(&self.dbname)
            .application_name(&self.application_name)
            .channel_binding(self.channel_binding.to_tokio());
        if let Some(p) = &self.password {
            c.password(p);
        }
        if let Some(t) = self.connect_timeout {
            c.connect_timeout(t);
        }
        self.keepalives.configure(&mut c);
        c.ssl_mode(match self.sslmode {
            _ if self.is_unix_socket() => T::Disable,
            SslMode::Disable => T::Disable,
            SslMode::Allow | SslMode::Prefer => T::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => T::Require,
        });
        c
    }

    /// libpq's password file lookup. A missing or unreadable file is skipped
    /// silently; a file open to group or others is ignored with a warning.
    fn passfile_password(&self) -> Option<String> {
        let path = self.passfile.as_deref()?;
        let meta = std::fs::metadata(path).ok()?;
        if !meta.is_file() {
            log::warn!("password file \"{}\" is not a plain file", path.display());
            return None;
        }
        if meta.mode() & 0o077 != 0 {
            log::warn!(
                "password file \"{}\" has group or world access; permissions should be u=rw (0600) or less",
                path.display()
            );
            return None;
        }
        let text = std::fs::read_to_string(path).ok()?;
        // libpq matches a socket directory as "localhost".
        let host = if self.is_unix_socket() {
            "localhost"
        } else {
            self.host.as_str()
        };
        let port = self.port.to_string();
        let want = [
            host,
            port.as_str(),
            self.dbname.as_str(),
            self.user.as_str(),
        ];
        text.lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(pgpass_entry)
            .find(|(fields, _)| {
                fields
                    .iter()
                    .zip(want)
                    .all(|(f, w)| f.as_deref().is_none_or(|f| f == w))
            })
            .and_then(|(_, password)| (!password.is_empty()).then_some(password))
    }
}

/// Splits a `hostname:port:database:username:password` line, removing `\`
/// escapes; the password ends at the next unescaped `:`. A field that is exactly `*` becomes `None` (matches anything).
fn pgpass_entry(line: &str) -> Option<([Option<String>; 4], String)> {
    let mut chars = line.strip_suffix('\r').unwrap_or(line).chars();
    let (mut fields, mut cur, mut escaped) = (Vec::with_capacity(4), String::new(), false);
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                cur.push(chars.next().unwrap_or('\\'));
                escaped = true;
            }
            ':' if fields.len() == 4 => break, // libpq ignores the rest
            ':' => {
                fields.push((escaped || cur != "*").then(|| cur.clone()));
                cur.clear();
                escaped = false;
            }
            c => cur.push(c),
        }
    }
    Some((fields.try_into().ok()?, cur))
}

fn get(env: &dyn Fn(&str) -> Option<String>, key: &str) -> Option<String> {
    env(key).filter(|v| !v.is_empty())
}

/// True when libpq would expand `-d` as a connection string rather than a name.
fn is_conninfo(s: &str) -> bool {
    s.starts_with("postgresql://") || s.starts_with("postgres://") || s.contains('=')
}

/// The libpq keywords pgstream acts on.
const KEYS: &str = "host hostaddr port user dbname password application_name \
    fallback_application_name connect_timeout sslmode sslrootcert sslcert sslkey passfile \
    channel_binding target_session_attrs load_balance_hosts keepalives keepalives_idle \
    keepalives_interval keepalives_count tcp_user_timeout";
/// Environment variables and the keyword each one sets.
const ENV_VARS: &str = "PGHOST=host PGPORT=port PGUSER=user PGDATABASE=dbname PGPASSWORD=password \
    PGPASSFILE=passfile PGAPPNAME=application_name PGCONNECT_TIMEOUT=connect_timeout \
    PGSSLMODE=sslmode PGSSLROOTCERT=sslrootcert PGSSLCERT=sslcert PGSSLKEY=sslkey \
    PGTARGETSESSIONATTRS=target_session_attrs PGLOADBALANCEHOSTS=load_balance_hosts";

/// Raw, unvalidated settings from one source (conninfo, flags or environment),
/// by keyword. Empty values are not stored: they mean unset, as in libpq.
#[derive(Default)]
struct Opts(HashMap<&'static str, String>);

impl Opts {
    /// The `PG*` variables; one for a setting pgstream does not implement is
    /// refused, naming the variable.
    fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Opts, ConnInfoError> {
        let mut o = Opts::default();
        for (var, key) in ENV_VARS
            .split_whitespace()
            .chain(values::CHECKED_ENV_VARS.split_whitespace())
            .filter_map(|p| p.split_once('='))
        {
            let Some(value) = get(env, var) else {
                continue;
            };
            o.set(key, value).map_err(|e| match e {
                ConnInfoError::Unsupported(what, why) => {
                    ConnInfoError::UnsupportedEnv(var, what, why)
                }
                e => e,
            })?;
        }
        if let Some(var) = values::SESSION_ENV_VARS
            .split_whitespace()
            .find(|var| get(env, var).is_some())
        {
            let what = var.trim_start_matches("PG").to_lowercase();
            return Err(ConnInfoError::UnsupportedEnv(
                var,
                what,
                "pgstream pins its session settings",
            ));
        }
        Ok(o)
    }

    /// Stores one libpq keyword.
    fn set(&mut self, key: &str, value: String) -> Result<(), ConnInfoError> {
        let listed = |list: &str| list.split_whitespace().any(|k| k == key);
        if let Some(k) = KEYS.split_whitespace().find(|k| *k == key) {
            if value.is_empty() {
                self.0.remove(k);
            } else {
                self.0.insert(k, value);
            }
        } else if let Some(why) = values::refusal(key, &value).filter(|_| !value.is_empty()) {
            return Err(ConnInfoError::Unsupported(format!("{key}={value}"), why));
        } else if listed(UNSUPPORTED) {
            if !value.is_empty() {
                return Err(ConnInfoError::Unsupported(
                    key.to_string(),
                    "pgstream does not implement it",
                ));
            }
        } else if listed(IGNORED) {
            log::debug!("ignoring connection option \"{key}\"");
        } else {
            return Err(ConnInfoError::InvalidOption(key.to_string()));
        }
        Ok(())
    }

    /// Key by key, `self` wins over `lower`.
    fn or(mut self, lower: Opts) -> Opts {
        for (k, v) in lower.0 {
            self.0.entry(k).or_insert(v);
        }
        self
    }

    fn take(&mut self, key: &str) -> Option<String> {
        self.0.remove(key)
    }
}

/// Parses a conninfo string or URI given as `-d`.
fn parse(s: &str) -> Result<Opts, ConnInfoError> {
    match s
        .strip_prefix("postgresql://")
        .or_else(|| s.strip_prefix("postgres://"))
    {
        Some(rest) => parse_uri(rest),
        None => parse_conninfo(s),
    }
}

/// `key=value key2 = 'quoted \' value'`, as libpq's `conninfo_parse`.
fn parse_conninfo(s: &str) -> Result<Opts, ConnInfoError> {
    let mut opts = Opts::default();
    let mut it = s.chars().peekable();
    let skip_ws = |it: &mut std::iter::Peekable<std::str::Chars<'_>>| {
        while it.next_if(|c| c.is_whitespace()).is_some() {}
    };
    loop {
        skip_ws(&mut it);
        if it.peek().is_none() {
            return Ok(opts);
        }
        let mut key = String::new();
        while let Some(c) = it.next_if(|&c| !c.is_whitespace() && c != '=') {
            key.push(c);
        }
        skip_ws(&mut it);
        if it.next() != Some('=') {
            return Err(ConnInfoError::MissingEquals(key));
        }
        skip_ws(&mut it);
        let mut value = String::new();
        if it.next_if_eq(&'\'').is_some() {
            loop {
                match it.next().ok_or(ConnInfoError::UnterminatedQuote)? {
                    '\'' => break,
                    '\\' => value.push(it.next().ok_or(ConnInfoError::UnterminatedQuote)?),
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = it.next_if(|c| !c.is_whitespace()) {
                match c {
                    '\\' => value.extend(it.next()),
                    c => value.push(c),
                }
            }
        }
        opts.set(&key, value)?;
    }
}

/// `[user[:password]@][host][:port][/dbname][?key=value&…]` (after the
/// scheme), as libpq's `conninfo_uri_parse_options`.
fn parse_uri(rest: &str) -> Result<Opts, ConnInfoError> {
    let bad = |m: String| ConnInfoError::InvalidUri(m);
    let mut o = Opts::default();
    // Like libpq, the first '@' before any '/' ends the user info.
    let mut p = rest;
    if let Some(i) = rest
        .find(['@', '/'])
        .filter(|&i| rest.as_bytes()[i] == b'@')
    {
        let (user, password) = match rest[..i].split_once(':') {
            Some((u, pw)) => (u, Some(pw)),
            None => (&rest[..i], None),
        };
        o.set("user", decode(user, "user name")?)?;
        if let Some(pw) = password {
            o.set("password", decode(pw, "password")?)?;
        }
        p = &rest[i + 1..];
    }
    // `host[:port]` entries separated by commas become libpq's parallel
    // host and port lists.
    let (mut hosts, mut ports) = (Vec::new(), Vec::new());
    loop {
        let host = if let Some(v6) = p.strip_prefix('[') {
            let end = v6
                .find(']')
                .ok_or_else(|| bad("missing \"]\" after IPv6 host address".into()))?;
            if end == 0 {
                return Err(bad("empty IPv6 host address".into()));
            }
            p = &v6[end + 1..];
            decode(&v6[..end], "host")?
        } else {
            let end = p.find([':', '/', '?', ',']).unwrap_or(p.len());
            let h = decode(&p[..end], "host")?;
            p = &p[end..];
            h
        };
        hosts.push(host);
        let mut port = String::new();
        if let Some(after) = p.strip_prefix(':') {
            let end = after.find(['/', '?', ',']).unwrap_or(after.len());
            port = decode(&after[..end], "port")?;
            p = &after[end..];
        }
        ports.push(port);
        match p.chars().next() {
            Some(',') => p = &p[1..],
            Some('/' | '?') | None => break,
            Some(c) => return Err(bad(format!("unexpected character \"{c}\" after the host"))),
        }
    }
    // One entry keeps libpq's single-host meaning (an empty host is the
    // default, an empty port too).
    if hosts.iter().any(|h| !h.is_empty()) || hosts.len() > 1 {
        o.set("host", hosts.join(","))?;
    }
    if ports.iter().any(|p| !p.is_empty()) {
        o.set("port", ports.join(","))?;
    }
    if let Some(after) = p.strip_prefix('/') {
        let end = after.find('?').unwrap_or(after.len());
        o.set("dbname", decode(&after[..end], "database name")?)?;
        p = &after[end..];
    }
    if let Some(query) = p.strip_prefix('?') {
        for param in query.split('&').filter(|q| !q.is_empty()) {
            let (k, v) = param
                .split_once('=')
                .ok_or_else(|| bad(format!("missing \"=\" in query parameter \"{param}\"")))?;
            let k = decode(k, "query parameter")?;
            if v.contains('=') {
                return Err(bad(format!("extra \"=\" in query parameter \"{k}\"")));
            }
            let v = decode(v, "query parameter")?;
            match (k.as_str(), v.as_str()) {
                ("ssl", "true") => o.set("sslmode", "require".into())?, // libpq's JDBC compatibility
                _ => o.set(&k, v)?,
            }
        }
    }
    Ok(o)
}

/// Percent-decodes one URI component. The message names the component, never
/// its text, which may be a password.
fn decode(s: &str, what: &str) -> Result<String, ConnInfoError> {
    let bad = || ConnInfoError::InvalidUri(format!("invalid percent-encoding in the {what}"));
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b != b'%' {
            out.push(b);
            continue;
        }
        let mut digit = || {
            bytes
                .next()
                .and_then(|d| (d as char).to_digit(16))
                .ok_or_else(bad)
        };
        match digit()? * 16 + digit()? {
            0 => return Err(bad()), // libpq refuses %00
            b => out.push(b as u8),
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

#[cfg(test)]
mod tests;
