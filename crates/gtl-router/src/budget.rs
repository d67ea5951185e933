//! Budgets: tokens per minute and spend per day and month, per subject and
//! per route, checked before a provider is called and charged from each
//! call's usage.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::Stream;
use gtl_core::counters::Counters;
use gtl_core::{EventStream, Provider, ProviderError, Wrapper};
use gtl_proto::{Body, CompletionRequest, ErrorCode};
use serde::{Deserialize, Serialize};

/// Limits for one subject or one route; unset ones do not apply. Spend is
/// in USD from the price table; periods are UTC.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct BudgetConfig {
    /// Input plus output tokens per clock minute.
    pub tokens_per_minute: Option<u64>,
    /// USD per UTC day.
    pub usd_per_day: Option<f64>,
    /// USD per UTC calendar month.
    pub usd_per_month: Option<f64>,
}

impl BudgetConfig {
    /// Whether any limit is set.
    pub fn is_set(&self) -> bool {
        self.tokens_per_minute.is_some()
            || self.usd_per_day.is_some()
            || self.usd_per_month.is_some()
    }
}

/// The spend of every subject and route: counters per period, this
/// process's or (with a shared store) added up across replicas.
#[derive(Debug)]
pub(crate) struct Ledger {
    counters: Arc<Counters>,
}

impl Default for Ledger {
    fn default() -> Self {
        Self::new(Counters::local())
    }
}

impl Ledger {
    pub(crate) fn new(counters: Arc<Counters>) -> Self {
        Self { counters }
    }

    /// `RATE_LIMIT` with the time until the period rolls over when `key`
    /// (e.g. `subject alice`) has used up a limit of `budget`.
    pub(crate) fn check(
        &self,
        key: &str,
        budget: &BudgetConfig,
        now: u64,
    ) -> Result<(), ProviderError> {
        let (minute, day, month) = periods(now);
        let refuse = |what: String, until: u64| {
            let wait = until.saturating_sub(now).max(1);
            Err(ProviderError::new(
                ErrorCode::RateLimit,
                format!("{key} has used its budget of {what}: retry in {wait} s"),
            )
            .with_retry_after(Duration::from_secs(wait)))
        };
        if let Some(limit) = budget.tokens_per_minute
            && self.counters.get(&counter(key, "tokens/min", minute), now) >= limit as f64
        {
            return refuse(format!("{limit} tokens per minute"), (minute + 1) * 60);
        }
        if let Some(limit) = budget.usd_per_day
            && self.counters.get(&counter(key, "usd/day", day), now) >= limit
        {
            return refuse(format!("${limit} per day"), (day + 1) * 86_400);
        }
        if let Some(limit) = budget.usd_per_month
            && self.counters.get(&counter(key, "usd/month", month), now) >= limit
        {
            return refuse(format!("${limit} per month"), next_month_start(month));
        }
        Ok(())
    }

    /// Charges `tokens` and `usd` to `key` at `now`.
    pub(crate) fn charge(&self, key: &str, tokens: u64, usd: f64, now: u64) {
        let (minute, day, month) = periods(now);
        let counters = &self.counters;
        if tokens > 0 {
            let expires = (minute + 1) * 60;
            counters.add(
                &counter(key, "tokens/min", minute),
                tokens as f64,
                expires,
                now,
            );
        }
        if usd > 0.0 {
            let expires = (day + 1) * 86_400;
            counters.add(&counter(key, "usd/day", day), usd, expires, now);
            let expires = next_month_start(month);
            counters.add(&counter(key, "usd/month", month), usd, expires, now);
        }
    }
}

/// The counter of `key`'s `what` in period number `period`.
fn counter(key: &str, what: &str, period: u64) -> String {
    format!("budget|{key}|{what}|{period}")
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The minute, day and month (months since 1970-01) of `now`.
fn periods(now: u64) -> (u64, u64, u64) {
    let day = now / 86_400;
    let (year, month) = civil_month(day);
    (now / 60, day, (year - 1970) * 12 + (month - 1))
}

/// The Unix time at which the month after `month` (months since 1970-01)
/// starts.
fn next_month_start(month: u64) -> u64 {
    let next = month + 1;
    days_from_civil(1970 + next / 12, next % 12 + 1) * 86_400
}

/// The year and month (1 to 12) of a day since the epoch (Howard
/// Hinnant's civil-from-days, for days on or after 1970-01-01).
fn civil_month(days: u64) -> (u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month)
}

