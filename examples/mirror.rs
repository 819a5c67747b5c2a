//! Mirrors every streamed table into one table, `pgstream_mirror`, in a
//! database of your choice: a row per source row, keyed by table and
//! primary key, kept up to date through inserts, updates, deletes and
//! truncates. A stateful handler that writes to PostgreSQL with
//! tokio-postgres.
//!
//! ```text
//! cargo run --example mirror -- SOURCE_CONNINFO SLOT PUBLICATION TARGET_CONNINFO
//! ```
//!
//! Each source transaction becomes one target transaction, run in the
//! completion that `commit` returns, so pgstream acknowledges a source
//! transaction only once its mirror is committed: after a crash the
//! server sends it again, and the upserts make that harmless. Tables
//! without a key are skipped. Stops cleanly on Ctrl-C (SIGINT).

use std::sync::Arc;

use pgstream::event::Row;
use pgstream::{Completion, Config, ConnArgs, Event, Handler, HandlerError, Op};
use tokio_postgres::{Client, NoTls};

const SETUP: &str = "CREATE TABLE IF NOT EXISTS pgstream_mirror (
    tbl text NOT NULL, key jsonb NOT NULL, row jsonb NOT NULL,
    PRIMARY KEY (tbl, key))";

/// One change to the mirror, owned: it outlives the event.
enum Write {
    Upsert {
        tbl: String,
        key: String,
        row: String,
    },
    Delete {
        tbl: String,
        key: String,
    },
    Truncate {
        tbl: String,
    },
}

struct Mirror {
    client: Arc<Client>,
    /// The open transaction's writes.
    batch: Vec<Write>,
}

/// The key columns' values of `row`, as a JSON object.
fn key_of(row: &Row<'_>) -> Option<String> {
    let rel = row.relation;
    if rel.key.is_empty() {
        return None;
    }
    let all = row.to_json();
    let key: serde_json::Map<_, _> = rel
        .key
        .iter()
        .map(|&i| {
            let name = &rel.columns[i].name;
            (name.clone(), all.get(name).cloned().unwrap_or_default())
        })
        .collect();
    Some(serde_json::Value::Object(key).to_string())
}

impl Handler for Mirror {
    async fn event(&mut self, event: &Event<'_>) -> Result<(), HandlerError> {
        let Some(rel) = event.relation else {
            return Ok(());
        };
        let tbl = format!("{}.{}", rel.schema, rel.name);
        if event.op == Op::Truncate {
            self.batch.push(Write::Truncate { tbl });
            return Ok(());
        }
        // An update that changed the key removes the row under its old key.
        let old_key = event.old.as_ref().and_then(key_of);
        let new_key = event.new.as_ref().and_then(key_of);
        if let Some(key) = old_key.filter(|k| Some(k) != new_key.as_ref()) {
            self.batch.push(Write::Delete {
                tbl: tbl.clone(),
                key,
            });
        }
        if let (Some(key), Some(row)) = (new_key, event.new) {
            let row = row.to_json().to_string();
            self.batch.push(Write::Upsert { tbl, key, row });
        }
        Ok(())
    }

    async fn commit(&mut self, _commit: &Event<'_>) -> Result<Completion, HandlerError> {
        let batch = std::mem::take(&mut self.batch);
        if batch.is_empty() {
            return Ok(Completion::done());
        }
        let client = self.client.clone();
        // Runs after the completions before it: mirror transactions commit
        // in source order while pgstream decodes on.
        Ok(Completion::when(async move {
            client.batch_execute("BEGIN").await?;
            for w in &batch {
                match w {
                    Write::Upsert { tbl, key, row } => {
                        client
                            .execute(
                                "INSERT INTO pgstream_mirror VALUES ($1, $2::text::jsonb, $3::text::jsonb)
                                 ON CONFLICT (tbl, key) DO UPDATE SET row = EXCLUDED.row",
                                &[tbl, key, row],
                            )
                            .await?;
                    }
                    Write::Delete { tbl, key } => {
                        client
                            .execute(
                                "DELETE FROM pgstream_mirror WHERE tbl = $1 AND key = $2::text::jsonb",
                                &[tbl, key],
                            )
                            .await?;
                    }
                    Write::Truncate { tbl } => {
                        client
                            .execute("DELETE FROM pgstream_mirror WHERE tbl = $1", &[tbl])
                            .await?;
                    }
                }
            }
            client.batch_execute("COMMIT").await?;
            Ok(())
        }))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [source, slot, publication, target] = &args[..] else {
        return Err("usage: mirror SOURCE_CONNINFO SLOT PUBLICATION TARGET_CONNINFO".into());
    };
    let (client, connection) = tokio_postgres::connect(target, NoTls).await?;
    tokio::spawn(connection);
    client.batch_execute(SETUP).await?;

    let mut config = Config::new(&ConnArgs::conninfo(source.as_str()), slot.as_str())?;
    config.publications = vec![publication.clone()];
    // The mirror may live in the source database: never mirror itself.
    config.set_tables(&[], &["pgstream_mirror".into()])?;
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        let _ = stop.send(true);
    });
    let mut mirror = Mirror {
        client: Arc::new(client),
        batch: Vec::new(),
    };
    pgstream::run(config, &mut mirror, shutdown).await?;
    Ok(())
}
