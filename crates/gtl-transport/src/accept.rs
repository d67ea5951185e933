//! Accept loops that survive running out of descriptors.

use std::time::{Duration, Instant};

/// How long accepting pauses after a failure (EMFILE, ENFILE, ENOMEM…):
/// retrying at once would spin, while the connections being served can
/// free descriptors meanwhile.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Accept failures are logged at most once per this interval.
pub const ACCEPT_LOG_INTERVAL: Duration = Duration::from_secs(5);

/// Counts a listener's accept failures and says when to log them: once per
/// [`ACCEPT_LOG_INTERVAL`], with the count since the last log, never once
/// per attempt.
#[derive(Debug, Default)]
pub struct AcceptFailures {
    since_log: u64,
    last_log: Option<Instant>,
}

impl AcceptFailures {
    /// Records a failure; returns how many to report if a log line is due.
    pub fn record(&mut self) -> Option<u64> {
        self.since_log += 1;
        let due = self
            .last_log
            .is_none_or(|at| at.elapsed() >= ACCEPT_LOG_INTERVAL);
        if !due {
            return None;
        }
        self.last_log = Some(Instant::now());
        Some(std::mem::take(&mut self.since_log))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_the_first_failure_then_counts_quietly() {
        let mut failures = AcceptFailures::default();
        assert_eq!(failures.record(), Some(1));
        for _ in 0..1000 {
            assert_eq!(failures.record(), None);
        }
    }
}
