//! One tracing span per call, with OpenTelemetry's GenAI attributes
//! (`gen_ai.system`, `gen_ai.request.model`, `gen_ai.usage.input_tokens`,
//! …). The span is entered whenever the provider's stream is polled, so
//! the spans of the upstream attempts (the provider adapters' HTTP
//! requests) are its children. Each call is a trace of its own unless its
//! request carries a W3C `traceparent` (in `metadata`, where the HTTP and
//! gRPC transports also put the header's): a server that exports traces
//! makes that the span's parent (see
//! [`CallService::with_trace_parent`](crate::CallService::with_trace_parent)).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;
use gtl_core::{EventStream, Provider, ProviderError, Wrapper};
use gtl_proto::{Body, CompletionRequest};
use tracing::Instrument as _;
use tracing::field::Empty;

/// The request metadata key (and HTTP header) of a W3C trace context.
pub const TRACEPARENT: &str = "traceparent";

/// Makes a request's `traceparent` the remote parent of its call's span
/// (a server that exports traces has the means to).
pub trait TraceParent: std::fmt::Debug + Send + Sync {
    /// Sets `span`'s parent from a W3C `traceparent` value; an invalid one
    /// is ignored.
    fn link(&self, span: &tracing::Span, traceparent: &str);
}

/// The span of a call to `provider` (for a route, the route's name).
pub(crate) fn call_span(
    request: &CompletionRequest,
    provider: &str,
    transport: &str,
) -> tracing::Span {
    // A root: a call is not part of its connection's trace.
    tracing::info_span!(
        parent: None,
        "gen_ai.call",
        otel.name = format!("chat {}", request.model),
        otel.kind = "client",
        otel.status_code = Empty,
        "gen_ai.operation.name" = "chat",
        "gen_ai.system" = provider,
        "gen_ai.request.model" = request.model.as_str(),
        "gen_ai.request.max_tokens" = request.max_tokens,
        "gen_ai.response.model" = Empty,
        "gen_ai.response.finish_reasons" = Empty,
        "gen_ai.usage.input_tokens" = Empty,
        "gen_ai.usage.output_tokens" = Empty,
        "error.type" = Empty,
        "gtl.transport" = transport,
    )
}

/// A provider whose streams run in their call's span.
#[derive(Debug)]
pub(crate) struct Traced {
    pub(crate) inner: Arc<dyn Provider>,
    pub(crate) span: tracing::Span,
}

#[async_trait::async_trait]
impl Wrapper for Traced {
    fn inner(&self) -> &Arc<dyn Provider> {
        &self.inner
    }

    async fn wrap(&self, request: CompletionRequest) -> Result<EventStream, ProviderError> {
        match self
            .inner
            .stream(request)
            .instrument(self.span.clone())
            .await
        {
            Ok(events) => Ok(Box::pin(TracedEvents {
                events,
                span: self.span.clone(),
            })),
            Err(error) => {
                failed(&self.span, error.code);
                Err(error)
            }
        }
    }
}

fn failed(span: &tracing::Span, code: gtl_proto::ErrorCode) {
    span.record("error.type", tracing::field::display(code));
    span.record("otel.status_code", "ERROR");
}

struct TracedEvents {
    events: EventStream,
    span: tracing::Span,
}

impl Stream for TracedEvents {
    type Item = Body;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Body>> {
        let this = self.get_mut();
        let span = &this.span;
        let _entered = span.enter();
        let next = this.events.as_mut().poll_next(cx);
        if let Poll::Ready(Some(body)) = &next {
            match body {
                Body::Status(status) if status.state == "streaming" => {
                    span.record("gen_ai.response.model", status.model.as_str());
                }
                Body::Usage(usage) => {
                    // Signed: OpenTelemetry's integers are i64.
                    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
                    span.record("gen_ai.usage.input_tokens", count(usage.tokens_in));
                    span.record("gen_ai.usage.output_tokens", count(usage.tokens_out));
                }
                Body::Done(done) => {
                    span.record(
                        "gen_ai.response.finish_reasons",
                        done.finish_reason.as_str(),
                    );
                }
                Body::Error(error) => failed(span, error.code()),
                _ => {}
            }
        }
        next
    }
}
