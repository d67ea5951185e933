//! The response cache: complete answers kept in redb by their normalised
//! request, and identical requests in flight coalesced into one upstream
//! call.

use std::collections::HashMap;
use std::hash::{Hash as _, Hasher as _};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gtl_proto::{Body, CompletionRequest, Frame};
use prost::Message as _;
use redb::{
    Database, ReadableDatabase as _, ReadableTable as _, ReadableTableMetadata as _,
    TableDefinition,
};
use serde::{Deserialize, Serialize};

const ANSWERS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("gtl.v1.answers");

/// redb's page cache for the answers (they are read whole, once each).
const CACHE_BYTES: usize = 16 << 20;

/// The response cache's settings: the server's `[router.cache]` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct CacheConfig {
    /// Whether routes (and requests) may cache at all.
    pub enabled: bool,
    /// The most answers kept; the ones closest to expiry go first.
    pub max_entries: u64,
    /// Answers larger than this (encoded) are not kept.
    pub max_entry_bytes: usize,
    /// Whether requests with tools may be cached (their answers usually
    /// depend on the world the tools see).
    pub tools: bool,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_entries: 10_000,
            max_entry_bytes: 1 << 20,
            tools: false,
        }
    }
}

/// The cache could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("response cache: {0}")]
pub struct CacheError(#[from] redb::Error);

/// A normalised request: what makes two requests the same question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Key {
    id: String,
    bytes: Vec<u8>,
}

impl Key {
    /// The key of `request` for `tenant`: the model, messages, sampling
    /// parameters and tools; not the session, metadata or stream flag.
    pub(crate) fn new(request: &CompletionRequest, tenant: Option<&str>) -> Self {
        let normal = CompletionRequest {
            provider: request.provider.clone(),
            model: request.model.clone(),
            messages: request.messages.clone(),
            max_tokens: request.max_tokens,
            temperature: request.temperature,
            top_p: request.top_p,
            stop: request.stop.clone(),
            tools: request.tools.clone(),
            tool_choice: request.tool_choice.clone(),
            ..CompletionRequest::default()
        };
        let mut bytes = tenant.unwrap_or_default().as_bytes().to_vec();
        bytes.push(0);
        normal.encode(&mut bytes).expect("a Vec grows as needed");
        // Two differently seeded hashes name the entry; the stored bytes
        // are compared on every hit, so a collision is a miss, never a
        // wrong answer.
        let hash = |seed: u8| {
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            seed.hash(&mut hasher);
            bytes.hash(&mut hasher);
            hasher.finish()
        };
        Self {
            id: format!("{:016x}{:016x}", hash(1), hash(2)),
            bytes,
        }
    }
}

/// Complete answers by request, in redb, with a TTL each and a bound on
/// their number; and the requests being answered now.
#[derive(Debug)]
pub struct ResponseCache {
    db: Database,
    config: CacheConfig,
    flights: Mutex<HashMap<String, Arc<Flight>>>,
}

impl ResponseCache {
    /// A cache in the redb file at `path` (created, with its directory,
    /// if missing).
    pub fn open(path: impl AsRef<Path>, config: CacheConfig) -> Result<Self, CacheError> {
        let path = path.as_ref();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(redb::Error::Io)?;
        }
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(redb::Error::from)?;
        Self::with_db(db, config)
    }

    /// A cache in memory (embedded use, tests).
    pub fn in_memory(config: CacheConfig) -> Result<Self, CacheError> {
        let db = redb::Builder::new()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(redb::Error::from)?;
        Self::with_db(db, config)
    }

    fn with_db(db: Database, config: CacheConfig) -> Result<Self, CacheError> {
        let txn = db.begin_write().map_err(redb::Error::from)?;
        txn.open_table(ANSWERS).map_err(redb::Error::from)?;
        txn.commit().map_err(redb::Error::from)?;
        Ok(Self {
            db,
            config,
            flights: Mutex::default(),
        })
    }

    /// The settings.
    pub fn config(&self) -> &CacheConfig {
        &self.config
    }

    /// The answer kept for `key`, unless it expired.
    pub(crate) fn get(&self, key: &Key) -> Option<Vec<Body>> {
        self.get_at(key, now_ms())
    }

    fn get_at(&self, key: &Key, now: u64) -> Option<Vec<Body>> {
        let read = || -> Result<Option<Vec<Body>>, redb::Error> {
            let txn = self.db.begin_read()?;
            let table = txn.open_table(ANSWERS)?;
            let Some(value) = table.get(key.id.as_str())? else {
                return Ok(None);
            };
            Ok(decode(value.value(), key, now))
        };
        read().unwrap_or_else(|error| {
            tracing::warn!(%error, "response cache read failed");
            None
        })
    }

    /// Keeps `events` for `key` for `ttl`.
    pub(crate) fn put(&self, key: &Key, events: &[Body], ttl: Duration) {
        self.put_at(key, events, ttl, now_ms());
    }

    fn put_at(&self, key: &Key, events: &[Body], ttl: Duration, now: u64) {
        let expires = now.saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
        let value = encode(key, events, expires);
        if value.len() > self.config.max_entry_bytes {
            return;
        }
        let write = || -> Result<(), redb::Error> {
            let txn = self.db.begin_write()?;
            {
                let mut table = txn.open_table(ANSWERS)?;
                if table.len()? >= self.config.max_entries {
                    // Expired entries go first, then the ones closest to
                    // expiry, until there is room for one.
                    let mut entries = Vec::new();
                    for entry in table.iter()? {
                        let (id, value) = entry?;
                        entries.push((expiry(value.value()), id.value().to_owned()));
                    }
                    entries.sort_unstable();
                    let excess = entries.len() as u64 + 1 - self.config.max_entries.max(1);
                    let expired = entries.iter().take_while(|(at, _)| *at <= now).count() as u64;
                    for (_, id) in entries.iter().take(excess.max(expired) as usize) {
                        table.remove(id.as_str())?;
                    }
                }
                table.insert(key.id.as_str(), value.as_slice())?;
            }
            txn.commit()?;
            Ok(())
        };
        if let Err(error) = write() {
            tracing::warn!(%error, "response cache write failed");
        }
    }

    /// The flight answering `key`, and whether the caller must start it.
    pub(crate) fn join(&self, key: &Key) -> (Arc<Flight>, bool) {
        let mut flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(flight) = flights.get(&key.id) {
            return (flight.clone(), false);
        }
        let flight = Arc::new(Flight::default());
        flights.insert(key.id.clone(), flight.clone());
        (flight, true)
    }

    /// The flight for `key` landed: later requests read the cache (or
    /// start a new flight).
    pub(crate) fn land(&self, key: &Key) {
        let mut flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
        flights.remove(&key.id);
    }
}

