//! `--metrics-addr` (SPEC §10): `/metrics` that `promtool check metrics`
//! accepts, with values that agree with the server; `/healthz` that
//! follows the connection; a real Prometheus scraping pgstream; the alert
//! rules and the dashboard in docs/.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::harness::{parse_lsn, run, vec_of, wait_until, Cluster, Proc, TestDb, TIMEOUT};

/// The names SPEC §10 lists, each exposed exactly so.
const NAMES: &[&str] = &[
    "pgstream_events_total",
    "pgstream_transactions_total",
    "pgstream_received_lsn",
    "pgstream_written_lsn",
    "pgstream_acknowledged_lsn",
    "pgstream_server_wal_end_lsn",
    "pgstream_lag_bytes",
    "pgstream_replication_lag_seconds",
    "pgstream_reconnects_total",
    "pgstream_streaming",
    "pgstream_last_event_timestamp_seconds",
    "pgstream_sink_errors_total",
    "pgstream_build_info",
];

/// A GET over a fresh connection: the status code and the body.
pub(crate) fn get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(TIMEOUT)).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let code = head.split(' ').nth(1)?.parse().ok()?;
    Some((code, body.to_string()))
}

/// pgstream with `--metrics-addr 127.0.0.1:0`, and the address it took,
/// once `/healthz` says it streams (its slot exists from then on).
pub(crate) fn spawn_metered(mut args: Vec<String>) -> (Proc, String) {
    args.extend(vec_of(&["--metrics-addr", "127.0.0.1:0", "-v"]));
    let mut p = Proc::spawn(&args, &[]);
    let stderr = p.wait_stderr("/metrics and health", TIMEOUT);
    let addr = stderr
        .split("serving metrics on http://")
        .nth(1)
        .and_then(|rest| rest.split("/metrics").next())
        .unwrap_or_else(|| panic!("no address in {stderr}"))
        .to_string();
    wait_until("healthz 200", TIMEOUT, || {
        get(&addr, "/healthz").filter(|(code, _)| *code == 200)
    });
    (p, addr)
}

/// A sample's value from a scrape, by its name with labels.
pub(crate) fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

pub(crate) fn scrape(addr: &str) -> String {
    let (code, body) = get(addr, "/metrics").expect("a response");
    assert_eq!(code, 200, "{body}");
    body
}

fn setup(db: &TestDb) {
    db.sql(
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         CREATE PUBLICATION p FOR TABLE t;",
    );
}

/// `promtool check metrics` on `text`: its findings (none when clean).
fn promtool_findings(text: &str) -> String {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (apt-get install prometheus; make deps installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let findings = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() && findings.is_empty() {
        return format!("promtool failed: {}", out.status);
    }
    findings
}

#[test]
fn scrape_is_clean_and_agrees_with_the_server() {
    let db = Cluster::shared().new_db("metrics_values");
    setup(&db);
    let slot = format!("{}_s", db.name);
    // A password in the conninfo: it must not reach any metric.
    let mut args = vec_of(&[
        "-d",
        &format!("{} password=hunter2-metrics", db.conninfo()),
        "--slot",
        &slot,
        "--publication",
        "p",
    ]);
    args.extend(vec_of(&["--include-tx"]));
    let (mut p, addr) = spawn_metered(args);
    db.insert_each(1..=3);
    db.sql_sync("UPDATE t SET v = 'changed' WHERE id = 2; DELETE FROM t WHERE id = 3;");
    // 5 transactions: 5 begins, 5 commits, 3 inserts, 1 update, 1 delete.
    p.wait_lines(15, TIMEOUT);
    let confirmed = db.wait_confirmed(&slot, &db.current_wal_lsn(), TIMEOUT);

    let text = wait_until("the acknowledged position in the scrape", TIMEOUT, || {
        let text = scrape(&addr);
        let acked = sample(&text, "pgstream_acknowledged_lsn")? as u64;
        (acked == parse_lsn(&db.confirmed_flush_lsn(&slot)?)).then_some(text)
    });
    assert!(parse_lsn(&confirmed) > 0);
    for (series, want) in [
        ("pgstream_events_total{op=\"insert\"}", 3.0),
        ("pgstream_events_total{op=\"update\"}", 1.0),
        ("pgstream_events_total{op=\"delete\"}", 1.0),
        ("pgstream_events_total{op=\"begin\"}", 5.0),
        ("pgstream_events_total{op=\"commit\"}", 5.0),
        ("pgstream_events_total{op=\"truncate\"}", 0.0),
        ("pgstream_transactions_total", 5.0),
        ("pgstream_streaming", 1.0),
        ("pgstream_reconnects_total", 0.0),
        ("pgstream_sink_errors_total", 0.0),
    ] {
        assert_eq!(sample(&text, series), Some(want), "{series} in\n{text}");
    }
    let acked = sample(&text, "pgstream_acknowledged_lsn").unwrap();
    let written = sample(&text, "pgstream_written_lsn").unwrap();
    let received = sample(&text, "pgstream_received_lsn").unwrap();
    let wal_end = sample(&text, "pgstream_server_wal_end_lsn").unwrap();
    assert!(
        written >= acked && received >= acked && wal_end >= acked,
        "{text}"
    );
    assert_eq!(
        sample(&text, "pgstream_lag_bytes"),
        Some(wal_end - acked),
        "{text}"
    );
    // The last event's commit time, from the server's clock: now-ish.
    let commit_ts: f64 = db.sql("SELECT extract(epoch FROM now())").parse().unwrap();
    let last = sample(&text, "pgstream_last_event_timestamp_seconds").unwrap();
    assert!(last > 0.0 && last <= commit_ts, "{last} vs {commit_ts}");
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        sample(
            &text,
            &format!("pgstream_build_info{{version=\"{version}\"}}")
        ),
        Some(1.0)
    );
    for name in NAMES {
        assert!(
            text.contains(&format!("# TYPE {name} ")),
            "{name} missing:\n{text}"
        );
    }
    assert!(!text.contains("hunter2"), "{text}");
    assert_eq!(promtool_findings(&text), "", "{text}");
    assert_eq!(get(&addr, "/nope").map(|r| r.0), Some(404));

    p.signal("TERM");
    assert_eq!(p.wait_exit(TIMEOUT).code, Some(0));
}

