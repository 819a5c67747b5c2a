//! Logs every row change with its table's name, as the `perform_action`
//! of the system pgstream replaces did: the smallest useful handler.
//!
//! ```text
//! cargo run --example log_changes -- 'host=localhost dbname=shop' SLOT PUBLICATION
//! ```
//!
//! Stops cleanly on Ctrl-C (SIGINT) or SIGTERM.

use pgstream::{Completion, Config, ConnArgs, Event, Handler, HandlerError};

/// Prints `table_name data` per change, one line each.
struct LogChanges;

impl LogChanges {
    fn perform_action(&mut self, table_name: &str, data: &serde_json::Value) {
        println!("{table_name} {data}");
    }
}

impl Handler for LogChanges {
    async fn event(&mut self, event: &Event<'_>) -> Result<(), HandlerError> {
        let Some(rel) = event.relation else {
            return Ok(()); // not a row change
        };
        let data = serde_json::json!({
            "op": event.op.as_str(),
            "old": event.old.map(|row| row.to_json()),
            "new": event.new.map(|row| row.to_json()),
        });
        self.perform_action(&format!("{}.{}", rel.schema, rel.name), &data);
        Ok(())
    }

    async fn commit(&mut self, _commit: &Event<'_>) -> Result<Completion, HandlerError> {
        // Printed (stdout is line-buffered) is done with.
        Ok(Completion::done())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [conninfo, slot, publication] = &args[..] else {
        return Err("usage: log_changes CONNINFO SLOT PUBLICATION".into());
    };
    let mut config = Config::new(&ConnArgs::conninfo(conninfo.as_str()), slot.as_str())?;
    config.publications = vec![publication.clone()];
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        stop_signal().await;
        let _ = stop.send(true);
    });
    pgstream::run(config, &mut LogChanges, shutdown).await?;
    Ok(())
}

/// SIGINT or SIGTERM.
async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
