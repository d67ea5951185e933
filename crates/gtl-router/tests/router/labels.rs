//! What the router lets metrics use as labels, and whether a provider is
//! usable for readiness.

use gtl_proto::ErrorCode;
use gtl_router::{OTHER, RouteConfig, RouterConfig, TargetConfig};

use crate::support::{Script, Scripted, registry, request, router_with, run};

#[test]
fn only_configured_model_names_are_label_values() {
    let a = Scripted::new("a");
    let mut registry = registry(&[&a]);
    registry.alias("fast", "a/small");
    let route = RouteConfig::new("smart", [TargetConfig::new("a/large")]);
    let mut config = RouterConfig::default();
    config.default_models.insert("a".into(), "medium".into());
    let router = gtl_router::Router::builder(registry)
        .config(config)
        .route(route)
        .build()
        .unwrap();
    for known in [
        "smart", "fast", "small", "a/small", "large", "medium", "auto", "gpt-4o", "a",
    ] {
        assert_eq!(router.model_label(known), known);
    }
    for client_string in ["gpt-4o-2024-08-06", "larger", "s_0123", "", "a/"] {
        assert_eq!(
            router.model_label(client_string),
            OTHER,
            "{client_string:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_provider_whose_every_breaker_is_open_is_not_usable() {
    let a = Scripted::new("a");
    let b = Scripted::new("b");
    a.always(Script::Refuse(ErrorCode::ProviderUnavailable, None));
    let mut config = RouterConfig::default();
    config.breaker.consecutive_failures = 1;
    let only_a = RouteConfig::new("r", [TargetConfig::new("a/m")]);
    let router = router_with(&[&a], vec![only_a.clone()], config.clone());
    assert!(router.has_usable_provider());
    assert!(run(&router, request("r")).await.is_err());
    assert!(!router.has_usable_provider());

    // Another provider no route has called keeps the gateway usable.
    let router = router_with(&[&a, &b], vec![only_a], config);
    assert!(run(&router, request("r")).await.is_err());
    assert!(router.has_usable_provider());
}
