//! Ollama's `/api/chat` answer → GTL events.
//!
//! [`ChatDecoder`] is the [`NdjsonHandler`] the shared driver feeds one line
//! at a time; a `"stream": false` answer is one JSON object of the same
//! shape as the final line, decoded by [`ChatDecoder::unary`]. No IO.

use std::sync::Arc;

use gtl_proto::{Body, Done, Token, Usage};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::http::{ErrorBody, NdjsonHandler, malformed};
use crate::tools::ToolCalls;

/// One line of the stream (`ChatStreamEvent`), the unary answer
/// (`ChatResponse`) or an in-band error (`ErrorResponse`).
#[derive(Debug, Deserialize)]
struct Line<'a> {
    #[serde(borrow, default)]
    message: Option<LineMessage<'a>>,
    #[serde(default)]
    done: bool,
    #[serde(default)]
    done_reason: Option<String>,
    #[serde(default)]
    prompt_eval_count: Option<u64>,
    #[serde(default)]
    eval_count: Option<u64>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct LineMessage<'a> {
    #[serde(default)]
    content: Option<String>,
    #[serde(borrow, default)]
    tool_calls: Option<Vec<LineToolCall<'a>>>,
}

#[derive(Debug, Deserialize)]
struct LineToolCall<'a> {
    /// Newer Ollama versions give calls an id; older ones do not.
    #[serde(default)]
    id: Option<String>,
    #[serde(borrow)]
    function: LineFunction<'a>,
}

#[derive(Debug, Deserialize)]
struct LineFunction<'a> {
    name: String,
    /// A JSON object (kept byte for byte); tolerated as a JSON string.
    #[serde(borrow, default)]
    arguments: Option<&'a RawValue>,
}

/// Decodes one `/api/chat` answer into GTL events.
///
/// It yields `token` and `tool_call` events as lines come (a call is whole
/// in one line: Ollama sends its arguments as a JSON object, which becomes
/// GTL's JSON text unchanged), then `usage` and `done` from the final
/// `"done": true` line. An `{"error": …}` line (Ollama's in-band error,
/// sent under HTTP 200), an unparsable line, or a body that ends before
/// `done` yields one `error` event instead. Nothing follows the terminal
/// event.
#[derive(Debug)]
pub(crate) struct ChatDecoder {
    /// The provider's name, prefixing error messages.
    provider: Arc<str>,
    tool_calls: ToolCalls,
    finished: bool,
}

impl ChatDecoder {
    /// A decoder at the start of an answer from `provider`.
    pub(crate) fn new(provider: Arc<str>) -> Self {
        Self {
            provider,
            tool_calls: ToolCalls::new(),
            finished: false,
        }
    }

    /// Decodes a whole `"stream": false` answer.
    pub(crate) fn unary(provider: Arc<str>, body: &[u8], out: &mut Vec<Body>) {
        let mut decoder = Self::new(provider);
        decoder.on_line(body, out);
        decoder.on_end(out);
    }

    fn fail(&mut self, error: Body, out: &mut Vec<Body>) {
        self.finished = true;
        out.push(error);
    }
}

impl NdjsonHandler for ChatDecoder {
    fn on_line(&mut self, line: &[u8], out: &mut Vec<Body>) {
        if self.finished {
            return;
        }
        let parsed: Line<'_> = match serde_json::from_slice(line) {
            Ok(parsed) => parsed,
            Err(e) => {
                let error = malformed(format!("{}: malformed line: {e}", self.provider));
                return self.fail(error, out);
            }
        };
        if let Some(message) = parsed.error {
            let body = ErrorBody {
                message,
                ..ErrorBody::default()
            };
            return self.fail(body.to_error(&self.provider).to_event(), out);
        }
        if let Some(message) = parsed.message {
            if let Some(text) = message.content.filter(|t| !t.is_empty()) {
                out.push(Body::Token(Token { text }));
            }
            for call in message.tool_calls.unwrap_or_default() {
                let id = call.id.filter(|id| !id.is_empty());
                let arguments = arguments_text(call.function.arguments);
                self.tool_calls
                    .whole(id.as_deref(), &call.function.name, &arguments, out);
            }
        }
        if parsed.done {
            if parsed.prompt_eval_count.is_some() || parsed.eval_count.is_some() {
                out.push(Body::Usage(Usage {
                    tokens_in: parsed.prompt_eval_count.unwrap_or(0),
                    tokens_out: parsed.eval_count.unwrap_or(0),
                    ..Usage::default()
                }));
            }
            let finish_reason = if !self.tool_calls.is_empty() {
                "tool_calls"
            } else if parsed.done_reason.as_deref() == Some("length") {
                "length"
            } else {
                // "stop", and "load"/"unload" (an empty answer).
                "stop"
            };
            self.finished = true;
            out.push(Body::Done(Done {
                finish_reason: finish_reason.to_owned(),
            }));
        }
    }

    fn on_end(&mut self, out: &mut Vec<Body>) {
        if !self.finished {
            let error = malformed(format!(
                "{}: the stream ended before its final `done` line",
                self.provider
            ));
            self.fail(error, out);
        }
    }
}

