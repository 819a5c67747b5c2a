//! Replication commands, with every identifier and literal quoted.

use crate::event::Lsn;

/// `"name"`, doubling embedded quotes.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'text'`, doubling embedded quotes (the replication grammar gives
/// backslashes no meaning).
pub(crate) fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// How a slot is created.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct NewSlot {
    /// Dropped when the connection ends.
    pub temporary: bool,
    /// Export a snapshot (`--snapshot`): the result's `snapshot_name` can be
    /// imported by other sessions until this connection's next command.
    pub export: bool,
    /// Decode prepared transactions at PREPARE (PostgreSQL 15+).
    pub two_phase: bool,
    /// Synchronised to standbys that sync slots (PostgreSQL 17+).
    pub failover: bool,
}

/// `CREATE_REPLICATION_SLOT`: the option list from PostgreSQL 15 on, the
/// older keywords (which cannot say `TWO_PHASE`) before.
pub(crate) fn create_slot(slot: &str, plugin: &str, new: NewSlot, server_version: u32) -> String {
    let options = if server_version >= 150000 {
        let snapshot = if new.export { "export" } else { "nothing" };
        let two_phase = if new.two_phase { ", TWO_PHASE" } else { "" };
        let failover = if new.failover { ", FAILOVER" } else { "" };
        format!("(SNAPSHOT '{snapshot}'{two_phase}{failover})")
    } else if new.export {
        "EXPORT_SNAPSHOT".into()
    } else {
        "NOEXPORT_SNAPSHOT".into()
    };
    format!(
        "CREATE_REPLICATION_SLOT {}{} LOGICAL {} {options}",
        quote_ident(slot),
        if new.temporary { " TEMPORARY" } else { "" },
        quote_ident(plugin),
    )
}

/// `ALTER_REPLICATION_SLOT … (FAILOVER true)` (PostgreSQL 17+).
pub(crate) fn alter_slot_failover(slot: &str) -> String {
    format!(
        "ALTER_REPLICATION_SLOT {} (FAILOVER true)",
        quote_ident(slot)
    )
}

/// `DROP_REPLICATION_SLOT`.
pub(crate) fn drop_slot(slot: &str) -> String {
    format!("DROP_REPLICATION_SLOT {}", quote_ident(slot))
}

/// `START_REPLICATION … LOGICAL lsn (options)`; option values are quoted
/// literals, option names quoted identifiers.
pub(crate) fn start_replication(slot: &str, lsn: Lsn, options: &[(&str, String)]) -> String {
    let mut sql = format!(
        "START_REPLICATION SLOT {} LOGICAL {}",
        quote_ident(slot),
        lsn
    );
    if !options.is_empty() {
        let opts: Vec<String> = options
            .iter()
            .map(|(k, v)| format!("{} {}", quote_ident(k), quote_literal(v)))
            .collect();
        sql.push_str(" (");
        sql.push_str(&opts.join(", "));
        sql.push(')');
    }
    sql
}

/// pgoutput's `publication_names` value: a list of quoted identifiers.
pub(crate) fn publication_names(names: &[String]) -> String {
    names
        .iter()
        .map(|n| quote_ident(n))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
    }

    #[test]
    fn start_replication_quotes_everything() {
        let pubs = publication_names(&["p1".into(), "we\"ird,pub".into()]);
        let sql = start_replication(
            "s",
            Lsn(0x1_0000_00AB),
            &[("proto_version", "4".into()), ("publication_names", pubs)],
        );
        assert_eq!(
            sql,
            "START_REPLICATION SLOT \"s\" LOGICAL 1/AB (\"proto_version\" '4', \
             \"publication_names\" '\"p1\",\"we\"\"ird,pub\"')"
        );
    }

    #[test]
    fn create_and_drop() {
        let temporary = NewSlot {
            temporary: true,
            ..NewSlot::default()
        };
        assert_eq!(
            create_slot("s", "pgoutput", temporary, 140000),
            "CREATE_REPLICATION_SLOT \"s\" TEMPORARY LOGICAL \"pgoutput\" NOEXPORT_SNAPSHOT"
        );
        assert_eq!(
            create_slot("s", "pgoutput", NewSlot::default(), 150000),
            "CREATE_REPLICATION_SLOT \"s\" LOGICAL \"pgoutput\" (SNAPSHOT 'nothing')"
        );
        assert_eq!(drop_slot("s"), "DROP_REPLICATION_SLOT \"s\"");
        let failover = NewSlot {
            failover: true,
            ..NewSlot::default()
        };
        assert_eq!(
            create_slot("s", "pgoutput", failover, 170000),
            "CREATE_REPLICATION_SLOT \"s\" LOGICAL \"pgoutput\" (SNAPSHOT 'nothing', FAILOVER)"
        );
        assert_eq!(
            alter_slot_failover("s"),
            "ALTER_REPLICATION_SLOT \"s\" (FAILOVER true)"
        );
        let export = NewSlot {
            export: true,
            two_phase: true,
            ..NewSlot::default()
        };
        assert_eq!(
            create_slot("s", "pgoutput", export, 150000),
            "CREATE_REPLICATION_SLOT \"s\" LOGICAL \"pgoutput\" (SNAPSHOT 'export', TWO_PHASE)"
        );
        let export = NewSlot {
            temporary: true,
            export: true,
            ..NewSlot::default()
        };
        assert_eq!(
            create_slot("s", "wal2json", export, 140011),
            "CREATE_REPLICATION_SLOT \"s\" TEMPORARY LOGICAL \"wal2json\" EXPORT_SNAPSHOT"
        );
    }
}
