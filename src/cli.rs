//! The command line, as close to the flags as possible, and its
//! translation into the library's [`Config`].

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::{BoolishValueParser, NonEmptyStringValueParser};
use clap::{ArgAction, Parser, ValueHint};
use pgstream::{Config, ConnArgs, EndLsn, Error, Format, Lsn, Plugin, Result};

/// What `--help` shows after the flags, and the man page as sections of
/// its own: (title, text).
const SECTIONS: &[(&str, &str)] = &[
    (
        "Environment",
        "\
Every flag also reads PGSTREAM_<FLAG>, upper case with '-' as '_'
(PGSTREAM_SLOT, PGSTREAM_PUBLICATION=a,b, PGSTREAM_INCLUDE_TX=1, ...;
booleans take 1/true/yes/on or 0/false/no/off). The flag wins; an empty
variable is unset. Below both, PGHOST PGPORT PGDATABASE PGUSER PGPASSWORD
PGPASSFILE PGSSLMODE PGSSLROOTCERT PGSSLCERT PGSSLKEY PGAPPNAME
PGCONNECT_TIMEOUT PGCHANNELBINDING PGTARGETSESSIONATTRS PGLOADBALANCEHOSTS
are honoured as by psql; other libpq variables that pgstream does not
implement (PGSERVICE, PGREQUIREAUTH, PGSSLCRL, ...) are refused. RUST_LOG
sets the log filter.",
    ),
    (
        "Output format",
        "\
One JSON object per line on stdout (or --file): op, schema, table, lsn,
xid, commit_lsn, commit_ts, key, old, new, ... Logs go to stderr.",
    ),
    (
        "Exit status",
        "\
0 clean stop (signal, --end-lsn, --max-changes, reader gone)
1 runtime failure (connection lost with --no-loop, server error)
2 usage or configuration error
3 the slot was lost or invalidated: changes may be missing
130/143 a second SIGINT/SIGTERM (128 + its number)",
    ),
    (
        "Examples",
        "\
pgstream --slot app --publication app_pub | jq .
pgstream -d postgres://me@db.example.com/shop -S shop \\
    --publication shop --end-lsn now >> changes.jsonl
pgstream status -d shop",
    ),
];

/// [`SECTIONS`] as `--help` prints them, each line indented.
fn after_help() -> String {
    let sections: Vec<String> = SECTIONS
        .iter()
        .map(|(title, text)| {
            let lines: Vec<String> = text.lines().map(|l| format!("  {l}")).collect();
            format!("{title}:\n{}", lines.join("\n"))
        })
        .collect();
    sections.join("\n\n")
}

