//! Output files: `-f` creates its file with mode 0600, `-f -` is stdout,
//! SIGHUP reopens the file (log rotation) losing and repeating nothing, and
//! stdout redirected to a regular file is fsynced like `-f`.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::harness::{
    command, json_lines, run, vec_of, wait_until, Cluster, Output, Proc, TestDb, TIMEOUT,
};

const PUBLICATION: &str = "pub";

fn setup() -> TestDb {
    let db = Cluster::shared().new_db("files");
    db.sql(
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         CREATE PUBLICATION pub FOR TABLE t;",
    );
    db
}

/// A directory of the test's own, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(db: &TestDb) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "pgstream-it-files-{}-{}",
            std::process::id(),
            db.name
        ));
        fs::create_dir_all(&dir).unwrap();
        // The test may run as root: canonical, so strace's paths compare.
        TempDir(dir.canonicalize().unwrap())
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !thread::panicking() {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

fn args(db: &TestDb, slot: &str, extra: &[&str]) -> Vec<String> {
    let mut a = db.stream_args(slot, PUBLICATION);
    a.extend(vec_of(extra));
    a
}

/// Runs pgstream to completion and asserts exit 0.
fn run_ok(db: &TestDb, slot: &str, extra: &[&str]) -> Output {
    let out = run(&args(db, slot, extra), &[], TIMEOUT);
    assert_eq!(out.code, Some(0), "pgstream {extra:?}\n{out:#?}");
    out
}

/// `cmd` run as the last arguments of `program args…` (a shell that sets
/// the umask, strace), with `cmd`'s environment and working directory.
fn wrapped(cmd: &Command, program: &str, args: &[&OsStr]) -> Command {
    let mut w = Command::new(program);
    w.args(args).arg(cmd.get_program()).args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => w.env(k, v),
            None => w.env_remove(k),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        w.current_dir(dir);
    }
    w
}

/// `(xid, new.id)` of each insert line.
fn inserts(lines: &[String]) -> Vec<(i64, i64)> {
    json_lines(lines)
        .iter()
        .map(|v| {
            assert_eq!(v["op"], "insert", "{v}");
            (v["xid"].as_i64().unwrap(), v["new"]["id"].as_i64().unwrap())
        })
        .collect()
}

fn ids(lines: &[String]) -> Vec<i64> {
    inserts(lines).into_iter().map(|(_, id)| id).collect()
}

