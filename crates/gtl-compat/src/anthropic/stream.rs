//! GTL events → the Messages event stream.

use std::time::Duration;

use bytes::BufMut;
use gtl_proto::{Body, Error, ToolCall, Usage};
use serde::Serialize;
use serde_json::value::RawValue;

use super::error::{ErrorBody, ErrorObject, shape};
use super::response::{Block, WireMessage};
use super::{DIRECT, DeltaUsage, MessageUsage, error_response, message_id, stop_reason, tool_id};
use crate::{ErrorReply, Flow, write};

/// Encodes one call's GTL events as Anthropic's streamed answer.
///
/// Feed it every event of the call with [`push`](Self::push); it appends
/// the bytes to send to the caller's buffer (a `Vec<u8>` or `BytesMut`)
/// and says whether the stream goes on. What it writes is what Anthropic
/// sends:
///
/// - before the first content, `message_start` with the message's id,
///   model and the usage known so far;
/// - `token`s as `text_delta`s of a text block, opened with
///   `content_block_start` and closed with `content_block_stop` when a tool
///   call or the end comes; the first block is followed by a `ping`, as
///   Anthropic does;
/// - each `tool_call` (GTL sends calls whole) as its own `tool_use` block:
///   `content_block_start` with the id and name and `input: {}`, one
///   `input_json_delta` with the arguments, `content_block_stop`; blocks
///   are numbered 0, 1, … in order;
/// - at `done`, `message_delta` with the `stop_reason` and the final
///   usage, then `message_stop`;
/// - an `error` after the first byte as an `error` event.
///
/// `usage` events are running totals: they are folded, and the totals go
/// in `message_start` (what is known by then) and in `message_delta` (all
/// of it), whether they came before or after the last text. `status` and
/// `patch` events write nothing.
///
/// Nothing is written before the first output, so an error that comes
/// first is returned as [`Flow::Reject`] for the route to answer with a
/// proper status. Per event it writes only into the caller's buffer (a
/// tool call id outside Anthropic's alphabet, `^[a-zA-Z0-9_-]+$`, is the
/// one exception: it is rewritten, `_` for each other character, into a
/// new string).
#[derive(Debug, Clone)]
pub struct StreamEncoder {
    id: String,
    model: String,
    /// Whether any byte was written (a keep-alive counts).
    started: bool,
    /// Whether the answer's opening (message_start) was written.
    opened: bool,
    finished: bool,
    /// The index the next content block gets.
    next_block: u32,
    /// The open text block, if any.
    open_text: Option<u32>,
    usage: Usage,
}

impl StreamEncoder {
    /// An encoder for the call in session `session_id` (the message id is
    /// `msg_<session_id>`), answering as `model`.
    pub fn new(session_id: &str, model: &str) -> Self {
        Self {
            id: message_id(session_id),
            model: model.to_owned(),
            started: false,
            opened: false,
            finished: false,
            next_block: 0,
            open_text: None,
            usage: Usage::default(),
        }
    }

    /// Whether any byte has been written (after which errors go in-stream).
    pub fn has_started(&self) -> bool {
        self.started
    }

    /// Whether the stream has ended (`message_stop` or an error was
    /// written, or the call was rejected). Later events write nothing.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Appends a `ping` event, Anthropic's keep-alive: for the silences GTL
    /// leaves while a provider generates a tool call (calls are sent
    /// whole). It counts as the first byte.
    pub fn keep_alive<B: BufMut>(&mut self, out: &mut B) {
        self.started = true;
        ping(out);
    }

    /// Encodes one event into `out`. See the [type docs](Self).
    pub fn push<B: BufMut>(&mut self, body: &Body, out: &mut B) -> Flow {
        if self.finished {
            return Flow::End;
        }
        match body {
            Body::Token(token) if !token.text.is_empty() => {
                self.start(out);
                let index = match self.open_text {
                    Some(index) => index,
                    None => {
                        let index = self.open_block(out, Block::text(""));
                        self.open_text = Some(index);
                        index
                    }
                };
                let delta = DeltaEvent {
                    kind: "content_block_delta",
                    index,
                    delta: Delta::TextDelta { text: &token.text },
                };
                write::event(out, "content_block_delta", &delta);
            }
            Body::ToolCall(call) => {
                self.start(out);
                self.close_text(out);
                self.tool_call(call, out);
            }
            Body::Usage(usage) => write::merge_usage(&mut self.usage, usage),
            Body::Done(done) => {
                self.start(out);
                self.close_text(out);
                let delta = MessageDeltaEvent {
                    kind: "message_delta",
                    delta: MessageDelta {
                        stop_reason: stop_reason(&done.finish_reason),
                        stop_sequence: None,
                        stop_details: None,
                        container: None,
                    },
                    usage: DeltaUsage::from(&self.usage),
                };
                write::event(out, "message_delta", &delta);
                write::event(out, "message_stop", &Typed::new("message_stop"));
                self.finished = true;
                return Flow::End;
            }
            Body::Error(error) => {
                self.finished = true;
                if !self.started {
                    return Flow::Reject(reply(error));
                }
                let (_, kind) = shape(error.code());
                let body = ErrorBody {
                    kind: "error",
                    error: ErrorObject {
                        kind,
                        message: &error.message,
                    },
                    request_id: None,
                };
                write::event(out, "error", &body);
                return Flow::End;
            }
            _ => {}
        }
        Flow::Continue
    }