/// One upstream call shared by identical requests: its events so far, and
/// a signal for each new one.
#[derive(Debug, Default)]
pub(crate) struct Flight {
    state: Mutex<(Vec<Body>, bool)>,
    changed: tokio::sync::Notify,
}

impl Flight {
    /// Appends an event (`last`: the flight is over).
    pub(crate) fn push(&self, body: Body, last: bool) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.0.push(body);
        state.1 |= last;
        drop(state);
        self.changed.notify_waiters();
    }

    /// The events so far.
    pub(crate) fn events(&self) -> Vec<Body> {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .clone()
    }

    /// The event at `index`, waiting for it; `None` once the flight ended
    /// before it.
    pub(crate) async fn get(&self, index: usize) -> Option<Body> {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(body) = state.0.get(index) {
                    return Some(body.clone());
                }
                if state.1 {
                    return None;
                }
            }
            notified.await;
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `expires (u64 LE) | key length (u32 LE) | key | frames, each
/// length-delimited protobuf`.
fn encode(key: &Key, events: &[Body], expires: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + key.bytes.len() + 64 * events.len());
    out.extend_from_slice(&expires.to_le_bytes());
    out.extend_from_slice(
        &u32::try_from(key.bytes.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    out.extend_from_slice(&key.bytes);
    for body in events {
        let frame = Frame {
            body: Some(body.clone()),
            ..Frame::default()
        };
        frame
            .encode_length_delimited(&mut out)
            .expect("a Vec grows as needed");
    }
    out
}

fn expiry(value: &[u8]) -> u64 {
    value
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

/// The events of a stored answer, when it is `key`'s and not expired.
fn decode(value: &[u8], key: &Key, now: u64) -> Option<Vec<Body>> {
    if expiry(value) <= now {
        return None;
    }
    let len = u32::from_le_bytes(value.get(8..12)?.try_into().ok()?) as usize;
    if value.get(12..12 + len)? != key.bytes.as_slice() {
        return None;
    }
    let mut rest = value.get(12 + len..)?;
    let mut events = Vec::new();
    while !rest.is_empty() {
        events.push(Frame::decode_length_delimited(&mut rest).ok()?.body?);
    }
    Some(events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gtl_proto::{Done, Token};

    fn answer() -> Vec<Body> {
        vec![
            Body::Token(Token { text: "hi".into() }),
            Body::Done(Done {
                finish_reason: "stop".into(),
            }),
        ]
    }

    fn key(model: &str, tenant: Option<&str>) -> Key {
        let request = CompletionRequest {
            model: model.into(),
            ..CompletionRequest::default()
        };
        Key::new(&request, tenant)
    }

    #[test]
    fn answers_expire_after_their_ttl() {
        let cache = ResponseCache::in_memory(CacheConfig::default()).unwrap();
        let k = key("m", None);
        cache.put_at(&k, &answer(), Duration::from_secs(10), 1_000);
        assert_eq!(cache.get_at(&k, 10_999), Some(answer()));
        assert_eq!(cache.get_at(&k, 11_000), None);
    }

    #[test]
    fn tenants_and_models_do_not_share_answers() {
        let cache = ResponseCache::in_memory(CacheConfig::default()).unwrap();
        cache.put_at(&key("m", Some("t1")), &answer(), Duration::from_secs(10), 0);
        assert_eq!(cache.get_at(&key("m", Some("t2")), 1), None);
        assert_eq!(cache.get_at(&key("other", Some("t1")), 1), None);
        assert!(cache.get_at(&key("m", Some("t1")), 1).is_some());
    }

    #[test]
    fn the_entry_count_is_bounded_by_expiry_order() {
        let config = CacheConfig {
            max_entries: 2,
            ..CacheConfig::default()
        };
        let cache = ResponseCache::in_memory(config).unwrap();
        let ttl = |s| Duration::from_secs(s);
        cache.put_at(&key("a", None), &answer(), ttl(30), 0);
        cache.put_at(&key("b", None), &answer(), ttl(10), 0);
        cache.put_at(&key("c", None), &answer(), ttl(20), 0);
        // `b` expired soonest: it made room.
        assert!(cache.get_at(&key("a", None), 1).is_some());
        assert!(cache.get_at(&key("b", None), 1).is_none());
        assert!(cache.get_at(&key("c", None), 1).is_some());
    }

    #[test]
    fn oversized_answers_are_not_kept() {
        let config = CacheConfig {
            max_entry_bytes: 16,
            ..CacheConfig::default()
        };
        let cache = ResponseCache::in_memory(config).unwrap();
        cache.put_at(&key("m", None), &answer(), Duration::from_secs(10), 0);
        assert!(cache.get_at(&key("m", None), 1).is_none());
    }
}
