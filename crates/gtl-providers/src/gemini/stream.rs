//! Gemini `GenerateContentResponse` frames → GTL events.
//!
//! `streamGenerateContent?alt=sse` sends one response object per SSE event
//! and no end marker: the body's end is the answer's end, and it must have
//! carried a `finishReason` by then. `generateContent` answers one object.
//! [`Decoder`] handles both: the shared driver feeds it SSE events (it is
//! an [`SseHandler`]), or a unary body is handed to [`Decoder::frame`] and
//! [`Decoder::finish`].

use gtl_core::ProviderError;
use gtl_proto::sse::Event;
use gtl_proto::{Body, Done, ErrorCode, Status, Token, Usage};
use serde::Deserialize;
use serde_json::Value;

use super::{error, models, tool_id};
use crate::http::{ErrorBody, SseHandler, malformed};
use crate::tools::ToolCalls;
use crate::usage::Price;

/// One frame: a response, or an error object.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Response {
    #[serde(default)]
    candidates: Vec<Candidate>,
    #[serde(default)]
    prompt_feedback: Option<PromptFeedback>,
    #[serde(default)]
    usage_metadata: Option<UsageMetadata>,
    #[serde(default)]
    model_version: String,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate {
    #[serde(default)]
    content: Option<CandidateContent>,
    #[serde(default)]
    finish_reason: Option<String>,
    #[serde(default)]
    finish_message: Option<String>,
    #[serde(default)]
    index: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct CandidateContent {
    #[serde(default)]
    parts: Vec<WirePart>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WirePart {
    #[serde(default)]
    text: Option<String>,
    /// A thought summary (only sent when thoughts are asked for): not
    /// answer text.
    #[serde(default)]
    thought: bool,
    #[serde(default)]
    function_call: Option<WireFunctionCall>,
    #[serde(default)]
    thought_signature: String,
}

#[derive(Debug, Deserialize)]
struct WireFunctionCall {
    #[serde(default)]
    id: String,
    name: String,
    #[serde(default)]
    args: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromptFeedback {
    #[serde(default)]
    block_reason: Option<String>,
}

/// Token counts; Gemini sends them cumulative, the last frame's are final.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    #[serde(default)]
    prompt_token_count: u64,
    #[serde(default)]
    cached_content_token_count: u64,
    #[serde(default)]
    candidates_token_count: u64,
    #[serde(default)]
    thoughts_token_count: u64,
    #[serde(default)]
    tool_use_prompt_token_count: u64,
}

impl UsageMetadata {
    /// The GTL usage: `tokens_in` is the prompt (cached part included) plus
    /// tool-use prompt tokens, `tokens_out` the answer plus thinking tokens
    /// (billed as output), `cached_tokens` the cached part of the prompt.
    /// Sums too large for a u64 saturate.
    fn to_usage(self, price: Option<Price>, cached_ratio: f64) -> Usage {
        let tokens_in = self
            .prompt_token_count
            .saturating_add(self.tool_use_prompt_token_count);
        let tokens_out = self
            .candidates_token_count
            .saturating_add(self.thoughts_token_count);
        let cached = self.cached_content_token_count;
        Usage {
            tokens_in,
            tokens_out,
            cost: price.map_or(0.0, |price| {
                models::cost(price, cached_ratio, tokens_in, cached, tokens_out)
            }),
            cached_tokens: cached,
        }
    }
}

/// Finish reasons that mean Gemini's filters stopped the answer.
const FILTERED: [&str; 8] = [
    "SAFETY",
    "RECITATION",
    "BLOCKLIST",
    "PROHIBITED_CONTENT",
    "SPII",
    "IMAGE_SAFETY",
    "IMAGE_PROHIBITED_CONTENT",
    "IMAGE_RECITATION",
];

/// Finish reasons that mean the model's function calling went wrong.
const BAD_CALLS: [&str; 3] = [
    "MALFORMED_FUNCTION_CALL",
    "UNEXPECTED_TOOL_CALL",
    "TOO_MANY_TOOL_CALLS",
];

/// The GTL finish reason of a normal end: `MAX_TOKENS` → `length`, `STOP`
/// → `tool_calls` when the answer called functions and `stop` otherwise;
/// any other reason (`OTHER`, `LANGUAGE`, …) → `stop`.
fn finish_reason(reason: &str, called: bool) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        _ if called => "tool_calls",
        _ => "stop",
    }
}

/// Decodes one answer. See the [module docs](self).
#[derive(Debug)]
pub(crate) struct Decoder {
    /// The provider's registered name, for `status` and error messages.
    provider: String,
    /// The model that serves the call: the request's, until a frame's
    /// `modelVersion` names it.
    model: String,
    price: Option<Price>,
    cached_ratio: f64,
    started: bool,
    finished: bool,
    tools: ToolCalls,
    /// Function calls so far: the index in the next call's id.
    calls: usize,
    finish: Option<String>,
}

