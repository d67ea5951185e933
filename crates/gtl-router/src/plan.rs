//! Which attempt comes next, and after how long.

use std::time::Duration;

use backon::BackoffBuilder as _;
use gtl_core::ProviderError;
use gtl_proto::ErrorCode;
use tokio::time::Instant;

use crate::BackoffConfig;
use crate::routed::retry_wait;
use crate::target::Target;

/// A call's attempts: each target in order, retried up to `retries` times
/// after retryable errors (with exponential backoff and jitter, or the
/// provider's Retry-After when longer), all within the deadline. Targets
/// whose breaker is open are skipped.
pub(crate) struct Plan {
    order: Vec<Target>,
    /// The target of the last attempt, once there was one.
    index: Option<usize>,
    tries: u32,
    retries: u32,
    config: BackoffConfig,
    backoff: backon::ExponentialBackoff,
    deadline: Instant,
    /// The shortest wait until a skipped target's breaker lets calls in.
    blocked_for: Option<Duration>,
}

impl Plan {
    pub(crate) fn new(
        order: Vec<Target>,
        retries: u32,
        config: BackoffConfig,
        deadline: Instant,
    ) -> Self {
        Self {
            order,
            index: None,
            tries: 0,
            retries,
            config,
            backoff: backoff(config),
            deadline,
            blocked_for: None,
        }
    }

    pub(crate) fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether an attempt may follow one that failed with `error`
    /// (breakers aside).
    pub(crate) fn has_next(&self, error: &ProviderError) -> bool {
        let index = self.index.unwrap_or(0);
        Instant::now() < self.deadline && ((self.same_again(error)) || index + 1 < self.order.len())
    }

    fn same_again(&self, error: &ProviderError) -> bool {
        self.index.is_some() && error.is_retryable() && self.tries <= self.retries
    }

    /// The next attempt's target and how long to wait first, after `last`
    /// failed (`None` for the first attempt).
    pub(crate) fn next(
        &mut self,
        last: Option<&ProviderError>,
    ) -> Result<(Target, Duration), ProviderError> {
        let now = Instant::now();
        if now >= self.deadline {
            return Err(ProviderError::new(
                ErrorCode::ProviderTimeout,
                "the call's total time is up",
            ));
        }
        if let (Some(index), Some(error)) = (self.index, last)
            && self.same_again(error)
        {
            let delay = self.backoff.next().unwrap_or(Duration::ZERO);
            let wait = retry_wait(delay, error.retry_after);
            let target = &self.order[index];
            if now + wait < self.deadline && target.stats.try_acquire().is_ok() {
                self.tries += 1;
                metrics::counter!("gtl_retries_total").increment(1);
                return Ok((target.clone(), wait));
            }
        }
        let mut index = self.index.map_or(0, |i| i + 1);
        while index < self.order.len() {
            let target = &self.order[index];
            match target.stats.try_acquire() {
                Ok(()) => {
                    // Any attempt after the first on another target.
                    if self.index.is_some() {
                        metrics::counter!("gtl_failovers_total").increment(1);
                    }
                    self.index = Some(index);
                    self.tries = 1;
                    self.backoff = backoff(self.config);
                    return Ok((target.clone(), Duration::ZERO));
                }
                Err(wait) => {
                    tracing::debug!(target = %target.label, "skipped: circuit breaker open");
                    self.blocked_for = Some(self.blocked_for.map_or(wait, |w| w.min(wait)));
                    index += 1;
                }
            }
        }
        self.index = Some(self.order.len());
        Err(self.exhausted(last))
    }

    /// The error when no attempt is left.
    fn exhausted(&self, last: Option<&ProviderError>) -> ProviderError {
        match (last, self.blocked_for) {
            (Some(error), _) => error.clone(),
            (None, Some(wait)) => ProviderError::new(
                ErrorCode::ProviderUnavailable,
                "every target of the route has its circuit breaker open",
            )
            .with_retry_after(wait),
            (None, None) => ProviderError::new(
                ErrorCode::ModelNotFound,
                "the route has no target to call (none fits the request's budget)",
            ),
        }
    }
}

fn backoff(config: BackoffConfig) -> backon::ExponentialBackoff {
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(config.initial_ms))
        .with_max_delay(Duration::from_millis(config.max_ms))
        .with_jitter()
        .without_max_times()
        .build()
}
