//! Route and router configuration, as the server's TOML spells it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How a route orders its targets for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Strategy {
    /// The targets in the order listed: the first healthy one serves.
    #[default]
    Failover,
    /// Each call starts one target further along the list.
    RoundRobin,
    /// Calls are spread by the targets' weights (smooth weighted
    /// round-robin: a 3:1 route sends exactly 3 of every 4 calls to the
    /// first target).
    Weighted,
    /// The target with the lowest moving average of time to first token
    /// first; targets not measured yet go first, to be measured.
    LeastLatency,
    /// The target with the lowest price (input plus output per 1000
    /// tokens) first; targets without a price go last.
    Cheapest,
}

/// What a route does when its provider fails after output was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AfterFirstToken {
    /// The call ends with the error (phase after-first-token); the partial
    /// output stays.
    #[default]
    Abort,
    /// A `status {state: "restarted"}` tells the client to discard the
    /// partial answer; the next target answers from the start.
    Restart,
    /// The next target is asked to continue the partial text (sent as an
    /// assistant prefill); the client sees one answer.
    Continue,
}

impl AfterFirstToken {
    /// Parses the request-level override (`metadata.after_first_token`).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "abort" => Some(Self::Abort),
            "restart" => Some(Self::Restart),
            "continue" => Some(Self::Continue),
            _ => None,
        }
    }
}

/// One target of a route: a model (`provider/model` or an alias) and its
/// weight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TargetConfig {
    /// `provider/model`, or an alias of one.
    pub model: String,
    /// The share of calls under [`Strategy::Weighted`] (other strategies
    /// ignore it).
    #[serde(default = "one")]
    pub weight: u32,
}

impl TargetConfig {
    /// A target for `model` with weight 1.
    pub fn new(model: impl Into<String>) -> Self {
        Self {
            model: model.into(),
            weight: 1,
        }
    }

    /// Sets the weight.
    #[must_use]
    pub fn with_weight(mut self, weight: u32) -> Self {
        self.weight = weight;
        self
    }
}

fn one() -> u32 {
    1
}

/// A route: a model name clients ask for, served by weighted targets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RouteConfig {
    /// The model name clients use, e.g. `"smart"`.
    pub name: String,
    /// How targets are ordered for each call.
    #[serde(default)]
    pub strategy: Strategy,
    /// What happens when a target fails after output was sent.
    #[serde(default)]
    pub after_first_token: AfterFirstToken,
    /// Further attempts on the same target after a retryable error (then
    /// the next target is tried).
    #[serde(default)]
    pub retries: u32,
    /// Seconds a response stays cached; 0 caches nothing.
    #[serde(default)]
    pub cache_ttl_secs: u64,
    /// The targets, in priority order.
    pub targets: Vec<TargetConfig>,
    /// Timeouts for this route; unset ones come from the router's.
    #[serde(default)]
    pub timeouts: TimeoutOverrides,
    /// Model "auto": the intents (`routing.intent`) this route serves;
    /// empty serves any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub intents: Vec<String>,
    /// Model "auto": the latency class (`routing.latency`: "low",
    /// "balanced", "batch") this route is for; unset serves any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<String>,
    /// Model "auto": whether the targets run on this machine or network
    /// (`routing.prefer_local` picks such routes first).
    #[serde(default)]
    pub local: bool,
    /// The route's budget, for all its callers together.
    #[serde(default)]
    pub budget: crate::BudgetConfig,
}

impl RouteConfig {
    /// A failover route named `name` over `targets`, with the defaults.
    pub fn new(name: impl Into<String>, targets: impl IntoIterator<Item = TargetConfig>) -> Self {
        Self {
            name: name.into(),
            strategy: Strategy::default(),
            after_first_token: AfterFirstToken::default(),
            retries: 0,
            cache_ttl_secs: 0,
            targets: targets.into_iter().collect(),
            timeouts: TimeoutOverrides::default(),
            intents: Vec::new(),
            latency: None,
            local: false,
            budget: crate::BudgetConfig::default(),
        }
    }

    /// Sets the strategy.
    #[must_use]
    pub fn with_strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// Sets the after-first-token policy.
    #[must_use]
    pub fn with_after_first_token(mut self, policy: AfterFirstToken) -> Self {
        self.after_first_token = policy;
        self
    }

    /// Sets the retries per target.
    #[must_use]
    pub fn with_retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// Sets the route's timeouts.
    #[must_use]
    pub fn with_timeouts(mut self, timeouts: TimeoutOverrides) -> Self {
        self.timeouts = timeouts;
        self
    }
}

