//! The engine: runs provider streams into sessions under tokio.
//!
//! The session machine knows nothing of time or tasks; the engine gives it
//! both. Each call gets a driver task that pulls the provider's stream into
//! its [`Session`] (respecting the session's backpressure and the memory
//! budgets), persists the events to the [`SessionStore`] in batches, and
//! stops the provider on cancel or expiry. Clients attach through a
//! [`Call`], which drains the session's events straight from its log into a
//! transport's buffer.
//!
//! With persistence on, an event is handed to a client only once the store
//! has committed it, so a crash never loses an event a client has seen and
//! never reuses its seq.
//!
//! Sessions live in their owner's namespace: a session id names a session
//! only together with the owner that started it.

mod budget;
mod call;
mod claims;
mod driver;
mod follow;
mod persist;

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant, SystemTime};

use gtl_proto::{CompletionRequest, ErrorCode, Input};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;

use crate::{Provider, ResumeError, Session, SessionConfig, SessionMeta, SessionStore, StoreError};

pub use budget::MemoryBudget;
pub use call::{Call, Drained};

/// Engine settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EngineConfig {
    /// Limits of every session.
    pub session: SessionConfig,
    /// Write sessions to the store (default). Without it the sessions live
    /// only in their own bounded logs, and the store is never written: no
    /// copy of the events is made.
    pub persist: bool,
    /// Memory all sessions' events may cost together, in bytes
    /// ([`event_cost`](crate::event_cost)). While it is spent, delivered
    /// events are forgotten first, then generations pause and new calls are
    /// refused with `RATE_LIMIT`. Default: 1 GiB.
    pub memory_budget: usize,
    /// Sessions kept at once, running or waiting for a resume; beyond it new
    /// calls are refused with `RATE_LIMIT`. Default: 100,000.
    pub max_sessions: usize,
}

impl EngineConfig {
    /// The default [`memory_budget`](Self::memory_budget): 1 GiB.
    pub const DEFAULT_MEMORY_BUDGET: usize = 1 << 30;
    /// The default [`max_sessions`](Self::max_sessions).
    pub const DEFAULT_MAX_SESSIONS: usize = 100_000;
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            session: SessionConfig::default(),
            persist: true,
            memory_budget: Self::DEFAULT_MEMORY_BUDGET,
            max_sessions: Self::DEFAULT_MAX_SESSIONS,
        }
    }
}

impl EngineConfig {
    /// Sets the session limits.
    #[must_use]
    pub fn with_session(mut self, session: SessionConfig) -> Self {
        self.session = session;
        self
    }

    /// Sets whether sessions are written to the store.
    #[must_use]
    pub fn with_persist(mut self, persist: bool) -> Self {
        self.persist = persist;
        self
    }

    /// Sets the server-wide [`memory_budget`](Self::memory_budget).
    #[must_use]
    pub fn with_memory_budget(mut self, bytes: usize) -> Self {
        self.memory_budget = bytes;
        self
    }

    /// Sets [`max_sessions`](Self::max_sessions).
    #[must_use]
    pub fn with_max_sessions(mut self, sessions: usize) -> Self {
        self.max_sessions = sessions;
        self
    }
}

/// Why the engine refused a call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
#[non_exhaustive]
pub struct EngineError {
    /// The GTL code to answer with.
    pub code: ErrorCode,
    /// What went wrong, for a person.
    pub message: String,
}

