//! The stream encoders allocate nothing per event: every byte goes
//! straight into the caller's buffer.
//!
//! A separate test binary because it installs a counting global allocator.

#![allow(
    unsafe_code,
    reason = "a global allocator is an unsafe trait; it only counts"
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use gtl_compat::{Flow, anthropic, openai};
use gtl_proto::{Body, Done, FunctionCall, Token, ToolCall, Usage};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Whether this thread's allocations are counted: only the test's own,
    /// never the test harness's, which runs beside it.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    // A const-initialised thread-local without a destructor allocates
    // nothing when read; `try_with` fails quietly during thread teardown.
    if COUNTING.try_with(Cell::get).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

/// The allocations `f` makes on this thread.
fn allocations(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.load(Ordering::Relaxed) - before
}

// SAFETY: defers every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller upholds `alloc`'s contract; passed through.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above, i.e. from `System`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: as for `alloc` and `dealloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// A call's events: many tokens with escapes, tool calls (one with an id
/// Anthropic's alphabet leaves alone), usage, done.
fn events() -> Vec<Body> {
    let mut events: Vec<Body> = (0..5_000)
        .map(|i| {
            Body::Token(Token {
                text: format!("tok\"{i}\"\n "),
            })
        })
        .collect();
    for i in 0..10 {
        events.push(Body::ToolCall(ToolCall {
            id: format!("call_{i}"),
            function: Some(FunctionCall {
                name: "lookup".into(),
                arguments: format!("{{\"q\":\"{i}\"}}"),
            }),
        }));
    }
    events.push(Body::Usage(Usage {
        tokens_in: 10,
        tokens_out: 5_000,
        cost: 0.0,
        cached_tokens: 2,
    }));
    events.push(Body::Done(Done {
        finish_reason: "tool_calls".into(),
    }));
    events
}

#[test]
fn encoding_a_stream_allocates_nothing_per_event() {
    // The counter counts (the test would pass vacuously otherwise).
    assert_eq!(allocations(|| drop(std::hint::black_box(vec![1_u8]))), 1);
    let events = events();
    let mut out = Vec::with_capacity(4 << 20);

    let mut encoder = openai::StreamEncoder::new("s_1", "openai/gpt-4o", 1, true);
    let openai = allocations(|| {
        for body in &events {
            let flow = encoder.push(body, &mut out);
            assert!(matches!(flow, Flow::Continue | Flow::End));
        }
    });
    assert!(out.ends_with(b"data: [DONE]\n\n"));

    out.clear();
    let mut encoder = anthropic::StreamEncoder::new("s_1", "openai/gpt-4o");
    let anthropic = allocations(|| {
        for body in &events {
            let flow = encoder.push(body, &mut out);
            assert!(matches!(flow, Flow::Continue | Flow::End));
        }
    });
    assert!(out.ends_with(b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"));

    assert_eq!((openai, anthropic), (0, 0), "allocations while encoding");
}
