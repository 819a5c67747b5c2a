//! Conventions: `PGSTREAM_<FLAG>` variables set flags (the flag wins), and
//! a libpq variable for a setting pgstream does not implement is refused by
//! name, never silently ignored.

use crate::harness::{run, vec_of, Cluster, Output, TestDb, TIMEOUT};

/// A database with `t1` in publication `p1`, `t2` in `p2`.
fn setup() -> TestDb {
    let db = Cluster::shared().new_db("conv");
    db.sql(
        "CREATE TABLE t1 (id int PRIMARY KEY); CREATE TABLE t2 (id int PRIMARY KEY);
         CREATE PUBLICATION p1 FOR TABLE t1; CREATE PUBLICATION p2 FOR TABLE t2",
    );
    db
}

/// The `op`/`table` of each line of a run that must have exited 0.
fn ops(out: &Output) -> Vec<String> {
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    out.json()
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["op"].as_str().unwrap(),
                e["table"].as_str().unwrap_or("")
            )
        })
        .collect()
}

#[test]
fn libpq_variables_pgstream_does_not_implement_exit_2_naming_them() {
    let db = setup();
    let mut args = db.stream_args("conv_refused", "p1");
    args.extend(vec_of(&["--end-lsn", "now"]));
    for (var, value) in [
        ("PGSERVICE", "svc"),
        ("PGSERVICEFILE", "/nonexistent"),
        ("PGREQUIREAUTH", "scram-sha-256"),
        ("PGSSLCRL", "/crl.pem"),
        ("PGSSLCRLDIR", "/crls"),
        ("PGREQUIREPEER", "postgres"),
        ("PGGSSENCMODE", "require"),
        ("PGSSLNEGOTIATION", "direct"),
        ("PGSSLCERTMODE", "require"),
        ("PGOPTIONS", "-c search_path=elsewhere"),
        ("PGCLIENTENCODING", "LATIN1"),
        ("PGTZ", "Europe/Paris"),
        ("PGDATESTYLE", "German"),
    ] {
        let out = run(&args, &[(var, value)], TIMEOUT);
        let err = out.stderr.trim();
        assert_eq!(out.code, Some(2), "{var}: {err}");
        assert!(out.stdout_lines.is_empty(), "{var}: {:?}", out.stdout_lines);
        assert_eq!(err.lines().count(), 1, "{var}: {err}");
        assert!(
            err.starts_with("pgstream: unsupported environment variable ")
                && err.contains(var)
                && err.ends_with("unset it"),
            "{var}: {err}"
        );
    }
    assert!(
        !db.slot_exists("conv_refused"),
        "a refused run created its slot"
    );
    // Harmless values pass.
    let ok = [
        ("PGTARGETSESSIONATTRS", "any"),
        ("PGGSSENCMODE", "prefer"),
        ("PGCLIENTENCODING", "UTF8"),
        ("PGSERVICE", ""),
    ];
    assert_eq!(ops(&run(&args, &ok, TIMEOUT)), Vec::<String>::new());
}

#[test]
fn pgstream_variables_set_flags_and_the_flags_win() {
    let db = setup();
    let conn = db.conn_args();
    let env = [
        ("PGSTREAM_SLOT", "conv_env"),
        ("PGSTREAM_PUBLICATION", "p1,p2"),
        ("PGSTREAM_INCLUDE_TX", "yes"),
        ("PGSTREAM_END_LSN", "now"),
        ("PGSTREAM_FILE", ""), // empty: unset, so stdout
    ];
    // Creates the slot; the next run streams what came after.
    assert_eq!(ops(&run(&conn, &env, TIMEOUT)), Vec::<String>::new());
    assert!(db.slot_exists("conv_env"));
    db.sql("INSERT INTO t1 VALUES (1); INSERT INTO t2 VALUES (2)");
    assert_eq!(
        ops(&run(&conn, &env, TIMEOUT)),
        [
            "begin ",
            "insert t1",
            "commit ",
            "begin ",
            "insert t2",
            "commit "
        ]
    );

    // Flags win over each variable: slot, publication, a boolean.
    let mut flags = conn.clone();
    flags.extend(vec_of(&[
        "--slot",
        "conv_flag",
        "--publication",
        "p2",
        "--end-lsn",
        "now",
    ]));
    let wins = [
        ("PGSTREAM_SLOT", "conv_env"),
        ("PGSTREAM_PUBLICATION", "no_such_publication"),
        ("PGSTREAM_INCLUDE_TX", "0"),
    ];
    assert_eq!(ops(&run(&flags, &wins, TIMEOUT)), Vec::<String>::new());
    assert!(db.slot_exists("conv_flag"));
    db.sql("INSERT INTO t1 VALUES (3); INSERT INTO t2 VALUES (4)");
    let mut with_tx = flags.clone();
    with_tx.push("--include-tx".into());
    assert_eq!(
        ops(&run(&with_tx, &wins, TIMEOUT)),
        ["begin ", "insert t2", "commit "]
    );

    // A boolean variable that is not one.
    let out = run(&flags, &[("PGSTREAM_INCLUDE_TX", "maybe")], TIMEOUT);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("PGSTREAM_INCLUDE_TX") || out.stderr.contains("--include-tx"),
        "{}",
        out.stderr
    );
}
