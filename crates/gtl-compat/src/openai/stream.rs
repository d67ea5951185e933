//! GTL events → the `chat.completion.chunk` event stream.

use std::time::Duration;

use bytes::BufMut;
use gtl_proto::{Body, Error, ToolCall, Usage};
use serde::Serialize;

use super::error::{ErrorBody, ErrorObject, shape};
use super::response::WireUsage;
use super::{completion_id, error_response, finish_reason};
use crate::{Flow, write};

/// Encodes one call's GTL events as OpenAI's streamed answer.
///
/// Feed it every event of the call with [`push`](Self::push); it appends
/// the bytes to send to the caller's buffer (a `Vec<u8>` or `BytesMut`)
/// and says whether the stream goes on. What it writes is what OpenAI
/// sends:
///
/// - before the first content, a chunk with `delta: {"role":"assistant",
///   "content":""}`;
/// - each `token` as a chunk with `delta.content`;
/// - each `tool_call` (GTL sends calls whole) as a chunk with its `index`
///   (0, 1, … in the order the calls came, stable for parallel calls),
///   `id`, `type` and `function.name` with empty `arguments`, then a chunk
///   with the arguments;
/// - at `done`, a chunk with an empty `delta` and the `finish_reason`,
///   then, when the request set `stream_options.include_usage`, the usage
///   chunk (`choices: []`; every other chunk then has `"usage": null`), and
///   `data: [DONE]`;
/// - an `error` after the first byte as OpenAI's in-stream error,
///   `data: {"error":{…}}`, and no `[DONE]`.
///
/// `usage` events are running totals; they are folded and sent once, at
/// the end, whether they came before or after the last text. `status` and
/// `patch` events write nothing.
///
/// Nothing is written before the first output, so an error that comes
/// first is returned as [`Flow::Reject`] for the route to answer with a
/// proper status. Per event it writes only into the caller's buffer: the
/// chunk's fixed fields are borrowed, and text is escaped as it is copied.
#[derive(Debug, Clone)]
pub struct StreamEncoder {
    id: String,
    model: String,
    created: u64,
    include_usage: bool,
    /// Whether any byte was written (a keep-alive counts).
    started: bool,
    /// Whether the answer's opening (role chunk) was written.
    opened: bool,
    finished: bool,
    next_tool_index: u32,
    usage: Usage,
}

impl StreamEncoder {
    /// An encoder for the call in session `session_id` (the chunks' id is
    /// `chatcmpl-<session_id>`), answering as `model`, created at `created`
    /// (Unix seconds), with the usage chunk if `include_usage`.
    pub fn new(session_id: &str, model: &str, created: u64, include_usage: bool) -> Self {
        Self {
            id: completion_id(session_id),
            model: model.to_owned(),
            created,
            include_usage,
            started: false,
            opened: false,
            finished: false,
            next_tool_index: 0,
            usage: Usage::default(),
        }
    }

    /// Whether any byte has been written (after which errors go in-stream).
    pub fn has_started(&self) -> bool {
        self.started
    }

    /// Whether the stream has ended (`[DONE]` or an error was written, or
    /// the call was rejected). Later events write nothing.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Appends an SSE comment, which every client skips: a keep-alive for
    /// the silences GTL leaves while a provider generates a tool call
    /// (calls are sent whole). It counts as the first byte.
    pub fn keep_alive<B: BufMut>(&mut self, out: &mut B) {
        self.started = true;
        out.put_slice(b": keep-alive\n\n");
    }

    /// Encodes one event into `out`. See the [type docs](Self).
    pub fn push<B: BufMut>(&mut self, body: &Body, out: &mut B) -> Flow {
        if self.finished {
            return Flow::End;
        }
        match body {
            Body::Token(token) if !token.text.is_empty() => {
                self.start(out);
                self.chunk(
                    out,
                    TextDelta {
                        content: &token.text,
                    },
                    None,
                );
            }
            Body::ToolCall(call) => {
                self.start(out);
                self.tool_call(call, out);
            }
            Body::Usage(usage) => write::merge_usage(&mut self.usage, usage),
            Body::Done(done) => {
                self.start(out);
                self.chunk(out, Empty {}, Some(finish_reason(&done.finish_reason)));
                if self.include_usage {
                    let chunk = self.frame([(); 0], Some(WireUsage::from(&self.usage)));
                    write::data(out, &chunk);
                }
                out.put_slice(b"data: [DONE]\n\n");
                self.finished = true;
                return Flow::End;
            }
            Body::Error(error) => {
                self.finished = true;
                if !self.started {
                    return Flow::Reject(reply(error));
                }
                let (_, kind, code) = shape(error.code());
                let body = ErrorBody {
                    error: ErrorObject {
                        message: &error.message,
                        kind,
                        param: None,
                        code,
                    },
                };
                write::data(out, &body);
                return Flow::End;
            }
            _ => {}
        }
        Flow::Continue
    }

