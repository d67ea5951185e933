//! Chat Completions answers → GTL events: the SSE stream of
//! `chat.completion.chunk`s, and the unary `chat.completion`.

use std::sync::Arc;

use gtl_proto::{Body, Done, Token, Usage, sse};
use serde::Deserialize;
use serde_json::Value;

use crate::http::{ErrorBody, SseHandler, malformed};
use crate::tools::{CallKey, ToolCalls};

/// One streamed chunk (or the unary answer), the fields GTL reads.
#[derive(Debug, Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<WireUsage>,
    /// Groq puts the usage of a stream here.
    #[serde(default)]
    x_groq: Option<XGroq>,
    /// An in-band error (OpenAI mid-stream, OpenRouter under HTTP 200).
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct XGroq {
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Debug, Deserialize)]
struct Choice {
    #[serde(default)]
    index: u32,
    /// Streamed chunks.
    #[serde(default)]
    delta: Option<Message>,
    /// The unary answer.
    #[serde(default)]
    message: Option<Message>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Message {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<WireToolCall>>,
}

#[derive(Debug, Deserialize)]
struct WireToolCall {
    #[serde(default)]
    index: Option<u64>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<WireFunction>,
}

#[derive(Debug, Deserialize)]
struct WireFunction {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
    /// The cost in USD, where the server reports it (OpenRouter).
    #[serde(default)]
    cost: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

impl From<&WireUsage> for Usage {
    fn from(usage: &WireUsage) -> Self {
        Self {
            tokens_in: usage.prompt_tokens,
            tokens_out: usage.completion_tokens,
            cached_tokens: usage
                .prompt_tokens_details
                .as_ref()
                .and_then(|d| d.cached_tokens)
                .unwrap_or(0),
            cost: usage
                .cost
                .filter(|c| c.is_finite() && *c > 0.0)
                .unwrap_or(0.0),
        }
    }
}

/// The SSE handler of a streamed chat completion.
///
/// Reads `data:` chunks until `data: [DONE]`: `delta.content` and
/// `delta.refusal` become tokens, `delta.tool_calls` fragments (keyed by
/// `index`) are assembled and sent whole at the `finish_reason`, a usage
/// chunk (empty `choices`) becomes usage, frames with empty `choices` and
/// no usage (Azure's content-filter annotations) are skipped, and an
/// `error` object ends the stream with its mapped code. Only choice 0 is
/// read: GTL never asks for `n > 1`.
#[derive(Debug)]
pub(crate) struct ChunkHandler {
    provider: Arc<str>,
    tools: ToolCalls,
    /// The latest tool-call key, for fragments without an `index`.
    last_key: Option<CallKey>,
    finish_reason: Option<String>,
    /// Whether a clean end of the body after a `finish_reason` counts as
    /// the end (compatible servers that omit `[DONE]`).
    lenient_end: bool,
    ended: bool,
}

impl ChunkHandler {
    pub(crate) fn new(provider: &str, lenient_end: bool) -> Self {
        Self {
            provider: Arc::from(provider),
            tools: ToolCalls::new(),
            last_key: None,
            finish_reason: None,
            lenient_end,
            ended: false,
        }
    }

    fn chunk(&mut self, chunk: &Chunk, out: &mut Vec<Body>) {
        if let Some(error) = &chunk.error {
            self.ended = true;
            out.push(in_band_error(&self.provider, error));
            return;
        }
        if let Some(usage) = chunk
            .usage
            .as_ref()
            .or_else(|| chunk.x_groq.as_ref().and_then(|x| x.usage.as_ref()))
        {
            out.push(Body::Usage(usage.into()));
        }
        for choice in chunk.choices.iter().filter(|c| c.index == 0) {
            if let Some(delta) = &choice.delta {
                self.delta(delta, out);
            }
            if let Some(reason) = &choice.finish_reason {
                self.finish_reason = Some(reason.clone());
                self.tools.finish(out);
            }
        }
    }

