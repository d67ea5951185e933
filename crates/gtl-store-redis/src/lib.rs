//! GTL sessions shared by replicas: a [`SessionStore`] on Redis or Valkey.
//!
//! Several gateway processes behind one load balancer share this store, so
//! a client cut from one replica resumes on another: the engine there loads
//! the session, replays it, and follows the events the driving replica goes
//! on writing ([`SessionStore::tail`]).
//!
//! Per session (its key `K` is the engine's owner-and-id key):
//!
//! - `gtl:{K}:m`, a hash: owner, resume token, creation time, `last` seq,
//!   `finished`, the outcome, `pipe`, and a pending cancel request;
//! - `gtl:{K}:e`, a stream: one entry per event, entry id `seq-0`, field
//!   `b` the event as a protobuf frame; capped with `MAXLEN ~`;
//! - `gtl:{K}:l`, the claim: the driving replica's id, with a lease
//!   (`SET NX PX`) it renews each second. A lapsed claim tells the others
//!   the driver is gone.
//!
//! All three expire with the resume window after the last write or renewal.
//! The same store is the replicas' [`SharedCounters`]: `gtl:c:<counter>`,
//! added to with `INCRBYFLOAT` and expiring when its period ends.
//! Each write is one Lua script, so a batch is all or nothing, and its seq
//! check fences a replica whose claim lapsed: the seqs it would write are
//! taken. The hash tag keeps a session's keys in one slot.
//!
//! # Example
//!
//! ```no_run
//! use std::sync::Arc;
//! use gtl_core::{Engine, EngineConfig};
//! use gtl_store_redis::{RedisConfig, RedisStore};
//!
//! # async fn run() -> Result<(), gtl_core::StoreError> {
//! let store = RedisStore::connect(RedisConfig::new("redis://127.0.0.1:6379/0")).await?;
//! let engine = Engine::new(Arc::new(store), EngineConfig::default());
//! # let _ = engine;
//! # Ok(())
//! # }
//! ```

mod scripts;

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use gtl_core::counters::{CounterDelta, SharedCounters};
use gtl_core::{
    BackendError, Outcome, SessionMeta, SessionStore, SessionWrite, StoreError, StoredSession,
    decode_event, encode_event,
};
use gtl_proto::{Body, ErrorCode};
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::streams::{StreamRangeReply, StreamReadOptions, StreamReadReply};
use redis::{AsyncCommands as _, AsyncConnectionConfig, Client, RedisError};

/// How to reach Redis and how long what it keeps lives.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port/db`, or `rediss://` for TLS.
    pub url: String,
    /// Prefix of every key (default `gtl:`), so one server can hold several
    /// deployments.
    pub key_prefix: String,
    /// How long a session's keys outlive its last write or renewal: the
    /// resume window (default 5 minutes).
    pub ttl: Duration,
    /// How long a replica's claim lasts unrenewed (default 3 s): a replica
    /// killed mid-generation is noticed this long after.
    pub lease: Duration,
    /// Events kept per session stream (default 100,000).
    pub max_events: usize,
    /// How long a command or a connection attempt may take before it fails
    /// (default 1 s): with Redis gone, calls fail fast rather than hang.
    pub timeout: Duration,
    /// For `rediss://`: trust only the CA certificates in this PEM file
    /// (a private CA), instead of the system's roots.
    pub ca_file: Option<std::path::PathBuf>,
}

impl RedisConfig {
    /// Defaults for the server at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            key_prefix: "gtl:".into(),
            ttl: Duration::from_secs(300),
            lease: Duration::from_secs(3),
            max_events: 100_000,
            timeout: Duration::from_secs(1),
            ca_file: None,
        }
    }

    /// Sets [`ca_file`](Self::ca_file).
    #[must_use]
    pub fn with_ca_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Sets [`ttl`](Self::ttl).
    #[must_use]
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets [`lease`](Self::lease).
    #[must_use]
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Sets [`key_prefix`](Self::key_prefix).
    #[must_use]
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }
}

