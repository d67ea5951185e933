//! Unary answers: the `message` body, token counts and the model list.

use std::borrow::Cow;
use std::time::Duration;

use gtl_core::Completion;
use gtl_proto::{ErrorCode, ProviderInfo, Usage};
use serde::Serialize;
use serde_json::value::RawValue;

use super::{Caller, DIRECT, MessageUsage, error_response, message_id, stop_reason, tool_id};
use crate::{ErrorReply, models, write};

/// A `message` object: the unary answer, and (with no content yet) the
/// one `message_start` carries.
#[derive(Debug, Serialize)]
pub(crate) struct WireMessage<'a> {
    pub(crate) id: &'a str,
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    pub(crate) role: &'static str,
    pub(crate) content: Vec<Block<'a>>,
    pub(crate) model: &'a str,
    pub(crate) stop_reason: Option<&'static str>,
    pub(crate) stop_sequence: Option<()>,
    pub(crate) stop_details: Option<()>,
    pub(crate) usage: MessageUsage,
    pub(crate) container: Option<()>,
}

/// A content block of an answer.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Block<'a> {
    Text {
        text: &'a str,
        citations: Option<()>,
    },
    ToolUse {
        id: Cow<'a, str>,
        name: &'a str,
        input: &'a RawValue,
        caller: Caller,
    },
}

/// The `message` body of a finished call, or the error answer when the
/// call ended with an error (or without an end).
///
/// `session_id` becomes the id (`msg_<session_id>`); `model` is what the
/// answer's `model` says (normally [`Options::model`](super::Options)).
/// The content is the text as one block (when there is text), then a
/// `tool_use` block per tool call: GTL's aggregate does not keep text and
/// calls interleaved. A call whose arguments are not a JSON object cannot
/// be a `tool_use` block and fails the answer with `api_error`. `patch`
/// events have no Messages form and are left out.
pub fn completion_response(
    completion: &Completion,
    session_id: &str,
    model: &str,
) -> Result<Vec<u8>, ErrorReply> {
    if let Some(error) = &completion.error {
        let retry_after =
            (error.retry_after_ms > 0).then(|| Duration::from_millis(error.retry_after_ms));
        return Err(error_response(error.code(), &error.message, retry_after));
    }
    if !completion.finished {
        return Err(error_response(
            ErrorCode::ProviderError,
            "the provider's answer ended without finishing",
            None,
        ));
    }
    let mut content = Vec::with_capacity(1 + completion.tool_calls.len());
    if !completion.text.is_empty() {
        content.push(Block::Text {
            text: &completion.text,
            citations: None,
        });
    }
    for call in &completion.tool_calls {
        let (name, arguments) = call
            .function
            .as_ref()
            .map_or(("", ""), |f| (f.name.as_str(), f.arguments.as_str()));
        let input = tool_input(arguments).ok_or_else(|| {
            error_response(
                ErrorCode::ProviderError,
                &format!(
                    "the arguments of tool call `{}` are not a JSON object",
                    call.id
                ),
                None,
            )
        })?;
        content.push(Block::ToolUse {
            id: tool_id(&call.id),
            name,
            input,
            caller: DIRECT,
        });
    }
    let id = message_id(session_id);
    let usage = completion
        .usage
        .as_ref()
        .map_or_else(|| MessageUsage::from(&Usage::default()), MessageUsage::from);
    let body = WireMessage {
        id: &id,
        kind: "message",
        role: "assistant",
        content,
        model,
        stop_reason: Some(stop_reason(&completion.finish_reason)),
        stop_sequence: None,
        stop_details: None,
        usage,
        container: None,
    };
    Ok(write::json_body(&body))
}

/// Tool arguments as a `tool_use` block's `input`, byte for byte: an empty
/// string is `{}`, anything but a JSON object is `None`.
fn tool_input(arguments: &str) -> Option<&RawValue> {
    let arguments = arguments.trim();
    if arguments.is_empty() {
        return serde_json::from_str("{}").ok();
    }
    let raw: &RawValue = serde_json::from_str(arguments).ok()?;
    raw.get().starts_with('{').then_some(raw)
}

/// The `POST /v1/messages/count_tokens` body: `{"input_tokens": n}`.
pub fn count_tokens_response(input_tokens: u64) -> Vec<u8> {
    #[derive(Serialize)]
    struct Count {
        input_tokens: u64,
    }
    write::json_body(&Count { input_tokens })
}

#[derive(Debug, Serialize)]
struct ModelList<'a> {
    data: Vec<Model<'a>>,
    has_more: bool,
    first_id: Option<&'a str>,
    last_id: Option<&'a str>,
}

#[derive(Debug, Serialize)]
struct Model<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
    display_name: &'a str,
    created_at: &'a str,
    capabilities: Option<()>,
    max_input_tokens: Option<u32>,
    max_tokens: Option<u32>,
}

fn model<'a>(entry: &'a models::Entry<'a>, created_at: &'a str) -> Model<'a> {
    let info = entry.info;
    Model {
        kind: "model",
        id: &entry.id,
        display_name: &entry.id,
        created_at,
        capabilities: None,
        max_input_tokens: info.map(|i| i.context_window).filter(|&n| n > 0),
        max_tokens: info.map(|i| i.max_tokens).filter(|&n| n > 0),
    }
}

/// The `GET /v1/models` body in Anthropic's shape (for requests with an
/// `anthropic-version` header): every routable name, each provider's
/// models as `provider/model` then each alias (`(alias,
/// "provider/model")`), in one page. `created` (Unix seconds) becomes
/// every entry's `created_at`: GTL does not know release dates.
pub fn models_response(
    providers: &[ProviderInfo],
    aliases: &[(&str, &str)],
    created: u64,
) -> Vec<u8> {
    let entries = models::entries(providers, aliases);
    let created_at = write::rfc3339(created);
    let data: Vec<Model<'_>> = entries
        .iter()
        .map(|entry| model(entry, &created_at))
        .collect();
    let body = ModelList {
        first_id: data.first().map(|m| m.id),
        last_id: data.last().map(|m| m.id),
        has_more: false,
        data,
    };
    write::json_body(&body)
}

/// The `GET /v1/models/{id}` body in Anthropic's shape, or its 404.
pub fn model_response(
    providers: &[ProviderInfo],
    aliases: &[(&str, &str)],
    id: &str,
    created: u64,
) -> Result<Vec<u8>, ErrorReply> {
    let entry = models::find(providers, aliases, id)
        .ok_or_else(|| error_response(ErrorCode::ModelNotFound, &format!("model: {id}"), None))?;
    let created_at = write::rfc3339(created);
    Ok(write::json_body(&model(&entry, &created_at)))
}
