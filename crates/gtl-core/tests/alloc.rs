//! The session machine's hot path allocates nothing per token event beyond
//! the event itself: logging, transmitting and acking reuse the log's
//! storage once it has grown.
//!
//! A separate test binary because it installs a counting global allocator.

#![allow(
    unsafe_code,
    reason = "a global allocator is an unsafe trait; it only counts"
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use gtl_core::{Session, SessionConfig};
use gtl_proto::{Body, Token};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: defers every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller upholds `alloc`'s contract; passed through.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above, i.e. from `System`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as for `alloc` and `dealloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn token_events_allocate_nothing_beyond_themselves() {
    let now = Instant::now();
    let mut session = Session::new("s", "owner", "token", SessionConfig::default(), now);
    // Events are built up front: their own allocation is "the event itself".
    let events: Vec<Body> = (0..20_000)
        .map(|i| {
            Body::Token(Token {
                text: format!("t{i} "),
            })
        })
        .collect();
    let mut events = events.into_iter();

    // Warm up with the same pattern: the log grows to its steady-state
    // capacity (64 unacked events) once.
    for body in events.by_ref().take(10_000) {
        let seq = session.handle_event(now, body).unwrap();
        while session.poll_transmit().is_some() {}
        if seq.is_multiple_of(64) {
            session.handle_ack(now, seq);
        }
    }

    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let mut sent = 0;
    for body in events {
        let seq = session.handle_event(now, body).unwrap();
        while let Some(transmit) = session.poll_transmit() {
            sent += transmit.body.encoded_len();
        }
        if seq.is_multiple_of(64) {
            session.handle_ack(now, seq);
        }
    }
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
    assert!(sent > 0);
    assert_eq!(
        allocations, 0,
        "allocations on the hot path for 10,000 token events"
    );
}