impl EngineError {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl From<ResumeError> for EngineError {
    fn from(e: ResumeError) -> Self {
        Self::new(e.code(), e.to_string())
    }
}

impl From<StoreError> for EngineError {
    fn from(e: StoreError) -> Self {
        Self::new(ErrorCode::Internal, format!("session store failed: {e}"))
    }
}

/// What a new call needs.
#[derive(Debug)]
#[non_exhaustive]
pub struct StartCall {
    /// The authenticated subject; only it may resume the session.
    pub owner: String,
    /// The session id the client asked for; one is generated when `None`.
    pub session_id: Option<String>,
    /// The provider that serves the call.
    pub provider: Arc<dyn Provider>,
    /// The request, with `model` resolved for `provider`.
    pub request: CompletionRequest,
    /// Runs once, when the session's first output event is handed to a
    /// client.
    pub on_first_output: Option<FirstOutput>,
}

/// A callback run once, when a session's first output event (a token, a
/// tool call or a patch) is handed to a client's transport: what a
/// gateway measures its time to first token by.
pub struct FirstOutput(Box<dyn FnOnce() + Send>);

impl FirstOutput {
    /// Runs `hook` at the first output. It runs on the draining client's
    /// task, outside the session's lock; keep it short.
    pub fn new(hook: impl FnOnce() + Send + 'static) -> Self {
        Self(Box::new(hook))
    }

    pub(crate) fn run(self) {
        (self.0)();
    }
}

impl std::fmt::Debug for FirstOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FirstOutput")
    }
}

impl StartCall {
    /// A call of `owner` for `request` on `provider`.
    pub fn new(
        owner: impl Into<String>,
        provider: Arc<dyn Provider>,
        request: CompletionRequest,
    ) -> Self {
        Self {
            owner: owner.into(),
            session_id: None,
            provider,
            request,
            on_first_output: None,
        }
    }

    /// Uses the client's session id.
    #[must_use]
    pub fn with_session_id(mut self, id: impl Into<String>) -> Self {
        self.session_id = Some(id.into());
        self
    }

    /// Runs `hook` when the session's first output event is handed to a
    /// client.
    #[must_use]
    pub fn with_first_output(mut self, hook: FirstOutput) -> Self {
        self.on_first_output = Some(hook);
        self
    }
}

/// Runs calls and keeps their sessions for resume.
///
/// Cloning is cheap; clones share the sessions.
#[derive(Debug, Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Keyed by [`store_key`]: owner and session id.
    sessions: Mutex<HashMap<String, Arc<Shared>>>,
    budget: Arc<MemoryBudget>,
    store: Arc<dyn SessionStore>,
    /// The session writer's queue, and the writer.
    jobs: mpsc::UnboundedSender<persist::Job>,
    writer: Mutex<Option<tokio::task::JoinHandle<()>>>,
    config: EngineConfig,
    next_id: AtomicU64,
    /// The calls' driver tasks, stopped by [`Engine::shutdown`].
    drivers: Mutex<JoinSet<()>>,
    /// Seeds ids and tokens; mixed with a counter and the clock.
    seed: u64,
    /// Whether the store took the writer's last batch.
    writable: Arc<std::sync::atomic::AtomicBool>,
}

/// One session and the wakeups around it.
#[derive(Debug)]
pub(crate) struct Shared {
    state: Mutex<SharedState>,
    /// Wakes attached clients: new events, or the session ended.
    pub(crate) to_client: Notify,
    /// Wakes the driver: cancel, input, or the client drained (backpressure).
    pub(crate) to_driver: Notify,
    id: String,
    /// The session's key in the engine and the store ([`store_key`]).
    key: String,
    /// Whether the session is written to the store.
    pub(crate) persist: bool,
    /// The generation runs in another process sharing the store; this
    /// copy follows its events (see [`follow`]).
    pub(crate) mirror: bool,
    /// The server-wide budget the session's retained events are charged to.
    pub(crate) budget: Arc<MemoryBudget>,
}

