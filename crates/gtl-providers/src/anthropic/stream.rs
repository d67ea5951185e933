//! Anthropic Messages stream events → GTL events.
//!
//! [`Decoder`] is the [`SseHandler`] the shared driver feeds one parsed SSE
//! event at a time; it does no IO, so every fixture and every odd case is a
//! plain test. [`message`] decodes a unary response body the same way.

use std::collections::BTreeMap;

use gtl_proto::sse::Event;
use gtl_proto::{Body, Done, Status, Token, Usage};
use serde::Deserialize;
use serde_json::Value;

use crate::http::{ErrorBody, SseHandler, malformed};
use crate::tools::{CallKey, ToolCalls};
use crate::usage::Price;

/// A stream event's JSON, by its `type`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StreamEvent {
    MessageStart {
        message: MessageStart,
    },
    ContentBlockStart {
        index: u64,
        content_block: BlockStart,
    },
    ContentBlockDelta {
        index: u64,
        delta: BlockDelta,
    },
    ContentBlockStop {
        index: u64,
    },
    MessageDelta {
        delta: MessageDelta,
        #[serde(default)]
        usage: Option<WireUsage>,
    },
    MessageStop,
    Ping,
    Error {
        error: Value,
    },
}

/// The event names [`StreamEvent`] parses; others are skipped unread.
const KNOWN_EVENTS: [&str; 8] = [
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
    "ping",
    "error",
];

#[derive(Debug, Deserialize)]
struct MessageStart {
    #[serde(default)]
    model: String,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockStart {
    Text {
        #[serde(default)]
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Option<Value>,
    },
    /// `thinking`, `redacted_thinking`, server tool blocks, and types added
    /// later: not surfaced.
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockDelta {
    TextDelta {
        text: String,
    },
    InputJsonDelta {
        partial_json: String,
    },
    /// `thinking_delta`, `signature_delta`, `citations_delta`, and types
    /// added later: not surfaced.
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
struct MessageDelta {
    #[serde(default)]
    stop_reason: Option<String>,
}

/// Token counts as the API reports them; any may be absent or null.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub(crate) struct WireUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
}

impl WireUsage {
    /// Takes every count `newer` has: `message_delta` counts are
    /// cumulative and replace those of `message_start`.
    fn update(&mut self, newer: &Self) {
        let fields = [
            (&mut self.input_tokens, newer.input_tokens),
            (&mut self.output_tokens, newer.output_tokens),
            (
                &mut self.cache_creation_input_tokens,
                newer.cache_creation_input_tokens,
            ),
            (
                &mut self.cache_read_input_tokens,
                newer.cache_read_input_tokens,
            ),
        ];
        for (mine, theirs) in fields {
            if theirs.is_some() {
                *mine = theirs;
            }
        }
    }

    /// The GTL usage for these counts, priced at `price`.
    ///
    /// `tokens_in` is the whole prompt: uncached input plus cache writes
    /// plus cache reads (Anthropic reports the three apart);
    /// `cached_tokens` the cache reads. Thinking tokens are part of
    /// Anthropic's `output_tokens`, so they are counted (and priced) as
    /// output although no `token` event carries them. Counts too large for
    /// a u64 saturate (a sum of counts from the body must not overflow).
    pub(crate) fn to_usage(self, price: Option<Price>) -> Usage {
        let input = self.input_tokens.unwrap_or(0);
        let written = self.cache_creation_input_tokens.unwrap_or(0);
        let read = self.cache_read_input_tokens.unwrap_or(0);
        let output = self.output_tokens.unwrap_or(0);
        Usage {
            tokens_in: input.saturating_add(written).saturating_add(read),
            tokens_out: output,
            cost: price.map_or(0.0, |price| cost(price, input, written, read, output)),
            cached_tokens: read,
        }
    }
}

/// What a call costs at `price`, with Anthropic's prompt-cache rates:
/// cache writes at 1.25× the input price (the 5-minute cache), cache reads
/// at 0.1×.
pub(crate) fn cost(price: Price, input: u64, written: u64, read: u64, output: u64) -> f64 {
    // Token counts stay far below 2^52, where f64 is exact.
    #[allow(clippy::cast_precision_loss, reason = "counts are far below 2^52")]
    let tokens = |n: u64| n as f64 / 1000.0;
    (tokens(input) + tokens(written) * 1.25 + tokens(read) * 0.1) * price.input_per_1k
        + tokens(output) * price.output_per_1k
}

/// A content block between its start and stop events.
#[derive(Debug)]
enum Block {
    /// A text block: its deltas are sent as they come.
    Text,
    /// A tool call, assembled by [`ToolCalls`] under its block index.
    ToolUse {
        /// The `input` of the start event, used when no delta came.
        input: Option<Value>,
        has_delta: bool,
    },
    /// Anything else (thinking, server tools): ignored.
    Other,
}

/// The GTL finish reason for an Anthropic `stop_reason`.
///
/// `end_turn` and `stop_sequence` → `stop`, `max_tokens` and
/// `model_context_window_exceeded` → `length`, `tool_use` → `tool_calls`,
/// `refusal` → `content_filter`; `pause_turn` (server tools only) and
/// anything unknown → `stop`.
fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        _ => "stop",
    }
}