/// A [`SessionStore`] shared by replicas through Redis or Valkey.
pub struct RedisStore {
    client: Client,
    conn: ConnectionManager,
    /// Connections for blocking reads (`XREAD BLOCK` holds its connection),
    /// kept for reuse.
    tails: Mutex<Vec<MultiplexedConnection>>,
    config: RedisConfig,
    /// This process's id in claims.
    replica: String,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may hold a password.
        f.debug_struct("RedisStore")
            .field("replica", &self.replica)
            .field("key_prefix", &self.config.key_prefix)
            .finish_non_exhaustive()
    }
}

/// Idle blocking-read connections kept.
const MAX_IDLE_TAILS: usize = 64;

impl RedisStore {
    /// Connects to the server of `config.url`. Fails when it cannot be
    /// reached within [`RedisConfig::timeout`] (a few attempts).
    pub async fn connect(config: RedisConfig) -> Result<Self, StoreError> {
        let client = match &config.ca_file {
            Some(path) => {
                let root_cert = std::fs::read(path).map_err(backend)?;
                let certs = redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(root_cert),
                };
                Client::build_with_tls(config.url.as_str(), certs).map_err(backend)?
            }
            None => Client::open(config.url.as_str()).map_err(backend)?,
        };
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.timeout))
            .set_response_timeout(Some(config.timeout))
            .set_number_of_retries(2)
            .set_max_delay(config.timeout);
        let conn = client
            .get_connection_manager_with_config(manager)
            .await
            .map_err(backend)?;
        let mut id = [0u8; 8];
        getrandom::fill(&mut id).map_err(|e| backend(std::io::Error::other(e.to_string())))?;
        let replica = id.iter().map(|b| format!("{b:02x}")).collect();
        Ok(Self {
            client,
            conn,
            tails: Mutex::new(Vec::new()),
            config,
            replica,
        })
    }

    /// This process's id in the claims it holds.
    pub fn replica(&self) -> &str {
        &self.replica
    }

    fn key(&self, session_id: &str, part: &str) -> String {
        format!("{}{{{session_id}}}:{part}", self.config.key_prefix)
    }

    fn ttl_ms(&self) -> u64 {
        self.config.ttl.as_millis() as u64
    }

    fn lease_ms(&self) -> u64 {
        self.config.lease.as_millis().max(1) as u64
    }

    async fn tail_conn(&self) -> Result<MultiplexedConnection, StoreError> {
        let idle = self
            .tails
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        match idle {
            Some(conn) => Ok(conn),
            None => {
                // The read's own wait bounds it; the timeout here only
                // bounds connecting.
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(self.config.timeout))
                    .set_response_timeout(None);
                self.client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                    .map_err(backend)
            }
        }
    }

    fn put_back(&self, conn: MultiplexedConnection) {
        let mut idle = self
            .tails
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if idle.len() < MAX_IDLE_TAILS {
            idle.push(conn);
        }
    }

    async fn write(&self, write: &SessionWrite) -> Result<(), StoreError> {
        let id = &write.session_id;
        let mut invocation = scripts::WRITE.prepare_invoke();
        invocation
            .key(self.key(id, "m"))
            .key(self.key(id, "e"))
            .key(self.key(id, "l"));
        match &write.create {
            Some(meta) => invocation
                .arg("1")
                .arg(&meta.owner)
                .arg(&meta.resume_token)
                .arg(meta.created_unix_ms)
                .arg(if meta.pipe { "1" } else { "0" }),
            None => invocation.arg("0").arg("").arg("").arg(0).arg("0"),
        };
        let (kind, detail) = match &write.outcome {
            None => ("", String::new()),
            Some(Outcome::Done { finish_reason }) => ("done", finish_reason.clone()),
            Some(Outcome::Failed { code }) => ("failed", (*code as i32).to_string()),
            Some(_) => ("failed", (ErrorCode::Internal as i32).to_string()),
        };
        invocation
            .arg(self.ttl_ms())
            .arg(self.lease_ms())
            .arg(&self.replica)
            .arg(self.config.max_events)
            .arg(kind)
            .arg(detail);
        let mut bytes = Vec::new();
        for (seq, body) in &write.events {
            bytes.clear();
            encode_event(body, &mut bytes);
            invocation.arg(*seq).arg(bytes.as_slice());
        }
        let mut conn = self.conn.clone();
        invocation
            .invoke_async::<u64>(&mut conn)
            .await
            .map(drop)
            .map_err(|e| refused(id, e))
    }
}

