//! Running as a service: the systemd notification protocol, progress lines
//! on stderr, journald log prefixes.

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use crate::harness::{vec_of, Cluster, Proc, TIMEOUT};

/// Collects datagrams until `until` is seen (or the timeout passes).
fn collect(sock: &UnixDatagram, until: &str) -> Vec<String> {
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + TIMEOUT;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            let done = msg.lines().any(|l| l == until);
            got.push(msg);
            if done {
                break;
            }
        }
    }
    got
}

#[test]
fn systemd_ready_watchdog_status_stopping_in_order() {
    let db = Cluster::shared().new_db("ops");
    db.sql("CREATE TABLE t (id int PRIMARY KEY); CREATE PUBLICATION p FOR TABLE t");
    let dir = std::env::temp_dir().join(format!(
        "pgstream-notify-{}-{}",
        std::process::id(),
        db.name
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("notify");
    let sock = UnixDatagram::bind(&path).unwrap();
    let slot = format!("{}_sd", db.name);
    let mut args = db.stream_args(&slot, "p");
    args.extend(vec_of(&["-s", "1"]));
    let mut proc = Proc::spawn(
        &args,
        &[
            ("NOTIFY_SOCKET", path.to_str().unwrap()),
            ("WATCHDOG_USEC", "1000000"),
        ],
    );
    let before_stop = collect(&sock, "WATCHDOG=1");
    assert!(
        before_stop[0].lines().any(|l| l == "READY=1"),
        "READY first: {before_stop:?}"
    );
    assert!(
        before_stop[0].contains("STATUS=streaming from slot"),
        "{before_stop:?}"
    );
    db.sql("INSERT INTO t VALUES (1)");
    proc.wait_lines(1, TIMEOUT);
    proc.signal("TERM");
    let after = collect(&sock, "STOPPING=1");
    let out = proc.wait_exit(TIMEOUT);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        after.iter().any(|m| m == "STOPPING=1"),
        "STOPPING after the signal: {after:?}"
    );
    let all: Vec<&String> = before_stop.iter().chain(&after).collect();
    let ready = all.iter().position(|m| m.contains("READY=1")).unwrap();
    let stopping = all.iter().position(|m| *m == "STOPPING=1").unwrap();
    assert!(ready < stopping);
    assert!(
        all.iter().any(|m| m.contains("acknowledged")),
        "a STATUS= line names the acknowledged position: {all:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn stats_lines_on_interval_and_sigusr1_then_a_summary() {
    let db = Cluster::shared().new_db("ops");
    db.sql("CREATE TABLE t (id int PRIMARY KEY); CREATE PUBLICATION p FOR TABLE t");
    let slot = format!("{}_st", db.name);
    let mut args = db.stream_args(&slot, "p");
    args.extend(vec_of(&["--stats-interval", "1"]));
    let mut proc = Proc::spawn(&args, &[]);
    proc.wait_stderr("streaming from slot", TIMEOUT);
    db.sql("INSERT INTO t SELECT generate_series(1, 10)");
    proc.wait_lines(10, TIMEOUT);
    proc.wait_stderr("10 changes in 1 transactions", TIMEOUT);
    proc.signal("USR1");
    proc.signal("INT");
    let out = proc.wait_exit(TIMEOUT);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let summary = out.stderr.lines().last().unwrap_or_default();
    assert!(
        summary.contains("10 changes in 1 transactions") && summary.contains(" in "),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("changes/s"), "{}", out.stderr);
    assert!(out.stderr.contains("lag "), "{}", out.stderr);
}

#[test]
fn journald_lines_carry_syslog_priorities() {
    let db = Cluster::shared().new_db("ops");
    let slot = format!("{}_j", db.name);
    let out = crate::harness::run(
        &db.stream_args(&slot, "no_such_publication"),
        &[("JOURNAL_STREAM", "8:1234")],
        TIMEOUT,
    );
    assert_eq!(out.code, Some(2));
    // The final error comes from main, not the logger: one plain line.
    assert!(
        out.stderr.starts_with("pgstream: publication"),
        "{}",
        out.stderr
    );
    let db2 = Cluster::shared().new_db("ops");
    db2.sql("CREATE TABLE t (id int); CREATE PUBLICATION p FOR TABLE t");
    let slot2 = format!("{}_j2", db2.name);
    let out = crate::harness::run(
        &[
            db2.stream_args(&slot2, "p"),
            vec_of(&["--end-lsn", "now", "-v"]),
        ]
        .concat(),
        &[("JOURNAL_STREAM", "8:1234")],
        TIMEOUT,
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stderr.lines().any(|l| l.starts_with("<6>created slot")),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("pgstream: info"), "{}", out.stderr);
}

#[test]
fn example_unit_passes_systemd_analyze_verify() {
    let Ok(out) = std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
    else {
        eprintln!("systemd-analyze is not installed: unit file not verified");
        return;
    };
    assert!(out.status.success());
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/pgstream.service"
    ))
    .unwrap();
    let unit = unit.replace(
        "/usr/local/bin/pgstream",
        crate::harness::pgstream_bin().to_str().unwrap(),
    );
    let dir = std::env::temp_dir().join(format!("pgstream-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("pgstream@orders.service");
    std::fs::write(&path, unit).unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {stderr}"
    );
}
