//! GTL sessions.
//!
//! (crate docs to be written)

mod completion;
#[cfg(feature = "runtime")]
mod engine;
mod provider;
mod session;
mod store;

pub use completion::Completion;
pub use provider::{EventStream, Provider, ProviderError, complete};
#[cfg(feature = "redb")]
pub use store::RedbStore;
pub use store::{
    BackendError, MemoryStore, Outcome, SessionMeta, SessionStore, StoreError, StoredSession,
};

#[cfg(feature = "runtime")]
pub use engine::{Call, Drained, Engine, EngineConfig, EngineError, StartCall};
pub use session::{
    AttachId, Command, ResumeError, Session, SessionConfig, SessionError, State, Transmit,
};
