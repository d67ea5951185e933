//! The call service: what every transport calls, so none re-implements
//! authentication, routing, ownership or limits.
//!
//! A transport admits a connection ([`CallService::admit`]), authenticates
//! its caller once ([`CallService::authenticate`]), then turns each request
//! into one of the service's operations. Calls come back as the engine's
//! [`Call`] handles, which the transport drains into its own framing.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;

use gtl_auth::Operation;
use gtl_core::{Call, Engine, MemoryBudget, StartCall};
use gtl_proto::{CompletionRequest, ErrorCode, Input, ProviderInfo};
use gtl_router::{CallContext, Router};
use gtl_transport::PeerInfo;

use crate::audit::{AuditSink, Audited, CallAudit};
use crate::auth::{Authenticator, KeyOpener, Principal};
use crate::drain::Drain;
use crate::measure::{CallLabels, Measured, OpenConnection};
use crate::probe::Readiness;

/// The `provider` label of a call through a route (its attempts are
/// labelled with their own providers).
pub const ROUTED: &str = "routed";

/// Why the service refused an operation: a GTL code and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
#[non_exhaustive]
pub struct CallError {
    /// The GTL code to answer with.
    pub code: ErrorCode,
    /// What went wrong, for a person.
    pub message: String,
}

impl CallError {
    /// An error with `code` and a message saying what to do.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl From<gtl_core::EngineError> for CallError {
    fn from(e: gtl_core::EngineError) -> Self {
        Self::new(e.code, e.message)
    }
}

impl From<gtl_core::ProviderError> for CallError {
    fn from(e: gtl_core::ProviderError) -> Self {
        Self::new(e.code, e.message)
    }
}

impl From<crate::auth::AuthError> for CallError {
    fn from(e: crate::auth::AuthError) -> Self {
        Self::new(e.code, e.message)
    }
}

/// The limits a transport applies to each connection (see
/// docs/operations.md). The defaults are the server's.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionLimits {
    /// The largest frame accepted, in bytes.
    pub max_frame_bytes: usize,
    /// Concurrent calls on one connection.
    pub max_calls: usize,
    /// Open connections, server-wide.
    pub max_connections: usize,
    /// Open connections from one peer (a user id, else an IP address).
    pub max_connections_per_peer: usize,
    /// Time from connect to a complete `hello`.
    pub handshake_timeout: Duration,
    /// Time a connection with no call may stay silent.
    pub idle_timeout: Duration,
    /// Time a peer may accept no bytes while the server has some to send.
    pub send_timeout: Duration,
    /// Memory of the events not yet delivered to one connection.
    pub connection_memory: usize,
    /// Calls running at once for one subject (a session.pipe counts while
    /// it is open), on every connection together.
    pub max_calls_per_subject: usize,
    /// Calls one token subject may start per minute (0: no limit). Trusted
    /// local users are not rate-limited.
    pub calls_per_minute_per_subject: u32,
    /// Open connections of one token subject, from wherever they come
    /// (local users are counted per peer).
    pub max_connections_per_subject: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_frame_bytes: gtl_proto::DEFAULT_MAX_FRAME_BYTES,
            max_calls: 1024,
            max_connections: 8192,
            max_connections_per_peer: 1024,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            send_timeout: Duration::from_secs(30),
            connection_memory: 64 << 20,
            max_calls_per_subject: 256,
            calls_per_minute_per_subject: 600,
            max_connections_per_subject: 1024,
        }
    }
}

/// The transport-neutral call service. Cheap to share: transports hold it
/// in an `Arc`.
#[derive(Debug)]
pub struct CallService {
    engine: Engine,
    /// Swapped whole by a configuration reload; a call keeps the providers
    /// it resolved.
    router: ArcSwap<Router>,
    auth: ArcSwap<Authenticator>,
    limits: ConnectionLimits,
    /// Open connections per peer key, and their total.
    connections: Mutex<(usize, HashMap<String, usize>)>,
    /// Where each call's audit record goes, if anywhere.
    audit: Option<Arc<dyn AuditSink>>,
    /// Running calls per subject.
    subject_calls: Arc<Mutex<HashMap<String, usize>>>,
    /// Open connections per token subject.
    subject_connections: Arc<Mutex<HashMap<String, usize>>>,
    /// Calls started per subject, per minute.
    subject_rate: Option<governor::DefaultKeyedRateLimiter<String>>,
    /// Counters shared by the replicas: when set, calls per minute are
    /// counted there (one limit for all replicas) instead of `subject_rate`.
    shared_counters: Option<Arc<gtl_core::counters::Counters>>,
    /// Opens callers' own provider keys.
    key_opener: Option<Arc<dyn KeyOpener>>,
    /// Set when the server drains before stopping.
    drain: Arc<Drain>,
    /// Whether the server's listeners are accepting.
    listening: std::sync::atomic::AtomicBool,
    /// Links a call's span to its request's `traceparent`.
    trace_parent: Option<Arc<dyn crate::trace::TraceParent>>,
}

