//! The OpenAI- and Anthropic-compatible dialects of GTL.
//!
//! Clients built for OpenAI's Chat Completions or Anthropic's Messages API
//! talk to a GTL gateway unchanged: this crate translates their requests
//! into GTL's [`CompletionRequest`] and GTL's events back into their
//! answers, byte for byte as those APIs send them. One module per dialect,
//! [`openai`] and [`anthropic`], each with the same parts:
//!
//! - `parse_request`: a request body → `(CompletionRequest, Options)`, or
//!   a [`DialectError`] naming the refused field;
//! - `completion_response`: a [`Completion`](gtl_core::Completion) → the
//!   unary answer's body;
//! - `StreamEncoder`: GTL events → the dialect's server-sent events,
//!   written into the caller's buffer ([`Flow`] says what to do next);
//! - `error_response` / `request_error`: errors in the dialect's shape and
//!   status ([`ErrorReply`]);
//! - `models_response` / `model_response`: the model list.
//!
//! It does no IO and reads no clock: ids, timestamps and model names are
//! inputs, so the same events always give the same bytes. The HTTP routes
//! (`POST /v1/chat/completions`, `POST /v1/messages`, `GET /v1/models`, …)
//! live with the other HTTP routes and call this crate; `docs/compat.md`
//! lists every field mapped and refused.
//!
//! # Example
//!
//! ```
//! use gtl_compat::{Flow, openai};
//! use gtl_proto::{Body, Done, Token};
//!
//! let body = br#"{"model":"openai/gpt-4o","stream":true,
//!                 "messages":[{"role":"user","content":"Hi"}]}"#;
//! let (request, options) = openai::parse_request(body)?;
//! assert_eq!(request.model, "openai/gpt-4o");
//! assert!(options.stream);
//!
//! // … the route starts the call; then each event becomes SSE bytes:
//! let mut encoder = openai::StreamEncoder::new("s_1", &options.model, 1_700_000_000, false);
//! let mut out = Vec::new();
//! assert_eq!(encoder.push(&Body::Token(Token { text: "Hello".into() }), &mut out), Flow::Continue);
//! let done = Body::Done(Done { finish_reason: "stop".into() });
//! assert_eq!(encoder.push(&done, &mut out), Flow::End);
//! assert!(out.ends_with(b"data: [DONE]\n\n"));
//! # Ok::<(), gtl_compat::DialectError>(())
//! ```
//!
//! [`CompletionRequest`]: gtl_proto::CompletionRequest

#![doc(test(no_crate_inject, attr(deny(warnings))))]

pub mod anthropic;
mod error;
mod image;
mod json;
mod models;
pub mod openai;
mod write;

pub use error::{DialectError, ErrorReply, JsonError};

/// What the route does after feeding an event to a stream encoder.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
#[must_use]
pub enum Flow {
    /// Send what was written (possibly nothing) and feed the next event.
    Continue,
    /// Send what was written and end the response: the stream is complete
    /// (or ended with an in-stream error).
    End,
    /// The call failed before any byte was written: answer with this error
    /// instead of a stream (the status has not been sent yet).
    Reject(ErrorReply),
}
