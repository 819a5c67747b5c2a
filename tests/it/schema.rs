//! Schema changes mid-stream, and `--include-schema` relation events.

use crate::harness::{run, vec_of, Cluster, TIMEOUT};

#[test]
fn relation_events_follow_schema_changes() {
    let db = Cluster::shared().new_db("schema");
    db.sql("CREATE TABLE t (id int PRIMARY KEY, a text); CREATE PUBLICATION p FOR TABLE t");
    let slot = format!("{}_r", db.name);
    let args = [
        db.stream_args(&slot, "p"),
        vec_of(&["--include-schema", "--end-lsn", "now"]),
    ]
    .concat();
    assert_eq!(run(&args, &[], TIMEOUT).code, Some(0));
    db.sql("INSERT INTO t VALUES (1, 'x')");
    db.sql("ALTER TABLE t ADD COLUMN b numeric(10,2); INSERT INTO t VALUES (2, 'y', 1.5)");
    db.sql("ALTER TABLE t DROP COLUMN a; ALTER TABLE t ALTER COLUMN b TYPE text; INSERT INTO t VALUES (3, '2.50')");
    db.sql("ALTER TABLE t RENAME TO u; INSERT INTO u VALUES (4, 'z')");
    db.sql("SELECT pg_current_wal_flush_lsn()");
    let out = run(&args, &[], TIMEOUT);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let summary: Vec<String> = out
        .json()
        .iter()
        .map(|e| match e["op"].as_str().unwrap() {
            "relation" => format!(
                "relation {} {}",
                e["table"].as_str().unwrap(),
                e["columns"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| format!(
                        "{}:{}:{}:{}",
                        c["name"].as_str().unwrap(),
                        c["type_oid"],
                        c["type_modifier"],
                        c["key"]
                    ))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            op => format!("{op} {} {}", e["table"].as_str().unwrap(), e["new"]),
        })
        .collect();
    // numeric(10,2) has type modifier (10 << 16 | 2) + 4.
    assert_eq!(
        summary,
        [
            "relation t id:23:-1:true,a:25:-1:false",
            r#"insert t {"a":"x","id":1}"#,
            "relation t id:23:-1:true,a:25:-1:false,b:1700:655366:false",
            r#"insert t {"a":"y","b":"1.50","id":2}"#,
            "relation t id:23:-1:true,b:25:-1:false",
            r#"insert t {"b":"2.50","id":3}"#,
            "relation u id:23:-1:true,b:25:-1:false",
            r#"insert u {"b":"z","id":4}"#,
        ]
    );
    // Without the flag, the same changes come without relation events.
    let plain = run(
        &[
            db.stream_args(&format!("{}_plain", db.name), "p"),
            vec_of(&["--end-lsn", "now"]),
        ]
        .concat(),
        &[],
        TIMEOUT,
    );
    assert!(plain.json().iter().all(|e| e["op"] != "relation"));
}
