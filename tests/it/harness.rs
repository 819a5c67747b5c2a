//! Test harness: a real PostgreSQL for the integration tests, and a runner
//! for the `pgstream` binary under test.
//!
//! # Clusters
//!
//! `cargo test` runs every test of this binary in one process, on parallel
//! threads. [`Cluster::shared`] starts one throwaway cluster per process (on
//! first use) and every test takes its own database from it with
//! [`Cluster::new_db`]. Tests that stop or restart the server start a
//! dedicated cluster with [`Cluster::start`]; dropping it stops the server and
//! removes its directory.
//!
//! No cluster outlives the test process, even after a panic or `kill -9`: each
//! one has a watchdog shell that blocks reading a pipe whose only writer is
//! the test process. When the pipe closes (drop, exit or death), the watchdog
//! runs `pg_ctl stop -m immediate` and removes the directory.
//! `PGSTREAM_TEST_KEEP=1` keeps the directories (servers are still stopped);
//! `PGSTREAM_TEST_SERVER_LOGS=DIR` keeps only each cluster's server log, in
//! DIR (`make test-matrix` does that).
//!
//! The server runs with unusual session defaults (`TimeZone`, `DateStyle`,
//! `IntervalStyle`, `bytea_output`, `extra_float_digits`) that pgstream must
//! override, and a low `wal_sender_timeout` (5s) so that a client that stops
//! sending status updates is noticed quickly.
//!
//! # Binaries
//!
//! `PGSTREAM_TEST_PGBIN` if set, else `pg_config --bindir` (when it holds
//! the server), else the highest `/usr/lib/postgresql/*/bin`. As root,
//! `initdb`/`pg_ctl` run as the `postgres` OS user. Client tools (`psql`,
//! `pg_isready`, `pg_recvlogical`) come from that directory when it has them,
//! else from the machine's PostgreSQL ([`client_bin`]): the server-only
//! packages of `make test-matrix` (scripts/fetch-pg.sh) have none, and a
//! client from 15 talks to any server from 10 on.
//!
//! # Version matrix
//!
//! `make test-matrix` runs this binary once per PostgreSQL major with
//! `PGSTREAM_TEST_PGBIN` pointing at that version and `PGSTREAM_TEST_MATRIX=1`
//! ([`matrix_mode`]). Tests assert each version's documented behaviour
//! (docs/compatibility.md) using [`Cluster::major_version`]; only what a
//! version's server cannot have at all is skipped, and only in matrix mode
//! ([`matrix_skip`]): wal2json, which the matrix servers do not ship. Outside
//! the matrix a missing wal2json still fails its tests.
//!
//! # Processes
//!
//! [`Proc`] runs `pgstream` (or any command) with stdout lines arriving on a
//! channel and stderr captured; every wait has a timeout and polls, none
//! sleeps. The child's environment is scrubbed of `PG*`, `PGSTREAM_*`,
//! `RUST_LOG` and systemd variables, and `HOME` points at an empty directory,
//! so nothing from the developer's shell (or `~/.pgpass`) leaks in.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The bootstrap superuser of every test cluster (trust auth, no password).
pub const SUPERUSER: &str = "postgres";
/// LOGIN REPLICATION role whose password is stored as md5 and checked with `md5`.
pub const MD5_USER: &str = "pw_md5";
pub const MD5_PASSWORD: &str = "md5 secret";
/// LOGIN REPLICATION role stored as SCRAM, checked with `scram-sha-256`.
pub const SCRAM_USER: &str = "pw_scram";
pub const SCRAM_PASSWORD: &str = "scram secret";
/// LOGIN REPLICATION role stored as SCRAM, checked with `password` (cleartext).
pub const CLEAR_USER: &str = "pw_clear";
pub const CLEAR_PASSWORD: &str = "clear secret";
/// LOGIN role without REPLICATION (trust auth).
pub const NOREPL_USER: &str = "norepl";

/// A generous default for waits in tests.
pub const TIMEOUT: Duration = Duration::from_secs(30);
/// Upper bound for one harness SQL call (psql is killed after it).
const SQL_TIMEOUT: Duration = Duration::from_secs(120);
/// application_name of the harness's own psql sessions, so that tests can
/// tell them from pgstream's in pg_stat_activity.
pub const HARNESS_APPNAME: &str = "pgstream-it-harness";

// ---------------------------------------------------------------------------
// Environment discovery
// ---------------------------------------------------------------------------

/// What the harness found about this machine, once per process.
struct HostEnv {
    root: bool,
    bin_dir: PathBuf,
    /// `postgres --version` output, e.g. "postgres (PostgreSQL) 15.18 ...".
    version: String,
    runuser: Option<PathBuf>,
}

fn host() -> &'static HostEnv {
    static HOST: OnceLock<HostEnv> = OnceLock::new();
    HOST.get_or_init(|| {
        let root = Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false);
        let bin_dir = find_bin_dir();
        let version = Command::new(bin_dir.join("postgres"))
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|e| panic!("cannot run {}/postgres: {e}", bin_dir.display()));
        let runuser = find_in_path("runuser");
        if root {
            let ok = Command::new("id")
                .args(["-u", "postgres"])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            assert!(
                ok,
                "running as root but there is no `postgres` OS user to run the server as"
            );
            assert!(
                runuser.is_some() || find_in_path("su").is_some(),
                "running as root but neither runuser nor su is available"
            );
        }
        // Written straight to stderr: libtest captures eprintln! per test.
        let _ = writeln!(
            std::io::stderr(),
            "pgstream-it: {version} from {} ({})",
            bin_dir.display(),
            if root {
                "as OS user postgres"
            } else {
                "as the current user"
            }
        );
        HostEnv {
            root,
            bin_dir,
            version,
            runuser,
        }
    })
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(
            ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
                .iter()
                .map(PathBuf::from),
        )
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Whether this run is one version of `make test-matrix`
/// (`PGSTREAM_TEST_MATRIX=1`).
pub fn matrix_mode() -> bool {
    std::env::var_os("PGSTREAM_TEST_MATRIX").is_some_and(|v| !v.is_empty() && v != "0")
}

/// In matrix mode, reports that the calling test skips `what` on this
/// server and returns true (the test then returns early); outside it,
/// returns false, and the test goes on (and fails if it cannot).
/// `make test-matrix` counts these lines in its summary.
pub fn matrix_skip(what: &str) -> bool {
    matrix_mode() && version_skip(what)
}

/// The major version of the server binaries under test (10, …, 18), from
/// `postgres --version`; known without starting a cluster.
pub fn server_major() -> u32 {
    let v = &host().version;
    v.split(|c: char| !c.is_ascii_digit())
        .find(|s| !s.is_empty())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no major version in {v:?}"))
}

/// Reports that the calling test skips `what`, which the server under test
/// cannot do (e.g. invalidating a slot before 13), and returns true. For
/// version limits only: on the machine's server (`make test`) nothing is
/// skipped. `make test-matrix` counts these lines in its summary.
pub fn version_skip(what: &str) -> bool {
    let test = thread::current().name().unwrap_or("?").to_string();
    // Straight to stderr: libtest captures eprintln! per test.
    let _ = writeln!(
        std::io::stderr(),
        "pgstream-it: SKIPPED {test}: {what} ({})",
        host().version
    );
    true
}

/// The tansu binary (a Kafka-protocol broker) for the Kafka sink tests:
/// `PGSTREAM_TEST_TANSU`, which `make test-kafka` sets from
/// `scripts/fetch-tansu.sh`. None when unset: tansu is a 20-minute build,
/// so `make test` does without it.
pub fn tansu_bin() -> Option<PathBuf> {
    let bin = std::env::var_os("PGSTREAM_TEST_TANSU").filter(|v| !v.is_empty())?;
    let bin = PathBuf::from(bin);
    assert!(
        bin.is_file(),
        "PGSTREAM_TEST_TANSU={} is not a file",
        bin.display()
    );
    Some(bin)
}

