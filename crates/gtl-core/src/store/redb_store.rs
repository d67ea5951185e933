//! The durable [`RedbStore`], on an embedded redb database file.
//!
//! Layout (format version 1):
//!
//! - table `gtl.v1.sessions`: session id → a protobuf-encoded [`MetaRecord`];
//! - table `gtl.v1.events`: `(session id, seq)` → the event as a protobuf
//!   `Frame` holding only its body.
//!
//! Every [`SessionStore`] call is one redb transaction, committed with
//! redb's default durability (persistent when `commit` returns).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gtl_proto::{Body, ErrorCode};
use prost::Message as _;
use redb::{Database, ReadableDatabase as _, ReadableTable as _, TableDefinition};

use super::{
    BackendError, Outcome, SessionMeta, SessionStore, SessionWrite, StoreError, StoredSession,
    check_seqs, decode_event as decode_body, encode_event as encode_body,
};

/// redb's page cache, in bytes.
const CACHE_BYTES: usize = 32 << 20;

const SESSIONS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("gtl.v1.sessions");
const EVENTS: TableDefinition<'_, (&str, u64), &[u8]> = TableDefinition::new("gtl.v1.events");

/// A [`SessionStore`] in a redb database file: sessions survive a restart.
///
/// Opening an existing file replays what it holds; [`SessionStore::load`]
/// returns the events appended before the process stopped.
pub struct RedbStore {
    db: Arc<Db>,
    path: PathBuf,
}

/// The database; its transactions block, so the async methods run them on
/// tokio's blocking pool.
struct Db {
    db: Database,
}

impl fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl RedbStore {
    /// Opens the database at `path`, creating the file if it does not exist.
    ///
    /// redb locks the file: a second `open` of the same path, in this
    /// process or another, fails until the first store is dropped.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        // redb caches up to 1 GiB by default; the sessions' own logs already
        // keep what is hot, so the cache stays small and RSS predictable.
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(backend)?;
        // Create both tables up front so read transactions always find them.
        let txn = db.begin_write().map_err(backend)?;
        txn.open_table(SESSIONS).map_err(backend)?;
        txn.open_table(EVENTS).map_err(backend)?;
        txn.commit().map_err(backend)?;
        Ok(Self {
            db: Arc::new(Db { db }),
            path: path.to_owned(),
        })
    }

    /// The database file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl RedbStore {
    /// Runs `work` on the database in tokio's blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Db) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || work(&db))
            .await
            .map_err(|e| StoreError::Backend(BackendError::new(e)))?
    }
}

#[async_trait::async_trait]
impl SessionStore for RedbStore {
    async fn commit(&self, writes: Vec<SessionWrite>) -> Vec<Result<(), StoreError>> {
        let count = writes.len();
        let db = self.db.clone();
        match tokio::task::spawn_blocking(move || db.commit(&writes)).await {
            Ok(results) => results,
            Err(e) => {
                let message = e.to_string();
                (0..count)
                    .map(|_| {
                        Err(StoreError::Backend(BackendError::new(Panicked(
                            message.clone(),
                        ))))
                    })
                    .collect()
            }
        }
    }

    async fn create(&self, meta: &SessionMeta) -> Result<(), StoreError> {
        let meta = meta.clone();
        self.blocking(move |db| db.create(&meta)).await
    }

    async fn append(&self, session_id: &str, events: &[(u64, Body)]) -> Result<(), StoreError> {
        let (id, events) = (session_id.to_owned(), events.to_vec());
        self.blocking(move |db| db.append(&id, &events)).await
    }

    async fn finish(&self, session_id: &str, outcome: &Outcome) -> Result<(), StoreError> {
        let (id, outcome) = (session_id.to_owned(), outcome.clone());
        self.blocking(move |db| db.finish(&id, &outcome)).await
    }

    async fn load(&self, session_id: &str) -> Result<Option<StoredSession>, StoreError> {
        let id = session_id.to_owned();
        self.blocking(move |db| db.load(&id)).await
    }

    async fn list(&self) -> Result<Vec<SessionMeta>, StoreError> {
        self.blocking(Db::list).await
    }

    async fn trim(&self, session_id: &str, up_to_seq: u64) -> Result<(), StoreError> {
        let id = session_id.to_owned();
        self.blocking(move |db| db.trim(&id, up_to_seq)).await
    }

    async fn remove(&self, session_id: &str) -> Result<bool, StoreError> {
        let id = session_id.to_owned();
        self.blocking(move |db| db.remove(&id)).await
    }
}

/// The blocking pool's task died (a panic in a transaction).
#[derive(Debug, thiserror::Error)]
#[error("session store task failed: {0}")]
struct Panicked(String);