/// The lines of a file whose every line is whole.
fn file_lines(path: &Path) -> Vec<String> {
    let text = fs::read_to_string(path).unwrap_or_default();
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "{} ends in a cut line: {text:?}",
        path.display()
    );
    text.lines().map(str::to_string).collect()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn file_is_created_0600_under_a_permissive_umask_and_an_existing_one_keeps_its_mode() {
    let db = setup();
    let dir = TempDir::new(&db);
    let slot = "files_mode";
    let umask_000 = |file: &Path| {
        let cmd = command(
            &args(
                &db,
                slot,
                &["-f", file.to_str().unwrap(), "--end-lsn", "now"],
            ),
            &[],
        );
        let sh = [
            OsStr::new("-c"),
            OsStr::new(r#"umask 000 && exec "$0" "$@""#),
        ];
        let out = Proc::from_command(wrapped(&cmd, "/bin/sh", &sh)).wait_exit(TIMEOUT);
        assert_eq!(out.code, Some(0), "{out:#?}");
    };

    let created = dir.path("created.jsonl");
    umask_000(&created);
    assert_eq!(mode(&created), 0o600, "a file pgstream creates");

    let existing = dir.path("existing.jsonl");
    fs::write(&existing, "").unwrap();
    fs::set_permissions(&existing, fs::Permissions::from_mode(0o644)).unwrap();
    db.insert_each(1..=2);
    umask_000(&existing);
    assert_eq!(mode(&existing), 0o644, "an existing file keeps its mode");
    assert_eq!(ids(&file_lines(&existing)), [1, 2]);
}

#[test]
fn dash_file_means_stdout_and_creates_no_file() {
    let db = setup();
    let dir = TempDir::new(&db);
    let slot = "files_dash";
    let run_in_dir = || {
        let mut cmd = command(&args(&db, slot, &["-f", "-", "--end-lsn", "now"]), &[]);
        cmd.current_dir(&dir.0);
        let out = Proc::from_command(cmd).wait_exit(TIMEOUT);
        assert_eq!(out.code, Some(0), "{out:#?}");
        out
    };
    run_in_dir(); // creates the slot
    db.insert_each(1..=3);
    let out = run_in_dir();
    assert_eq!(ids(&out.stdout_lines), [1, 2, 3], "lines on stdout");
    assert!(!dir.path("-").exists(), "a file named '-' was created");
}

#[test]
fn sighup_without_file_keeps_streaming_to_stdout() {
    let db = setup();
    let slot = "files_hup_stdout";
    let mut p = Proc::spawn(&args(&db, slot, &["-v"]), &[]);
    wait_until("pgstream to stream", TIMEOUT, || {
        db.walsender_streaming(slot).then_some(())
    });
    db.insert_each(1..=1);
    p.wait_lines(1, TIMEOUT);
    p.signal("HUP");
    p.wait_stderr("sighup", TIMEOUT);
    db.insert_each(2..=2);
    let lines = p.wait_lines(2, TIMEOUT);
    assert_eq!(ids(&lines), [1, 2]);
    assert!(p.try_wait().is_none(), "SIGHUP stopped pgstream");
    p.signal("INT");
    let out = p.wait_exit(TIMEOUT);
    assert_eq!(out.code, Some(0), "{out:#?}");
}

/// Rows per transaction of the load: each file must hold whole ones.
const TX_ROWS: i64 = 3;

/// Inserts transactions of [`TX_ROWS`] rows (ids from 1 on) until `stop`
/// is set; returns the last id.
fn load(db: &TestDb, stop: &AtomicBool) -> i64 {
    let mut next = 1;
    while !stop.load(Ordering::SeqCst) {
        let sql: String = (0..10)
            .map(|i| {
                let first = next + i * TX_ROWS;
                format!(
                    "INSERT INTO t SELECT g, 'row ' || g FROM generate_series({first}, {}) g;\n",
                    first + TX_ROWS - 1
                )
            })
            .collect();
        db.sql_sync(&sql);
        next += 10 * TX_ROWS;
    }
    next - 1
}

/// Sets its flag when dropped, panicking or not.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[test]
fn rotation_by_rename_and_sighup_under_load_loses_and_repeats_nothing() {
    let db = setup();
    let dir = TempDir::new(&db);
    let slot = "files_rotate";
    let out = dir.path("out.jsonl");
    let mut p = Proc::spawn(
        &args(&db, slot, &["-v", "-s", "1", "-f", out.to_str().unwrap()]),
        &[],
    );
    wait_until("pgstream to stream", TIMEOUT, || {
        db.walsender_streaming(slot).then_some(())
    });
    let stop = AtomicBool::new(false);
    let (last, rotated) = thread::scope(|s| {
        let writer = s.spawn(|| load(&db, &stop));
        // A failed wait below must stop the load too, or the scope never ends.
        let _stop = StopOnDrop(&stop);
        let mut rotated = Vec::new();
        for n in 1..=3 {
            // Lines are arriving in the current file: rotate it under load.
            wait_until("lines in the current file", TIMEOUT, || {
                (!file_lines(&out).is_empty()).then_some(())
            });
            let old = dir.path(&format!("out.jsonl.{n}"));
            fs::rename(&out, &old).unwrap();
            p.signal("HUP");
            wait_until("the file to be reopened", TIMEOUT, || {
                out.exists().then_some(())
            });
            rotated.push(old);
        }
        wait_until("lines in the last file", TIMEOUT, || {
            (!file_lines(&out).is_empty()).then_some(())
        });
        stop.store(true, Ordering::SeqCst);
        (writer.join().unwrap(), rotated)
    });
    let target = db.sql("SELECT pg_current_wal_flush_lsn()");
    let files: Vec<PathBuf> = rotated.into_iter().chain([out.clone()]).collect();
    let union = || -> Vec<String> { files.iter().flat_map(|f| file_lines(f)).collect() };
    let started = Instant::now();
    wait_until("every row in the files", TIMEOUT, || {
        (union().len() as i64 >= last).then_some(())
    });
    db.wait_confirmed(slot, &target, TIMEOUT);
    eprintln!(
        "{last} rows in {} files, confirmed {:?} after the load",
        files.len(),
        started.elapsed()
    );
    p.signal("INT");
    let exit = p.wait_exit(TIMEOUT);
    assert_eq!(exit.code, Some(0), "{exit:#?}");
    assert_eq!(
        exit.stderr.matches("reopened").count(),
        3,
        "{}",
        exit.stderr
    );

    let all = ids(&union());
    assert_eq!(
        all,
        (1..=last).collect::<Vec<_>>(),
        "every row once, in order"
    );
    // Each file holds whole transactions: no xid is split across two.
    let mut seen = std::collections::HashMap::new();
    for (n, file) in files.iter().enumerate() {
        let rows = inserts(&file_lines(file));
        assert!(!rows.is_empty(), "{} is empty", file.display());
        for (xid, _) in rows {
            assert_eq!(*seen.entry(xid).or_insert(n), n, "xid {xid} split");
        }
    }
    assert!(seen.len() as i64 * TX_ROWS == last);
}

/// `cmd` under `strace -f -y`, tracing its fsync calls into `trace`.
fn traced(cmd: &Command, trace: &Path) -> Command {
    assert!(
        Command::new("strace").arg("-V").output().is_ok(),
        "strace is not installed: apt-get install strace (or scripts/install-deps.sh)"
    );
    let strace = [
        OsStr::new("-f"),
        OsStr::new("-y"),
        OsStr::new("-e"),
        OsStr::new("trace=fsync,fdatasync"),
        OsStr::new("-o"),
        trace.as_os_str(),
        OsStr::new("--"),
    ];
    wrapped(cmd, "strace", &strace)
}

/// The fsync and fdatasync calls in a strace output file.
fn syncs(trace: &Path) -> Vec<String> {
    fs::read_to_string(trace)
        .unwrap()
        .lines()
        .filter(|l| l.contains("fsync(") || l.contains("fdatasync("))
        .map(str::to_string)
        .collect()
}

/// Runs `cmd` to completion with stdout redirected to the file `stdout`.
fn run_redirected(mut cmd: Command, stdout: &Path, stderr: &Path) -> ExitStatus {
    cmd.stdin(Stdio::null())
        .stdout(File::create(stdout).unwrap())
        .stderr(File::create(stderr).unwrap());
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{cmd:?} did not exit within {TIMEOUT:?}\n{}",
                fs::read_to_string(stderr).unwrap_or_default()
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn stdout_redirected_to_a_regular_file_is_fsynced_and_a_pipe_is_not() {
    let db = setup();
    let dir = TempDir::new(&db);
    let slot = "files_stdout_sync";
    run_ok(&db, slot, &["--end-lsn", "now"]); // creates the slot
    let trace = dir.path("trace");
    let cmd = command(&args(&db, slot, &["--end-lsn", "now"]), &[]);

    db.insert_each(1..=3);
    let file = dir.path("stdout.jsonl");
    let stderr = dir.path("stderr");
    let status = run_redirected(traced(&cmd, &trace), &file, &stderr);
    let log = fs::read_to_string(&stderr).unwrap();
    assert!(status.success(), "{status}\n{log}");
    assert_eq!(ids(&file_lines(&file)), [1, 2, 3]);
    let calls = syncs(&trace);
    let on_file = format!("<{}>)", file.display());
    assert!(
        calls.iter().any(|c| c.contains(&on_file)),
        "stdout's regular file was never fsynced: {calls:#?}"
    );

    db.insert_each(4..=6);
    let out = Proc::from_command(traced(&cmd, &trace)).wait_exit(TIMEOUT);
    assert_eq!(out.code, Some(0), "{out:#?}");
    assert_eq!(ids(&out.stdout_lines), [4, 5, 6]);
    assert_eq!(syncs(&trace), Vec::<String>::new(), "a pipe is not fsynced");
}
