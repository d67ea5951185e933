//! Before the first token: retryable errors move on, others fail at once.

use std::time::Duration;

use gtl_proto::{Body, ErrorCode};
use gtl_router::{RouteConfig, RouterConfig, TargetConfig};

use crate::support::{
    Script, Scripted, Step, answer, context, request, router, router_with, run, show,
};

fn smart(retries: u32) -> RouteConfig {
    RouteConfig::new(
        "smart",
        [TargetConfig::new("a/m"), TargetConfig::new("b/m")],
    )
    .with_retries(retries)
}

#[tokio::test]
async fn plain_models_and_aliases_resolve_as_the_registry_does() {
    let a = Scripted::new("a");
    let b = Scripted::new("b");
    let mut registry = crate::support::registry(&[&a, &b]);
    registry.alias("fast", "b/quick");
    let router = gtl_router::Router::builder(registry).build().unwrap();
    let mut req = request("a/m");
    let provider = router.resolve(&mut req, &context()).unwrap();
    assert_eq!(
        (provider.name(), req.provider.as_str(), req.model.as_str()),
        ("a", "a", "m")
    );
    let mut req = request("fast");
    let provider = router.resolve(&mut req, &context()).unwrap();
    assert_eq!((provider.name(), req.model.as_str()), ("b", "quick"));
}

#[tokio::test]
async fn a_retryable_refusal_fails_over_with_a_retrying_status() {
    let a = Scripted::new("a");
    let b = Scripted::new("b");
    a.push([Script::Refuse(ErrorCode::ProviderUnavailable, None)]);
    b.push([answer(&["Hello", " world"])]);
    let router = router(&[&a, &b], vec![smart(0)]);
    let events = run(&router, request("smart")).await.unwrap();
    assert_eq!(
        show(&events),
        [
            "status retrying a/m",
            "status streaming b/m",
            "token Hello",
            "token  world",
            "usage 10 2 0.5",
            "done stop",
        ]
    );
    let Body::Status(retrying) = &events[0] else {
        unreachable!()
    };
    assert!(retrying.reason.contains("a refused"), "{retrying:?}");
    assert_eq!(b.requests()[0].model, "m");
}

#[tokio::test]
async fn an_error_event_before_the_first_token_fails_over_too() {
    let a = Scripted::new("a");
    let b = Scripted::new("b");
    a.push([Script::Steps(vec![Step::Error(ErrorCode::ProviderError)])]);
    b.push([answer(&["ok"])]);
    let router = router(&[&a, &b], vec![smart(0)]);
    let events = run(&router, request("smart")).await.unwrap();
    assert_eq!(
        show(&events),
        [
            "status streaming a/m",
            "status retrying a/m",
            "status streaming b/m",
            "token ok",
            "usage 10 1 0.5",
            "done stop",
        ]
    );
}

#[tokio::test]
async fn a_non_retryable_error_fails_at_once() {
    let a = Scripted::new("a");
    let b = Scripted::new("b");
    a.push([Script::Refuse(ErrorCode::InvalidRequest, None)]);
    let router = router(&[&a, &b], vec![smart(2)]);
    let error = run(&router, request("smart")).await.unwrap_err();
    assert_eq!(error.code, ErrorCode::InvalidRequest);
    assert_eq!((a.calls(), b.calls()), (1, 0));
}

#[tokio::test]
async fn when_every_target_fails_the_last_error_ends_the_stream() {
    let a = Scripted::new("a");
    let b = Scripted::new("b");
    a.push([Script::Refuse(ErrorCode::ProviderUnavailable, None)]);
    b.push([Script::Refuse(ErrorCode::RateLimit, None)]);
    let router = router(&[&a, &b], vec![smart(0)]);
    let events = run(&router, request("smart")).await.unwrap();
    assert_eq!(
        show(&events),
        ["status retrying a/m", "error RATE_LIMIT before"]
    );
}

