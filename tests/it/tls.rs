//! TLS (issue 7): libpq's `sslmode` on both connections, certificate
//! checks, client certificates and SCRAM channel binding, against a server
//! with `ssl = on`.
//!
//! One dedicated cluster serves the module. Its CA, server certificate
//! (subjectAltName `localhost` only, so that `127.0.0.1` is a host name
//! mismatch), client certificate (CN `certuser`) and a second, unrelated CA
//! are made at test time with the `openssl` command inside the cluster's
//! directory, so they go with it. Its pg_hba.conf rejects every plain TCP
//! connection (`hostnossl … reject`) and lets `certuser` in only with a
//! client certificate (`cert`); the harness's usual lines (SCRAM for
//! `pw_scram`, trust for the rest) follow.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::harness::{
    quote_literal, run, wait_until, Cluster, Output, TestDb, SCRAM_PASSWORD, SCRAM_USER, TIMEOUT,
};

/// The role that logs in with a client certificate.
const CERT_USER: &str = "certuser";

/// The TLS cluster and its certificate directory.
pub(crate) struct Tls {
    pub cluster: Cluster,
    pki: PathBuf,
}

impl Tls {
    pub(crate) fn file(&self, name: &str) -> String {
        self.pki.join(name).display().to_string()
    }
}

pub(crate) fn tls() -> &'static Tls {
    static TLS: OnceLock<Tls> = OnceLock::new();
    TLS.get_or_init(start)
}

fn start() -> Tls {
    let cluster = Cluster::start_with_hba(
        &["log_connections = on"],
        &[
            &format!("hostssl all {CERT_USER} 127.0.0.1/32 cert"),
            &format!("hostssl replication {CERT_USER} 127.0.0.1/32 cert"),
            "hostnossl all all 127.0.0.1/32 reject",
            "hostnossl replication all 127.0.0.1/32 reject",
        ],
    );
    let pki = pki_dir(&cluster);
    make_pki(&pki);
    turn_on_ssl(
        &cluster,
        &pki,
        &format!("CREATE ROLE {CERT_USER} LOGIN REPLICATION;"),
    );
    Tls { cluster, pki }
}

/// The cluster's certificate directory, created.
pub(crate) fn pki_dir(cluster: &Cluster) -> PathBuf {
    let pki = cluster.base_dir.join("pki");
    fs::create_dir(&pki).expect("create pki dir");
    fs::set_permissions(&pki, fs::Permissions::from_mode(0o755)).expect("chmod pki dir");
    pki
}