    fn start<B: BufMut>(&mut self, out: &mut B) {
        if self.opened {
            return;
        }
        self.opened = true;
        self.started = true;
        let start = MessageStart {
            kind: "message_start",
            message: WireMessage {
                id: &self.id,
                kind: "message",
                role: "assistant",
                content: Vec::new(),
                model: &self.model,
                stop_reason: None,
                stop_sequence: None,
                stop_details: None,
                usage: MessageUsage::from(&self.usage),
                container: None,
            },
        };
        write::event(out, "message_start", &start);
    }

    /// Writes `content_block_start` for the next block (and, after the
    /// first one, a `ping`); returns the block's index.
    fn open_block<B: BufMut>(&mut self, out: &mut B, block: Block<'_>) -> u32 {
        let index = self.next_block;
        self.next_block += 1;
        let start = BlockStart {
            kind: "content_block_start",
            index,
            content_block: block,
        };
        write::event(out, "content_block_start", &start);
        if index == 0 {
            ping(out);
        }
        index
    }

    fn close_block<B: BufMut>(out: &mut B, index: u32) {
        let stop = BlockStop {
            kind: "content_block_stop",
            index,
        };
        write::event(out, "content_block_stop", &stop);
    }

    fn close_text<B: BufMut>(&mut self, out: &mut B) {
        if let Some(index) = self.open_text.take() {
            Self::close_block(out, index);
        }
    }

    fn tool_call<B: BufMut>(&mut self, call: &ToolCall, out: &mut B) {
        let (name, arguments) = call
            .function
            .as_ref()
            .map_or(("", ""), |f| (f.name.as_str(), f.arguments.as_str()));
        let block = Block::ToolUse {
            id: tool_id(&call.id),
            name,
            input: empty_object(),
            caller: DIRECT,
        };
        let index = self.open_block(out, block);
        // The arguments go as they are, in one delta: a client joins the
        // deltas and parses the result, which is the arguments again.
        if !arguments.is_empty() {
            let delta = DeltaEvent {
                kind: "content_block_delta",
                index,
                delta: Delta::InputJsonDelta {
                    partial_json: arguments,
                },
            };
            write::event(out, "content_block_delta", &delta);
        }
        Self::close_block(out, index);
    }
}

impl Block<'_> {
    fn text(text: &str) -> Block<'_> {
        Block::Text {
            text,
            citations: None,
        }
    }
}

/// `{}`, the `input` a streamed `tool_use` block starts with.
fn empty_object() -> &'static RawValue {
    // A constant JSON text: parsing it cannot fail.
    serde_json::from_str("{}").expect("`{}` is JSON")
}

fn ping<B: BufMut>(out: &mut B) {
    write::event(out, "ping", &Typed::new("ping"));
}

/// The HTTP answer for an error that ends the call before any output.
fn reply(error: &Error) -> ErrorReply {
    let retry_after =
        (error.retry_after_ms > 0).then(|| Duration::from_millis(error.retry_after_ms));
    error_response(error.code(), &error.message, retry_after)
}

#[derive(Serialize)]
struct MessageStart<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    message: WireMessage<'a>,
}

#[derive(Serialize)]
struct BlockStart<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    index: u32,
    content_block: Block<'a>,
}

#[derive(Serialize)]
struct BlockStop {
    #[serde(rename = "type")]
    kind: &'static str,
    index: u32,
}

#[derive(Serialize)]
struct DeltaEvent<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    index: u32,
    delta: Delta<'a>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Delta<'a> {
    TextDelta { text: &'a str },
    InputJsonDelta { partial_json: &'a str },
}

#[derive(Serialize)]
struct MessageDeltaEvent {
    #[serde(rename = "type")]
    kind: &'static str,
    delta: MessageDelta,
    usage: DeltaUsage,
}

#[derive(Serialize)]
struct MessageDelta {
    stop_reason: &'static str,
    stop_sequence: Option<()>,
    stop_details: Option<()>,
    container: Option<()>,
}

/// An event that is only its type (`message_stop`, `ping`).
#[derive(Serialize)]
struct Typed {
    #[serde(rename = "type")]
    kind: &'static str,
}

impl Typed {
    fn new(kind: &'static str) -> Self {
        Self { kind }
    }
}
