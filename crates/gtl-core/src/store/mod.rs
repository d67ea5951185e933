//! Durable session logs: the [`SessionStore`] trait and its two
//! implementations, [`MemoryStore`] and (feature `redb`) `RedbStore`.
//!
//! A store keeps, per session, its [`SessionMeta`] and the events not yet
//! acknowledged by the client, keyed by `seq`. The engine writes through it
//! so that a session can be replayed after a reconnect or a server restart.
//!
//! The trait is async: a store may be shared by several replicas across the
//! network (the Redis store of `gtl-store-redis`), and its
//! [`tail`](SessionStore::tail) follows a session another replica drives.

use std::fmt;

use gtl_proto::{Body, ErrorCode};

#[cfg(any(test, feature = "conformance"))]
#[cfg_attr(
    not(feature = "conformance"),
    allow(unreachable_pub, reason = "public with the `conformance` feature")
)]
pub mod conformance;
mod memory;
#[cfg(feature = "redb")]
mod redb_store;
#[cfg(test)]
mod tests;

pub use memory::MemoryStore;
#[cfg(feature = "redb")]
pub use redb_store::RedbStore;

/// Persistence for session metadata and event logs.
///
/// Every method is one atomic step: a failed call leaves the store as it
/// was. Events of a session are numbered by strictly increasing `seq`;
/// [`append`](Self::append) refuses any that do not follow the last one.
///
/// The methods are async so a store may be across the network (Redis,
/// shared by several replicas); a store on a local disk runs its blocking
/// work on tokio's blocking pool.
#[async_trait::async_trait]
pub trait SessionStore: fmt::Debug + Send + Sync {
    /// Records a new session. Fails with [`StoreError::SessionExists`] when
    /// the id is taken.
    async fn create(&self, meta: &SessionMeta) -> Result<(), StoreError>;

    /// Appends events to a session's log, in one transaction: either every
    /// event of the batch is stored or none is.
    ///
    /// Each `seq` must be greater than the one before it, and the first
    /// greater than the session's [`last_seq`](StoredSession::last_seq).
    async fn append(&self, session_id: &str, events: &[(u64, Body)]) -> Result<(), StoreError>;

    /// Marks a session finished with its outcome. No event may be appended
    /// after this.
    async fn finish(&self, session_id: &str, outcome: &Outcome) -> Result<(), StoreError>;

    /// Loads a session: its metadata and its stored events in `seq` order.
    /// `Ok(None)` when there is no such session.
    async fn load(&self, session_id: &str) -> Result<Option<StoredSession>, StoreError>;

    /// The metadata of every stored session, oldest first (by
    /// `created_unix_ms`, then id). A [shared](Self::is_shared) store
    /// answers with none: its sessions are loaded one at a time, when a
    /// client resumes them.
    async fn list(&self) -> Result<Vec<SessionMeta>, StoreError>;

    /// Forgets the events with `seq <= up_to_seq` (the client acknowledged
    /// them). The session's `last_seq` is kept.
    async fn trim(&self, session_id: &str, up_to_seq: u64) -> Result<(), StoreError>;

    /// Deletes a session and its events. Returns whether it existed.
    async fn remove(&self, session_id: &str) -> Result<bool, StoreError>;

    /// Applies the changes of several sessions at once: for each, in order,
    /// `create`, `append` and `finish` as given. A store that can do this in
    /// one transaction or round trip overrides it; the default applies each
    /// session's changes on its own.
    ///
    /// Returns one result per write, so one session's failure does not hold
    /// back the others.
    async fn commit(&self, writes: Vec<SessionWrite>) -> Vec<Result<(), StoreError>> {
        let mut results = Vec::with_capacity(writes.len());
        for write in &writes {
            results.push(write.apply(self).await);
        }
        results
    }

    /// Whether other processes (replicas) share this store, so a session
    /// may be driven by another process: the engine then loads an unknown
    /// session from it on resume and follows its events with
    /// [`tail`](Self::tail). `false` for a store only this process uses.
    fn is_shared(&self) -> bool {
        false
    }

