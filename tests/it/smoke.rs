//! Tests of the test harness itself: the cluster, its settings and roles, and
//! the process runner.

use std::process::Command;
use std::time::Duration;

use crate::harness::{
    format_lsn, parse_lsn, Cluster, Proc, CLEAR_PASSWORD, CLEAR_USER, MD5_PASSWORD, MD5_USER,
    NOREPL_USER, SCRAM_PASSWORD, SCRAM_USER, TIMEOUT,
};

#[test]
fn shared_cluster_has_logical_wal_and_odd_session_defaults() {
    let c = Cluster::shared();
    assert_eq!(c.sql("postgres", "SHOW wal_level"), "logical");
    assert_eq!(c.sql("postgres", "SHOW TimeZone"), "Asia/Kolkata");
    assert_eq!(c.sql("postgres", "SHOW DateStyle"), "SQL, DMY");
    assert_eq!(c.sql("postgres", "SHOW bytea_output"), "escape");
    assert_eq!(c.sql("postgres", "SHOW wal_sender_timeout"), "5s");
}

#[test]
fn new_db_gives_distinct_databases() {
    let c = Cluster::shared();
    let a = c.new_db("smoke");
    let b = c.new_db("smoke");
    assert_ne!(a.name, b.name);
    a.sql("CREATE TABLE only_in_a (id int)");
    assert_eq!(a.sql("SELECT current_database()"), a.name);
    assert_eq!(
        b.sql("SELECT count(*) FROM pg_class WHERE relname = 'only_in_a'"),
        "0"
    );
    let name = a.name.clone();
    drop(a);
    let left = c.sql(
        "postgres",
        &format!("SELECT count(*) FROM pg_database WHERE datname = '{name}'"),
    );
    assert_eq!(left, "0", "a dropped TestDb removes its database");
}

#[test]
fn password_roles_authenticate_with_their_method() {
    let db = Cluster::shared().new_db("");
    for (user, password, stored) in [
        (MD5_USER, MD5_PASSWORD, "md5"),
        (SCRAM_USER, SCRAM_PASSWORD, "SCRAM-SHA-256"),
        (CLEAR_USER, CLEAR_PASSWORD, "SCRAM-SHA-256"),
    ] {
        assert_eq!(
            db.try_sql_as(user, Some(password), "SELECT current_user")
                .unwrap(),
            user
        );
        let err = db.try_sql_as(user, Some("wrong"), "SELECT 1").unwrap_err();
        assert!(
            err.contains("password authentication failed"),
            "{user}: {err}"
        );
        let err = db.try_sql_as(user, None, "SELECT 1").unwrap_err();
        assert!(err.contains("no password supplied"), "{user}: {err}");
        let q = format!("SELECT rolreplication, rolpassword LIKE '{stored}%' FROM pg_authid WHERE rolname = '{user}'");
        assert_eq!(db.sql(&q), "t|t", "{user}");
    }

    // The replication lines of pg_hba.conf: pw_scram may open a walsender,
    // norepl may not.
    let repl = |user: &str, password: &str| {
        let conninfo = format!(
            "host=127.0.0.1 port={} dbname={} user={user} replication=database",
            db.server().port,
            db.name
        );
        db.server().psql(
            &["-d".into(), conninfo],
            &[("PGPASSWORD", password)],
            "IDENTIFY_SYSTEM",
        )
    };
    let ident = repl(SCRAM_USER, SCRAM_PASSWORD).unwrap();
    assert!(ident.ends_with(&format!("|{}", db.name)), "{ident}");
    let err = repl(NOREPL_USER, "").unwrap_err();
    // The server's wording changed in PostgreSQL 16.
    let refusal = if crate::harness::server_major() >= 16 {
        "Only roles with the REPLICATION attribute may start a WAL sender process"
    } else {
        "must be superuser or replication role"
    };
    assert!(err.contains(refusal), "{err}");
}

#[test]
fn dedicated_cluster_restarts_and_is_removed_on_drop() {
    let c = Cluster::start(&["wal_sender_timeout = '3s'"]);
    assert_eq!(c.sql("postgres", "SHOW wal_sender_timeout"), "3s");
    let db = c.new_db("dedicated");
    db.sql("CREATE TABLE t (id int); INSERT INTO t VALUES (1)");
    c.restart("fast");
    assert_eq!(db.sql("SELECT count(*) FROM t"), "1");
    c.stop("immediate");
    assert!(!c.is_running());
    assert!(db.try_sql("SELECT 1").is_err());
    c.start_again();
    assert_eq!(db.sql("SELECT count(*) FROM t"), "1");
    assert!(c
        .server_log()
        .contains("database system is ready to accept connections"));
    let dir = c.base_dir.clone();
    drop(db);
    drop(c);
    assert!(!dir.exists(), "{} left behind", dir.display());
}

#[test]
fn proc_collects_lines_stderr_and_exit_code() {
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        "echo one; echo oops >&2; echo two; printf tail; exit 3",
    ]);
    let out = Proc::from_command(cmd).wait_exit(TIMEOUT);
    assert_eq!(out.code, Some(3));
    assert_eq!(out.stdout_lines, ["one", "two", "tail"]);
    assert!(out.stdout_unterminated);
    assert_eq!(out.stderr, "oops\n");

    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        "trap 'echo bye; exit 7' TERM; echo ready; while :; do sleep 0.02; done",
    ]);
    let mut p = Proc::from_command(cmd);
    assert_eq!(p.wait_lines(1, TIMEOUT), ["ready"]);
    p.signal("TERM");
    let out = p.wait_exit(Duration::from_secs(10));
    assert_eq!(
        (out.code, out.stdout_lines),
        (Some(7), vec!["ready".to_string(), "bye".to_string()])
    );
}

#[test]
fn slot_helpers_read_pg_replication_slots() {
    let c = Cluster::shared();
    let db = c.new_db("");
    assert!(!db.slot_exists("s1"));
    assert_eq!(db.confirmed_flush_lsn("s1"), None);
    let plugin = if c.has_wal2json() {
        "wal2json"
    } else {
        "pgoutput"
    };
    db.sql(&format!(
        "SELECT pg_create_logical_replication_slot('s1', '{plugin}')"
    ));
    assert!(db.slot_exists("s1"));
    assert!(!db.slot_active("s1"));
    assert_eq!(db.slot_plugin("s1").as_deref(), Some(plugin));
    let confirmed = parse_lsn(&db.confirmed_flush_lsn("s1").unwrap());
    assert!(confirmed > 0 && confirmed <= parse_lsn(&db.current_wal_lsn()));
    assert_eq!(format_lsn(0x1_0000_00AB), "1/AB");
    drop(db);
    let left = c.sql(
        "postgres",
        "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 's1'",
    );
    assert_eq!(left, "0", "a dropped TestDb drops its slots");
}