#[derive(Debug)]
pub(crate) struct SharedState {
    pub(crate) session: Session,
    /// session.pipe: messages not yet given to the provider.
    pub(crate) input: Vec<gtl_proto::Message>,
    /// session.pipe: the client sends no more input.
    pub(crate) input_ended: bool,
    /// The first seq not yet persisted.
    pub(crate) unpersisted_from: u64,
    /// The session's metadata, until the writer has created it in the store.
    pub(crate) meta: Option<SessionMeta>,
    /// How the session ended, until the writer has recorded it.
    pub(crate) outcome: Option<crate::Outcome>,
    /// Whether the session waits in the writer's queue.
    pub(crate) queued: bool,
    /// The engine is shutting down: the driver stops at its next step,
    /// leaving the session unfinished (as a process exit would).
    pub(crate) stopping: bool,
    /// The client asked to cancel, with this reason; the driver carries it out.
    pub(crate) cancel: Option<String>,
    /// Another replica took the session over (this process's claim had
    /// lapsed): the generation here stops, and its client is told.
    pub(crate) moved: bool,
    /// The shared store lost the session: it is no longer written.
    pub(crate) unstored: bool,
    /// What the retained events are charged to the server's budget.
    charged: usize,
    /// The budget of the connection the session is attached to, charged
    /// with the events not yet delivered to it.
    pub(crate) conn: Option<Arc<MemoryBudget>>,
    conn_charged: usize,
    /// Runs at the first output event handed to a client.
    pub(crate) on_first_output: Option<FirstOutput>,
}

impl SharedState {
    /// Brings the budgets' charges in line with the session's memory.
    fn settle(&mut self, server: &MemoryBudget) {
        let retained = self.session.retained_bytes();
        if retained != self.charged {
            server.adjust(self.charged, retained);
            self.charged = retained;
        }
        let attached = self.session.attached().is_some();
        let pending = if attached {
            self.session.pending_bytes()
        } else {
            0
        };
        if let Some(conn) = &self.conn
            && pending != self.conn_charged
        {
            conn.adjust(self.conn_charged, pending);
            self.conn_charged = pending;
        }
        if !attached {
            self.conn = None;
        }
    }

    /// Moves the undelivered events' charge to `conn`.
    pub(crate) fn charge_to(&mut self, conn: Arc<MemoryBudget>) {
        if let Some(old) = self.conn.take() {
            old.adjust(self.conn_charged, 0);
        }
        self.conn_charged = 0;
        self.conn = Some(conn);
    }
}

/// The locked state of a session; the budgets are settled when it is
/// released, so every change to the session's memory is accounted for.
pub(crate) struct StateGuard<'a> {
    guard: MutexGuard<'a, SharedState>,
    budget: &'a MemoryBudget,
}

impl Deref for StateGuard<'_> {
    type Target = SharedState;

    fn deref(&self) -> &SharedState {
        &self.guard
    }
}

impl DerefMut for StateGuard<'_> {
    fn deref_mut(&mut self) -> &mut SharedState {
        &mut self.guard
    }
}

impl Drop for StateGuard<'_> {
    fn drop(&mut self) {
        self.guard.settle(self.budget);
    }
}

impl Shared {
    pub(crate) fn lock(&self) -> StateGuard<'_> {
        // A panic while holding the lock leaves a consistent machine (its
        // methods do not unwind halfway); keep serving.
        let guard = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        StateGuard {
            guard,
            budget: &self.budget,
        }
    }

    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    pub(crate) fn key(&self) -> &str {
        &self.key
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let state = self
            .state
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        self.budget.adjust(state.charged, 0);
        if let Some(conn) = state.conn.take() {
            conn.adjust(state.conn_charged, 0);
        }
    }
}

/// A session's key in the engine and the store: its owner and its id, so
/// each owner has a namespace of its own.
fn store_key(owner: &str, id: &str) -> String {
    format!("{}:{owner}/{id}", owner.len())
}

/// The session id within a [`store_key`] (a key written before owners had
/// namespaces is the id itself).
fn plain_id<'a>(key: &'a str, owner: &str) -> &'a str {
    key.strip_prefix(&format!("{}:{owner}/", owner.len()))
        .unwrap_or(key)
}

/// The answer for a session the caller may not touch, whether it does not
/// exist, has expired, belongs to someone else or the token is wrong: the
/// same in every case, so ids cannot be probed.
fn not_found(session_id: &str) -> EngineError {
    EngineError::new(
        ErrorCode::ResumeNotFound,
        format!(
            "no session `{session_id}` for this caller with that resume token: it never \
             existed, has expired, or the token does not match"
        ),
    )
}

/// The engine's clock: tokio's, so paused-time tests drive it.
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

