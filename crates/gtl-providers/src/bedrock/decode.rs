//! ConverseStream events and Converse answers → GTL events.
//!
//! [`ConverseStreamDecoder`] is a [`StreamDecoder`] fed raw body bytes: it
//! frames them ([`FrameReader`]), reads each message's `:message-type` and
//! `:event-type` / `:exception-type` headers, and turns the JSON payloads
//! into `token`, `tool_call`, `usage`, `done` and `error` events.
//! [`converse_response`] decodes a unary Converse answer into the same
//! events. No IO.

use std::collections::HashSet;
use std::sync::Arc;

use aws_smithy_types::event_stream::Message;
use gtl_core::ProviderError;
use gtl_proto::{Body, Done, ErrorCode, Token, Usage};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::eventstream::{FrameReader, header};
use crate::http::{StreamDecoder, classify, malformed};
use crate::tools::{CallKey, ToolCalls};

/// `contentBlockStart`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockStart {
    content_block_index: u32,
    #[serde(default)]
    start: Option<BlockStartKind>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockStartKind {
    #[serde(default)]
    tool_use: Option<ToolUseStart>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ToolUseStart {
    tool_use_id: String,
    name: String,
}

/// `contentBlockDelta`. Reasoning and citation deltas are not mapped.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockDelta {
    content_block_index: u32,
    delta: DeltaKind,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeltaKind {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    tool_use: Option<ToolUseDelta>,
}

#[derive(Debug, Deserialize)]
struct ToolUseDelta {
    input: String,
}

/// `contentBlockStop`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockStop {
    content_block_index: u32,
}

/// `messageStop`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageStop {
    stop_reason: String,
}

/// `metadata`.
#[derive(Debug, Deserialize)]
struct Metadata {
    #[serde(default)]
    usage: Option<TokenUsage>,
}

/// `TokenUsage`, in the stream's `metadata` and the Converse answer.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    cache_read_input_tokens: u64,
    #[serde(default)]
    cache_write_input_tokens: u64,
}

impl TokenUsage {
    /// GTL counts every input token in `tokens_in`, cached ones included;
    /// Converse reports cache reads and writes apart from `inputTokens`.
    /// A sum too large for a u64 saturates.
    fn to_gtl(&self) -> Usage {
        Usage {
            tokens_in: self
                .input_tokens
                .saturating_add(self.cache_read_input_tokens)
                .saturating_add(self.cache_write_input_tokens),
            tokens_out: self.output_tokens,
            cached_tokens: self.cache_read_input_tokens,
            ..Usage::default()
        }
    }
}

/// An exception's payload: `{"message": …}` (some services capitalise it).
#[derive(Debug, Default, Deserialize)]
struct ExceptionBody {
    #[serde(default, alias = "Message")]
    message: String,
}

/// The GTL finish reason for a Converse `stopReason`.
fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "tool_use" => "tool_calls",
        "max_tokens" | "model_context_window_exceeded" => "length",
        "guardrail_intervened" | "content_filtered" => "content_filter",
        // end_turn, stop_sequence and reasons added later.
        _ => "stop",
    }
}

/// The GTL code for a Bedrock exception name (`throttlingException`,
/// `ThrottlingException`, or an `x-amzn-ErrorType` value such as
/// `ValidationException:http://…`); `None` for a name it does not know.
pub(crate) fn exception_code(name: &str, message: &str) -> Option<ErrorCode> {
    let name = name
        .split(':')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let code = match name.as_str() {
        "throttlingexception" | "toomanyrequestsexception" => ErrorCode::RateLimit,
        // The shared classification knows the context-length messages
        // ("Input is too long for requested model").
        "validationexception" => match classify(Some(400), "", message) {
            ErrorCode::ContextLengthExceeded => ErrorCode::ContextLengthExceeded,
            _ => ErrorCode::InvalidRequest,
        },
        // An internal error is a 500: unavailable, retryable, as the
        // shared mapping treats every 5xx.
        "serviceunavailableexception" | "modelnotreadyexception" | "internalserverexception" => {
            ErrorCode::ProviderUnavailable
        }
        "modeltimeoutexception" => ErrorCode::ProviderTimeout,
        "accessdeniedexception" => ErrorCode::PermissionDenied,
        "unrecognizedclientexception"
        | "invalidsignatureexception"
        | "signaturedoesnotmatch"
        | "expiredtokenexception"
        | "incompletesignatureexception"
        | "missingauthenticationtokenexception" => ErrorCode::Unauthenticated,
        "resourcenotfoundexception" => ErrorCode::ModelNotFound,
        "modelstreamerrorexception" | "modelerrorexception" => ErrorCode::ProviderError,
        _ => return None,
    };
    Some(code)
}

