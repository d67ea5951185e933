//! Traces to an OTLP collector: the real server, with
//! `OTEL_EXPORTER_OTLP_ENDPOINT` pointing at a collector in the test (a
//! tonic server of the OTLP trace service), exports one `gen_ai.call` span
//! per call with the GenAI attributes, parented by the caller's
//! `traceparent`, and a `gen_ai.upstream` child for the provider request,
//! which carries the trace on to the provider.

use std::sync::{Arc, Mutex};

use gtl_test::{ReplayServer, Reply};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::Span;

use crate::support::ServerProcess;

/// Every span exported to it.
#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<Span>>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let spans = request
            .into_inner()
            .resource_spans
            .into_iter()
            .flat_map(|r| r.scope_spans)
            .flat_map(|s| s.spans);
        self.0.lock().unwrap().extend(spans);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

fn attribute(span: &Span, key: &str) -> Option<Any> {
    span.attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.clone())
        .and_then(|v| v.value)
}

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_is_exported_as_a_genai_span_in_the_callers_trace() {
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let otlp = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    let upstream = ReplayServer::start(
        Reply::sse("").body_file(gtl_test::provider_fixture("openai/chat_text.sse")),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let providers = format!(
        "[[providers]]\nkind = \"openai\"\nname = \"openai\"\nbase_url = \"{}/v1\"\napi_key_env = \"GTL_TEST_PROVIDER_KEY\"\n",
        upstream.url()
    );
    let mut server = ServerProcess::start_with_env(
        dir.path(),
        &providers,
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", &otlp)],
    )
    .await;

    let _ = rustls::crypto::ring::default_provider().install_default();
    let answer = reqwest::Client::new()
        .post(format!("http://{}/gtl/v1/stream", server.http))
        .bearer_auth(&server.token)
        .header("traceparent", format!("00-{TRACE_ID}-{PARENT_ID}-01"))
        .body(r#"{"model":"openai/gpt-4o","stream":true,"messages":[{"role":"user","content":"Weather?"}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let events = answer.text().await.unwrap();
    assert!(events.contains("event: done"), "{events}");
    // Stopping flushes the last spans.
    server.signal("TERM");
    assert!(server.wait().await.success(), "{:#?}", server.log());

    let spans = collector.0.lock().unwrap().clone();
    let call = spans
        .iter()
        .find(|s| s.name == "chat gpt-4o")
        .unwrap_or_else(|| panic!("no call span: {spans:#?}"));
    assert_eq!(hex(&call.trace_id), TRACE_ID, "the caller's trace");
    assert_eq!(
        hex(&call.parent_span_id),
        PARENT_ID,
        "the caller's span is the parent"
    );
    assert_eq!(
        attribute(call, "gen_ai.system"),
        Some(Any::StringValue("openai".into()))
    );
    assert_eq!(
        attribute(call, "gen_ai.request.model"),
        Some(Any::StringValue("gpt-4o".into()))
    );
    assert_eq!(
        attribute(call, "gen_ai.usage.input_tokens"),
        Some(Any::IntValue(14))
    );
    assert_eq!(
        attribute(call, "gen_ai.usage.output_tokens"),
        Some(Any::IntValue(30))
    );
    assert_eq!(
        attribute(call, "gen_ai.response.finish_reasons"),
        Some(Any::StringValue("stop".into()))
    );
    let upstream_span = spans
        .iter()
        .find(|s| s.parent_span_id == call.span_id)
        .unwrap_or_else(|| panic!("no upstream child: {spans:#?}"));
    assert_eq!(upstream_span.trace_id, call.trace_id);
    assert_eq!(
        attribute(upstream_span, "http.response.status_code"),
        Some(Any::IntValue(200))
    );
    // The provider got the trace, with the upstream span as parent.
    let request = upstream.single_request();
    let sent = request
        .headers
        .iter()
        .find(|(name, _)| name == "traceparent")
        .map(|(_, value)| value.clone())
        .expect("a traceparent to the provider");
    assert_eq!(
        sent,
        format!("00-{TRACE_ID}-{}-01", hex(&upstream_span.span_id))
    );
}