    /// The events of a session after `after_seq`, waiting up to `wait` for
    /// the first one when there are none yet. `Ok(vec![])` when none came in
    /// time. The default reads what is stored, without waiting.
    async fn tail(
        &self,
        session_id: &str,
        after_seq: u64,
        wait: std::time::Duration,
    ) -> Result<Vec<(u64, Body)>, StoreError> {
        let _ = wait;
        Ok(self
            .load(session_id)
            .await?
            .map(|stored| {
                stored
                    .events
                    .into_iter()
                    .filter(|(seq, _)| *seq > after_seq)
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Keeps this process's claim on the sessions it drives (and keeps them
    /// from expiring in the store) for another lease period. A shared store
    /// creates a session with its creator holding the claim; a claim not
    /// renewed lapses, telling other replicas that its driver is gone.
    ///
    /// Answers the cancels other replicas asked for (with
    /// [`request_cancel`](Self::request_cancel)) of these sessions, with
    /// their reasons.
    async fn renew(&self, session_ids: &[String]) -> Result<Vec<(String, String)>, StoreError> {
        let _ = session_ids;
        Ok(Vec::new())
    }

    /// Asks the replica driving a session to cancel it; it learns of it at
    /// its next [`renew`](Self::renew).
    async fn request_cancel(&self, session_id: &str, reason: &str) -> Result<(), StoreError> {
        let _ = (session_id, reason);
        Ok(())
    }

    /// How often [`renew`](Self::renew) must run for claims never to lapse
    /// while their process lives: well within the claim's lease.
    fn renew_every(&self) -> std::time::Duration {
        std::time::Duration::from_secs(1)
    }

    /// Claims a session whose driver's claim has lapsed: `true` when this
    /// process now holds it (and may end the generation), `false` when
    /// its driver still holds it.
    async fn claim(&self, session_id: &str) -> Result<bool, StoreError> {
        let _ = session_id;
        Ok(true)
    }

    /// Gives up this process's claims on `session_ids` (on shutdown), so
    /// another replica may end their generations at once.
    async fn release(&self, session_ids: &[String]) -> Result<(), StoreError> {
        let _ = session_ids;
        Ok(())
    }

    /// Whether the store is reachable now; a shared store is checked each
    /// second while this process drives no session, so new calls are
    /// refused at once while it is out of reach.
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// One session's changes in a [`SessionStore::commit`] group.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct SessionWrite {
    /// The session.
    pub session_id: String,
    /// Record the session first (its first write).
    pub create: Option<SessionMeta>,
    /// Events to append, in seq order.
    pub events: Vec<(u64, Body)>,
    /// Mark the session finished, after the events.
    pub outcome: Option<Outcome>,
}

impl SessionWrite {
    /// Changes to session `session_id`: none yet.
    pub fn new(session_id: impl Into<String>) -> Self {
        Self {
            session_id: session_id.into(),
            ..Self::default()
        }
    }

    /// Applies this write with the store's single-step methods.
    pub async fn apply(&self, store: &(impl SessionStore + ?Sized)) -> Result<(), StoreError> {
        if let Some(meta) = &self.create {
            store.create(meta).await?;
        }
        if !self.events.is_empty() {
            store.append(&self.session_id, &self.events).await?;
        }
        if let Some(outcome) = &self.outcome {
            store.finish(&self.session_id, outcome).await?;
        }
        Ok(())
    }
}

/// What a store keeps about a session besides its events.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionMeta {
    /// The session id, unique in the store.
    pub id: String,
    /// The subject (token `sub`) that owns the session; only it may resume.
    pub owner: String,
    /// The secret the owner presents to resume the session.
    ///
    /// This is a capability: whoever holds it (and the owner's identity) can
    /// read the session. It is stored as given, so a store's file must be as
    /// private as the sessions' contents. `Debug` output redacts it.
    pub resume_token: String,
    /// When the session was created, in milliseconds since the Unix epoch.
    pub created_unix_ms: u64,
    /// Whether the session has ended (see [`SessionStore::finish`]).
    pub finished: bool,
    /// How the session ended, once it has.
    pub outcome: Option<Outcome>,
    /// A `session.pipe` session: a `done` ends a turn, not the session.
    pub pipe: bool,
}

impl SessionMeta {
    /// Metadata of a new, unfinished session.
    pub fn new(
        id: impl Into<String>,
        owner: impl Into<String>,
        resume_token: impl Into<String>,
        created_unix_ms: u64,
    ) -> Self {
        Self {
            id: id.into(),
            owner: owner.into(),
            resume_token: resume_token.into(),
            created_unix_ms,
            finished: false,
            outcome: None,
            pipe: false,
        }
    }
}

impl fmt::Debug for SessionMeta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionMeta")
            .field("id", &self.id)
            .field("owner", &self.owner)
            .field("resume_token", &"<redacted>")
            .field("created_unix_ms", &self.created_unix_ms)
            .field("finished", &self.finished)
            .field("outcome", &self.outcome)
            .field("pipe", &self.pipe)
            .finish()
    }
}

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// It ended with `done`.
    Done {
        /// The `done` event's finish reason.
        finish_reason: String,
    },
    /// It ended with an `error` event.
    Failed {
        /// The error's code.
        code: ErrorCode,
    },
}

