//! The upstream side of the gateway's metrics: one layer around each call
//! to a provider (a plain model's provider, or each attempt of a routed
//! call), recording what that provider did. The call as the client sees it
//! is measured by the call service.
//!
//! Metrics go through the `metrics` facade: without an installed recorder
//! they cost a branch. Everything is recorded per attempt (at its first
//! output and at its end), never per token.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use gtl_core::{EventStream, Provider, ProviderError, Wrapper};
use gtl_proto::{Body, CompletionRequest, Usage};

use crate::timeout::is_output;

/// The label value for a model (or provider) name the configuration does
/// not know: a client's arbitrary string never becomes a label value.
pub const OTHER: &str = "other";

/// When a call reached the gateway, when its first upstream request was
/// sent and when an upstream's first output arrived: what the call service
/// needs to tell the gateway's own time apart from the provider's. Shared
/// by the call service and every attempt (see [`CallContext::with_timing`](crate::CallContext::with_timing)).
#[derive(Debug)]
pub struct CallTiming {
    received: Instant,
    sent: OnceLock<Instant>,
    first_output: OnceLock<Instant>,
}

impl CallTiming {
    /// A call received at `received`.
    pub fn new(received: Instant) -> Self {
        Self {
            received,
            sent: OnceLock::new(),
            first_output: OnceLock::new(),
        }
    }

    /// When the call service received the call.
    pub fn received(&self) -> Instant {
        self.received
    }

    /// When the first upstream request was sent (the first attempt's
    /// `Provider::stream` was called), if one was.
    pub fn sent(&self) -> Option<Instant> {
        self.sent.get().copied()
    }

    /// When the first output event (token, tool call, patch) came from an
    /// upstream, if one did. A cached answer has none.
    pub fn first_output(&self) -> Option<Instant> {
        self.first_output.get().copied()
    }

    /// The gateway's own time before the first output reached a client at
    /// `written`: received → first upstream request sent, plus upstream
    /// first output → `written`. `None` when no upstream produced output
    /// (a cached answer, an error).
    pub fn added_latency(&self, written: Instant) -> Option<std::time::Duration> {
        let sent = self.sent()?;
        let first = self.first_output()?;
        Some(
            sent.saturating_duration_since(self.received)
                + written.saturating_duration_since(first),
        )
    }
}

/// The model names the configuration knows, and so the only ones used as
/// metric label values.
#[derive(Debug, Default)]
pub(crate) struct KnownModels(HashSet<String>);

impl KnownModels {
    pub(crate) fn insert(&mut self, model: &str) {
        // A `provider/model` name is known by its model part too, as the
        // registry resolves it to that.
        if let Some((_, bare)) = model.split_once('/')
            && !bare.is_empty()
        {
            self.0.insert(bare.to_owned());
        }
        if !model.is_empty() {
            self.0.insert(model.to_owned());
        }
    }

    /// `model` when it is known, else [`OTHER`].
    pub(crate) fn label<'a>(&self, model: &'a str) -> &'a str {
        if self.0.contains(model) { model } else { OTHER }
    }
}

/// One call to a provider, observed.
#[derive(Debug)]
pub(crate) struct Observed {
    inner: Arc<dyn Provider>,
    /// The provider's configured name (shared: each record clones a
    /// pointer, not the text).
    provider: Arc<str>,
    /// The model's label ([`KnownModels::label`]).
    model: Arc<str>,
    timing: Option<Arc<CallTiming>>,
}

impl Observed {
    pub(crate) fn new(
        inner: Arc<dyn Provider>,
        provider: &str,
        model: &str,
        timing: Option<Arc<CallTiming>>,
    ) -> Self {
        Self {
            inner,
            provider: Arc::from(provider),
            model: Arc::from(model),
            timing,
        }
    }
}

#[async_trait::async_trait]
impl Wrapper for Observed {
    fn inner(&self) -> &Arc<dyn Provider> {
        &self.inner
    }

