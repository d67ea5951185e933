//! OpenAI Chat Completions (`POST /v1/chat/completions`, `GET /v1/models`).
//!
//! - [`parse_request`]: a request body → GTL's [`CompletionRequest`] and
//!   the [`Options`] that shape the answer.
//! - [`completion_response`]: a [`Completion`] → the `chat.completion`
//!   body (or the error it ended with).
//! - [`StreamEncoder`]: GTL events → `chat.completion.chunk` SSE, ending
//!   with `data: [DONE]`.
//! - [`error_response`] and [`request_error`]: errors as
//!   `{"error":{"message","type","param","code"}}` with OpenAI's statuses.
//! - [`models_response`] and [`model_response`]: `GET /v1/models` and
//!   `GET /v1/models/{id}`.
//!
//! `docs/compat.md` lists every field mapped and refused.
//!
//! [`CompletionRequest`]: gtl_proto::CompletionRequest
//! [`Completion`]: gtl_core::Completion

mod error;
mod request;
mod response;
mod stream;

pub use error::{error_response, request_error};
pub use request::parse_request;
pub use response::{completion_response, model_response, models_response};
pub use stream::StreamEncoder;

/// What a request asks of the answer, beyond the [`CompletionRequest`]
/// itself.
///
/// [`CompletionRequest`]: gtl_proto::CompletionRequest
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Options {
    /// `stream`: answer with server-sent events ([`StreamEncoder`]) rather
    /// than one JSON body ([`completion_response`]).
    pub stream: bool,
    /// `stream_options.include_usage`: end the stream with a usage chunk.
    pub include_usage: bool,
    /// `model` exactly as the client sent it (a `provider/model` name or an
    /// alias): what the answer's `model` field should echo.
    pub model: String,
    /// `user`, the client's end-user id. GTL's request has no field for
    /// it; the route may log it or put it in the request's metadata.
    pub user: Option<String>,
}

/// OpenAI's `finish_reason` for GTL's.
///
/// GTL's `stop`, `length`, `tool_calls` and `content_filter` are OpenAI's
/// own; `cancelled`, `end_of_input` and any reason a later GTL adds read
/// as `stop`, the only other value a client expects from a completed
/// answer.
pub(crate) fn finish_reason(gtl: &str) -> &'static str {
    match gtl {
        "length" => "length",
        "tool_calls" => "tool_calls",
        "content_filter" => "content_filter",
        _ => "stop",
    }
}

/// The answer's `id`: `chatcmpl-` and the GTL session id, so a support
/// request quoting it leads to the session.
pub(crate) fn completion_id(session_id: &str) -> String {
    format!("chatcmpl-{session_id}")
}