#[async_trait::async_trait]
impl SessionStore for RedisStore {
    async fn create(&self, meta: &SessionMeta) -> Result<(), StoreError> {
        let mut write = SessionWrite::new(meta.id.clone());
        write.create = Some(meta.clone());
        self.write(&write).await
    }

    async fn append(&self, session_id: &str, events: &[(u64, Body)]) -> Result<(), StoreError> {
        let mut write = SessionWrite::new(session_id);
        write.events = events.to_vec();
        self.write(&write).await
    }

    async fn finish(&self, session_id: &str, outcome: &Outcome) -> Result<(), StoreError> {
        let mut write = SessionWrite::new(session_id);
        write.outcome = Some(outcome.clone());
        self.write(&write).await
    }

    async fn commit(&self, writes: Vec<SessionWrite>) -> Vec<Result<(), StoreError>> {
        // Sent together on the one connection: one round trip for all.
        futures::future::join_all(writes.iter().map(|write| self.write(write))).await
    }

    async fn load(&self, session_id: &str) -> Result<Option<StoredSession>, StoreError> {
        let mut conn = self.conn.clone();
        let (fields, range): (HashMap<String, Vec<u8>>, StreamRangeReply) = redis::pipe()
            .hgetall(self.key(session_id, "m"))
            .xrange_all(self.key(session_id, "e"))
            .query_async(&mut conn)
            .await
            .map_err(backend)?;
        if fields.is_empty() {
            return Ok(None);
        }
        let meta = meta_from(session_id, &fields)?;
        let last_seq = number(session_id, &fields, "last")?;
        let events = events_from(session_id, range.ids)?;
        Ok(Some(StoredSession::new(meta, events, last_seq)))
    }

    async fn list(&self) -> Result<Vec<SessionMeta>, StoreError> {
        Ok(Vec::new())
    }

