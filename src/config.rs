//! [`Config`]: everything a run needs, merged from flags, the environment
//! and `~/.pgpass`, validated once. Buildable in code for embedders.

use std::time::Duration;

use crate::conninfo::{ConnArgs, ConnParams};
use crate::error::{Error, Result};
use crate::event::Lsn;
use crate::filter::TableFilter;
use crate::replication::commands::NewSlot;

/// The output plugin of a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Plugin {
    /// PostgreSQL's built-in plugin (publications, protocol versions 1–4).
    PgOutput,
    /// The wal2json extension (`format-version` 2).
    Wal2Json,
}

impl Plugin {
    /// The plugin's name on the server.
    pub fn name(self) -> &'static str {
        match self {
            Plugin::PgOutput => "pgoutput",
            Plugin::Wal2Json => "wal2json",
        }
    }

    /// Parses a server-side plugin name.
    pub fn from_name(name: &str) -> Option<Plugin> {
        match name {
            "pgoutput" => Some(Plugin::PgOutput),
            "wal2json" => Some(Plugin::Wal2Json),
            _ => None,
        }
    }
}

/// Where to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndLsn {
    /// At this WAL position.
    At(Lsn),
    /// The server's WAL position when pgstream first connects.
    Now,
}

/// What to stream and how: the binary's flags, buildable in code.
///
/// [`Config::new`] takes where to connect and the slot; the public fields
/// hold the rest, with the binary's defaults. [`run`](crate::run) checks
/// the whole ([`Config::validate`]) before it connects.
///
/// ```
/// let mut config = pgstream::Config::new(
///     &pgstream::ConnArgs::conninfo("host=/tmp dbname=shop user=me"),
///     "shop_slot",
/// )?;
/// config.publications = vec!["shop_pub".into()];
/// config.include_tx = true;
/// config.set_tables(&["public.orders*".into()], &[])?;
/// # Ok::<(), pgstream::Error>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    pub(crate) conn: ConnParams,
    /// The replication slot (`--slot`).
    pub slot: String,
    /// The slot's output plugin (`--plugin`). `None`: the existing slot's,
    /// or pgoutput for a new one.
    pub plugin: Option<Plugin>,
    /// pgoutput publications (`--publication`); wal2json streams only
    /// their tables when given.
    pub publications: Vec<String>,
    /// Create the slot if it is missing (default; `--no-create-slot`).
    pub create_slot: bool,
    /// Create the slot temporary: it goes with the connection.
    pub temporary_slot: bool,
    /// Drop the slot (and an unfinished snapshot's marker) and stop.
    pub drop_slot: bool,
    /// When this run creates the slot, first hand every existing row of
    /// the streamed tables over as `read` events (docs/snapshot.md).
    pub snapshot: bool,
    /// Connections of the snapshot's copy (default 4).
    pub pool_size: usize,
    /// Tables to re-read while streaming (`--backfill`), if any.
    pub(crate) backfill: Option<TableFilter>,
    /// Rows per backfill query (`--backfill-chunk`, default 10000).
    pub backfill_chunk: usize,
    /// Start here rather than at the slot's confirmed position, if later.
    pub start_lsn: Option<Lsn>,
    /// Stop cleanly once the stream reaches this position.
    pub end_lsn: Option<EndLsn>,
    /// Stop cleanly after this many changes (the transaction in full).
    pub max_changes: Option<u64>,
    pub(crate) tables: TableFilter,
    /// Deliver `begin` and `commit` events.
    pub include_tx: bool,
    /// Deliver `relation` events (table descriptions, after schema changes).
    pub include_schema: bool,
    /// Deliver `message` events (`pg_logical_emit_message`).
    pub include_messages: bool,
    /// Ask for in-progress transactions to be streamed (pgoutput, 14+).
    pub streaming: bool,
    /// Decode prepared transactions at PREPARE (`--two-phase`; pgoutput,
    /// 15+): their changes come with `gid`, then `prepare`, and later
    /// `commit_prepared` or `rollback_prepared`.
    pub two_phase: bool,
    /// Create the slot with `FAILOVER` (or alter an existing one to it), so
    /// that standbys with `sync_replication_slots` keep a copy that a
    /// promotion makes usable (`--failover`, 17+).
    pub failover: bool,
    /// pgoutput's `origin` option (`any` or `none`, 16+).
    pub origin: Option<String>,
    /// pgoutput's protocol version (default: the highest the server has).
    pub proto_version: Option<u32>,
    /// Longest pause between status updates to the server (default 10 s;
    /// zero: only when the server asks).
    pub status_interval: Duration,
    /// How often to log a progress line (`None`: never).
    pub stats_interval: Option<Duration>,
    /// Fail on a lost connection instead of reconnecting.
    pub no_loop: bool,
}

