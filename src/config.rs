//! [`Config`]: everything a run needs, merged from flags, the environment
//! and `~/.pgpass`, validated once. Buildable in code for embedders.

use std::time::Duration;

use crate::cli::Cli;
use crate::conninfo::{ConnArgs, ConnParams};
use crate::error::{Error, Result};
use crate::event::{parse_lsn, Lsn};
use crate::filter::TableFilter;
use crate::writer::Target;

/// The output plugin of a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plugin {
    PgOutput,
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
pub enum EndLsn {
    At(Lsn),
    /// The server's WAL position when pgstream first connects.
    Now,
}

/// A validated run configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub conn: ConnParams,
    pub slot: String,
    /// `None`: take the existing slot's plugin, or pgoutput for a new one.
    pub plugin: Option<Plugin>,
    pub publications: Vec<String>,
    pub create_slot: bool,
    pub temporary_slot: bool,
    pub drop_slot: bool,
    /// Emit the existing rows as `read` events when the slot is created.
    pub snapshot: bool,
    /// Connections of the snapshot's pool.
    pub pool_size: usize,
    pub start_lsn: Option<Lsn>,
    pub end_lsn: Option<EndLsn>,
    pub max_changes: Option<u64>,
    pub tables: TableFilter,
    pub include_tx: bool,
    pub include_schema: bool,
    pub include_messages: bool,
    /// Ask for in-progress transactions to be streamed (SPEC §4).
    pub streaming: bool,
    /// pgoutput's `origin` option (`any` or `none`), when given.
    pub origin: Option<String>,
    pub proto_version: Option<u32>,
    pub output: Target,
    pub status_interval: Duration,
    /// How often to log a progress line (`None`: only on SIGUSR1).
    pub stats_interval: Option<Duration>,
    pub no_loop: bool,
}

impl Config {
    /// Builds and validates a configuration from parsed flags and an
    /// environment lookup.
    pub fn from_cli(cli: Cli, env: &dyn Fn(&str) -> Option<String>) -> Result<Config> {
        let slot = cli
            .slot
            .filter(|s| !s.is_empty())
            .ok_or_else(|| Error::usage("no slot given; use --slot NAME (or set PGSTREAM_SLOT)"))?;
        let conn = ConnParams::resolve(
            &ConnArgs {
                dbname: cli.dbname,
                host: cli.host,
                port: cli.port,
                username: cli.username,
                sslmode: cli.sslmode,
                sslrootcert: cli.sslrootcert,
                sslcert: cli.sslcert,
                sslkey: cli.sslkey,
            },
            env,
        )
        .map_err(|e| Error::usage(e.to_string()))?;
        let plugin = cli.plugin.as_deref().and_then(Plugin::from_name);
        let mut publications: Vec<String> = cli
            .publications
            .into_iter()
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect();
        publications.dedup();
        let lsn = |flag: &str, v: &str| {
            parse_lsn(v).ok_or_else(|| {
                Error::usage(format!(
                    "invalid {flag} \"{v}\"; expected an LSN like 0/16B3748"
                ))
            })
        };
        let start_lsn = cli
            .start_lsn
            .as_deref()
            .map(|v| lsn("--start-lsn", v))
            .transpose()?;
        let end_lsn = match cli.end_lsn.as_deref() {
            None => None,
            Some(v) if v.eq_ignore_ascii_case("now") => Some(EndLsn::Now),
            Some(v) => Some(EndLsn::At(lsn("--end-lsn", v)?)),
        };
        if cli.max_changes == Some(0) {
            return Err(Error::usage("--max-changes must be at least 1"));
        }
        let config = Config {
            conn,
            slot,
            plugin,
            publications,
            create_slot: !cli.no_create_slot,
            temporary_slot: cli.temporary_slot,
            drop_slot: cli.drop_slot,
            snapshot: cli.snapshot,
            pool_size: cli.pool_size as usize,
            start_lsn,
            end_lsn,
            max_changes: cli.max_changes,
            tables: TableFilter::new(&cli.tables, &cli.exclude_tables)?,
            include_tx: cli.include_tx,
            include_schema: cli.include_schema,
            include_messages: cli.include_messages,
            streaming: cli.streaming,
            origin: cli.origin,
            proto_version: cli.proto_version,
            output: cli.file.map_or(Target::Stdout, Target::File),
            status_interval: Duration::from_secs(cli.status_interval),
            stats_interval: (cli.stats_interval > 0)
                .then(|| Duration::from_secs(cli.stats_interval)),
            no_loop: cli.no_loop,
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks what the flags cannot check one by one.
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
        if self.temporary_slot && !self.create_slot {
            return Err(Error::usage("--temporary-slot needs --create-slot"));
        }
        if self.snapshot && !self.create_slot {
            return Err(Error::usage(
                "--snapshot needs --create-slot: the snapshot is taken when this run creates the slot",
            ));
        }
        if self.snapshot && self.start_lsn.is_some() {
            return Err(Error::usage(
                "--snapshot and --start-lsn cannot be combined: after the snapshot the stream starts at the slot's consistent point",
            ));
        }
        Ok(())
    }
}

/// The error for pgoutput without `--publication`.
pub fn no_publication() -> Error {
    Error::usage(
        "pgoutput needs a publication; use --publication NAME \
         (CREATE PUBLICATION NAME FOR ALL TABLES creates one)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn config(args: &[&str]) -> Result<Config> {
        let cli =
            Cli::try_parse_from(std::iter::once("pgstream").chain(args.iter().copied())).unwrap();
        Config::from_cli(cli, &|k| match k {
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
        assert_eq!(c.output, Target::Stdout);
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
        assert_eq!(c.start_lsn, Some(0x1_0000_00AB));
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
        let c = config(&["-S", "s", "--publication", "p", "--snapshot"]).unwrap();
        assert!(c.snapshot);
        assert_eq!(c.pool_size, 4);
        let e = config(&[
            "-S",
            "s",
            "--publication",
            "p",
            "--snapshot",
            "--no-create-slot",
        ])
        .unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("--create-slot"), "{e}");
        let e = config(&[
            "-S",
            "s",
            "--publication",
            "p",
            "--snapshot",
            "--start-lsn",
            "0/1",
        ])
        .unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }
}