impl Engine {
    /// An engine persisting sessions to `store`. Call it inside a tokio
    /// runtime: it starts a task that forgets expired sessions.
    pub fn new(store: Arc<dyn SessionStore>, config: EngineConfig) -> Self {
        let seed = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ (std::process::id() as u64).rotate_left(32);
        let (jobs, queue) = mpsc::unbounded_channel();
        let writable = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let writer = tokio::spawn(persist::writer(
            store.clone(),
            queue,
            jobs.downgrade(),
            writable.clone(),
        ));
        let inner = Arc::new(Inner {
            sessions: Mutex::new(HashMap::new()),
            budget: Arc::new(MemoryBudget::new(config.memory_budget)),
            store,
            jobs,
            writer: Mutex::new(Some(writer)),
            config,
            next_id: AtomicU64::new(1),
            drivers: Mutex::new(JoinSet::new()),
            seed,
            writable,
        });
        tokio::spawn(sweep(Arc::downgrade(&inner)));
        if inner.store.is_shared() {
            tokio::spawn(claims::renew(Arc::downgrade(&inner)));
        }
        Self { inner }
    }

    /// Whether the session store took the last batch of events written
    /// to it (`false` while writes fail and are retried, e.g. on a full
    /// disk).
    pub fn store_writable(&self) -> bool {
        self.inner.writable.load(Ordering::Relaxed)
    }

    /// Loads the store's sessions after a restart, so their clients can
    /// resume. A generation cut by the restart ends with an `INTERNAL`
    /// error event. Returns how many sessions were restored.
    pub async fn restore(&self) -> Result<usize, EngineError> {
        let store = &self.inner.store;
        if store.is_shared() {
            // Other replicas' sessions too: each is loaded when resumed.
            return Ok(0);
        }
        let config = &self.inner.config.session;
        let mut restored = Vec::new();
        for meta in store.list().await? {
            let Some(stored) = store.load(&meta.id).await? else {
                continue;
            };
            let last = stored.last_seq;
            let mut events = stored.events;
            // Events acked or evicted before the writer reached them leave a
            // gap; only the consecutive tail can be replayed.
            if let Some(gap) = events.windows(2).rposition(|w| w[1].0 != w[0].0 + 1) {
                events.drain(..=gap);
            }
            let session = Session::restore(
                plain_id(&meta.id, &meta.owner),
                meta.owner.clone(),
                meta.resume_token.clone(),
                events,
                meta.finished,
                config.clone(),
                now(),
            )
            .map_err(|e| EngineError::new(ErrorCode::Internal, e.to_string()))?;
            // Persist the interruption error, if one was added.
            let mut write = crate::SessionWrite::new(meta.id.clone());
            write.events = session
                .retained_events()
                .filter(|(seq, _)| *seq > last)
                .map(|(seq, body)| (seq, body.clone()))
                .collect();
            write.outcome = write
                .events
                .last()
                .and_then(|(_, body)| crate::Outcome::from_terminal(body));
            if !write.events.is_empty() {
                write.apply(store.as_ref()).await?;
            }
            restored.push((meta.id, session));
        }
        let count = restored.len();
        let mut map = self.inner.lock_sessions();
        for (key, session) in restored {
            let last = session.last_seq();
            let shared = Shared::new(
                &self.inner,
                key.clone(),
                session,
                last + 1,
                None,
                Persist::Yes,
            );
            // Charge the restored events to the budget.
            drop(shared.lock());
            map.insert(key, Arc::new(shared));
        }
        Ok(count)
    }