/// Days since the epoch of the first of `month` in `year`.
fn days_from_civil(year: u64, month: u64) -> u64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The budget layer: a provider whose calls' usage is charged to the
/// ledger under `keys` (the subject's, the route's).
#[derive(Debug)]
pub(crate) struct Metered {
    pub(crate) inner: Arc<dyn Provider>,
    pub(crate) ledger: Arc<Ledger>,
    pub(crate) keys: Vec<String>,
}

#[async_trait::async_trait]
impl Wrapper for Metered {
    fn inner(&self) -> &Arc<dyn Provider> {
        &self.inner
    }

    async fn wrap(&self, request: CompletionRequest) -> Result<EventStream, ProviderError> {
        let events = self.inner.stream(request).await?;
        Ok(Box::pin(Charged {
            events,
            ledger: self.ledger.clone(),
            keys: self.keys.clone(),
            tokens: 0,
            usd: 0.0,
        }))
    }
}

/// A stream that charges its usage when it ends or is dropped.
struct Charged {
    events: EventStream,
    ledger: Arc<Ledger>,
    keys: Vec<String>,
    tokens: u64,
    usd: f64,
}

impl Stream for Charged {
    type Item = Body;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Body>> {
        let polled = self.events.as_mut().poll_next(cx);
        if let Poll::Ready(Some(Body::Usage(usage))) = &polled {
            self.tokens += usage.tokens_in + usage.tokens_out;
            self.usd += usage.cost;
        }
        polled
    }
}

impl Drop for Charged {
    fn drop(&mut self) {
        if self.tokens == 0 && self.usd == 0.0 {
            return;
        }
        let now = unix_now();
        for key in &self.keys {
            self.ledger.charge(key, self.tokens, self.usd, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_follow_the_calendar() {
        // 2026-12-03 12:00 UTC.
        let now = 1_796_299_200;
        let (_, _, month) = periods(now);
        assert_eq!(month, (2026 - 1970) * 12 + 11);
        // 2027-01-01 00:00 UTC.
        assert_eq!(next_month_start(month), 1_798_761_600);
        assert_eq!(civil_month(0), (1970, 1));
        assert_eq!(days_from_civil(2000, 3), 11_017);
    }

    #[test]
    fn tokens_per_minute_refuse_until_the_next_minute() {
        let ledger = Ledger::default();
        let budget = BudgetConfig {
            tokens_per_minute: Some(100),
            ..BudgetConfig::default()
        };
        let t = 6_000; // a minute boundary
        ledger.check("subject a", &budget, t).unwrap();
        ledger.charge("subject a", 100, 0.0, t + 10);
        let refused = ledger.check("subject a", &budget, t + 20).unwrap_err();
        assert_eq!(refused.code, ErrorCode::RateLimit);
        assert_eq!(refused.retry_after, Some(Duration::from_secs(40)));
        // Someone else, and the next minute, are fine.
        ledger.check("subject b", &budget, t + 20).unwrap();
        ledger.check("subject a", &budget, t + 60).unwrap();
    }

    #[test]
    fn spend_per_day_and_month() {
        let ledger = Ledger::default();
        let day = BudgetConfig {
            usd_per_day: Some(1.0),
            ..BudgetConfig::default()
        };
        let month = BudgetConfig {
            usd_per_month: Some(2.5),
            ..BudgetConfig::default()
        };
        let now = 1_796_299_200; // 2026-12-03 12:00 UTC
        ledger.charge("route r", 0, 1.0, now);
        let refused = ledger.check("route r", &day, now).unwrap_err();
        assert_eq!(refused.retry_after, Some(Duration::from_secs(12 * 3600)));
        ledger.check("route r", &month, now).unwrap();
        ledger.charge("route r", 0, 1.5, now + 86_400);
        ledger.check("route r", &day, now + 86_400 + 1).unwrap_err();
        let refused = ledger
            .check("route r", &month, now + 2 * 86_400)
            .unwrap_err();
        assert!(refused.message.contains("per month"), "{refused}");
    }
}
