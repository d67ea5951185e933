//! A route's target: a provider, its model, and what the router knows about
//! its health and speed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use gtl_core::Provider;
use gtl_providers::Price;
use tokio::time::Instant;

use crate::breaker::{Breaker, Health};

/// Weight of a new sample in the time-to-first-token average.
const EWMA_ALPHA: f64 = 0.3;

/// What the router tracks per target (`provider/model`), shared by every
/// route naming it.
#[derive(Debug)]
pub(crate) struct TargetStats {
    breaker: Mutex<Breaker>,
    /// Moving average of time to first token, in seconds.
    ttft: Mutex<Option<f64>>,
}

impl TargetStats {
    pub(crate) fn new(breaker: Breaker) -> Self {
        Self {
            breaker: Mutex::new(breaker),
            ttft: Mutex::new(None),
        }
    }

    fn breaker(&self) -> std::sync::MutexGuard<'_, Breaker> {
        self.breaker.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn health(&self) -> Health {
        self.breaker().health(Instant::now())
    }

    pub(crate) fn try_acquire(&self) -> Result<(), Duration> {
        self.breaker().try_acquire(Instant::now())
    }

    pub(crate) fn record(&self, ok: bool) {
        self.breaker().record(Instant::now(), ok);
    }

    pub(crate) fn record_ttft(&self, elapsed: Duration) {
        let sample = elapsed.as_secs_f64();
        let mut ttft = self.ttft.lock().unwrap_or_else(|p| p.into_inner());
        *ttft = Some(match *ttft {
            Some(average) => average + EWMA_ALPHA * (sample - average),
            None => sample,
        });
    }

    pub(crate) fn ttft(&self) -> Option<f64> {
        *self.ttft.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One target of a route, resolved.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// `provider/model`, for status events and logs.
    pub(crate) label: String,
    pub(crate) provider: Arc<dyn Provider>,
    /// The provider's own model name.
    pub(crate) model: String,
    /// The model as metrics label it.
    pub(crate) metric_model: String,
    pub(crate) weight: u32,
    pub(crate) price: Option<Price>,
    pub(crate) stats: Arc<TargetStats>,
}

impl Target {
    /// The provider's name (the part of the label before the slash).
    pub(crate) fn provider_name(&self) -> &str {
        self.provider.name()
    }
}