    /// Starts a call: creates its session and its driver task, and returns
    /// the caller's attachment. Its first frame to send is `accepted` with
    /// [`Call::resume_token`].
    pub fn start(&self, call: StartCall) -> Result<Call, EngineError> {
        let id = match call.session_id {
            Some(id) if id.is_empty() || id.len() > 128 => {
                return Err(EngineError::new(
                    ErrorCode::InvalidRequest,
                    "session_id must be 1 to 128 bytes",
                ));
            }
            Some(id) => id,
            None => format!("s_{}", self.inner.token(16)),
        };
        let resume_token = self.inner.token(32);
        let persist = self.inner.config.persist;
        let mut session = Session::new(
            &id,
            &call.owner,
            &resume_token,
            self.inner.config.session.clone(),
            now(),
        );
        if persist {
            //= design#4
            //# nothing lost, nothing doubled
            // A client only ever sees stored events: a crash cannot take
            // back an event it has, nor give its seq to another.
            session.gate_on_durable();
        }
        let attach = session.attached().expect("a new session is attached");
        let key = store_key(&call.owner, &id);
        let on_first_output = call.on_first_output;
        let mut meta = SessionMeta::new(&key, &call.owner, &resume_token, unix_ms());
        meta.pipe = call.request.pipe;
        let shared = Arc::new(Shared::new(
            &self.inner,
            key.clone(),
            session,
            1,
            Some(meta),
            if persist { Persist::Yes } else { Persist::No },
        ));
        shared.lock().on_first_output = on_first_output;
        {
            let mut map = self.inner.lock_sessions();
            if map.contains_key(&key) {
                return Err(EngineError::new(
                    ErrorCode::InvalidRequest,
                    format!("session `{id}` already exists: resume it or use a new id"),
                ));
            }
            let max = self.inner.config.max_sessions;
            if map.len() >= max {
                return Err(EngineError::new(
                    ErrorCode::RateLimit,
                    format!("the server holds its maximum of {max} sessions: retry later"),
                ));
            }
            if !self.inner.budget.has_room() {
                return Err(EngineError::new(
                    ErrorCode::RateLimit,
                    "the server's memory budget for sessions is spent: retry later",
                ));
            }
            if persist && self.inner.store.is_shared() && !self.store_writable() {
                // Without the shared store no other replica could resume
                // the session: refuse at once rather than hang.
                return Err(EngineError::new(
                    ErrorCode::Internal,
                    "the shared session store is out of reach: retry shortly (running calls \
                     go on; new ones start once it is back)",
                ));
            }
            map.insert(key, shared.clone());
        }
        persist::mark_dirty(&shared, &self.inner.jobs);
        let driver = driver::drive(
            shared.clone(),
            self.inner.jobs.clone(),
            call.provider,
            call.request,
        );
        {
            let mut drivers = self.inner.lock_drivers();
            // Reap finished drivers so the set stays as large as the live calls.
            while drivers.try_join_next().is_some() {}
            drivers.spawn(driver);
        }
        Ok(Call::new(shared, attach, Some(resume_token)))
    }

    /// Re-attaches the owner of session `session_id` after `after_seq`.
    ///
    /// With a [shared](SessionStore::is_shared) store, a session this
    /// process does not hold is loaded from the store: its events are
    /// replayed, and those its driving replica goes on writing follow.
    ///
    /// An unknown id, another owner's session and a wrong token all answer
    /// the same `RESUME_NOT_FOUND`.
    pub async fn resume(
        &self,
        owner: &str,
        session_id: &str,
        after_seq: u64,
        resume_token: &str,
    ) -> Result<Call, EngineError> {
        let shared = match self.find(owner, session_id) {
            Ok(shared) => shared,
            Err(not_here) if self.inner.store.is_shared() => self
                .load_mirror(owner, session_id, resume_token)
                .await?
                .ok_or(not_here)?,
            Err(not_here) => return Err(not_here),
        };
        if shared.mirror {
            // The client may have seen, from the driver or another
            // replica, events this copy has not read yet.
            let last = shared.lock().session.last_seq();
            if after_seq > last {
                let events = self
                    .inner
                    .store
                    .tail(shared.key(), last, Duration::ZERO)
                    .await?;
                follow::log(&shared, events);
            }
        }
        let attach = {
            let mut state = shared.lock();
            state
                .session
                .handle_resume(now(), owner, resume_token, after_seq)
                .map_err(|e| match e {
                    ResumeError::PermissionDenied => not_found(session_id),
                    other => other.into(),
                })?
        };
        // Wake the replaced attachment (if any) so it notices, and the driver
        // in case it was waiting for room.
        shared.to_client.notify_waiters();
        shared.to_driver.notify_one();
        Ok(Call::new(shared, attach, None))
    }