/// The finish reason of `done`: [`finish_reason`], except that an answer
/// that called tools and stopped normally says `tool_calls`, as every GTL
/// adapter does.
fn done_reason(stop_reason: Option<&str>, called: bool) -> &'static str {
    match finish_reason(stop_reason) {
        "stop" if called => "tool_calls",
        reason => reason,
    }
}

/// Decodes one Messages stream. See the [module docs](self).
#[derive(Debug)]
pub(crate) struct Decoder {
    /// The provider's registered name, for `status` and error messages.
    provider: String,
    /// The model the request named, until `message_start` names the one
    /// serving it.
    model: String,
    price: Option<Price>,
    started: bool,
    finished: bool,
    blocks: BTreeMap<u64, Block>,
    tools: ToolCalls,
    usage: WireUsage,
    stop_reason: Option<String>,
}

impl Decoder {
    /// A decoder for a call to `model` served by `provider`, its usage
    /// priced at `price`.
    pub(crate) fn new(provider: &str, model: &str, price: Option<Price>) -> Self {
        Self {
            provider: provider.to_owned(),
            model: model.to_owned(),
            price,
            started: false,
            finished: false,
            blocks: BTreeMap::new(),
            tools: ToolCalls::new(),
            usage: WireUsage::default(),
            stop_reason: None,
        }
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

    fn token(text: String, out: &mut Vec<Body>) {
        if !text.is_empty() {
            out.push(Body::Token(Token { text }));
        }
    }

    fn usage(&mut self, usage: Option<WireUsage>, out: &mut Vec<Body>) {
        if let Some(usage) = usage {
            self.usage.update(&usage);
            out.push(Body::Usage(self.usage.to_usage(self.price)));
        }
    }

    /// Emits the tool call of block `index` (if it is one).
    fn close(&mut self, index: u64, block: Block, out: &mut Vec<Body>) {
        let Block::ToolUse { input, has_delta } = block else {
            return;
        };
        if !has_delta
            && let Some(input @ Value::Object(_)) = input
            && !input.as_object().is_some_and(serde_json::Map::is_empty)
        {
            // A block that came whole, as in a unary answer.
            self.tools
                .reconcile(CallKey::Index(index), None, None, &input.to_string());
        }
        self.tools.complete(&CallKey::Index(index), out);
    }

    fn fail(&mut self, error: Body, out: &mut Vec<Body>) {
        out.push(error);
        self.finished = true;
    }

    fn handle(&mut self, event: StreamEvent, out: &mut Vec<Body>) {
        match event {
            StreamEvent::MessageStart { message } => {
                if !message.model.is_empty() {
                    self.model = message.model;
                }
                self.start(out);
                self.usage(message.usage, out);
            }
            StreamEvent::ContentBlockStart {
                index,
                content_block,
            } => {
                self.start(out);
                let block = match content_block {
                    BlockStart::Text { text } => {
                        Self::token(text, out);
                        Block::Text
                    }
                    BlockStart::ToolUse { id, name, input } => {
                        self.tools
                            .fragment(CallKey::Index(index), Some(&id), Some(&name), "");
                        Block::ToolUse {
                            input,
                            has_delta: false,
                        }
                    }
                    BlockStart::Other => Block::Other,
                };
                self.blocks.insert(index, block);
            }
            StreamEvent::ContentBlockDelta { index, delta } => {
                self.start(out);
                match (delta, self.blocks.get_mut(&index)) {
                    (BlockDelta::TextDelta { text }, Some(Block::Text) | None) => {
                        Self::token(text, out)
                    }
                    (
                        BlockDelta::InputJsonDelta { partial_json },
                        Some(Block::ToolUse { has_delta, .. }),
                    ) => {
                        *has_delta = true;
                        self.tools
                            .fragment(CallKey::Index(index), None, None, &partial_json);
                    }
                    (BlockDelta::InputJsonDelta { .. }, None) => {
                        let error = malformed(format!(
                            "{}: input_json_delta for unknown content block {index}",
                            self.provider
                        ));
                        self.fail(error, out);
                    }
                    _ => {}
                }
            }
            StreamEvent::ContentBlockStop { index } => {
                if let Some(block) = self.blocks.remove(&index) {
                    self.close(index, block, out);
                }
            }
            StreamEvent::MessageDelta { delta, usage } => {
                if delta.stop_reason.is_some() {
                    self.stop_reason = delta.stop_reason;
                }
                self.usage(usage, out);
            }
            StreamEvent::MessageStop => {
                self.start(out);
                // Blocks the stream never stopped are closed in order.
                while let Some((index, block)) = self.blocks.pop_first() {
                    self.close(index, block, out);
                }
                self.tools.finish(out);
                let reason = done_reason(self.stop_reason.as_deref(), !self.tools.is_empty());
                out.push(Body::Done(Done {
                    finish_reason: reason.to_owned(),
                }));
                self.finished = true;
            }
            StreamEvent::Ping => {}
            StreamEvent::Error { error } => {
                let error = ErrorBody::from_object(&error).to_error(&self.provider);
                self.fail(error.to_event(), out);
            }
        }
    }
}

impl SseHandler for Decoder {
    fn on_event(&mut self, event: &Event, out: &mut Vec<Body>) {
        if self.finished {
            return;
        }
        // Unknown event types are skipped, as Anthropic's versioning policy
        // asks; they are not even parsed.
        if !event.event.is_empty() && !KNOWN_EVENTS.contains(&event.event.as_str()) {
            return;
        }
        match serde_json::from_str::<StreamEvent>(&event.data) {
            Ok(parsed) => self.handle(parsed, out),
            // A nameless event of an unknown type is skipped too.
            Err(_) if event.event.is_empty() && is_unknown_type(&event.data) => {}
            Err(e) => {
                let name = if event.event.is_empty() {
                    "unnamed"
                } else {
                    &event.event
                };
                let error = malformed(format!("{}: malformed `{name}` event: {e}", self.provider));
                self.fail(error, out);
            }
        }
    }

