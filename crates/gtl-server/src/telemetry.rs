//! Traces to an OpenTelemetry collector over OTLP/gRPC, on when the
//! standard `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set; the exporter reads the
//! other `OTEL_*` variables (headers, timeout, `OTEL_SERVICE_NAME`…)
//! itself. Every call's `gen_ai.call` span and its upstream attempts'
//! `gen_ai.upstream` spans are exported; a request's `traceparent` becomes
//! the call's parent, and the upstream requests carry the trace on.

use std::sync::Arc;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator as _};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// Whether the environment asks for traces.
pub fn requested() -> bool {
    let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    !disabled && (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
}

/// The exporting tracer provider; shut it down (off the runtime's worker
/// threads) before exiting, so the last spans are sent. Must be called
/// inside a tokio runtime.
pub fn tracer_provider() -> Result<SdkTracerProvider, String> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()
        .map_err(|e| format!("the OTLP exporter: {e}"))?;
    let batches =
        opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
            exporter,
            opentelemetry_sdk::runtime::Tokio,
        )
        .build();
    let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "gtl-server".into());
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service)
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(batches)
        .with_resource(resource)
        .build();
    gtl_providers::set_trace_injector(inject);
    Ok(provider)
}

/// The `tracing` layer feeding `provider`.
pub fn layer<S>(provider: &SdkTracerProvider) -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    tracing_opentelemetry::layer().with_tracer(provider.tracer("gtl"))
}

/// Links a call's span to its request's W3C `traceparent`.
#[derive(Debug)]
pub struct W3cParent;

impl gtl_service::TraceParent for W3cParent {
    fn link(&self, span: &tracing::Span, traceparent: &str) {
        let context = TraceContextPropagator::new().extract(&One(traceparent));
        let _ = span.set_parent(context);
    }
}

/// The link the server installs when it exports traces.
pub fn parent_link() -> Arc<dyn gtl_service::TraceParent> {
    Arc::new(W3cParent)
}

/// Puts the current span's trace context on an upstream request.
fn inject(headers: &mut http::HeaderMap) {
    let context = tracing::Span::current().context();
    TraceContextPropagator::new().inject_context(&context, &mut Headers(headers));
}

/// A `traceparent` value, as the propagator reads headers.
struct One<'a>(&'a str);

impl Extractor for One<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        (key == gtl_service::TRACEPARENT).then_some(self.0)
    }

    fn keys(&self) -> Vec<&str> {
        vec![gtl_service::TRACEPARENT]
    }
}

struct Headers<'a>(&'a mut http::HeaderMap);

impl Injector for Headers<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}
