//! The audit trail: one record per call, whatever the transport.
//!
//! [`CallService::start`](crate::CallService::start) wraps the routed
//! provider so that its event stream, as the engine drains it, is watched
//! for usage and the terminal event; when the stream ends (done, error, or
//! dropped by a cancel) one [`AuditRecord`] goes to the [`AuditSink`]. The
//! record never holds prompt or completion text. Sinks must not block: the
//! server's writes to a file off the hot path, and a failed write never
//! fails a call.

use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use gtl_core::{EventStream, EventWatch as _, Provider, ProviderError, Wrapper};
use gtl_proto::{Body, CompletionRequest, Usage};
use serde::Serialize;

/// One call, as the audit log records it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct AuditRecord {
    /// When the call started (Unix milliseconds).
    pub time_ms: u64,
    /// The caller's subject.
    pub subject: String,
    /// `chat.complete`, `chat.stream` or `session.pipe`.
    pub route: &'static str,
    /// The transport the call came in on (`uds`, `tcp`, `http`, `quic`, …).
    pub transport: String,
    /// The model as the client named it: a route, an alias or
    /// `provider/model`.
    pub requested: String,
    /// The provider that served it (for a routed call, the target that
    /// answered last).
    pub provider: String,
    /// The provider's model.
    pub model: String,
    /// Input tokens, as the provider reported them.
    pub tokens_in: u64,
    /// Output tokens.
    pub tokens_out: u64,
    /// Cost in USD, when the price is known.
    pub cost: f64,
    /// From start to the end of the provider's stream, in milliseconds.
    pub duration_ms: u64,
    /// `ok`, `error` or `cancelled`.
    pub outcome: &'static str,
    /// The GTL error code, for an error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// The session.
    pub session_id: String,
}

/// Where audit records go. `record` is called from the call's task and
/// must return at once.
pub trait AuditSink: std::fmt::Debug + Send + Sync {
    /// Takes one record.
    fn record(&self, record: AuditRecord);

    /// Returns once every record taken so far is written (or, for a sink
    /// that cannot say, at once). Called at shutdown, off the runtime.
    fn flush(&self) {}
}

/// What a call's audit record knows before its stream runs.
#[derive(Debug)]
pub(crate) struct CallAudit {
    pub(crate) sink: Arc<dyn AuditSink>,
    pub(crate) subject: String,
    pub(crate) transport: String,
    pub(crate) route: &'static str,
    /// The model as the client named it.
    pub(crate) requested: String,
    /// Set once the engine has named the session.
    pub(crate) session_id: Arc<OnceLock<String>>,
}

/// A provider whose streams are audited.
#[derive(Debug)]
pub(crate) struct Audited {
    pub(crate) inner: Arc<dyn Provider>,
    pub(crate) audit: Arc<CallAudit>,
}

#[async_trait::async_trait]
impl Wrapper for Audited {
    fn inner(&self) -> &Arc<dyn Provider> {
        &self.inner
    }

    async fn wrap(&self, request: CompletionRequest) -> Result<EventStream, ProviderError> {
        let started = Instant::now();
        let time_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let watch = Watch {
            audit: self.audit.clone(),
            provider: self.inner.name().to_owned(),
            model: request.model.clone(),
            started,
            time_ms,
            usage: Usage::default(),
            end: None,
        };
        match self.inner.stream(request).await {
            Ok(events) => Ok(gtl_core::watch_events(events, watch)),
            Err(error) => {
                let mut watch = watch;
                watch.end = Some(End::Error(error.code.to_string()));
                watch.finish();
                Err(error)
            }
        }
    }
}

enum End {
    Done,
    Error(String),
}

struct Watch {
    audit: Arc<CallAudit>,
    provider: String,
    model: String,
    started: Instant,
    time_ms: u64,
    usage: Usage,
    end: Option<End>,
}

impl gtl_core::EventWatch for Watch {
    fn see(&mut self, body: &Body) {
        match body {
            Body::Usage(usage) => gtl_providers::merge_usage(&mut self.usage, usage),
            // A route names the target answering; the last one served it.
            Body::Status(status) if status.state == "streaming" && !status.provider.is_empty() => {
                self.provider.clone_from(&status.provider);
                self.model.clone_from(&status.model);
            }
            Body::Done(_) => self.end = Some(End::Done),
            Body::Error(error) => self.end = Some(End::Error(error.code().to_string())),
            _ => {}
        }
    }

    fn finish(self) {
        let (outcome, error_code) = match self.end {
            Some(End::Done) => ("ok", None),
            Some(End::Error(code)) => ("error", Some(code)),
            None => ("cancelled", None),
        };
        let audit = &self.audit;
        audit.sink.record(AuditRecord {
            time_ms: self.time_ms,
            subject: audit.subject.clone(),
            route: audit.route,
            transport: audit.transport.clone(),
            requested: audit.requested.clone(),
            provider: self.provider,
            model: self.model,
            tokens_in: self.usage.tokens_in,
            tokens_out: self.usage.tokens_out,
            cost: self.usage.cost,
            duration_ms: self.started.elapsed().as_millis() as u64,
            outcome,
            error_code,
            session_id: audit.session_id.get().cloned().unwrap_or_default(),
        });
    }
}