/// Stream PostgreSQL logical replication as JSON lines.
#[derive(Debug, Parser)]
#[command(
    name = "pgstream",
    version,
    disable_help_flag = true,
    disable_version_flag = true,
    disable_help_subcommand = true,
    after_help = after_help(),
    max_term_width = 100
)]
pub struct Cli {
    /// Database name, a key=value conninfo string, or a postgres:// URI
    #[arg(
        short = 'd',
        long = "dbname",
        value_name = "CONNINFO",
        value_hint = ValueHint::Other,
        help_heading = "Connection",
        env = "PGSTREAM_DBNAME",
        global = true,
        hide_env_values = true
    )]
    pub dbname: Option<String>,
    /// Server host, or a unix-socket directory when it starts with '/'
    #[arg(
        short = 'h',
        long,
        value_name = "HOST",
        value_hint = ValueHint::Hostname,
        help_heading = "Connection",
        hide_env_values = true,
        env = "PGSTREAM_HOST",
        global = true
    )]
    pub host: Option<String>,
    /// Server port [default: 5432]
    #[arg(
        short = 'p',
        long,
        value_name = "PORT",
        value_hint = ValueHint::Other,
        help_heading = "Connection",
        hide_env_values = true,
        env = "PGSTREAM_PORT",
        global = true
    )]
    pub port: Option<String>,
    /// User name [default: the OS user]
    #[arg(
        short = 'U',
        long,
        value_name = "NAME",
        value_hint = ValueHint::Username,
        help_heading = "Connection",
        hide_env_values = true,
        env = "PGSTREAM_USERNAME",
        global = true
    )]
    pub username: Option<String>,

    /// TLS: disable, allow, prefer, require, verify-ca, verify-full [default: prefer]
    #[arg(
        long,
        value_name = "MODE",
        value_hint = ValueHint::Other,
        value_parser = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"],
        hide_possible_values = true,
        help_heading = "Connection",
        hide_env_values = true,
        env = "PGSTREAM_SSLMODE",
        global = true
    )]
    pub sslmode: Option<String>,
    /// TLS: CA certificates to verify the server with ('system': the OS store)
    #[arg(
        long,
        value_name = "FILE",
        value_hint = ValueHint::FilePath,
        help_heading = "Connection",
        hide_env_values = true,
        env = "PGSTREAM_SSLROOTCERT",
        global = true
    )]
    pub sslrootcert: Option<String>,
    /// TLS: client certificate, for cert authentication
    #[arg(
        long,
        value_name = "FILE",
        value_hint = ValueHint::FilePath,
        help_heading = "Connection",
        hide_env_values = true,
        env = "PGSTREAM_SSLCERT",
        global = true
    )]
    pub sslcert: Option<String>,
    /// TLS: the client certificate's private key
    #[arg(
        long,
        value_name = "FILE",
        value_hint = ValueHint::FilePath,
        help_heading = "Connection",
        hide_env_values = true,
        env = "PGSTREAM_SSLKEY",
        global = true
    )]
    pub sslkey: Option<String>,

    /// Replication slot to stream from (required; with status, the one to show)
    #[arg(
        short = 'S',
        long,
        hide_env_values = true,
        env = "PGSTREAM_SLOT",
        global = true,
        value_name = "NAME",
        value_hint = ValueHint::Other,
        help_heading = "Slot"
    )]
    pub slot: Option<String>,
    /// Output plugin for a new slot; an existing slot's plugin is read from the server
    #[arg(short = 'P', long, value_name = "PLUGIN", value_parser = ["pgoutput", "wal2json"], help_heading = "Slot", hide_env_values = true, env = "PGSTREAM_PLUGIN")]
    pub plugin: Option<String>,
    /// Publication(s) to stream; repeatable or comma-separated (required with pgoutput)
    #[arg(long = "publication", value_hint = ValueHint::Other, value_name = "NAME", value_delimiter = ',', action = ArgAction::Append, help_heading = "Slot", hide_env_values = true, env = "PGSTREAM_PUBLICATION")]
    pub publications: Vec<String>,
    /// Create the slot if it is missing (the default) [env: PGSTREAM_CREATE_SLOT]
    // The pair's variables are read in `config`: clap would take a variable
    // for a flag given on the command line and refuse the pair.
    #[arg(long, overrides_with = "no_create_slot", help_heading = "Slot")]
    pub create_slot: bool,
    /// Fail if the slot is missing instead of creating it [env: PGSTREAM_NO_CREATE_SLOT]
    #[arg(long, overrides_with = "create_slot", help_heading = "Slot")]
    pub no_create_slot: bool,
    /// Make a created slot temporary (dropped on disconnect)
    #[arg(long, help_heading = "Slot", hide_env_values = true, env = "PGSTREAM_TEMPORARY_SLOT", value_parser = BoolishValueParser::new())]
    pub temporary_slot: bool,
    /// Drop the slot and exit
    #[arg(long, help_heading = "Slot", hide_env_values = true, env = "PGSTREAM_DROP_SLOT", value_parser = BoolishValueParser::new())]
    pub drop_slot: bool,
    /// When this run creates the slot, first emit every existing row of the
    /// streamed tables as read events, then stream from the slot's start
    #[arg(long, help_heading = "Slot", hide_env_values = true, env = "PGSTREAM_SNAPSHOT", value_parser = BoolishValueParser::new())]
    pub snapshot: bool,
    /// Connections for the snapshot's parallel copy and catalog queries
    #[arg(long, value_name = "N", value_hint = ValueHint::Other, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64), help_heading = "Slot", hide_env_values = true, env = "PGSTREAM_POOL_SIZE")]
    pub pool_size: u32,
    /// While streaming, re-read the matching published tables (schema.table,
    /// * wildcards; repeatable) in key order as read events
    #[arg(long = "backfill", value_name = "PATTERN", value_hint = ValueHint::Other, action = ArgAction::Append, help_heading = "Slot", hide_env_values = true, env = "PGSTREAM_BACKFILL")]
    pub backfill: Vec<String>,
    /// Rows per backfill query
    #[arg(long, value_name = "N", value_hint = ValueHint::Other, default_value_t = 10000, value_parser = clap::value_parser!(u32).range(1..), help_heading = "Slot", hide_env_values = true, env = "PGSTREAM_BACKFILL_CHUNK")]
    pub backfill_chunk: u32,

    /// Start position [default: the slot's confirmed position]
    #[arg(
        long,
        value_name = "LSN",
        value_hint = ValueHint::Other,
        help_heading = "Stream",
        hide_env_values = true,
        env = "PGSTREAM_START_LSN"
    )]
    pub start_lsn: Option<String>,
    /// Exit 0 once every transaction committed at or before LSN is written;
    /// 'now' means the server's WAL position at connect time
    #[arg(
        long,
        value_name = "LSN|now",
        value_hint = ValueHint::Other,
        help_heading = "Stream",
        hide_env_values = true,
        env = "PGSTREAM_END_LSN"
    )]
    pub end_lsn: Option<String>,
    /// Exit 0 at the end of the transaction holding the N-th change
    #[arg(
        long,
        value_name = "N",
        value_hint = ValueHint::Other,
        help_heading = "Stream",
        hide_env_values = true,
        env = "PGSTREAM_MAX_CHANGES"
    )]
    pub max_changes: Option<u64>,
    /// Stream only tables matching schema.table (`*` wildcards; repeatable)
    #[arg(long = "table", value_name = "PATTERN", value_hint = ValueHint::Other, action = ArgAction::Append, help_heading = "Stream", hide_env_values = true, env = "PGSTREAM_TABLE")]
    pub tables: Vec<String>,
    /// Skip tables matching schema.table (`*` wildcards; repeatable)
    #[arg(long = "exclude-table", value_name = "PATTERN", value_hint = ValueHint::Other, action = ArgAction::Append, help_heading = "Stream", hide_env_values = true, env = "PGSTREAM_EXCLUDE_TABLE")]
    pub exclude_tables: Vec<String>,
    /// Also emit begin and commit events
    #[arg(long, help_heading = "Stream", hide_env_values = true, env = "PGSTREAM_INCLUDE_TX", value_parser = BoolishValueParser::new())]
    pub include_tx: bool,
    /// Also emit relation events: a table's columns, types and key, when
    /// first seen and after each schema change (pgoutput)
    #[arg(long, help_heading = "Stream", hide_env_values = true, env = "PGSTREAM_INCLUDE_SCHEMA", value_parser = BoolishValueParser::new())]
    pub include_schema: bool,
    /// Also emit message events (pg_logical_emit_message)
    #[arg(long, help_heading = "Stream", hide_env_values = true, env = "PGSTREAM_INCLUDE_MESSAGES", value_parser = BoolishValueParser::new())]
    pub include_messages: bool,
    /// Stream large transactions while in progress ("streamed":true; they may
    /// still abort: see stream_abort). pgoutput, PostgreSQL 14+
    #[arg(long, help_heading = "Stream", hide_env_values = true, env = "PGSTREAM_STREAMING", value_parser = BoolishValueParser::new())]
    pub streaming: bool,
    /// Decode prepared transactions at PREPARE TRANSACTION: changes with
    /// "gid", then prepare, later commit_prepared or rollback_prepared.
    /// Creates the slot with two-phase decoding. pgoutput, PostgreSQL 15+
    #[arg(long, help_heading = "Stream", hide_env_values = true, env = "PGSTREAM_TWO_PHASE", value_parser = BoolishValueParser::new())]
    pub two_phase: bool,
    /// Create the slot as a failover slot (or make an existing one so):
    /// standbys with sync_replication_slots = on keep a copy that survives
    /// a promotion. PostgreSQL 17+
    #[arg(long, help_heading = "Slot", hide_env_values = true, env = "PGSTREAM_FAILOVER", value_parser = BoolishValueParser::new())]
    pub failover: bool,
    /// Which changes to stream by origin: 'any', or 'none' to skip changes
    /// that other replication applied here (bidirectional setups).
    /// pgoutput, PostgreSQL 16+ [default: any]
    #[arg(long, value_name = "ORIGIN", value_parser = ["any", "none"], help_heading = "Stream", hide_env_values = true, env = "PGSTREAM_ORIGIN")]
    pub origin: Option<String>,
    /// pgoutput protocol version [default: the highest both sides support]
    #[arg(long, value_name = "N", value_hint = ValueHint::Other, value_parser = clap::value_parser!(u32).range(1..=4), help_heading = "Stream", hide_env_values = true, env = "PGSTREAM_PROTO_VERSION")]
    pub proto_version: Option<u32>,

    /// Append to PATH instead of stdout, fsynced before acknowledging (created
    /// with mode 0600; '-' is stdout; SIGHUP reopens it for log rotation)
    #[arg(
        short = 'f',
        long,
        value_name = "PATH",
        value_hint = ValueHint::FilePath,
        help_heading = "Output",
        hide_env_values = true,
        env = "PGSTREAM_FILE"
    )]
    pub file: Option<PathBuf>,
    /// Send each event to a broker instead of stdout, acknowledging what it
    /// acknowledged: nats://[user:pass@]host[:port][,host…][?subject=T] or
    /// redis://[user:pass@]host[:port][/db][?stream=T&maxlen=N]
    /// (docs/sinks.md)
    #[arg(
        long,
        value_name = "URL",
        value_hint = ValueHint::Url,
        help_heading = "Output",
        env = "PGSTREAM_SINK",
        hide_env_values = true,
        conflicts_with = "file"
    )]
    pub sink: Option<String>,
    /// Event layout: pgstream's, or Debezium's change events (docs/output.md)
    #[arg(long, value_name = "FORMAT", value_parser = ["pgstream", "debezium"], default_value = "pgstream", help_heading = "Output", hide_env_values = true, env = "PGSTREAM_FORMAT")]
    pub format: String,
    /// With --format debezium: source.name of every event (default: the slot name)
    #[arg(long, value_name = "NAME", value_hint = ValueHint::Other, value_parser = NonEmptyStringValueParser::new(), help_heading = "Output", hide_env_values = true, env = "PGSTREAM_TOPIC_PREFIX")]
    pub topic_prefix: Option<String>,
    /// Seconds between standby status updates (0 = only when asked)
    #[arg(
        short = 's',
        long,
        value_name = "SECS",
        value_hint = ValueHint::Other,
        default_value_t = 10,
        help_heading = "Connection",
        hide_env_values = true,
        env = "PGSTREAM_STATUS_INTERVAL"
    )]
    pub status_interval: u64,
    /// Seconds between progress lines on stderr (0 = off; SIGUSR1 asks for one)
    #[arg(
        long,
        value_name = "SECS",
        value_hint = ValueHint::Other,
        default_value_t = 0,
        help_heading = "Logging",
        hide_env_values = true,
        env = "PGSTREAM_STATS_INTERVAL"
    )]
    pub stats_interval: u64,
    /// On a lost connection exit 1 instead of reconnecting
    #[arg(long, help_heading = "Connection", hide_env_values = true, env = "PGSTREAM_NO_LOOP", value_parser = BoolishValueParser::new())]
    pub no_loop: bool,
    /// Serve Prometheus metrics on http://HOST:PORT/metrics and health on
    /// /healthz (200 while streaming, else 503 and why)
    #[arg(
        long,
        value_name = "HOST:PORT",
        value_hint = ValueHint::Other,
        help_heading = "Monitoring",
        hide_env_values = true,
        env = "PGSTREAM_METRICS_ADDR"
    )]
    pub metrics_addr: Option<String>,
    /// More log output on stderr (repeat for more)
    #[arg(short = 'v', long, action = ArgAction::Count, help_heading = "Logging", hide_env_values = true, env = "PGSTREAM_VERBOSE", global = true)]
    pub verbose: u8,
    /// Only errors on stderr
    #[arg(short = 'q', long, help_heading = "Logging", hide_env_values = true, env = "PGSTREAM_QUIET", value_parser = BoolishValueParser::new(), global = true)]
    pub quiet: bool,

    /// Print help
    #[arg(long, action = ArgAction::Help, global = true, help_heading = "Other")]
    pub help: Option<bool>,
    /// Print the version
    #[arg(short = 'V', long, action = ArgAction::Version, help_heading = "Other")]
    pub version: Option<bool>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What else pgstream does; streaming needs no subcommand.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Print the database's logical slots with their lag and retained WAL,
    /// one JSON line each (a table on a terminal); -S for one slot
    #[command(disable_help_flag = true)]
    Status,
    #[command(flatten)]
    Print(Print),
}