#[test]
fn a_port_in_use_exits_2() {
    let db = Cluster::shared().new_db("metrics_in_use");
    setup(&db);
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let mut args = db.stream_args(&format!("{}_s", db.name), "p");
    args.extend(vec_of(&["--metrics-addr", &addr]));
    let out = run(&args, &[], TIMEOUT);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    let line = out.stderr.trim();
    assert!(
        !line.contains('\n') && line.contains("--metrics-addr") && line.contains(&addr),
        "{line}"
    );
    assert!(!db.slot_exists(&format!("{}_s", db.name)), "it connected");
}

#[test]
fn healthz_follows_the_server_down_and_up() {
    let cluster = Cluster::start(&[]);
    let db = cluster.new_db("metrics_health");
    setup(&db);
    let (mut p, addr) = spawn_metered(db.stream_args(&format!("{}_s", db.name), "p"));
    let healthz = |want: u16| {
        wait_until(&format!("healthz {want}"), TIMEOUT, || {
            get(&addr, "/healthz").filter(|(code, _)| *code == want)
        })
        .1
    };
    assert_eq!(get(&addr, "/healthz").unwrap().1, "streaming\n");

    cluster.stop("fast");
    let reason = healthz(503);
    assert_eq!(reason.lines().count(), 1, "{reason:?}");
    assert!(
        reason.starts_with("backoff: ") || reason == "connecting\n",
        "{reason:?}"
    );
    assert_eq!(sample(&scrape(&addr), "pgstream_streaming"), Some(0.0));

    cluster.start_again();
    assert_eq!(healthz(200), "streaming\n");
    let text = scrape(&addr);
    assert!(
        sample(&text, "pgstream_reconnects_total").unwrap() >= 1.0,
        "{text}"
    );
    assert_eq!(sample(&text, "pgstream_streaming"), Some(1.0));

    p.signal("TERM");
    assert_eq!(p.wait_exit(TIMEOUT).code, Some(0));
}

/// A directory removed when the test ends.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("pgstream-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn a_real_prometheus_scrapes_the_event_counts() {
    let db = Cluster::shared().new_db("metrics_prom");
    setup(&db);
    let (mut p, addr) = spawn_metered(db.stream_args(&format!("{}_s", db.name), "p"));
    db.insert_each(1..=4);
    p.wait_lines(4, TIMEOUT);

    let dir = Scratch::new("prometheus");
    let config = dir.0.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: pgstream\n    static_configs:\n      - targets: ['{addr}']\n"
        ),
    )
    .unwrap();
    let web = format!("127.0.0.1:{}", free_port());
    let mut cmd = Command::new("prometheus");
    cmd.arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.0.join("data").display()
        ))
        .arg(format!("--web.listen-address={web}"));
    let _prometheus = Proc::from_command(cmd);
    let query = "/api/v1/query?query=pgstream_events_total%7Bop%3D%22insert%22%7D";
    let answer = wait_until("Prometheus to have scraped 4 inserts", TIMEOUT, || {
        let (code, body) = get(&web, query)?;
        let v: Value = serde_json::from_str(&body).ok()?;
        let value = v["data"]["result"][0]["value"][1].as_str()?.to_string();
        (code == 200 && value == "4").then_some(v)
    });
    assert_eq!(answer["data"]["result"][0]["metric"]["job"], "pgstream");
    p.signal("TERM");
    assert_eq!(p.wait_exit(TIMEOUT).code, Some(0));
}

fn docs(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs")
        .join(file)
}

#[test]
fn the_alert_rules_pass_promtool() {
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(docs("prometheus-rules.yml"))
        .output()
        .expect("promtool (apt-get install prometheus)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("SUCCESS: 4 rules found"), "{text}");
}

/// Every pgstream metric the rules and the dashboard query is one
/// pgstream exposes.
#[test]
fn the_rules_and_the_dashboard_use_real_metrics() {
    let rules = std::fs::read_to_string(docs("prometheus-rules.yml")).unwrap();
    let dashboard = std::fs::read_to_string(docs("grafana-dashboard.json")).unwrap();
    let parsed: Value = serde_json::from_str(&dashboard).expect("valid JSON");
    assert!(parsed["panels"].as_array().is_some_and(|p| !p.is_empty()));
    for text in [&rules, &dashboard] {
        let used: Vec<&str> = text
            .match_indices("pgstream_")
            .map(|(i, _)| {
                let rest = &text[i..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                &rest[..end]
            })
            .collect();
        assert!(!used.is_empty());
        for name in used {
            assert!(NAMES.contains(&name), "{name} is not a pgstream metric");
        }
    }
}