/// Without [`tansu_bin`], reports that the calling Kafka test skips and
/// returns true (the test then returns early), as `make test` runs.
pub fn kafka_skip() -> bool {
    if tansu_bin().is_some() {
        return false;
    }
    let test = thread::current().name().unwrap_or("?").to_string();
    // Straight to stderr: libtest captures eprintln! per test.
    let _ = writeln!(
        std::io::stderr(),
        "pgstream-it: SKIPPED {test}: no Kafka broker (PGSTREAM_TEST_TANSU unset; make test-kafka sets it)"
    );
    true
}

/// Server binaries of PostgreSQL `min_major` or newer, for the tests of
/// what older servers lack (decoding on a standby: 16, failover slots: 17):
/// the machine's when new enough, else `PGSTREAM_TEST_HA_PGBIN` (`make test`
/// sets it from `scripts/fetch-pg.sh`). In `make test-matrix` a version too
/// old skips (None); elsewhere a missing one fails, saying how to get it.
pub fn ha_bin(min_major: u32, what: &str) -> Option<PathBuf> {
    if server_major() >= min_major {
        return Some(host().bin_dir.clone());
    }
    if matrix_mode() {
        version_skip(&format!("{what} needs PostgreSQL {min_major}+"));
        return None;
    }
    let dir = std::env::var_os("PGSTREAM_TEST_HA_PGBIN").map(PathBuf::from);
    match dir {
        Some(dir) if has_server(&dir) => Some(dir),
        _ => panic!(
            "{what} needs PostgreSQL {min_major}+ and the machine has {}: run `make test` \
             (it fetches one with scripts/fetch-pg.sh) or set PGSTREAM_TEST_HA_PGBIN to its bin \
             directory",
            host().version
        ),
    }
}

/// A PostgreSQL client program (`psql`, `pg_isready`, `pg_recvlogical`, …):
/// from the server's bin directory when it has it, else from the machine's
/// PostgreSQL (`pg_config --bindir`, the highest `/usr/lib/postgresql/*/bin`),
/// else by name from `PATH`.
pub fn client_bin(name: &str) -> PathBuf {
    let own = host().bin_dir.join(name);
    if own.is_file() {
        return own;
    }
    static MACHINE: OnceLock<Option<PathBuf>> = OnceLock::new();
    let machine = MACHINE.get_or_init(|| {
        let mut dirs = Vec::new();
        if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
            if out.status.success() {
                dirs.push(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
            }
        }
        let mut versioned: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let major = e.file_name().to_string_lossy().parse::<u32>().ok()?;
                Some((major, e.path().join("bin")))
            })
            .collect();
        versioned.sort();
        dirs.extend(versioned.into_iter().rev().map(|(_, d)| d));
        dirs.into_iter().find(|d| d.join("psql").is_file())
    });
    match machine {
        Some(dir) if dir.join(name).is_file() => dir.join(name),
        _ => PathBuf::from(name),
    }
}

fn has_server(dir: &Path) -> bool {
    dir.join("initdb").is_file() && dir.join("pg_ctl").is_file() && dir.join("postgres").is_file()
}

fn find_bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PGSTREAM_TEST_PGBIN") {
        let dir = PathBuf::from(dir);
        assert!(
            has_server(&dir),
            "PGSTREAM_TEST_PGBIN={} holds no initdb/pg_ctl/postgres",
            dir.display()
        );
        return dir;
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && has_server(&dir) {
            return dir;
        }
    }
    let mut best: Option<(u32, PathBuf)> = None;
    if let Ok(entries) = fs::read_dir("/usr/lib/postgresql") {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(major) = name.parse::<u32>() else {
                continue;
            };
            let dir = entry.path().join("bin");
            if has_server(&dir) && !matches!(best, Some((m, _)) if m >= major) {
                best = Some((major, dir));
            }
        }
    }
    match best {
        Some((_, dir)) => dir,
        None => panic!(
            "no PostgreSQL server binaries found: set PGSTREAM_TEST_PGBIN, or run `make test` \
             (it installs postgresql when it can)"
        ),
    }
}

/// Removes from `cmd`'s environment everything of the developer's that could
/// change how PostgreSQL tools or pgstream behave.
fn scrub_env(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        if k.starts_with("PG")
            || k == "RUST_LOG"
            || k == "NOTIFY_SOCKET"
            || k.starts_with("WATCHDOG_")
            || k.starts_with("LISTEN_")
        {
            cmd.env_remove(&key);
        }
    }
}

/// A command that runs `program` as the `postgres` OS user when we are root.
fn pg_user_command(program: &Path) -> Command {
    let h = host();
    let mut cmd = if !h.root {
        Command::new(program)
    } else if let Some(runuser) = &h.runuser {
        let mut c = Command::new(runuser);
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        let mut c = Command::new("su");
        c.args(["postgres", "-s", "/bin/sh", "-c", r#"exec "$0" "$@""#])
            .arg(program);
        c
    };
    scrub_env(&mut cmd);
    cmd
}

fn chown_postgres(path: &Path) {
    if host().root {
        let st = Command::new("chown")
            .arg("postgres:postgres")
            .arg(path)
            .status();
        assert!(
            matches!(st, Ok(s) if s.success()),
            "chown postgres {} failed",
            path.display()
        );
    }
}

// ---------------------------------------------------------------------------
// Running short-lived commands with a timeout
// ---------------------------------------------------------------------------

struct CmdOutput {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

fn spawn_reader<R: Read + Send + 'static>(mut r: R) -> Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        let _ = tx.send(buf);
    });
    rx
}

/// Runs `cmd` to completion with `stdin` fed in, killing it after `timeout`.
fn run_cmd(mut cmd: Command, stdin: Option<&str>, timeout: Duration) -> Result<CmdOutput, String> {
    let desc = format!("{cmd:?}");
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("cannot run {desc}: {e}"))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let input = input.to_owned();
        thread::spawn(move || {
            let _ = pipe.write_all(input.as_bytes());
        });
    }
    let out_rx = spawn_reader(child.stdout.take().expect("piped stdout"));
    let err_rx = spawn_reader(child.stderr.take().expect("piped stderr"));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
            break st;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let err = err_rx
                .recv_timeout(Duration::from_secs(1))
                .unwrap_or_default();
            return Err(format!(
                "{desc} timed out after {timeout:?}; stderr: {}",
                String::from_utf8_lossy(&err)
            ));
        }
        thread::sleep(Duration::from_millis(5));
    };
    // A grandchild might hold the pipes open; do not wait for it forever.
    let grace = Duration::from_secs(5);
    let stdout = out_rx.recv_timeout(grace).unwrap_or_default();
    let stderr = err_rx.recv_timeout(grace).unwrap_or_default();
    Ok(CmdOutput {
        status,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    })
}

// ---------------------------------------------------------------------------
// Watchdog: stops a cluster (or kills processes) when the test process ends
// ---------------------------------------------------------------------------

/// A detached shell blocked on `read` from a pipe that only we write to. When
/// the write end closes (drop, exit, crash, `kill -9`), it runs its cleanup.
struct Watchdog {
    child: Child,
    pipe: Option<ChildStdin>,
}

impl Watchdog {
    /// `script` runs after EOF on stdin, with `args` as `$1…`.
    fn spawn(script: &str, args: &[OsString], envs: &[(&str, OsString)]) -> Watchdog {
        let full = format!("trap '' HUP INT\nread _line\n{script}\n");
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(full)
            .arg("pgstream-it-watchdog")
            .args(args);
        scrub_env(&mut cmd);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        // Own process group: a Ctrl-C in the terminal must not kill it
        // before it has cleaned up.
        cmd.process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().expect("spawn watchdog shell");
        let pipe = child.stdin.take();
        Watchdog { child, pipe }
    }

    /// Triggers the cleanup now and waits for it.
    fn finish(mut self) {
        drop(self.pipe.take());
        let deadline = Instant::now() + Duration::from_secs(90);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(10));
        }
        eprintln!(
            "pgstream-it: watchdog {} did not finish cleaning up",
            self.child.id()
        );
    }
}

