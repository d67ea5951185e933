//! What the router records per upstream attempt, the label values it
//! allows, and whether a provider is usable for readiness.

use gtl_proto::ErrorCode;
use gtl_router::{OTHER, RouteConfig, RouterConfig, TargetConfig};

use crate::support::{Script, Scripted, answer, registry, request, router_with, run};

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

#[test]
fn each_attempt_is_recorded_with_its_provider_and_model() {
    let a = Scripted::new("a");
    let b = Scripted::new("b");
    a.always(Script::Refuse(ErrorCode::ProviderUnavailable, None));
    b.always(answer(&["x", "y"]));
    let route = RouteConfig::new("r", [TargetConfig::new("a/m"), TargetConfig::new("b/m")]);
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || {
        runtime.block_on(async {
            let router = router_with(&[&a, &b], vec![route], RouterConfig::default());
            run(&router, request("r")).await.unwrap();
            // A plain model: the same layer, no route.
            run(&router, request("b/unconfigured-7f")).await.unwrap();
            router.record_circuits();
        });
    });
    let text = recorder.handle().render();
    for line in [
        r#"gtl_provider_errors_total{provider="a",code="PROVIDER_UNAVAILABLE"} 1"#,
        "gtl_failovers_total 1",
        r#"gtl_tokens_total{direction="in",provider="b",model="m"} 10"#,
        r#"gtl_tokens_total{direction="out",provider="b",model="m"} 2"#,
        r#"gtl_cost_usd_total{provider="b",model="m"} 0.5"#,
        r#"gtl_upstream_time_to_first_token_seconds_count{provider="b",model="m"} 1"#,
        // The client's model string is not a label value.
        r#"gtl_cost_usd_total{provider="b",model="other"} 0.5"#,
        r#"gtl_circuit_open{target="a/m"} 0"#,
        r#"gtl_circuit_open{target="b/m"} 0"#,
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
    assert!(!text.contains("unconfigured"), "{text}");
    assert!(!text.contains("gtl_retries_total"), "{text}");
}
