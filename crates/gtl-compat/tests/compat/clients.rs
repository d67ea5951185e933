//! Readers of the two dialects' streams, written the way the official
//! SDKs accumulate them (OpenAI's `ChatCompletionStreamState`,
//! Anthropic's `MessageStream`), independently of the encoders. Fed bytes
//! in arbitrary chunks, they also check the stream's shape: the order of
//! events, stable ids, indexes, and nothing after the end.

use serde_json::Value;

/// What a client makes of a stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Answer {
    pub(crate) text: String,
    /// `(id, name, arguments)`, by index.
    pub(crate) tool_calls: Vec<(String, String, String)>,
    /// `(prompt tokens, output tokens, cached tokens)`; Anthropic's prompt
    /// is the sum of its three input counts.
    pub(crate) usage: Option<(u64, u64, u64)>,
    /// The dialect's own finish or stop reason.
    pub(crate) finish: Option<String>,
    /// `(type, message)` of an error event.
    pub(crate) error: Option<(String, String)>,
    /// `[DONE]` or `message_stop` came.
    pub(crate) ended: bool,
}

/// Splits bytes into SSE events, whatever the chunking.
#[derive(Debug, Default)]
struct Sse {
    buffer: Vec<u8>,
}

impl Sse {
    /// Feeds bytes; calls `on_event(event name, data)` per complete event.
    fn feed(&mut self, bytes: &[u8], mut on_event: impl FnMut(&str, &str)) {
        self.buffer.extend_from_slice(bytes);
        while let Some(end) = self.buffer.windows(2).position(|w| w == b"\n\n") {
            let block: Vec<u8> = self.buffer.drain(..end + 2).collect();
            let block = std::str::from_utf8(&block).expect("an event is UTF-8");
            let mut name = "";
            let mut data = Vec::new();
            for line in block.lines() {
                if let Some(value) = line.strip_prefix("event: ") {
                    name = value;
                } else if let Some(value) = line.strip_prefix("data: ") {
                    data.push(value);
                } else {
                    assert!(
                        line.is_empty() || line.starts_with(':'),
                        "unexpected line {line:?}"
                    );
                }
            }
            if !data.is_empty() {
                on_event(name, &data.join("\n"));
            }
        }
    }

    fn finish(&self) {
        assert!(self.buffer.is_empty(), "bytes after the last event");
    }
}

fn u64_at(value: &Value, key: &str) -> u64 {
    value.get(key).and_then(Value::as_u64).unwrap_or(0)
}

/// Reads an OpenAI `chat.completion.chunk` stream given in `chunks`.
pub(crate) fn read_openai<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Answer {
    let mut sse = Sse::default();
    let mut answer = Answer::default();
    let mut header: Option<(Value, Value, Value)> = None;
    let mut saw_role = false;
    for chunk in chunks {
        sse.feed(chunk, |name, data| {
            assert!(!answer.ended, "an event after [DONE]");
            assert!(answer.error.is_none(), "an event after the error");
            assert_eq!(name, "", "OpenAI events have no name");
            if data == "[DONE]" {
                answer.ended = true;
                return;
            }
            let chunk: Value = serde_json::from_str(data).expect("chunk is JSON");
            if let Some(error) = chunk.get("error") {
                answer.error = Some((
                    error["type"].as_str().unwrap().to_owned(),
                    error["message"].as_str().unwrap().to_owned(),
                ));
                return;
            }
            assert_eq!(chunk["object"], "chat.completion.chunk");
            let this = (
                chunk["id"].clone(),
                chunk["created"].clone(),
                chunk["model"].clone(),
            );
            assert_eq!(header.get_or_insert_with(|| this.clone()), &this);
            assert!(answer.usage.is_none(), "a chunk after the usage chunk");
            if let Some(usage) = chunk.get("usage").filter(|u| !u.is_null()) {
                assert_eq!(chunk["choices"], Value::Array(Vec::new()));
                let cached = usage
                    .get("prompt_tokens_details")
                    .map_or(0, |d| u64_at(d, "cached_tokens"));
                let (prompt, completion) = (
                    u64_at(usage, "prompt_tokens"),
                    u64_at(usage, "completion_tokens"),
                );
                assert_eq!(u64_at(usage, "total_tokens"), prompt + completion);
                answer.usage = Some((prompt, completion, cached));
                return;
            }
            let choices = chunk["choices"].as_array().expect("choices");
            assert_eq!(choices.len(), 1);
            let choice = &choices[0];
            assert_eq!(choice["index"], 0);
            let delta = &choice["delta"];
            if !saw_role {
                assert_eq!(delta["role"], "assistant", "the first chunk has the role");
                saw_role = true;
            }
            assert!(answer.finish.is_none(), "a delta after the finish_reason");
            if let Some(text) = delta.get("content").and_then(Value::as_str) {
                answer.text.push_str(text);
            }
            for call in delta
                .get("tool_calls")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let index = call["index"].as_u64().expect("index") as usize;
                if index == answer.tool_calls.len() {
                    // A new call opens with its id, type and name.
                    assert_eq!(call["type"], "function");
                    answer.tool_calls.push((
                        call["id"].as_str().expect("id").to_owned(),
                        call["function"]["name"].as_str().expect("name").to_owned(),
                        String::new(),
                    ));
                } else {
                    assert!(index < answer.tool_calls.len(), "index {index} skips one");
                }
                if let Some(arguments) = call["function"].get("arguments").and_then(Value::as_str) {
                    answer.tool_calls[index].2.push_str(arguments);
                }
            }
            if let Some(reason) = choice["finish_reason"].as_str() {
                answer.finish = Some(reason.to_owned());
            }
        });
    }
    sse.finish();
    answer
}

