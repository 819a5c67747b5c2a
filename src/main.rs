//! The `pgstream` binary: flags → logger → runtime → signals → run → exit
//! code (0 clean stop, 1 runtime failure, 2 usage, 130 second signal).

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use futures_util::StreamExt;
use pgstream::cli::Cli;
use pgstream::Config;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_tokio::Signals;
use tokio::sync::watch;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logger(&cli);
    let config = match Config::from_cli(cli, &|k| std::env::var(k).ok()) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("pgstream: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        let (tx, rx) = watch::channel(false);
        let signals = Signals::new([SIGINT, SIGTERM]).map_err(|e| pgstream::Error::usage(format!("cannot install signal handlers: {e}")))?;
        tokio::spawn(async move {
            let mut signals = signals;
            if signals.next().await.is_some() {
                let _ = tx.send(true);
            }
            if signals.next().await.is_some() {
                // A second signal: the user wants out now.
                std::process::exit(130);
            }
        });
        pgstream::run(config, rx).await
    });
    // Do not wait for a writer thread stuck on a stalled reader.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(e: &pgstream::Error) -> ExitCode {
    eprintln!("pgstream: {e}");
    ExitCode::from(e.exit_code())
}

/// Logs go to stderr, lowercase level prefix; `RUST_LOG` wins over -v/-q.
fn init_logger(cli: &Cli) {
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    env_logger::Builder::new()
        .parse_filters(&format!("pgstream={level},{}", if cli.verbose > 2 { "trace" } else { "warn" }))
        .parse_env("RUST_LOG")
        .format(|buf, record| {
            writeln!(buf, "pgstream: {}: {}", record.level().as_str().to_lowercase(), record.args())
        })
        .target(env_logger::Target::Stderr)
        .init();
}