fn keep_dirs() -> bool {
    std::env::var_os("PGSTREAM_TEST_KEEP").is_some_and(|v| !v.is_empty() && v != "0")
}

fn unique_suffix() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{}-{}-{:06}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        nanos / 1000
    )
}

/// Kills leftover children spawned through [`Proc`] when the test process
/// ends, and owns the empty `HOME` given to them.
struct Reaper {
    dir: PathBuf,
    home: PathBuf,
    pids: Mutex<BTreeSet<u32>>,
    _watchdog: Watchdog,
}

fn reaper() -> &'static Reaper {
    static REAPER: OnceLock<Reaper> = OnceLock::new();
    REAPER.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("pgstream-it-procs-{}", unique_suffix()));
        let home = dir.join("home");
        fs::create_dir_all(&home).expect("create reaper dir");
        let script = r#"if [ -f "$1/pids" ]; then
  while read p; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null; done < "$1/pids"
fi
rm -rf -- "$1""#;
        let watchdog = Watchdog::spawn(script, &[dir.clone().into()], &[]);
        Reaper {
            dir,
            home,
            pids: Mutex::new(BTreeSet::new()),
            _watchdog: watchdog,
        }
    })
}

impl Reaper {
    fn update(&self, f: impl FnOnce(&mut BTreeSet<u32>)) {
        let mut pids = self.pids.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut pids);
        let body: String = pids.iter().map(|p| format!("{p}\n")).collect();
        let tmp = self.dir.join(format!("pids.{}", unique_suffix()));
        if fs::write(&tmp, body).is_ok() {
            let _ = fs::rename(&tmp, self.dir.join("pids"));
        }
    }
}

// ---------------------------------------------------------------------------
// Server: what is needed to talk to a running cluster
// ---------------------------------------------------------------------------

/// Connection details of a cluster; cheap to clone, does not own the cluster.
#[derive(Clone, Debug)]
pub struct Server {
    pub port: u16,
    pub socket_dir: PathBuf,
    pub bin_dir: PathBuf,
}

impl Server {
    /// `-h socket_dir -p port -d db -U user`.
    pub fn conn_args(&self, db: &str, user: &str) -> Vec<String> {
        let host = self.socket_dir.display().to_string();
        vec_of(&[
            "-h",
            &host,
            "-p",
            &self.port.to_string(),
            "-d",
            db,
            "-U",
            user,
        ])
    }

    /// `-h 127.0.0.1 -p port -d db -U user`.
    pub fn tcp_conn_args(&self, db: &str, user: &str) -> Vec<String> {
        vec_of(&[
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-d",
            db,
            "-U",
            user,
        ])
    }

    /// Runs `sql` (one or more statements, psql meta-commands allowed) with
    /// psql using `conn` (`-h/-p/-d/-U` or `-d conninfo`), `env` on top of a
    /// scrubbed environment. Returns trimmed stdout (unaligned, tuples only).
    pub fn psql(&self, conn: &[String], env: &[(&str, &str)], sql: &str) -> Result<String, String> {
        let mut cmd = Command::new(client_bin("psql"));
        scrub_env(&mut cmd);
        cmd.env("PGAPPNAME", HARNESS_APPNAME)
            .env("PGCONNECT_TIMEOUT", "10")
            .env("PGPASSFILE", "/nonexistent/pgstream-it/pgpass");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.args(["-X", "-q", "-A", "-t", "-w", "-v", "ON_ERROR_STOP=1"])
            .args(conn)
            .args(["-f", "-"]);
        let out = run_cmd(cmd, Some(sql), SQL_TIMEOUT)?;
        if out.status.success() {
            Ok(out.stdout.trim().to_string())
        } else {
            Err(format!(
                "psql failed ({}): {}",
                out.status,
                out.stderr.trim()
            ))
        }
    }

    pub fn try_sql(&self, db: &str, sql: &str) -> Result<String, String> {
        self.psql(&self.conn_args(db, SUPERUSER), &[], sql)
    }

    pub fn sql(&self, db: &str, sql: &str) -> String {
        self.try_sql(db, sql)
            .unwrap_or_else(|e| panic!("SQL failed in database {db}: {e}\n--- SQL:\n{sql}"))
    }

    pub fn is_ready(&self) -> bool {
        let mut cmd = Command::new(client_bin("pg_isready"));
        scrub_env(&mut cmd);
        cmd.arg("-q")
            .args(self.conn_args("postgres", SUPERUSER))
            .args(["-t", "2"]);
        matches!(run_cmd(cmd, None, Duration::from_secs(10)), Ok(o) if o.status.success())
    }
}

pub fn vec_of(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Quotes a SQL string literal.
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Quotes a SQL identifier.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Parses PostgreSQL's `X/XXXXXXXX` LSN form.
pub fn parse_lsn(s: &str) -> u64 {
    let (hi, lo) = s
        .trim()
        .split_once('/')
        .unwrap_or_else(|| panic!("not an LSN: {s:?}"));
    let hi = u64::from_str_radix(hi, 16).unwrap_or_else(|_| panic!("not an LSN: {s:?}"));
    let lo = u64::from_str_radix(lo, 16).unwrap_or_else(|_| panic!("not an LSN: {s:?}"));
    (hi << 32) | lo
}

/// Formats an LSN as PostgreSQL does.
pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

// ---------------------------------------------------------------------------
// Cluster
// ---------------------------------------------------------------------------

/// A throwaway PostgreSQL cluster in a temp directory.
pub struct Cluster {
    pub port: u16,
    /// Unix socket directory (the cluster's base directory).
    pub socket_dir: PathBuf,
    pub data_dir: PathBuf,
    pub bin_dir: PathBuf,
    /// Server log (`pg_ctl -l`).
    pub log_file: PathBuf,
    /// Holds data_dir, log_file and the socket; removed when the cluster goes.
    pub base_dir: PathBuf,
    /// `postgres --version` output.
    pub version: String,
    shared: bool,
    server: Server,
    watchdog: Mutex<Option<Watchdog>>,
}

impl Cluster {
    /// The cluster shared by all tests of this process, started on first use.
    /// Never stop or restart it; take a database with [`Cluster::new_db`].
    pub fn shared() -> &'static Cluster {
        static SHARED: OnceLock<Result<Cluster, String>> = OnceLock::new();
        let res = SHARED.get_or_init(|| {
            std::panic::catch_unwind(|| Cluster::create(&host().bin_dir, &[], &[], true)).map_err(
                |e| {
                    e.downcast_ref::<String>()
                        .cloned()
                        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "unknown panic".into())
                },
            )
        });
        match res {
            Ok(c) => c,
            Err(e) => panic!("the shared test cluster failed to start: {e}"),
        }
    }

    /// A dedicated cluster (for tests that stop or restart the server), with
    /// `extra_conf` lines appended to postgresql.conf. Dropping it stops the
    /// server (immediate) and removes its directory.
    pub fn start(extra_conf: &[&str]) -> Cluster {
        Cluster::create(&host().bin_dir, extra_conf, &[], false)
    }

    /// As [`Cluster::start`], with the server binaries of `bin_dir` (e.g. a
    /// newer major from [`ha_bin`]) instead of the machine's.
    pub fn start_with_bin(bin_dir: &Path, extra_conf: &[&str]) -> Cluster {
        Cluster::create(bin_dir, extra_conf, &[], false)
    }

    /// As [`Cluster::start`], with `hba_lines` put first in pg_hba.conf
    /// (before the harness's password and trust lines).
    pub fn start_with_hba(extra_conf: &[&str], hba_lines: &[&str]) -> Cluster {
        Cluster::create(&host().bin_dir, extra_conf, hba_lines, false)
    }

    fn create(bin_dir: &Path, extra_conf: &[&str], hba_lines: &[&str], shared: bool) -> Cluster {
        let site = Site::new(bin_dir);
        let mut initdb = pg_user_command(&bin_dir.join("initdb"));
        initdb
            .current_dir(&site.base_dir)
            .arg("-D")
            .arg(&site.data_dir)
            .args([
                "-A",
                "trust",
                "-U",
                SUPERUSER,
                "--encoding=UTF8",
                "--locale=C",
                "-N",
            ]);
        let out = run_cmd(initdb, None, Duration::from_secs(180))
            .unwrap_or_else(|e| panic!("initdb: {e}"));
        assert!(
            out.status.success(),
            "initdb failed ({}):\n{}\n{}",
            out.status,
            out.stdout,
            out.stderr
        );
        write_conf(&site.data_dir, &site.base_dir, extra_conf, hba_lines);
        let cluster = site.launch(shared);
        cluster.create_roles();
        cluster
    }
}

