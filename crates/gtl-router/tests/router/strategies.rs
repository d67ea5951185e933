//! How each strategy orders the targets.

use std::time::Duration;

use gtl_providers::{Price, PriceTable};
use gtl_router::{RouteConfig, Router, Strategy, TargetConfig};

use crate::support::{Script, Scripted, Step, answer, registry, request, router, run};

fn two(strategy: Strategy, weights: (u32, u32)) -> RouteConfig {
    RouteConfig::new(
        "r",
        [
            TargetConfig::new("a/m").with_weight(weights.0),
            TargetConfig::new("b/m").with_weight(weights.1),
        ],
    )
    .with_strategy(strategy)
}

#[tokio::test]
async fn weighted_splits_3_to_1_over_4000_calls() {
    let a = Scripted::new("a");
    let b = Scripted::new("b");
    a.always(answer(&["a"]));
    b.always(answer(&["b"]));
    let router = router(&[&a, &b], vec![two(Strategy::Weighted, (3, 1))]);
    for _ in 0..4000 {
        run(&router, request("r")).await.unwrap();
    }
    // Tolerance: 1% of the calls (smooth weighted round-robin is exact).
    let (a, b) = (a.calls(), b.calls());
    assert_eq!(a + b, 4000);
    assert!(a.abs_diff(3000) <= 40, "a served {a}, b {b}");
}

#[tokio::test]
async fn round_robin_takes_turns() {
    let a = Scripted::new("a");
    let b = Scripted::new("b");
    a.always(answer(&["a"]));
    b.always(answer(&["b"]));
    let router = router(&[&a, &b], vec![two(Strategy::RoundRobin, (1, 1))]);
    let mut served = String::new();
    for _ in 0..4 {
        served += &crate::support::text(&run(&router, request("r")).await.unwrap());
    }
    assert_eq!(served, "abab");
}

#[tokio::test(start_paused = true)]
async fn least_latency_prefers_the_faster_target_once_measured() {
    let a = Scripted::new("a");
    let b = Scripted::new("b");
    let slow = Script::Steps(vec![
        Step::Sleep(Duration::from_millis(800)),
        Step::Token("a"),
        Step::Done,
    ]);
    let fast = Script::Steps(vec![
        Step::Sleep(Duration::from_millis(50)),
        Step::Token("b"),
        Step::Done,
    ]);
    a.always(slow);
    b.always(fast);
    let router = router(&[&a, &b], vec![two(Strategy::LeastLatency, (1, 1))]);
    let mut served = String::new();
    for _ in 0..4 {
        served += &crate::support::text(&run(&router, request("r")).await.unwrap());
    }
    // Each unmeasured target is tried once, then the faster one serves.
    assert_eq!(served, "abbb");
}

#[tokio::test]
async fn cheapest_tries_the_lowest_price_first() {
    let a = Scripted::new("a");
    let b = Scripted::new("b");
    b.always(answer(&["b"]));
    let mut prices = PriceTable::new();
    prices.insert("a/m", Price::per_1k(0.01, 0.03));
    prices.insert("b/m", Price::per_1k(0.001, 0.002));
    let router = Router::builder(registry(&[&a, &b]))
        .route(two(Strategy::Cheapest, (1, 1)))
        .prices(prices)
        .build()
        .unwrap();
    let events = run(&router, request("r")).await.unwrap();
    assert_eq!(crate::support::text(&events), "b");
    assert_eq!(a.calls(), 0);
}

#[tokio::test]
async fn model_auto_picks_a_route_by_the_routing_hints() {
    let a = Scripted::new("a");
    let b = Scripted::new("b");
    a.always(answer(&["a"]));
    b.always(answer(&["b"]));
    let mut code = RouteConfig::new("coder", [TargetConfig::new("a/m")]);
    code.intents = vec!["code".into()];
    let mut local = RouteConfig::new("local", [TargetConfig::new("b/m")]);
    local.local = true;
    local.intents = vec!["chat".into()];
    let router = router(&[&a, &b], vec![code, local]);
    let with = |intent: &str, prefer_local: bool| {
        let mut req = request("auto");
        req.routing = Some(gtl_proto::Routing {
            intent: intent.into(),
            prefer_local,
            ..gtl_proto::Routing::default()
        });
        req
    };
    let served = |events: Vec<gtl_proto::Body>| crate::support::text(&events);
    assert_eq!(
        served(run(&router, with("code", false)).await.unwrap()),
        "a"
    );
    assert_eq!(served(run(&router, with("chat", true)).await.unwrap()), "b");
    // prefer_local is a preference: no local route for code, so the coder.
    assert_eq!(served(run(&router, with("code", true)).await.unwrap()), "a");
}

#[tokio::test]
async fn a_budget_leaves_out_targets_that_would_cost_more() {
    let a = Scripted::new("a");
    let b = Scripted::new("b");
    a.always(answer(&["a"]));
    let mut prices = PriceTable::new();
    prices.insert("a/m", Price::per_1k(0.0, 0.001));
    prices.insert("b/m", Price::per_1k(0.0, 1.0));
    let router = Router::builder(registry(&[&a, &b]))
        .route(two(Strategy::Failover, (1, 1)))
        .prices(prices.clone())
        .build()
        .unwrap();
    let mut req = request("auto");
    req.max_tokens = Some(1000);
    req.routing = Some(gtl_proto::Routing {
        budget: Some(0.5),
        ..gtl_proto::Routing::default()
    });
    // `b` would cost $1 for 1000 tokens: only `a` is tried.
    a.push([Script::Refuse(
        gtl_proto::ErrorCode::ProviderUnavailable,
        None,
    )]);
    let error = run(&router, req).await.unwrap_err();
    assert_eq!(error.code, gtl_proto::ErrorCode::ProviderUnavailable);
    assert_eq!(b.calls(), 0);
}