impl Db {
    /// A group of writes in one transaction; `Err` aborts all of them.
    fn commit_group(&self, writes: &[SessionWrite]) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(backend)?;
        {
            let mut sessions = txn.open_table(SESSIONS).map_err(backend)?;
            let mut table = txn.open_table(EVENTS).map_err(backend)?;
            let mut bytes = Vec::new();
            for write in writes {
                let id = write.session_id.as_str();
                let mut record = match &write.create {
                    Some(meta) => {
                        if sessions.get(id).map_err(backend)?.is_some() {
                            return Err(StoreError::SessionExists {
                                session_id: id.to_owned(),
                            });
                        }
                        MetaRecord::new(meta, 0)
                    }
                    None => read_record(&sessions, id)?,
                };
                if record.finished && (!write.events.is_empty() || write.outcome.is_some()) {
                    return Err(StoreError::SessionFinished {
                        session_id: id.to_owned(),
                    });
                }
                record.last_seq = check_seqs(id, record.last_seq, &write.events)?;
                for (seq, body) in &write.events {
                    bytes.clear();
                    encode_body(body, &mut bytes);
                    table
                        .insert((id, *seq), bytes.as_slice())
                        .map_err(backend)?;
                }
                if let Some(outcome) = &write.outcome {
                    record.finished = true;
                    record.set_outcome(Some(outcome));
                }
                sessions
                    .insert(id, record.encode_to_vec().as_slice())
                    .map_err(backend)?;
            }
        }
        txn.commit().map_err(backend)
    }

    fn commit(&self, writes: &[SessionWrite]) -> Vec<Result<(), StoreError>> {
        match self.commit_group(writes) {
            Ok(()) => writes.iter().map(|_| Ok(())).collect(),
            // One bad write aborted the group: apply each on its own, so only
            // the bad one fails.
            Err(_) => writes
                .iter()
                .map(|write| self.commit_group(std::slice::from_ref(write)))
                .collect(),
        }
    }

    fn create(&self, meta: &SessionMeta) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(backend)?;
        {
            let mut sessions = txn.open_table(SESSIONS).map_err(backend)?;
            if sessions.get(meta.id.as_str()).map_err(backend)?.is_some() {
                return Err(StoreError::SessionExists {
                    session_id: meta.id.clone(),
                });
            }
            let record = MetaRecord::new(meta, 0);
            sessions
                .insert(meta.id.as_str(), record.encode_to_vec().as_slice())
                .map_err(backend)?;
        }
        txn.commit().map_err(backend)
    }

    fn append(&self, session_id: &str, events: &[(u64, Body)]) -> Result<(), StoreError> {
        // Returning early drops `txn`, which aborts it: nothing of the batch
        // is written unless every step succeeded.
        let txn = self.db.begin_write().map_err(backend)?;
        {
            let mut sessions = txn.open_table(SESSIONS).map_err(backend)?;
            let mut record = read_record(&sessions, session_id)?;
            if record.finished {
                return Err(StoreError::SessionFinished {
                    session_id: session_id.to_owned(),
                });
            }
            record.last_seq = check_seqs(session_id, record.last_seq, events)?;
            let mut table = txn.open_table(EVENTS).map_err(backend)?;
            let mut bytes = Vec::new();
            for (seq, body) in events {
                bytes.clear();
                encode_body(body, &mut bytes);
                table
                    .insert((session_id, *seq), bytes.as_slice())
                    .map_err(backend)?;
            }
            sessions
                .insert(session_id, record.encode_to_vec().as_slice())
                .map_err(backend)?;
        }
        txn.commit().map_err(backend)
    }

    fn finish(&self, session_id: &str, outcome: &Outcome) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(backend)?;
        {
            let mut sessions = txn.open_table(SESSIONS).map_err(backend)?;
            let mut record = read_record(&sessions, session_id)?;
            if record.finished {
                return Err(StoreError::SessionFinished {
                    session_id: session_id.to_owned(),
                });
            }
            record.finished = true;
            record.set_outcome(Some(outcome));
            sessions
                .insert(session_id, record.encode_to_vec().as_slice())
                .map_err(backend)?;
        }
        txn.commit().map_err(backend)
    }

    fn load(&self, session_id: &str) -> Result<Option<StoredSession>, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let sessions = txn.open_table(SESSIONS).map_err(backend)?;
        let record = match read_record(&sessions, session_id) {
            Ok(record) => record,
            Err(StoreError::UnknownSession { .. }) => return Ok(None),
            Err(error) => return Err(error),
        };
        let table = txn.open_table(EVENTS).map_err(backend)?;
        let mut events = Vec::new();
        for entry in table
            .range((session_id, 0)..=(session_id, u64::MAX))
            .map_err(backend)?
        {
            let (key, value) = entry.map_err(backend)?;
            let seq = key.value().1;
            events.push((seq, decode_body(session_id, value.value())?));
        }
        Ok(Some(StoredSession {
            meta: record.to_meta(),
            events,
            last_seq: record.last_seq,
        }))
    }

    fn list(&self) -> Result<Vec<SessionMeta>, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let sessions = txn.open_table(SESSIONS).map_err(backend)?;
        let mut metas = Vec::new();
        for entry in sessions.iter().map_err(backend)? {
            let (key, value) = entry.map_err(backend)?;
            metas.push(decode_record(key.value(), value.value())?.to_meta());
        }
        metas.sort_by(|a, b| (a.created_unix_ms, &a.id).cmp(&(b.created_unix_ms, &b.id)));
        Ok(metas)
    }

    fn trim(&self, session_id: &str, up_to_seq: u64) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(backend)?;
        {
            let sessions = txn.open_table(SESSIONS).map_err(backend)?;
            read_record(&sessions, session_id)?;
            let mut table = txn.open_table(EVENTS).map_err(backend)?;
            table
                .retain_in((session_id, 0)..=(session_id, up_to_seq), |_, _| false)
                .map_err(backend)?;
        }
        txn.commit().map_err(backend)
    }

    fn remove(&self, session_id: &str) -> Result<bool, StoreError> {
        let txn = self.db.begin_write().map_err(backend)?;
        let existed = {
            let mut sessions = txn.open_table(SESSIONS).map_err(backend)?;
            let existed = sessions.remove(session_id).map_err(backend)?.is_some();
            let mut table = txn.open_table(EVENTS).map_err(backend)?;
            table
                .retain_in((session_id, 0)..=(session_id, u64::MAX), |_, _| false)
                .map_err(backend)?;
            existed
        };
        txn.commit().map_err(backend)?;
        Ok(existed)
    }
}