/// A cluster's directory and watchdog, before its server first starts.
struct Site {
    bin_dir: PathBuf,
    base_dir: PathBuf,
    data_dir: PathBuf,
    log_file: PathBuf,
    watchdog: Watchdog,
}

impl Site {
    fn new(bin_dir: &Path) -> Site {
        let base_dir = make_base_dir();
        let data_dir = base_dir.join("data");
        let log_file = base_dir.join("server.log");
        let pg_ctl = bin_dir.join("pg_ctl");

        // The watchdog comes first so that even a failed set-up is cleaned up.
        let stop = pg_user_command(&pg_ctl);
        let mut stop_argv: Vec<OsString> = vec![stop.get_program().to_owned()];
        stop_argv.extend(stop.get_args().map(|a| a.to_owned()));
        stop_argv.extend([
            "-D".into(),
            data_dir.clone().into(),
            "stop".into(),
            "-m".into(),
            "immediate".into(),
        ]);
        stop_argv.extend(["-w".into(), "-t".into(), "60".into()]);
        // PGSTREAM_TEST_SERVER_LOGS (set by `make test-matrix`): a directory
        // that keeps each cluster's server log after the cluster is gone.
        let script = r#"dir=$1; shift
"$@" >/dev/null 2>&1
if [ -n "$PGSTREAM_IT_LOGS" ] && [ -f "$dir/server.log" ]; then
  mkdir -p "$PGSTREAM_IT_LOGS" && cp "$dir/server.log" "$PGSTREAM_IT_LOGS/${dir##*/}.log"
fi
[ -n "$PGSTREAM_IT_KEEP" ] || rm -rf -- "$dir""#;
        let mut args: Vec<OsString> = vec![base_dir.clone().into()];
        args.extend(stop_argv);
        let keep: OsString = if keep_dirs() { "1".into() } else { "".into() };
        let logs = std::env::var_os("PGSTREAM_TEST_SERVER_LOGS").unwrap_or_default();
        let watchdog = Watchdog::spawn(
            script,
            &args,
            &[("PGSTREAM_IT_KEEP", keep), ("PGSTREAM_IT_LOGS", logs)],
        );
        if keep_dirs() {
            let _ = writeln!(
                std::io::stderr(),
                "pgstream-it: keeping {}",
                base_dir.display()
            );
        }

        Site {
            bin_dir: bin_dir.to_path_buf(),
            base_dir,
            data_dir,
            log_file,
            watchdog,
        }
    }

    /// Starts the server on a free port (retrying when another process
    /// takes the port first) and waits until it accepts connections.
    fn launch(self, shared: bool) -> Cluster {
        let Site {
            bin_dir,
            base_dir,
            data_dir,
            log_file,
            watchdog,
        } = self;

        let server_for = |port| Server {
            port,
            socket_dir: base_dir.clone(),
            bin_dir: bin_dir.clone(),
        };
        let mut port = 0;
        for attempt in 1..=10 {
            port = free_port();
            let port_conf = data_dir.join("pgstream_port.conf");
            fs::write(&port_conf, format!("port = {port}\n")).expect("write port conf");
            chown_postgres(&port_conf);
            let log_len = fs::metadata(&log_file).map(|m| m.len()).unwrap_or(0);
            match pg_ctl_start(&bin_dir, &data_dir, &log_file, &base_dir) {
                Ok(()) => break,
                Err(e) => {
                    let log = read_lossy(&log_file);
                    let new_log = log.get(log_len as usize..).unwrap_or(&log);
                    if new_log.contains("Address already in use") && attempt < 10 {
                        continue;
                    }
                    panic!("pg_ctl start failed: {e}\n--- server log:\n{new_log}");
                }
            }
        }
        let server = server_for(port);
        wait_ready(&server, &log_file);

        let version = Command::new(bin_dir.join("postgres"))
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        let cluster = Cluster {
            port,
            socket_dir: base_dir.clone(),
            data_dir,
            bin_dir,
            log_file,
            base_dir,
            version,
            shared,
            server,
            watchdog: Mutex::new(Some(watchdog)),
        };
        let _ = writeln!(
            std::io::stderr(),
            "pgstream-it: {} cluster on port {} in {}",
            if shared { "shared" } else { "dedicated" },
            cluster.port,
            cluster.base_dir.display()
        );
        cluster
    }
}

impl Cluster {
    fn create_roles(&self) {
        let q = quote_literal;
        self.sql(
            "postgres",
            &format!(
                "SET password_encryption = 'md5';
                 CREATE ROLE {MD5_USER} LOGIN REPLICATION PASSWORD {};
                 SET password_encryption = 'scram-sha-256';
                 CREATE ROLE {SCRAM_USER} LOGIN REPLICATION PASSWORD {};
                 CREATE ROLE {CLEAR_USER} LOGIN REPLICATION PASSWORD {};
                 CREATE ROLE {NOREPL_USER} LOGIN;",
                q(MD5_PASSWORD),
                q(SCRAM_PASSWORD),
                q(CLEAR_PASSWORD)
            ),
        );
    }

    /// Connection details, detached from the cluster's lifetime.
    pub fn server(&self) -> &Server {
        &self.server
    }

    pub fn is_shared(&self) -> bool {
        self.shared
    }

    /// PostgreSQL major version (15, 16, …).
    pub fn major_version(&self) -> u32 {
        self.sql("postgres", "SHOW server_version_num")
            .parse::<u32>()
            .expect("server_version_num")
            / 10000
    }

    /// For a test (or part of one) that needs wal2json: true when it is
    /// installed. When it is not: false in `make test-matrix`, whose servers
    /// other than the machine's have none (the test skips, and says so);
    /// elsewhere a panic saying how to install it — `make test` never skips.
    pub fn wal2json_or_skip(&self) -> bool {
        if self.has_wal2json() {
            return true;
        }
        if matrix_skip("wal2json is not installed for this server") {
            return false;
        }
        let major = self.major_version();
        panic!(
            "the wal2json output plugin is not installed for the test server ({}): \
             install it with `apt-get install postgresql-{major}-wal2json` (as root; \
             `make deps` does it), then run the tests again",
            self.version
        );
    }

    /// Whether the wal2json output plugin is installed for this server.
    pub fn has_wal2json(&self) -> bool {
        let dir = self.sql(
            "postgres",
            "SELECT setting FROM pg_config WHERE name = 'PKGLIBDIR'",
        );
        Path::new(&dir).join("wal2json.so").is_file()
    }

