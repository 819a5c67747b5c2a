//! `pgstream status`: the logical slots of a database as the server sees
//! them, with how far each one lags the server's WAL and how much WAL it
//! holds back (SPEC §10).
//!
//! One query reads `pg_replication_slots` as JSON rows, so columns that an
//! older server lacks are simply absent, together with the server's current
//! WAL position (the replay position on a standby: what it can decode).

use std::io::{self, Write};

use serde::{Deserialize, Deserializer, Serialize};

use crate::conninfo::{ConnArgs, ConnParams};
use crate::error::{Error, Result};
use crate::event::Lsn;
use crate::sql::catalog::pg_error;

/// One logical slot, as `pgstream status` prints it: one JSON line each.
///
/// `lag_bytes` is the server's current WAL position minus
/// `confirmed_flush_lsn` (what a consumer has yet to acknowledge);
/// `retained_bytes` is that position minus `restart_lsn` (the WAL the slot
/// keeps on disk). `failover`, `synced` and `inactive_since` are present
/// when the server has them (PostgreSQL 17+).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SlotStatus {
    /// The slot's name.
    #[serde(alias = "slot_name")]
    pub slot: String,
    /// Its output plugin.
    pub plugin: Option<String>,
    /// Its database.
    pub database: Option<String>,
    /// Whether a walsender is streaming from it now.
    pub active: bool,
    /// That walsender's process ID.
    pub active_pid: Option<i32>,
    /// Up to where its consumer has acknowledged.
    pub confirmed_flush_lsn: Option<String>,
    /// The oldest WAL it may still need.
    pub restart_lsn: Option<String>,
    /// Current WAL − `confirmed_flush_lsn`, in bytes.
    #[serde(default)]
    pub lag_bytes: Option<u64>,
    /// Current WAL − `restart_lsn`, in bytes.
    #[serde(default)]
    pub retained_bytes: Option<u64>,
    /// `reserved`, `extended`, `unreserved` or `lost` (13+).
    #[serde(default)]
    pub wal_status: Option<String>,
    /// Decodes prepared transactions at PREPARE (false before 14).
    #[serde(default)]
    pub two_phase: bool,
    /// Dropped when its session ends.
    pub temporary: bool,
    /// Synchronised to standbys (17+).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub failover: Option<Option<bool>>,
    /// A copy synchronised from the primary (17+).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub synced: Option<Option<bool>>,
    /// When the slot was last released, null while active (17+).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub inactive_since: Option<Option<String>>,
}

/// A column that is there, even with a null value: `Some(None)`; a column
/// the server does not have stays `None` (serde's `default`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

impl SlotStatus {
    /// Fills in the byte counts against `current`, the server's WAL position.
    fn measure(&mut self, current: Option<Lsn>) {
        let behind = |lsn: &Option<String>| {
            let lsn: Lsn = lsn.as_deref()?.parse().ok()?;
            Some(current?.0.saturating_sub(lsn.0))
        };
        self.lag_bytes = behind(&self.confirmed_flush_lsn);
        self.retained_bytes = behind(&self.restart_lsn);
    }
}

/// The logical slots of the database `conn` names, by name, or only `slot`.
/// A `slot` that is not a logical slot of that database is a usage error.
pub async fn slots(conn: &ConnArgs, slot: Option<&str>) -> Result<Vec<SlotStatus>> {
    let params = ConnParams::resolve(conn, &|k| std::env::var(k).ok())
        .map_err(|e| Error::usage(e.to_string()))?;
    let (catalog, _) = crate::sql::server::connect(&params).await?;
    let client = catalog.client();
    // timestamptz as RFC 3339 in UTC, like the events' timestamps.
    client
        .batch_execute("SET TimeZone = 'UTC'")
        .await
        .map_err(|e| pg_error(e, "setting TimeZone".into()))?;
    let rows = client
        .query(
            "SELECT to_json(s)::text, (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() \
             ELSE pg_current_wal_lsn() END)::text \
             FROM pg_replication_slots s \
             WHERE s.slot_type = 'logical' AND s.database = current_database() \
             AND ($1::text IS NULL OR s.slot_name = $1) ORDER BY s.slot_name",
            &[&slot],
        )
        .await
        .map_err(|e| pg_error(e, "reading pg_replication_slots".into()))?;
    let mut slots = Vec::with_capacity(rows.len());
    for row in rows {
        let json: String = row.get(0);
        let mut status: SlotStatus = serde_json::from_str(&json)
            .map_err(|e| Error::Protocol(format!("pg_replication_slots row: {e}")))?;
        if let Some(Some(since)) = &mut status.inactive_since {
            if let Some(utc) = since.strip_suffix("+00:00") {
                *since = format!("{utc}Z");
            }
        }
        let current: Option<String> = row.get(1);
        status.measure(current.as_deref().and_then(|c| c.parse().ok()));
        slots.push(status);
    }
    if let (Some(name), true) = (slot, slots.is_empty()) {
        return Err(Error::usage(format!(
            "replication slot \"{name}\" is not a logical slot of database \"{}\"; \
             `pgstream status` without --slot lists them",
            params.dbname
        )));
    }
    Ok(slots)
}