impl Config {
    /// A configuration with the binary's defaults for streaming `slot`,
    /// connecting as `conn` says. Unset connection settings come from the
    /// `PG*` environment variables, the password file and libpq's
    /// defaults, as for psql.
    pub fn new(conn: &ConnArgs, slot: impl Into<String>) -> Result<Config> {
        Self::with_env(conn, slot, &|k| std::env::var(k).ok())
    }

    /// [`Config::new`] with `env` in place of the process environment.
    pub fn with_env(
        conn: &ConnArgs,
        slot: impl Into<String>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config> {
        let slot = slot.into();
        if slot.is_empty() {
            return Err(Error::usage(
                "no slot given; use --slot NAME (or set PGSTREAM_SLOT)",
            ));
        }
        let conn = ConnParams::resolve(conn, env).map_err(|e| Error::usage(e.to_string()))?;
        Ok(Config {
            conn,
            slot,
            plugin: None,
            publications: Vec::new(),
            create_slot: true,
            temporary_slot: false,
            drop_slot: false,
            snapshot: false,
            pool_size: 4,
            backfill: None,
            backfill_chunk: 10_000,
            start_lsn: None,
            end_lsn: None,
            max_changes: None,
            tables: TableFilter::default(),
            include_tx: false,
            include_schema: false,
            include_messages: false,
            streaming: false,
            two_phase: false,
            failover: false,
            origin: None,
            proto_version: None,
            status_interval: Duration::from_secs(10),
            stats_interval: None,
            no_loop: false,
        })
    }

    /// Streams only the tables that match an `include` pattern (all, if
    /// none is given) and no `exclude` pattern: `schema.table` or `table`
    /// (any schema), with `*` and `?` wildcards, as `--table` and
    /// `--exclude-table` take them.
    pub fn set_tables(&mut self, include: &[String], exclude: &[String]) -> Result<()> {
        self.tables = TableFilter::new(include, exclude)?;
        Ok(())
    }

    /// While streaming, re-reads the published tables that match one of
    /// `patterns` (as [`Config::set_tables`] takes them) in key order, as
    /// `read` events interleaved with the stream (`--backfill`); none: no
    /// backfill.
    pub fn set_backfill(&mut self, patterns: &[String]) -> Result<()> {
        self.backfill = match patterns {
            [] => None,
            _ => Some(TableFilter::new(patterns, &[])?),
        };
        Ok(())
    }

    /// The database the slot lives in.
    pub fn dbname(&self) -> &str {
        &self.conn.dbname
    }

    /// Checks what the fields cannot check one by one; [`run`](crate::run)
    /// calls it first.
    pub fn validate(&self) -> Result<()> {
        if self.drop_slot {
            return Ok(());
        }
        if self.plugin.unwrap_or(Plugin::PgOutput) == Plugin::PgOutput
            && self.publications.is_empty()
        {
            // An existing wal2json slot needs none; that is checked once the
            // slot's plugin is known.
            if self.plugin == Some(Plugin::PgOutput) {
                return Err(no_publication());
            }
        }
        if self.two_phase && self.plugin == Some(Plugin::Wal2Json) {
            return Err(two_phase_needs_pgoutput());
        }
        if self.temporary_slot && !self.create_slot {
            return Err(Error::usage("--temporary-slot needs --create-slot"));
        }
        if self.snapshot && !self.create_slot {
            return Err(Error::usage(
                "--snapshot needs --create-slot: the snapshot is taken when this run creates the slot",
            ));
        }
        if self.backfill.is_some() && self.backfill_chunk == 0 {
            return Err(Error::usage("--backfill-chunk must be at least 1"));
        }
        if self.snapshot && self.start_lsn.is_some() {
            return Err(Error::usage(
                "--snapshot and --start-lsn cannot be combined: after the snapshot the stream starts at the slot's consistent point",
            ));
        }
        Ok(())
    }

    /// How this run creates its slot; `export` for the snapshot.
    pub(crate) fn new_slot(&self, export: bool) -> NewSlot {
        NewSlot {
            temporary: self.temporary_slot,
            export,
            two_phase: self.two_phase,
            failover: self.failover,
        }
    }
}

/// The error for `--two-phase` on a wal2json slot.
pub(crate) fn two_phase_needs_pgoutput() -> Error {
    Error::usage("--two-phase needs a pgoutput slot: wal2json has no two-phase decoding")
}

/// The error for pgoutput without `--publication`.
pub(crate) fn no_publication() -> Error {
    Error::usage(
        "pgoutput needs a publication; use --publication NAME \
         (CREATE PUBLICATION NAME FOR ALL TABLES creates one)",
    )
}
