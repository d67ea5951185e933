//! Circuit breakers open on failures and recover, on virtual time.

use std::time::Duration;

use gtl_proto::ErrorCode;
use gtl_router::{BreakerConfig, Health, RouteConfig, RouterConfig, TargetConfig};

use crate::support::{Script, Scripted, answer, request, router_with, run, text};

fn config() -> RouterConfig {
    let mut config = RouterConfig::default();
    config.breaker = BreakerConfig::default();
    config.breaker.consecutive_failures = 3;
    config.breaker.cooldown_secs = 30;
    config
}

fn health(router: &gtl_router::Router, label: &str) -> Health {
    router
        .health()
        .into_iter()
        .find(|(l, _)| l == label)
        .map(|(_, h)| h)
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn an_open_breaker_is_skipped_then_probed_and_closed() {
    let a = Scripted::new("a");
    let b = Scripted::new("b");
    a.push(vec![
        Script::Refuse(ErrorCode::ProviderUnavailable, None);
        3
    ]);
    b.always(answer(&["b"]));
    let route = RouteConfig::new("r", [TargetConfig::new("a/m"), TargetConfig::new("b/m")]);
    let router = router_with(&[&a, &b], vec![route], config());
    for _ in 0..3 {
        assert_eq!(text(&run(&router, request("r")).await.unwrap()), "b");
    }
    assert_eq!(health(&router, "a/m"), Health::Open);
    // Open: `a` is not called at all.
    assert_eq!(text(&run(&router, request("r")).await.unwrap()), "b");
    assert_eq!(a.calls(), 3);
    // models.list shows it.
    let models = router.models(Some("a")).await;
    assert_eq!(models[0].models[0].health, "open");

    tokio::time::advance(Duration::from_secs(30)).await;
    assert_eq!(health(&router, "a/m"), Health::HalfOpen);
    a.push([answer(&["a"])]);
    assert_eq!(text(&run(&router, request("r")).await.unwrap()), "a");
    assert_eq!(health(&router, "a/m"), Health::Closed);
}

#[tokio::test(start_paused = true)]
async fn with_every_breaker_open_the_call_fails_fast_with_a_retry_hint() {
    let a = Scripted::new("a");
    a.always(Script::Refuse(ErrorCode::ProviderUnavailable, None));
    let route = RouteConfig::new("r", [TargetConfig::new("a/m")]);
    let router = router_with(&[&a], vec![route], config());
    for _ in 0..3 {
        assert!(run(&router, request("r")).await.is_err());
    }
    tokio::time::advance(Duration::from_secs(10)).await;
    let error = run(&router, request("r")).await.unwrap_err();
    assert_eq!(error.code, ErrorCode::ProviderUnavailable);
    assert_eq!(error.retry_after, Some(Duration::from_secs(20)));
    assert_eq!(a.calls(), 3);
}

/// A configuration reload builds a new router; an open breaker stays open
/// in it, so the failing target is not called again at once.
#[tokio::test(start_paused = true)]
async fn a_reloaded_router_keeps_an_open_breaker() {
    let a = Scripted::new("a");
    let b = Scripted::new("b");
    a.always(Script::Refuse(ErrorCode::ProviderUnavailable, None));
    b.always(answer(&["b"]));
    let route = RouteConfig::new("r", [TargetConfig::new("a/m"), TargetConfig::new("b/m")]);
    let old = router_with(&[&a, &b], vec![route], config());
    for _ in 0..3 {
        assert_eq!(text(&run(&old, request("r")).await.unwrap()), "b");
    }
    assert_eq!(health(&old, "a/m"), Health::Open);

    // The reload renames the route; its targets are the same.
    let renamed = RouteConfig::new("s", [TargetConfig::new("a/m"), TargetConfig::new("b/m")]);
    let new = gtl_router::Router::builder(crate::support::registry(&[&a, &b]))
        .config(config())
        .route(renamed)
        .carrying_state_of(&old)
        .build()
        .unwrap();
    assert_eq!(health(&new, "a/m"), Health::Open);
    assert_eq!(text(&run(&new, request("s")).await.unwrap()), "b");
    assert_eq!(a.calls(), 3, "the open breaker kept `a` out");
}
