//! The retained event log: a ring of events numbered by consecutive `seq`s.

use std::collections::VecDeque;

use gtl_proto::Body;

/// One retained event and its protobuf size, computed once when logged.
#[derive(Debug)]
struct Entry {
    body: Body,
    len: usize,
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
    /// Sum of the entries' encoded lengths.
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
        let len = body.encoded_len();
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

    /// Total encoded bytes of the retained events.
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    /// The event with this seq and its encoded length, if retained.
    pub(super) fn get(&self, seq: u64) -> Option<(&Body, usize)> {
        let index = usize::try_from(seq.checked_sub(self.front)?).ok()?;
        self.entries
            .get(index)
            .map(|entry| (&entry.body, entry.len))
    }

    /// Forgets the oldest event and returns its encoded length.
    pub(super) fn pop_front(&mut self) -> Option<usize> {
        let entry = self.entries.pop_front()?;
        self.front += 1;
        self.bytes -= entry.len;
        Some(entry.len)
    }

    /// Encoded bytes of the retained events with seq ≤ `seq`.
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
            token("a").encoded_len() + token("bb").encoded_len()
        );
        assert_eq!(log.bytes_through(0), 0);
        assert_eq!(log.bytes_through(1), token("a").encoded_len());
        assert_eq!(log.bytes_through(u64::MAX), log.bytes());
        assert_eq!(log.pop_front(), Some(token("a").encoded_len()));
        assert_eq!(log.front_seq(), 2);
        assert!(log.get(1).is_none());
        assert_eq!(log.get(2).map(|(b, _)| b), Some(&token("bb")));
        log.clear();
        assert_eq!((log.front_seq(), log.last_seq(), log.bytes()), (3, 2, 0));
        assert_eq!(log.push(token("c")), 3);
        assert_eq!(log.iter().map(|(seq, _)| seq).collect::<Vec<_>>(), [3]);
    }
}
