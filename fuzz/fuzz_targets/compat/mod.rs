//! Shared checks of the dialect request targets.
//!
//! Whatever the bytes, a decoder must not panic, must give the same answer
//! twice, and must either refuse with an error that names a field (when it
//! is about one) and makes a 400 answer whose body is JSON, or return a
//! request that the rest of GTL can take: at least one message, each with
//! a role; tools with a name and JSON parameters; images with data or a
//! URL. Then the request's own strings go back out through the dialect's
//! stream encoder as tokens and tool calls, and every event written must be
//! one `data:` line of JSON (arbitrary text is escaped, never split).

use gtl_compat::{DialectError, ErrorReply, Flow};
use gtl_proto::types::{Content, Part, Source};
use gtl_proto::{Body, CompletionRequest, Done, FunctionCall, Role, Token, ToolCall, Usage};

/// Checks a refusal and its answer.
pub fn check_refusal(error: &DialectError, reply: &ErrorReply) {
    if let Some(param) = error.param() {
        assert!(!param.is_empty(), "an empty param: {error:?}");
    }
    assert!(!error.to_string().is_empty());
    assert_eq!(reply.status, 400);
    serde_json::from_slice::<serde_json::Value>(&reply.body).expect("the 400 body is JSON");
}

/// Checks what a decoder accepted.
pub fn check_request(request: &CompletionRequest) {
    assert!(!request.model.is_empty(), "an empty model");
    assert!(!request.messages.is_empty(), "no messages");
    for message in &request.messages {
        assert_ne!(message.role(), Role::Unspecified, "a message without a role");
        if message.role() == Role::Tool {
            assert!(message.content.is_some(), "a tool message without content");
        }
        for call in &message.tool_calls {
            assert!(call.function.is_some(), "a tool call without a function");
        }
        if let Some(Content::Parts(parts)) = &message.content {
            for part in &parts.parts {
                match &part.part {
                    Some(Part::Text(_)) => {}
                    Some(Part::Image(image)) => match &image.source {
                        Some(Source::Data(_)) => {
                            assert!(image.media_type.starts_with("image/"));
                        }
                        Some(Source::Url(url)) => {
                            assert!(url.starts_with("https:") || url.starts_with("http:"));
                        }
                        None => panic!("an image without a source"),
                    },
                    None => panic!("an empty part"),
                }
            }
        }
    }
    for tool in &request.tools {
        let function = tool.function.as_ref().expect("a tool without a function");
        assert!(!function.name.is_empty(), "a tool without a name");
        if !function.parameters.is_empty() {
            serde_json::from_str::<serde_json::Value>(&function.parameters)
                .expect("tool parameters are JSON");
        }
    }
}

/// The request's strings as an answer: each text as a token, each tool
/// call (and each tool, as a call of itself) as a tool call, then usage
/// and done.
pub fn answer_events(request: &CompletionRequest) -> Vec<Body> {
    let mut events = Vec::new();
    for message in &request.messages {
        match &message.content {
            Some(Content::Text(text)) => events.push(token(text)),
            Some(Content::Parts(parts)) => {
                for part in &parts.parts {
                    if let Some(Part::Text(text)) = &part.part {
                        events.push(token(text));
                    }
                }
            }
            None => {}
        }
        for call in &message.tool_calls {
            events.push(Body::ToolCall(call.clone()));
        }
        events.push(token(&message.tool_call_id));
    }
    for tool in &request.tools {
        let function = tool.function.clone().unwrap_or_default();
        events.push(Body::ToolCall(ToolCall {
            id: function.description.clone(),
            function: Some(FunctionCall {
                name: function.name,
                arguments: function.parameters,
            }),
        }));
    }
    events.push(Body::Usage(Usage {
        tokens_in: request.messages.len() as u64,
        tokens_out: events.len() as u64,
        cost: 0.0,
        cached_tokens: 0,
    }));
    events.push(Body::Done(Done {
        finish_reason: request.stop.first().cloned().unwrap_or_default(),
    }));
    events
}

fn token(text: &str) -> Body {
    Body::Token(Token {
        text: text.to_owned(),
    })
}

/// Runs an encoder over `events` and checks every event it wrote.
pub fn check_stream(events: &[Body], mut push: impl FnMut(&Body, &mut Vec<u8>) -> Flow) {
    let mut out = Vec::new();
    let mut ended = false;
    for body in events {
        match push(body, &mut out) {
            Flow::Continue => assert!(!ended),
            Flow::End => ended = true,
            other => panic!("an answer without errors gave {other:?}"),
        }
    }
    assert!(ended, "the stream did not end at done");
    let text = std::str::from_utf8(&out).expect("the stream is UTF-8");
    assert!(text.ends_with("\n\n"));
    for event in text[..text.len() - 2].split("\n\n") {
        let mut data_lines = 0;
        for line in event.lines() {
            if let Some(data) = line.strip_prefix("data: ") {
                data_lines += 1;
                if data != "[DONE]" {
                    serde_json::from_str::<serde_json::Value>(data)
                        .unwrap_or_else(|e| panic!("{e}: {data}"));
                }
            } else {
                assert!(line.starts_with("event: "), "a stray line: {line:?}");
            }
        }
        assert_eq!(data_lines, 1, "an event is one data line: {event:?}");
    }
}