    async fn trim(&self, session_id: &str, up_to_seq: u64) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        scripts::TRIM
            .key(self.key(session_id, "m"))
            .key(self.key(session_id, "e"))
            .arg(up_to_seq.saturating_add(1))
            .invoke_async::<u64>(&mut conn)
            .await
            .map(drop)
            .map_err(|e| refused(session_id, e))
    }

    async fn remove(&self, session_id: &str) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let (meta, _): (u64, u64) = redis::pipe()
            .del(self.key(session_id, "m"))
            .del(&[self.key(session_id, "e"), self.key(session_id, "l")])
            .query_async(&mut conn)
            .await
            .map_err(backend)?;
        Ok(meta > 0)
    }

    fn is_shared(&self) -> bool {
        true
    }

    async fn tail(
        &self,
        session_id: &str,
        after_seq: u64,
        wait: Duration,
    ) -> Result<Vec<(u64, Body)>, StoreError> {
        if wait.is_zero() {
            // What is there now: no blocking read, no connection of its own.
            let mut conn = self.conn.clone();
            let range: StreamRangeReply = conn
                .xrange(
                    self.key(session_id, "e"),
                    format!("{}-0", after_seq + 1),
                    "+",
                )
                .await
                .map_err(backend)?;
            return events_from(session_id, range.ids);
        }
        let mut conn = self.tail_conn().await?;
        let options = StreamReadOptions::default().block(wait.as_millis().max(1) as usize);
        let (keys, ids) = ([self.key(session_id, "e")], [format!("{after_seq}-0")]);
        let read = conn.xread_options::<_, _, Option<StreamReadReply>>(&keys, &ids, &options);
        // The server answers within `wait`; past that (plus the command
        // timeout) the connection is dropped, not reused.
        let reply = tokio::time::timeout(wait + self.config.timeout, read)
            .await
            .map_err(|_| backend(std::io::Error::from(std::io::ErrorKind::TimedOut)))?
            .map_err(backend)?;
        self.put_back(conn);
        let ids = reply
            .into_iter()
            .flat_map(|reply| reply.keys)
            .flat_map(|key| key.ids)
            .collect();
        events_from(session_id, ids)
    }

    async fn renew(&self, session_ids: &[String]) -> Result<Vec<(String, String)>, StoreError> {
        let mut cancels = Vec::new();
        // In slices, so one script never runs long inside the server.
        for slice in session_ids.chunks(256) {
            let mut invocation = scripts::RENEW.prepare_invoke();
            for id in slice {
                invocation
                    .key(self.key(id, "m"))
                    .key(self.key(id, "e"))
                    .key(self.key(id, "l"));
            }
            invocation
                .arg(&self.replica)
                .arg(self.lease_ms())
                .arg(self.ttl_ms());
            let mut conn = self.conn.clone();
            let answer: Vec<redis::Value> =
                invocation.invoke_async(&mut conn).await.map_err(backend)?;
            for pair in answer.chunks(2) {
                if let [index, reason] = pair {
                    let index: usize = redis::from_redis_value_ref(index).map_err(backend)?;
                    let reason: String = redis::from_redis_value_ref(reason).map_err(backend)?;
                    if let Some(id) = slice.get(index) {
                        cancels.push((id.clone(), reason));
                    }
                }
            }
        }
        Ok(cancels)
    }

    fn renew_every(&self) -> Duration {
        // Three renewals per lease: one late or lost renewal never lets a
        // live driver's claim lapse.
        (self.config.lease / 3).min(Duration::from_secs(1))
    }

    async fn claim(&self, session_id: &str) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let set: Option<String> = redis::cmd("SET")
            .arg(self.key(session_id, "l"))
            .arg(&self.replica)
            .arg("NX")
            .arg("PX")
            .arg(self.lease_ms())
            .query_async(&mut conn)
            .await
            .map_err(backend)?;
        Ok(set.is_some())
    }

    async fn release(&self, session_ids: &[String]) -> Result<(), StoreError> {
        for slice in session_ids.chunks(256) {
            let mut invocation = scripts::RELEASE.prepare_invoke();
            for id in slice {
                invocation.key(self.key(id, "l"));
            }
            invocation.arg(&self.replica);
            let mut conn = self.conn.clone();
            invocation
                .invoke_async::<u64>(&mut conn)
                .await
                .map_err(backend)?;
        }
        Ok(())
    }

    async fn request_cancel(&self, session_id: &str, reason: &str) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        scripts::CANCEL
            .key(self.key(session_id, "m"))
            .arg(reason)
            .invoke_async::<u64>(&mut conn)
            .await
            .map(drop)
            .map_err(|e| refused(session_id, e))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(drop)
            .map_err(backend)
    }
}

/// Limits' counters, added up by every replica on the same server.
#[async_trait::async_trait]
impl SharedCounters for RedisStore {
    async fn add(&self, deltas: &[CounterDelta]) -> Result<Vec<f64>, StoreError> {
        let mut totals = Vec::with_capacity(deltas.len());
        for slice in deltas.chunks(256) {
            let mut invocation = scripts::COUNT.prepare_invoke();
            for delta in slice {
                invocation
                    .key(format!("{}c:{}", self.config.key_prefix, delta.key))
                    .arg(delta.delta)
                    .arg(delta.expires_unix);
            }
            let mut conn = self.conn.clone();
            let answer: Vec<String> = invocation.invoke_async(&mut conn).await.map_err(backend)?;
            for total in answer {
                totals.push(total.parse().map_err(|_| corrupt("", "counter"))?);
            }
        }
        Ok(totals)
    }
}