#[tokio::test(start_paused = true)]
async fn retries_wait_for_retry_after_then_use_the_same_target() {
    let a = Scripted::new("a");
    let b = Scripted::new("b");
    a.push([
        Script::Refuse(ErrorCode::RateLimit, Some(Duration::from_secs(5))),
        answer(&["late"]),
    ]);
    let router = router(&[&a, &b], vec![smart(1)]);
    let started = tokio::time::Instant::now();
    let events = run(&router, request("smart")).await.unwrap();
    assert_eq!(
        show(&events),
        [
            "status retrying a/m",
            "status streaming a/m",
            "token late",
            "usage 10 1 0.5",
            "done stop",
        ]
    );
    assert!(started.elapsed() >= Duration::from_secs(5));
    assert_eq!((a.calls(), b.calls()), (2, 0));
}

#[tokio::test(start_paused = true)]
async fn retries_per_target_are_bounded() {
    let a = Scripted::new("a");
    let b = Scripted::new("b");
    a.always(Script::Refuse(ErrorCode::ProviderUnavailable, None));
    b.push([answer(&["b"])]);
    let router = router(&[&a, &b], vec![smart(2)]);
    let events = run(&router, request("smart")).await.unwrap();
    assert_eq!(crate::support::text(&events), "b");
    // One try and two retries on `a`, then `b`.
    assert_eq!((a.calls(), b.calls()), (3, 1));
}

#[tokio::test]
async fn the_requests_providers_list_is_tried_in_order() {
    let a = Scripted::new("a");
    let b = Scripted::new("b");
    a.push([Script::Refuse(ErrorCode::ProviderUnavailable, None)]);
    b.push([answer(&["from b"])]);
    let router = router(&[&a, &b], vec![]);
    let mut req = request("m");
    req.providers = vec!["a".into(), "b".into()];
    let events = run(&router, req).await.unwrap();
    assert_eq!(crate::support::text(&events), "from b");
    assert_eq!(
        (
            a.requests()[0].model.as_str(),
            b.requests()[0].model.as_str()
        ),
        ("m", "m")
    );
}

#[tokio::test]
async fn a_provider_not_serving_the_model_gets_its_default_model() {
    let a = Scripted::new("a");
    let b = Scripted::new("b");
    a.push([Script::Refuse(ErrorCode::ProviderUnavailable, None)]);
    b.push([answer(&["ok"])]);
    let mut config = RouterConfig::default();
    config.default_models.insert("b".into(), "b-default".into());
    let router = router_with(&[&a, &b], vec![], config);
    let mut req = request("a/big");
    req.providers = vec!["a".into(), "b".into()];
    run(&router, req).await.unwrap();
    assert_eq!(a.requests()[0].model, "big");
    assert_eq!(b.requests()[0].model, "b-default");
}

/// Stands in for a provider keyed with the caller's own key.
#[derive(Debug)]
struct Keys(Scripted);

impl gtl_router::CallerKeys for Keys {
    fn apply(
        &self,
        provider: &std::sync::Arc<dyn gtl_core::Provider>,
    ) -> Result<Option<std::sync::Arc<dyn gtl_core::Provider>>, gtl_core::ProviderError> {
        Ok((provider.name() == "b").then(|| std::sync::Arc::new(self.0.clone()) as _))
    }
}

#[tokio::test]
async fn a_callers_own_keys_apply_to_each_target_it_has_a_key_for() {
    use futures::StreamExt as _;
    let a = Scripted::new("a");
    let b = Scripted::new("b");
    let b_with_callers_key = Scripted::new("b");
    a.push([Script::Refuse(ErrorCode::ProviderUnavailable, None)]);
    b_with_callers_key.push([answer(&["mine"])]);
    let router = router(&[&a, &b], vec![smart(0)]);
    let mut req = request("smart");
    let context = context().with_keys(std::sync::Arc::new(Keys(b_with_callers_key.clone())));
    let provider = router.resolve(&mut req, &context).unwrap();
    let events: Vec<Body> = provider.stream(req).await.unwrap().collect().await;
    assert_eq!(crate::support::text(&events), "mine");
    // `a` was called with its own credential; `b` only with the caller's.
    assert_eq!(
        (a.calls(), b.calls(), b_with_callers_key.calls()),
        (1, 0, 1)
    );
}