    /// A new database with a unique name (`prefix`, or the test's name when
    /// `prefix` is empty, plus a counter and the pid). Dropped (with its
    /// slots) when the `TestDb` is dropped, unless the test panicked.
    pub fn new_db(&self, prefix: &str) -> TestDb {
        static N: AtomicUsize = AtomicUsize::new(0);
        let base = if prefix.is_empty() {
            thread::current().name().unwrap_or("test").to_string()
        } else {
            prefix.to_string()
        };
        let mut p: String = base
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        if p.len() > 36 {
            p = p[p.len() - 36..].to_string();
        }
        let p = p.trim_matches('_');
        let p = if p.starts_with(|c: char| c.is_ascii_alphabetic()) {
            p.to_string()
        } else {
            format!("t_{p}")
        };
        let name = format!(
            "{p}_{}_{}",
            N.fetch_add(1, Ordering::Relaxed),
            std::process::id()
        );
        let create = format!("CREATE DATABASE {}", quote_ident(&name));
        // CREATE DATABASE fails if someone else is connected to template1.
        let mut last = String::new();
        for _ in 0..50 {
            match self.try_sql("postgres", &create) {
                Ok(_) => {
                    return TestDb {
                        name,
                        server: self.server.clone(),
                    }
                }
                Err(e) if e.contains("is being accessed by other users") => {
                    last = e;
                    thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("{create}: {e}"),
            }
        }
        panic!("{create}: {last}");
    }

    pub fn sql(&self, db: &str, sql: &str) -> String {
        self.server.sql(db, sql)
    }

    pub fn try_sql(&self, db: &str, sql: &str) -> Result<String, String> {
        self.server.try_sql(db, sql)
    }

    fn assert_dedicated(&self, what: &str) {
        assert!(
            !self.shared,
            "{what} on the shared cluster: use Cluster::start(..) for a dedicated one"
        );
    }

    fn pg_ctl(&self, args: &[&str]) -> Result<(), String> {
        let mut cmd = pg_user_command(&self.bin_dir.join("pg_ctl"));
        cmd.current_dir(&self.base_dir)
            .arg("-D")
            .arg(&self.data_dir)
            .args(args);
        let out = run_cmd(cmd, None, Duration::from_secs(120))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "pg_ctl {args:?} failed ({}): {}{}",
                out.status, out.stdout, out.stderr
            ))
        }
    }

    /// `pg_ctl restart -m mode` (`fast`, `immediate`, `smart`), then waits
    /// until the server accepts connections.
    pub fn restart(&self, mode: &str) {
        self.assert_dedicated("restart");
        let log = self.log_file.display().to_string();
        self.pg_ctl(&["restart", "-m", mode, "-w", "-t", "60", "-l", &log])
            .unwrap_or_else(|e| panic!("{e}\n--- server log:\n{}", self.server_log()));
        wait_ready(&self.server, &self.log_file);
    }

    /// `pg_ctl stop -m mode`; waits until the server is down.
    pub fn stop(&self, mode: &str) {
        self.assert_dedicated("stop");
        self.pg_ctl(&["stop", "-m", mode, "-w", "-t", "60"])
            .unwrap_or_else(|e| panic!("{e}\n--- server log:\n{}", self.server_log()));
    }

    /// Starts a stopped cluster again on the same port.
    pub fn start_again(&self) {
        self.assert_dedicated("start_again");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let log_len = fs::metadata(&self.log_file).map(|m| m.len()).unwrap_or(0);
            match pg_ctl_start(
                &self.bin_dir,
                &self.data_dir,
                &self.log_file,
                &self.base_dir,
            ) {
                Ok(()) => break,
                Err(e) => {
                    let log = self.server_log();
                    let new_log = log.get(log_len as usize..).unwrap_or(&log).to_string();
                    if new_log.contains("Address already in use") && Instant::now() < deadline {
                        thread::sleep(Duration::from_millis(200));
                        continue;
                    }
                    panic!("{e}\n--- server log:\n{new_log}");
                }
            }
        }
        wait_ready(&self.server, &self.log_file);
    }

    /// Whether the postmaster is running (`pg_ctl status`).
    pub fn is_running(&self) -> bool {
        self.pg_ctl(&["status"]).is_ok()
    }

    /// The whole server log so far.
    pub fn server_log(&self) -> String {
        read_lossy(&self.log_file)
    }

    /// A hot standby (PostgreSQL 12+) of this (dedicated) cluster, as an operator without
    /// pg_basebackup makes one: a physical slot `name` on this server, a
    /// clean stop, a copy of the data directory (its slots left out, as
    /// pg_basebackup leaves them), `standby.signal`, and replication from
    /// this server through the slot with `hot_standby_feedback`. `extra_conf`
    /// goes into the standby's postgresql.conf (e.g. `sync_replication_slots
    /// = on`). Returns once this server is up again and the standby streams.
    pub fn make_standby(&self, name: &str, extra_conf: &[&str]) -> Cluster {
        self.assert_dedicated("make_standby");
        self.sql(
            "postgres",
            &format!(
                "SELECT pg_create_physical_replication_slot({}, true)",
                quote_literal(name)
            ),
        );
        self.stop("fast");
        let site = Site::new(&self.bin_dir);
        let mut cp = pg_user_command(Path::new("/bin/cp"));
        cp.arg("-a").arg(&self.data_dir).arg(&site.data_dir);
        let out = run_cmd(cp, None, Duration::from_secs(120)).expect("cp the data directory");
        assert!(out.status.success(), "cp -a failed: {}", out.stderr);
        let slots = site.data_dir.join("pg_replslot");
        for entry in fs::read_dir(&slots).expect("read pg_replslot").flatten() {
            fs::remove_dir_all(entry.path()).expect("remove a copied slot");
        }
        let socket = site.base_dir.display().to_string().replace('\'', "''");
        let mut conf = format!(
            "\n# --- standby of port {port} ---
unix_socket_directories = '{socket}'
primary_conninfo = 'host=127.0.0.1 port={port} user={SUPERUSER} dbname=postgres application_name={name}'
primary_slot_name = '{name}'
hot_standby_feedback = on
",
            port = self.port
        );
        for line in extra_conf {
            conf.push_str(line);
            conf.push('\n');
        }
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(site.data_dir.join("postgresql.conf"))
            .expect("open the standby's postgresql.conf");
        f.write_all(conf.as_bytes())
            .expect("write the standby's postgresql.conf");
        let signal = site.data_dir.join("standby.signal");
        fs::write(&signal, "").expect("write standby.signal");
        chown_postgres(&signal);
        self.start_again();
        let standby = site.launch(false);
        let streaming = format!(
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name = {} AND active",
            quote_literal(name)
        );
        wait_until(
            "the standby streams from its primary",
            Duration::from_secs(60),
            || (self.sql("postgres", &streaming) == "1").then_some(()),
        );
        standby
    }

    /// `pg_ctl promote` on a standby; returns once it accepts writes.
    pub fn promote(&self) {
        self.assert_dedicated("promote");
        self.pg_ctl(&["promote", "-w", "-t", "60"])
            .unwrap_or_else(|e| panic!("{e}\n--- server log:\n{}", self.server_log()));
        wait_until(
            "the promoted standby leaves recovery",
            Duration::from_secs(60),
            || (self.sql("postgres", "SELECT pg_is_in_recovery()") == "f").then_some(()),
        );
    }

    /// Blocks until this standby has replayed everything its primary had
    /// written when called (`primary`'s current WAL position).
    pub fn wait_replayed(&self, primary: &Cluster) {
        let target = primary.sql("postgres", "SELECT pg_current_wal_lsn()");
        let q = format!(
            "SELECT pg_last_wal_replay_lsn() >= {}::pg_lsn",
            quote_literal(&target)
        );
        wait_until(
            "the standby replays its primary's WAL",
            Duration::from_secs(60),
            || (self.sql("postgres", &q) == "t").then_some(()),
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let wd = self
            .watchdog
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(wd) = wd {
            wd.finish();
        }
    }
}

