//! The GTL client: one API for AI calls over any GTL transport, with
//! sessions that survive the network.
//!
//! [`connect`] opens a connection to the first endpoint of an ordered list
//! that answers — `stdio://gtl-server --stdio` (spawns the gateway),
//! `unix:///path`, `tcp://host:port`, or `embedded://` (the gateway
//! in-process: no daemon, no socket) — and returns a [`Client`]. All calls
//! share that one connection, multiplexed by call id:
//!
//! - [`Client::complete`] (chat.complete) returns the aggregated
//!   [`Completion`];
//! - [`Client::stream`] (chat.stream) returns an [`EventStream`] of the
//!   session's events;
//! - [`Client::pipe`] (session.pipe) also returns a [`PipeSender`] for tool
//!   results and follow-ups while the model streams;
//! - [`Client::models`] (models.list) lists providers and models.
//!
//! **Transparent resume.** When the connection breaks before a call's end,
//! the client reconnects — the same endpoint first, then the next ones in
//! the list — and resumes every session in flight after the last event its
//! caller received: the [`EventStream`] goes on without a gap and without a
//! repeat. Attempts are bounded by the [`ReconnectPolicy`]; when they run
//! out, the stream ends with [`ClientError::Disconnected`].
//!
//! Errors are typed: [`ClientError::code`] gives the GTL [`ErrorCode`] of
//! the gateway's errors, and messages say what to do next.
//!
//! This crate does not serve calls or talk to AI providers itself; with the
//! `embedded` feature it links `gtl-server`, which does.
//!
//! # Features
//!
//! - `embedded` (off by default): the `embedded://` endpoint and
//!   `ConnectOpts::embedded`; it links `gtl-server` and every provider, so
//!   an SDK that only talks to a gateway does not pay for them. The `gtl`
//!   command (crate `gtl-cli`) turns it on.
//!
//! # Example
//!
//! ```
//! # #[cfg(feature = "embedded")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), gtl_client::ClientError> {
//! use futures::StreamExt as _;
//! use gtl_client::proto::{Body, CompletionRequest};
//! use gtl_client::{ConnectOpts, connect, user_message};
//!
//! let client = connect(ConnectOpts::embedded()).await?;
//! let request = CompletionRequest {
//!     model: "echo".into(),
//!     messages: vec![user_message("Hello, GTL")],
//!     ..CompletionRequest::default()
//! };
//!
//! // Unary.
//! let completion = client.complete(request.clone()).await?;
//! assert_eq!(completion.text, "Hello, GTL");
//!
//! // Streaming, event by event.
//! let mut events = client.stream(request).await?;
//! let mut text = String::new();
//! while let Some(event) = events.next().await {
//!     if let Body::Token(token) = event?.body {
//!         text.push_str(&token.text);
//!     }
//! }
//! assert_eq!(text, "Hello, GTL");
//! # Ok(()) }
//! # #[cfg(not(feature = "embedded"))]
//! # fn main() {}
//! ```
//!
//! # The `gtl` command
//!
//! `gtl chat [PROMPT]` streams a reply to stdout and a usage line to
//! stderr; `gtl models` lists the models. Endpoints come from `--endpoint`
//! (repeatable, tried in order), else `$GTL_ENDPOINT` (comma-separated),
//! else the gateway's defaults (see [`default_endpoints`]). Exit status: 0
//! success, 1 usage or other error, 2 cannot connect, 3 the call failed
//! with a GTL error.

#![doc(test(no_crate_inject, attr(deny(warnings))))]

mod client;
mod driver;
mod endpoint;
mod error;
mod opts;

pub use client::{Client, Event, EventStream, PipeSender, ResumePoint, connect};
pub use endpoint::{
    ENDPOINT_ENV, default_endpoints, hello_token, local_token, local_token_path, open_frames,
};
pub use error::{ClientError, EndpointFailure, ServerError};
pub use gtl_core::{Completion, RESTARTED};
pub use gtl_proto as proto;
pub use gtl_proto::ErrorCode;
pub use gtl_transport::{Connection, FrameRead, FrameWrite};
/// Whom TLS endpoints trust: the system's roots, a CA file, or one
/// certificate's SHA-256 ([`ConnectOpts::with_trust`]).
#[cfg(feature = "tls")]
pub use gtl_transport_quic::Trust;
pub use opts::{ConnectOpts, ReconnectPolicy};

use gtl_proto::types::Content;
use gtl_proto::{Message, Role};

/// A user message with text content.
pub fn user_message(text: impl Into<String>) -> Message {
    text_message(Role::User, text)
}

/// A tool message answering the tool call `tool_call_id` (for
/// [`PipeSender::send`]).
pub fn tool_message(tool_call_id: impl Into<String>, text: impl Into<String>) -> Message {
    Message {
        tool_call_id: tool_call_id.into(),
        ..text_message(Role::Tool, text)
    }
}

fn text_message(role: Role, text: impl Into<String>) -> Message {
    Message {
        role: role as i32,
        content: Some(Content::Text(text.into())),
        ..Message::default()
    }
}