/// The arguments as GTL's JSON text: an object as sent, a JSON string
/// unwrapped, nothing as `{}`.
fn arguments_text(arguments: Option<&RawValue>) -> String {
    let Some(raw) = arguments else {
        return String::new();
    };
    serde_json::from_str::<String>(raw.get()).unwrap_or_else(|_| raw.get().to_owned())
}

#[cfg(test)]
mod tests {
    use gtl_proto::{ErrorCode, FunctionCall, Phase, ToolCall};

    use super::*;
    use crate::http::{Ndjson, StreamDecoder as _};

    const CHAT_TEXT: &[u8] = include_bytes!("../../tests/fixtures/ollama/chat_text.ndjson");
    const CHAT_TOOL_CALL: &[u8] =
        include_bytes!("../../tests/fixtures/ollama/chat_tool_call.ndjson");

    fn decoder() -> Ndjson<ChatDecoder> {
        Ndjson::new(ChatDecoder::new(Arc::from("ollama")))
    }

    /// Decodes a body delivered in the given chunks, framed as the driver
    /// frames it.
    fn decode_chunks<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Vec<Body> {
        let mut decoder = decoder();
        let mut out = Vec::new();
        for chunk in chunks {
            decoder.on_chunk(chunk, &mut out);
        }
        decoder.on_end(&mut out);
        out
    }

    fn decode(body: &[u8]) -> Vec<Body> {
        decode_chunks([body])
    }

    fn token(text: &str) -> Body {
        Body::Token(Token { text: text.into() })
    }

    fn done(reason: &str) -> Body {
        Body::Done(Done {
            finish_reason: reason.into(),
        })
    }

    fn usage(tokens_in: u64, tokens_out: u64) -> Body {
        Body::Usage(Usage {
            tokens_in,
            tokens_out,
            ..Usage::default()
        })
    }

    fn call(id: &str, name: &str, arguments: &str) -> Body {
        Body::ToolCall(ToolCall {
            id: id.into(),
            function: Some(FunctionCall {
                name: name.into(),
                arguments: arguments.into(),
            }),
        })
    }

    fn error_of(body: &Body) -> (ErrorCode, String) {
        let Body::Error(e) = body else {
            panic!("not an error: {body:?}")
        };
        // The driver sets phases; the decoder leaves them unset.
        assert_eq!(e.phase(), Phase::BeforeFirstToken);
        (e.code(), e.message.clone())
    }

    #[test]
    fn text_fixture() {
        assert_eq!(
            decode(CHAT_TEXT),
            [token("The"), usage(26, 282), done("stop")]
        );
    }