fn read_lossy(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// A fresh directory for one cluster, owned by the OS user running the server.
fn make_base_dir() -> PathBuf {
    let root = host().root;
    let mut candidates = vec![std::env::temp_dir()];
    if candidates[0] != Path::new("/tmp") {
        candidates.push(PathBuf::from("/tmp"));
    }
    for parent in candidates {
        let dir = parent.join(format!("pgstream-it-{}", unique_suffix()));
        // Unix socket paths are limited to 107 bytes.
        if dir.as_os_str().len() > 80 {
            continue;
        }
        if fs::create_dir(&dir).is_err() {
            continue;
        }
        if !root {
            return dir;
        }
        chown_postgres(&dir);
        // The postgres user must be able to reach it (TMPDIR may be private).
        let mut probe = pg_user_command(Path::new("/usr/bin/test"));
        probe.arg("-w").arg(&dir);
        if matches!(run_cmd(probe, None, Duration::from_secs(10)), Ok(o) if o.status.success()) {
            return dir;
        }
        let _ = fs::remove_dir_all(&dir);
    }
    panic!("cannot make a cluster directory usable by the server user under TMPDIR or /tmp");
}

fn write_conf(data_dir: &Path, socket_dir: &Path, extra_conf: &[&str], hba_lines: &[&str]) {
    let socket = socket_dir.display().to_string().replace('\'', "''");
    let mut conf = format!(
        "\n# --- pgstream test harness ---
listen_addresses = '127.0.0.1'
unix_socket_directories = '{socket}'
wal_level = logical
max_replication_slots = 64
max_wal_senders = 64
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 64MB
wal_sender_timeout = '5s'
# unusual session defaults that pgstream must override
TimeZone = 'Asia/Kolkata'
DateStyle = 'SQL, DMY'
IntervalStyle = 'postgres_verbose'
bytea_output = 'escape'
extra_float_digits = 0
# logging
logging_collector = off
log_min_messages = info
log_replication_commands = on
log_line_prefix = '%m [%p] %q%u@%d %a: '
include 'pgstream_port.conf'
"
    );
    for line in extra_conf {
        conf.push_str(line);
        conf.push('\n');
    }
    let path = data_dir.join("postgresql.conf");
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .expect("open postgresql.conf");
    f.write_all(conf.as_bytes()).expect("write postgresql.conf");

    let mut hba =
        String::from("# pgstream test harness: the test's lines, password roles, then trust\n");
    for line in hba_lines {
        hba.push_str(line);
        hba.push('\n');
    }
    for (user, method) in [
        (MD5_USER, "md5"),
        (SCRAM_USER, "scram-sha-256"),
        (CLEAR_USER, "password"),
    ] {
        for db in ["all", "replication"] {
            hba.push_str(&format!("local {db} {user} {method}\n"));
            hba.push_str(&format!("host {db} {user} 127.0.0.1/32 {method}\n"));
        }
    }
    hba.push_str(
        "local all all trust
local replication all trust
host all all 127.0.0.1/32 trust
host replication all 127.0.0.1/32 trust
",
    );
    fs::write(data_dir.join("pg_hba.conf"), hba).expect("write pg_hba.conf");
}

/// A 127.0.0.1 port nothing listens on (at the time of the call).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

fn pg_ctl_start(
    bin_dir: &Path,
    data_dir: &Path,
    log_file: &Path,
    base_dir: &Path,
) -> Result<(), String> {
    let mut cmd = pg_user_command(&bin_dir.join("pg_ctl"));
    cmd.current_dir(base_dir)
        .arg("-D")
        .arg(data_dir)
        .args(["start", "-w", "-t", "60", "-l"])
        .arg(log_file);
    let out = run_cmd(cmd, None, Duration::from_secs(120))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "pg_ctl start failed ({}): {}{}",
            out.status, out.stdout, out.stderr
        ))
    }
}

