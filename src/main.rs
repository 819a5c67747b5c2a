//! The `pgstream` binary: flags → logger → runtime → signals → run with
//! the JSON Lines handler → exit code (0 clean stop, 1 runtime failure,
//! 2 usage, 128 + its number on a second SIGINT/SIGTERM). SIGHUP reopens
//! `--file` (log rotation); SIGUSR1 asks for a progress line.

mod argv;
mod cli;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
use cli::{Cli, Command};
use futures_util::StreamExt;
use pgstream::{Control, Error, JsonLines, Metrics, Sink};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
use signal_hook_tokio::Signals;
use tokio::sync::watch;

fn main() -> ExitCode {
    cli::unset_empty_env();
    let cli = Cli::parse();
    if let Some(Command::Print(print)) = &cli.command {
        return printed(print.run(&mut std::io::stdout().lock()));
    }
    init_logger(&cli);
    if let Some(Command::Status) = &cli.command {
        return status(&cli);
    }
    let config = match cli.config(&|k| std::env::var(k).ok()) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let dbname = cli.dbname.clone().map(pgstream::ConnArgs::conninfo);
    if let Some(password) = dbname.and_then(|d| d.password()) {
        argv::hide(&password);
    }
    // --drop-slot writes nothing: no file to create, no broker to reach.
    // `-f -` is stdout, as for pg_recvlogical.
    let sink = cli.sink.as_deref().filter(|_| !config.drop_slot);
    if let Some(password) = sink.and_then(url_password) {
        argv::hide(password);
    }
    let file = cli.file.as_ref().filter(|p| p.as_os_str() != "-");
    let output = match (sink, file) {
        (Some(url), _) => Ok(Output::Broker(url)),
        (None, Some(path)) if !config.drop_slot => JsonLines::file(path)
            .map(Output::Lines)
            .map_err(|e| Error::usage(format!("cannot open {}: {e}", path.display()))),
        _ => JsonLines::stdout()
            .map(Output::Lines)
            .map_err(Error::Output),
    };
    let format = cli.format(&config);
    let output = match output {
        Ok(Output::Lines(lines)) => Output::Lines(lines.with_format(format.clone())),
        Ok(o) => o,
        Err(e) => return fail(&e),
    };
    let reopen = match (&output, file) {
        (Output::Lines(lines), Some(_)) => Some(lines.reopen_handle()),
        _ => None,
    };
    let runtime = match runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    let result = runtime.block_on(async {
        let metrics = match &cli.metrics_addr {
            Some(addr) => Some(serve_metrics(addr).await?),
            None => None,
        };
        let (stop_tx, stop_rx) = watch::channel(false);
        let (report_tx, report_rx) = watch::channel(());
        let mut signals = Signals::new([SIGINT, SIGTERM, SIGUSR1, SIGHUP])
            .map_err(|e| Error::usage(format!("cannot install signal handlers: {e}")))?;
        tokio::spawn(async move {
            let mut stops = 0;
            while let Some(signal) = signals.next().await {
                if signal == SIGUSR1 {
                    report_tx.send_replace(());
                    continue;
                }
                if signal == SIGHUP {
                    match &reopen {
                        Some(reopen) => reopen.request(),
                        None => log::info!("sighup: no --file to reopen, ignored"),
                    }
                    continue;
                }
                stops += 1;
                if stops > 1 {
                    // A second signal: the user wants out now, with the
                    // shell's convention (130 for SIGINT, 143 for SIGTERM).
                    std::process::exit(128 + signal);
                }
                let _ = stop_tx.send(true);
            }
        });
        let control = Control {
            shutdown: stop_rx,
            report: report_rx,
            metrics,
        };
        match output {
            Output::Lines(mut lines) => pgstream::run(config, &mut lines, control).await,
            Output::Broker(url) => {
                let mut sink = Sink::new(url, &config)?.with_format(format);
                if let Some(metrics) = &control.metrics {
                    metrics.watch_sink(sink.stats());
                }
                pgstream::run(config, &mut sink, control).await
            }
        }
    });
    // Do not wait for a writer thread stuck on a stalled reader.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// Listens on `--metrics-addr` (a port in use is a usage error) and serves
/// the run's metrics there from a task of its own.
async fn serve_metrics(addr: &str) -> Result<Metrics, Error> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::usage(format!("cannot listen on --metrics-addr {addr}: {e}")))?;
    if let Ok(local) = listener.local_addr() {
        log::info!("serving metrics on http://{local}/metrics and health on /healthz");
    }
    let metrics = Metrics::new();
    tokio::spawn(metrics.clone().serve(listener));
    Ok(metrics)
}

/// `pgstream status`: JSON lines, or a table when stdout is a terminal.
fn status(cli: &Cli) -> ExitCode {
    let runtime = match runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    let slots = runtime.block_on(pgstream::status::slots(
        &cli.conn_args(),
        cli.slot.as_deref(),
    ));
    let slots = match slots {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let mut out = std::io::stdout().lock();
    printed(if out.is_terminal() {
        pgstream::status::write_table(&slots, &mut out)
    } else {
        pgstream::status::write_json_lines(&slots, &mut out)
    })
}

/// The exit code after printing: a closed pipe is no failure.
fn printed(result: std::io::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pgstream: {e}");
            ExitCode::from(1)
        }
    }
}

/// The single-threaded runtime pgstream runs on.
fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("pgstream: cannot start the runtime: {e}");
            ExitCode::from(1)
        })
}

/// Where the events go: JSON lines (stdout, `--file`), or a broker
/// (`--sink`, connected to once the runtime runs).
enum Output<'a> {
    Lines(JsonLines),
    Broker(&'a str),
}

/// The password in a `--sink` URL (`scheme://user:password@host…`), as
/// typed, to hide from `ps`.
fn url_password(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once("://")?;
    let (userinfo, _) = rest
        .split_once('?')
        .map_or(rest, |(r, _)| r)
        .rsplit_once('@')?;
    userinfo.split_once(':').map(|(_, password)| password)
}

fn fail(e: &Error) -> ExitCode {
    eprintln!("pgstream: {e}");
    ExitCode::from(e.exit_code())
}

/// Logs go to stderr with a lowercase level prefix (no colours, no
/// timestamps); under journald (`JOURNAL_STREAM`) each line starts with a
/// syslog `<N>` priority instead. `RUST_LOG` wins over -v/-q.
fn init_logger(cli: &Cli) {
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => "error",
        // Progress lines are info lines: asking for them (or for a
        // snapshot, which reports its progress) shows them.
        (false, 0) if cli.stats_interval > 0 || cli.snapshot => "info",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    // A slot's creation shows unless -q: where its stream begins matters.
    let slot_level = if level == "warn" { "info" } else { level };
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    env_logger::Builder::new()
        .parse_filters(&format!(
            "pgstream={level},{}={slot_level},{}",
            pgstream::SLOT_LOG,
            if cli.verbose > 2 { "trace" } else { "warn" }
        ))
        .parse_env("RUST_LOG")
        .format(move |buf, record| {
            let level = record.level();
            if journald {
                let priority = match level {
                    log::Level::Error => 3,
                    log::Level::Warn => 4,
                    log::Level::Info => 6,
                    log::Level::Debug | log::Level::Trace => 7,
                };
                writeln!(buf, "<{priority}>{}", record.args())
            } else {
                writeln!(
                    buf,
                    "pgstream: {}: {}",
                    level.as_str().to_lowercase(),
                    record.args()
                )
            }
        })
        .target(env_logger::Target::Stderr)
        .init();
}
