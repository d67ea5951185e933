//! Memory budgets shared by many sessions: the server's, and each
//! connection's.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

/// A bound on the memory (in [`event_cost`](crate::event_cost) units) that
/// a group of sessions may hold. Sessions charge it as they log events and
/// release it as events are delivered, acknowledged or evicted; while it is
/// full, the engine pulls nothing more from the providers of the sessions
/// charged to it.
///
/// The engine keeps one for the whole server (`EngineConfig::memory_budget`)
/// and a transport may give each connection one ([`Call::charge_to`]), which
/// holds the events not yet delivered to that connection.
///
/// [`Call::charge_to`]: crate::Call::charge_to
#[derive(Debug)]
pub struct MemoryBudget {
    limit: usize,
    used: AtomicUsize,
    /// Wakes the generations waiting for room.
    room: Notify,
}

impl MemoryBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            used: AtomicUsize::new(0),
            room: Notify::new(),
        }
    }

    /// The bound, in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// What is charged now, in bytes.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Whether more may be charged.
    pub fn has_room(&self) -> bool {
        self.used() < self.limit
    }

    /// Moves the charge from `old` to `new` bytes.
    pub(crate) fn adjust(&self, old: usize, new: usize) {
        if new > old {
            self.used.fetch_add(new - old, Ordering::Relaxed);
        } else if old > new {
            let before = self.used.fetch_sub(old - new, Ordering::Relaxed);
            if before >= self.limit && before - (old - new) < self.limit {
                self.room.notify_waiters();
            }
        }
    }

    /// Resolves once room may have been made; enable it before checking
    /// [`has_room`](Self::has_room) so no release is missed.
    pub(crate) fn room(&self) -> tokio::sync::futures::Notified<'_> {
        self.room.notified()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_and_releases() {
        let budget = MemoryBudget::new(100);
        budget.adjust(0, 60);
        budget.adjust(0, 50);
        assert_eq!(budget.used(), 110);
        assert!(!budget.has_room());
        budget.adjust(50, 10);
        assert_eq!(budget.used(), 70);
        assert!(budget.has_room());
    }

    #[tokio::test]
    async fn a_release_below_the_limit_wakes_waiters() {
        let budget = MemoryBudget::new(100);
        budget.adjust(0, 150);
        let room = budget.room();
        tokio::pin!(room);
        room.as_mut().enable();
        budget.adjust(150, 120);
        assert!(futures::FutureExt::now_or_never(room.as_mut()).is_none());
        budget.adjust(120, 20);
        room.await;
    }
}
