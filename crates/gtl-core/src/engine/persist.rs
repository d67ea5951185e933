//! Write-behind persistence: one writer task commits every dirty session's
//! new events in one store transaction (group commit), so generation and
//! delivery never wait for the disk and many sessions share one sync.

use std::sync::Arc;

use gtl_proto::{Body, ErrorCode};
use tokio::sync::{mpsc, oneshot};

use super::{EngineError, Shared};
use crate::{Outcome, SessionMeta, SessionStore, SessionWrite};

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
    id: String,
    create: Option<SessionMeta>,
    events: Vec<(u64, Body)>,
    outcome: Option<Outcome>,
}

fn take_pending(shared: &Shared) -> Option<Pending> {
    if !shared.persist {
        return None;
    }
    let mut state = shared.lock();
    state.queued = false;
    let from = state.unpersisted_from;
    let last = state.session.last_seq();
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
        id: shared.id().to_owned(),
        create,
        events,
        outcome,
    })
}

async fn commit(store: &Arc<dyn SessionStore>, pending: Vec<Pending>) -> Result<(), EngineError> {
    if pending.is_empty() {
        return Ok(());
    }
    let store = store.clone();
    let results = tokio::task::spawn_blocking(move || {
        let writes: Vec<SessionWrite<'_>> = pending
            .iter()
            .map(|p| {
                let mut write = SessionWrite::new(&p.id);
                write.create = p.create.as_ref();
                write.events = &p.events;
                write.outcome = p.outcome.as_ref();
                write
            })
            .collect();
        let results = store.commit(&writes);
        pending
            .iter()
            .zip(results)
            .map(|(p, r)| (p.id.clone(), r))
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| EngineError::new(ErrorCode::Internal, format!("session writer failed: {e}")))?;
    let mut first_error = None;
    for (id, result) in results {
        if let Err(e) = result {
            tracing::warn!(session = %id, error = %e, "session events not persisted");
            first_error.get_or_insert(EngineError::from(e));
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// The writer task: batches whatever is dirty, commits, repeats.
pub(super) async fn writer(store: Arc<dyn SessionStore>, mut jobs: mpsc::UnboundedReceiver<Job>) {
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
        let pending = batch
            .iter()
            .filter_map(|shared| take_pending(shared))
            .collect();
        let result = commit(&store, pending).await;
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