    /// Loads a session another replica drives (or drove) from the shared
    /// store and starts following it. `None` when the store has no such
    /// session for this owner and token.
    async fn load_mirror(
        &self,
        owner: &str,
        session_id: &str,
        resume_token: &str,
    ) -> Result<Option<Arc<Shared>>, EngineError> {
        let key = store_key(owner, session_id);
        let Some(stored) = self.inner.store.load(&key).await? else {
            return Ok(None);
        };
        let session = Session::mirror(
            session_id,
            &stored.meta,
            stored.events,
            self.inner.config.session.clone(),
            now(),
        )
        .map_err(|e| EngineError::new(ErrorCode::Internal, format!("stored session: {e}")))?;
        if !session.authorizes(owner, resume_token) {
            return Ok(None);
        }
        let following = !session.is_finished();
        let last = session.last_seq();
        let shared = Arc::new(Shared::new(
            &self.inner,
            key.clone(),
            session,
            last + 1,
            None,
            Persist::Mirror,
        ));
        {
            let mut map = self.inner.lock_sessions();
            if let Some(current) = map.get(&key) {
                // Another resume loaded it first.
                return Ok(Some(current.clone()));
            }
            if map.len() >= self.inner.config.max_sessions {
                return Err(EngineError::new(
                    ErrorCode::RateLimit,
                    "the server holds its maximum of sessions: retry later",
                ));
            }
            map.insert(key, shared.clone());
        }
        if following {
            let mut drivers = self.inner.lock_drivers();
            while drivers.try_join_next().is_some() {}
            drivers.spawn(follow::follow(shared.clone(), self.inner.store.clone()));
        }
        Ok(Some(shared))
    }

    /// Cancels a session from outside its call (e.g. from a new connection):
    /// only its owner holding its resume token may. With a shared store, a
    /// session another replica drives is cancelled through the store (its
    /// driver learns of it within about a second).
    pub async fn cancel(
        &self,
        owner: &str,
        session_id: &str,
        resume_token: &str,
        reason: &str,
    ) -> Result<(), EngineError> {
        let shared = match self.authorized(owner, session_id, resume_token) {
            Ok(shared) => shared,
            Err(not_here) if self.inner.store.is_shared() => {
                // Driven by another replica: ask it through the store.
                let key = store_key(owner, session_id);
                let stored = self.inner.store.load(&key).await?.ok_or(not_here.clone())?;
                let meta = &stored.meta;
                let owner_ok =
                    crate::session::constant_time_eq(meta.owner.as_bytes(), owner.as_bytes());
                let token_ok = crate::session::constant_time_eq(
                    meta.resume_token.as_bytes(),
                    resume_token.as_bytes(),
                );
                if !(owner_ok & token_ok) {
                    return Err(not_here);
                }
                if !meta.finished {
                    self.inner.store.request_cancel(&key, reason).await?;
                }
                return Ok(());
            }
            Err(not_here) => return Err(not_here),
        };
        call::cancel(&shared, reason);
        persist::mark_dirty(&shared, &self.inner.jobs);
        Ok(())
    }

    /// Appends session.pipe input to a session's conversation from outside
    /// its call: only its owner holding its resume token may.
    pub fn input(
        &self,
        owner: &str,
        session_id: &str,
        resume_token: &str,
        input: Input,
    ) -> Result<(), EngineError> {
        let shared = self.authorized(owner, session_id, resume_token)?;
        call::input(&shared, input)
    }

    /// How many sessions are kept (running, or finished within the window).
    pub fn session_count(&self) -> usize {
        self.inner.lock_sessions().len()
    }

    /// The server-wide memory budget and what the sessions hold of it.
    pub fn memory(&self) -> &MemoryBudget {
        &self.inner.budget
    }

