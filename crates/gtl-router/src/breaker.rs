//! Circuit breakers: one per target, shared by every route that uses it.
//!
//! The machine takes the time as an argument, so it is deterministic; the
//! router passes `tokio::time::Instant::now()`, which tests pause.

use std::time::Duration;

use tokio::time::Instant;

use crate::BreakerConfig;

/// A breaker's state, as `models.list` and the logs show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Health {
    /// Calls flow.
    Closed,
    /// Calls are refused until the cooldown ends.
    Open,
    /// The cooldown ended: one probe call is let through.
    HalfOpen,
}

impl Health {
    /// `"closed"`, `"open"` or `"half_open"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

/// The error-ratio window is kept in this many buckets.
const BUCKETS: usize = 10;

/// One target's breaker.
#[derive(Debug)]
pub(crate) struct Breaker {
    /// The target, `provider/model`, for the logs.
    target: String,
    config: BreakerConfig,
    state: State,
    consecutive: u32,
    /// `(bucket start, successes, failures)`, oldest first.
    window: Vec<(Instant, u32, u32)>,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Closed,
    Open {
        until: Instant,
    },
    /// `probe`: when the probe call in flight started, if one is.
    HalfOpen {
        probe: Option<Instant>,
    },
}

impl Breaker {
    pub(crate) fn new(target: impl Into<String>, config: BreakerConfig) -> Self {
        Self {
            target: target.into(),
            config,
            state: State::Closed,
            consecutive: 0,
            window: Vec::with_capacity(BUCKETS),
        }
    }

    fn cooldown(&self) -> Duration {
        Duration::from_secs(self.config.cooldown_secs)
    }

    /// The state at `now` (an open breaker whose cooldown is over reads
    /// as half-open).
    pub(crate) fn health(&self, now: Instant) -> Health {
        match self.state {
            State::Closed => Health::Closed,
            State::Open { until } if now < until => Health::Open,
            State::Open { .. } | State::HalfOpen { .. } => Health::HalfOpen,
        }
    }

    /// Whether a call may go to the target now; `Err` holds how long until
    /// it may. Letting a half-open probe through counts it as in flight.
    pub(crate) fn try_acquire(&mut self, now: Instant) -> Result<(), Duration> {
        match self.state {
            State::Closed => Ok(()),
            State::Open { until } if now < until => Err(until - now),
            State::Open { .. } => {
                self.state = State::HalfOpen { probe: Some(now) };
                tracing::info!(target = %self.target, "circuit breaker half-open: probing");
                Ok(())
            }
            // A probe that never reported (its call was cancelled) stops
            // blocking others after one cooldown.
            State::HalfOpen {
                probe: Some(started),
            } if now < started + self.cooldown() => Err(started + self.cooldown() - now),
            State::HalfOpen { .. } => {
                self.state = State::HalfOpen { probe: Some(now) };
                Ok(())
            }
        }
    }

    /// Records a call's outcome at `now`.
    pub(crate) fn record(&mut self, now: Instant, ok: bool) {
        self.count(now, ok);
        match (self.state, ok) {
            (State::HalfOpen { .. }, true) => {
                tracing::info!(target = %self.target, "circuit breaker closed: the probe succeeded");
                self.state = State::Closed;
                self.consecutive = 0;
                self.window.clear();
            }
            (State::HalfOpen { .. }, false) => self.open(now, "the probe failed"),
            (State::Open { .. }, _) => {}
            (State::Closed, true) => self.consecutive = 0,
            (State::Closed, false) => {
                self.consecutive += 1;
                let (calls, failures) = self
                    .window
                    .iter()
                    .fold((0, 0), |(c, f), &(_, ok, bad)| (c + ok + bad, f + bad));
                if self.consecutive >= self.config.consecutive_failures.max(1) {
                    self.open(now, "consecutive failures");
                } else if calls >= self.config.min_calls.max(1)
                    && f64::from(failures) >= self.config.error_ratio * f64::from(calls)
                {
                    self.open(now, "error ratio");
                }
            }
        }
    }

    fn open(&mut self, now: Instant, why: &'static str) {
        tracing::warn!(
            target = %self.target,
            reason = why,
            cooldown_secs = self.config.cooldown_secs,
            "circuit breaker open"
        );
        self.state = State::Open {
            until: now + self.cooldown(),
        };
    }

    fn count(&mut self, now: Instant, ok: bool) {
        let window = Duration::from_secs(self.config.window_secs.max(1));
        let bucket = window / BUCKETS as u32;
        self.window.retain(|&(start, _, _)| now < start + window);
        match self.window.last_mut() {
            Some((start, good, bad)) if now < *start + bucket => {
                *if ok { good } else { bad } += 1;
            }
            _ => self.window.push((now, u32::from(ok), u32::from(!ok))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> BreakerConfig {
        BreakerConfig {
            consecutive_failures: 3,
            error_ratio: 0.5,
            min_calls: 10,
            window_secs: 60,
            cooldown_secs: 30,
        }
    }

    #[test]
    fn consecutive_failures_open_and_a_probe_closes() {
        let t0 = Instant::now();
        let mut breaker = Breaker::new("p/m", config());
        for _ in 0..2 {
            breaker.record(t0, false);
        }
        assert_eq!(breaker.health(t0), Health::Closed);
        breaker.record(t0, false);
        assert_eq!(breaker.health(t0), Health::Open);
        assert_eq!(breaker.try_acquire(t0), Err(Duration::from_secs(30)));
        let later = t0 + Duration::from_secs(30);
        assert_eq!(breaker.health(later), Health::HalfOpen);
        assert_eq!(breaker.try_acquire(later), Ok(()));
        // One probe at a time.
        assert!(breaker.try_acquire(later).is_err());
        breaker.record(later, true);
        assert_eq!(breaker.health(later), Health::Closed);
    }

    #[test]
    fn a_failed_probe_opens_again() {
        let t0 = Instant::now();
        let mut breaker = Breaker::new("p/m", config());
        for _ in 0..3 {
            breaker.record(t0, false);
        }
        let later = t0 + Duration::from_secs(31);
        breaker.try_acquire(later).unwrap();
        breaker.record(later, false);
        assert_eq!(breaker.health(later), Health::Open);
        assert_eq!(
            breaker.try_acquire(later + Duration::from_secs(1)),
            Err(Duration::from_secs(29))
        );
    }

    #[test]
    fn the_error_ratio_opens_without_a_run_of_failures() {
        let t0 = Instant::now();
        let mut breaker = Breaker::new("p/m", config());
        // Alternating: never 3 in a row, but half fail.
        for i in 0..10 {
            breaker.record(t0, i % 2 == 0);
        }
        assert_eq!(breaker.health(t0), Health::Open);
    }

    #[test]
    fn old_failures_leave_the_window() {
        let t0 = Instant::now();
        let mut breaker = Breaker::new("p/m", config());
        for i in 0..9 {
            breaker.record(t0, i % 2 == 0);
        }
        // A minute later the old calls no longer count.
        let later = t0 + Duration::from_secs(61);
        breaker.record(later, false);
        assert_eq!(breaker.health(later), Health::Closed);
    }
}