    fn delta(&mut self, delta: &Message, out: &mut Vec<Body>) {
        for text in [&delta.content, &delta.refusal].into_iter().flatten() {
            if !text.is_empty() {
                out.push(Body::Token(Token { text: text.clone() }));
            }
        }
        for call in delta.tool_calls.iter().flatten() {
            let key = match (call.index, &call.id) {
                (Some(index), _) => CallKey::Index(index),
                (None, Some(id)) => CallKey::Id(id.clone()),
                // Neither: a continuation of the latest call.
                (None, None) => self.last_key.clone().unwrap_or(CallKey::Index(0)),
            };
            self.last_key = Some(key.clone());
            let function = call.function.as_ref();
            self.tools.fragment(
                key,
                call.id.as_deref(),
                function.and_then(|f| f.name.as_deref()),
                function.and_then(|f| f.arguments.as_deref()).unwrap_or(""),
            );
        }
    }

    fn done(&mut self, out: &mut Vec<Body>) {
        self.ended = true;
        self.tools.finish(out);
        if self.tools.invalid_json() > 0 {
            tracing::warn!(
                provider = %self.provider,
                calls = self.tools.invalid_json(),
                "tool call arguments are not valid JSON; passed through as sent"
            );
        }
        let emitted_calls = !self.tools.is_empty();
        out.push(Body::Done(Done {
            finish_reason: finish_reason(self.finish_reason.as_deref(), emitted_calls),
        }));
    }
}

impl SseHandler for ChunkHandler {
    fn on_event(&mut self, event: &sse::Event, out: &mut Vec<Body>) {
        if self.ended {
            return;
        }
        let data = event.data.trim();
        if data == "[DONE]" {
            self.done(out);
            return;
        }
        if event.event == "error" {
            self.ended = true;
            out.push(match serde_json::from_str::<Value>(data) {
                Ok(value) => in_band_error(&self.provider, &value),
                Err(_) => ErrorBody::parse(data.as_bytes())
                    .to_error(&self.provider)
                    .to_event(),
            });
            return;
        }
        match serde_json::from_str::<Chunk>(data) {
            Ok(chunk) => self.chunk(&chunk, out),
            Err(error) => {
                self.ended = true;
                out.push(malformed(format!(
                    "{}: malformed stream chunk: {error}",
                    self.provider
                )));
            }
        }
    }

    fn on_end(&mut self, out: &mut Vec<Body>) {
        if !self.ended && self.lenient_end && self.finish_reason.is_some() {
            self.done(out);
        }
    }
}

/// The events of a unary `chat.completion` body (or an error object sent
/// with a 2xx status).
pub(crate) fn decode_unary(provider: &str, body: &[u8], out: &mut Vec<Body>) {
    let chunk = match serde_json::from_slice::<Chunk>(body) {
        Ok(chunk) => chunk,
        Err(error) => {
            out.push(malformed(format!(
                "{provider}: malformed response: {error}"
            )));
            return;
        }
    };
    if let Some(error) = &chunk.error {
        out.push(in_band_error(provider, error));
        return;
    }
    if let Some(usage) = &chunk.usage {
        out.push(Body::Usage(usage.into()));
    }
    let Some(choice) = chunk.choices.iter().find(|c| c.index == 0) else {
        out.push(malformed(format!("{provider}: response has no choices")));
        return;
    };
    let mut tools = ToolCalls::new();
    if let Some(message) = &choice.message {
        for text in [&message.content, &message.refusal].into_iter().flatten() {
            if !text.is_empty() {
                out.push(Body::Token(Token { text: text.clone() }));
            }
        }
        for (position, call) in message.tool_calls.iter().flatten().enumerate() {
            let function = call.function.as_ref();
            tools.reconcile(
                CallKey::Index(call.index.unwrap_or(position as u64)),
                call.id.as_deref(),
                function.and_then(|f| f.name.as_deref()),
                function.and_then(|f| f.arguments.as_deref()).unwrap_or(""),
            );
        }
    }
    tools.finish(out);
    out.push(Body::Done(Done {
        finish_reason: finish_reason(choice.finish_reason.as_deref(), !tools.is_empty()),
    }));
}

/// GTL's finish reason for OpenAI's. A forced tool choice finishes with
/// `stop` even though the answer is tool calls: GTL says `tool_calls`
/// whenever calls were sent.
fn finish_reason(reason: Option<&str>, emitted_calls: bool) -> String {
    match reason {
        _ if emitted_calls => "tool_calls",
        None | Some("stop" | "eos" | "end_turn") => "stop",
        Some("length" | "max_tokens") => "length",
        Some("tool_calls" | "function_call") => "tool_calls",
        Some("content_filter") => "content_filter",
        Some(other) => other,
    }
    .to_owned()
}

/// An `error` member (object, or a bare string) as a GTL error event.
fn in_band_error(provider: &str, error: &Value) -> Body {
    let body = match error {
        Value::String(message) => ErrorBody {
            message: message.clone(),
            ..ErrorBody::default()
        },
        Value::Object(_) if error.get("error").is_some() => {
            ErrorBody::parse(error.to_string().as_bytes())
        }
        other => ErrorBody::from_object(other),
    };
    body.to_error(provider).to_event()
}

#[cfg(test)]
mod tests {
    use gtl_proto::{ErrorCode, FunctionCall, ToolCall};

