//! What the router adds to a call, in process: the same echo answer
//! resolved and drained through `Router` as a plain model (the registry
//! path, the baseline), a one-target route, a five-target weighted route,
//! and a cache hit. No network and no session: only the routing layers.
//! Every loop is bounded in count.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use futures::StreamExt as _;
use gtl_client::proto::{Body, CompletionRequest};
use gtl_client::user_message;
use gtl_providers::{EchoProvider, Registry};
use gtl_router::{
    CacheConfig, CallContext, ResponseCache, RouteConfig, Router, Strategy, TargetConfig,
};

/// Calls per row (after as many warm-up calls).
const CALLS: usize = 20_000;

/// Prints the router-overhead table.
pub(crate) async fn run() -> Result<()> {
    let mut registry = Registry::new();
    registry.add(Arc::new(EchoProvider::new()));
    let one = RouteConfig::new("one", [TargetConfig::new("echo/echo")]);
    let five = RouteConfig::new(
        "five",
        (1..=5).map(|w| TargetConfig::new("echo/echo").with_weight(w)),
    )
    .with_strategy(Strategy::Weighted);
    let mut cached = RouteConfig::new("cached", [TargetConfig::new("echo/echo")]);
    cached.cache_ttl_secs = 3600;
    let router = Router::builder(registry)
        .routes([one, five, cached])
        .cache(Arc::new(ResponseCache::in_memory(CacheConfig::default())?))
        .build()?;

    println!("\n## Router overhead (in process, echo provider, no network)\n");
    println!(
        "{CALLS} sequential calls per row after as many warm-up calls: resolve the\n\
         model, then drain the answer's events (6 tokens). The plain row is the\n\
         registry path every unrouted call takes; the others add the routing\n\
         layers (strategy, breaker, timeouts, the routing task) or the cache.\n"
    );
    println!("| path | per call p50 | per call p99 | added to plain (p50) |");
    println!("|---|---|---|---|");
    let plain = measure(&router, "echo").await?;
    for (name, model) in [
        ("plain model (registry)", "echo"),
        ("route, one target", "one"),
        ("route, five weighted targets", "five"),
        ("route, cache hit", "cached"),
    ] {
        let (p50, p99) = if model == "echo" {
            plain
        } else {
            measure(&router, model).await?
        };
        let added = p50.as_nanos() as i128 - plain.0.as_nanos() as i128;
        println!(
            "| {name} | {} | {} | {} |",
            nanos(p50),
            nanos(p99),
            if model == "echo" {
                "—".to_owned()
            } else {
                format!("{:+.2} µs", added as f64 / 1e3)
            }
        );
    }
    Ok(())
}

/// Calls `model` `CALLS` times after a warm-up: (p50, p99).
async fn measure(router: &Router, model: &str) -> Result<(Duration, Duration)> {
    let request = CompletionRequest {
        model: model.into(),
        messages: vec![user_message("one two three four five six")],
        stream: true,
        ..CompletionRequest::default()
    };
    let context = CallContext::new("bench");
    let mut samples = Vec::with_capacity(CALLS);
    for i in 0..2 * CALLS {
        let start = Instant::now();
        let mut request = request.clone();
        let provider = router.resolve(&mut request, &context)?;
        let mut events = provider.stream(request).await?;
        let mut tokens = 0;
        while let Some(body) = events.next().await {
            tokens += usize::from(matches!(body, Body::Token(_)));
        }
        if tokens != 6 {
            bail!("{model}: expected 6 tokens, got {tokens}");
        }
        if i >= CALLS {
            samples.push(start.elapsed());
        }
    }
    samples.sort_unstable();
    Ok((samples[CALLS / 2], samples[CALLS * 99 / 100]))
}

fn nanos(d: Duration) -> String {
    format!("{:.2} µs", d.as_nanos() as f64 / 1e3)
}
