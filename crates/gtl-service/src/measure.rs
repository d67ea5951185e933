//! The call side of the gateway's metrics, recorded once here for every
//! transport (the upstream side is the router's).
//!
//! Through the `metrics` facade: the server installs a recorder; without
//! one each record is a branch. Calls are recorded when they start, at
//! their first output and when they end, never per token. Label values
//! are bounded: the route is the operation (`chat.complete`,
//! `chat.stream`, `session.pipe`), the transport a name fixed in code,
//! providers and models configured names or
//! [`OTHER`](gtl_router::OTHER), the outcome `ok`, `cancelled` or an
//! error code.

use std::sync::Arc;
use std::time::Instant;

use gtl_core::{EventStream, EventWatch, FirstOutput, Provider, ProviderError, Wrapper};
use gtl_proto::{Body, CompletionRequest, ErrorCode};
use gtl_router::CallTiming;
use metrics::{Histogram, counter, gauge, histogram};

/// The labels of one call.
#[derive(Debug, Clone)]
pub(crate) struct CallLabels {
    pub(crate) route: &'static str,
    pub(crate) transport: &'static str,
    /// Shared, so each record clones a pointer rather than the text.
    pub(crate) provider: Arc<str>,
    pub(crate) model: Arc<str>,
}

impl CallLabels {
    /// Counts a finished (or refused) call.
    pub(crate) fn count(&self, outcome: &'static str) {
        counter!(
            "gtl_requests_total",
            "route" => self.route,
            "transport" => self.transport,
            "provider" => self.provider.clone(),
            "model" => self.model.clone(),
            "outcome" => outcome,
        )
        .increment(1);
    }

    /// What the first output event's hand-over records: the time to first
    /// token as the gateway sees it and the gateway's own share of it.
    pub(crate) fn first_output(&self, timing: Arc<CallTiming>) -> FirstOutput {
        let ttft = histogram!(
            "gtl_time_to_first_token_seconds",
            "route" => self.route,
            "transport" => self.transport,
        );
        let added = histogram!("gtl_added_latency_seconds", "transport" => self.transport);
        FirstOutput::new(move || first_output(&timing, &ttft, &added, Instant::now()))
    }
}

fn first_output(timing: &CallTiming, ttft: &Histogram, added: &Histogram, written: Instant) {
    ttft.record(written.saturating_duration_since(timing.received()));
    if let Some(own) = timing.added_latency(written) {
        added.record(own);
    }
}

/// The label value of an outcome.
pub(crate) fn outcome(code: ErrorCode) -> &'static str {
    code.name()
}

/// `route` (the operation) of a request.
pub(crate) fn route_of(request: &CompletionRequest) -> &'static str {
    if request.pipe {
        "session.pipe"
    } else if request.stream {
        "chat.stream"
    } else {
        "chat.complete"
    }
}

/// A resume, by its outcome.
pub(crate) fn resumed(transport: &'static str, outcome: &'static str) {
    counter!("gtl_resumes_total", "transport" => transport, "outcome" => outcome).increment(1);
}

/// An open connection, counted in `gtl_active_connections` until dropped.
#[derive(Debug)]
pub(crate) struct OpenConnection(metrics::Gauge);

impl OpenConnection {
    pub(crate) fn new(transport: &'static str) -> Self {
        let open = gauge!("gtl_active_connections", "transport" => transport);
        open.increment(1.0);
        Self(open)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// A provider whose streams are measured as the call the client made.
#[derive(Debug)]
pub(crate) struct Measured {
    pub(crate) inner: Arc<dyn Provider>,
    pub(crate) labels: CallLabels,
    pub(crate) received: Instant,
}

#[async_trait::async_trait]
impl Wrapper for Measured {
    fn inner(&self) -> &Arc<dyn Provider> {
        &self.inner
    }

    async fn wrap(&self, request: CompletionRequest) -> Result<EventStream, ProviderError> {
        let active = gauge!("gtl_active_sessions");
        active.increment(1.0);
        let watch = Watch {
            labels: self.labels.clone(),
            received: self.received,
            active,
            end: None,
        };
        match self.inner.stream(request).await {
            Ok(events) => Ok(gtl_core::watch_events(events, watch)),
            Err(error) => {
                let mut watch = watch;
                watch.end = Some(outcome(error.code));
                watch.finish();
                Err(error)
            }
        }
    }
}

struct Watch {
    labels: CallLabels,
    received: Instant,
    active: metrics::Gauge,
    /// The outcome, once the terminal event went by.
    end: Option<&'static str>,
}

impl EventWatch for Watch {
    fn see(&mut self, body: &Body) {
        match body {
            Body::Done(_) => self.end = Some("ok"),
            Body::Error(error) => self.end = Some(outcome(error.code())),
            _ => {}
        }
    }

    fn finish(self) {
        self.active.decrement(1.0);
        let outcome = self.end.unwrap_or("cancelled");
        self.labels.count(outcome);
        histogram!(
            "gtl_request_duration_seconds",
            "route" => self.labels.route,
            "transport" => self.labels.transport,
        )
        .record(self.received.elapsed());
    }
}