    fn start<B: BufMut>(&mut self, out: &mut B) {
        if !self.opened {
            self.opened = true;
            self.started = true;
            self.chunk(
                out,
                RoleDelta {
                    role: "assistant",
                    content: "",
                },
                None,
            );
        }
    }

    fn tool_call<B: BufMut>(&mut self, call: &ToolCall, out: &mut B) {
        let index = self.next_tool_index;
        self.next_tool_index += 1;
        let (name, arguments) = call
            .function
            .as_ref()
            .map_or(("", ""), |f| (f.name.as_str(), f.arguments.as_str()));
        let head = ToolCallHead {
            index,
            id: &call.id,
            kind: "function",
            function: NameAndArguments {
                name,
                arguments: "",
            },
        };
        self.chunk(out, ToolCallsDelta { tool_calls: [head] }, None);
        if !arguments.is_empty() {
            let rest = ToolCallArguments {
                index,
                function: Arguments { arguments },
            };
            self.chunk(out, ToolCallsDelta { tool_calls: [rest] }, None);
        }
    }

    /// Writes one chunk with one choice.
    fn chunk<B: BufMut, D: Serialize>(
        &self,
        out: &mut B,
        delta: D,
        finish_reason: Option<&'static str>,
    ) {
        let choice = ChunkChoice {
            index: 0,
            delta,
            logprobs: None,
            finish_reason,
        };
        write::data(out, &self.frame([choice], None));
    }

    fn frame<C: Serialize>(&self, choices: C, usage: Option<WireUsage>) -> Chunk<'_, C> {
        Chunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices,
            usage: match usage {
                Some(usage) => UsageField::Usage(usage),
                None if self.include_usage => UsageField::Null,
                None => UsageField::Omitted,
            },
        }
    }
}

/// The HTTP answer for an error that ends the call before any output.
fn reply(error: &Error) -> crate::ErrorReply {
    let retry_after =
        (error.retry_after_ms > 0).then(|| Duration::from_millis(error.retry_after_ms));
    error_response(error.code(), &error.message, retry_after)
}

#[derive(Serialize)]
struct Chunk<'a, C> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: C,
    #[serde(skip_serializing_if = "UsageField::is_omitted")]
    usage: UsageField,
}

/// A chunk's `usage`: absent unless the request asked for usage; then
/// `null` on every chunk but the last.
#[derive(Serialize)]
#[serde(untagged)]
enum UsageField {
    Omitted,
    Null,
    Usage(WireUsage),
}

impl UsageField {
    fn is_omitted(&self) -> bool {
        matches!(self, Self::Omitted)
    }
}

#[derive(Serialize)]
struct ChunkChoice<D> {
    index: u32,
    delta: D,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

#[derive(Serialize)]
struct RoleDelta {
    role: &'static str,
    content: &'static str,
}

#[derive(Serialize)]
struct TextDelta<'a> {
    content: &'a str,
}

#[derive(Serialize)]
struct Empty {}

#[derive(Serialize)]
struct ToolCallsDelta<T> {
    tool_calls: [T; 1],
}

#[derive(Serialize)]
struct ToolCallHead<'a> {
    index: u32,
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: NameAndArguments<'a>,
}

#[derive(Serialize)]
struct NameAndArguments<'a> {
    name: &'a str,
    arguments: &'a str,
}

#[derive(Serialize)]
struct ToolCallArguments<'a> {
    index: u32,
    function: Arguments<'a>,
}

#[derive(Serialize)]
struct Arguments<'a> {
    arguments: &'a str,
}
