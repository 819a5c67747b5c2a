//! `--table` / `--exclude-table` on the stream.

use crate::harness::{run, vec_of, Cluster, TIMEOUT};

#[test]
fn table_patterns_include_and_exclude() {
    let db = Cluster::shared().new_db("filt");
    db.sql(
        "CREATE SCHEMA shop; \
         CREATE TABLE public.orders (id int PRIMARY KEY); \
         CREATE TABLE public.orders_tmp (id int PRIMARY KEY); \
         CREATE TABLE public.users (id int PRIMARY KEY); \
         CREATE TABLE shop.orders (id int PRIMARY KEY); \
         CREATE PUBLICATION p FOR ALL TABLES",
    );
    let slot = format!("{}_f", db.name);
    let filters = vec_of(&[
        "--table",
        "*.ord*",
        "--exclude-table",
        "public.*_tmp",
        "--end-lsn",
        "now",
    ]);
    let args = [db.stream_args(&slot, "p"), filters].concat();
    assert_eq!(run(&args, &[], TIMEOUT).code, Some(0));
    db.sql(
        "INSERT INTO public.orders VALUES (1); INSERT INTO public.orders_tmp VALUES (2); \
         INSERT INTO public.users VALUES (3); INSERT INTO shop.orders VALUES (4); \
         TRUNCATE public.users, public.orders",
    );
    db.sql("SELECT pg_current_wal_flush_lsn()");
    let out = run(&args, &[], TIMEOUT);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let seen: Vec<String> = out
        .json()
        .iter()
        .map(|e| {
            format!(
                "{} {}.{}",
                e["op"].as_str().unwrap(),
                e["schema"].as_str().unwrap(),
                e["table"].as_str().unwrap()
            )
        })
        .collect();
    // pgoutput decodes TRUNCATE from PostgreSQL 11 on.
    let mut want = vec!["insert public.orders", "insert shop.orders"];
    if crate::harness::server_major() >= 11 {
        want.push("truncate public.orders");
    }
    assert_eq!(seen, want);
}

#[test]
fn bad_pattern_is_a_usage_error() {
    let db = Cluster::shared().new_db("filt");
    let out = run(
        &[
            db.stream_args("filt_bad", "p"),
            vec_of(&["--table", "a.b.c"]),
        ]
        .concat(),
        &[],
        TIMEOUT,
    );
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr.contains("invalid table pattern \"a.b.c\""),
        "{}",
        out.stderr
    );
    assert!(out.stdout_lines.is_empty());
}