/// Helpers for installing pgstream: they print a file and connect nowhere.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Print {
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    #[command(disable_help_flag = true)]
    Completions {
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. `pgstream man > pgstream.1`
    #[command(disable_help_flag = true)]
    Man,
}

impl Cli {
    /// The flags as a [`Config`], with `env` as the environment. Leaves
    /// [`Config::validate`] to [`pgstream::run`].
    /// The `--format` to write in; Debezium's names the slot (or
    /// `--topic-prefix`) and the database in each event.
    pub fn format(&self, config: &Config) -> Format {
        match self.format.as_str() {
            "debezium" => Format::Debezium {
                topic_prefix: self
                    .topic_prefix
                    .clone()
                    .unwrap_or_else(|| config.slot.clone()),
                database: config.dbname().to_string(),
            },
            _ => Format::Pgstream,
        }
    }

    pub fn config(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Config> {
        let slot = self.slot.clone().unwrap_or_default();
        let mut config = Config::with_env(&self.conn_args(), slot, env)?;
        let mut publications: Vec<String> = self
            .publications
            .iter()
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect();
        publications.dedup();
        let lsn = |flag: &str, v: &str| {
            v.parse::<Lsn>().map_err(|_| {
                Error::usage(format!(
                    "invalid {flag} \"{v}\"; expected an LSN like 0/16B3748"
                ))
            })
        };
        config.start_lsn = self
            .start_lsn
            .as_deref()
            .map(|v| lsn("--start-lsn", v))
            .transpose()?;
        config.end_lsn = match self.end_lsn.as_deref() {
            None => None,
            Some(v) if v.eq_ignore_ascii_case("now") => Some(EndLsn::Now),
            Some(v) => Some(EndLsn::At(lsn("--end-lsn", v)?)),
        };
        if self.max_changes == Some(0) {
            return Err(Error::usage("--max-changes must be at least 1"));
        }
        config.plugin = self.plugin.as_deref().and_then(Plugin::from_name);
        config.publications = publications;
        config.create_slot = self.create_slot(env)?;
        config.temporary_slot = self.temporary_slot;
        config.drop_slot = self.drop_slot;
        config.snapshot = self.snapshot;
        config.pool_size = self.pool_size as usize;
        config.set_backfill(&self.backfill)?;
        config.backfill_chunk = self.backfill_chunk as usize;
        config.max_changes = self.max_changes;
        config.set_tables(&self.tables, &self.exclude_tables)?;
        config.include_tx = self.include_tx;
        config.include_schema = self.include_schema;
        config.include_messages = self.include_messages;
        config.streaming = self.streaming;
        config.two_phase = self.two_phase;
        config.failover = self.failover;
        config.origin.clone_from(&self.origin);
        config.proto_version = self.proto_version;
        config.status_interval = Duration::from_secs(self.status_interval);
        config.stats_interval =
            (self.stats_interval > 0).then(|| Duration::from_secs(self.stats_interval));
        config.no_loop = self.no_loop;
        config.validate()?;
        Ok(config)
    }
}

impl Cli {
    /// The connection flags.
    pub fn conn_args(&self) -> ConnArgs {
        ConnArgs {
            dbname: self.dbname.clone(),
            host: self.host.clone(),
            port: self.port.clone(),
            username: self.username.clone(),
            sslmode: self.sslmode.clone(),
            sslrootcert: self.sslrootcert.clone(),
            sslcert: self.sslcert.clone(),
            sslkey: self.sslkey.clone(),
        }
    }

