//! With a shared store: this process's claims on the sessions it drives,
//! renewed well within their lease, so other replicas never mistake it for
//! dead; the cancels other replicas passed on, carried out; and whether the
//! store is reachable, for refusing new calls at once while it is not.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use super::{Inner, Shared, call};

pub(super) async fn renew(inner: Weak<Inner>) {
    let Some(period) = inner.upgrade().map(|inner| inner.store.renew_every()) else {
        return;
    };
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        let sessions: Vec<Arc<Shared>> = inner.lock_sessions().values().cloned().collect();
        let driven: Vec<String> = sessions
            .iter()
            .filter(|shared| shared.persist)
            .filter(|shared| {
                let state = shared.lock();
                !state.moved && !state.unstored && !state.session.is_finished()
            })
            .map(|shared| shared.key().to_owned())
            .collect();
        drop(sessions);
        if driven.is_empty() {
            // Nothing to renew to tell whether the store is there.
            let reachable = inner.store.ping().await.is_ok();
            inner.writable.store(reachable, Ordering::Relaxed);
            continue;
        }
        match inner.store.renew(&driven).await {
            Ok(cancels) => {
                inner.writable.store(true, Ordering::Relaxed);
                for (key, reason) in cancels {
                    let shared = inner.lock_sessions().get(&key).cloned();
                    if let Some(shared) = shared {
                        call::cancel(&shared, &reason);
                    }
                }
            }
            Err(e) => {
                inner.writable.store(false, Ordering::Relaxed);
                tracing::warn!(error = %e, sessions = driven.len(), "session claims not renewed");
            }
        }
    }
}