    // The end of the body before `message_stop` adds nothing: the driver
    // reports the cut stream.
}

/// Whether `data` is JSON whose `type` this decoder does not know.
fn is_unknown_type(data: &str) -> bool {
    #[derive(Deserialize)]
    struct Typed {
        #[serde(rename = "type")]
        kind: String,
    }
    serde_json::from_str::<Typed>(data).is_ok_and(|t| !KNOWN_EVENTS.contains(&t.kind.as_str()))
}

/// A unary Messages response.
#[derive(Debug, Deserialize)]
struct Message {
    #[serde(default)]
    model: String,
    #[serde(default)]
    content: Vec<ContentBlock>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: WireUsage,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ContentBlock {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
    #[serde(other)]
    Other,
}

/// Appends the GTL events of a unary response body: the same sequence a
/// stream of the same answer produces.
pub(crate) fn message(decoder: &Decoder, body: &[u8], out: &mut Vec<Body>) {
    let message: Message = match serde_json::from_slice(body) {
        Ok(message) => message,
        Err(e) => {
            out.push(malformed(format!(
                "{}: malformed response body: {e}",
                decoder.provider
            )));
            return;
        }
    };
    let model = if message.model.is_empty() {
        decoder.model.clone()
    } else {
        message.model
    };
    out.push(Body::Status(Status {
        state: "streaming".to_owned(),
        provider: decoder.provider.clone(),
        model,
        reason: String::new(),
    }));
    let mut tools = ToolCalls::new();
    for block in message.content {
        match block {
            ContentBlock::Text { text } => Decoder::token(text, out),
            ContentBlock::ToolUse { id, name, input } => {
                tools.whole(Some(&id), &name, &input.to_string(), out);
            }
            ContentBlock::Other => {}
        }
    }
    out.push(Body::Usage(message.usage.to_usage(decoder.price)));
    let reason = done_reason(message.stop_reason.as_deref(), !tools.is_empty());
    out.push(Body::Done(Done {
        finish_reason: reason.to_owned(),
    }));
}
