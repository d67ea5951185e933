//! Anthropic Messages (`POST /v1/messages`, `POST /v1/messages/count_tokens`,
//! `GET /v1/models` with `anthropic-version`).
//!
//! - [`parse_request`]: a request body → GTL's [`CompletionRequest`] and
//!   the [`Options`] that shape the answer; [`parse_count_tokens_request`]
//!   for the token-counting route.
//! - [`completion_response`]: a [`Completion`] → the `message` body (or
//!   the error it ended with); [`count_tokens_response`].
//! - [`StreamEncoder`]: GTL events → the named events `message_start`,
//!   `content_block_start`, `ping`, `content_block_delta`,
//!   `content_block_stop`, `message_delta`, `message_stop`, and `error`.
//! - [`error_response`] and [`request_error`]: errors as
//!   `{"type":"error","error":{"type","message"}}` with Anthropic's
//!   statuses (529 for overloaded); [`count_tokens_unsupported`].
//! - [`models_response`] and [`model_response`]: `GET /v1/models` and
//!   `GET /v1/models/{id}` in Anthropic's shape.
//!
//! `docs/compat.md` lists every field mapped and refused.
//!
//! [`CompletionRequest`]: gtl_proto::CompletionRequest
//! [`Completion`]: gtl_core::Completion

use std::borrow::Cow;

use gtl_proto::Usage;
use serde::Serialize;

mod error;
mod request;
mod response;
mod stream;

pub use error::{count_tokens_unsupported, error_response, request_error};
pub use request::{parse_count_tokens_request, parse_request};
pub use response::{completion_response, count_tokens_response, model_response, models_response};
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
    /// `model` exactly as the client sent it (a `provider/model` name or an
    /// alias): what the answer's `model` field should echo.
    pub model: String,
    /// `metadata.user_id`, the client's end-user id. GTL's request has no
    /// field for it; the route may log it or put it in the metadata.
    pub user: Option<String>,
}

/// Anthropic's `stop_reason` for GTL's finish reason.
///
/// `stop` → `end_turn` (GTL does not say whether a stop sequence matched,
/// so `stop_sequence` is always `null`), `length` → `max_tokens`,
/// `tool_calls` → `tool_use`, `content_filter` → `refusal`; `cancelled`,
/// `end_of_input` and reasons a later GTL adds → `end_turn`.
pub(crate) fn stop_reason(gtl: &str) -> &'static str {
    match gtl {
        "length" => "max_tokens",
        "tool_calls" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}

/// The message id: `msg_` and the GTL session id.
pub(crate) fn message_id(session_id: &str) -> String {
    format!("msg_{session_id}")
}

/// A tool call id in the form Anthropic's clients accept
/// (`^[a-zA-Z0-9_-]+$`): other characters (ids made by other providers)
/// become `_`, the rule GTL's Anthropic adapter applies, so a `tool_use`
/// and the `tool_result` that answers it still match.
pub(crate) fn tool_id(id: &str) -> Cow<'_, str> {
    let valid = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if id.is_empty() {
        Cow::Borrowed("_")
    } else if id.chars().all(valid) {
        Cow::Borrowed(id)
    } else {
        Cow::Owned(id.chars().map(|c| if valid(c) { c } else { '_' }).collect())
    }
}

/// Anthropic's `usage` of a message (`message_start` and unary answers).
///
/// Anthropic counts input in three parts whose sum is the prompt; GTL has
/// the sum (`tokens_in`) and the cache reads (`cached_tokens`). So
/// `input_tokens` is `tokens_in - cached_tokens`,
/// `cache_read_input_tokens` is `cached_tokens`, and cache writes, which
/// GTL does not count apart, are part of `input_tokens`: the three still
/// add up to the prompt. Fields GTL has no value for are `null`.
#[derive(Debug, Serialize)]
pub(crate) struct MessageUsage {
    input_tokens: u64,
    cache_creation_input_tokens: u64,
    cache_read_input_tokens: u64,
    cache_creation: Option<()>,
    output_tokens: u64,
    server_tool_use: Option<()>,
    service_tier: Option<()>,
    inference_geo: Option<()>,
}

impl From<&Usage> for MessageUsage {
    fn from(usage: &Usage) -> Self {
        Self {
            input_tokens: usage.tokens_in.saturating_sub(usage.cached_tokens),
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: usage.cached_tokens,
            cache_creation: None,
            output_tokens: usage.tokens_out,
            server_tool_use: None,
            service_tier: None,
            inference_geo: None,
        }
    }
}

/// The `usage` of `message_delta`: cumulative, the same split as
/// [`MessageUsage`].
#[derive(Debug, Serialize)]
pub(crate) struct DeltaUsage {
    input_tokens: u64,
    cache_creation_input_tokens: u64,
    cache_read_input_tokens: u64,
    output_tokens: u64,
    server_tool_use: Option<()>,
}

impl From<&Usage> for DeltaUsage {
    fn from(usage: &Usage) -> Self {
        Self {
            input_tokens: usage.tokens_in.saturating_sub(usage.cached_tokens),
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: usage.cached_tokens,
            output_tokens: usage.tokens_out,
            server_tool_use: None,
        }
    }
}

/// A `tool_use` block's `caller`: the model itself, as for every client
/// tool.
#[derive(Debug, Serialize)]
pub(crate) struct Caller {
    #[serde(rename = "type")]
    kind: &'static str,
}

pub(crate) const DIRECT: Caller = Caller { kind: "direct" };