/// A Bedrock exception (a stream frame, or an HTTP error's
/// `x-amzn-ErrorType`) as a GTL error; an unknown name is classified by
/// the shared rules, else `PROVIDER_ERROR`.
pub(crate) fn exception(provider: &str, name: &str, message: &str) -> ProviderError {
    let code = exception_code(name, message).unwrap_or_else(|| classify(None, name, message));
    let name = name.split(':').next().unwrap_or_default();
    let text = if message.is_empty() {
        format!("{provider}: {name}")
    } else {
        format!("{provider}: {name}: {message}")
    };
    ProviderError::new(code, text)
}

/// Decodes a ConverseStream body into GTL events.
///
/// Text deltas become `token` events at once; a tool-use block becomes one
/// `tool_call` when its `contentBlockStop` arrives (blocks may interleave;
/// blocks left open are emitted at `messageStop`). `messageStop` gives the
/// finish reason and `metadata` the usage; `done` follows both (or the end
/// of the body after `messageStop`). Exceptions, corrupt or malformed
/// frames and a body cut before `messageStop` end the stream with one
/// `error` event; nothing follows the terminal event. Error phases are
/// left to the driver.
#[derive(Debug)]
pub(crate) struct ConverseStreamDecoder {
    /// The provider's name, prefixing error messages.
    provider: Arc<str>,
    frames: FrameReader,
    tool_calls: ToolCalls,
    /// Content blocks that started as tool use and have not stopped.
    open_tools: HashSet<u32>,
    stop_reason: Option<String>,
    usage_seen: bool,
    finished: bool,
}

impl ConverseStreamDecoder {
    /// A decoder at the start of a body from `provider`.
    pub(crate) fn new(provider: Arc<str>) -> Self {
        Self {
            provider,
            frames: FrameReader::new(),
            tool_calls: ToolCalls::new(),
            open_tools: HashSet::new(),
            stop_reason: None,
            usage_seen: false,
            finished: false,
        }
    }

    fn message(&mut self, message: &Message, out: &mut Vec<Body>) {
        let payload = &message.payload()[..];
        match header(message, ":message-type") {
            Some("event") => {}
            Some("exception") => {
                let name = header(message, ":exception-type").unwrap_or("exception");
                let body: ExceptionBody = serde_json::from_slice(payload).unwrap_or_default();
                let error = exception(&self.provider, name, &body.message);
                return self.fail(error.to_event(), out);
            }
            Some("error") => {
                let name = header(message, ":error-code").unwrap_or("error");
                let text = header(message, ":error-message").unwrap_or_default();
                let error = exception(&self.provider, name, text);
                return self.fail(error.to_event(), out);
            }
            other => {
                let error = malformed(format!(
                    "{}: a frame of unknown message type {other:?}",
                    self.provider
                ));
                return self.fail(error, out);
            }
        }
        let event = header(message, ":event-type").unwrap_or_default();
        if let Err(e) = self.event(event, payload, out) {
            let error = malformed(format!("{}: malformed `{event}` event: {e}", self.provider));
            self.fail(error, out);
        }
    }

