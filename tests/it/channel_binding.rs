//! `channel_binding` (libpq's semantics) on both connections: `require`
//! binds or fails, and never goes without TLS; `prefer` fails, as libpq does,
//! when the server offers SCRAM-SHA-256-PLUS with a certificate whose
//! `tls-server-end-point` hash cannot be computed (Ed25519); `disable` then
//! connects. Uses the TLS cluster of [`crate::tls`], and one more with an
//! Ed25519 certificate.

use std::sync::OnceLock;

use crate::harness::{run, server_major, Cluster, SCRAM_PASSWORD, SCRAM_USER, TIMEOUT};
use crate::tls::{
    args, assert_both_on_tls, assert_config_error, assert_streamed, openssl, pki_dir, setup,
    setup_on, tls, turn_on_ssl,
};

const PASSWORD: [(&str, &str); 1] = [("PGPASSWORD", SCRAM_PASSWORD)];

#[test]
fn channel_binding_require_binds_both_connections() {
    tls();
    let db = setup("cb_require");
    let mut a = args(
        &db,
        "localhost",
        SCRAM_USER,
        "sslmode=require",
        "cb_require",
    );
    a.push("-vv".into());
    let env = [PASSWORD[0], ("PGCHANNELBINDING", "require")];
    let out = run(&a, &env, TIMEOUT);
    if server_major() < 11 {
        // No SCRAM-SHA-256-PLUS before PostgreSQL 11: require cannot be met.
        assert_config_error(&out, &["channel binding is required"], "require on 10");
        return;
    }
    assert_streamed(&out, "channel_binding=require");
    assert!(
        out.stderr.contains(
            "authenticating with SCRAM-SHA-256-PLUS (channel binding: tls-server-end-point)"
        ),
        "{}",
        out.stderr
    );
    assert_both_on_tls(&db, "channel_binding=require");
}

/// A login the server lets in without SCRAM (trust) cannot be bound: with
/// `require` both connections refuse it (the normal run checks the catalog
/// connection first; `--drop-slot` uses only the replication connection).
#[test]
fn channel_binding_require_refuses_a_login_without_it() {
    tls();
    let db = setup("cb_trust");
    let extra = "sslmode=require channel_binding=require";
    let a = args(&db, "localhost", "postgres", extra, "cb_trust");
    let out = run(&a, &[], TIMEOUT);
    assert_config_error(&out, &["channel binding"], "catalog, trust");
    let mut a = args(&db, "localhost", "postgres", extra, "cb_trust");
    a.push("--drop-slot".into());
    let out = run(&a, &[], TIMEOUT);
    assert_config_error(&out, &["channel binding is required"], "walsender, trust");
    assert!(db.slot_exists("cb_trust"), "the slot was dropped");
}

/// Where TLS is never used, `require` is a configuration error before any
/// connection (exit 2, as libpq fails such a connection).
#[test]
fn channel_binding_require_without_tls_is_refused() {
    tls();
    let db = setup("cb_plain");
    for (extra, env, what) in [
        (
            "sslmode=disable",
            vec![("PGCHANNELBINDING", "require")],
            "sslmode=disable",
        ),
        (
            "channel_binding=require",
            vec![("PGSSLMODE", "disable")],
            "PGSSLMODE=disable",
        ),
    ] {
        let a = args(&db, "localhost", SCRAM_USER, extra, "cb_plain");
        let out = run(&a, &env, TIMEOUT);
        assert_config_error(&out, &["channel_binding=require needs TLS"], what);
    }
}

/// A server with an Ed25519 certificate, SCRAM for [`SCRAM_USER`].
fn ed25519() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let cluster = Cluster::start(&[]);
        let pki = pki_dir(&cluster);
        openssl(
            &pki,
            &[
                "req",
                "-x509",
                "-newkey",
                "ed25519",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.crt",
                "-days",
                "3",
                "-subj",
                "/CN=localhost",
            ],
        );
        std::fs::set_permissions(
            pki.join("server.key"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .expect("chmod server.key");
        turn_on_ssl(&cluster, &pki, "");
        cluster
    })
}

#[test]
fn unhashable_certificate_fails_prefer_and_connects_with_disable() {
    if server_major() < 11 {
        return; // no SCRAM-SHA-256-PLUS to refuse
    }
    let cluster = ed25519();
    let db = setup_on(cluster, "cb_ed25519");
    let run_with = |extra: &str, more: &[&str]| {
        let mut a = args(&db, "localhost", SCRAM_USER, extra, "cb_ed25519");
        a.extend(more.iter().map(|s| s.to_string()));
        run(&a, &PASSWORD, TIMEOUT)
    };
    // The catalog connection (tokio-postgres) and, with --drop-slot, the
    // replication connection.
    for more in [&[][..], &["--drop-slot"]] {
        let out = run_with("sslmode=require", more);
        assert_config_error(
            &out,
            &["SCRAM-SHA-256-PLUS", "channel_binding=disable"],
            &format!("prefer {more:?}"),
        );
    }
    assert!(db.slot_exists("cb_ed25519"), "the slot was dropped");
    let out = run_with("sslmode=require channel_binding=disable", &[]);
    assert_streamed(&out, "channel_binding=disable");
}