    fn wrap_with_api_key(&self, key: &str) -> Result<Arc<dyn Provider>, ProviderError> {
        let inner = self.inner.with_api_key(key)?;
        Ok(Arc::new(Self {
            inner,
            provider: self.provider.clone(),
            model: self.model.clone(),
            timing: self.timing.clone(),
        }))
    }

    async fn wrap(&self, request: CompletionRequest) -> Result<EventStream, ProviderError> {
        let sent = Instant::now();
        if let Some(timing) = &self.timing {
            let _ = timing.sent.set(sent);
        }
        match self.inner.stream(request).await {
            Ok(events) => Ok(gtl_core::watch_events(
                events,
                Watch {
                    provider: self.provider.clone(),
                    model: self.model.clone(),
                    timing: self.timing.clone(),
                    sent,
                    output: false,
                    usage: Usage::default(),
                },
            )),
            Err(error) => {
                provider_error(&self.provider, error.code.name());
                Err(error)
            }
        }
    }
}

fn provider_error(provider: &Arc<str>, code: &'static str) {
    metrics::counter!(
        "gtl_provider_errors_total",
        "provider" => provider.clone(),
        "code" => code,
    )
    .increment(1);
}

/// What one attempt has done so far.
struct Watch {
    provider: Arc<str>,
    model: Arc<str>,
    timing: Option<Arc<CallTiming>>,
    sent: Instant,
    output: bool,
    usage: Usage,
}

impl gtl_core::EventWatch for Watch {
    fn see(&mut self, body: &Body) {
        match body {
            Body::Usage(usage) => gtl_providers::merge_usage(&mut self.usage, usage),
            Body::Error(error) => provider_error(&self.provider, error.code().name()),
            body if !self.output && is_output(body) => {
                self.output = true;
                let now = Instant::now();
                if let Some(timing) = &self.timing {
                    let _ = timing.first_output.set(now);
                }
                metrics::histogram!(
                    "gtl_upstream_time_to_first_token_seconds",
                    "provider" => self.provider.clone(),
                    "model" => self.model.clone(),
                )
                .record(now.saturating_duration_since(self.sent));
            }
            _ => {}
        }
    }

    /// The attempt is over: what it used is paid for, whatever happened to
    /// the call.
    fn finish(self) {
        let usage = &self.usage;
        for (direction, tokens) in [("in", usage.tokens_in), ("out", usage.tokens_out)] {
            if tokens > 0 {
                metrics::counter!(
                    "gtl_tokens_total",
                    "direction" => direction,
                    "provider" => self.provider.clone(),
                    "model" => self.model.clone(),
                )
                .increment(tokens);
            }
        }
        if usage.cost > 0.0 {
            // The facade's counters count integers; a gauge that only ever
            // goes up carries the dollars (the exporter types it counter).
            metrics::gauge!(
                "gtl_cost_usd_total",
                "provider" => self.provider,
                "model" => self.model,
            )
            .increment(usage.cost);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_models_share_one_label() {
        let mut known = KnownModels::default();
        known.insert("openai/gpt-4o");
        known.insert("smart");
        assert_eq!(known.label("gpt-4o"), "gpt-4o");
        assert_eq!(known.label("openai/gpt-4o"), "openai/gpt-4o");
        assert_eq!(known.label("smart"), "smart");
        for client_string in ["gpt-4o-2024-08-06", "s_123", "", "smart "] {
            assert_eq!(known.label(client_string), OTHER);
        }
    }

    #[test]
    fn added_latency_leaves_out_the_upstreams_time() {
        let t0 = Instant::now();
        let ms = std::time::Duration::from_millis;
        let timing = CallTiming::new(t0);
        assert_eq!(timing.added_latency(t0 + ms(100)), None);
        let _ = timing.sent.set(t0 + ms(2));
        let _ = timing.first_output.set(t0 + ms(90));
        // A later attempt's times do not replace the first ones.
        let _ = timing.sent.set(t0 + ms(50));
        assert_eq!(timing.added_latency(t0 + ms(93)), Some(ms(5)));
    }
}
