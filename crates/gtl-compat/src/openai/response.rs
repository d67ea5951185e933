//! Unary answers: the `chat.completion` body and the model list.

use std::time::Duration;

use gtl_core::Completion;
use gtl_proto::{ErrorCode, ProviderInfo, ToolCall, Usage};
use serde::Serialize;

use super::{completion_id, error_response, finish_reason};
use crate::{ErrorReply, models, write};

/// OpenAI's `usage` object.
#[derive(Debug, Serialize)]
pub(crate) struct WireUsage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    prompt_tokens_details: PromptDetails,
}

#[derive(Debug, Serialize)]
struct PromptDetails {
    cached_tokens: u64,
}

impl From<&Usage> for WireUsage {
    /// `prompt_tokens` is GTL's `tokens_in` (which includes cached
    /// tokens, as OpenAI's does), `cached_tokens` GTL's `cached_tokens`.
    /// Reasoning tokens are not reported apart by GTL, so
    /// `completion_tokens_details` is left out rather than claimed zero.
    fn from(usage: &Usage) -> Self {
        Self {
            prompt_tokens: usage.tokens_in,
            completion_tokens: usage.tokens_out,
            total_tokens: usage.tokens_in.saturating_add(usage.tokens_out),
            prompt_tokens_details: PromptDetails {
                cached_tokens: usage.cached_tokens,
            },
        }
    }
}

/// A tool call as OpenAI writes it in a message.
#[derive(Debug, Serialize)]
pub(crate) struct WireToolCall<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireFunction<'a>,
}

#[derive(Debug, Serialize)]
struct WireFunction<'a> {
    name: &'a str,
    arguments: &'a str,
}

impl<'a> From<&'a ToolCall> for WireToolCall<'a> {
    fn from(call: &'a ToolCall) -> Self {
        let (name, arguments) = call
            .function
            .as_ref()
            .map_or(("", ""), |f| (f.name.as_str(), f.arguments.as_str()));
        Self {
            id: &call.id,
            kind: "function",
            function: WireFunction { name, arguments },
        }
    }
}

#[derive(Debug, Serialize)]
struct ChatCompletion<'a> {
    id: String,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [ResponseChoice<'a>; 1],
    usage: WireUsage,
}

#[derive(Debug, Serialize)]
struct ResponseChoice<'a> {
    index: u32,
    message: ResponseMessage<'a>,
    logprobs: Option<()>,
    finish_reason: &'static str,
}

#[derive(Debug, Serialize)]
struct ResponseMessage<'a> {
    role: &'static str,
    content: Option<&'a str>,
    refusal: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<WireToolCall<'a>>,
    annotations: [(); 0],
}

/// The `chat.completion` body of a finished call, or the error answer
/// when the call ended with an error (or without an end).
///
/// `session_id` becomes the id (`chatcmpl-<session_id>`); `model` is what
/// the answer's `model` says (normally [`Options::model`](super::Options));
/// `created` is the Unix time in seconds. `content` is `null` when the
/// answer is only tool calls, as OpenAI sends it; `usage` is all zeros
/// when the provider reported none (clients read it unconditionally).
/// `patch` events have no Chat Completions form and are left out.
pub fn completion_response(
    completion: &Completion,
    session_id: &str,
    model: &str,
    created: u64,
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
    let tool_calls: Vec<WireToolCall<'_>> = completion
        .tool_calls
        .iter()
        .map(WireToolCall::from)
        .collect();
    let content = if completion.text.is_empty() && !tool_calls.is_empty() {
        None
    } else {
        Some(completion.text.as_str())
    };
    let body = ChatCompletion {
        id: completion_id(session_id),
        object: "chat.completion",
        created,
        model,
        choices: [ResponseChoice {
            index: 0,
            message: ResponseMessage {
                role: "assistant",
                content,
                refusal: None,
                tool_calls,
                annotations: [],
            },
            logprobs: None,
            finish_reason: finish_reason(&completion.finish_reason),
        }],
        usage: WireUsage::from(&completion.usage.unwrap_or_default()),
    };
    Ok(write::json_body(&body))
}

#[derive(Debug, Serialize)]
struct ModelList<'a> {
    object: &'static str,
    data: Vec<Model<'a>>,
}

#[derive(Debug, Serialize)]
struct Model<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    owned_by: &'a str,
}

/// The `GET /v1/models` body: every routable name, each provider's models
/// as `provider/model` then each alias (`(alias, "provider/model")`),
/// owned by the provider that serves it. `created` (Unix seconds) is
/// given to every entry: GTL does not know when a model was released.
pub fn models_response(
    providers: &[ProviderInfo],
    aliases: &[(&str, &str)],
    created: u64,
) -> Vec<u8> {
    let entries = models::entries(providers, aliases);
    let body = ModelList {
        object: "list",
        data: entries
            .iter()
            .map(|entry| Model {
                id: &entry.id,
                object: "model",
                created,
                owned_by: entry.provider,
            })
            .collect(),
    };
    write::json_body(&body)
}

/// The `GET /v1/models/{id}` body, or OpenAI's 404 for an unknown id.
pub fn model_response(
    providers: &[ProviderInfo],
    aliases: &[(&str, &str)],
    id: &str,
    created: u64,
) -> Result<Vec<u8>, ErrorReply> {
    let entry = models::find(providers, aliases, id).ok_or_else(|| {
        error_response(
            ErrorCode::ModelNotFound,
            &format!("The model `{id}` does not exist"),
            None,
        )
    })?;
    Ok(write::json_body(&Model {
        id: &entry.id,
        object: "model",
        created,
        owned_by: entry.provider,
    }))
}
