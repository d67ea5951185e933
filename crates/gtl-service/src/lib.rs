//! The GTL call service: what every transport calls, so none re-implements
//! authentication, routing, session ownership or limits.
//!
//! - [`CallService`] admits connections ([`CallService::admit`]: caps per
//!   server and per peer), authenticates callers once
//!   ([`CallService::authenticate`] → [`Principal`]), and runs the calls:
//!   `start`, `resume`, `cancel`, `input`, `models`. Calls come back as the
//!   engine's [`Call`](gtl_core::Call) handles, which each transport drains
//!   into its own framing.
//! - [`CallEvents`] is the adapter from a call to its events, batch by
//!   batch (or as owned frames), for transports that carry one call per
//!   request or stream.
//! - [`serve_framed`] is the adapter for transports that carry GTL frames
//!   with call ids (stdio, Unix sockets, TCP, WebSocket): handshake,
//!   timeouts, bounded queues, and every frame turned into a service call.
//!
//! # Example
//!
//! ```no_run
//! use std::sync::Arc;
//! use gtl_core::{Engine, EngineConfig, MemoryStore};
//! use gtl_providers::{EchoProvider, Registry};
//! use gtl_service::{Authenticator, CallService, ConnectionLimits, serve_framed};
//! use gtl_proto::Encoding;
//! use gtl_transport::{PeerInfo, stream_connection};
//!
//! # #[tokio::main] async fn main() {
//! let mut registry = Registry::new();
//! registry.add(Arc::new(EchoProvider::new()));
//! let engine = Engine::new(Arc::new(MemoryStore::new()), EngineConfig::default());
//! let service = Arc::new(CallService::new(
//!     engine,
//!     registry,
//!     Authenticator::new(true),
//!     ConnectionLimits::default(),
//! ));
//! // Any framed connection, here one end of an in-memory pipe.
//! let (server_end, _client_end) = tokio::io::duplex(64 * 1024);
//! let (read, write) = tokio::io::split(server_end);
//! let conn = stream_connection(read, write, PeerInfo::new("memory", "test"), Encoding::Json);
//! serve_framed(service, conn).await;
//! # }
//! ```

#![doc(test(no_crate_inject, attr(deny(warnings))))]

mod audit;
mod auth;
mod drain;
mod events;
mod framed;
mod measure;
mod probe;
mod service;
mod trace;

pub use audit::{AuditRecord, AuditSink};
pub use auth::{AuthError, Authenticator, KeyOpener, LocalUsers, Principal, TokenVerifier};
pub use events::{BATCH, CallEvents};
pub use framed::{
    SERVER_NAME, serve as serve_framed, serve_calls, serve_with_bearer as serve_framed_with_bearer,
};
pub use probe::Readiness;
pub use service::{Admission, CallError, CallService, ConnectionLimits, ROUTED, SubjectConnection};
pub use trace::{TRACEPARENT, TraceParent};