impl Outcome {
    /// The outcome a terminal event (`done` or `error`) stands for.
    pub fn from_terminal(body: &Body) -> Option<Self> {
        match body {
            Body::Done(done) => Some(Self::Done {
                finish_reason: done.finish_reason.clone(),
            }),
            Body::Error(error) => Some(Self::Failed { code: error.code() }),
            _ => None,
        }
    }
}

/// A session as loaded from a store.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct StoredSession {
    /// The session's metadata.
    pub meta: SessionMeta,
    /// The events not trimmed yet, in `seq` order.
    pub events: Vec<(u64, Body)>,
    /// The highest `seq` ever appended (0 when none), kept across
    /// [`trim`](SessionStore::trim) so numbering continues after a reload.
    pub last_seq: u64,
}

impl StoredSession {
    /// A loaded session: `meta`, the `events` not trimmed yet (in seq
    /// order) and the highest seq ever appended.
    pub fn new(meta: SessionMeta, events: Vec<(u64, Body)>, last_seq: u64) -> Self {
        Self {
            meta,
            events,
            last_seq,
        }
    }
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No session with this id is stored.
    #[error("unknown session `{session_id}`")]
    UnknownSession {
        /// The id asked for.
        session_id: String,
    },
    /// A session with this id is already stored.
    #[error("session `{session_id}` already exists")]
    SessionExists {
        /// The id asked for.
        session_id: String,
    },
    /// The session is finished and takes no more events.
    #[error("session `{session_id}` is finished")]
    SessionFinished {
        /// The id asked for.
        session_id: String,
    },
    /// An appended event's `seq` does not follow the one before it.
    #[error("event seq {seq} of session `{session_id}` does not follow seq {last_seq}")]
    SeqOutOfOrder {
        /// The session appended to.
        session_id: String,
        /// The offending `seq`.
        seq: u64,
        /// The `seq` it should have been greater than.
        last_seq: u64,
    },
    /// Stored data could not be decoded.
    #[error("stored data of session `{session_id}` is corrupt")]
    Corrupt {
        /// The session whose data is bad ("" for the store itself).
        session_id: String,
        /// What the decoder said.
        #[source]
        source: BackendError,
    },
    /// The storage backend failed (IO, a full disk, a locked file, ...).
    #[error("session store backend failed")]
    Backend(#[source] BackendError),
}

/// An opaque error from a store's backend, kept as the
/// [`source`](std::error::Error::source) of a [`StoreError`].
pub struct BackendError(Box<dyn std::error::Error + Send + Sync + 'static>);

impl BackendError {
    /// Wraps a backend's error.
    pub fn new(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Box::new(error))
    }
}

impl fmt::Debug for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for BackendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// Checks that `events` may follow `last_seq`, returning the new last seq.
fn check_seqs(session_id: &str, last_seq: u64, events: &[(u64, Body)]) -> Result<u64, StoreError> {
    let mut last = last_seq;
    for &(seq, _) in events {
        if seq <= last {
            return Err(StoreError::SeqOutOfOrder {
                session_id: session_id.to_owned(),
                seq,
                last_seq: last,
            });
        }
        last = seq;
    }
    Ok(last)
}

/// Writes an event as a store keeps it: a protobuf `Frame` holding only
/// its body.
pub fn encode_event(body: &Body, bytes: &mut Vec<u8>) {
    let frame = gtl_proto::FrameRef {
        call_id: 0,
        session_id: "",
        seq: 0,
        body: Some(body),
    };
    bytes.reserve(frame.protobuf_len());
    frame.encode_protobuf(bytes);
}

/// Reads an event written by [`encode_event`]; `Corrupt` (naming
/// `session_id`) when the bytes are not one.
pub fn decode_event(session_id: &str, bytes: &[u8]) -> Result<Body, StoreError> {
    use prost::Message as _;
    let corrupt = |source| StoreError::Corrupt {
        session_id: session_id.to_owned(),
        source,
    };
    let frame = gtl_proto::Frame::decode(bytes).map_err(|e| corrupt(BackendError::new(e)))?;
    frame
        .body
        .ok_or_else(|| corrupt(BackendError::new(MissingBody)))
}

/// A stored event frame without a body.
#[derive(Debug, thiserror::Error)]
#[error("stored event has no body")]
struct MissingBody;
