//! Progress and lag counters, reported on stderr every `--stats-interval`,
//! on SIGUSR1, and once at shutdown.

use std::time::Instant;

use crate::event::Lsn;

/// Counters of one run (they survive reconnects).
#[derive(Debug)]
pub(crate) struct Stats {
    started: Instant,
    /// Change events and transactions decoded into output.
    pub changes: u64,
    pub transactions: u64,
    /// The last position the handler completed.
    pub written: Lsn,
    /// Last position acknowledged to the server.
    pub acked: Lsn,
    /// The server's WAL end, from its messages.
    pub server: Lsn,
    /// Changes at the previous report, for the rate.
    last: (Instant, u64),
}

impl Default for Stats {
    fn default() -> Self {
        let now = Instant::now();
        Stats {
            started: now,
            changes: 0,
            transactions: 0,
            written: Lsn::ZERO,
            acked: Lsn::ZERO,
            server: Lsn::ZERO,
            last: (now, 0),
        }
    }
}

impl Stats {
    /// One line describing progress since the previous report.
    pub(crate) fn report(&mut self) -> String {
        let now = Instant::now();
        let secs = now.duration_since(self.last.0).as_secs_f64().max(1e-3);
        let rate = (self.changes - self.last.1) as f64 / secs;
        self.last = (now, self.changes);
        format!("{}, {rate:.0} changes/s", self.totals())
    }

    /// The final line: totals over the whole run.
    pub(crate) fn summary(&self) -> String {
        let secs = self.started.elapsed().as_secs_f64();
        format!("{} in {secs:.1}s", self.totals())
    }

    fn totals(&self) -> String {
        format!(
            "{} changes in {} transactions; completed {}, acknowledged {}, lag {} bytes",
            self.changes,
            self.transactions,
            self.written,
            self.acked,
            self.server.0.saturating_sub(self.acked.0)
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::event::Lsn;

    #[test]
    fn lines_name_every_counter() {
        let mut s = super::Stats {
            changes: 10,
            transactions: 2,
            written: Lsn(0x10),
            acked: Lsn(0x10),
            server: Lsn(0x30),
            ..Default::default()
        };
        let line = s.report();
        assert!(
            line.starts_with(
                "10 changes in 2 transactions; completed 0/10, acknowledged 0/10, lag 32 bytes, "
            ),
            "{line}"
        );
        assert!(line.ends_with("changes/s"));
        assert!(s.summary().contains(" in "));
    }
}