fn backend(error: impl Into<redb::Error>) -> StoreError {
    StoreError::Backend(BackendError::new(error.into()))
}

fn corrupt(session_id: &str, error: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Corrupt {
        session_id: session_id.to_owned(),
        source: BackendError::new(error),
    }
}

fn read_record<T>(sessions: &T, session_id: &str) -> Result<MetaRecord, StoreError>
where
    T: redb::ReadableTable<&'static str, &'static [u8]>,
{
    match sessions.get(session_id).map_err(backend)? {
        Some(value) => decode_record(session_id, value.value()),
        None => Err(StoreError::UnknownSession {
            session_id: session_id.to_owned(),
        }),
    }
}

fn decode_record(session_id: &str, bytes: &[u8]) -> Result<MetaRecord, StoreError> {
    MetaRecord::decode(bytes).map_err(|error| corrupt(session_id, error))
}

/// A session's row in the sessions table.
#[derive(Clone, PartialEq, prost::Message)]
struct MetaRecord {
    #[prost(string, tag = "1")]
    id: String,
    #[prost(string, tag = "2")]
    owner: String,
    #[prost(string, tag = "3")]
    resume_token: String,
    #[prost(uint64, tag = "4")]
    created_unix_ms: u64,
    #[prost(bool, tag = "5")]
    finished: bool,
    #[prost(uint64, tag = "6")]
    last_seq: u64,
    /// 0: none, 1: done, 2: failed.
    #[prost(uint32, tag = "7")]
    outcome: u32,
    #[prost(string, tag = "8")]
    finish_reason: String,
    #[prost(enumeration = "ErrorCode", tag = "9")]
    error_code: i32,
    #[prost(bool, tag = "10")]
    pipe: bool,
}

const OUTCOME_NONE: u32 = 0;
const OUTCOME_DONE: u32 = 1;
const OUTCOME_FAILED: u32 = 2;

impl MetaRecord {
    fn new(meta: &SessionMeta, last_seq: u64) -> Self {
        let mut record = Self {
            id: meta.id.clone(),
            owner: meta.owner.clone(),
            resume_token: meta.resume_token.clone(),
            created_unix_ms: meta.created_unix_ms,
            finished: meta.finished,
            last_seq,
            pipe: meta.pipe,
            ..Self::default()
        };
        record.set_outcome(meta.outcome.as_ref());
        record
    }

    fn set_outcome(&mut self, outcome: Option<&Outcome>) {
        (self.outcome, self.finish_reason, self.error_code) = match outcome {
            None => (OUTCOME_NONE, String::new(), 0),
            Some(Outcome::Done { finish_reason }) => (OUTCOME_DONE, finish_reason.clone(), 0),
            Some(Outcome::Failed { code }) => (OUTCOME_FAILED, String::new(), *code as i32),
        };
    }

    fn to_meta(&self) -> SessionMeta {
        let outcome = match self.outcome {
            OUTCOME_DONE => Some(Outcome::Done {
                finish_reason: self.finish_reason.clone(),
            }),
            OUTCOME_FAILED => Some(Outcome::Failed {
                code: self.error_code(),
            }),
            _ => None,
        };
        SessionMeta {
            id: self.id.clone(),
            owner: self.owner.clone(),
            resume_token: self.resume_token.clone(),
            created_unix_ms: self.created_unix_ms,
            finished: self.finished,
            outcome,
            pipe: self.pipe,
        }
    }
}
