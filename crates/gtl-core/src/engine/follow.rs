//! Following a session another replica drives: the events it writes to the
//! shared store are read as they arrive and logged in this process's copy,
//! under the same seqs, for the client attached here.
//!
//! When no event comes for a while, the follower checks the driver's claim.
//! A lapsed claim means the driver is gone (killed, or cut from the store):
//! the follower takes the claim and ends the generation with the
//! documented `INTERNAL` error, written to the store first, so every
//! replica tells the same end.

use std::sync::Arc;
use std::time::Duration;

use gtl_proto::Body;

use super::driver::END_OF_INPUT;
use super::{Shared, now};
use crate::{Outcome, SessionStore, SessionWrite, StoreError};

/// How long one read waits for new events before the claim is checked
/// (and a client's cancel is passed on).
const WAIT: Duration = Duration::from_millis(500);

/// How long to wait after the store failed before reading again.
const RETRY: Duration = Duration::from_millis(500);

/// Why a followed generation ended here without its driver's own end.
const DRIVER_GONE: &str = "generation was interrupted: the server driving it stopped";

pub(super) async fn follow(shared: Arc<Shared>, store: Arc<dyn SessionStore>) {
    loop {
        let (after, cancel) = {
            let mut state = shared.lock();
            if state.session.is_finished() || state.session.is_expired() || state.stopping {
                return;
            }
            (state.session.last_seq(), state.cancel.take())
        };
        if let Some(reason) = cancel
            && let Err(e) = store.request_cancel(shared.key(), &reason).await
        {
            tracing::warn!(session = %shared.id(), error = %e, "cancel not passed on; retrying");
            shared.lock().cancel.get_or_insert(reason);
        }
        match store.tail(shared.key(), after, WAIT).await {
            Ok(events) if events.is_empty() => match store.claim(shared.key()).await {
                Ok(true) => {
                    if end_here(&shared, store.as_ref(), after).await {
                        return;
                    }
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(session = %shared.id(), error = %e, "session claim not checked");
                    tokio::time::sleep(RETRY).await;
                }
            },
            Ok(events) => log(&shared, events),
            Err(e) => {
                tracing::warn!(session = %shared.id(), error = %e, "session events not read; retrying");
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}

/// Logs events read from the store, skipping any already logged.
pub(super) fn log(shared: &Shared, events: Vec<(u64, Body)>) {
    {
        let mut state = shared.lock();
        for (seq, body) in events {
            let expected = state.session.last_seq() + 1;
            if seq < expected {
                continue;
            }
            if seq > expected {
                // The store dropped events this copy never saw (its cap):
                // what follows cannot be delivered in order.
                let error = state
                    .session
                    .interrupted("events of this generation were lost from the session store");
                let _ = state.session.handle_event(now(), error);
                break;
            }
            if let Body::Done(done) = &body
                && done.finish_reason == END_OF_INPUT
            {
                state.session.set_pipe(false);
            }
            if state.session.handle_event(now(), body).is_err() {
                break;
            }
        }
    }
    shared.to_client.notify_waiters();
}

/// This process holds the claim of a generation whose driver is gone: ends
/// it, in the store and here. `false` when the driver wrote more after all
/// (follow on).
async fn end_here(shared: &Shared, store: &dyn SessionStore, after: u64) -> bool {
    let error = shared.lock().session.interrupted(DRIVER_GONE);
    let mut write = SessionWrite::new(shared.key());
    write.outcome = Outcome::from_terminal(&error);
    write.events = vec![(after + 1, error.clone())];
    match store.commit(vec![write]).await.pop() {
        Some(Ok(())) => {}
        Some(Err(StoreError::SeqOutOfOrder { .. } | StoreError::SessionFinished { .. })) => {
            return false;
        }
        // Gone from the store (expired) or out of reach: end this copy
        // alone, so its client is not left waiting.
        Some(Err(e)) => {
            tracing::warn!(session = %shared.id(), error = %e, "generation ended here only");
        }
        None => {}
    }
    log(shared, vec![(after + 1, error)]);
    true
}