    fn find(&self, owner: &str, session_id: &str) -> Result<Arc<Shared>, EngineError> {
        self.inner
            .lock_sessions()
            .get(&store_key(owner, session_id))
            .cloned()
            .ok_or_else(|| not_found(session_id))
    }

    fn authorized(
        &self,
        owner: &str,
        session_id: &str,
        resume_token: &str,
    ) -> Result<Arc<Shared>, EngineError> {
        let shared = self.find(owner, session_id)?;
        if !shared.lock().session.authorizes(owner, resume_token) {
            return Err(not_found(session_id));
        }
        Ok(shared)
    }

    /// Stops every generation as a process exit would (sessions are not
    /// marked cancelled: a restarted server ends them with an `INTERNAL`
    /// error), writes all events to the store and stops writing: after
    /// this the engine persists nothing more.
    pub async fn shutdown(&self) -> Result<(), EngineError> {
        let mut drivers = std::mem::take(&mut *self.inner.lock_drivers());
        let sessions: Vec<_> = self.inner.lock_sessions().values().cloned().collect();
        let mut driven = Vec::new();
        for shared in &sessions {
            let mut state = shared.lock();
            state.stopping = true;
            if shared.persist && !state.session.is_finished() {
                driven.push(shared.key().to_owned());
            }
            drop(state);
            shared.to_driver.notify_one();
            shared.to_client.notify_waiters();
        }
        // Each driver stops at its next step; none is cut inside a store
        // transaction, so the store is consistent (and released) after.
        while drivers.join_next().await.is_some() {}
        let flushed = self.flush().await;
        // Stop the writer so the store is released when this returns.
        let writer = self
            .inner
            .writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(writer) = writer {
            let _ = self.inner.jobs.send(persist::Job::Stop);
            let _ = writer.await;
        }
        if flushed.is_ok() && !driven.is_empty() {
            // Everything is written: another replica may end these
            // generations for their clients now, not a lease period later.
            let _ = self.inner.store.release(&driven).await;
        }
        flushed
    }

    /// Writes every session's unpersisted events to the store; used on
    /// graceful shutdown so a restarted server can replay them.
    pub async fn flush(&self) -> Result<(), EngineError> {
        let sessions: Vec<_> = self.inner.lock_sessions().values().cloned().collect();
        persist::flush(&self.inner.jobs, sessions).await
    }
}

impl Inner {
    fn lock_drivers(&self) -> MutexGuard<'_, JoinSet<()>> {
        self.drivers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lock_sessions(&self) -> MutexGuard<'_, HashMap<String, Arc<Shared>>> {
        self.sessions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A hex token of `len` characters from the OS's random source: session
    /// ids and resume tokens must not be guessable.
    fn token(&self, len: usize) -> String {
        let mut bytes = vec![0u8; len.div_ceil(2)];
        if random_bytes(&mut bytes).is_err() {
            // No OS randomness (should not happen on supported systems):
            // fall back to a per-process keyed hash of a counter and the clock.
            use std::hash::{BuildHasher, Hasher};
            for chunk in bytes.chunks_mut(8) {
                let mut h = std::collections::hash_map::RandomState::new().build_hasher();
                h.write_u64(self.seed ^ self.next_id.fetch_add(1, Ordering::Relaxed));
                chunk.copy_from_slice(&h.finish().to_le_bytes()[..chunk.len()]);
            }
        }
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = String::with_capacity(len + 1);
        for byte in bytes {
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
        out.truncate(len);
        out
    }
}

/// Fills `out` with bytes from the OS's random source, fetched a few
/// kilobytes at a time per thread: one system call serves a hundred calls'
/// ids and tokens instead of two per call. Each byte is used once.
fn random_bytes(out: &mut [u8]) -> Result<(), getrandom::Error> {
    const POOL: usize = 4096;
    thread_local! {
        static RANDOM: std::cell::RefCell<(Box<[u8; POOL]>, usize)> =
            std::cell::RefCell::new((Box::new([0; POOL]), POOL));
    }
    if out.len() > POOL {
        return getrandom::fill(out);
    }
    RANDOM.with_borrow_mut(|(pool, used)| {
        if POOL - *used < out.len() {
            getrandom::fill(&mut pool[..])?;
            *used = 0;
        }
        let taken = &mut pool[*used..*used + out.len()];
        out.copy_from_slice(taken);
        // Never handed out twice, even if a later refill fails.
        taken.fill(0);
        *used += out.len();
        Ok(())
    })
}

impl Shared {
    fn new(
        inner: &Inner,
        key: String,
        session: Session,
        unpersisted_from: u64,
        meta: Option<SessionMeta>,
        persist: Persist,
    ) -> Self {
        let id = session.id().to_owned();
        Self {
            state: Mutex::new(SharedState {
                session,
                input: Vec::new(),
                input_ended: false,
                unpersisted_from,
                meta,
                outcome: None,
                queued: false,
                stopping: false,
                cancel: None,
                moved: false,
                unstored: false,
                charged: 0,
                conn: None,
                conn_charged: 0,
                on_first_output: None,
            }),
            to_client: Notify::new(),
            to_driver: Notify::new(),
            id,
            key,
            persist: persist == Persist::Yes,
            mirror: persist == Persist::Mirror,
            budget: inner.budget.clone(),
        }
    }
}

/// Who writes a session to the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Persist {
    /// This process: it drives the session.
    Yes,
    /// Nobody: persistence is off.
    No,
    /// Another replica, which drives it; this process follows.
    Mirror,
}

