//! [`Metered`]: the handler as the metrics see it. It counts what reaches
//! the handler (the snapshot's rows too), its failures, and how long each
//! transaction took from its commit on the server to written.

use crate::event::{Event, Op};
use crate::sink::{Completion, Handler, HandlerError};

use super::Metrics;

/// Wraps the run's handler; every call goes straight through.
pub(crate) struct Metered<'h, H> {
    pub(crate) inner: &'h mut H,
    pub(crate) metrics: Metrics,
}

impl<H: Handler> Metered<'_, H> {
    fn counted<T>(&self, result: Result<T, HandlerError>) -> Result<T, HandlerError> {
        if result.is_err() {
            self.metrics.sink_error();
        }
        result
    }
}

impl<H: Handler> Handler for Metered<'_, H> {
    async fn event(&mut self, event: &Event<'_>) -> Result<(), HandlerError> {
        self.metrics.event(event.op, event.commit_ts);
        let result = self.inner.event(event).await;
        self.counted(result)
    }

    async fn commit(&mut self, commit: &Event<'_>) -> Result<Completion, HandlerError> {
        let result = self.inner.commit(commit).await;
        let completion = self.counted(result)?;
        // A message outside a transaction and the snapshot are no
        // transactions.
        if commit.op == Op::Message || commit.snapshot_lsn.is_some() {
            return Ok(completion);
        }
        self.metrics.transaction();
        let Some(ts) = commit.commit_ts.or(commit.prepare_ts) else {
            return Ok(completion);
        };
        let metrics = self.metrics.clone();
        Ok(match completion.into_future() {
            None => {
                metrics.transaction_written(ts);
                Completion::done()
            }
            Some(work) => Completion::when(async move {
                let result = work.await;
                match &result {
                    Ok(()) => metrics.transaction_written(ts),
                    Err(_) => metrics.sink_error(),
                }
                result
            }),
        })
    }

    async fn flush(&mut self) -> Result<Completion, HandlerError> {
        let result = self.inner.flush().await;
        self.counted(result)
    }

    async fn failed(&mut self) -> HandlerError {
        let e = self.inner.failed().await;
        self.metrics.sink_error();
        e
    }

    fn cancel(&mut self) {
        self.inner.cancel();
    }
}
