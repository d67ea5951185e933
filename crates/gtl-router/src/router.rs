//! The router: from a request's model to a provider.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gtl_core::{Provider, ProviderError};
use gtl_proto::types::Content;
use gtl_proto::{CompletionRequest, ErrorCode, ProviderInfo, Routing};
use gtl_providers::{PriceTable, Registry};

use crate::breaker::{Breaker, Health};
use crate::budget::{Ledger, Metered};
use crate::cache::{Key, ResponseCache};
use crate::cached::Cached;
use crate::observe::{KnownModels, Observed};
use crate::route::{Budget, Route};
use crate::routed::Routed;
use crate::target::{Target, TargetStats};
use crate::{AfterFirstToken, CallContext, RouteConfig, RouterConfig, TargetConfig};

/// The model name that picks a route by the request's routing hints.
pub const AUTO: &str = "auto";

/// The metadata key of the request-level after-first-token policy.
pub const AFTER_FIRST_TOKEN_KEY: &str = "after_first_token";

/// The metadata key that keeps a request out of the cache
/// (`"no-store"`).
pub const CACHE_KEY: &str = "cache";

/// [`CACHE_KEY`]'s value that skips the cache.
pub const NO_STORE: &str = "no-store";

/// The metadata key with which a request opts into the cache for this
/// many seconds (any model; a route's `cache_ttl_secs` otherwise).
pub const CACHE_TTL_KEY: &str = "cache_ttl_secs";

/// A resolved provider, and its route if it has one.
type Resolved = (Arc<dyn Provider>, Option<Arc<Route>>);

/// A route could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouterError {
    /// Two routes, or a route and an alias, share a name.
    #[error("route `{0}` is defined twice (or is also an alias)")]
    Duplicate(String),
    /// A route lists no target.
    #[error("route `{0}` has no targets")]
    NoTargets(String),
    /// A target names no configured provider.
    #[error("route `{route}`: target `{model}`: {reason}")]
    Target {
        /// The route.
        route: String,
        /// The target's model.
        model: String,
        /// Why it cannot be resolved.
        reason: String,
    },
    /// `[router] auto` names no route.
    #[error("[router] auto = `{0}` names no route")]
    UnknownAuto(String),
}

/// Builds a [`Router`].
#[derive(Debug)]
pub struct RouterBuilder {
    registry: Registry,
    config: RouterConfig,
    routes: Vec<RouteConfig>,
    prices: PriceTable,
    cache: Option<Arc<ResponseCache>>,
    /// Targets' health and the budgets' spend, from the router replaced.
    carried: Option<(TargetStatsMap, Arc<Ledger>)>,
    /// Where budgets count spend (default: this process alone).
    counters: Option<Arc<gtl_core::counters::Counters>>,
}

/// Each target's health and speed, by `provider/model`.
type TargetStatsMap = BTreeMap<String, Arc<TargetStats>>;

impl RouterBuilder {
    /// Carries `old`'s state into the new router, as a configuration reload
    /// does: each target's breaker and latency figures (a target keeps the
    /// breaker settings it had) and the budgets' spend, so a reload
    /// neither forgets a failing target nor resets anyone's budget.
    #[must_use]
    pub fn carrying_state_of(mut self, old: &Router) -> Self {
        self.carried = Some((old.lock_stats().clone(), old.ledger.clone()));
        self
    }

    /// Counts budgets' spend in `counters`: shared ones make every replica
    /// enforce one budget. Ignored when state is carried from an old router
    /// (its counters go on).
    #[must_use]
    pub fn counters(mut self, counters: Arc<gtl_core::counters::Counters>) -> Self {
        self.counters = Some(counters);
        self
    }

    /// The settings shared by every route.
    #[must_use]
    pub fn config(mut self, config: RouterConfig) -> Self {
        self.config = config;
        self
    }

    /// Adds a route.
    #[must_use]
    pub fn route(mut self, route: RouteConfig) -> Self {
        self.routes.push(route);
        self
    }

    /// Adds routes.
    #[must_use]
    pub fn routes(mut self, routes: impl IntoIterator<Item = RouteConfig>) -> Self {
        self.routes.extend(routes);
        self
    }

