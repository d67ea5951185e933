//! Budgets refuse a call before the provider is called once used up.

use futures::StreamExt as _;
use gtl_proto::ErrorCode;
use gtl_router::{BudgetConfig, CallContext, RouteConfig, RouterConfig, TargetConfig};

use crate::support::{Scripted, answer, request, router_with};

/// Spend per month, so the test does not straddle a period (the ledger's
/// own tests cover minutes and days on a given clock).
fn monthly(usd: f64) -> BudgetConfig {
    let mut budget = BudgetConfig::default();
    budget.usd_per_month = Some(usd);
    budget
}

async fn call(router: &gtl_router::Router, model: &str, subject: &str) -> Result<(), ErrorCode> {
    let mut req = request(model);
    let provider = router
        .resolve(&mut req, &CallContext::new(subject))
        .map_err(|e| e.code)?;
    let events: Vec<_> = provider
        .stream(req)
        .await
        .map_err(|e| e.code)?
        .collect()
        .await;
    assert!(matches!(events.last(), Some(gtl_proto::Body::Done(_))));
    Ok(())
}

#[tokio::test]
async fn a_subject_over_its_budget_is_refused_before_the_provider_is_called() {
    let a = Scripted::new("a");
    // Each answer costs $0.5 (the scripted usage).
    a.always(answer(&["x"]));
    let mut config = RouterConfig::default();
    config.subject_budget = monthly(1.0);
    let router = router_with(&[&a], vec![], config);
    call(&router, "a/m", "alice").await.unwrap();
    call(&router, "a/m", "alice").await.unwrap();
    let mut req = request("a/m");
    let refused = router
        .resolve(&mut req, &CallContext::new("alice"))
        .unwrap_err();
    assert_eq!(refused.code, ErrorCode::RateLimit);
    assert!(refused.message.contains("per month"), "{refused}");
    assert!(refused.retry_after.is_some());
    assert_eq!(a.calls(), 2);
    // Another subject has its own budget.
    call(&router, "a/m", "bob").await.unwrap();
}

#[tokio::test]
async fn a_route_budget_covers_all_its_callers() {
    let a = Scripted::new("a");
    a.always(answer(&["x"]));
    let mut route = RouteConfig::new("r", [TargetConfig::new("a/m")]);
    route.budget = monthly(0.5);
    let router = router_with(&[&a], vec![route], RouterConfig::default());
    call(&router, "r", "alice").await.unwrap();
    assert_eq!(call(&router, "r", "bob").await, Err(ErrorCode::RateLimit));
    // Plain calls are not the route's.
    call(&router, "a/m", "bob").await.unwrap();
    assert_eq!(a.calls(), 2);
}