/// Turns on `ssl` with `pki`'s server.crt/server.key (and ca.crt when it
/// exists), runs `sql`, and waits until a TLS connection works.
pub(crate) fn turn_on_ssl(cluster: &Cluster, pki: &Path, sql: &str) {
    // The server must own its key (and read it with mode 0600).
    if is_root() {
        let st = Command::new("chown")
            .arg("postgres:postgres")
            .arg(pki.join("server.key"))
            .status();
        assert!(matches!(st, Ok(s) if s.success()), "chown server.key");
    }
    let q = |name: &str| quote_literal(&pki.join(name).display().to_string());
    let ca = if pki.join("ca.crt").exists() {
        format!("ALTER SYSTEM SET ssl_ca_file = {};", q("ca.crt"))
    } else {
        String::new()
    };
    cluster.sql(
        "postgres",
        &format!(
            "ALTER SYSTEM SET ssl_cert_file = {};
             ALTER SYSTEM SET ssl_key_file = {};
             {ca}
             ALTER SYSTEM SET ssl = on;
             {sql}
             SELECT pg_reload_conf();",
            q("server.crt"),
            q("server.key"),
        ),
    );
    // Until a TLS connection works: the reload is asynchronous.
    let server = cluster.server().clone();
    let conninfo = format!(
        "host=127.0.0.1 port={} dbname=postgres user=postgres sslmode=require",
        server.port
    );
    let probe = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";
    let mut last = String::new();
    let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_until(
            "the server to accept TLS connections",
            TIMEOUT,
            || match server.psql(&["-d".to_string(), conninfo.clone()], &[], probe) {
                Ok(out) if out == "t" => Some(()),
                Ok(out) => {
                    last = out;
                    None
                }
                Err(e) => {
                    last = e;
                    None
                }
            },
        )
    }));
    if ok.is_err() {
        panic!(
            "TLS never came up: {last}\n--- server log:\n{}",
            cluster.server_log()
        );
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Runs `openssl args` in `dir`; panics with its stderr on failure.
pub(crate) fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl (needed by the TLS tests): {e}"));
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for `localhost`, a client certificate for
/// [`CERT_USER`], and an unrelated CA, all P-256 (quick to make).
fn make_pki(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    for (ca, cn) in [("ca", "pgstream test CA"), ("other_ca", "some other CA")] {
        let (key, crt, subj) = (
            format!("{ca}.key"),
            format!("{ca}.crt"),
            format!("/CN={cn}"),
        );
        let mut args = vec!["req", "-x509", "-new"];
        args.extend(ec);
        args.extend([
            "-keyout",
            &key,
            "-out",
            &crt,
            "-days",
            "3",
            "-subj",
            &subj,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(dir, &args);
    }
    let leaves = [
        (
            "server",
            "localhost",
            "subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n",
            "0x5e1",
        ),
        ("client", CERT_USER, "extendedKeyUsage=clientAuth\n", "0xc1"),
    ];
    for (name, cn, ext, serial) in leaves {
        let (key, csr, crt, extfile) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
            format!("{name}.ext"),
        );
        let ext = format!(
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n{ext}"
        );
        fs::write(dir.join(&extfile), ext).expect("write extfile");
        let subj = format!("/CN={cn}");
        let mut args = vec!["req", "-new"];
        args.extend(ec);
        args.extend(["-keyout", &key, "-out", &csr, "-subj", &subj]);
        openssl(dir, &args);
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-set_serial",
                serial,
                "-days",
                "3",
                "-out",
                &crt,
                "-extfile",
                &extfile,
            ],
        );
    }
    for entry in fs::read_dir(dir).expect("read pki dir").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let mode = if name.ends_with(".key") { 0o600 } else { 0o644 };
        fs::set_permissions(entry.path(), fs::Permissions::from_mode(mode)).expect("chmod");
    }
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A database with `t` published as `p`, the pgoutput `slot`, and one row
/// inserted after it: a run with `--end-lsn now` emits exactly that insert.
pub(crate) fn setup(slot: &str) -> TestDb {
    setup_on(&tls().cluster, slot)
}

/// [`setup`] on another cluster.
pub(crate) fn setup_on(cluster: &Cluster, slot: &str) -> TestDb {
    let db = cluster.new_db("");
    db.sql(&format!(
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         CREATE PUBLICATION p FOR TABLE t;
         SELECT pg_create_logical_replication_slot({}, 'pgoutput');
         SET synchronous_commit = on;
         INSERT INTO t VALUES (1, 'over tls');",
        quote_literal(slot)
    ));
    db
}

