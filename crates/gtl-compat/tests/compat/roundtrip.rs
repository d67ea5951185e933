//! This crate's bytes read by GTL's own OpenAI and Anthropic adapters.
//!
//! The adapters are GTL's reference readers of the two wire formats (they
//! are tested against the providers' recorded streams), so what they read
//! back from this crate's answers must be what went in: text, tool calls
//! (ids, names, arguments), usage and finish reasons, streamed and unary,
//! and the error codes. Requests go the other way: a dialect request, once
//! parsed, is what the adapters send on, to the same provider or the other.

use std::time::Duration;

use futures::StreamExt as _;
use gtl_compat::{ErrorReply, anthropic, openai};
use gtl_core::{Completion, Provider, ProviderError};
use gtl_proto::types::Content;
use gtl_proto::{Body, CompletionRequest, ErrorCode, Message, Role};
use gtl_providers::anthropic::AnthropicProvider;
use gtl_providers::openai::OpenAiProvider;
use gtl_providers::{ProviderConfig, ProviderKind};
use gtl_test::{RecordedRequest, ReplayServer, Reply};
use serde_json::{Value, json};

use crate::clients::{Answer, read_anthropic, read_openai};
use crate::support::{CREATED, MODEL, Output, SESSION, anthropic_stream, cases, openai_stream};
use crate::{openai_request, spec};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    OpenAi,
    Anthropic,
}

fn provider(dialect: Dialect, server: &ReplayServer) -> Box<dyn Provider> {
    match dialect {
        Dialect::OpenAi => Box::new(
            OpenAiProvider::new(
                ProviderConfig::new(ProviderKind::OpenAi)
                    .with_api_key("sk-test")
                    .with_base_url(format!("{}/v1", server.url())),
            )
            .unwrap(),
        ),
        Dialect::Anthropic => Box::new(
            AnthropicProvider::new(
                ProviderConfig::new(ProviderKind::Anthropic)
                    .with_api_key("sk-ant-test")
                    .with_base_url(server.url()),
            )
            .unwrap(),
        ),
    }
}

fn hello(stream: bool) -> CompletionRequest {
    CompletionRequest {
        model: "gpt-4o".into(),
        messages: vec![Message {
            role: Role::User as i32,
            content: Some(Content::Text("hi".into())),
            ..Message::default()
        }],
        max_tokens: Some(100),
        stream,
        ..CompletionRequest::default()
    }
}

/// What `dialect`'s adapter reads from a server answering `reply`.
async fn read_back(
    dialect: Dialect,
    reply: Reply,
    request: CompletionRequest,
) -> (Result<Vec<Body>, ProviderError>, RecordedRequest) {
    let server = ReplayServer::start(reply).await;
    let events = match provider(dialect, &server).stream(request).await {
        Ok(events) => Ok(events.collect().await),
        Err(error) => Err(error),
    };
    (events, server.single_request())
}

/// The finish reason GTL reads back: the four both dialects name, else
/// `stop`.
fn read_back_reason(reason: &str) -> &str {
    match reason {
        "length" | "tool_calls" | "content_filter" => reason,
        _ => "stop",
    }
}