/// Writes one JSON line per slot.
pub fn write_json_lines(slots: &[SlotStatus], out: &mut dyn Write) -> io::Result<()> {
    for slot in slots {
        serde_json::to_writer(&mut *out, slot)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// Writes the slots as a table for a terminal, sizes in kB/MB/GB.
pub fn write_table(slots: &[SlotStatus], out: &mut dyn Write) -> io::Result<()> {
    if slots.is_empty() {
        return writeln!(out, "no logical replication slots in this database");
    }
    let dash = || "-".to_string();
    let flag = |b: bool| if b { "yes" } else { "no" }.to_string();
    let mut rows = vec![[
        "SLOT",
        "PLUGIN",
        "ACTIVE",
        "CONFIRMED",
        "LAG",
        "RETAINED",
        "WAL",
        "TWO-PHASE",
        "TEMP",
        "FAILOVER",
        "INACTIVE SINCE",
    ]
    .map(String::from)];
    for s in slots {
        rows.push([
            s.slot.clone(),
            s.plugin.clone().unwrap_or_else(dash),
            match s.active_pid {
                Some(pid) if s.active => format!("pid {pid}"),
                _ => flag(s.active),
            },
            s.confirmed_flush_lsn.clone().unwrap_or_else(dash),
            s.lag_bytes.map_or_else(dash, pretty_bytes),
            s.retained_bytes.map_or_else(dash, pretty_bytes),
            s.wal_status.clone().unwrap_or_else(dash),
            flag(s.two_phase),
            flag(s.temporary),
            s.failover.flatten().map_or_else(dash, flag),
            s.inactive_since.clone().flatten().unwrap_or_else(dash),
        ]);
    }
    let mut widths = [0; 11];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        writeln!(out, "{}", line.join("  ").trim_end())?;
    }
    out.flush()
}

/// Bytes as `pg_size_pretty` shows them (bytes, kB, MB, GB, TB; 1024 each).
fn pretty_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["kB", "MB", "GB", "TB"];
    if n < 10 * 1024 {
        return format!("{n} bytes");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 10.0 * 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.0} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(json: &str) -> SlotStatus {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn columns_a_server_lacks_stay_out_of_the_line() {
        let mut s = row(
            r#"{"slot_name":"a","plugin":"pgoutput","slot_type":"logical","database":"db",
                "temporary":false,"active":false,"active_pid":null,
                "restart_lsn":"0/100","confirmed_flush_lsn":"0/180","wal_status":"reserved"}"#,
        );
        s.measure(Some(Lsn(0x200)));
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"slot":"a","plugin":"pgoutput","database":"db","active":false,"active_pid":null,"confirmed_flush_lsn":"0/180","restart_lsn":"0/100","lag_bytes":128,"retained_bytes":256,"wal_status":"reserved","two_phase":false,"temporary":false}"#
        );
    }

    #[test]
    fn present_columns_stay_even_when_null() {
        let mut s = row(
            r#"{"slot_name":"a","plugin":"pgoutput","database":"db","temporary":false,
                "active":true,"active_pid":7,"restart_lsn":null,"confirmed_flush_lsn":null,
                "two_phase":true,"failover":false,"synced":false,"inactive_since":null}"#,
        );
        s.measure(None);
        let line = serde_json::to_string(&s).unwrap();
        assert!(
            line.ends_with(r#""two_phase":true,"temporary":false,"failover":false,"synced":false,"inactive_since":null}"#),
            "{line}"
        );
        assert!(line.contains(r#""lag_bytes":null,"retained_bytes":null"#));
    }

    #[test]
    fn the_table_lines_up() {
        let mut s = row(
            r#"{"slot_name":"orders","plugin":"pgoutput","database":"db","temporary":false,
                "active":true,"active_pid":4242,"restart_lsn":"0/0","confirmed_flush_lsn":"0/10"}"#,
        );
        s.measure(Some(Lsn(3 << 20)));
        let mut out = Vec::new();
        write_table(&[s], &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].starts_with("SLOT    PLUGIN    ACTIVE"), "{text}");
        assert!(
            lines[1].starts_with("orders  pgoutput  pid 4242  0/10       3072 kB  3072 kB"),
            "{text}"
        );
    }

    #[test]
    fn sizes_read_like_pg_size_pretty() {
        assert_eq!(pretty_bytes(0), "0 bytes");
        assert_eq!(pretty_bytes(10239), "10239 bytes");
        assert_eq!(pretty_bytes(10240), "10 kB");
        assert_eq!(pretty_bytes(67 << 30), "67 GB");
        assert_eq!(pretty_bytes(u64::MAX), "16777216 TB");
    }
}