/// `-d "host=… port=… dbname=… user=… <extra>" --slot … --publication p --end-lsn now`.
pub(crate) fn args(db: &TestDb, host: &str, user: &str, extra: &str, slot: &str) -> Vec<String> {
    let conninfo = format!(
        "host={host} port={} dbname={} user={user} {extra}",
        db.server().port,
        db.name
    );
    [
        "-d",
        &conninfo,
        "--slot",
        slot,
        "--publication",
        "p",
        "--end-lsn",
        "now",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Asserts a clean run that emitted the one insert of [`setup`].
pub(crate) fn assert_streamed(out: &Output, what: &str) {
    assert_eq!(
        out.code,
        Some(0),
        "{what}: exit code; stderr:\n{}",
        out.stderr
    );
    let events = out.json();
    assert_eq!(events.len(), 1, "{what}: {:?}", out.stdout_lines);
    assert_eq!(events[0]["op"], "insert", "{what}");
    assert_eq!(events[0]["new"]["v"], "over tls", "{what}");
}

/// Asserts a configuration error: exit 2, one `pgstream:` line containing
/// every one of `needles` (case-insensitive), nothing on stdout.
pub(crate) fn assert_config_error(out: &Output, needles: &[&str], what: &str) {
    let err = out.stderr.trim();
    eprintln!("{what}: {err}");
    assert_eq!(out.code, Some(2), "{what}: exit code; stderr:\n{err}");
    assert!(
        out.stdout_lines.is_empty(),
        "{what}: stdout {:?}",
        out.stdout_lines
    );
    assert_eq!(err.lines().count(), 1, "{what}: expected one line:\n{err}");
    assert!(err.starts_with("pgstream: "), "{what}: {err}");
    for needle in needles {
        assert!(
            err.to_lowercase().contains(&needle.to_lowercase()),
            "{what}: no {needle:?} in: {err}"
        );
    }
    assert!(
        !err.contains(SCRAM_PASSWORD),
        "{what}: password shown: {err}"
    );
}

/// The server's `connection authorized` log lines for database `db`.
fn authorized(db: &TestDb) -> Vec<String> {
    let log = tls().cluster.server_log();
    let tag = format!("@{} ", db.name);
    log.lines()
        .filter(|l| l.contains(&tag) && l.contains("connection authorized"))
        .map(str::to_string)
        .collect()
}

/// Asserts that pgstream's catalog and replication connections to `db` both
/// used TLS (as `log_connections` reports them).
pub(crate) fn assert_both_on_tls(db: &TestDb, what: &str) {
    let lines = authorized(db);
    let ssl = |repl: bool| {
        lines
            .iter()
            .any(|l| l.contains("replication connection") == repl && l.contains("SSL enabled"))
    };
    assert!(
        ssl(false) && ssl(true),
        "{what}: not both connections on TLS:\n{}",
        lines.join("\n")
    );
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

/// verify-full with the right CA and host name; SCRAM binds the channel.
#[test]
fn verify_full_with_the_right_ca_and_host_uses_channel_binding() {
    let t = tls();
    let db = setup("tls_full");
    let extra = format!("sslmode=verify-full sslrootcert={}", t.file("ca.crt"));
    let mut a = args(&db, "localhost", SCRAM_USER, &extra, "tls_full");
    a.push("-vv".into());
    let out = run(&a, &[("PGPASSWORD", SCRAM_PASSWORD)], TIMEOUT);
    assert_streamed(&out, "verify-full");
    // Channel binding (SCRAM-SHA-256-PLUS) is PostgreSQL 11+; a 10 server
    // offers plain SCRAM-SHA-256 only.
    let auth = if crate::harness::server_major() >= 11 {
        "authenticating with SCRAM-SHA-256-PLUS (channel binding: tls-server-end-point)"
    } else {
        "authenticating with SCRAM-SHA-256 (channel binding: none, server offers none)"
    };
    assert!(
        out.stderr.contains(auth),
        "the walsender did not use {auth:?}:\n{}",
        out.stderr
    );
    assert!(!out.stderr.contains(SCRAM_PASSWORD), "password in the logs");
    assert_both_on_tls(&db, "verify-full");
}

/// The same through the PGSSL* variables, with a CA that did not sign the
/// server's certificate: exit 2, "unknown CA".
#[test]
fn verify_full_with_a_wrong_ca_fails() {
    let t = tls();
    let db = setup("tls_wrong_ca");
    let a = args(&db, "localhost", "postgres", "", "tls_wrong_ca");
    let other = t.file("other_ca.crt");
    let out = run(
        &a,
        &[("PGSSLMODE", "verify-full"), ("PGSSLROOTCERT", &other)],
        TIMEOUT,
    );
    assert_config_error(&out, &["certificate", "unknown CA", &other], "wrong CA");
}

/// A certificate for `localhost` does not name 127.0.0.1: verify-full
/// refuses it, verify-ca (chain only) accepts it.
#[test]
fn verify_full_checks_the_host_name_and_verify_ca_does_not() {
    let t = tls();
    let db = setup("tls_host");
    let ca = t.file("ca.crt");
    let a = args(
        &db,
        "127.0.0.1",
        "postgres",
        &format!("sslmode=verify-full sslrootcert={ca}"),
        "tls_host",
    );
    let out = run(&a, &[], TIMEOUT);
    assert_config_error(
        &out,
        &["host name mismatch", "127.0.0.1", "localhost"],
        "wrong host",
    );
    let a = args(
        &db,
        "127.0.0.1",
        "postgres",
        &format!("sslmode=verify-ca sslrootcert={ca}"),
        "tls_host",
    );
    assert_streamed(&run(&a, &[], TIMEOUT), "verify-ca");
}

/// `require` encrypts without any certificate to check against.
#[test]
fn require_without_a_ca_succeeds() {
    let db = setup("tls_require");
    let a = args(
        &db,
        "127.0.0.1",
        "postgres",
        "sslmode=require",
        "tls_require",
    );
    assert_streamed(&run(&a, &[], TIMEOUT), "require");
    assert_both_on_tls(&db, "require");
}

/// The server takes no plain TCP connection: `disable` fails at once and
/// says what to do; `allow` (plain, then TLS) and the default `prefer` get in.
#[test]
fn a_server_that_demands_tls() {
    let db = setup("tls_demand");
    let a = args(
        &db,
        "127.0.0.1",
        "postgres",
        "sslmode=disable",
        "tls_demand",
    );
    let out = run(&a, &[], TIMEOUT);
    // The server says "no encryption" from PostgreSQL 14 on, "SSL off" before.
    let rejected = if crate::harness::server_major() >= 14 {
        "no encryption"
    } else {
        "SSL off"
    };
    assert_config_error(&out, &[rejected, "sslmode=require"], "disable");
    for mode in ["allow", "prefer"] {
        let a = args(
            &db,
            "127.0.0.1",
            "postgres",
            &format!("sslmode={mode}"),
            "tls_demand",
        );
        let out = run(&a, &[], TIMEOUT);
        assert_eq!(out.code, Some(0), "sslmode={mode}: {}", out.stderr);
    }
    assert_both_on_tls(&db, "allow/prefer");
}

/// `cert` authentication with sslcert/sslkey given, then found at libpq's
/// default place (`~/.postgresql/`); without a certificate the server says no.
#[test]
fn client_certificate_authentication() {
    let t = tls();
    let db = setup("tls_cert");
    let extra = format!(
        "sslmode=verify-full sslrootcert={} sslcert={} sslkey={}",
        t.file("ca.crt"),
        t.file("client.crt"),
        t.file("client.key")
    );
    let a = args(&db, "localhost", CERT_USER, &extra, "tls_cert");
    assert_streamed(&run(&a, &[], TIMEOUT), "sslcert/sslkey");
    assert_both_on_tls(&db, "client certificate");

    // The default files under HOME.
    let home = t
        .cluster
        .base_dir
        .join(format!("home-{}", std::process::id()));
    let dot = home.join(".postgresql");
    fs::create_dir_all(&dot).unwrap();
    for (from, to) in [
        ("ca.crt", "root.crt"),
        ("client.crt", "postgresql.crt"),
        ("client.key", "postgresql.key"),
    ] {
        fs::copy(t.pki.join(from), dot.join(to)).unwrap();
    }
    fs::set_permissions(
        dot.join("postgresql.key"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let home_s = home.display().to_string();
    db.sql("SET synchronous_commit = on; INSERT INTO t VALUES (2, 'over tls')");
    db.sql("DELETE FROM t WHERE id = 1");
    let a = args(
        &db,
        "localhost",
        CERT_USER,
        "sslmode=verify-full",
        "tls_cert",
    );
    let out = run(&a, &[("HOME", &home_s)], TIMEOUT);
    assert_eq!(out.code, Some(0), "default files: {}", out.stderr);
    assert!(!out.json().is_empty(), "default files: no events");

    // A key that others can read is refused, as libpq does.
    fs::set_permissions(
        dot.join("postgresql.key"),
        fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let out = run(&a, &[("HOME", &home_s)], TIMEOUT);
    assert_config_error(&out, &["group or world access"], "key mode 0644");

    // No certificate at all.
    let a = args(
        &db,
        "localhost",
        CERT_USER,
        &format!("sslmode=verify-full sslrootcert={}", t.file("ca.crt")),
        "tls_cert",
    );
    let out = run(&a, &[], TIMEOUT);
    assert_config_error(&out, &["certificate"], "no client certificate");
    let _ = fs::remove_dir_all(&home);
}

/// The same settings as flags: `--sslmode`, `--sslrootcert` (flags win over
/// the PGSSL* variables, as in psql).
#[test]
fn tls_settings_as_flags() {
    let t = tls();
    let db = setup("tls_flags");
    let mut a = args(&db, "127.0.0.1", SCRAM_USER, "", "tls_flags");
    a.extend(crate::harness::vec_of(&[
        "--sslmode",
        "verify-ca",
        "--sslrootcert",
        &t.file("ca.crt"),
    ]));
    let out = run(
        &a,
        &[("PGPASSWORD", SCRAM_PASSWORD), ("PGSSLMODE", "disable")],
        TIMEOUT,
    );
    assert_streamed(&out, "--sslmode verify-ca");
    assert_both_on_tls(&db, "--sslmode verify-ca");
}