    fn event(
        &mut self,
        event: &str,
        payload: &[u8],
        out: &mut Vec<Body>,
    ) -> serde_json::Result<()> {
        match event {
            "contentBlockStart" => {
                let start: BlockStart = serde_json::from_slice(payload)?;
                if let Some(tool) = start.start.and_then(|s| s.tool_use) {
                    let index = start.content_block_index;
                    self.open_tools.insert(index);
                    self.tool_calls.fragment(
                        CallKey::Index(index.into()),
                        Some(&tool.tool_use_id),
                        Some(&tool.name),
                        "",
                    );
                }
            }
            "contentBlockDelta" => {
                let delta: BlockDelta = serde_json::from_slice(payload)?;
                if let Some(text) = delta.delta.text {
                    out.push(Body::Token(Token { text }));
                }
                if let Some(fragment) = delta.delta.tool_use {
                    let index = delta.content_block_index;
                    if !self.open_tools.contains(&index) {
                        return Err(serde::de::Error::custom(format!(
                            "tool input for block {index}, which is not an open tool-use block"
                        )));
                    }
                    self.tool_calls.fragment(
                        CallKey::Index(index.into()),
                        None,
                        None,
                        &fragment.input,
                    );
                }
            }
            "contentBlockStop" => {
                let stop: BlockStop = serde_json::from_slice(payload)?;
                let index = stop.content_block_index;
                if self.open_tools.remove(&index) {
                    self.tool_calls.complete(&CallKey::Index(index.into()), out);
                }
            }
            "messageStop" => {
                let stop: MessageStop = serde_json::from_slice(payload)?;
                self.open_tools.clear();
                self.tool_calls.finish(out);
                if self.usage_seen {
                    self.done(&stop.stop_reason, out);
                } else {
                    self.stop_reason = Some(stop.stop_reason);
                }
            }
            "metadata" => {
                let metadata: Metadata = serde_json::from_slice(payload)?;
                if let Some(usage) = metadata.usage {
                    out.push(Body::Usage(usage.to_gtl()));
                }
                self.usage_seen = true;
                if let Some(reason) = self.stop_reason.take() {
                    self.done(&reason, out);
                }
            }
            // messageStart carries only the role; unknown events are newer
            // API additions that carry nothing GTL maps.
            _ => {}
        }
        Ok(())
    }

    fn done(&mut self, stop_reason: &str, out: &mut Vec<Body>) {
        self.finished = true;
        out.push(Body::Done(Done {
            finish_reason: finish_reason(stop_reason).to_owned(),
        }));
    }

    fn fail(&mut self, error: Body, out: &mut Vec<Body>) {
        self.finished = true;
        out.push(error);
    }
}

impl StreamDecoder for ConverseStreamDecoder {
    fn on_chunk(&mut self, chunk: &[u8], out: &mut Vec<Body>) {
        if self.finished {
            return;
        }
        self.frames.push(chunk);
        while !self.finished {
            match self.frames.next_message() {
                Ok(Some(message)) => self.message(&message, out),
                Ok(None) => break,
                Err(e) => self.fail(malformed(format!("{}: {e}", self.provider)), out),
            }
        }
    }

    fn on_end(&mut self, out: &mut Vec<Body>) {
        if self.finished {
            return;
        }
        if let Err(e) = self.frames.finish() {
            return self.fail(malformed(format!("{}: {e}", self.provider)), out);
        }
        match self.stop_reason.take() {
            // `metadata` never came: the answer is whole, only its usage is
            // unknown.
            Some(reason) => self.done(&reason, out),
            None => {
                let error = malformed(format!(
                    "{}: the stream ended before `messageStop`",
                    self.provider
                ));
                self.fail(error, out);
            }
        }
    }
}

/// The Converse (unary) answer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConverseResponse<'a> {
    #[serde(borrow)]
    output: ConverseOutput<'a>,
    stop_reason: String,
    #[serde(default)]
    usage: Option<TokenUsage>,
}

#[derive(Debug, Deserialize)]
struct ConverseOutput<'a> {
    #[serde(borrow)]
    message: OutputMessage<'a>,
}

#[derive(Debug, Deserialize)]
struct OutputMessage<'a> {
    #[serde(borrow)]
    content: Vec<OutputBlock<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OutputBlock<'a> {
    #[serde(default)]
    text: Option<String>,
    #[serde(borrow, default)]
    tool_use: Option<OutputToolUse<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OutputToolUse<'a> {
    tool_use_id: String,
    name: String,
    #[serde(borrow)]
    input: &'a RawValue,
}

/// Decodes a whole Converse answer into the events a stream gives.
pub(crate) fn converse_response(provider: &str, body: &[u8], out: &mut Vec<Body>) {
    let response: ConverseResponse<'_> = match serde_json::from_slice(body) {
        Ok(response) => response,
        Err(e) => {
            out.push(malformed(format!(
                "{provider}: malformed converse answer: {e}"
            )));
            return;
        }
    };
    let mut tool_calls = ToolCalls::new();
    for block in response.output.message.content {
        if let Some(text) = block.text {
            out.push(Body::Token(Token { text }));
        }
        if let Some(tool) = block.tool_use {
            tool_calls.whole(Some(&tool.tool_use_id), &tool.name, tool.input.get(), out);
        }
    }
    if let Some(usage) = response.usage {
        out.push(Body::Usage(usage.to_gtl()));
    }
    out.push(Body::Done(Done {
        finish_reason: finish_reason(&response.stop_reason).to_owned(),
    }));
}

#[cfg(test)]
mod tests;