/// Per-route timeouts in seconds (fractions allowed; 0 turns one off);
/// unset ones fall back to the router's [`Timeouts`].
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TimeoutOverrides {
    /// See [`Timeouts::connect`].
    pub connect_secs: Option<f64>,
    /// See [`Timeouts::first_token`].
    pub first_token_secs: Option<f64>,
    /// See [`Timeouts::idle`].
    pub idle_secs: Option<f64>,
    /// See [`Timeouts::total`].
    pub total_secs: Option<f64>,
}

/// The timeouts of one attempt and of the whole call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Timeouts {
    /// From the attempt's start until the provider answers (connection and
    /// response headers).
    pub connect: Duration,
    /// From the attempt's start until its first output (token, tool call
    /// or patch) or its end.
    pub first_token: Duration,
    /// The longest silence between two events once output flows.
    pub idle: Duration,
    /// The whole call, every attempt and backoff included (the call's own
    /// deadline wins when it is earlier).
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            first_token: Duration::from_secs(60),
            idle: Duration::from_secs(60),
            total: Duration::from_secs(600),
        }
    }
}

impl Timeouts {
    /// A timeout that is off: a century, so deadlines computed from it
    /// stay representable.
    pub const OFF: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

    /// These timeouts with `overrides` applied. 0 turns a timeout off (as
    /// every timeout of the server's); non-finite or negative values are
    /// ignored.
    pub fn with(self, overrides: &TimeoutOverrides) -> Self {
        let pick = |value: Option<f64>, default: Duration| match value {
            Some(0.0) => Self::OFF,
            Some(secs) => Duration::try_from_secs_f64(secs).unwrap_or(default),
            None => default,
        };
        Self {
            connect: pick(overrides.connect_secs, self.connect),
            first_token: pick(overrides.first_token_secs, self.first_token),
            idle: pick(overrides.idle_secs, self.idle),
            total: pick(overrides.total_secs, self.total),
        }
    }
}

/// When a target's circuit breaker opens and how it recovers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker.
    pub consecutive_failures: u32,
    /// Share of failed calls in the window that opens it (0 to 1)...
    pub error_ratio: f64,
    /// ...once the window holds at least this many calls.
    pub min_calls: u32,
    /// The window for the error ratio, in seconds.
    pub window_secs: u64,
    /// Seconds an open breaker waits before letting one probe call through
    /// (half-open); a failed probe opens it again for as long.
    pub cooldown_secs: u64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            error_ratio: 0.5,
            min_calls: 20,
            window_secs: 60,
            cooldown_secs: 30,
        }
    }
}

/// Retry delays between two attempts on the same target.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct BackoffConfig {
    /// The first delay, in milliseconds (then doubled each time, with
    /// jitter).
    pub initial_ms: u64,
    /// The longest delay, in milliseconds.
    pub max_ms: u64,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self {
            initial_ms: 200,
            max_ms: 10_000,
        }
    }
}

/// Settings shared by every route: the server's `[router]` table.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct RouterConfig {
    /// Default timeouts (seconds); routes override single values.
    pub timeouts: TimeoutOverrides,
    /// Circuit breaker settings for every target.
    pub breaker: BreakerConfig,
    /// Retry delays.
    pub backoff: BackoffConfig,
    /// The model for each provider when a request's `providers` list names
    /// a provider that does not serve the request's model:
    /// `provider = "model"`.
    pub default_models: std::collections::BTreeMap<String, String>,
    /// The route model "auto" falls back to when no route matches the
    /// request's routing hints.
    pub auto: Option<String>,
    /// The response cache.
    pub cache: crate::CacheConfig,
    /// Every subject's budget (each subject has its own).
    pub subject_budget: crate::BudgetConfig,
}

impl RouterConfig {
    /// The timeouts with the configured defaults applied.
    pub fn timeouts(&self) -> Timeouts {
        Timeouts::default().with(&self.timeouts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_turns_a_timeout_off_and_unset_keeps_the_default() {
        let overrides = TimeoutOverrides {
            idle_secs: Some(0.0),
            first_token_secs: Some(1.5),
            total_secs: Some(-3.0),
            ..TimeoutOverrides::default()
        };
        let timeouts = Timeouts::default().with(&overrides);
        assert_eq!(timeouts.idle, Timeouts::OFF);
        assert_eq!(timeouts.first_token, Duration::from_millis(1500));
        assert_eq!(timeouts.total, Timeouts::default().total);
        assert_eq!(timeouts.connect, Timeouts::default().connect);
    }
}
