//! What recording metrics costs a call: one `chat.complete` of 16 echo
//! tokens through the whole call service (router, engine, first-output
//! hook, drain), recorded into a Prometheus recorder (`recorded`) and into
//! a recorder that drops everything (`noop`). The difference is the cost of
//! the metrics; both pay the rest of the call. Each run uses a local
//! recorder on a single-threaded runtime, so nothing else records into it.
//! Run with `cargo bench -p gtl-service --bench metrics`.

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gtl_core::{Engine, EngineConfig, MemoryStore};
use gtl_proto::types::Content;
use gtl_proto::{CompletionRequest, Message, Role};
use gtl_providers::{EchoProvider, Registry};
use gtl_service::{Authenticator, CallEvents, CallService, ConnectionLimits, Principal};
use metrics_exporter_prometheus::PrometheusBuilder;

const WORDS: usize = 16;

fn request() -> CompletionRequest {
    CompletionRequest {
        model: "echo".into(),
        messages: vec![Message {
            role: Role::User as i32,
            content: Some(Content::Text("word ".repeat(WORDS))),
            ..Message::default()
        }],
        ..CompletionRequest::default()
    }
}

/// Runs `calls` on a runtime and a call service of their own, so the
/// other run's sessions (and the engine's sweeps over them) cost it
/// nothing.
fn bench_calls(c: &mut Criterion, name: &str, recorder: &dyn metrics::Recorder) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let service = runtime.block_on(async {
        let mut registry = Registry::new();
        registry.add(Arc::new(EchoProvider::new()));
        // Finished sessions stay for the resume window: the runs must not
        // reach the session cap.
        let config = EngineConfig::default().with_max_sessions(usize::MAX);
        let engine = Engine::new(Arc::new(MemoryStore::new()), config);
        let mut limits = ConnectionLimits::default();
        limits.max_calls_per_subject = usize::MAX;
        CallService::new(engine, registry, Authenticator::new(true), limits)
    });
    let mut principal = Principal::local("bench");
    principal.transport = "tcp";
    let one_call = || {
        runtime.block_on(async {
            let call = service.start(&principal, None, request()).await.unwrap();
            let completion = CallEvents::new(call).complete().await;
            assert_eq!(
                completion.usage.map(|u| u.tokens_out),
                Some(WORDS as u64),
                "{completion:?}"
            );
        });
    };
    let mut group = c.benchmark_group("metrics");
    group
        .measurement_time(Duration::from_secs(5))
        .warm_up_time(Duration::from_secs(1))
        .throughput(Throughput::Elements(1));
    group.bench_function(name, |b| {
        metrics::with_local_recorder(recorder, || b.iter(one_call));
    });
    group.finish();
}

fn call_metrics(c: &mut Criterion) {
    bench_calls(c, "call_16_tokens/noop", &metrics::NoopRecorder);
    let prometheus = PrometheusBuilder::new().build_recorder();
    bench_calls(c, "call_16_tokens/recorded", &prometheus);
    // The recorded runs did record.
    assert!(prometheus.handle().render().contains("gtl_requests_total"));
}

criterion_group!(benches, call_metrics);
criterion_main!(benches);