    use super::*;
    use crate::http::{Sse, StreamDecoder};

    fn decode(input: &[u8], cut: Option<usize>) -> Vec<Body> {
        let mut decoder = Sse::new(ChunkHandler::new("openai", false));
        let mut out = Vec::new();
        match cut {
            Some(cut) => {
                decoder.on_chunk(&input[..cut], &mut out);
                decoder.on_chunk(&input[cut..], &mut out);
            }
            None => decoder.on_chunk(input, &mut out),
        }
        decoder.on_end(&mut out);
        out
    }

    fn fixture(name: &str) -> Vec<u8> {
        gtl_test::read(gtl_test::provider_fixture(name))
    }

    #[test]
    fn the_text_fixture_decodes_the_same_split_at_every_offset() {
        let input = fixture("openai/chat_text.sse");
        let whole = decode(&input, None);
        let text: String = whole
            .iter()
            .filter_map(|b| match b {
                Body::Token(t) => Some(t.text.as_str()),
                _ => None,
            })
            .collect();
        assert!(text.starts_with("I'm unable to provide real-time weather updates."));
        assert!(matches!(whole.last(), Some(Body::Done(d)) if d.finish_reason == "stop"));
        for cut in 0..=input.len() {
            assert_eq!(decode(&input, Some(cut)), whole, "split at byte {cut}");
        }
    }

    #[test]
    fn interleaved_parallel_calls_assemble_per_index() {
        let input = concat!(
            r#"data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"a","arguments":""}},{"index":1,"id":"call_b","type":"function","function":{"name":"b","arguments":"{\"y\""}}]}}]}"#,
            "\n\n",
            r#"data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"x\":"}}]}}]}"#,
            "\n\n",
            r#"data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":":2}"}},{"index":0,"function":{"arguments":"1}"}}]}}]}"#,
            "\n\n",
            r#"data: {"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
            "\n\ndata: [DONE]\n\n",
        );
        let events = decode(input.as_bytes(), None);
        let call = |id: &str, name: &str, arguments: &str| {
            Body::ToolCall(ToolCall {
                id: id.into(),
                function: Some(FunctionCall {
                    name: name.into(),
                    arguments: arguments.into(),
                }),
            })
        };
        assert_eq!(
            events,
            [
                call("call_a", "a", "{\"x\":1}"),
                call("call_b", "b", "{\"y\":2}"),
                Body::Done(Done {
                    finish_reason: "tool_calls".into()
                }),
            ]
        );
    }

    #[test]
    fn malformed_chunks_and_in_band_errors_end_the_stream() {
        let events = decode(b"data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: {not json\n\ndata: [DONE]\n\n", None);
        assert_eq!(events.len(), 2);
        assert!(matches!(&events[1], Body::Error(e) if e.code() == ErrorCode::ProviderError));

        let events = decode(b"data: {\"error\":{\"message\":\"The server had an error\",\"type\":\"server_error\"}}\n\n", None);
        assert!(matches!(&events[0], Body::Error(e) if e.code() == ErrorCode::ProviderUnavailable));
    }

    #[test]
    fn unary_answers_decode_whole() {
        let body = br#"{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12,"prompt_tokens_details":{"cached_tokens":2}}}"#;
        let mut out = Vec::new();
        decode_unary("openai", body, &mut out);
        assert_eq!(
            out[0],
            Body::Usage(Usage {
                tokens_in: 5,
                tokens_out: 7,
                cached_tokens: 2,
                cost: 0.0
            })
        );
        assert!(matches!(&out[1], Body::ToolCall(c) if c.id == "call_1"));
        assert!(matches!(&out[2], Body::Done(d) if d.finish_reason == "tool_calls"));
    }
}