impl Decoder {
    /// A decoder for a call to `model` (an id without `models/`) served by
    /// `provider`, its usage priced at `price`.
    pub(crate) fn new(provider: &str, model: &str, price: Option<Price>) -> Self {
        Self {
            provider: provider.to_owned(),
            model: model.to_owned(),
            price,
            cached_ratio: models::find(model)
                .map_or(models::DEFAULT_CACHED_RATIO, |model| model.cached_ratio),
            started: false,
            finished: false,
            tools: ToolCalls::new(),
            calls: 0,
            finish: None,
        }
    }

    /// Decodes one `GenerateContentResponse` (or error) object.
    pub(crate) fn frame(&mut self, data: &[u8], out: &mut Vec<Body>) {
        if self.finished {
            return;
        }
        let response: Response = match serde_json::from_slice(data) {
            Ok(response) => response,
            Err(e) => {
                let error = malformed(format!("{}: malformed response frame: {e}", self.provider));
                return self.fail(error, out);
            }
        };
        if response.error.is_some() {
            let error = ErrorBody::parse(data).to_error(&self.provider);
            return self.fail(error::refine(error, data).to_event(), out);
        }
        if !response.model_version.is_empty() && !self.started {
            self.model = response.model_version;
        }
        self.start(out);
        if let Some(usage) = response.usage_metadata {
            out.push(Body::Usage(usage.to_usage(self.price, self.cached_ratio)));
        }
        if let Some(reason) = response
            .prompt_feedback
            .and_then(|feedback| feedback.block_reason)
            .filter(|reason| reason != "BLOCK_REASON_UNSPECIFIED")
        {
            let error = ProviderError::new(
                ErrorCode::ContentFiltered,
                format!("{}: the prompt was blocked ({reason})", self.provider),
            );
            return self.fail(error.to_event(), out);
        }
        // Only one candidate is asked for; others are ignored.
        let Some(candidate) = response
            .candidates
            .into_iter()
            .find(|candidate| candidate.index.unwrap_or(0) == 0)
        else {
            return;
        };
        for part in candidate.content.into_iter().flat_map(|c| c.parts) {
            self.part(part, out);
        }
        if let Some(reason) = candidate
            .finish_reason
            .filter(|reason| reason != "FINISH_REASON_UNSPECIFIED")
        {
            let detail = candidate
                .finish_message
                .map(|message| format!(": {message}"))
                .unwrap_or_default();
            let failure = if FILTERED.contains(&reason.as_str()) {
                Some((ErrorCode::ContentFiltered, "the answer was blocked"))
            } else if BAD_CALLS.contains(&reason.as_str()) {
                Some((ErrorCode::ProviderError, "the model's function call failed"))
            } else {
                None
            };
            if let Some((code, what)) = failure {
                let message = format!("{}: {what} ({reason}){detail}", self.provider);
                return self.fail(ProviderError::new(code, message).to_event(), out);
            }
            self.finish = Some(reason);
        }
    }

    /// The answer ended: `done` when a finish reason came. Without one
    /// nothing is added, and the driver reports the cut stream.
    pub(crate) fn finish(&mut self, out: &mut Vec<Body>) {
        if self.finished {
            return;
        }
        if let Some(reason) = self.finish.take() {
            self.tools.finish(out);
            out.push(Body::Done(Done {
                finish_reason: finish_reason(&reason, !self.tools.is_empty()).to_owned(),
            }));
            self.finished = true;
        }
    }

    fn fail(&mut self, error: Body, out: &mut Vec<Body>) {
        out.push(error);
        self.finished = true;
    }

    fn start(&mut self, out: &mut Vec<Body>) {
        if !self.started {
            self.started = true;
            out.push(Body::Status(Status {
                state: "streaming".to_owned(),
                provider: self.provider.clone(),
                model: self.model.clone(),
                reason: String::new(),
            }));
        }
    }

    fn part(&mut self, part: WirePart, out: &mut Vec<Body>) {
        if let Some(call) = part.function_call {
            let arguments = match call.args {
                Some(args @ Value::Object(_)) => args.to_string(),
                _ => "{}".to_owned(),
            };
            let index = self.calls;
            self.calls += 1;
            let id = tool_id::make(index, &call.name, &call.id, &part.thought_signature);
            self.tools.whole(Some(&id), &call.name, &arguments, out);
            return;
        }
        match part.text {
            Some(text) if !part.thought && !text.is_empty() => {
                out.push(Body::Token(Token { text }));
            }
            // Thoughts, empty text, and parts GTL has no event for
            // (executable code, inline media): not surfaced.
            _ => {}
        }
    }
}

impl SseHandler for Decoder {
    /// Gemini names no events: each event's `data` is a frame.
    fn on_event(&mut self, event: &Event, out: &mut Vec<Body>) {
        if !event.data.is_empty() {
            self.frame(event.data.as_bytes(), out);
        }
    }

    fn on_end(&mut self, out: &mut Vec<Body>) {
        self.finish(out);
    }
}