    /// `--create-slot` / `--no-create-slot`, else their variables (at most
    /// one of them true), else create.
    fn create_slot(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<bool> {
        if self.create_slot || self.no_create_slot {
            return Ok(!self.no_create_slot);
        }
        let var = |name: &str| {
            let value = env(name).filter(|v| !v.is_empty());
            value
                .map(|v| {
                    boolish(&v).ok_or_else(|| {
                        Error::usage(format!(
                            "invalid {name} \"{v}\"; expected 1/true/yes/on or 0/false/no/off"
                        ))
                    })
                })
                .transpose()
        };
        match (
            var("PGSTREAM_CREATE_SLOT")?,
            var("PGSTREAM_NO_CREATE_SLOT")?,
        ) {
            (Some(true), Some(true)) => Err(Error::usage(
                "PGSTREAM_CREATE_SLOT and PGSTREAM_NO_CREATE_SLOT contradict each other; unset one",
            )),
            (_, Some(true)) | (Some(false), _) => Ok(false),
            _ => Ok(true),
        }
    }
}

/// clap's `BoolishValueParser` words, for variables read outside clap.
fn boolish(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "y" | "yes" | "t" | "true" | "on" => Some(true),
        "0" | "n" | "no" | "f" | "false" | "off" => Some(false),
        _ => None,
    }
}

/// Removes empty `PGSTREAM_*` variables before parsing: an empty one counts
/// as unset, as libpq treats an empty `PG*` variable (a unit file's
/// `Environment=PGSTREAM_FILE=` must not mean `--file ''`). Call it while
/// the process has one thread.
pub fn unset_empty_env() {
    for (name, value) in std::env::vars_os() {
        if value.is_empty() && name.to_string_lossy().starts_with("PGSTREAM_") {
            std::env::remove_var(name);
        }
    }
}

impl Print {
    /// Writes the completion script or man page to `out`.
    pub fn run(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        use clap::CommandFactory;
        let mut cmd = Cli::command();
        match self {
            Print::Completions { shell } => {
                clap_complete::generate(*shell, &mut cmd, "pgstream", out);
                Ok(())
            }
            Print::Man => man_page(cmd, out),
        }
    }
}

/// clap_mangen's sections for the flags, then ours: the subcommands
/// without links to pages that do not exist (pgstream-status(1) …), and
/// the after-help sections under their own titles rather than "EXTRA".
fn man_page(cmd: clap::Command, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    use clap_mangen::roff::{bold, roman, Roff};
    let man = clap_mangen::Man::new(cmd.clone());
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    let mut roff = Roff::new();
    roff.control("SH", ["COMMANDS"]);
    for sub in cmd.get_subcommands() {
        let mut usage = format!("pgstream {}", sub.get_name());
        for arg in sub.get_positionals() {
            for name in arg.get_value_names().unwrap_or_default() {
                usage.push_str(&format!(" {name}"));
            }
        }
        roff.control("TP", []);
        roff.text([bold(usage)]);
        let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
        roff.text([roman(about)]);
    }
    for (title, text) in SECTIONS {
        roff.control("SH", [title.to_uppercase().as_str()]);
        roff.control("nf", []);
        for line in text.lines() {
            roff.text([roman(line)]);
        }
        roff.control("fi", []);
    }
    roff.to_writer(out)?;
    man.render_version_section(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("pgstream").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn definition_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn publications_repeat_and_split() {
        let cli = parse(&["--publication", "a,b", "--publication", "c"]);
        assert_eq!(cli.publications, ["a", "b", "c"]);
    }

    #[test]
    fn short_h_is_host() {
        let cli = parse(&[
            "-h", "/tmp", "-p", "5433", "-U", "me", "-d", "db", "-S", "s",
        ]);
        assert_eq!(cli.host.as_deref(), Some("/tmp"));
        assert_eq!(cli.slot.as_deref(), Some("s"));
    }

    #[test]
    fn snapshot_flags() {
        let cli = parse(&["--snapshot", "--pool-size", "8"]);
        assert!(cli.snapshot);
        assert_eq!(cli.pool_size, 8);
        assert_eq!(parse(&[]).pool_size, 4);
    }

    #[test]
    fn create_slot_flags_override() {
        assert!(parse(&["--no-create-slot"]).no_create_slot);
        assert!(!parse(&[]).no_create_slot);
        assert!(!parse(&["--no-create-slot", "--create-slot"]).no_create_slot);
    }

    #[test]
    fn completions_and_man_page_render() {
        for args in [
            &["completions", "bash"][..],
            &["completions", "zsh"],
            &["man"],
        ] {
            let Some(Command::Print(print)) = parse(args).command else {
                panic!("{args:?} is not a print command");
            };
            let mut out = Vec::new();
            print.run(&mut out).unwrap();
            let text = String::from_utf8(out).unwrap();
            assert!(
                text.contains("pgstream") && text.contains("publication"),
                "{args:?}"
            );
        }
    }

    #[test]
    fn help_shows_every_variable_and_keeps_server_options_together() {
        let help = Cli::command().render_help().to_string();
        let flat = help.split_whitespace().collect::<Vec<_>>().join(" ");
        for arg in Cli::command().get_arguments() {
            if let Some(env) = arg.get_env() {
                let shown = format!("[env: {}]", env.to_string_lossy());
                assert!(flat.contains(&shown), "{shown} missing:\n{help}");
            }
        }
        assert!(!help.contains("Options:"), "{help}");
        let connection = help.split("Connection:").nth(1).unwrap();
        let connection = connection.split("\n\n").next().unwrap();
        for flag in ["--status-interval", "--no-loop", "--sslmode"] {
            assert!(connection.contains(flag), "{flag} not under Connection");
        }
        let other = help.split("Other:").nth(1).unwrap();
        assert!(other.contains("--help") && other.contains("--version"));
    }

    #[test]
    fn after_help_lines_fit_80_columns() {
        for (title, text) in SECTIONS {
            for line in text.lines() {
                assert!(line.len() + 2 <= 80, "{title}: {line:?}");
            }
        }
    }

    /// Completions offer file names only where a file is meant.
    #[test]
    fn every_value_has_a_hint() {
        let mut checked = 0;
        for arg in Cli::command().get_arguments() {
            let takes_value = arg.get_action().takes_values();
            if takes_value && arg.get_possible_values().is_empty() {
                checked += 1;
                assert_ne!(
                    arg.get_value_hint(),
                    ValueHint::Unknown,
                    "--{} has no value hint",
                    arg.get_id()
                );
            }
        }
        assert!(checked > 10, "only {checked} flags take a value?");
    }

    #[test]
    fn man_page_has_named_sections_and_links_no_missing_pages() {
        let mut out = Vec::new();
        Print::Man.run(&mut out).unwrap();
        let man = String::from_utf8(out).unwrap();
        assert!(!man.contains(".SH EXTRA"), "{man}");
        for section in [
            ".SH ENVIRONMENT",
            ".SH \"EXIT STATUS\"",
            ".SH EXAMPLES",
            ".SH COMMANDS",
        ] {
            assert!(man.contains(section), "no {section}");
        }
        assert!(!man.contains("(1)"), "a man page link: {man}");
        assert!(man.contains("pgstream status"));
    }

    #[test]
    fn create_slot_variables_yield_to_the_flags() {
        let with = |args: &[&str], vars: &[(&str, &str)]| {
            parse(args).create_slot(&|k| {
                vars.iter()
                    .find(|(name, _)| *name == k)
                    .map(|(_, v)| v.to_string())
            })
        };
        let no = ("PGSTREAM_NO_CREATE_SLOT", "Yes");
        assert!(with(&[], &[]).unwrap());
        assert!(with(&[], &[("PGSTREAM_NO_CREATE_SLOT", "")]).unwrap());
        assert!(!with(&[], &[no]).unwrap());
        assert!(!with(&[], &[("PGSTREAM_CREATE_SLOT", "off")]).unwrap());
        assert!(with(&["--create-slot"], &[no]).unwrap());
        assert!(!with(&["--no-create-slot"], &[("PGSTREAM_CREATE_SLOT", "1")]).unwrap());
        for bad in [
            &[("PGSTREAM_CREATE_SLOT", "maybe")][..],
            &[("PGSTREAM_CREATE_SLOT", "on"), no],
        ] {
            assert_eq!(with(&[], bad).unwrap_err().exit_code(), 2, "{bad:?}");
        }
    }

    fn config(args: &[&str]) -> Result<Config> {
        parse(args).config(&|k| match k {
            "USER" => Some("tester".into()),
            _ => None,
        })
    }

    #[test]
    fn minimal() {
        let c = config(&["-S", "s", "--publication", "p"]).unwrap();
        assert_eq!(c.slot, "s");
        assert!(c.create_slot);
        assert_eq!(c.status_interval, Duration::from_secs(10));
        assert_eq!(c.dbname(), "tester");
    }

    #[test]
    fn slot_is_required() {
        let e = config(&["--publication", "p"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("--slot"));
    }

    #[test]
    fn pgoutput_needs_a_publication() {
        assert_eq!(
            config(&["-S", "s", "-P", "pgoutput"])
                .unwrap_err()
                .exit_code(),
            2
        );
        // Without --plugin the slot may turn out to be wal2json.
        assert!(config(&["-S", "s"]).is_ok());
    }

    #[test]
    fn lsns() {
        let c = config(&[
            "-S",
            "s",
            "--publication",
            "p",
            "--start-lsn",
            "1/AB",
            "--end-lsn",
            "now",
        ])
        .unwrap();
        assert_eq!(c.start_lsn, Some(Lsn(0x1_0000_00AB)));
        assert_eq!(c.end_lsn, Some(EndLsn::Now));
        let e = config(&["-S", "s", "--publication", "p", "--end-lsn", "soon"]).unwrap_err();
        assert!(e.to_string().contains("--end-lsn"));
        assert_eq!(
            config(&["-S", "s", "--publication", "p", "--max-changes", "0"])
                .unwrap_err()
                .exit_code(),
            2
        );
    }

    #[test]
    fn snapshot_needs_a_new_slot() {
        let snapshot = |extra: &[&str]| {
            let base = ["-S", "s", "--publication", "p", "--snapshot"];
            config(&[&base[..], extra].concat())
        };
        let c = snapshot(&[]).unwrap();
        assert!(c.snapshot);
        assert_eq!(c.pool_size, 4);
        let e = snapshot(&["--no-create-slot"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("--create-slot"), "{e}");
        assert_eq!(
            snapshot(&["--start-lsn", "0/1"]).unwrap_err().exit_code(),
            2
        );
    }

    #[test]
    fn bad_values_are_rejected() {
        let bad = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("pgstream").chain(args.iter().copied())).is_err()
        };
        assert!(bad(&["--plugin", "test_decoding"]));
        assert!(bad(&["--proto-version", "9"]));
        assert!(bad(&["--max-changes", "-1"]));
        assert!(bad(&["--pool-size", "0"]));
        assert!(bad(&["--format", "avro"]));
        assert!(bad(&["--topic-prefix", ""]));
    }

    #[test]
    fn format() {
        let format = |args: &[&str]| {
            let args = [&["-S", "s", "--publication", "p", "-d", "shop"][..], args].concat();
            parse(&args).format(&config(&args).unwrap())
        };
        assert_eq!(format(&[]), Format::Pgstream);
        let debezium = |prefix: &str| Format::Debezium {
            topic_prefix: prefix.into(),
            database: "shop".into(),
        };
        assert_eq!(format(&["--format", "debezium"]), debezium("s"));
        assert_eq!(
            format(&["--format", "debezium", "--topic-prefix", "t"]),
            debezium("t")
        );
    }
}
