//! The in-process [`MemoryStore`].

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

use gtl_proto::Body;

use super::{Outcome, SessionMeta, SessionStore, StoreError, StoredSession, check_seqs};

/// A [`SessionStore`] in memory: fast, and gone when the process exits.
///
/// The default for embedded use and tests.
#[derive(Debug, Default)]
pub struct MemoryStore {
    sessions: Mutex<HashMap<String, Entry>>,
}

#[derive(Debug)]
struct Entry {
    meta: SessionMeta,
    events: VecDeque<(u64, Body)>,
    last_seq: u64,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn sessions(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        // Every method checks before it mutates, so a panic in another thread
        // cannot have left an entry half-updated: the data stays usable.
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn unknown(session_id: &str) -> StoreError {
    StoreError::UnknownSession {
        session_id: session_id.to_owned(),
    }
}

#[async_trait::async_trait]
impl SessionStore for MemoryStore {
    async fn create(&self, meta: &SessionMeta) -> Result<(), StoreError> {
        let mut sessions = self.sessions();
        if sessions.contains_key(&meta.id) {
            return Err(StoreError::SessionExists {
                session_id: meta.id.clone(),
            });
        }
        let entry = Entry {
            meta: meta.clone(),
            events: VecDeque::new(),
            last_seq: 0,
        };
        sessions.insert(meta.id.clone(), entry);
        Ok(())
    }

    async fn append(&self, session_id: &str, events: &[(u64, Body)]) -> Result<(), StoreError> {
        let mut sessions = self.sessions();
        let entry = sessions
            .get_mut(session_id)
            .ok_or_else(|| unknown(session_id))?;
        if entry.meta.finished {
            return Err(StoreError::SessionFinished {
                session_id: session_id.to_owned(),
            });
        }
        entry.last_seq = check_seqs(session_id, entry.last_seq, events)?;
        entry.events.extend(events.iter().cloned());
        Ok(())
    }

    async fn finish(&self, session_id: &str, outcome: &Outcome) -> Result<(), StoreError> {
        let mut sessions = self.sessions();
        let entry = sessions
            .get_mut(session_id)
            .ok_or_else(|| unknown(session_id))?;
        if entry.meta.finished {
            return Err(StoreError::SessionFinished {
                session_id: session_id.to_owned(),
            });
        }
        entry.meta.finished = true;
        entry.meta.outcome = Some(outcome.clone());
        Ok(())
    }

    async fn load(&self, session_id: &str) -> Result<Option<StoredSession>, StoreError> {
        Ok(self.sessions().get(session_id).map(|entry| StoredSession {
            meta: entry.meta.clone(),
            events: entry.events.iter().cloned().collect(),
            last_seq: entry.last_seq,
        }))
    }

    async fn list(&self) -> Result<Vec<SessionMeta>, StoreError> {
        let mut metas: Vec<SessionMeta> = self
            .sessions()
            .values()
            .map(|entry| entry.meta.clone())
            .collect();
        metas.sort_by(|a, b| (a.created_unix_ms, &a.id).cmp(&(b.created_unix_ms, &b.id)));
        Ok(metas)
    }

    async fn trim(&self, session_id: &str, up_to_seq: u64) -> Result<(), StoreError> {
        let mut sessions = self.sessions();
        let entry = sessions
            .get_mut(session_id)
            .ok_or_else(|| unknown(session_id))?;
        while entry
            .events
            .front()
            .is_some_and(|&(seq, _)| seq <= up_to_seq)
        {
            entry.events.pop_front();
        }
        Ok(())
    }

    async fn remove(&self, session_id: &str) -> Result<bool, StoreError> {
        Ok(self.sessions().remove(session_id).is_some())
    }
}