/// Another replica took `shared` over: its generation stops here, and its
/// client gets `SESSION_MOVED`.
fn moved_away(shared: &Shared) {
    {
        let mut state = shared.lock();
        state.moved = true;
        state.stopping = true;
    }
    shared.to_driver.notify_one();
    shared.to_client.notify_waiters();
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Sessions checked between two yields of the sweep.
const SWEEP_CHUNK: usize = 512;

/// Forgets expired sessions, in memory and in the store.
///
/// The session map's lock is held only to copy out its entries and to
/// remove the expired ones, and the checks yield every [`SWEEP_CHUNK`]
/// sessions: with hundreds of thousands of finished sessions waiting out
/// their resume window, one pass over the map under its lock stalled every
/// new call for milliseconds each second.
async fn sweep(inner: Weak<Inner>) {
    let period = Duration::from_secs(1);
    loop {
        tokio::time::sleep(period).await;
        let Some(inner) = inner.upgrade() else { return };
        let now = now();
        let sessions: Vec<Arc<Shared>> = inner.lock_sessions().values().cloned().collect();
        let mut expired = Vec::new();
        for chunk in sessions.chunks(SWEEP_CHUNK) {
            for shared in chunk {
                let mut state = shared.lock();
                if state.session.poll_timeout().is_some_and(|t| t <= now) {
                    state.session.handle_timeout(now);
                }
                let gone = state.session.is_expired();
                drop(state);
                if gone {
                    shared.to_driver.notify_one();
                    shared.to_client.notify_waiters();
                    expired.push(shared.clone());
                }
            }
            tokio::task::yield_now().await;
        }
        drop(sessions);
        let expired: Vec<String> = {
            let mut map = inner.lock_sessions();
            expired
                .into_iter()
                .filter_map(|shared| {
                    let same = map
                        .get(shared.key())
                        .is_some_and(|current| Arc::ptr_eq(current, &shared));
                    let removed = same.then(|| map.remove(shared.key())).flatten();
                    // A mirror's store entry belongs to the replica driving it.
                    removed
                        .filter(|_| !shared.mirror)
                        .map(|_| shared.key().to_owned())
                })
                .collect()
        };
        if !inner.budget.has_room() {
            // Memory pressure: what clients already have goes first.
            let sessions: Vec<_> = inner.lock_sessions().values().cloned().collect();
            for shared in sessions {
                shared.lock().session.shed_delivered();
                if inner.budget.has_room() {
                    break;
                }
            }
        }
        // Forgetting is best effort: a leftover is dropped on next restore
        // (or expires, in a shared store).
        for id in expired {
            let _ = inner.store.remove(&id).await;
        }
    }
}
