//! The handler's pending completions, in the order it returned them, each
//! with the position that becomes acknowledgeable once it completes.

use std::collections::VecDeque;
use std::future::poll_fn;

use crate::event::Lsn;
use crate::sink::{Completion, HandlerError, Work};

/// Pending completions. Only the oldest is polled, so they complete (and
/// their futures run) in order.
#[derive(Default)]
pub(super) struct Completions {
    queue: VecDeque<(Option<Lsn>, Work)>,
}

impl Completions {
    /// Adds the completion of everything up to `lsn` (`None`: no new
    /// position, as for an idle flush). Returns the position when it is
    /// complete at once: nothing pending, nothing to wait for.
    pub(super) fn push(&mut self, lsn: Option<Lsn>, completion: Completion) -> Option<Lsn> {
        match completion.into_future() {
            Some(work) => {
                self.queue.push_back((lsn, work));
                None
            }
            // Done: complete with the last pending one.
            None => match self.queue.back_mut() {
                Some((last, _)) => {
                    *last = (*last).max(lsn);
                    None
                }
                None => lsn,
            },
        }
    }

    pub(super) fn len(&self) -> usize {
        self.queue.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Resolves when the oldest completes, with its position; never while
    /// none is pending. Cancel-safe: the oldest stays queued until it
    /// completes. After an error the queue is empty.
    pub(super) async fn next(&mut self) -> Result<Option<Lsn>, HandlerError> {
        let Some((_, work)) = self.queue.front_mut() else {
            return std::future::pending().await;
        };
        let result = poll_fn(|cx| work.as_mut().poll(cx)).await;
        // Done with, either way: a finished future must not be polled again.
        let lsn = self.queue.pop_front().and_then(|(lsn, _)| lsn);
        if result.is_err() {
            // Nothing after a failed completion may complete (and be
            // acknowledged past it), nor start.
            self.queue.clear();
        }
        result.map(|()| lsn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    #[test]
    fn done_completes_with_the_last_pending() {
        let mut c = Completions::default();
        assert_eq!(c.push(Some(Lsn(10)), Completion::done()), Some(Lsn(10)));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        assert_eq!(
            c.push(
                Some(Lsn(20)),
                Completion::when(async move {
                    rx.await?;
                    Ok(())
                })
            ),
            None
        );
        assert_eq!(c.push(Some(Lsn(30)), Completion::done()), None);
        assert_eq!(c.push(None, Completion::done()), None);
        assert_eq!(c.len(), 1);
        assert!(c.next().now_or_never().is_none(), "still pending");
        tx.send(()).unwrap();
        assert_eq!(c.next().now_or_never().unwrap().unwrap(), Some(Lsn(30)));
        assert!(c.is_empty());
        assert!(c.next().now_or_never().is_none(), "none pending: never");
    }

    #[test]
    fn complete_in_order() {
        let mut c = Completions::default();
        let (tx1, rx1) = tokio::sync::oneshot::channel::<()>();
        let (tx2, rx2) = tokio::sync::oneshot::channel::<()>();
        let _ = c.push(
            Some(Lsn(1)),
            Completion::when(async move { Ok(rx1.await?) }),
        );
        let _ = c.push(
            Some(Lsn(2)),
            Completion::when(async move { Ok(rx2.await?) }),
        );
        tx2.send(()).unwrap();
        assert!(
            c.next().now_or_never().is_none(),
            "the second waits for the first"
        );
        tx1.send(()).unwrap();
        assert_eq!(c.next().now_or_never().unwrap().unwrap(), Some(Lsn(1)));
        assert_eq!(c.next().now_or_never().unwrap().unwrap(), Some(Lsn(2)));
    }

    #[test]
    fn errors_come_through() {
        let mut c = Completions::default();
        let _ = c.push(
            Some(Lsn(1)),
            Completion::when(async { Err("disk full".into()) }),
        );
        let _ = c.push(Some(Lsn(2)), Completion::when(async { Ok(()) }));
        let e = c.next().now_or_never().unwrap().unwrap_err();
        assert_eq!(e.to_string(), "disk full");
        assert!(
            c.is_empty(),
            "nothing after a failure is polled, nor acknowledged"
        );
    }
}
