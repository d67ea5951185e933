//! Persistence by group commit: one writer task commits every dirty
//! session's new events in one store transaction, so many sessions (and
//! every event generated while the previous commit synced) share one sync.
//! Generation never waits for the disk; delivery waits for the commit of
//! the events it sends (see [`Session::gate_on_durable`]).
//!
//! [`Session::gate_on_durable`]: crate::Session::gate_on_durable

use std::sync::Arc;

use gtl_proto::{Body, ErrorCode};
use tokio::sync::{mpsc, oneshot};

use super::{EngineError, Shared};
use crate::{Outcome, SessionMeta, SessionStore, SessionWrite, StoreError};

/// Work for the writer.
#[derive(Debug)]
pub(super) enum Job {
    /// A session has events (or a creation, or an outcome) not yet written.
    Dirty(Arc<Shared>),
    /// Write everything of these sessions, then answer.
    Flush(Vec<Arc<Shared>>, oneshot::Sender<Result<(), EngineError>>),
    /// Finish the current batch and stop, releasing the store.
    Stop,
}

/// Queues `shared` for the writer unless it already is.
pub(super) fn mark_dirty(shared: &Arc<Shared>, jobs: &mpsc::UnboundedSender<Job>) {
    if !shared.persist {
        return;
    }
    let newly = {
        let mut state = shared.lock();
        !std::mem::replace(&mut state.queued, true)
    };
    if newly {
        // The writer lives as long as the engine; after that nothing persists.
        let _ = jobs.send(Job::Dirty(shared.clone()));
    }
}

/// What one session has to write, taken under its lock.
struct Pending {
    shared: Arc<Shared>,
    id: String,
    /// The first and last seq of `events` (empty: `from > through`).
    from: u64,
    through: u64,
    create: Option<SessionMeta>,
    events: Vec<(u64, Body)>,
    outcome: Option<Outcome>,
}

impl Pending {
    /// The store write, and what the writer needs after it (the creation
    /// and outcome are kept to be put back should the write fail).
    fn split(mut self) -> (Self, SessionWrite) {
        let mut write = SessionWrite::new(self.id.clone());
        write.create = self.create.clone();
        write.events = std::mem::take(&mut self.events);
        write.outcome = self.outcome.clone();
        (self, write)
    }
}

fn take_pending(shared: &Arc<Shared>) -> Option<Pending> {
    if !shared.persist {
        return None;
    }
    let mut state = shared.lock();
    state.queued = false;
    let from = state.unpersisted_from;
    let last = state.session.last_seq();
    if state.unstored {
        // Gone from the shared store: its client gets the events unstored.
        state.session.handle_durable(last);
        state.unpersisted_from = last + 1;
        drop(state);
        shared.to_client.notify_waiters();
        return None;
    }
    let events: Vec<(u64, Body)> = if last >= from {
        state
            .session
            .retained_events()
            .filter(|(seq, _)| *seq >= from)
            .map(|(seq, body)| (seq, body.clone()))
            .collect()
    } else {
        Vec::new()
    };
    state.unpersisted_from = last + 1;
    let create = state.meta.take();
    let outcome = if state.session.is_finished() {
        state.outcome.take()
    } else {
        None
    };
    if create.is_none() && events.is_empty() && outcome.is_none() {
        return None;
    }
    Some(Pending {
        shared: shared.clone(),
        id: shared.key().to_owned(),
        from,
        through: last,
        create,
        events,
        outcome,
    })
}

/// How long a session whose write failed waits before the writer retries.
const RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