/// Compares the aggregates of what went in and what came back.
fn assert_same(name: &str, dialect: Dialect, sent: &Completion, read: &Completion) {
    assert_eq!(read.text, sent.text, "{name}: text");
    // Arguments compare as JSON when they are JSON: Anthropic's unary
    // adapter re-serializes the `input` object it parsed.
    let calls = |c: &Completion, sanitize: bool| -> Vec<(String, String, Value)> {
        c.tool_calls
            .iter()
            .map(|call| {
                let f = call.function.clone().unwrap_or_default();
                let id = if sanitize {
                    call.id.replace([':', '.', '/'], "_")
                } else {
                    call.id.clone()
                };
                let arguments =
                    serde_json::from_str(&f.arguments).unwrap_or(Value::String(f.arguments));
                (id, f.name, arguments)
            })
            .collect()
    };
    assert_eq!(
        calls(read, false),
        calls(sent, dialect == Dialect::Anthropic),
        "{name}: tool calls"
    );
    match (&sent.error, &read.error) {
        (Some(sent), Some(read)) => assert_eq!(read.code(), sent.code(), "{name}: error"),
        (None, None) => {
            assert_eq!(
                read.finish_reason,
                read_back_reason(&sent.finish_reason),
                "{name}: finish"
            );
            let tokens = |c: &Completion| {
                let u = c.usage.unwrap_or_default();
                (u.tokens_in, u.tokens_out, u.cached_tokens)
            };
            assert_eq!(tokens(read), tokens(sent), "{name}: usage");
        }
        other => panic!("{name}: {other:?}"),
    }
}

#[tokio::test]
async fn streams_read_back_as_they_went_in() {
    for (name, events) in cases() {
        let sent: Completion = events.iter().cloned().collect();
        for dialect in [Dialect::OpenAi, Dialect::Anthropic] {
            let bytes = match dialect {
                Dialect::OpenAi => openai_stream(&events, true),
                Dialect::Anthropic => anthropic_stream(&events),
            };
            let Output::Stream(bytes, true) = bytes else {
                continue;
            };
            // Tool calls byte by byte: the adapter reassembles them from
            // any cut.
            let chunk = if sent.tool_calls.is_empty() { 64 } else { 1 };
            let (read, _) = read_back(dialect, Reply::sse(bytes).chunked(chunk), hello(true)).await;
            let read: Completion = read.expect("the stream starts").into_iter().collect();
            assert_same(&name, dialect, &sent, &read);
        }
    }
}

#[tokio::test]
async fn unary_answers_read_back_as_they_went_in() {
    for (name, events) in cases() {
        let sent: Completion = events.iter().cloned().collect();
        if sent.error.is_some() || !sent.finished {
            continue;
        }
        for dialect in [Dialect::OpenAi, Dialect::Anthropic] {
            let body = match dialect {
                Dialect::OpenAi => openai::completion_response(&sent, SESSION, MODEL, CREATED),
                Dialect::Anthropic => anthropic::completion_response(&sent, SESSION, MODEL),
            };
            // The one refusal: arguments that are not an object have no
            // `tool_use` form (see the golden `.reply`).
            let Ok(body) = body else { continue };
            let (read, _) = read_back(dialect, Reply::json(200, body), hello(false)).await;
            let read: Completion = read.expect("the call starts").into_iter().collect();
            assert_same(&name, dialect, &sent, &read);
        }
    }
}

fn served(reply: &ErrorReply) -> Reply {
    reply.headers.iter().fold(
        Reply::json(reply.status, reply.body.clone()),
        |r, (k, v)| r.header(k, v),
    )
}

#[tokio::test]
async fn error_answers_read_back_as_their_code() {
    // What each adapter reads back. The codes a client acts on come back
    // as they went; GTL-only codes (and 500s, which providers also use for
    // overload) come back as the status's general meaning.
    let read_back_as = |code: ErrorCode, dialect: Dialect| match code {
        ErrorCode::Internal | ErrorCode::ProviderError => ErrorCode::ProviderUnavailable,
        ErrorCode::ResumeNotFound => ErrorCode::ModelNotFound,
        ErrorCode::Cancelled
        | ErrorCode::ResumeWindowExceeded
        | ErrorCode::SessionMoved
        | ErrorCode::VersionUnsupported
        | ErrorCode::FrameTooLarge => ErrorCode::InvalidRequest,
        // Anthropic has no error type for either: both are a 400
        // `invalid_request_error`, and the message decides.
        ErrorCode::ContextLengthExceeded | ErrorCode::ContentFiltered
            if dialect == Dialect::Anthropic =>
        {
            ErrorCode::InvalidRequest
        }
        code => code,
    };
    for &code in ErrorCode::ALL {
        for dialect in [Dialect::OpenAi, Dialect::Anthropic] {
            let delay = (code == ErrorCode::RateLimit).then(|| Duration::from_millis(1500));
            let reply = match dialect {
                Dialect::OpenAi => openai::error_response(code, "went wrong", delay),
                Dialect::Anthropic => anthropic::error_response(code, "went wrong", delay),
            };
            let (read, _) = read_back(dialect, served(&reply), hello(true)).await;
            let error = read.expect_err("an error status");
            assert_eq!(
                error.code,
                read_back_as(code, dialect),
                "{code} via {dialect:?}"
            );
            assert_eq!(error.retry_after, delay, "{code} via {dialect:?}");
        }
    }
}

