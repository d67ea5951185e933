//! Counters that several replicas add to together: requests per minute,
//! tokens and spend per period, so N replicas enforce one limit, not N.
//!
//! Checking a limit must not wait for the network, so each process keeps
//! its own view: what the shared store last said the total was, plus what
//! this process added since. A sync task sends the additions and reads the
//! totals back every [`SYNC_EVERY`]. A burst spread over replicas may
//! overshoot a limit by what arrives between two syncs; it never
//! undercounts. Without a shared store the counters are this process's.
//!
//! Each counter lives until its period ends (`expires_unix`), in memory and
//! in the store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use crate::StoreError;

/// How often additions are sent to the shared store and totals read back.
pub const SYNC_EVERY: Duration = Duration::from_millis(100);

/// Where replicas add up their counters (Redis, in `gtl-store-redis`).
#[async_trait::async_trait]
pub trait SharedCounters: std::fmt::Debug + Send + Sync {
    /// Adds each `delta` to its counter (created at 0 when missing, kept
    /// until `expires_unix`) and returns the totals, in order.
    async fn add(&self, deltas: &[CounterDelta]) -> Result<Vec<f64>, StoreError>;
}

/// One addition sent to [`SharedCounters::add`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CounterDelta {
    /// The counter.
    pub key: String,
    /// What to add (0 to read the total).
    pub delta: f64,
    /// When the counter's period ends, in seconds since the Unix epoch.
    pub expires_unix: u64,
}

impl CounterDelta {
    /// Adds `delta` to `key`, kept until `expires_unix`.
    pub fn new(key: impl Into<String>, delta: f64, expires_unix: u64) -> Self {
        Self {
            key: key.into(),
            delta,
            expires_unix,
        }
    }
}

/// Counters, this process's view of them (see the module docs).
#[derive(Debug, Default)]
pub struct Counters {
    entries: Mutex<HashMap<String, Entry>>,
    shared: Option<Arc<dyn SharedCounters>>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// The total across replicas as of the last sync (this process's synced
    /// additions included).
    synced: f64,
    /// Added here since the last sync.
    pending: f64,
    expires_unix: u64,
    /// When it was last read (Unix seconds): totals of counters read
    /// lately are fetched at each sync.
    read_unix: u64,
    /// The shared total has been read at least once.
    known: bool,
}

impl Counters {
    /// Counters of this process alone.
    pub fn local() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Counters added up with other replicas through `shared`. Call inside
    /// a tokio runtime: it starts the sync task, which stops when the
    /// counters are dropped.
    pub fn shared(shared: Arc<dyn SharedCounters>) -> Arc<Self> {
        let counters = Arc::new(Self {
            entries: Mutex::default(),
            shared: Some(shared),
        });
        tokio::spawn(sync(Arc::downgrade(&counters)));
        counters
    }

    /// Whether other replicas add to these counters.
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The counter's total as this process knows it (0 when unknown or
    /// past its period).
    pub fn get(&self, key: &str, now_unix: u64) -> f64 {
        let mut entries = self.lock();
        match entries.get_mut(key) {
            Some(entry) if entry.expires_unix > now_unix => {
                entry.read_unix = now_unix;
                entry.synced + entry.pending
            }
            Some(_) => 0.0,
            None => {
                if self.shared.is_some() {
                    // Learn the other replicas' total at the next sync.
                    entries.insert(key.to_owned(), Entry::new(now_unix + 60, now_unix));
                }
                0.0
            }
        }
    }

    /// Makes sure [`get`](Self::get) answers with the shared total of a
    /// counter this process has not seen in its period yet (one round trip
    /// to the store, once per counter and period): without it, a replica's
    /// first look would read 0 until its next sync. A store out of reach is
    /// logged and skipped.
    pub async fn warm(&self, key: &str, expires_unix: u64, now_unix: u64) {
        let Some(shared) = &self.shared else { return };
        let known = self
            .lock()
            .get(key)
            .is_some_and(|e| e.known && e.expires_unix > now_unix);
        if known {
            return;
        }
        match shared
            .add(&[CounterDelta::new(key, 0.0, expires_unix)])
            .await
        {
            Ok(totals) => {
                let total = totals.first().copied().unwrap_or(0.0);
                let mut entries = self.lock();
                let entry = entries
                    .entry(key.to_owned())
                    .or_insert_with(|| Entry::new(expires_unix, now_unix));
                if entry.expires_unix <= now_unix {
                    *entry = Entry::new(expires_unix, now_unix);
                }
                // Additions made here meanwhile stay pending (not in `total`).
                entry.synced = entry.synced.max(total);
                entry.known = true;
            }
            Err(e) => tracing::warn!(error = %e, "shared counter not read"),
        }
    }

