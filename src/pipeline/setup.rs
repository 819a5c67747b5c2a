//! Session set-up: server checks, the slot, plugin options, START_REPLICATION.

use std::time::Duration;

use log::{debug, info};
use tokio::time::{sleep, Instant};

use tokio_postgres::error::SqlState;

use super::snapshot;
use crate::config::{no_publication, two_phase_needs_pgoutput, Config, EndLsn, Plugin};
use crate::decode::pgoutput::PgOutput;
use crate::decode::wal2json::{self, Wal2Json};
use crate::decode::Decoder;
use crate::error::{Error, Result};
use crate::event::Lsn;
use crate::metrics::State;
use crate::replication::commands;
use crate::replication::conn::ReplicationConn;
use crate::sink::Handler;
use crate::sql;
use crate::sql::catalog::{CatalogConn, SlotInfo};
use crate::sql::server::Server;

use super::backfill::Backfill;

use super::{status_interval, RunState, SLOT_LOG, SLOT_RELEASE_WAIT};

/// A session ready to stream.
pub(super) struct Started {
    pub repl: ReplicationConn,
    pub catalog: CatalogConn,
    pub decoder: Box<dyn Decoder>,
    pub wal_sender_timeout: Duration,
    /// The server of the host list it streams from.
    pub server: Server,
}

/// Chooses the server, checks it, finds or creates the slot and starts
/// streaming.
pub(super) async fn start_stream<H: Handler>(
    config: &Config,
    st: &mut RunState,
    handler: &mut H,
) -> Result<Started> {
    let (catalog, server) = sql::server::connect(&config.conn).await?;
    if config.conn.has_choice() {
        info!(
            target: SLOT_LOG,
            "using {} ({}, target_session_attrs={})",
            server.endpoint,
            if server.in_recovery { "standby" } else { "primary" },
            config.conn.target_session_attrs.as_str()
        );
    }
    let wal_level = catalog.setting("wal_level").await?;
    if wal_level != "logical" {
        return Err(Error::usage(format!(
            "wal_level is \"{wal_level}\"; set wal_level = logical in postgresql.conf and restart the server"
        )));
    }
    let wst: u64 = catalog
        .setting("wal_sender_timeout")
        .await?
        .parse()
        .unwrap_or(0);
    // On a reconnect the slot may still be held by the walsender of the
    // lost connection: that clears up by itself, so it is retried.
    let reconnect = st.started;
    let slot = wait_for_slot(config, &catalog, reconnect).await?;
    let plugin = check_slot(config, slot.as_ref(), reconnect)?;
    if server.in_recovery && slot.as_ref().is_some_and(|s| s.synced == Some(true)) {
        // The standby's copy follows the primary's slot; streaming from it
        // would fork them. Promotion makes it an ordinary slot.
        return Err(Error::Waiting(format!(
            "replication slot \"{}\" on {} is a copy synchronised from the primary; waiting for a promotion or a primary in the host list",
            config.slot,
            server.endpoint
        )));
    }
    snapshot::check(config, &catalog, slot.is_some(), reconnect).await?;
    if plugin == Plugin::PgOutput && config.publications.is_empty() {
        return Err(no_publication());
    }
    let missing = catalog.missing_publications(&config.publications).await?;
    if !missing.is_empty() {
        return Err(Error::usage(format!(
            "publication \"{}\" does not exist in database \"{}\"; create it with CREATE PUBLICATION {} FOR ALL TABLES (or FOR TABLE …)",
            missing[0],
            config.conn.dbname,
            commands::quote_ident(&missing[0])
        )));
    }
    let (options, decoder) = match plugin {
        Plugin::PgOutput => pgoutput_options(config, catalog.server_version)?,
        Plugin::Wal2Json => wal2json_options(config, &catalog).await?,
    };
    if !st.started {
        st.backfill = Backfill::resolve(config, &catalog, plugin).await?;
    }

    if config.failover && catalog.server_version < 170000 {
        return Err(Error::usage(
            "--failover needs PostgreSQL 17 or later (failover slots)",
        ));
    }
    let mut repl =
        ReplicationConn::connect(&server.params, &snapshot::replication_settings(config))
            .await
            .map_err(explain_connect)?;
    repl.simple_query("IDENTIFY_SYSTEM").await?;
    if config.end_lsn == Some(EndLsn::Now) && st.end_lsn.is_none() {
        let now = catalog.wal_insert_lsn().await?;
        st.end_lsn = Some(now);
        debug!("--end-lsn now is {now}");
    }
    if slot.is_none() && server.in_recovery {
        info!(
            target: SLOT_LOG,
            "creating slot {} on a standby: this waits for the primary's next running-transactions record (run SELECT pg_log_standby_snapshot() on the primary to hurry it)",
            config.slot
        );
    }
    let confirmed = match &slot {
        Some(s) => {
            debug!("reusing slot {} (plugin {})", config.slot, plugin.name());
            if config.failover && s.failover != Some(true) {
                repl.simple_query(&commands::alter_slot_failover(&config.slot))
                    .await?;
                info!(target: SLOT_LOG, "slot {} now fails over to standbys", config.slot);
            }
            s.confirmed_flush
                .as_deref()
                .and_then(|s| s.parse().ok())
                .unwrap_or(Lsn::ZERO)
        }
        None if config.snapshot => {
            st.metrics.set_state(State::Snapshot);
            snapshot::take(
                config,
                &server.params,
                &catalog,
                &mut repl,
                plugin,
                handler,
                &st.notifier,
            )
            .await?
        }
        None => {
            let rows = repl
                .simple_query(&commands::create_slot(
                    &config.slot,
                    plugin.name(),
                    config.new_slot(false),
                    repl.server_version,
                ))
                .await?;
            let point = rows
                .first()
                .and_then(|r| r.get(1).cloned().flatten())
                .and_then(|s| s.parse::<Lsn>().ok());
            info!(
                target: SLOT_LOG,
                "created slot {} at {}: its stream begins there",
                config.slot,
                point.map(|p| p.to_string()).unwrap_or_default()
            );
            point.unwrap_or(Lsn::ZERO)
        }
    };
    // A reconnect resumes where this run got to, not where the slot says:
    // after a failover the synchronised copy may lag what was acknowledged.
    let start = if st.started {
        st.ack.position()
    } else {
        config.start_lsn.unwrap_or(Lsn::ZERO)
    };
    st.started = true;
    st.ack
        .restart(confirmed.max(start), status_interval(config, Some(wst)));

    if let Err(e) = repl
        .start_copy_both(&commands::start_replication(&config.slot, start, &options))
        .await
    {
        return Err(explain_start_error(config, &catalog, e, reconnect).await);
    }
    info!("streaming from slot {} ({})", config.slot, plugin.name());
    Ok(Started {
        repl,
        catalog,
        decoder,
        wal_sender_timeout: Duration::from_millis(wst),
        server,
    })
}