    /// The prices for the `cheapest` strategy and budgets (default: the
    /// built-in table).
    #[must_use]
    pub fn prices(mut self, prices: PriceTable) -> Self {
        self.prices = prices;
        self
    }

    /// Keeps answers in `cache` for routes with `cache_ttl_secs` and
    /// requests that opt in.
    #[must_use]
    pub fn cache(mut self, cache: Arc<ResponseCache>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Resolves every route's targets against the registry.
    pub fn build(self) -> Result<Router, RouterError> {
        let counters = self.counters;
        let (stats, ledger) = self.carried.unwrap_or_else(|| {
            let ledger = counters.map_or_else(Ledger::default, Ledger::new);
            (TargetStatsMap::default(), Arc::new(ledger))
        });
        let known = known_models(&self.registry, &self.config, &self.prices, &self.routes);
        let mut router = Router {
            registry: self.registry,
            routes: HashMap::new(),
            order: Vec::new(),
            stats: Mutex::new(stats),
            prices: self.prices,
            config: self.config,
            cache: self.cache,
            ledger,
            known,
        };
        for config in self.routes {
            let name = config.name.clone();
            if router.routes.contains_key(&name)
                || router.registry.aliases().any(|(a, _)| a == name)
            {
                return Err(RouterError::Duplicate(name));
            }
            if config.targets.is_empty() {
                return Err(RouterError::NoTargets(name));
            }
            let targets = config
                .targets
                .iter()
                .map(|target| {
                    router
                        .target(&target.model, target.weight)
                        .map_err(|e| RouterError::Target {
                            route: name.clone(),
                            model: target.model.clone(),
                            reason: e.message,
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let timeouts = router.config.timeouts().with(&config.timeouts);
            let route = Arc::new(Route::new(config, timeouts, targets));
            router.order.push(route.clone());
            router.routes.insert(name, route);
        }
        if let Some(auto) = &router.config.auto
            && !router.routes.contains_key(auto)
        {
            return Err(RouterError::UnknownAuto(auto.clone()));
        }
        Ok(router)
    }
}

/// Routes requests to providers: plain models and aliases as the
/// [`Registry`] does, route names through [`Routed`], a request's
/// `providers` list as a failover route, and model [`AUTO`] by its
/// routing hints.
#[derive(Debug)]
pub struct Router {
    registry: Registry,
    routes: HashMap<String, Arc<Route>>,
    /// The routes in configuration order (model "auto" takes the first
    /// that fits).
    order: Vec<Arc<Route>>,
    /// Health and speed per target, `provider/model`.
    stats: Mutex<TargetStatsMap>,
    prices: PriceTable,
    config: RouterConfig,
    cache: Option<Arc<ResponseCache>>,
    /// Spend per subject and route, for budgets.
    ledger: Arc<Ledger>,
    /// The model names metrics may use as label values.
    known: KnownModels,
}

/// A router without routes: every request resolves as the registry
/// resolves it.
impl From<Registry> for Router {
    fn from(registry: Registry) -> Self {
        let known = known_models(
            &registry,
            &RouterConfig::default(),
            &PriceTable::builtin(),
            &[],
        );
        Self {
            registry,
            routes: HashMap::new(),
            order: Vec::new(),
            stats: Mutex::new(BTreeMap::new()),
            prices: PriceTable::builtin(),
            config: RouterConfig::default(),
            cache: None,
            ledger: Arc::default(),
            known,
        }
    }
}

impl Router {
    /// A router over `registry`'s providers and aliases; add routes with
    /// the builder.
    pub fn builder(registry: Registry) -> RouterBuilder {
        RouterBuilder {
            registry,
            config: RouterConfig::default(),
            routes: Vec::new(),
            prices: PriceTable::builtin(),
            cache: None,
            carried: None,
            counters: None,
        }
    }

    /// The response cache, when the router has one.
    pub fn response_cache(&self) -> Option<&Arc<ResponseCache>> {
        self.cache.as_ref()
    }

    /// The registry under the routes.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The routes, `(name, first target)` with the target as
    /// `provider/model`, in configuration order.
    pub fn routes(&self) -> impl Iterator<Item = (&str, &str)> {
        self.order.iter().filter_map(|route| {
            let first = route.targets.first()?;
            Some((route.name(), first.label.as_str()))
        })
    }

    /// The route names, in configuration order.
    pub fn route_names(&self) -> impl Iterator<Item = &str> {
        self.order.iter().map(|route| route.name())
    }

    /// Picks the provider for `request`, rewriting its provider and model
    /// when a plain model or alias is asked for (as
    /// [`Registry::resolve`]). A route's provider picks its targets per
    /// call.
    pub fn resolve(
        &self,
        request: &mut CompletionRequest,
        context: &CallContext,
    ) -> Result<Arc<dyn Provider>, ProviderError> {
        let (mut provider, route) = self.resolve_uncached(request, context)?;
        let route_ttl = route.as_ref().map_or(0, |r| r.config.cache_ttl_secs);
        provider = self.metered(provider, route.as_deref(), context)?;
        let Some(cache) = &self.cache else {
            return Ok(provider);
        };
        let metadata = &request.metadata;
        let ttl = match metadata.get(CACHE_KEY).map(String::as_str) {
            Some(NO_STORE) => 0,
            _ => metadata
                .get(CACHE_TTL_KEY)
                .and_then(|ttl| ttl.parse().ok())
                .unwrap_or(route_ttl),
        };
        let config = cache.config();
        if ttl == 0
            || !config.enabled
            || request.pipe
            || (!request.tools.is_empty() && !config.tools)
        {
            return Ok(provider);
        }
        let key = Key::new(request, context.tenant.as_deref());
        Ok(Arc::new(Cached::new(
            provider,
            cache.clone(),
            key,
            Duration::from_secs(ttl),
        )))
    }

    /// The provider for `request`, and its route if it has one.
    fn resolve_uncached(
        &self,
        request: &mut CompletionRequest,
        context: &CallContext,
    ) -> Result<Resolved, ProviderError> {
        if request.provider.is_empty() {
            if let Some(route) = self.routes.get(&request.model) {
                let provider = self.routed(route.clone(), request, context, None);
                return Ok((provider, Some(route.clone())));
            }
            if request.model == AUTO {
                let route = self.auto(request.routing.as_ref())?;
                let budget = request
                    .routing
                    .as_ref()
                    .and_then(|r| r.budget)
                    .map(|usd| estimate(request, usd));
                let provider = self.routed(route.clone(), request, context, budget);
                return Ok((provider, Some(route)));
            }
            if !request.providers.is_empty() {
                let route = Arc::new(self.providers_route(request)?);
                let provider = self.routed(route.clone(), request, context, None);
                return Ok((provider, Some(route)));
            }
        }
        let provider = self.registry.resolve(request)?;
        let observed = Observed::new(
            provider,
            &request.provider,
            self.model_label(&request.model),
            context.timing.clone(),
        );
        Ok((Arc::new(observed), None))
    }

    /// `provider` charged to the subject's and the route's budgets, after
    /// checking neither is used up (`RATE_LIMIT` with a retry hint).
    fn metered(
        &self,
        provider: Arc<dyn Provider>,
        route: Option<&Route>,
        context: &CallContext,
    ) -> Result<Arc<dyn Provider>, ProviderError> {
        let now = crate::budget::unix_now();
        let mut keys = Vec::new();
        if self.config.subject_budget.is_set() {
            let key = format!("subject `{}`", context.subject);
            self.ledger.check(&key, &self.config.subject_budget, now)?;
            keys.push(key);
        }
        if let Some(route) = route.filter(|r| r.config.budget.is_set()) {
            let key = format!("route `{}`", route.name());
            self.ledger.check(&key, &route.config.budget, now)?;
            keys.push(key);
        }
        if keys.is_empty() {
            return Ok(provider);
        }
        Ok(Arc::new(Metered {
            inner: provider,
            ledger: self.ledger.clone(),
            keys,
        }))
    }

    /// Each configured provider's models, with each model's breaker state
    /// in `health` where the router has called it.
    pub async fn models(&self, only: Option<&str>) -> Vec<ProviderInfo> {
        let mut infos = self.registry.models(only).await;
        let stats = self.lock_stats();
        for info in &mut infos {
            for model in &mut info.models {
                if let Some(stats) = stats.get(&format!("{}/{}", info.provider, model.name)) {
                    model.health = stats.health().as_str().to_owned();
                }
            }
        }
        infos
    }

    /// Every target the router has set up, `provider/model`, with its
    /// breaker state.
    pub fn health(&self) -> Vec<(String, Health)> {
        self.lock_stats()
            .iter()
            .map(|(label, stats)| (label.clone(), stats.health()))
            .collect()
    }

    /// `model` as a metric label value: the name itself when the
    /// configuration knows it (a route, an alias, a target or default
    /// model, a priced model, a provider's own name), else
    /// [`OTHER`](crate::OTHER), so a client's arbitrary model string never
    /// creates a label value.
    pub fn model_label<'a>(&self, model: &'a str) -> &'a str {
        self.known.label(model)
    }

    /// Sets `gtl_circuit_open{target}` for every target of the configured
    /// routes: 1 while its breaker is open (calls refused), 0 when closed
    /// or half-open. Targets of a request's own `providers` list are left
    /// out, their names being the client's.
    pub fn record_circuits(&self) {
        let stats = self.lock_stats();
        let configured = self.order.iter().flat_map(|route| &route.targets);
        let mut seen = std::collections::HashSet::new();
        for target in configured {
            if !seen.insert(target.label.as_str()) {
                continue;
            }
            let open = stats
                .get(&target.label)
                .is_some_and(|s| s.health() == Health::Open);
            metrics::gauge!("gtl_circuit_open", "target" => target.label.clone())
                .set(f64::from(u8::from(open)));
        }
    }

    /// Whether some provider can take a call now: one that is no route's
    /// target (it has no breaker), or one with a target whose breaker is
    /// not open.
    pub fn has_usable_provider(&self) -> bool {
        let stats = self.lock_stats();
        self.registry.names().any(|name| {
            let mut targets = stats
                .iter()
                .filter(|(label, _)| label.split_once('/').is_some_and(|(p, _)| p == name))
                .peekable();
            targets.peek().is_none() || targets.any(|(_, s)| s.health() != Health::Open)
        })
    }

    fn routed(
        &self,
        route: Arc<Route>,
        request: &CompletionRequest,
        context: &CallContext,
        budget: Option<Budget>,
    ) -> Arc<dyn Provider> {
        let policy = request
            .metadata
            .get(AFTER_FIRST_TOKEN_KEY)
            .and_then(|p| AfterFirstToken::parse(p))
            .unwrap_or_else(|| route.policy());
        Arc::new(Routed::new(
            route,
            policy,
            self.config.backoff,
            budget,
            context.clone(),
        ))
    }

    /// Resolves `model` (`provider/model` or an alias) to a target.
    fn target(&self, model: &str, weight: u32) -> Result<Target, ProviderError> {
        let mut probe = CompletionRequest {
            model: model.to_owned(),
            ..CompletionRequest::default()
        };
        let provider = self.registry.resolve(&mut probe)?;
        let label = format!("{}/{}", probe.provider, probe.model);
        let stats = self
            .lock_stats()
            .entry(label.clone())
            .or_insert_with(|| {
                Arc::new(TargetStats::new(Breaker::new(
                    label.clone(),
                    self.config.breaker,
                )))
            })
            .clone();
        Ok(Target {
            label,
            price: self.prices.lookup(&probe.provider, &probe.model),
            provider,
            metric_model: self.model_label(&probe.model).to_owned(),
            model: probe.model,
            weight,
            stats,
        })
    }

    /// The request's `providers` list as a failover route: each provider
    /// with the request's model when it is bare or names that provider,
    /// else with the provider's default model.
    fn providers_route(&self, request: &CompletionRequest) -> Result<Route, ProviderError> {
        let mut targets = Vec::new();
        for provider in &request.providers {
            if self.registry.get(provider).is_none() {
                return Err(ProviderError::new(
                    ErrorCode::ModelNotFound,
                    format!("`providers` names `{provider}`, which is not configured"),
                ));
            }
            let model = match request.model.split_once('/') {
                None if !request.model.is_empty() => request.model.clone(),
                Some((prefix, model)) if prefix == provider => model.to_owned(),
                _ => match self.config.default_models.get(provider) {
                    Some(model) => model.clone(),
                    None => continue,
                },
            };
            targets.push(self.target(&format!("{provider}/{model}"), 1)?);
        }
        if targets.is_empty() {
            return Err(ProviderError::new(
                ErrorCode::ModelNotFound,
                format!(
                    "no provider in `providers` serves `{}` and none has a default model \
                     ([router.default_models])",
                    request.model
                ),
            ));
        }
        let config = RouteConfig::new(
            request.providers.join(","),
            targets.iter().map(|t| TargetConfig::new(t.label.clone())),
        );
        Ok(Route::new(config, self.config.timeouts(), targets))
    }

    /// The route for model "auto": the first (in configuration order)
    /// whose intents, latency class and locality fit the hints; else
    /// `[router] auto`.
    fn auto(&self, routing: Option<&Routing>) -> Result<Arc<Route>, ProviderError> {
        let fallback = self
            .config
            .auto
            .as_ref()
            .and_then(|name| self.routes.get(name));
        self.order
            .iter()
            .find(|route| fits(&route.config, routing, true))
            // prefer_local is a preference: a remote route still serves.
            .or_else(|| {
                self.order
                    .iter()
                    .find(|route| fits(&route.config, routing, false))
            })
            .or(fallback)
            .cloned()
            .ok_or_else(|| {
                ProviderError::new(
                    ErrorCode::ModelNotFound,
                    "model `auto`: no route fits the request's routing hints and [router] auto \
                     names none",
                )
            })
    }

    fn lock_stats(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<TargetStats>>> {
        self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The names metrics may use as model labels: providers' own names (echo's
/// model is `echo`), aliases and their targets, routes and their targets,
/// `[router] auto` and `default_models`, and the priced models.
fn known_models(
    registry: &Registry,
    config: &RouterConfig,
    prices: &PriceTable,
    routes: &[RouteConfig],
) -> KnownModels {
    let mut known = KnownModels::default();
    for name in registry.names() {
        known.insert(name);
    }
    for (alias, target) in registry.aliases() {
        known.insert(alias);
        known.insert(target);
    }
    for route in routes {
        known.insert(&route.name);
        for target in &route.targets {
            known.insert(&target.model);
        }
    }
    known.insert(AUTO);
    for model in config.auto.iter().chain(config.default_models.values()) {
        known.insert(model);
    }
    for model in prices.models() {
        known.insert(model);
    }
    known
}

/// Whether `route` fits the routing hints: its intents include the
/// request's (or it lists none), its latency class is the request's (or it
/// has none) and, with `local`, it is local when the request prefers that.
fn fits(route: &RouteConfig, hints: Option<&Routing>, local: bool) -> bool {
    let Some(hints) = hints else {
        return true;
    };
    (hints.intent.is_empty() || route.intents.is_empty() || route.intents.contains(&hints.intent))
        && (hints.latency.is_empty() || route.latency.as_ref().is_none_or(|l| *l == hints.latency))
        && (!local || !hints.prefer_local || route.local)
}

/// A budget for `request`: input tokens estimated from its text (four
/// characters a token), output tokens from `max_tokens` (0 when unset).
fn estimate(request: &CompletionRequest, usd: f64) -> Budget {
    let chars: usize = request
        .messages
        .iter()
        .map(|m| match &m.content {
            Some(Content::Text(text)) => text.len(),
            _ => 0,
        })
        .sum();
    Budget {
        usd,
        tokens_in: chars as f64 / 4.0,
        tokens_out: f64::from(request.max_tokens.unwrap_or(0)),
    }
}