/// The body an adapter sent for a parsed dialect request.
async fn sent_on(dialect: Dialect, mut request: CompletionRequest) -> Value {
    // What the registry does: the provider's own model name.
    request.model = "claude-sonnet-4-5".into();
    // Only the request matters; the answer is refused as malformed.
    let (_, recorded) = read_back(dialect, Reply::json(200, "{}"), request).await;
    recorded.json().unwrap()
}

#[tokio::test]
async fn openai_requests_reach_openai_as_sent() {
    let body = openai_request::full_body();
    let (request, _) = openai::parse_request(body.to_string().as_bytes()).unwrap();
    let sent = sent_on(Dialect::OpenAi, request).await;
    spec::openai()
        .validate("CreateChatCompletionRequest", &sent)
        .unwrap();
    let png = format!("data:image/png;base64,{}", openai_request::PNG);
    assert_eq!(
        sent["messages"],
        json!([
            {"role": "system", "content": "Be brief."},
            {"role": "system", "content": "Use metric units."},
            {"role": "user", "name": "ada", "content": [
                {"type": "text", "text": "What is in these?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg", "detail": "low"}},
                {"type": "image_url", "image_url": {"url": png}}
            ]},
            {"role": "assistant", "content": "Checking.", "tool_calls": body["messages"][3]["tool_calls"]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18°C"},
            {"role": "tool", "tool_call_id": "call_2", "content": "12:00"},
            {"role": "assistant", "content": "I can't say more."},
            {"role": "user", "content": "Thanks"}
        ])
    );
    for key in [
        "temperature",
        "top_p",
        "stop",
        "tool_choice",
        "max_completion_tokens",
    ] {
        let expected = if key == "max_completion_tokens" {
            json!(256)
        } else {
            body[key].clone()
        };
        assert_eq!(sent[key], expected, "{key}");
    }
    let tools = sent["tools"].as_array().unwrap();
    assert_eq!(
        tools[0]["function"]["parameters"],
        body["tools"][0]["function"]["parameters"]
    );
    assert_eq!(tools[1]["function"]["name"], "get_time");
    assert_eq!(sent["stream"], true);
}

#[tokio::test]
async fn anthropic_requests_reach_anthropic_as_sent() {
    let body = crate::anthropic_request::full_body();
    let (request, _) = anthropic::parse_request(body.to_string().as_bytes()).unwrap();
    let sent = sent_on(Dialect::Anthropic, request).await;
    spec::anthropic()
        .validate("CreateMessageParams", &sent)
        .unwrap();
    let text = |t: &str| json!({"type": "text", "text": t});
    assert_eq!(sent["system"], "Be brief.");
    assert_eq!(
        sent["messages"],
        json!([
            {"role": "user", "content": [text("What's the weather?")]},
            {"role": "assistant", "content": [
                text("Checking."),
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18°C"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": "12:00"},
                text("And this image?"),
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": openai_request::PNG}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}}
            ]},
            {"role": "assistant", "content": [text("A cat.")]}
        ])
    );
    for key in [
        "max_tokens",
        "stop_sequences",
        "temperature",
        "top_p",
        "stream",
    ] {
        assert_eq!(sent[key], body[key], "{key}");
    }
    assert_eq!(
        sent["tool_choice"],
        json!({"type": "tool", "name": "get_weather"})
    );
    assert_eq!(
        sent["tools"][0]["input_schema"],
        body["tools"][0]["input_schema"]
    );
}

