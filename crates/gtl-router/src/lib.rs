//! GTL routing and resilience, as layers around the [`Provider`] trait.
//!
//! A [`Router`] sits in front of a [`Registry`]. Plain models
//! (`provider/model`) and aliases resolve exactly as the registry resolves
//! them. A *route* is a model name clients ask for (`"smart"`) served by
//! weighted targets; resolving it gives a [`Routed`] provider which, per
//! call:
//!
//! - orders the targets by the route's [`Strategy`] (failover,
//!   round-robin, weighted, least-latency, cheapest), skipping targets
//!   whose circuit breaker is open;
//! - before the first token, moves on after retryable errors (rate limits,
//!   5xx, timeouts, broken connections): the same target again up to
//!   `retries` times, with exponential backoff and jitter or the
//!   provider's Retry-After, then the next target; each failure is a
//!   `status {state: "retrying"}` event naming the target and the reason;
//! - after the first token, applies the route's [`AfterFirstToken`]
//!   policy: `abort`, `restart` (a `status {state: "restarted"}`, then the
//!   next target's whole answer) or `continue` (the next target continues
//!   the partial text, so the client sees one answer);
//! - keeps every attempt within its [`Timeouts`] (the [`Timed`] layer) and
//!   the call's deadline, and reports the usage of every leg, summed.
//!
//! Budgets ([`BudgetConfig`]: tokens per minute, spend per day and month,
//! per subject and per route) are checked before a provider is called and
//! charged from each call's usage (the `Metered` layer).
//!
//! With a [`ResponseCache`] (redb), routes with `cache_ttl_secs` and
//! requests that opt in are wrapped in the [`Cached`] layer: a complete
//! answer is kept by its normalised request and replayed after a
//! `status {state: "cached"}`, and identical requests in flight share one
//! upstream call.
//!
//! A request's `providers` list becomes a failover route, and model
//! `"auto"` picks a route by the request's routing hints. See
//! `docs/routing.md` for every option and the event sequences.
//!
//! Each call to a provider (a plain model's, or each attempt of a routed
//! call) records upstream metrics through the `metrics` facade: time to
//! first token, provider errors, tokens and cost per provider and model,
//! retries, failovers; [`Router::record_circuits`] sets the breakers'
//! gauge. Label values are configured names only ([`OTHER`] otherwise).
//!
//! This crate does not authenticate, limit or audit calls (the call
//! service does) and does no IO of its own beyond the providers' and the
//! tokio timer.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//!
//! use gtl_core::complete;
//! use gtl_proto::types::Content;
//! use gtl_proto::{CompletionRequest, Message, Role};
//! use gtl_providers::{EchoProvider, Registry};
//! use gtl_router::{CallContext, RouteConfig, Router, TargetConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let mut registry = Registry::new();
//! registry.add(Arc::new(EchoProvider::new()));
//! // The first target always fails with a retryable error: the second
//! // serves the call.
//! let route = RouteConfig::new(
//!     "smart",
//!     [
//!         TargetConfig::new("echo/echo:error=PROVIDER_UNAVAILABLE"),
//!         TargetConfig::new("echo/echo"),
//!     ],
//! );
//! let router = Router::builder(registry).route(route).build().unwrap();
//!
//! let request = CompletionRequest {
//!     model: "smart".into(),
//!     messages: vec![Message {
//!         role: Role::User as i32,
//!         content: Some(Content::Text("hello".into())),
//!         ..Message::default()
//!     }],
//!     ..CompletionRequest::default()
//! };
//! let mut request = request;
//! let provider = router.resolve(&mut request, &CallContext::new("alice")).unwrap();
//! let answer = complete(provider.as_ref(), request).await.unwrap();
//! assert_eq!(answer.text, "hello");
//! # }
//! ```

#![doc(test(no_crate_inject, attr(deny(warnings))))]

mod breaker;
mod budget;
mod cache;
mod cached;
mod config;
mod context;
mod observe;
mod plan;
mod route;
mod routed;
mod router;
mod target;
mod timeout;

pub use breaker::Health;
pub use budget::BudgetConfig;
pub use cache::{CacheConfig, CacheError, ResponseCache};
pub use cached::{CACHED, Cached};
pub use config::{
    AfterFirstToken, BackoffConfig, BreakerConfig, RouteConfig, RouterConfig, Strategy,
    TargetConfig, TimeoutOverrides, Timeouts,
};
pub use context::{CallContext, CallerKeys};
pub use observe::{CallTiming, OTHER};
pub use routed::Routed;
pub use router::{
    AFTER_FIRST_TOKEN_KEY, AUTO, CACHE_KEY, CACHE_TTL_KEY, NO_STORE, Router, RouterBuilder,
    RouterError,
};
pub use timeout::Timed;

#[doc(no_inline)]
pub use gtl_core::Provider;
#[doc(no_inline)]
pub use gtl_providers::Registry;
