//! Running as a service: the systemd notification protocol, progress lines
//! on stderr, journald log prefixes.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::harness::{command, vec_of, Cluster, Proc, TIMEOUT};

/// Collects datagrams until `until` is seen (or the timeout passes).
fn collect(sock: &UnixDatagram, until: &str) -> Vec<String> {
    collect_until(sock, |msg| msg.lines().any(|l| l == until))
}

/// Collects datagrams until `done` holds for one (or the timeout passes).
fn collect_until(sock: &UnixDatagram, mut done: impl FnMut(&str) -> bool) -> Vec<String> {
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + TIMEOUT;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            let last = done(&msg);
            got.push(msg);
            if last {
                break;
            }
        }
    }
    got
}

/// A bound `NOTIFY_SOCKET` in a directory of its own (removed by the caller).
fn notify_socket(name: &str) -> (PathBuf, PathBuf, UnixDatagram) {
    let dir = std::env::temp_dir().join(format!("pgstream-notify-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("notify");
    let sock = UnixDatagram::bind(&path).unwrap();
    (dir, path, sock)
}

#[test]
fn systemd_ready_watchdog_status_stopping_in_order() {
    let db = Cluster::shared().new_db("ops");
    db.sql("CREATE TABLE t (id int PRIMARY KEY); CREATE PUBLICATION p FOR TABLE t");
    let (dir, path, sock) = notify_socket(&db.name);
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

/// A child killed when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The microseconds of an `EXTEND_TIMEOUT_USEC=` line, if `msg` has one.
fn extension(msg: &str) -> Option<u64> {
    msg.lines()
        .find_map(|l| l.strip_prefix("EXTEND_TIMEOUT_USEC="))
        .map(|v| v.parse().expect("EXTEND_TIMEOUT_USEC is a number"))
}

/// Issue "never a silent gap", item 9: the start timeout must not kill a
/// long --snapshot. Its stdout is held unread, so the copy stalls on the
/// writer: the extensions go on all the same, with progress, before READY=1.
#[test]
fn systemd_start_timeout_is_extended_while_a_snapshot_copies() {
    let db = Cluster::shared().new_db("ops");
    let rows = 100_000;
    db.sql(&format!(
        "CREATE TABLE big (id int PRIMARY KEY, v text); \
         INSERT INTO big SELECT i, md5(i::text) FROM generate_series(1, {rows}) i; \
         CREATE PUBLICATION p FOR TABLE big"
    ));
    let (dir, path, sock) = notify_socket(&db.name);
    let slot = format!("{}_sx", db.name);
    let mut args = db.stream_args(&slot, "p");
    args.push("--snapshot".into());
    let mut cmd = command(&args, &[("NOTIFY_SOCKET", path.to_str().unwrap())]);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = Killed(cmd.spawn().expect("spawn pgstream"));
    let stdout = child.0.stdout.take().unwrap();
    let mut stderr = child.0.stderr.take().unwrap();
    let stderr = thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });

    // Three extensions: the start, the start of the copy, then one from the
    // periodic progress while the unread stdout holds the copy up.
    let mut extensions = 0;
    let held = collect_until(&sock, |msg| {
        extensions += usize::from(extension(msg).is_some());
        extensions == 3 || msg.contains("READY=1")
    });
    assert_eq!(
        extensions, 3,
        "three EXTEND_TIMEOUT_USEC= while held: {held:?}"
    );
    assert!(!held.iter().any(|m| m.contains("READY=1")), "{held:?}");
    for msg in &held {
        let us = extension(msg).unwrap_or_else(|| panic!("only extensions: {held:?}"));
        assert!(
            us >= 10_000_000,
            "an extension reaching past the next one: {msg}"
        );
        assert!(msg.contains("\nSTATUS=snapshot: "), "{msg}");
    }
    let progress = held[2].rsplit("STATUS=").next().unwrap();
    assert!(progress.starts_with("snapshot: 0/1 tables, "), "{held:?}");
    let copied: u64 = progress["snapshot: 0/1 tables, ".len()..]
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("rows in {progress:?}"));
    assert!(copied > 0 && copied < rows, "rows so far: {progress}");

    // Reading the output lets the snapshot finish; then READY=1.
    let reader = thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .filter(|l| l.starts_with(r#"{"op":"read""#))
            .count()
    });
    let rest = collect(&sock, "READY=1");
    assert!(
        rest.last().is_some_and(|m| m.contains("READY=1")),
        "READY=1 once the snapshot is done: {rest:?}"
    );
    let pid = child.0.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-s", "TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let read = reader.join().unwrap();
    let status = child.0.wait().unwrap();
    let stderr = stderr.join().unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_eq!(read, rows as usize, "every row once: {stderr}");
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