fn backend(error: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Backend(BackendError::new(error))
}

/// A script's refusal (`GTL …` error reply) as the store error it stands
/// for; any other failure is the backend's.
fn refused(session_id: &str, error: RedisError) -> StoreError {
    if error.code() != Some("GTL") {
        return backend(error);
    }
    let words: Vec<&str> = error.detail().unwrap_or("").split_whitespace().collect();
    let session_id = session_id.to_owned();
    match words.as_slice() {
        ["EXISTS", ..] => StoreError::SessionExists { session_id },
        ["UNKNOWN", ..] => StoreError::UnknownSession { session_id },
        ["FINISHED", ..] => StoreError::SessionFinished { session_id },
        ["SEQ", seq, last, ..] => StoreError::SeqOutOfOrder {
            session_id,
            seq: seq.parse().unwrap_or(0),
            last_seq: last.parse().unwrap_or(0),
        },
        _ => backend(error),
    }
}

/// A stored field that is not what this store writes.
#[derive(Debug, thiserror::Error)]
#[error("stored field `{0}` is missing or malformed")]
struct BadField(&'static str);

fn corrupt(session_id: &str, field: &'static str) -> StoreError {
    StoreError::Corrupt {
        session_id: session_id.to_owned(),
        source: BackendError::new(BadField(field)),
    }
}

fn text<'a>(
    session_id: &str,
    fields: &'a HashMap<String, Vec<u8>>,
    name: &'static str,
) -> Result<&'a str, StoreError> {
    fields
        .get(name)
        .and_then(|v| std::str::from_utf8(v).ok())
        .ok_or_else(|| corrupt(session_id, name))
}

fn number(
    session_id: &str,
    fields: &HashMap<String, Vec<u8>>,
    name: &'static str,
) -> Result<u64, StoreError> {
    text(session_id, fields, name)?
        .parse()
        .map_err(|_| corrupt(session_id, name))
}

fn meta_from(
    session_id: &str,
    fields: &HashMap<String, Vec<u8>>,
) -> Result<SessionMeta, StoreError> {
    let mut meta = SessionMeta::new(
        session_id,
        text(session_id, fields, "owner")?,
        text(session_id, fields, "token")?,
        number(session_id, fields, "created")?,
    );
    meta.finished = text(session_id, fields, "finished")? == "1";
    meta.pipe = text(session_id, fields, "pipe")? == "1";
    meta.outcome = match fields.get("outcome").map(Vec::as_slice) {
        Some(b"done") => Some(Outcome::Done {
            finish_reason: text(session_id, fields, "detail")?.to_owned(),
        }),
        Some(b"failed") => {
            let code = number(session_id, fields, "detail")?;
            let code = i32::try_from(code)
                .ok()
                .and_then(|c| ErrorCode::try_from(c).ok())
                .ok_or_else(|| corrupt(session_id, "detail"))?;
            Some(Outcome::Failed { code })
        }
        _ => None,
    };
    Ok(meta)
}

fn events_from(
    session_id: &str,
    ids: Vec<redis::streams::StreamId>,
) -> Result<Vec<(u64, Body)>, StoreError> {
    ids.into_iter()
        .map(|entry| {
            let seq = entry
                .id
                .split_once('-')
                .and_then(|(seq, _)| seq.parse().ok())
                .ok_or_else(|| corrupt(session_id, "entry id"))?;
            let bytes: Vec<u8> = entry
                .map
                .get("b")
                .and_then(|v| redis::from_redis_value_ref(v).ok())
                .ok_or_else(|| corrupt(session_id, "b"))?;
            Ok((seq, decode_event(session_id, &bytes)?))
        })
        .collect()
}
