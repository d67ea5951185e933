//! The response cache and coalescing of identical requests.

use std::sync::Arc;
use std::time::Duration;

use gtl_proto::ErrorCode;
use gtl_router::{CacheConfig, ResponseCache, RouteConfig, Router, TargetConfig};

use crate::support::{Script, Scripted, Step, answer, registry, request, run, show, text};

fn cached_router(a: &Scripted, config: CacheConfig) -> Router {
    let mut route = RouteConfig::new("r", [TargetConfig::new("a/m")]);
    route.cache_ttl_secs = 60;
    Router::builder(registry(&[a]))
        .route(route)
        .cache(Arc::new(ResponseCache::in_memory(config).unwrap()))
        .build()
        .unwrap()
}

#[tokio::test]
async fn the_second_identical_request_reaches_no_upstream() {
    let a = Scripted::new("a");
    a.always(answer(&["Hello", " there"]));
    let router = cached_router(&a, CacheConfig::default());
    let first = run(&router, request("r")).await.unwrap();
    let second = run(&router, request("r")).await.unwrap();
    assert_eq!(a.calls(), 1);
    // The replay says it is cached, then the first answer's events.
    assert_eq!(show(&second)[0], "status cached r/r");
    assert_eq!(second[1..], first[..]);
    // A different question is not the same entry.
    let mut other = request("r");
    other.temperature = Some(0.5);
    run(&router, other).await.unwrap();
    assert_eq!(a.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn fifty_identical_concurrent_requests_make_one_upstream_call() {
    let a = Scripted::new("a");
    a.always(Script::Steps(vec![
        Step::Sleep(Duration::from_millis(100)),
        Step::Token("shared"),
        Step::Usage(3, 1),
        Step::Done,
    ]));
    let router = cached_router(&a, CacheConfig::default());
    let calls = (0..50).map(|_| run(&router, request("r")));
    let answers = futures::future::join_all(calls).await;
    assert_eq!(a.calls(), 1);
    for events in answers {
        let events = events.unwrap();
        assert_eq!(text(&events), "shared");
        // Live from the one flight, not replays of a finished answer.
        assert_eq!(show(&events)[0], "status streaming a/m");
        assert_eq!(show(&events).last().unwrap(), "done stop");
    }
}

#[tokio::test]
async fn no_store_skips_the_cache() {
    let a = Scripted::new("a");
    a.always(answer(&["x"]));
    let router = cached_router(&a, CacheConfig::default());
    for _ in 0..2 {
        let mut req = request("r");
        req.metadata
            .insert(gtl_router::CACHE_KEY.into(), gtl_router::NO_STORE.into());
        run(&router, req).await.unwrap();
    }
    assert_eq!(a.calls(), 2);
}

#[tokio::test]
async fn requests_with_tools_are_cached_only_when_enabled() {
    let with_tools = || {
        let mut req = request("r");
        req.tools.push(gtl_proto::Tool::default());
        req
    };
    let a = Scripted::new("a");
    a.always(answer(&["x"]));
    let router = cached_router(&a, CacheConfig::default());
    run(&router, with_tools()).await.unwrap();
    run(&router, with_tools()).await.unwrap();
    assert_eq!(a.calls(), 2);

    let b = Scripted::new("a");
    b.always(answer(&["x"]));
    let mut config = CacheConfig::default();
    config.tools = true;
    let router = cached_router(&b, config);
    run(&router, with_tools()).await.unwrap();
    run(&router, with_tools()).await.unwrap();
    assert_eq!(b.calls(), 1);
}

#[tokio::test]
async fn failed_answers_are_not_kept() {
    let a = Scripted::new("a");
    a.push([Script::Steps(vec![
        Step::Token("x"),
        Step::Error(ErrorCode::ProviderUnavailable),
    ])]);
    a.always(answer(&["ok"]));
    let router = cached_router(&a, CacheConfig::default());
    let first = run(&router, request("r")).await.unwrap();
    assert!(show(&first).last().unwrap().starts_with("error"));
    assert_eq!(text(&run(&router, request("r")).await.unwrap()), "ok");
    assert_eq!(a.calls(), 2);
}

#[tokio::test]
async fn a_plain_model_caches_when_the_request_opts_in() {
    let a = Scripted::new("a");
    a.always(answer(&["x"]));
    let router = cached_router(&a, CacheConfig::default());
    for _ in 0..2 {
        let mut req = request("a/m");
        req.metadata
            .insert(gtl_router::CACHE_TTL_KEY.into(), "30".into());
        run(&router, req).await.unwrap();
    }
    assert_eq!(a.calls(), 1);
    // Without opting in, plain models are never cached.
    run(&router, request("a/m")).await.unwrap();
    assert_eq!(a.calls(), 2);
}