#[tokio::test]
async fn either_dialect_reaches_either_provider() {
    let openai_body = openai_request::full_body();
    let (request, _) = openai::parse_request(openai_body.to_string().as_bytes()).unwrap();
    let sent = sent_on(Dialect::Anthropic, request).await;
    spec::anthropic()
        .validate("CreateMessageParams", &sent)
        .unwrap();

    let anthropic_body = crate::anthropic_request::full_body();
    let (request, _) = anthropic::parse_request(anthropic_body.to_string().as_bytes()).unwrap();
    let sent = sent_on(Dialect::OpenAi, request).await;
    spec::openai()
        .validate("CreateChatCompletionRequest", &sent)
        .unwrap();
}

/// A dialect's finish or stop reason in GTL's words, to compare answers
/// across dialects.
fn gtl_reason(reason: &str) -> &str {
    match reason {
        "max_tokens" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        "end_turn" | "stop_sequence" => "stop",
        other => other,
    }
}

/// The parts of an answer every dialect carries alike: tool call ids are
/// compared in Anthropic's alphabet.
fn comparable(answer: &Answer) -> Answer {
    Answer {
        tool_calls: answer
            .tool_calls
            .iter()
            .map(|(id, name, arguments)| {
                let id = id
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || c == '-' {
                            c
                        } else {
                            '_'
                        }
                    })
                    .collect();
                (id, name.clone(), arguments.clone())
            })
            .collect(),
        finish: answer.finish.as_deref().map(|r| gtl_reason(r).to_owned()),
        ..answer.clone()
    }
}

#[tokio::test]
async fn recorded_provider_streams_reach_clients_of_either_dialect() {
    for (source, fixture) in [
        (Dialect::OpenAi, "openai/chat_text.sse"),
        (Dialect::OpenAi, "openai/chat_tool_call.sse"),
        (Dialect::OpenAi, "openai/chat_parallel_tool_calls.sse"),
        (Dialect::Anthropic, "anthropic/messages_text.sse"),
        (Dialect::Anthropic, "anthropic/messages_tool_use.sse"),
    ] {
        let recording = gtl_test::served_sse(&gtl_test::read(gtl_test::provider_fixture(fixture)));
        // What a client of the provider itself reads.
        let direct = comparable(&match source {
            Dialect::OpenAi => read_openai([&recording[..]]),
            Dialect::Anthropic => read_anthropic([&recording[..]]),
        });
        // The same recording through GTL, cut into single bytes on the
        // way in, and out in either dialect.
        let (events, _) = read_back(source, Reply::sse(recording).chunked(1), hello(true)).await;
        let events = events.expect("the stream starts");
        let through_openai = match openai_stream(&events, true) {
            Output::Stream(bytes, true) => read_openai([&bytes[..]]),
            other => panic!("{fixture}: {other:?}"),
        };
        let through_anthropic = match anthropic_stream(&events) {
            Output::Stream(bytes, true) => read_anthropic([&bytes[..]]),
            other => panic!("{fixture}: {other:?}"),
        };
        assert!(
            !direct.text.is_empty() || !direct.tool_calls.is_empty(),
            "{fixture}"
        );
        assert!(
            direct
                .usage
                .is_some_and(|(input, output, _)| input > 0 && output > 0),
            "{fixture}"
        );
        assert!(direct.ended && direct.finish.is_some(), "{fixture}");
        assert_eq!(comparable(&through_openai), direct, "{fixture} as OpenAI");
        assert_eq!(
            comparable(&through_anthropic),
            direct,
            "{fixture} as Anthropic"
        );
    }
}
