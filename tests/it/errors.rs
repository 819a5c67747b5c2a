//! Errors, exit codes, authentication, connection forms and the command line
//! (SPEC §1 and §5).
//!
//! Every failure case is checked the same way ([`check_failure`]): the exit
//! code, a single `pgstream: …` line on stderr that says what is wrong,
//! nothing on stdout, no password anywhere on stderr, and an existing slot
//! left where it was. A configuration error must exit at once: a run that
//! logs a retry is a failure (it would loop forever).
//!
//! Slot names all start with `err_`: slots are cluster-wide and other test
//! modules share the cluster.

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use crate::harness::{
    parse_lsn, quote_literal, run, wait_until, Cluster, Output, Proc, TestDb, CLEAR_PASSWORD,
    CLEAR_USER, MD5_PASSWORD, MD5_USER, NOREPL_USER, SCRAM_PASSWORD, SCRAM_USER, SUPERUSER,
    TIMEOUT,
};

/// The wrong password the failing-authentication cases send.
const WRONG_PASSWORD: &str = "wrongpw";

/// Everything that must never show up on pgstream's stderr.
fn secrets() -> Vec<String> {
    let mut v = Vec::new();
    for pw in [MD5_PASSWORD, SCRAM_PASSWORD, CLEAR_PASSWORD, WRONG_PASSWORD] {
        v.push(pw.to_string());
        v.push(pw.replace(' ', "%20"));
    }
    v
}

