//! GTL sessions: what makes a stream survive the network.
//!
//! - [`Session`] is the session machine: it numbers a call's events (`seq`,
//!   strictly +1), keeps them for resume within a window bounded in time and
//!   bytes, replays exactly the events after a client's `after_seq`, tells
//!   cancel from disconnect, checks the owner, and applies backpressure. It
//!   does no IO and reads no clock: inputs are `handle_*(now, …)`, outputs
//!   are `poll_*()`, as in `quinn-proto`, so it is tested deterministically.
//! - [`Provider`] is what an AI backend implements: a stream of normalised
//!   GTL events. [`complete`] derives the unary answer from that stream
//!   ([`Completion`] aggregates), so both paths share one code path.
//! - [`SessionStore`] persists sessions: [`MemoryStore`], and [`RedbStore`]
//!   (feature `redb`) whose reopened file replays its events.
//! - [`Engine`] (feature `runtime`, tokio) drives provider streams into
//!   sessions, persists them, and hands clients a [`Call`] to drain. With
//!   a [shared](SessionStore::is_shared) store it resumes and follows
//!   sessions other replicas drive.
//! - [`counters`] (feature `runtime`): limits' counters, added up across
//!   replicas through a [`SharedCounters`](counters::SharedCounters) store.
//!
//! # Features
//!
//! - `redb`: the redb-backed store.
//! - `runtime`: the tokio engine. Without it the crate has no runtime
//!   dependency at all.
//!
//! # Example
//!
//! ```
//! use std::time::Instant;
//! use gtl_core::{Session, SessionConfig};
//! use gtl_proto::{Body, Done, Token};
//!
//! let now = Instant::now();
//! let mut session = Session::new("s_1", "alice", "secret", SessionConfig::default(), now);
//! let first = session.attached().unwrap();
//! session.handle_event(now, Body::Token(Token { text: "Hel".into() })).unwrap();
//! session.handle_event(now, Body::Token(Token { text: "lo".into() })).unwrap();
//! assert_eq!(session.poll_transmit().unwrap().seq, 1);
//!
//! // The connection drops; the generation goes on.
//! session.handle_disconnect(now, first);
//! session.handle_event(now, Body::Done(Done { finish_reason: "stop".into() })).unwrap();
//!
//! // The client comes back, over any transport, with the last seq it saw.
//! session.handle_resume(now, "alice", "secret", 1).unwrap();
//! let replayed: Vec<u64> = std::iter::from_fn(|| session.poll_transmit().map(|t| t.seq)).collect();
//! assert_eq!(replayed, [2, 3]);
//! ```

#![doc(test(no_crate_inject, attr(deny(warnings))))]

mod completion;
#[cfg(feature = "runtime")]
pub mod counters;
#[cfg(feature = "runtime")]
mod engine;
mod provider;
mod session;
mod store;
mod watch;

pub use completion::{Completion, RESTARTED};
pub use provider::{EventStream, Provider, ProviderError, Wrapper, complete};
#[cfg(feature = "redb")]
pub use store::RedbStore;
#[cfg(feature = "conformance")]
pub use store::conformance as store_conformance;
pub use store::{
    BackendError, MemoryStore, Outcome, SessionMeta, SessionStore, SessionWrite, StoreError,
    StoredSession, decode_event, encode_event,
};
pub use watch::{EventWatch, watch_events};

#[cfg(feature = "runtime")]
pub use engine::{
    Call, Drained, Engine, EngineConfig, EngineError, FirstOutput, MemoryBudget, StartCall,
};
pub use session::{
    AttachId, Command, ResumeError, Session, SessionConfig, SessionError, State, Transmit,
    event_cost,
};