/// A connection's place among the open ones; dropping it frees the place.
#[derive(Debug)]
pub struct Admission {
    service: Arc<CallService>,
    peer: String,
    _open: OpenConnection,
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut open = self.service.lock_connections();
        open.0 -= 1;
        if let Some(count) = open.1.get_mut(&self.peer) {
            *count -= 1;
            if *count == 0 {
                open.1.remove(&self.peer);
            }
        }
        drop(open);
        self.service.drain.ended();
    }
}

impl CallService {
    /// A service over `engine`, routing with `router` (a
    /// [`Registry`](gtl_providers::Registry) converts into a router without
    /// routes).
    pub fn new(
        engine: Engine,
        router: impl Into<Router>,
        auth: Authenticator,
        limits: ConnectionLimits,
    ) -> Self {
        let subject_rate = std::num::NonZeroU32::new(limits.calls_per_minute_per_subject)
            .map(|n| governor::RateLimiter::keyed(governor::Quota::per_minute(n)));
        Self {
            engine,
            router: ArcSwap::from_pointee(router.into()),
            auth: ArcSwap::from_pointee(auth),
            limits,
            connections: Mutex::new((0, HashMap::new())),
            audit: None,
            subject_calls: Arc::default(),
            subject_connections: Arc::default(),
            subject_rate,
            shared_counters: None,
            key_opener: None,
            drain: Arc::new(Drain::new()),
            // In-process and stdio gateways have no listener to wait for.
            listening: std::sync::atomic::AtomicBool::new(true),
            trace_parent: None,
        }
    }

    /// The router new calls resolve with.
    pub fn router(&self) -> Arc<Router> {
        self.router.load_full()
    }

    /// Applies a reloaded configuration: `router` (providers, aliases,
    /// routes) and `auth` serve every call and connection from now on;
    /// calls already running keep what they resolved.
    pub fn reload(&self, router: Router, auth: Authenticator) {
        self.router.store(Arc::new(router));
        self.auth.store(Arc::new(auth));
    }

    /// Starts draining: new calls are refused (`PROVIDER_UNAVAILABLE`,
    /// retryable: another endpoint can take them), every connection is
    /// told with a `draining` status and closed once its calls are done;
    /// resumes are still served. See [`drained`](Self::drained).
    pub fn drain(&self) {
        if self.drain.start() {
            tracing::info!("draining: no new calls; running calls may finish");
        }
    }

    /// Whether [`drain`](Self::drain) was called.
    pub fn is_draining(&self) -> bool {
        self.drain.is_started()
    }