fn strs(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// A TCP port on 127.0.0.1 that nobody listens on (bound, then released).
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

/// A URI component with its spaces percent-encoded (the test passwords have
/// spaces and nothing else that needs encoding).
fn uri_encode(s: &str) -> String {
    s.replace(' ', "%20")
}

// ---------------------------------------------------------------------------
// Running a case that must fail
// ---------------------------------------------------------------------------

/// How a failing run ended.
struct Ran {
    code: Option<i32>,
    stdout: Vec<String>,
    stderr: String,
    /// Set when the process had to be killed: why.
    killed: Option<String>,
}

/// Runs pgstream until it exits, or until it shows that it is retrying (it
/// is then killed: every failure case must end by itself), or TIMEOUT.
fn run_to_failure(args: &[String], env: &[(&str, &str)]) -> Ran {
    let mut p = Proc::spawn(args, env);
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if p.try_wait().is_some() {
            let out = p.wait_exit(TIMEOUT);
            return Ran {
                code: out.code,
                stdout: out.stdout_lines,
                stderr: out.stderr,
                killed: None,
            };
        }
        let err = p.stderr();
        let killed = if err.contains("retrying") {
            Some("it kept retrying an error that retrying cannot fix".to_string())
        } else if Instant::now() >= deadline {
            Some(format!("still running after {TIMEOUT:?}"))
        } else {
            None
        };
        if let Some(why) = killed {
            let stdout = p.lines();
            drop(p); // kills it
            return Ran {
                code: None,
                stdout,
                stderr: err,
                killed: Some(why),
            };
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// What a case checks about a slot.
#[derive(Clone)]
enum SlotCheck {
    None,
    /// An existing slot: its confirmed_flush_lsn must not move.
    Unchanged(String),
    /// A slot that does not exist and must still not exist afterwards.
    Absent(String),
}

/// One bad input and what pgstream must answer.
struct Case {
    name: String,
    args: Vec<String>,
    env: Vec<(&'static str, String)>,
    code: i32,
    /// Case-insensitive substring of the one-line message.
    needle: String,
    /// A clap usage error (multi-line by design): only the exit code, an
    /// empty stdout and `needle` somewhere on stderr are checked.
    clap: bool,
    slot: SlotCheck,
}

impl Case {
    fn new(name: &str, args: Vec<String>, code: i32, needle: &str) -> Case {
        Case {
            name: name.to_string(),
            args,
            env: Vec::new(),
            code,
            needle: needle.to_string(),
            clap: false,
            slot: SlotCheck::None,
        }
    }

    fn env(mut self, key: &'static str, value: &str) -> Case {
        self.env.push((key, value.to_string()));
        self
    }

    fn clap(mut self) -> Case {
        self.clap = true;
        self
    }

    fn unchanged(mut self, slot: &str) -> Case {
        self.slot = SlotCheck::Unchanged(slot.to_string());
        self
    }

    fn absent(mut self, slot: &str) -> Case {
        self.slot = SlotCheck::Absent(slot.to_string());
        self
    }
}

/// Runs one case and returns what is wrong with the outcome (empty: fine).
/// `db` is where the case's slot lives.
fn check_failure(case: &Case, db: &TestDb) -> Vec<String> {
    let before = match &case.slot {
        SlotCheck::Unchanged(slot) => {
            let lsn = db.confirmed_flush_lsn(slot);
            assert!(
                lsn.is_some(),
                "{}: set-up: slot {slot} is missing",
                case.name
            );
            lsn
        }
        SlotCheck::Absent(slot) => {
            assert!(
                !db.slot_exists(slot),
                "{}: set-up: slot {slot} exists",
                case.name
            );
            None
        }
        SlotCheck::None => None,
    };
    let env: Vec<(&str, &str)> = case.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let ran = run_to_failure(&case.args, &env);
    let mut problems = Vec::new();
    if let Some(why) = &ran.killed {
        problems.push(format!("killed: {why}"));
    } else if ran.code != Some(case.code) {
        problems.push(format!("exit code {:?}, expected {}", ran.code, case.code));
    }
    if !ran.stdout.is_empty() {
        problems.push(format!("stdout is not empty: {:?}", ran.stdout));
    }
    let needle = case.needle.to_lowercase();
    if case.clap {
        if !ran.stderr.to_lowercase().contains(&needle) {
            problems.push(format!("stderr does not mention {:?}", case.needle));
        }
    } else {
        let trimmed = ran.stderr.trim();
        if trimmed.is_empty() {
            problems.push("stderr is empty".into());
        } else if trimmed.lines().count() != 1 {
            problems.push(format!(
                "stderr has {} lines, expected one",
                trimmed.lines().count()
            ));
        }
        if !trimmed.starts_with("pgstream:") {
            problems.push("stderr does not start with \"pgstream:\"".into());
        }
        if !trimmed.to_lowercase().contains(&needle) {
            problems.push(format!("stderr does not contain {:?}", case.needle));
        }
    }
    for secret in secrets() {
        if ran.stderr.contains(&secret) {
            problems.push(format!("stderr shows the password {secret:?}"));
        }
    }
    match &case.slot {
        SlotCheck::Unchanged(slot) => {
            let after = db.confirmed_flush_lsn(slot);
            if after != before {
                problems.push(format!(
                    "slot {slot} confirmed_flush_lsn moved from {before:?} to {after:?}"
                ));
            }
        }
        SlotCheck::Absent(slot) => {
            if db.slot_exists(slot) {
                problems.push(format!("slot {slot} was created"));
            }
        }
        SlotCheck::None => {}
    }
    problems
        .into_iter()
        .map(|p| {
            format!(
                "{}: {p}\n    args: {:?} env: {:?}\n    stderr: {:?}",
                case.name, case.args, case.env, ran.stderr
            )
        })
        .collect()
}

/// Panics with every problem of `case`.
fn expect_failure(case: Case, db: &TestDb) {
    let problems = check_failure(&case, db);
    assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
}

/// `args` plus `items`.
fn with(args: &[String], items: &[&str]) -> Vec<String> {
    let mut a = args.to_vec();
    a.extend(strs(items));
    a
}

fn create_slot(db: &TestDb, slot: &str, plugin: &str) {
    db.sql(&format!(
        "SELECT pg_create_logical_replication_slot({}, {})",
        quote_literal(slot),
        quote_literal(plugin)
    ));
}

/// Holds the pgoutput `slot` (publication `p`) with pg_recvlogical until
/// dropped; returns once the slot is active.
fn hold_slot(db: &TestDb, slot: &str) -> Proc {
    let server = db.server();
    let mut cmd = Command::new(crate::harness::client_bin("pg_recvlogical"));
    cmd.env_clear()
        .arg("-h")
        .arg(&server.socket_dir)
        .args([
            "-p",
            &server.port.to_string(),
            "-U",
            SUPERUSER,
            "-d",
            &db.name,
        ])
        .args(["--slot", slot, "--start", "--no-loop", "-f", "/dev/null"])
        .args(["-o", "proto_version=1", "-o", "publication_names=p"]);
    let mut p = Proc::from_command(cmd);
    wait_until(&format!("pg_recvlogical to hold {slot}"), TIMEOUT, || {
        if p.try_wait().is_some() {
            panic!("pg_recvlogical exited early: {}", p.stderr());
        }
        db.slot_active(slot).then_some(())
    });
    p
}

// ---------------------------------------------------------------------------
// Bad inputs
// ---------------------------------------------------------------------------

/// The table of bad inputs that the shared cluster can serve. They run in
/// parallel; every problem of every case is reported together.
#[test]
fn bad_inputs_exit_with_the_right_code_and_one_line() {
    let c = Cluster::shared();
    let db = c.new_db("");
    let other = c.new_db("errors_other");
    db.sql(
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         CREATE PUBLICATION p FOR ALL TABLES;",
    );
    for slot in [
        "err_nopub",
        "err_norepl",
        "err_nopubflag",
        "err_proto",
        "err_file",
        "err_pw",
        "err_active",
    ] {
        create_slot(&db, slot, "pgoutput");
    }
    create_slot(&db, "err_td", "test_decoding");
    let wal2json = c.has_wal2json();
    if wal2json {
        create_slot(&db, "err_w2j", "wal2json");
    }
    create_slot(&other, "err_otherdb", "pgoutput");
    // Something for the slots to (not) acknowledge.
    db.sql("INSERT INTO t VALUES (1, 'one')");

    let conn = db.conn_args();
    let port = db.server().port.to_string();
    let stream = |slot: &str| {
        with(
            &conn,
            &["--slot", slot, "--publication", "p", "--end-lsn", "now"],
        )
    };
    let mut cases = vec![
        // --- the command line ---------------------------------------------
        Case::new(
            "unknown flag",
            with(&stream("err_parse_flag"), &["--bogus-flag"]),
            2,
            "--bogus-flag",
        )
        .clap()
        .absent("err_parse_flag"),
        // -h is the host: without a value it is an error, not help.
        Case::new("-h without a value", strs(&["-h"]), 2, "--host").clap(),
        Case::new(
            "missing --slot",
            with(&conn, &["--publication", "p"]),
            2,
            "--slot",
        ),
        Case::new(
            "malformed --start-lsn",
            with(&stream("err_parse_start"), &["--start-lsn", "16B3748"]),
            2,
            "--start-lsn",
        )
        .absent("err_parse_start"),
        Case::new(
            "malformed --end-lsn",
            with(
                &conn,
                &[
                    "--slot",
                    "err_parse_end",
                    "--publication",
                    "p",
                    "--end-lsn",
                    "0/XYZ",
                ],
            ),
            2,
            "--end-lsn",
        )
        .absent("err_parse_end"),
        Case::new(
            "malformed conninfo",
            strs(&[
                "-d",
                "host='unterminated",
                "--slot",
                "err_parse",
                "--publication",
                "p",
            ]),
            2,
            "unterminated",
        ),
        Case::new(
            "malformed URI",
            strs(&[
                "-d",
                "postgresql://[::1/db",
                "--slot",
                "err_parse",
                "--publication",
                "p",
            ]),
            2,
            "URI",
        ),
        Case::new(
            "malformed URI with a password",
            strs(&[
                "-d",
                &format!("postgresql://{MD5_USER}:{WRONG_PASSWORD}%zz@127.0.0.1:{port}/x"),
                "--slot",
                "err_parse",
                "--publication",
                "p",
            ]),
            2,
            "URI",
        ),
        Case::new(
            "unwritable --file",
            with(
                &stream("err_file"),
                &["--file", "/nonexistent/dir/out.jsonl"],
            ),
            2,
            "/nonexistent/dir/out.jsonl",
        )
        .unchanged("err_file"),
        // --- the network: exit 1 with --no-loop ---------------------------
        Case::new(
            "unknown host with --no-loop",
            strs(&[
                "-h",
                "nonexistent.invalid",
                "-p",
                &port,
                "-d",
                &db.name,
                "-U",
                SUPERUSER,
                "--slot",
                "err_nohost",
                "--publication",
                "p",
                "--no-loop",
            ]),
            1,
            "nonexistent.invalid",
        ),
        Case::new(
            "refused port with --no-loop",
            strs(&[
                "-h",
                "127.0.0.1",
                "-p",
                &free_port().to_string(),
                "-d",
                &db.name,
                "-U",
                SUPERUSER,
                "--slot",
                "err_refused",
                "--publication",
                "p",
                "--no-loop",
            ]),
            1,
            "refused",
        ),
        // --- the server: configuration errors, exit 2 at once --------------
        Case::new(
            "missing database",
            with(
                &db.server().conn_args("err_no_such_db", SUPERUSER),
                &[
                    "--slot",
                    "err_nodb",
                    "--publication",
                    "p",
                    "--end-lsn",
                    "now",
                ],
            ),
            2,
            "err_no_such_db",
        ),
        Case::new(
            "missing publication",
            with(
                &conn,
                &[
                    "--slot",
                    "err_nopub",
                    "--publication",
                    "err_no_such_pub",
                    "--end-lsn",
                    "now",
                ],
            ),
            2,
            "err_no_such_pub",
        )
        .unchanged("err_nopub"),
        Case::new(
            "role without REPLICATION",
            with(
                &db.conn_args_as(NOREPL_USER),
                &[
                    "--slot",
                    "err_norepl",
                    "--publication",
                    "p",
                    "--end-lsn",
                    "now",
                ],
            ),
            2,
            "replication",
        )
        .unchanged("err_norepl"),
        Case::new(
            "pgoutput slot without --publication",
            with(&conn, &["--slot", "err_nopubflag", "--end-lsn", "now"]),
            2,
            "publication",
        )
        .unchanged("err_nopubflag"),
        Case::new(
            "--plugin pgoutput without --publication",
            with(
                &conn,
                &[
                    "--slot",
                    "err_nopubflag",
                    "--plugin",
                    "pgoutput",
                    "--end-lsn",
                    "now",
                ],
            ),
            2,
            "publication",
        )
        .unchanged("err_nopubflag"),
        Case::new("test_decoding slot", stream("err_td"), 2, "test_decoding").unchanged("err_td"),
        // pg_replication_slots is cluster-wide: `db` sees this slot too.
        Case::new(
            "slot of another database",
            stream("err_otherdb"),
            2,
            &other.name,
        )
        .unchanged("err_otherdb"),
        Case::new(
            "slot active in another process",
            stream("err_active"),
            2,
            "active",
        ),
        Case::new(
            "unsupported --proto-version",
            with(&stream("err_proto"), &["--proto-version", "4"]),
            2,
            "proto",
        )
        .unchanged("err_proto"),
    ];
    if wal2json {
        cases.push(
            Case::new(
                "wal2json slot with --plugin pgoutput",
                with(&stream("err_w2j"), &["--plugin", "pgoutput"]),
                2,
                "wal2json",
            )
            .unchanged("err_w2j"),
        );
    }
    if c.major_version() >= 16 {
        // Protocol 4 exists there: nothing to refuse.
        cases.retain(|case| case.name != "unsupported --proto-version");
    }
    // Authentication failures over TCP: the wrong password in PGPASSWORD and
    // in a URI. Exit 2 at once, and the password is never shown.
    for user in [MD5_USER, SCRAM_USER, CLEAR_USER] {
        cases.push(
            Case::new(
                &format!("wrong password for {user} in PGPASSWORD"),
                with(
                    &db.tcp_conn_args_as(user),
                    &["--slot", "err_pw", "--publication", "p", "--end-lsn", "now"],
                ),
                2,
                "password authentication failed",
            )
            .env("PGPASSWORD", WRONG_PASSWORD)
            .unchanged("err_pw"),
        );
        cases.push(
            Case::new(
                &format!("wrong password for {user} in a URI"),
                strs(&[
                    "-d",
                    &format!(
                        "postgres://{user}:{WRONG_PASSWORD}@127.0.0.1:{port}/{}",
                        db.name
                    ),
                    "--slot",
                    "err_pw",
                    "--publication",
                    "p",
                    "--end-lsn",
                    "now",
                ]),
                2,
                "password authentication failed",
            )
            .unchanged("err_pw"),
        );
    }

    // No password at all (none given, no ~/.pgpass) for a password role:
    // authentication cannot succeed, so no retry either.
    cases.push(
        Case::new(
            "no password for pw_scram",
            with(
                &db.tcp_conn_args_as(SCRAM_USER),
                &["--slot", "err_pw", "--publication", "p", "--end-lsn", "now"],
            ),
            2,
            "password",
        )
        .unchanged("err_pw"),
    );

    let _holder = hold_slot(&db, "err_active");
    let db = &db;
    let problems: Vec<String> = thread::scope(|s| {
        let handles: Vec<_> = cases
            .iter()
            .map(|case| s.spawn(move || check_failure(case, db)))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("case thread panicked"))
            .collect()
    });
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}\n",
        problems.len(),
        problems.join("\n")
    );
}

/// wal_level below logical is a configuration error (exit 2), not a reason
/// to retry. The harness appends `extra_conf` after its own `wal_level =
/// logical` line, so the later `replica` wins.
#[test]
fn wal_level_replica_is_a_configuration_error() {
    let c = Cluster::start(&["wal_level = replica"]);
    assert_eq!(c.sql("postgres", "SHOW wal_level"), "replica");
    let db = c.new_db("");
    db.sql("CREATE TABLE t (id int PRIMARY KEY); CREATE PUBLICATION p FOR ALL TABLES;");
    expect_failure(
        Case::new(
            "wal_level = replica",
            db.stream_args("err_wallevel", "p"),
            2,
            "wal_level",
        )
        .absent("err_wallevel"),
        &db,
    );
}

/// With every slot in use (`max_replication_slots` reached), the new slot
/// cannot be created. The server says "all replication slots are in use"
/// (SQLSTATE 53400, configuration_limit_exceeded) with the hint "Free one or
/// increase max_replication_slots": only the operator can fix that, so per
/// SPEC §5 it is a configuration error, exit 2 at once — not a server
/// error to retry forever (nor exit 1).
#[test]
fn exhausted_max_replication_slots_is_a_configuration_error() {
    let c = Cluster::start(&["max_replication_slots = 1"]);
    let db = c.new_db("");
    db.sql("CREATE TABLE t (id int PRIMARY KEY); CREATE PUBLICATION p FOR ALL TABLES;");
    create_slot(&db, "err_taken", "pgoutput");
    expect_failure(
        Case::new(
            "max_replication_slots exhausted",
            with(
                &db.stream_args("err_one_too_many", "p"),
                &["--end-lsn", "now"],
            ),
            2,
            "replication slots",
        )
        .absent("err_one_too_many"),
        &db,
    );
    assert!(db.slot_exists("err_taken"));
}

// ---------------------------------------------------------------------------
// Successful runs
// ---------------------------------------------------------------------------

/// A database with table `t`, publication `p` and `slots` created before
/// one row (`id` = 1) is inserted.
fn db_with_one_insert(prefix: &str, slots: &[&str]) -> TestDb {
    let db = Cluster::shared().new_db(prefix);
    db.sql("CREATE TABLE t (id int PRIMARY KEY, v text); CREATE PUBLICATION p FOR ALL TABLES;");
    for slot in slots {
        create_slot(&db, slot, "pgoutput");
    }
    db.sql("INSERT INTO t VALUES (1, 'one')");
    db
}

/// Whether `out` holds the insert of row `id` into `table`.
fn has_insert(out: &Output, table: &str, id: i64) -> bool {
    out.json()
        .iter()
        .any(|e| e["op"] == "insert" && e["table"] == table && e["new"]["id"] == id)
}

/// The run exited 0, emitted the insert of row 1 into `t`, and showed no
/// password.
fn assert_streamed(what: &str, out: &Output) {
    assert_eq!(
        out.code,
        Some(0),
        "{what}: exit code; stderr:\n{}",
        out.stderr
    );
    assert!(
        has_insert(out, "t", 1),
        "{what}: the insert into t is missing: {:?}\nstderr:\n{}",
        out.stdout_lines,
        out.stderr
    );
    assert_no_secret(what, &out.stderr);
}

fn assert_no_secret(what: &str, stderr: &str) {
    for secret in secrets() {
        assert!(
            !stderr.contains(&secret),
            "{what}: stderr shows {secret:?}:\n{stderr}"
        );
    }
}

#[test]
fn password_authentication_succeeds_with_md5_scram_and_cleartext() {
    let db = db_with_one_insert("", &["err_auth_md5", "err_auth_scram", "err_auth_clear"]);
    for (user, password, slot) in [
        (MD5_USER, MD5_PASSWORD, "err_auth_md5"),
        (SCRAM_USER, SCRAM_PASSWORD, "err_auth_scram"),
        (CLEAR_USER, CLEAR_PASSWORD, "err_auth_clear"),
    ] {
        let args = with(
            &db.tcp_conn_args_as(user),
            &["--slot", slot, "--publication", "p", "--end-lsn", "now"],
        );
        let out = run(&args, &[("PGPASSWORD", password)], TIMEOUT);
        assert_streamed(user, &out);
    }
}

/// A HOME of our own with a `.pgpass`, removed on drop.
struct Home(PathBuf);

impl Home {
    fn with_pgpass(text: &str) -> Home {
        let dir = std::env::temp_dir().join(format!(
            "pgstream-it-errors-home-{}-{:?}",
            std::process::id(),
            thread::current().id()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create HOME");
        fs::write(dir.join(".pgpass"), text).expect("write .pgpass");
        Home(dir)
    }

    fn chmod(&self, mode: u32) {
        fs::set_permissions(self.0.join(".pgpass"), fs::Permissions::from_mode(mode))
            .expect("chmod .pgpass");
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 temp dir")
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
fn pgpass_is_used_when_private_and_ignored_when_group_readable() {
    let db = db_with_one_insert("", &["err_pgpass"]);
    let home = Home::with_pgpass(&format!(
        "# test\n127.0.0.1:{}:{}:{SCRAM_USER}:{SCRAM_PASSWORD}\n",
        db.server().port,
        db.name
    ));
    let args = with(
        &db.tcp_conn_args_as(SCRAM_USER),
        &[
            "--slot",
            "err_pgpass",
            "--publication",
            "p",
            "--end-lsn",
            "now",
        ],
    );
    let env = [("HOME", home.path())];

    // 0600: used.
    home.chmod(0o600);
    let out = run(&args, &env, TIMEOUT);
    assert_streamed("0600 .pgpass", &out);
    assert!(
        !out.stderr.contains("group or world access"),
        "0600 .pgpass: warned anyway:\n{}",
        out.stderr
    );

    // Readable by others: ignored with libpq's warning, so no password and
    // authentication fails (exit 2, slot untouched).
    home.chmod(0o644);
    db.sql("INSERT INTO t VALUES (2, 'two')");
    let before = db.confirmed_flush_lsn("err_pgpass");
    let out = run_to_failure(&args, &env);
    assert!(
        out.killed.is_none() && out.code == Some(2),
        "0644 .pgpass: expected exit 2 (no password: authentication cannot succeed), got {:?} ({:?}); stderr:\n{}",
        out.code,
        out.killed,
        out.stderr
    );
    assert!(out.stdout.is_empty(), "{:?}", out.stdout);
    assert!(
        out.stderr.contains("group or world access"),
        "0644 .pgpass: no warning about its permissions:\n{}",
        out.stderr
    );
    assert!(
        out.stderr
            .lines()
            .last()
            .is_some_and(|l| l.starts_with("pgstream:")),
        "{}",
        out.stderr
    );
    assert_no_secret("0644 .pgpass", &out.stderr);
    assert_eq!(db.confirmed_flush_lsn("err_pgpass"), before);
}

/// `-d NAME`, `-d 'key=value …'`, `-d postgresql://…` and the PG* variables
/// alone all reach the database; flags win over the variables.
#[test]
fn connection_forms_reach_the_right_database() {
    let slots = [
        "err_form_name",
        "err_form_kv",
        "err_form_uri",
        "err_form_env",
        "err_form_flags",
    ];
    let db = db_with_one_insert("", &slots);
    let other = Cluster::shared().new_db("errors_wrong");
    let server = db.server();
    let port = server.port.to_string();
    let socket = server.socket_dir.display().to_string();
    let tail = |slot: &str| strs(&["--slot", slot, "--publication", "p", "--end-lsn", "now"]);
    let no_env: Vec<(&str, &str)> = Vec::new();
    let kv = format!(
        "host=127.0.0.1 port={port} dbname={} user={SUPERUSER}",
        db.name
    );
    let env_alone = vec![
        ("PGHOST", socket.as_str()),
        ("PGPORT", port.as_str()),
        ("PGDATABASE", db.name.as_str()),
        ("PGUSER", SUPERUSER),
    ];
    let wrong_port = free_port().to_string();
    let env_wrong = vec![
        ("PGHOST", "127.0.0.1"),
        ("PGPORT", wrong_port.as_str()),
        ("PGDATABASE", other.name.as_str()),
        ("PGUSER", NOREPL_USER),
    ];
    type Form<'a> = (&'a str, Vec<String>, Vec<(&'a str, &'a str)>);
    let forms: Vec<Form<'_>> = vec![
        (
            "-d NAME",
            [db.conn_args(), tail("err_form_name")].concat(),
            no_env.clone(),
        ),
        (
            "-d key=value",
            [strs(&["-d", &kv]), tail("err_form_kv")].concat(),
            no_env.clone(),
        ),
        (
            "-d URI",
            [strs(&["-d", &db.tcp_uri(SUPERUSER)]), tail("err_form_uri")].concat(),
            no_env.clone(),
        ),
        ("PG* variables", tail("err_form_env"), env_alone),
        (
            "flags over PG* variables",
            [db.conn_args(), tail("err_form_flags")].concat(),
            env_wrong,
        ),
    ];
    for (what, args, env) in forms {
        let out = run(&args, &env, TIMEOUT);
        assert_streamed(what, &out);
    }
    assert_eq!(
        other.sql("SELECT count(*) FROM pg_replication_slots WHERE database = current_database()"),
        "0",
        "a slot was created in the wrong database"
    );
}

// ---------------------------------------------------------------------------
// The command line
// ---------------------------------------------------------------------------

#[test]
fn help_is_long_only_and_version_prints_the_version() {
    let out = run(&strs(&["--help"]), &[], TIMEOUT);
    assert_eq!(out.code, Some(0), "--help: stderr:\n{}", out.stderr);
    let help = out.stdout_lines.join("\n");
    for needle in [
        "Connection",
        "Slot",
        "Stream",
        "Output",
        "-h, --host",
        "-d, --dbname",
        "-S, --slot",
        "--publication",
        "--end-lsn",
        "--no-loop",
        "PGPASSWORD",
        "Example",
        "pgstream --slot",
    ] {
        assert!(help.contains(needle), "--help lacks {needle:?}:\n{help}");
    }

    // -h is the host, so it wants a value (checked in the table too) ...
    let out = run(&strs(&["-h"]), &[], TIMEOUT);
    assert_eq!(out.code, Some(2), "-h: stderr:\n{}", out.stderr);
    assert!(
        out.stdout_lines.is_empty(),
        "-h printed help: {:?}",
        out.stdout_lines
    );
    // ... and is the host when it has one: the connection goes there.
    let out = run(
        &strs(&[
            "-h",
            "nonexistent.invalid",
            "-U",
            SUPERUSER,
            "-S",
            "err_h",
            "--publication",
            "p",
            "--no-loop",
        ]),
        &[],
        TIMEOUT,
    );
    assert_eq!(out.code, Some(1), "-h HOST: stderr:\n{}", out.stderr);
    assert!(out.stderr.contains("nonexistent.invalid"), "{}", out.stderr);

    let out = run(&strs(&["--version"]), &[], TIMEOUT);
    assert_eq!(out.code, Some(0), "--version: stderr:\n{}", out.stderr);
    assert_eq!(
        out.stdout_lines,
        [format!("pgstream {}", env!("CARGO_PKG_VERSION"))],
        "--version"
    );
}

/// `--publication a,b` and `--publication a --publication b` both stream the
/// tables of both publications.
#[test]
fn publications_comma_separated_and_repeated() {
    let db = Cluster::shared().new_db("");
    db.sql(
        "CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (id int PRIMARY KEY);
         CREATE PUBLICATION pa FOR TABLE a; CREATE PUBLICATION pb FOR TABLE b;",
    );
    create_slot(&db, "err_pub_comma", "pgoutput");
    create_slot(&db, "err_pub_repeat", "pgoutput");
    db.sql("INSERT INTO a VALUES (1); INSERT INTO b VALUES (2);");
    for (slot, pubs) in [
        ("err_pub_comma", strs(&["--publication", "pa,pb"])),
        (
            "err_pub_repeat",
            strs(&["--publication", "pa", "--publication", "pb"]),
        ),
    ] {
        let args = [
            db.conn_args(),
            strs(&["--slot", slot, "--end-lsn", "now"]),
            pubs,
        ]
        .concat();
        let out = run(&args, &[], TIMEOUT);
        assert_eq!(out.code, Some(0), "{slot}: stderr:\n{}", out.stderr);
        assert!(
            has_insert(&out, "a", 1) && has_insert(&out, "b", 2),
            "{slot}: expected inserts into a and b: {:?}\nstderr:\n{}",
            out.stdout_lines,
            out.stderr
        );
    }
}

#[test]
fn pgstream_slot_variable_sets_the_slot() {
    let db = db_with_one_insert("", &["err_envslot"]);
    let before = parse_lsn(&db.confirmed_flush_lsn("err_envslot").unwrap());
    let args = with(&db.conn_args(), &["--publication", "p", "--end-lsn", "now"]);
    let out = run(&args, &[("PGSTREAM_SLOT", "err_envslot")], TIMEOUT);
    assert_streamed("PGSTREAM_SLOT", &out);
    assert_eq!(
        db.sql("SELECT string_agg(slot_name, ',') FROM pg_replication_slots WHERE database = current_database()"),
        "err_envslot",
        "only the slot named by PGSTREAM_SLOT exists"
    );
    let after = parse_lsn(&db.confirmed_flush_lsn("err_envslot").unwrap());
    assert!(after > before, "err_envslot was not advanced");
}

// ---------------------------------------------------------------------------
// Passwords
// ---------------------------------------------------------------------------

/// Even at trace level, a password given in a URI is never logged.
#[test]
fn password_in_uri_is_not_logged_at_trace_level() {
    let db = db_with_one_insert("", &["err_trace"]);
    let uri = format!(
        "postgresql://{SCRAM_USER}:{}@127.0.0.1:{}/{}",
        uri_encode(SCRAM_PASSWORD),
        db.server().port,
        db.name
    );
    let args = strs(&[
        "-v",
        "-v",
        "-v",
        "-d",
        &uri,
        "--slot",
        "err_trace",
        "--publication",
        "p",
        "--end-lsn",
        "now",
    ]);
    let out = run(&args, &[], TIMEOUT);
    assert_streamed("-v -v -v with a URI password", &out);
    assert!(
        out.stderr.contains("pgstream: trace:") || out.stderr.contains("pgstream: debug:"),
        "-v -v -v logged nothing at debug/trace level:\n{}",
        out.stderr
    );
}

/// PGPASSWORD is in the environment, not argv: `ps` cannot show it. (A
/// password put on the command line in a URI is visible to `ps` whatever
/// pgstream does; the test above checks that it is not logged.)
#[test]
fn password_from_the_environment_is_not_in_ps_output() {
    let db = db_with_one_insert("", &["err_ps"]);
    let args = with(
        &db.tcp_conn_args_as(SCRAM_USER),
        &["--slot", "err_ps", "--publication", "p"],
    );
    let mut p = Proc::spawn(&args, &[("PGPASSWORD", SCRAM_PASSWORD)]);
    p.wait_lines(1, TIMEOUT);
    wait_until("err_ps to be active", TIMEOUT, || {
        db.slot_active("err_ps").then_some(())
    });
    let ps = Command::new("ps")
        .args(["-o", "args=", "-p", &p.pid().to_string()])
        .output()
        .expect("run ps");
    let shown = String::from_utf8_lossy(&ps.stdout).into_owned();
    assert!(
        shown.contains("err_ps"),
        "ps did not show the process: {shown:?}"
    );
    assert!(
        !shown.contains(SCRAM_PASSWORD),
        "ps shows the password: {shown:?}"
    );
    p.signal("TERM");
    let out = p.wait_exit(TIMEOUT);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    assert_no_secret("PGPASSWORD run", &out.stderr);
}

/// A password inside a `-d` URI or conninfo string is overwritten in the
/// process's arguments once parsed, so `ps` does not show it.
#[test]
fn password_on_the_command_line_is_hidden_from_ps() {
    let db = db_with_one_insert("", &["err_ps_uri", "err_ps_kv"]);
    let uri = db.tcp_uri(SCRAM_USER).replace(
        &format!("{SCRAM_USER}@"),
        &format!("{SCRAM_USER}:scram%20secret@"),
    );
    let kv = format!(
        "{} password='{SCRAM_PASSWORD}'",
        db.conninfo()
            .replace("user=postgres", &format!("user={SCRAM_USER}"))
    );
    for (slot, dbarg) in [("err_ps_uri", uri), ("err_ps_kv", kv)] {
        let args = crate::harness::vec_of(&["-d", &dbarg, "--slot", slot, "--publication", "p"]);
        let mut p = Proc::spawn(&args, &[]);
        p.wait_lines(1, TIMEOUT);
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", p.pid())).expect("read cmdline");
        let shown = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        assert!(shown.contains(slot), "{shown:?}");
        assert!(
            !shown.contains("scram secret") && !shown.contains("scram%20secret"),
            "ps shows the password: {shown:?}"
        );
        assert!(shown.contains("********"), "{shown:?}");
        p.signal("TERM");
        let out = p.wait_exit(TIMEOUT);
        assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    }
}