    #[test]
    fn tool_call_fixture_serializes_arguments() {
        assert_eq!(
            decode(CHAT_TOOL_CALL),
            [
                call("call_0", "get_weather", r#"{"city":"Tokyo"}"#),
                usage(169, 15),
                done("tool_calls"),
            ]
        );
    }

    #[test]
    fn fixtures_split_at_every_byte_offset() {
        for (body, expected) in [
            (CHAT_TEXT, decode(CHAT_TEXT)),
            (CHAT_TOOL_CALL, decode(CHAT_TOOL_CALL)),
        ] {
            for cut in 0..=body.len() {
                assert_eq!(
                    decode_chunks([&body[..cut], &body[cut..]]),
                    expected,
                    "cut at {cut}"
                );
            }
            assert_eq!(decode_chunks(body.chunks(1)), expected);
        }
    }

    #[test]
    fn parallel_tool_calls_keep_ids_and_argument_order() {
        let body = br#"{"message":{"role":"assistant","content":"","tool_calls":[{"function":{"name":"get_weather","arguments":{"z":1,"a":{"b":[1,2]}}}},{"id":"call_x","function":{"name":"get_time","arguments":"{\"tz\":\"UTC\"}"}}]},"done":false}
{"message":{"role":"assistant","content":"","tool_calls":[{"function":{"name":"noop"}}]},"done":false}
{"message":{"role":"assistant","content":""},"done":true,"done_reason":"stop"}
"#;
        assert_eq!(
            decode(body),
            [
                call("call_0", "get_weather", r#"{"z":1,"a":{"b":[1,2]}}"#),
                call("call_x", "get_time", r#"{"tz":"UTC"}"#),
                call("call_2", "noop", "{}"),
                done("tool_calls"),
            ]
        );
    }

    #[test]
    fn unary_answers_decode_whole() {
        let body = br#"{"model":"llama3.2","created_at":"2023-12-12T14:13:43.416799Z","message":{"role":"assistant","content":"Hello! How are you today?"},"done":true,"done_reason":"length","total_duration":5191566416,"prompt_eval_count":26,"eval_count":298}"#;
        let mut out = Vec::new();
        ChatDecoder::unary(Arc::from("ollama"), body, &mut out);
        assert_eq!(
            out,
            [
                token("Hello! How are you today?"),
                usage(26, 298),
                done("length")
            ]
        );
        let mut out = Vec::new();
        ChatDecoder::unary(Arc::from("ollama"), b"{\"done\":false}", &mut out);
        assert!(error_of(&out[0]).1.contains("before its final `done`"));
    }

    #[test]
    fn error_line_mid_stream() {
        // The documented in-band error (docs/api/errors.mdx), after output.
        let body =
            br#"{"model":"gemma4","message":{"role":"assistant","content":" Yes"},"done":false}
{"error":"an error was encountered while running the model"}
{"model":"gemma4","message":{"role":"assistant","content":"ignored"},"done":false}
"#;
        let events = decode(body);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0], token(" Yes"));
        assert_eq!(
            error_of(&events[1]),
            (
                ErrorCode::ProviderError,
                "ollama: an error was encountered while running the model".into()
            )
        );
    }

    #[test]
    fn in_band_errors_are_classified() {
        let cases = [
            (
                r#"{"error":"model 'nope' not found"}"#,
                ErrorCode::ModelNotFound,
            ),
            (
                r#"{"error":"the input length exceeds the context length"}"#,
                ErrorCode::ContextLengthExceeded,
            ),
            (r#"{"error":"unexpected EOF"}"#, ErrorCode::ProviderError),
        ];
        for (line, code) in cases {
            assert_eq!(error_of(&decode(line.as_bytes())[0]).0, code, "{line}");
        }
    }

    #[test]
    fn cut_stream_is_an_error() {
        let first_line = CHAT_TEXT.iter().position(|b| *b == b'\n').unwrap() + 1;
        let events = decode(&CHAT_TEXT[..first_line]);
        assert_eq!(events[0], token("The"));
        assert_eq!(error_of(&events[1]).0, ErrorCode::ProviderError);
        assert_eq!(events.len(), 2);
        assert_eq!(error_of(&decode(b"")[0]).0, ErrorCode::ProviderError);
        // Cut inside the final line: the partial line is malformed.
        let events = decode(&CHAT_TEXT[..CHAT_TEXT.len() - 20]);
        assert!(
            error_of(&events[1]).1.contains("malformed line"),
            "{events:?}"
        );
    }

    #[test]
    fn malformed_line_is_an_error() {
        let events = decode(b"{\"message\":{\"content\":\"a\"},\"done\":false}\n{not json\n");
        assert_eq!(events[0], token("a"));
        assert!(error_of(&events[1]).1.starts_with("ollama: malformed line"));
        assert_eq!(events.len(), 2);
    }

    #[test]
    fn nothing_after_done() {
        let mut body = CHAT_TEXT.to_vec();
        body.extend_from_slice(b"{\"message\":{\"content\":\"late\"},\"done\":false}\n");
        assert_eq!(decode(&body), [token("The"), usage(26, 282), done("stop")]);
    }
}