async fn commit(
    store: &Arc<dyn SessionStore>,
    jobs: &mpsc::WeakUnboundedSender<Job>,
    pending: Vec<Pending>,
) -> Result<(), EngineError> {
    if pending.is_empty() {
        return Ok(());
    }
    let (pending, writes): (Vec<_>, Vec<_>) = pending.into_iter().map(Pending::split).unzip();
    let results = store.commit(writes).await;
    let mut first_error = None;
    for (p, result) in pending.into_iter().zip(results) {
        match result {
            Ok(()) => {
                // Stored: the client may have these events now.
                if p.through >= p.from {
                    p.shared.lock().session.handle_durable(p.through);
                    p.shared.to_client.notify_waiters();
                }
            }
            Err(StoreError::SeqOutOfOrder { .. } | StoreError::SessionFinished { .. })
                if store.is_shared() =>
            {
                // Another replica wrote these seqs: it ended the generation
                // when this process's claim lapsed. This copy stops.
                tracing::warn!(session = %p.id, "session taken over by another replica; stopping");
                super::moved_away(&p.shared);
            }
            Err(StoreError::UnknownSession { .. }) if store.is_shared() && p.create.is_none() => {
                // The shared store lost the session (restarted empty, or
                // evicted it): no replica can resume it now, but its client
                // here keeps getting its events.
                tracing::warn!(session = %p.id, "session gone from the shared store; no longer stored");
                {
                    let mut state = p.shared.lock();
                    state.unstored = true;
                    state.session.handle_durable(p.through);
                }
                p.shared.to_client.notify_waiters();
            }
            Err(e) => {
                tracing::warn!(session = %p.id, error = %e, "session events not persisted; retrying");
                if store.is_shared() && p.through >= p.from {
                    // A shared store is out of reach: the connected client
                    // keeps getting its events (they are written when the
                    // store is back), rather than a stalled stream.
                    p.shared.lock().session.handle_durable(p.through);
                    p.shared.to_client.notify_waiters();
                }
                first_error.get_or_insert(EngineError::from(e));
                retry_later(p, jobs);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Puts a failed write back and queues it again: its events stay held back
/// from the client (so no seq it sees can be lost) until the store takes
/// them.
fn retry_later(p: Pending, jobs: &mpsc::WeakUnboundedSender<Job>) {
    {
        let mut state = p.shared.lock();
        state.unpersisted_from = state.unpersisted_from.min(p.from);
        if state.meta.is_none() {
            state.meta = p.create;
        }
        if state.outcome.is_none() {
            state.outcome = p.outcome;
        }
    }
    // A weak handle: the writer must not keep its own queue open.
    let jobs = jobs.clone();
    tokio::spawn(async move {
        tokio::time::sleep(RETRY_AFTER).await;
        if let Some(jobs) = jobs.upgrade() {
            mark_dirty(&p.shared, &jobs);
        }
    });
}

/// The writer task: batches whatever is dirty, commits, repeats.
pub(super) async fn writer(
    store: Arc<dyn SessionStore>,
    mut jobs: mpsc::UnboundedReceiver<Job>,
    requeue: mpsc::WeakUnboundedSender<Job>,
    writable: Arc<std::sync::atomic::AtomicBool>,
) {
    let mut stop = false;
    while let Some(job) = jobs.recv().await {
        let mut batch = Vec::new();
        let mut flushes = Vec::new();
        let mut add = |job: Job, batch: &mut Vec<Arc<Shared>>| match job {
            Job::Dirty(shared) => batch.push(shared),
            Job::Flush(sessions, done) => {
                batch.extend(sessions);
                flushes.push(done);
            }
            Job::Stop => stop = true,
        };
        add(job, &mut batch);
        while let Ok(job) = jobs.try_recv() {
            add(job, &mut batch);
        }
        let pending = batch.iter().filter_map(take_pending).collect();
        let result = commit(&store, &requeue, pending).await;
        writable.store(result.is_ok(), std::sync::atomic::Ordering::Relaxed);
        for done in flushes {
            let _ = done.send(result.clone());
        }
        if stop {
            return;
        }
    }
}

/// Asks the writer to write everything of `sessions` and waits for it.
pub(super) async fn flush(
    jobs: &mpsc::UnboundedSender<Job>,
    sessions: Vec<Arc<Shared>>,
) -> Result<(), EngineError> {
    let (done, answer) = oneshot::channel();
    jobs.send(Job::Flush(sessions, done))
        .map_err(|_| EngineError::new(ErrorCode::Internal, "the session writer has stopped"))?;
    answer
        .await
        .map_err(|_| EngineError::new(ErrorCode::Internal, "the session writer has stopped"))?
}