/// Reads an Anthropic Messages event stream given in `chunks`.
pub(crate) fn read_anthropic<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Answer {
    let mut sse = Sse::default();
    let mut answer = Answer::default();
    let mut started = false;
    // Per block index: its type and whether it is open.
    let mut blocks: Vec<(String, bool)> = Vec::new();
    let mut tool_of_block: Vec<Option<usize>> = Vec::new();
    let mut counts = serde_json::json!({});
    for chunk in chunks {
        sse.feed(chunk, |name, data| {
            assert!(!answer.ended, "an event after message_stop");
            assert!(answer.error.is_none(), "an event after the error");
            let event: Value = serde_json::from_str(data).expect("event is JSON");
            assert_eq!(event["type"], name, "the event name is its type");
            if name != "message_start" && name != "ping" {
                assert!(started, "`{name}` before message_start");
            }
            // Counts in `message_delta` replace those of `message_start`
            // that they name, as the SDKs merge them.
            let mut usage_of = |usage: &Value| {
                for (key, value) in usage.as_object().into_iter().flatten() {
                    if value.is_u64() {
                        counts[key.as_str()] = value.clone();
                    }
                }
                let (input, written, read) = (
                    u64_at(&counts, "input_tokens"),
                    u64_at(&counts, "cache_creation_input_tokens"),
                    u64_at(&counts, "cache_read_input_tokens"),
                );
                (
                    input + written + read,
                    u64_at(&counts, "output_tokens"),
                    read,
                )
            };
            match name {
                "message_start" => {
                    assert!(!started, "two message_start");
                    started = true;
                    let message = &event["message"];
                    assert_eq!(message["content"], Value::Array(Vec::new()));
                    answer.usage = Some(usage_of(&message["usage"]));
                }
                "content_block_start" => {
                    let index = event["index"].as_u64().unwrap() as usize;
                    assert_eq!(index, blocks.len(), "blocks are numbered in order");
                    assert!(blocks.iter().all(|(_, open)| !open), "one block at a time");
                    let block = &event["content_block"];
                    let kind = block["type"].as_str().unwrap().to_owned();
                    let tool = (kind == "tool_use").then(|| {
                        assert_eq!(block["input"], serde_json::json!({}));
                        answer.tool_calls.push((
                            block["id"].as_str().unwrap().to_owned(),
                            block["name"].as_str().unwrap().to_owned(),
                            String::new(),
                        ));
                        answer.tool_calls.len() - 1
                    });
                    if kind == "text" {
                        answer.text.push_str(block["text"].as_str().unwrap());
                    }
                    blocks.push((kind, true));
                    tool_of_block.push(tool);
                }
                "content_block_delta" => {
                    let index = event["index"].as_u64().unwrap() as usize;
                    assert!(blocks[index].1, "a delta to a closed block");
                    let delta = &event["delta"];
                    match (delta["type"].as_str().unwrap(), blocks[index].0.as_str()) {
                        ("text_delta", "text") => {
                            answer.text.push_str(delta["text"].as_str().unwrap());
                        }
                        ("input_json_delta", "tool_use") => {
                            let call = tool_of_block[index].unwrap();
                            answer.tool_calls[call]
                                .2
                                .push_str(delta["partial_json"].as_str().unwrap());
                        }
                        other => panic!("delta {other:?} does not fit its block"),
                    }
                }
                "content_block_stop" => {
                    let index = event["index"].as_u64().unwrap() as usize;
                    assert!(blocks[index].1, "a block stopped twice");
                    blocks[index].1 = false;
                    if let Some(call) = tool_of_block[index]
                        && answer.tool_calls[call].2.is_empty()
                    {
                        // What the SDKs do for a call without deltas: the
                        // start's `input`.
                        answer.tool_calls[call].2 = "{}".to_owned();
                    }
                }
                "message_delta" => {
                    assert!(blocks.iter().all(|(_, open)| !open), "a block left open");
                    answer.finish = Some(event["delta"]["stop_reason"].as_str().unwrap().into());
                    answer.usage = Some(usage_of(&event["usage"]));
                }
                "message_stop" => {
                    assert!(answer.finish.is_some(), "message_stop before message_delta");
                    answer.ended = true;
                }
                "ping" => {}
                "error" => {
                    let error = &event["error"];
                    answer.error = Some((
                        error["type"].as_str().unwrap().to_owned(),
                        error["message"].as_str().unwrap().to_owned(),
                    ));
                }
                other => panic!("unknown event `{other}`"),
            }
        });
    }
    sse.finish();
    answer
}
