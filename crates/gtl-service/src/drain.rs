//! Draining: before a shutdown or restart the service takes no new calls,
//! tells every connection so (its transport sends `status {state:
//! "draining"}`), and lets running calls finish; the server waits for
//! [`Drain::idle`] up to its drain deadline.

use std::future::Future;

use tokio::sync::{Notify, watch};

/// The drain flag and what a drain waits for.
#[derive(Debug)]
pub(crate) struct Drain {
    started: watch::Sender<bool>,
    /// Signalled whenever a call or a connection ends.
    ended: Notify,
}

impl Drain {
    pub(crate) fn new() -> Self {
        Self {
            started: watch::Sender::new(false),
            ended: Notify::new(),
        }
    }

    /// Starts draining; false when it had started already.
    pub(crate) fn start(&self) -> bool {
        !self.started.send_replace(true)
    }

    pub(crate) fn is_started(&self) -> bool {
        *self.started.borrow()
    }

    /// Resolves once draining starts (at once if it has).
    pub(crate) fn started(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut started = self.started.subscribe();
        async move {
            // An error means the service is gone: nothing will drain.
            if started.wait_for(|started| *started).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// A call or a connection ended.
    pub(crate) fn ended(&self) {
        self.ended.notify_waiters();
    }

    /// Resolves once `busy` says nothing is left, checking again each time
    /// something ends.
    pub(crate) async fn idle(&self, busy: impl Fn() -> bool) {
        loop {
            let ended = self.ended.notified();
            tokio::pin!(ended);
            // Registered before checking, so an end in between is not missed.
            ended.as_mut().enable();
            if !busy() {
                return;
            }
            ended.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn started_resolves_for_waiters_before_and_after_the_start() {
        let drain = Drain::new();
        let before = tokio::spawn(drain.started());
        assert!(!drain.is_started());
        assert!(drain.start());
        assert!(!drain.start(), "a second start changes nothing");
        before.await.unwrap();
        drain.started().await;
        assert!(drain.is_started());
    }

    #[tokio::test]
    async fn idle_waits_until_the_last_end() {
        let drain = Arc::new(Drain::new());
        let running = Arc::new(AtomicUsize::new(2));
        let waiter = {
            let (drain, running) = (drain.clone(), running.clone());
            tokio::spawn(async move { drain.idle(|| running.load(Ordering::SeqCst) > 0).await })
        };
        for _ in 0..2 {
            tokio::task::yield_now().await;
            assert!(!waiter.is_finished());
            running.fetch_sub(1, Ordering::SeqCst);
            drain.ended();
        }
        waiter.await.unwrap();
    }
}