    /// Adds `amount` to the counter, which lives until `expires_unix`.
    pub fn add(&self, key: &str, amount: f64, expires_unix: u64, now_unix: u64) {
        let mut entries = self.lock();
        let entry = entries
            .entry(key.to_owned())
            .or_insert_with(|| Entry::new(expires_unix, now_unix));
        if entry.expires_unix <= now_unix {
            *entry = Entry::new(expires_unix, now_unix);
        }
        entry.expires_unix = entry.expires_unix.max(expires_unix);
        entry.pending += amount;
        if self.shared.is_none() {
            // Nothing to sync: fold in at once, and forget ended periods
            // now and then.
            entry.synced += std::mem::take(&mut entry.pending);
            if entries.len() > 4096 {
                entries.retain(|_, e| e.expires_unix > now_unix);
            }
        }
    }
}

impl Entry {
    fn new(expires_unix: u64, now_unix: u64) -> Self {
        Self {
            synced: 0.0,
            pending: 0.0,
            expires_unix,
            read_unix: now_unix,
            known: false,
        }
    }
}

/// How long after its last read a counter's total is still fetched.
const READ_LATELY_SECS: u64 = 5;

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

async fn sync(counters: Weak<Counters>) {
    let mut tick = tokio::time::interval(SYNC_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(counters) = counters.upgrade() else {
            return;
        };
        let Some(shared) = counters.shared.clone() else {
            return;
        };
        let now = unix_now();
        let deltas: Vec<CounterDelta> = {
            let mut entries = counters.lock();
            entries.retain(|_, e| e.expires_unix > now);
            entries
                .iter_mut()
                .filter(|(_, e)| e.pending != 0.0 || now <= e.read_unix + READ_LATELY_SECS)
                .map(|(key, e)| CounterDelta {
                    key: key.clone(),
                    delta: e.pending,
                    expires_unix: e.expires_unix,
                })
                .collect()
        };
        if deltas.is_empty() {
            continue;
        }
        match shared.add(&deltas).await {
            Ok(totals) => {
                let mut entries = counters.lock();
                for (sent, total) in deltas.iter().zip(totals) {
                    if let Some(entry) = entries.get_mut(&sent.key) {
                        entry.pending -= sent.delta;
                        entry.synced = total;
                        entry.known = true;
                    }
                }
            }
            // Kept pending: sent with the next sync. Meanwhile each
            // replica counts on its own.
            Err(e) => tracing::warn!(error = %e, "shared counters not synced"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store shared by two `Counters` in this test.
    #[derive(Debug, Default)]
    struct InProcess(Mutex<HashMap<String, f64>>);

    #[async_trait::async_trait]
    impl SharedCounters for InProcess {
        async fn add(&self, deltas: &[CounterDelta]) -> Result<Vec<f64>, StoreError> {
            let mut all = self.0.lock().unwrap();
            Ok(deltas
                .iter()
                .map(|d| {
                    let total = all.entry(d.key.clone()).or_default();
                    *total += d.delta;
                    *total
                })
                .collect())
        }
    }

    #[test]
    fn local_counters_add_up_and_end_with_their_period() {
        let counters = Counters::local();
        counters.add("k", 2.0, 100, 10);
        counters.add("k", 3.0, 100, 20);
        assert_eq!(counters.get("k", 30), 5.0);
        assert_eq!(counters.get("k", 100), 0.0);
        counters.add("k", 1.0, 200, 150);
        assert_eq!(counters.get("k", 160), 1.0);
        assert_eq!(counters.get("other", 160), 0.0);
    }

    #[tokio::test(start_paused = true)]
    async fn two_replicas_see_each_others_additions_after_a_sync() {
        let store = Arc::new(InProcess::default());
        let a = Counters::shared(store.clone());
        let b = Counters::shared(store.clone());
        let now = unix_now();
        a.add("calls", 3.0, now + 60, now);
        assert_eq!(b.get("calls", now), 0.0);
        tokio::time::sleep(SYNC_EVERY * 3).await;
        assert_eq!(b.get("calls", now), 3.0);
        b.add("calls", 2.0, now + 60, now);
        // B's own addition counts at once; A learns it at the next sync.
        assert_eq!(b.get("calls", now), 5.0);
        tokio::time::sleep(SYNC_EVERY * 3).await;
        assert_eq!(a.get("calls", now), 5.0);
        assert_eq!(store.0.lock().unwrap()["calls"], 5.0);
    }
}
