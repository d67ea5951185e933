//! The retained event log: a ring of events numbered by consecutive `seq`s.

use std::collections::VecDeque;

use gtl_proto::Body;

/// One retained event and its memory cost, computed once when logged.
#[derive(Debug)]
struct Entry {
    body: Body,
    len: usize,
}

/// Below this many slots the ring's capacity is left alone: shrinking a
/// small ring would only churn the allocator.
const SHRINK_MIN_CAPACITY: usize = 1024;

/// What keeping `body` in a session's log costs in memory, in bytes: its slot
/// in the ring plus its heap data.
///
/// The heap part is estimated from the encoded size (every string and
/// nested message is at most that large) plus a fixed allowance for the
/// allocator's per-allocation overhead. The estimate errs high, so budgets
/// built on it hold in real memory.
pub fn event_cost(body: &Body) -> usize {
    /// Allocator bookkeeping and rounding for the event's heap blocks.
    const HEAP_OVERHEAD: usize = 32;
    size_of::<Entry>() + body.encoded_len() + HEAP_OVERHEAD
}

/// The events a session still retains, oldest first.
///
/// Entry `i` has seq `front + i`; the numbering never restarts, so trimming
/// the front only moves `front` forward.
#[derive(Debug)]
pub(super) struct Log {
    entries: VecDeque<Entry>,
    /// Seq of the oldest retained event; when empty, the seq the next event gets.
    front: u64,
    /// Sum of the entries' costs ([`event_cost`]).
    bytes: usize,
}

impl Log {
    /// An empty log whose first event will get `first_seq`.
    pub(super) fn new(first_seq: u64) -> Self {
        Self {
            entries: VecDeque::new(),
            front: first_seq,
            bytes: 0,
        }
    }

    /// Appends an event and returns its seq.
    pub(super) fn push(&mut self, body: Body) -> u64 {
        let len = event_cost(&body);
        self.bytes += len;
        self.entries.push_back(Entry { body, len });
        self.last_seq()
    }

    /// Seq of the oldest retained event, or of the next event when empty.
    pub(super) fn front_seq(&self) -> u64 {
        self.front
    }

    /// Seq of the newest event ever logged (0 before the first).
    pub(super) fn last_seq(&self) -> u64 {
        self.front - 1 + self.entries.len() as u64
    }

    /// Total cost of the retained events ([`event_cost`]).
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    /// The event with this seq and its cost, if retained.
    pub(super) fn get(&self, seq: u64) -> Option<(&Body, usize)> {
        let index = usize::try_from(seq.checked_sub(self.front)?).ok()?;
        self.entries
            .get(index)
            .map(|entry| (&entry.body, entry.len))
    }

    /// Forgets the oldest event and returns its cost.
    pub(super) fn pop_front(&mut self) -> Option<usize> {
        let entry = self.entries.pop_front()?;
        self.front += 1;
        self.bytes -= entry.len;
        Some(entry.len)
    }

    /// Returns the ring's spare capacity to the allocator once it is mostly
    /// empty (after acks or evictions of a long stream), so a finished
    /// session does not hold the peak of its stream for the resume window.
    pub(super) fn shrink_if_sparse(&mut self) {
        let capacity = self.entries.capacity();
        if capacity >= SHRINK_MIN_CAPACITY && self.entries.len() < capacity / 4 {
            self.entries.shrink_to(self.entries.len() * 2);
        }
    }

    /// Cost of the retained events with seq ≤ `seq`.
    pub(super) fn bytes_through(&self, seq: u64) -> usize {
        let count = seq.saturating_add(1).saturating_sub(self.front);
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        self.entries.iter().take(count).map(|entry| entry.len).sum()
    }

    /// Forgets every event and releases the memory; numbering carries on.
    pub(super) fn clear(&mut self) {
        self.front = self.last_seq() + 1;
        self.entries = VecDeque::new();
        self.bytes = 0;
    }

    /// The retained events with their seqs, oldest first.
    pub(super) fn iter(&self) -> impl ExactSizeIterator<Item = (u64, &Body)> + '_ {
        let front = self.front;
        self.entries
            .iter()
            .enumerate()
            .map(move |(i, entry)| (front + i as u64, &entry.body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gtl_proto::Token;

    fn token(text: &str) -> Body {
        Body::Token(Token { text: text.into() })
    }

    #[test]
    fn numbers_from_the_front_and_keeps_numbering_after_trims() {
        let mut log = Log::new(1);
        assert_eq!(log.last_seq(), 0);
        assert_eq!(log.push(token("a")), 1);
        assert_eq!(log.push(token("bb")), 2);
        assert_eq!(
            log.bytes(),
            event_cost(&token("a")) + event_cost(&token("bb"))
        );
        assert_eq!(log.bytes_through(0), 0);
        assert_eq!(log.bytes_through(1), event_cost(&token("a")));
        assert_eq!(log.bytes_through(u64::MAX), log.bytes());
        assert_eq!(log.pop_front(), Some(event_cost(&token("a"))));
        assert_eq!(log.front_seq(), 2);
        assert!(log.get(1).is_none());
        assert_eq!(log.get(2).map(|(b, _)| b), Some(&token("bb")));
        log.clear();
        assert_eq!((log.front_seq(), log.last_seq(), log.bytes()), (3, 2, 0));
        assert_eq!(log.push(token("c")), 3);
        assert_eq!(log.iter().map(|(seq, _)| seq).collect::<Vec<_>>(), [3]);
    }

    #[test]
    fn cost_covers_the_slot_and_the_text() {
        let small = event_cost(&token("a"));
        assert!(small > size_of::<Body>(), "{small}");
        assert!(event_cost(&token(&"x".repeat(1000))) >= small + 999);
    }

    #[test]
    fn a_drained_ring_gives_its_memory_back() {
        let mut log = Log::new(1);
        for _ in 0..10_000 {
            log.push(token("t"));
        }
        while log.entries.len() > 10 {
            log.pop_front();
        }
        log.shrink_if_sparse();
        assert!(log.entries.capacity() < 100, "{}", log.entries.capacity());
        // Small rings are left alone.
        let before = log.entries.capacity();
        log.shrink_if_sparse();
        assert_eq!(log.entries.capacity(), before);
    }
}