    /// Resolves once draining starts: what a transport waits on to tell
    /// its connection.
    pub fn draining(&self) -> impl Future<Output = ()> + Send + 'static {
        self.drain.started()
    }

    /// Resolves once no call runs and no connection is open.
    pub async fn drained(&self) {
        self.drain
            .idle(|| {
                let calls = self
                    .subject_calls
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                !calls.is_empty() || self.lock_connections().0 > 0
            })
            .await;
    }

    /// Says whether the server's listeners are accepting (see
    /// [`readiness`](Self::readiness)); a server sets it once they are,
    /// and clears it when it stops accepting.
    pub fn set_listening(&self, listening: bool) {
        self.listening
            .store(listening, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether the gateway can serve calls now: what `/readyz` and the
    /// gRPC health service report.
    pub fn readiness(&self) -> Readiness {
        Readiness {
            store: self.engine.store_writable(),
            listening: self.listening.load(std::sync::atomic::Ordering::Relaxed),
            providers: self.router.load().has_usable_provider(),
        }
    }

    /// Brings the metrics that describe state rather than events up to
    /// date (the circuit breakers' `gtl_circuit_open`): call it before
    /// rendering the metrics.
    pub fn record_state(&self) {
        self.router.load().record_circuits();
    }

    /// Opens the provider keys callers' tokens carry with `opener`; without
    /// one, a token with provider keys is refused.
    pub fn with_key_opener(mut self, opener: Arc<dyn KeyOpener>) -> Self {
        self.key_opener = Some(opener);
        self
    }

    /// Waits (blocking) until the audit records of the calls so far are
    /// written: what a server does before it exits.
    pub fn flush_audit(&self) {
        if let Some(sink) = &self.audit {
            sink.flush();
        }
    }

    /// Gives every call a `gen_ai.call` span, and makes a request's W3C
    /// `traceparent` (metadata key [`TRACEPARENT`](crate::TRACEPARENT)) its
    /// remote parent, with `link`: what a server exporting traces installs.
    /// Without it calls have no span (they would only cost).
    pub fn with_trace_parent(mut self, link: Arc<dyn crate::trace::TraceParent>) -> Self {
        self.trace_parent = Some(link);
        self
    }

    /// Counts each subject's calls per minute in `counters`: with counters
    /// shared by the replicas, the limit holds for all of them together
    /// (per clock minute, rather than this process's smooth rate).
    pub fn with_shared_counters(mut self, counters: Arc<gtl_core::counters::Counters>) -> Self {
        self.shared_counters = Some(counters);
        self
    }

    /// Records every call in `sink` (see [`AuditRecord`](crate::AuditRecord)).
    pub fn with_audit(mut self, sink: Arc<dyn AuditSink>) -> Self {
        self.audit = Some(sink);
        self
    }

    /// The engine holding the sessions.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The per-connection limits transports apply.
    pub fn limits(&self) -> &ConnectionLimits {
        &self.limits
    }

    /// Takes a place for a new connection from `peer`, or refuses with
    /// `RATE_LIMIT` when the server or that peer is at its cap.
    pub fn admit(self: &Arc<Self>, peer: &PeerInfo) -> Result<Admission, CallError> {
        let key = peer_key(peer);
        let mut open = self.lock_connections();
        if open.0 >= self.limits.max_connections {
            return Err(CallError::new(
                ErrorCode::RateLimit,
                format!(
                    "the server has its maximum of {} connections open: retry later",
                    self.limits.max_connections
                ),
            ));
        }
        let from_peer = open.1.get(&key).copied().unwrap_or(0);
        if from_peer >= self.limits.max_connections_per_peer {
            return Err(CallError::new(
                ErrorCode::RateLimit,
                format!(
                    "{key} has its maximum of {} connections open: close some or reuse one \
                     (a connection carries many calls)",
                    self.limits.max_connections_per_peer
                ),
            ));
        }
        open.0 += 1;
        *open.1.entry(key.clone()).or_default() += 1;
        Ok(Admission {
            service: self.clone(),
            peer: key,
            _open: OpenConnection::new(peer.transport),
        })
    }

    /// Counts a connection of `principal` against its subject's cap
    /// (token subjects only: a local user's connections are counted per
    /// peer by [`admit`](Self::admit)), or refuses it with `RATE_LIMIT`.
    /// Hold the returned place for as long as the connection is open.
    pub fn admit_subject(&self, principal: &Principal) -> Result<SubjectConnection, CallError> {
        if principal.scopes.is_none() {
            return Ok(SubjectConnection { _slot: None });
        }
        let mut open = self
            .subject_connections
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = open.entry(principal.subject.clone()).or_default();
        if *count >= self.limits.max_connections_per_subject {
            return Err(CallError::new(
                ErrorCode::RateLimit,
                format!(
                    "{} has its maximum of {} connections open: close some or reuse one \
                     (a connection carries many calls)",
                    principal.subject, self.limits.max_connections_per_subject
                ),
            ));
        }
        *count += 1;
        Ok(SubjectConnection {
            _slot: Some(CallSlot {
                calls: self.subject_connections.clone(),
                subject: principal.subject.clone(),
                drain: self.drain.clone(),
            }),
        })
    }

    /// Decides who a caller is, once per connection (or per request on
    /// transports without connections).
    pub fn authenticate(&self, peer: &PeerInfo, token: &str) -> Result<Principal, CallError> {
        Ok(self.auth.load().authenticate(peer, token)?)
    }

    /// [`authenticate`](Self::authenticate) for the compatible APIs, whose
    /// SDKs always send an API key (see
    /// [`Authenticator::authenticate_api_key`]).
    pub fn authenticate_api_key(&self, peer: &PeerInfo, key: &str) -> Result<Principal, CallError> {
        Ok(self.auth.load().authenticate_api_key(peer, key)?)
    }

    /// A memory budget for one connection's undelivered events.
    pub fn connection_budget(&self) -> Arc<MemoryBudget> {
        Arc::new(MemoryBudget::new(self.limits.connection_memory))
    }

    /// Starts a call for `principal`: routes the request to its provider and
    /// creates its session (with the client's `session_id`, in the
    /// principal's namespace, when given).
    pub async fn start(
        &self,
        principal: &Principal,
        session_id: Option<String>,
        request: CompletionRequest,
    ) -> Result<Call, CallError> {
        let received = std::time::Instant::now();
        if let Some(counters) = &self.shared_counters
            && principal.scopes.is_some()
        {
            // The subject's calls this minute on every replica, not only
            // those this one has heard of.
            let (key, ends) = calls_counter(&principal.subject);
            counters
                .warm(&key, ends, gtl_core::counters::unix_now())
                .await;
        }
        let route = crate::measure::route_of(&request);
        let model = Arc::from(self.router.load().model_label(&request.model));
        self.start_at(received, principal, session_id, request)
            .inspect_err(|e| {
                // Refused before any provider was called: the provider is
                // not known (or not reached).
                CallLabels {
                    route,
                    transport: principal.transport,
                    provider: Arc::from(gtl_router::OTHER),
                    model,
                }
                .count(crate::measure::outcome(e.code));
            })
    }

    fn start_at(
        &self,
        received: std::time::Instant,
        principal: &Principal,
        session_id: Option<String>,
        mut request: CompletionRequest,
    ) -> Result<Call, CallError> {
        principal.check(Operation::Chat, now())?;
        if !request.tools.is_empty() {
            principal.check(Operation::Tools, now())?;
        }
        if self.is_draining() {
            return Err(CallError::new(
                ErrorCode::ProviderUnavailable,
                "the gateway is draining before a restart or shutdown: send the call to \
                 another endpoint (gtl does so by itself)",
            ));
        }
        // The place first: a call refused for it does not use up the rate.
        let slot = self.call_slot(principal)?;
        self.admit_call(principal)?;
        let timing = Arc::new(gtl_router::CallTiming::new(received));
        let mut context =
            call_context(principal, session_id.as_deref()).with_timing(timing.clone());
        if !principal.provider_keys.is_empty() {
            context = context.with_keys(Arc::new(SealedKeys {
                sealed: principal.provider_keys.clone(),
                opener: self.key_opener.clone(),
            }));
        }
        let requested = if request.provider.is_empty() {
            request.model.clone()
        } else {
            format!("{}/{}", request.provider, request.model)
        };
        let router = self.router.load();
        let mut provider = router.resolve(&mut request, &context)?;
        tracing::debug!(provider = %request.provider, model = %request.model, "call");
        if let Some(sealed) = principal.provider_keys.get(&request.provider) {
            provider = self.with_callers_key(&provider, &request.provider, sealed)?;
        }
        provider = Arc::new(Counted {
            inner: provider,
            _slot: slot,
        });
        // A routed call's provider is its route: the attempts are counted
        // per provider by the router.
        let labels = CallLabels {
            route: crate::measure::route_of(&request),
            transport: principal.transport,
            provider: Arc::from(if request.provider.is_empty() {
                ROUTED
            } else {
                request.provider.as_str()
            }),
            model: Arc::from(router.model_label(&request.model)),
        };
        let first_output = labels.first_output(timing);
        provider = Arc::new(Measured {
            inner: provider,
            labels,
            received,
        });
        // The call's span exists for the trace exporter: without one, no
        // span and no wrapper to enter it at every poll.
        if let Some(link) = &self.trace_parent {
            let span = crate::trace::call_span(&request, provider.name(), principal.transport);
            if let Some(parent) = request.metadata.get(crate::trace::TRACEPARENT) {
                link.link(&span, parent);
            }
            provider = Arc::new(crate::trace::Traced {
                inner: provider,
                span,
            });
        }
        let mut named = None;
        if let Some(sink) = &self.audit {
            let session_id = Arc::new(std::sync::OnceLock::new());
            let route = if request.pipe {
                "session.pipe"
            } else if request.stream {
                "chat.stream"
            } else {
                "chat.complete"
            };
            let audit = CallAudit {
                sink: sink.clone(),
                subject: principal.subject.clone(),
                transport: principal.transport.to_owned(),
                route,
                requested,
                session_id: session_id.clone(),
            };
            provider = Arc::new(Audited {
                inner: provider,
                audit: Arc::new(audit),
            });
            named = Some(session_id);
        }
        let mut start =
            StartCall::new(&principal.subject, provider, request).with_first_output(first_output);
        if let Some(id) = session_id {
            start = start.with_session_id(id);
        }
        let call = self.engine.start(start)?;
        if let Some(named) = named {
            let _ = named.set(call.session_id().to_owned());
        }
        Ok(call)
    }

    /// Re-attaches `principal` to one of its sessions after `after_seq`.
    pub async fn resume(
        &self,
        principal: &Principal,
        session_id: &str,
        after_seq: u64,
        resume_token: &str,
    ) -> Result<Call, CallError> {
        let resumed = match principal.check(Operation::ReadSession, now()) {
            Ok(()) => self
                .engine
                .resume(&principal.subject, session_id, after_seq, resume_token)
                .await
                .map_err(CallError::from),
            Err(e) => Err(CallError::from(e)),
        };
        let outcome = match &resumed {
            Ok(_) => "ok",
            Err(e) => crate::measure::outcome(e.code),
        };
        crate::measure::resumed(principal.transport, outcome);
        resumed
    }

    /// Cancels one of `principal`'s sessions that the caller is not
    /// attached to; its resume token proves the caller may.
    pub async fn cancel(
        &self,
        principal: &Principal,
        session_id: &str,
        resume_token: &str,
        reason: &str,
    ) -> Result<(), CallError> {
        principal.check(Operation::ControlSession, now())?;
        Ok(self
            .engine
            .cancel(&principal.subject, session_id, resume_token, reason)
            .await?)
    }

    /// session.pipe input to one of `principal`'s sessions that the caller
    /// is not attached to; its resume token proves the caller may.
    pub fn input(
        &self,
        principal: &Principal,
        session_id: &str,
        resume_token: &str,
        input: Input,
    ) -> Result<(), CallError> {
        principal.check(Operation::ControlSession, now())?;
        Ok(self
            .engine
            .input(&principal.subject, session_id, resume_token, input)?)
    }

    /// models.list: every provider's models, or one provider's.
    pub async fn models(
        &self,
        principal: &Principal,
        provider: Option<&str>,
    ) -> Result<Vec<ProviderInfo>, CallError> {
        principal.check(Operation::Models, now())?;
        let router = self.router.load_full();
        if let Some(name) = provider
            && router.registry().get(name).is_none()
        {
            return Err(CallError::new(
                ErrorCode::ModelNotFound,
                format!("no provider `{name}` is configured"),
            ));
        }
        Ok(router.models(provider).await)
    }

    /// `provider` calling with the caller's own key, opened from `sealed`
    /// for this call only.
    fn with_callers_key(
        &self,
        provider: &Arc<dyn gtl_core::Provider>,
        name: &str,
        sealed: &str,
    ) -> Result<Arc<dyn gtl_core::Provider>, CallError> {
        let key = open_key(self.key_opener.as_deref(), name, sealed)?;
        Ok(provider.with_api_key(&key)?)
    }

    /// `RATE_LIMIT` once the subject has started its calls for this minute.
    fn admit_call(&self, principal: &Principal) -> Result<(), CallError> {
        use governor::clock::Clock as _;
        // Token subjects only: a trusted local user is this machine's own,
        // bounded by its connections and memory.
        if principal.scopes.is_none() {
            return Ok(());
        }
        if let Some(counters) = &self.shared_counters {
            return self.admit_shared(counters, principal);
        }
        let Some(rate) = &self.subject_rate else {
            return Ok(());
        };
        if let Err(refused) = rate.check_key(&principal.subject) {
            let wait = refused.wait_time_from(governor::clock::DefaultClock::default().now());
            return Err(CallError::new(
                ErrorCode::RateLimit,
                format!(
                    "{} started its {} calls for this minute: retry in {} s",
                    principal.subject,
                    self.limits.calls_per_minute_per_subject,
                    wait.as_secs().max(1)
                ),
            ));
        }
        // Forget subjects that have been quiet, so the table stays small.
        if rate.len() > 4096 {
            rate.retain_recent();
        }
        Ok(())
    }

    /// [`admit_call`](Self::admit_call) with the calls counted in shared
    /// counters, per clock minute.
    fn admit_shared(
        &self,
        counters: &gtl_core::counters::Counters,
        principal: &Principal,
    ) -> Result<(), CallError> {
        let limit = self.limits.calls_per_minute_per_subject;
        if limit == 0 {
            return Ok(());
        }
        let now = gtl_core::counters::unix_now();
        let (key, ends) = calls_counter(&principal.subject);
        if counters.get(&key, now) >= f64::from(limit) {
            let wait = ends.saturating_sub(now);
            return Err(CallError::new(
                ErrorCode::RateLimit,
                format!(
                    "{} started its {limit} calls for this minute on all servers: retry in {} s",
                    principal.subject,
                    wait.max(1)
                ),
            ));
        }
        counters.add(&key, 1.0, ends, now);
        Ok(())
    }

    /// A place among the subject's running calls, or `RATE_LIMIT` when
    /// they are all taken.
    fn call_slot(&self, principal: &Principal) -> Result<CallSlot, CallError> {
        let mut calls = self
            .subject_calls
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let running = calls.entry(principal.subject.clone()).or_default();
        if *running >= self.limits.max_calls_per_subject {
            return Err(CallError::new(
                ErrorCode::RateLimit,
                format!(
                    "{} has its maximum of {} calls running: wait for one to end or cancel one",
                    principal.subject, self.limits.max_calls_per_subject
                ),
            ));
        }
        *running += 1;
        Ok(CallSlot {
            calls: self.subject_calls.clone(),
            subject: principal.subject.clone(),
            drain: self.drain.clone(),
        })
    }

    /// The configured aliases, `(alias, "provider/model")`, sorted by
    /// alias, then the routes, `(route, "provider/model")` with the route's
    /// first target, in configuration order.
    pub fn aliases(&self) -> Vec<(String, String)> {
        let router = self.router.load();
        router
            .registry()
            .aliases()
            .map(|(alias, target)| (alias.to_owned(), target.to_owned()))
            .chain(
                router
                    .routes()
                    .map(|(route, first)| (route.to_owned(), first.to_owned())),
            )
            .collect()
    }

    /// How many input tokens `request` would be, as its provider counts
    /// them; `INVALID_REQUEST` when that provider cannot count. Nothing is
    /// generated and no session is created.
    pub async fn count_tokens(
        &self,
        principal: &Principal,
        mut request: CompletionRequest,
    ) -> Result<u64, CallError> {
        principal.check(Operation::Models, now())?;
        let provider = self
            .router
            .load()
            .resolve(&mut request, &call_context(principal, None))?;
        tracing::debug!(
            subject = %principal.subject,
            provider = %request.provider,
            model = %request.model,
            "count tokens"
        );
        Ok(provider.count_tokens(request).await?)
    }

    fn lock_connections(&self) -> std::sync::MutexGuard<'_, (usize, HashMap<String, usize>)> {
        self.connections
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A caller's sealed provider keys, opened for each target a routed call
/// tries (plain calls open theirs in [`CallService::start`]).
struct SealedKeys {
    sealed: std::collections::BTreeMap<String, String>,
    opener: Option<Arc<dyn KeyOpener>>,
}

impl std::fmt::Debug for SealedKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Provider names only: even sealed keys stay out of logs.
        f.debug_struct("SealedKeys")
            .field("providers", &self.sealed.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl gtl_router::CallerKeys for SealedKeys {
    fn apply(
        &self,
        provider: &Arc<dyn gtl_core::Provider>,
    ) -> Result<Option<Arc<dyn gtl_core::Provider>>, gtl_core::ProviderError> {
        let name = provider.name();
        let Some(sealed) = self.sealed.get(name) else {
            return Ok(None);
        };
        let key = open_key(self.opener.as_deref(), name, sealed)
            .map_err(|e| gtl_core::ProviderError::new(e.code, e.message))?;
        provider.with_api_key(&key).map(Some)
    }
}

/// Opens a caller's sealed key for provider `name`.
fn open_key(opener: Option<&dyn KeyOpener>, name: &str, sealed: &str) -> Result<String, CallError> {
    let opener = opener.ok_or_else(|| {
        CallError::new(
            ErrorCode::InvalidRequest,
            "this server opens no provider keys: leave provider_keys out of the token",
        )
    })?;
    opener.open(sealed).map_err(|reason| {
        CallError::new(
            ErrorCode::Unauthenticated,
            format!(
                "the token's provider key for `{name}` cannot be opened ({reason}): \
                 encrypt it to this server's recipient (gtl-server --print-recipient)"
            ),
        )
    })
}

/// The router's view of a call by `principal`.
/// Cached answers are kept per subject (its tenant), so one caller never
/// receives an answer another caller's request produced.
fn call_context(principal: &Principal, session_id: Option<&str>) -> CallContext {
    CallContext::new(principal.subject.clone())
        .with_tenant(principal.subject.clone())
        .with_request_id(session_id.unwrap_or_default())
}

/// The wall clock in Unix seconds, for token expiry.
fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Whom a connection counts against: its user where the OS says, else its
/// IP address, else its transport.
fn peer_key(peer: &PeerInfo) -> String {
    if let Some(uid) = peer.uid {
        return format!("uid {uid}");
    }
    match peer.addr.parse::<SocketAddr>() {
        Ok(addr) => addr.ip().to_string(),
        Err(_) => peer.transport.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_are_counted_by_user_then_address() {
        let uds = PeerInfo::new("uds", "/run/gtl.sock").with_uid(Some(1000));
        assert_eq!(peer_key(&uds), "uid 1000");
        let tcp = PeerInfo::new("tcp", "127.0.0.1:50000");
        assert_eq!(peer_key(&tcp), "127.0.0.1");
        assert_eq!(peer_key(&PeerInfo::new("stdio", "-")), "stdio");
    }
}

/// A connection's place among its subject's open ones (see
/// [`CallService::admit_subject`]); dropping it frees the place.
#[derive(Debug)]
pub struct SubjectConnection {
    _slot: Option<CallSlot>,
}

/// One running call (or open connection) of a subject; dropping it (when
/// the session's provider is let go) frees the place.
#[derive(Debug)]
struct CallSlot {
    calls: Arc<Mutex<HashMap<String, usize>>>,
    subject: String,
    drain: Arc<Drain>,
}

impl Drop for CallSlot {
    fn drop(&mut self) {
        let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(running) = calls.get_mut(&self.subject) {
            *running -= 1;
            if *running == 0 {
                calls.remove(&self.subject);
            }
        }
        drop(calls);
        self.drain.ended();
    }
}

/// The routed provider, holding its call's place for as long as the
/// session's driver holds the provider.
#[derive(Debug)]
struct Counted {
    inner: Arc<dyn gtl_core::Provider>,
    _slot: CallSlot,
}

#[async_trait::async_trait]
impl gtl_core::Provider for Counted {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn models(&self) -> Result<ProviderInfo, gtl_core::ProviderError> {
        self.inner.models().await
    }

    async fn count_tokens(
        &self,
        request: CompletionRequest,
    ) -> Result<u64, gtl_core::ProviderError> {
        self.inner.count_tokens(request).await
    }

    async fn stream(
        &self,
        request: CompletionRequest,
    ) -> Result<gtl_core::EventStream, gtl_core::ProviderError> {
        self.inner.stream(request).await
    }
}

/// The shared counter of `subject`'s calls in the current clock minute, and
/// when that minute ends (Unix seconds).
fn calls_counter(subject: &str) -> (String, u64) {
    let minute = gtl_core::counters::unix_now() / 60;
    (format!("calls|{subject}|{minute}"), (minute + 1) * 60)
}
