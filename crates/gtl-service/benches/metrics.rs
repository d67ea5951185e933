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

/// A call service of its own per benchmark, so one run's sessions do not
/// slow the other's.
fn service(runtime: &tokio::runtime::Runtime) -> CallService {
    runtime.block_on(async {
        let mut registry = Registry::new();
        registry.add(Arc::new(EchoProvider::new()));
        // Finished sessions stay for the resume window: the runs must not
        // reach the session cap.
        let config = EngineConfig::default().with_max_sessions(usize::MAX);
        let engine = Engine::new(Arc::new(MemoryStore::new()), config);
        let mut limits = ConnectionLimits::default();
        limits.max_calls_per_subject = usize::MAX;
        CallService::new(engine, registry, Authenticator::new(true), limits)
    })
}

fn call_metrics(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut principal = Principal::local("bench");
    principal.transport = "tcp";
    let one_call = |service: &CallService| {
        runtime.block_on(async {
            let call = service.start(&principal, None, request()).unwrap();
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
    let noop = metrics::NoopRecorder;
    let service_noop = service(&runtime);
    group.bench_function("call_16_tokens/noop", |b| {
        metrics::with_local_recorder(&noop, || b.iter(|| one_call(&service_noop)));
    });
    let prometheus = PrometheusBuilder::new().build_recorder();
    let service_recorded = service(&runtime);
    group.bench_function("call_16_tokens/recorded", |b| {
        metrics::with_local_recorder(&prometheus, || b.iter(|| one_call(&service_recorded)));
    });
    group.finish();
    // The recorded runs did record.
    assert!(prometheus.handle().render().contains("gtl_requests_total"));
}

criterion_group!(benches, call_metrics);
criterion_main!(benches);