type PluginSetup = (Vec<(&'static str, String)>, Box<dyn Decoder>);

/// pgoutput's START_REPLICATION options, for the negotiated protocol.
fn pgoutput_options(config: &Config, server_version: i32) -> Result<PluginSetup> {
    let proto = proto_version(config, server_version)?;
    if config.include_messages && server_version < 140000 {
        return Err(Error::usage(
            "--include-messages needs PostgreSQL 14 or later",
        ));
    }
    debug!("pgoutput protocol version {proto}");
    let mut options = vec![
        ("proto_version", proto.to_string()),
        (
            "publication_names",
            commands::publication_names(&config.publications),
        ),
    ];
    if config.backfill.is_some() && server_version < 140000 {
        return Err(Error::usage(
            "--backfill needs PostgreSQL 14 or later (its watermarks are logical messages)",
        ));
    }
    // The backfill's watermarks are messages too; it keeps them to itself.
    if config.include_messages || config.backfill.is_some() {
        options.push(("messages", "true".into()));
    }
    if config.two_phase {
        if server_version < 150000 {
            return Err(Error::usage("--two-phase needs PostgreSQL 15 or later"));
        }
        if proto < 3 {
            return Err(Error::usage(
                "--two-phase needs pgoutput protocol 3 or later; drop --proto-version or raise it",
            ));
        }
        options.push(("two_phase", "on".into()));
    }
    if config.streaming {
        if proto < 2 {
            return Err(Error::usage(
                "--streaming needs pgoutput protocol 2 or later (PostgreSQL 14+)",
            ));
        }
        options.push(("streaming", "on".into()));
    }
    if let Some(origin) = &config.origin {
        if server_version < 160000 {
            return Err(Error::usage("--origin needs PostgreSQL 16 or later"));
        }
        options.push(("origin", origin.clone()));
    }
    Ok((options, Box::new(PgOutput::new())))
}

/// wal2json's options. `--publication` becomes `add-tables` with the
/// publications' tables as they are now (resolved again on reconnect) —
/// unless one is FOR ALL TABLES, which needs no list (and a list by name
/// would miss tables created or renamed later). `--table`/`--exclude-table`
/// are pushed down as far as wal2json's table lists can say them (the filter
/// still applies to what arrives).
async fn wal2json_options(config: &Config, catalog: &CatalogConn) -> Result<PluginSetup> {
    if config.proto_version.is_some() {
        return Err(Error::usage(
            "--proto-version applies to pgoutput slots only",
        ));
    }
    if config.streaming {
        return Err(Error::usage(
            "--streaming needs a pgoutput slot: wal2json cannot stream in-progress transactions",
        ));
    }
    if config.origin.is_some() {
        return Err(Error::usage("--origin applies to pgoutput slots only"));
    }
    let mut options: Vec<(&'static str, String)> = wal2json::OPTIONS
        .iter()
        .map(|&(k, v)| (k, v.to_string()))
        .collect();
    let list = |tables: &[(Option<&str>, Option<&str>)]| {
        let part = |p: Option<&str>| p.map_or_else(|| "*".to_string(), wal2json_escape);
        tables
            .iter()
            .map(|&(s, t)| format!("{}.{}", part(s), part(t)))
            .collect::<Vec<_>>()
            .join(",")
    };
    if !config.publications.is_empty() && !catalog.any_all_tables(&config.publications).await? {
        // The published tables that --table/--exclude-table let through.
        let tables = catalog.publication_tables(&config.publications).await?;
        let tables: Vec<_> = tables
            .iter()
            .filter(|(s, t)| config.tables.matches(s, t))
            .map(|(s, t)| (Some(s.as_str()), Some(t.as_str())))
            .collect();
        if tables.is_empty() {
            // No table is published (or let through): let none through.
            options.push(("filter-tables", "*.*".into()));
        } else {
            options.push(("add-tables", list(&tables)));
        }
    } else {
        let (add, exclude) = config.tables.wal2json_tables();
        if let Some(add) = add {
            options.push(("add-tables", list(&add)));
        }
        if !exclude.is_empty() {
            options.push(("filter-tables", list(&exclude)));
        }
    }
    Ok((
        options,
        Box::new(Wal2Json::new(
            config.include_messages || config.backfill.is_some(),
        )),
    ))
}

/// wal2json's table-list escaping: a backslash before the characters its
/// parser treats specially.
fn wal2json_escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_whitespace() || c == '\x0b' || matches!(c, '\'' | ',' | '.' | '*' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Reads the slot, waiting briefly for a previous run's walsender to let go.
async fn wait_for_slot(
    config: &Config,
    catalog: &CatalogConn,
    reconnect: bool,
) -> Result<Option<SlotInfo>> {
    let deadline = Instant::now() + SLOT_RELEASE_WAIT;
    loop {
        let slot = catalog.slot(&config.slot).await?;
        match &slot {
            Some(SlotInfo {
                active_pid: Some(pid),
                ..
            }) => {
                if Instant::now() >= deadline {
                    return Err(slot_in_use(config, &pid.to_string(), reconnect));
                }
                sleep(Duration::from_millis(50)).await;
            }
            _ => return Ok(slot),
        }
    }
}

fn slot_in_use(config: &Config, pid: &str, reconnect: bool) -> Error {
    if reconnect {
        return Error::connection(
            format!(
                "replication slot \"{}\" is still active for PID {pid}",
                config.slot
            ),
            std::io::Error::other("waiting for the previous connection's walsender to exit"),
        );
    }
    Error::usage(format!(
        "replication slot \"{}\" is active for PID {pid}; stop the other consumer or use another slot",
        config.slot
    ))
}

/// The slot's plugin, after checking that the slot can be used as asked.
/// A slot this run already streamed from is never created again: gone, it
/// took changes with it.
fn check_slot(config: &Config, slot: Option<&SlotInfo>, reconnect: bool) -> Result<Plugin> {
    let Some(slot) = slot else {
        if reconnect {
            return Err(slot_lost(config, "no longer exists".into()));
        }
        if !config.create_slot {
            return Err(Error::usage(format!(
                "replication slot \"{}\" does not exist; run without --no-create-slot to create it",
                config.slot
            )));
        }
        return Ok(config.plugin.unwrap_or(Plugin::PgOutput));
    };
    let name = &config.slot;
    if !slot.logical() {
        return Err(Error::usage(format!(
            "replication slot \"{name}\" is a physical slot; use a logical slot"
        )));
    }
    if slot.database.as_deref() != Some(config.conn.dbname.as_str()) {
        return Err(Error::usage(format!(
            "replication slot \"{name}\" belongs to database \"{}\", not \"{}\"; connect to that database with -d or use another slot",
            slot.database.as_deref().unwrap_or("?"),
            config.conn.dbname
        )));
    }
    if let Some(why) = slot.invalidation() {
        return Err(slot_lost(config, format!("has been invalidated ({why})")));
    }
    if slot.two_phase == Some(true) && !config.two_phase {
        return Err(Error::usage(format!(
            "replication slot \"{name}\" has two-phase decoding enabled; run with --two-phase, or pgstream would emit prepared transactions that may still roll back"
        )));
    }
    let server_plugin = slot.plugin.as_deref().unwrap_or("");
    let plugin = Plugin::from_name(server_plugin).ok_or_else(|| {
        Error::usage(format!(
            "replication slot \"{name}\" uses plugin {server_plugin}, which pgstream cannot decode; use a pgoutput or wal2json slot"
        ))
    })?;
    if config.two_phase && plugin == Plugin::Wal2Json {
        return Err(two_phase_needs_pgoutput());
    }
    if let Some(wanted) = config.plugin {
        if wanted != plugin {
            return Err(Error::usage(format!(
                "replication slot \"{name}\" uses plugin {}, not {}; drop --plugin or use another slot",
                plugin.name(),
                wanted.name()
            )));
        }
    }
    Ok(plugin)
}

/// The pgoutput protocol version to ask for.
fn proto_version(config: &Config, server: i32) -> Result<u32> {
    let max = match server {
        v if v >= 160000 => 4,
        v if v >= 150000 => 3,
        v if v >= 140000 => 2,
        _ => 1,
    };
    match config.proto_version {
        Some(v) if v > max => Err(Error::usage(format!(
            "--proto-version {v} is not supported by this server (PostgreSQL {}); use {max} or lower",
            server / 10000
        ))),
        Some(v) => Ok(v),
        None => Ok(max),
    }
}

/// Adds what to do to the connection errors only the operator can fix.
fn explain_connect(e: Error) -> Error {
    match &e {
        Error::Server { source, .. } if source.code == SqlState::INSUFFICIENT_PRIVILEGE => Error::usage(format!(
            "{e}; grant it with ALTER ROLE … REPLICATION (and allow replication connections in pg_hba.conf)"
        )),
        _ => e,
    }
}

fn slot_lost(config: &Config, reason: String) -> Error {
    Error::SlotLost {
        slot: config.slot.clone(),
        reason,
    }
}

/// START_REPLICATION failed: the slot may be held, dropped since it was
/// looked up, or invalidated in between.
async fn explain_start_error(
    config: &Config,
    catalog: &CatalogConn,
    e: Error,
    reconnect: bool,
) -> Error {
    let Error::Server { source, .. } = &e else {
        return e;
    };
    let code = &source.code;
    if *code == SqlState::OBJECT_IN_USE {
        let pid = source.message.rsplit(' ').next().unwrap_or("?").to_string();
        return slot_in_use(config, &pid, reconnect);
    }
    if *code == SqlState::UNDEFINED_OBJECT || *code == SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE {
        match catalog.slot(&config.slot).await {
            Ok(None) => return slot_lost(config, "no longer exists".into()),
            Ok(Some(slot)) => {
                if let Some(why) = slot.invalidation() {
                    return slot_lost(config, format!("has been invalidated ({why})"));
                }
            }
            Err(_) => {}
        }
    }
    e
}