fn wait_ready(server: &Server, log_file: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !server.is_ready() {
        if Instant::now() >= deadline {
            panic!(
                "server on port {} not ready after 60s\n--- server log:\n{}",
                server.port,
                read_lossy(log_file)
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------
// TestDb
// ---------------------------------------------------------------------------

/// A database of its own for one test.
pub struct TestDb {
    pub name: String,
    server: Server,
}

impl TestDb {
    pub fn server(&self) -> &Server {
        &self.server
    }

    /// The same database on `other` (a standby of this one's server).
    pub fn on(&self, other: &Cluster) -> TestDb {
        TestDb {
            name: self.name.clone(),
            server: other.server().clone(),
        }
    }

    /// Runs SQL as the superuser; panics with psql's stderr on failure.
    pub fn sql(&self, sql: &str) -> String {
        self.server.sql(&self.name, sql)
    }

    pub fn try_sql(&self, sql: &str) -> Result<String, String> {
        self.server.try_sql(&self.name, sql)
    }

    /// Runs SQL as `user` over TCP, with `password` in PGPASSWORD if given.
    pub fn try_sql_as(
        &self,
        user: &str,
        password: Option<&str>,
        sql: &str,
    ) -> Result<String, String> {
        let env: Vec<(&str, &str)> = password.map(|p| ("PGPASSWORD", p)).into_iter().collect();
        self.server.psql(&self.tcp_conn_args_as(user), &env, sql)
    }

    /// pgstream connection args over the unix socket, as the superuser.
    pub fn conn_args(&self) -> Vec<String> {
        self.server.conn_args(&self.name, SUPERUSER)
    }

    /// pgstream connection args over TCP 127.0.0.1, as the superuser.
    pub fn tcp_conn_args(&self) -> Vec<String> {
        self.server.tcp_conn_args(&self.name, SUPERUSER)
    }

    pub fn conn_args_as(&self, user: &str) -> Vec<String> {
        self.server.conn_args(&self.name, user)
    }

    pub fn tcp_conn_args_as(&self, user: &str) -> Vec<String> {
        self.server.tcp_conn_args(&self.name, user)
    }

    /// `host=<socket dir> port=… dbname=… user=postgres` (for `-d conninfo`).
    pub fn conninfo(&self) -> String {
        format!(
            "host={} port={} dbname={} user={SUPERUSER}",
            self.server.socket_dir.display(),
            self.server.port,
            self.name
        )
    }

    /// `postgresql://user@127.0.0.1:port/db` (for `-d URI`).
    pub fn tcp_uri(&self, user: &str) -> String {
        format!(
            "postgresql://{user}@127.0.0.1:{}/{}",
            self.server.port, self.name
        )
    }

    /// pgstream args for the usual case: connection, slot, publication.
    pub fn stream_args(&self, slot: &str, publication: &str) -> Vec<String> {
        let mut a = self.conn_args();
        a.extend(vec_of(&["--slot", slot, "--publication", publication]));
        a
    }

    fn slot_column(&self, slot: &str, column: &str) -> Option<String> {
        let out = self.sql(&format!(
            "SELECT coalesce({column}::text, '<null>') FROM pg_replication_slots WHERE slot_name = {}",
            quote_literal(slot)
        ));
        (!out.is_empty() && out != "<null>").then_some(out)
    }

    pub fn slot_exists(&self, slot: &str) -> bool {
        self.sql(&format!(
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name = {}",
            quote_literal(slot)
        )) == "1"
    }

    /// Whether a walsender is using the slot now.
    pub fn slot_active(&self, slot: &str) -> bool {
        self.slot_column(slot, "active").as_deref() == Some("true")
    }

    pub fn slot_plugin(&self, slot: &str) -> Option<String> {
        self.slot_column(slot, "plugin")
    }

    /// None when the slot does not exist (or has no confirmed position).
    pub fn confirmed_flush_lsn(&self, slot: &str) -> Option<String> {
        self.slot_column(slot, "confirmed_flush_lsn")
    }

    pub fn current_wal_lsn(&self) -> String {
        self.sql("SELECT pg_current_wal_lsn()")
    }

    /// Waits until everything written so far is flushed (the test cluster
    /// commits asynchronously, and a walsender sends flushed WAL only), so
    /// that `--end-lsn now` covers it.
    pub fn wait_flushed(&self) {
        let insert = self.sql("SELECT pg_current_wal_insert_lsn()");
        wait_until("WAL to be flushed", TIMEOUT, || {
            (self.sql(&format!(
                "SELECT pg_current_wal_flush_lsn() >= '{insert}'::pg_lsn"
            )) == "t")
                .then_some(())
        });
    }

    /// Runs `sql` with a synchronous commit, so that it is flushed (and thus
    /// before any WAL position taken afterwards) when this returns.
    pub fn sql_sync(&self, sql: &str) -> String {
        self.sql(&format!("SET synchronous_commit = on;\n{sql}"))
    }

    /// One single-row INSERT into `t (id, v)` (one transaction each) per id.
    pub fn insert_each(&self, ids: std::ops::RangeInclusive<i64>) {
        let sql: String = ids
            .map(|i| format!("INSERT INTO t VALUES ({i}, 'row {i}');\n"))
            .collect();
        self.sql_sync(&sql);
    }

    /// The end LSN of each transaction that the pgoutput slot `slot`
    /// (created with `pg_create_logical_replication_slot`) holds for
    /// `publication`, in commit order; the slot is only peeked at. The end
    /// is what a client acknowledges once it has a transaction.
    pub fn commit_ends(&self, slot: &str, publication: &str) -> Vec<u64> {
        // For a Commit message ('C' = 67) the row's lsn is the commit
        // record's end (logical decoding's write_location).
        let out = self.sql(&format!(
            "SELECT lsn FROM pg_logical_slot_peek_binary_changes({}, NULL, NULL,
               'proto_version', '1', 'publication_names', {})
             WHERE get_byte(data, 0) = 67",
            quote_literal(slot),
            quote_literal(publication)
        ));
        out.lines().map(parse_lsn).collect()
    }

    /// Whether the walsender holding `slot` has started streaming.
    pub fn walsender_streaming(&self, slot: &str) -> bool {
        self.sql(&format!(
            "SELECT count(*) FROM pg_stat_replication r JOIN pg_replication_slots s
               ON s.active_pid = r.pid
             WHERE s.slot_name = '{slot}' AND r.state = 'streaming'"
        )) == "1"
    }

    /// Waits until the slot exists and no walsender holds it.
    pub fn wait_slot_inactive(&self, slot: &str, timeout: Duration) {
        wait_until(&format!("slot {slot} to be inactive"), timeout, || {
            (self.slot_exists(slot) && !self.slot_active(slot)).then_some(())
        })
    }

    /// Waits until the slot's confirmed_flush_lsn is at or past `lsn`.
    pub fn wait_confirmed(&self, slot: &str, lsn: &str, timeout: Duration) -> String {
        let target = parse_lsn(lsn);
        wait_until(
            &format!("slot {slot} confirmed_flush_lsn >= {lsn}"),
            timeout,
            || {
                self.confirmed_flush_lsn(slot)
                    .filter(|c| parse_lsn(c) >= target)
            },
        )
    }

    /// Drops the database's slots (terminating their walsenders) and the
    /// database itself. Best effort.
    fn cleanup(&self) -> Result<(), String> {
        let lit = quote_literal(&self.name);
        self.server.try_sql(
            "postgres",
            &format!(
                "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots
                 WHERE database = {lit} AND active_pid IS NOT NULL"
            ),
        )?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let active = self.server.try_sql(
                "postgres",
                &format!(
                    "SELECT count(*) FROM pg_replication_slots WHERE database = {lit} AND active"
                ),
            )?;
            if active == "0" || Instant::now() >= deadline {
                break;
            }
            thread::sleep(Duration::from_millis(20));
        }
        self.server.try_sql(
            "postgres",
            &format!(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = {lit}"
            ),
        )?;
        let drop = format!("DROP DATABASE IF EXISTS {}", quote_ident(&self.name));
        if server_major() >= 13 {
            self.server
                .try_sql("postgres", &format!("{drop} WITH (FORCE)"))?;
            return Ok(());
        }
        // No WITH (FORCE) before 13: end the sessions, retry while they go.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            self.server.try_sql(
                "postgres",
                &format!(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                     WHERE datname = {lit} AND pid <> pg_backend_pid()"
                ),
            )?;
            match self.server.try_sql("postgres", &drop) {
                Err(e)
                    if e.contains("is being accessed by other users")
                        && Instant::now() < deadline =>
                {
                    thread::sleep(Duration::from_millis(20))
                }
                other => return other.map(|_| ()),
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if thread::panicking() || keep_dirs() {
            return;
        }
        // The server may be stopped (dedicated cluster) or gone: ignore.
        if self
            .server
            .socket_dir
            .join(format!(".s.PGSQL.{}", self.server.port))
            .exists()
        {
            let _ = self.cleanup();
        }
    }
}

// ---------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------

/// Path of the binary under test: cargo's, or `PGSTREAM_TEST_BIN` (the
/// static binary, in `make test-static`).
pub fn pgstream_bin() -> PathBuf {
    match std::env::var_os("PGSTREAM_TEST_BIN") {
        Some(bin) if !bin.is_empty() => PathBuf::from(bin),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_pgstream")),
    }
}

/// Path of the crate's example `name`, which `cargo test` builds next to
/// the binary under test (`<target>/debug/examples/<name>`). Panics when it
/// is missing, or older than a source file that cargo's dep-info next to it
/// lists: `cargo test --test it` alone neither builds nor rebuilds the
/// examples, and a stale one would test old code.
pub fn example_bin(name: &str) -> PathBuf {
    let dir = pgstream_bin()
        .parent()
        .expect("the binary under test has a directory")
        .join("examples");
    let path = dir.join(name);
    let how = "plain `cargo test` (what `make test` runs) builds the examples; \
               with `cargo test --test it`, run `cargo build --examples` first";
    let built = fs::metadata(&path)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| {
            panic!(
                "example {name:?} is not built: no {}; {how}",
                path.display()
            )
        });
    // `<name>.d`: "<binary>: <source> <source> …", spaces in paths escaped.
    let dep_info = read_lossy(&dir.join(format!("{name}.d")));
    let sources = dep_info
        .split_once(": ")
        .map(|(_, s)| s.replace("\\ ", "\0"))
        .unwrap_or_default();
    for source in sources.split_whitespace().map(|s| s.replace('\0', " ")) {
        let changed = fs::metadata(&source).and_then(|m| m.modified());
        if matches!(changed, Ok(t) if t > built) {
            panic!(
                "example {name:?} ({}) is older than {source}: it would test stale code; {how}",
                path.display()
            );
        }
    }
    path
}

/// `program args` with a scrubbed environment (no `PG*`, `PGSTREAM_*`,
/// `RUST_LOG`, systemd variables; `HOME` an empty directory), then `env`
/// applied.
fn scrubbed_command(program: &Path, args: &[String], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args);
    scrub_env(&mut cmd);
    cmd.env("HOME", &reaper().home);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// A `pgstream` command with `args`, a scrubbed environment (no `PG*`,
/// `PGSTREAM_*`, `RUST_LOG`, systemd variables; `HOME` an empty directory),
/// then `env` applied. For tests that need their own stdio set-up.
pub fn command(args: &[String], env: &[(&str, &str)]) -> Command {
    scrubbed_command(&pgstream_bin(), args, env)
}

/// As [`command`], for the crate's example `name` ([`example_bin`]).
pub fn example_command(name: &str, args: &[String], env: &[(&str, &str)]) -> Command {
    scrubbed_command(&example_bin(name), args, env)
}

/// How a process ended.
#[derive(Debug)]
pub struct Output {
    /// Exit code; None when killed by a signal.
    pub code: Option<i32>,
    /// The signal that killed it, if any.
    pub signal: Option<i32>,
    /// Every stdout line, without its `\n`.
    pub stdout_lines: Vec<String>,
    /// True when stdout ended with bytes after the last `\n` (a cut line;
    /// it is the last element of `stdout_lines`).
    pub stdout_unterminated: bool,
    pub stderr: String,
}

impl Output {
    /// Parses every stdout line as a JSON object.
    pub fn json(&self) -> Vec<serde_json::Value> {
        json_lines(&self.stdout_lines)
    }
}

/// Parses lines as JSON objects; panics naming the first bad line.
pub fn json_lines(lines: &[String]) -> Vec<serde_json::Value> {
    lines
        .iter()
        .enumerate()
        .map(
            |(i, l)| match serde_json::from_str::<serde_json::Value>(l) {
                Ok(v) if v.is_object() => v,
                _ => panic!("stdout line {i} is not a JSON object: {l:?}"),
            },
        )
        .collect()
}

/// A running child process with its stdout lines collected by a thread.
pub struct Proc {
    child: Child,
    pid: u32,
    desc: String,
    lines_rx: Receiver<String>,
    lines: Vec<String>,
    stdout_closed: bool,
    unterminated: Arc<AtomicBool>,
    stderr: Arc<Mutex<Vec<u8>>>,
    stderr_thread: Option<JoinHandle<()>>,
    status: Option<ExitStatus>,
}

impl Proc {
    /// Spawns `pgstream args` (see [`command`] for the environment), stdin null.
    pub fn spawn(args: &[String], env: &[(&str, &str)]) -> Proc {
        Proc::from_command(command(args, env))
    }

    /// Spawns the crate's example `name` with `args` (see [`example_command`]).
    pub fn spawn_example(name: &str, args: &[String]) -> Proc {
        Proc::from_command(example_command(name, args, &[]))
    }

    /// Spawns any command with stdin null and stdout/stderr captured.
    pub fn from_command(mut cmd: Command) -> Proc {
        let desc = format!("{cmd:?}");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {desc}: {e}"));
        let pid = child.id();
        reaper().update(|p| {
            p.insert(pid);
        });

        let (tx, lines_rx) = mpsc::channel();
        let unterminated = Arc::new(AtomicBool::new(false));
        let stdout = child.stdout.take().expect("piped stdout");
        let flag = unterminated.clone();
        thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match r.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let complete = buf.last() == Some(&b'\n');
                        if complete {
                            buf.pop();
                        } else {
                            flag.store(true, Ordering::SeqCst);
                        }
                        if tx.send(String::from_utf8_lossy(&buf).into_owned()).is_err() || !complete
                        {
                            break;
                        }
                    }
                }
            }
        });

        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut err_pipe = child.stderr.take().expect("piped stderr");
        let sink = stderr.clone();
        let stderr_thread = thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            loop {
                match err_pipe.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => sink
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .extend_from_slice(&chunk[..n]),
                }
            }
        });

        Proc {
            child,
            pid,
            desc,
            lines_rx,
            lines: Vec::new(),
            stdout_closed: false,
            unterminated,
            stderr,
            stderr_thread: Some(stderr_thread),
            status: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Everything written to stderr so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }

    fn drain(&mut self) {
        loop {
            match self.lines_rx.try_recv() {
                Ok(l) => self.lines.push(l),
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    self.stdout_closed = true;
                    break;
                }
            }
        }
    }

    /// Stdout lines collected so far.
    pub fn lines(&mut self) -> Vec<String> {
        self.drain();
        self.lines.clone()
    }

    /// All stdout lines so far, after waiting until there are at least `n`.
    /// Panics (with stderr and the lines) on timeout or if stdout closes first.
    pub fn wait_lines(&mut self, n: usize, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            self.drain();
            if self.lines.len() >= n {
                return self.lines.clone();
            }
            if self.stdout_closed {
                // Give the exit status a moment to become known, for the report.
                let until = Instant::now() + Duration::from_secs(2);
                while self.try_wait().is_none() && Instant::now() < until {
                    thread::sleep(Duration::from_millis(10));
                }
                self.fail(&format!(
                    "stdout closed after {} lines, waiting for {n}",
                    self.lines.len()
                ));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                self.fail(&format!(
                    "timed out after {timeout:?} with {} lines, waiting for {n}",
                    self.lines.len()
                ));
            }
            match self.lines_rx.recv_timeout(left) {
                Ok(l) => self.lines.push(l),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => self.stdout_closed = true,
            }
        }
    }

    /// Waits until stderr contains `needle`; returns the whole stderr.
    pub fn wait_stderr(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let err = self.stderr();
            if err.contains(needle) {
                return err;
            }
            if self.try_wait().is_some() {
                self.fail(&format!("exited before stderr contained {needle:?}"));
            }
            if Instant::now() >= deadline {
                self.fail(&format!(
                    "timed out after {timeout:?} waiting for {needle:?} on stderr"
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends a signal ("INT", "TERM", "KILL", "HUP", …) with `kill`.
    pub fn signal(&self, sig: &str) {
        if self.status.is_some() {
            return; // reaped: the pid may belong to someone else now
        }
        let st = Command::new("kill")
            .args(["-s", sig, &self.pid.to_string()])
            .status();
        assert!(st.is_ok(), "cannot run kill: {st:?}");
    }

    /// The exit status if the process has exited (reaps it).
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            if let Ok(Some(st)) = self.child.try_wait() {
                self.status = Some(st);
                reaper().update(|p| {
                    p.remove(&self.pid);
                });
            }
        }
        self.status
    }

    /// Waits for the exit (killing it and panicking on timeout), then for the
    /// end of its output.
    pub fn wait_exit(&mut self, timeout: Duration) -> Output {
        let deadline = Instant::now() + timeout;
        while self.try_wait().is_none() {
            if Instant::now() >= deadline {
                self.kill();
                self.fail(&format!("did not exit within {timeout:?} (killed)"));
            }
            thread::sleep(Duration::from_millis(10));
        }
        self.finish_output()
    }

    fn finish_output(&mut self) -> Output {
        let status = self.status.expect("exited");
        let grace = Instant::now() + Duration::from_secs(5);
        while !self.stdout_closed {
            match self
                .lines_rx
                .recv_timeout(grace.saturating_duration_since(Instant::now()))
            {
                Ok(l) => self.lines.push(l),
                Err(RecvTimeoutError::Disconnected) => self.stdout_closed = true,
                Err(RecvTimeoutError::Timeout) => break,
            }
        }
        if let Some(t) = self.stderr_thread.take() {
            while !t.is_finished() && Instant::now() < grace {
                thread::sleep(Duration::from_millis(5));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
        Output {
            code: status.code(),
            signal: status.signal(),
            stdout_lines: self.lines.clone(),
            stdout_unterminated: self.unterminated.load(Ordering::SeqCst),
            stderr: self.stderr(),
        }
    }

    fn kill(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            if let Ok(st) = self.child.wait() {
                self.status = Some(st);
            }
            reaper().update(|p| {
                p.remove(&self.pid);
            });
        }
    }

    fn fail(&mut self, what: &str) -> ! {
        self.drain();
        let status = match self.status {
            Some(st) => format!("{st}"),
            None => "still running".into(),
        };
        panic!(
            "{what}\n--- command: {}\n--- status: {status}\n--- stdout ({} lines):\n{}\n--- stderr:\n{}",
            self.desc,
            self.lines.len(),
            self.lines.join("\n"),
            self.stderr()
        );
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `pgstream args` to completion (killed and a panic after `timeout`).
pub fn run(args: &[String], env: &[(&str, &str)], timeout: Duration) -> Output {
    Proc::spawn(args, env).wait_exit(timeout)
}

/// [`run`] that must exit 0 with its last line whole; returns each stdout
/// line with its parsed JSON.
pub fn run_lines(args: &[String]) -> Vec<(String, serde_json::Value)> {
    let out = run(args, &[], TIMEOUT);
    assert_eq!(
        out.code,
        Some(0),
        "pgstream {args:?} failed\n--- stdout:\n{}\n--- stderr:\n{}",
        out.stdout_lines.join("\n"),
        out.stderr
    );
    assert!(!out.stdout_unterminated, "last line cut: {out:?}");
    let values = out.json();
    out.stdout_lines.into_iter().zip(values).collect()
}

/// Polls `f` every 20 ms until it returns `expected`; after `timeout`,
/// panics naming `what` with the expected and the last value.
pub fn wait_equal<T: PartialEq + std::fmt::Debug>(
    what: &str,
    timeout: Duration,
    expected: &T,
    mut f: impl FnMut() -> T,
) {
    let deadline = Instant::now() + timeout;
    loop {
        let got = f();
        if &got == expected {
            return;
        }
        if Instant::now() >= deadline {
            panic!(
                "timed out after {timeout:?} waiting for {what}\n--- expected:\n{expected:#?}\n--- last seen:\n{got:#?}"
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `f` every 20 ms until it returns Some; panics naming `what` after
/// `timeout`.
pub fn wait_until<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}
