//! Anthropic Messages through a local replay server: the request Anthropic
//! would receive (method, path, headers, and the body checked against
//! `CreateMessageParams` of Anthropic's OpenAPI definition) and the GTL
//! events the adapter makes of the recorded and composed streams.

use crate::support::{collect, refused, stream_once};
use std::sync::OnceLock;
use std::time::Duration;

use gtl_core::{Provider, ProviderError, complete};
use gtl_proto::types::{Choice, Content, Part, Source, ToolChoiceMode};
use gtl_proto::{
    Body, CompletionRequest, ContentPart, ContentParts, Done, ErrorCode, FunctionCall, FunctionDef,
    Image, Message, Phase, Role, Status, Token, Tool, ToolCall, ToolChoice, Usage,
};
use gtl_providers::anthropic::AnthropicProvider;
use gtl_providers::{Price, ProviderConfig, ProviderKind};
use gtl_test::{OpenApi, RecordedRequest, ReplayServer, Reply, provider_fixture, provider_spec};
use serde_json::{Value, json};

const KEY: &str = "sk-ant-test-0123456789";

/// Anthropic's OpenAPI definition, loaded once.
fn spec() -> &'static OpenApi {
    static SPEC: OnceLock<OpenApi> = OnceLock::new();
    SPEC.get_or_init(|| {
        OpenApi::from_json_file(provider_spec("anthropic/openapi.json")).expect("anthropic spec")
    })
}

#[test]
fn the_schema_check_rejects_what_anthropic_would() {
    let valid = json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
    });
    assert!(spec().validate("CreateMessageParams", &valid).is_ok());
    let mut unknown_field = valid.clone();
    unknown_field["max_output_tokens"] = json!(10);
    let mut no_max_tokens = valid.clone();
    no_max_tokens.as_object_mut().unwrap().remove("max_tokens");
    let mut empty_text = valid.clone();
    empty_text["messages"][0]["content"][0]["text"] = json!("");
    let mut system_role = valid.clone();
    system_role["messages"][0]["role"] = json!("system");
    let mut bad_tool_id = valid;
    bad_tool_id["messages"][0]["content"] =
        json!([{"type": "tool_result", "tool_use_id": "call~1", "content": "x"}]);
    for bad in [
        unknown_field,
        no_max_tokens,
        empty_text,
        system_role,
        bad_tool_id,
    ] {
        assert!(
            spec().validate("CreateMessageParams", &bad).is_err(),
            "{bad}"
        );
    }
}

/// A recorded stream, with the blank line that ends its last event (the
/// upstream files lack it; a server sends it).
fn recorded(name: &str) -> Vec<u8> {
    gtl_test::served_sse(&gtl_test::read(provider_fixture(&format!(
        "anthropic/{name}"
    ))))
}

/// One of this crate's composed fixtures.
fn fixture(name: &str) -> Vec<u8> {
    gtl_test::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/anthropic")
            .join(name),
    )
}

fn config(server: &ReplayServer) -> ProviderConfig {
    ProviderConfig::new(ProviderKind::Anthropic)
        .with_api_key(KEY)
        .with_base_url(server.url())
}

fn provider(server: &ReplayServer) -> AnthropicProvider {
    AnthropicProvider::new(config(server)).expect("valid config")
}

fn text(role: Role, text: &str) -> Message {
    Message {
        role: role as i32,
        content: Some(Content::Text(text.into())),
        ..Message::default()
    }
}

fn request(stream: bool) -> CompletionRequest {
    CompletionRequest {
        model: "claude-sonnet-4-5".into(),
        messages: vec![
            text(Role::System, "You are terse."),
            text(Role::User, "Say hello"),
        ],
        stream,
        ..CompletionRequest::default()
    }
}

async fn run(reply: Reply, request: CompletionRequest) -> (Vec<Body>, RecordedRequest) {
    let server = ReplayServer::start(reply).await;
    stream_once(&provider(&server), &server, request).await
}

async fn rejected(server: &ReplayServer, request: CompletionRequest) -> ProviderError {
    refused(&provider(server), request).await
}

/// The outbound request: method, path, headers, and a body valid against
/// `CreateMessageParams`.
fn assert_messages_request(request: &RecordedRequest) -> Value {
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/v1/messages");
    assert_eq!(request.header("x-api-key"), Some(KEY));
    assert_eq!(request.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("authorization"), None);
    let body = request.json().expect("JSON body");
    if let Err(violations) = spec().validate("CreateMessageParams", &body) {
        panic!("request body breaks CreateMessageParams:\n{violations}\n{body:#}");
    }
    body
}

fn status(model: &str) -> Body {
    Body::Status(Status {
        state: "streaming".into(),
        provider: "anthropic".into(),
        model: model.into(),
        reason: String::new(),
    })
}

fn token(text: &str) -> Body {
    Body::Token(Token { text: text.into() })
}

fn tool_call(id: &str, name: &str, arguments: &str) -> Body {
    Body::ToolCall(ToolCall {
        id: id.into(),
        function: Some(FunctionCall {
            name: name.into(),
            arguments: arguments.into(),
        }),
    })
}

fn done(reason: &str) -> Body {
    Body::Done(Done {
        finish_reason: reason.into(),
    })
}

/// Checks the usage event's cost against `expected` (USD), then zeroes it
/// so the events compare exactly.
fn priced(mut events: Vec<Body>, expected: f64) -> Vec<Body> {
    let usage = events
        .iter_mut()
        .find_map(|event| match event {
            Body::Usage(usage) => Some(usage),
            _ => None,
        })
        .expect("a usage event");
    assert!(
        (usage.cost - expected).abs() < 1e-12,
        "cost {} != {expected}",
        usage.cost
    );
    usage.cost = 0.0;
    events
}

fn usage(tokens_in: u64, tokens_out: u64, cached_tokens: u64) -> Body {
    Body::Usage(Usage {
        tokens_in,
        tokens_out,
        cost: 0.0,
        cached_tokens,
    })
}

fn error_of(body: &Body) -> &gtl_proto::Error {
    match body {
        Body::Error(error) => error,
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test]
async fn streams_the_recorded_text_in_small_chunks() {
    let mut request = request(true);
    request.max_tokens = Some(256);
    request.temperature = Some(0.5);
    request.stop = vec!["END".into()];
    let reply = Reply::sse(recorded("messages_text.sse")).chunked(7);
    let (events, sent) = run(reply, request).await;
    assert_eq!(
        assert_messages_request(&sent),
        json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 256,
            "system": "You are terse.",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Say hello"}]}],
            "stop_sequences": ["END"],
            "temperature": 0.5,
            "stream": true,
        })
    );
    // Priced as the requested model: $3 / $15 per million tokens.
    assert_eq!(
        priced(events, (11.0 * 3.0 + 6.0 * 15.0) / 1e6),
        [
            status("claude-3-opus-latest"),
            token("Hello"),
            token(" there"),
            token("!"),
            usage(11, 6, 0),
            done("stop"),
        ]
    );
}

fn weather_tool() -> Tool {
    Tool {
        function: Some(FunctionDef {
            name: "get_weather".into(),
            description: "Get the current weather in a given location".into(),
            parameters: r#"{"type":"object","properties":{"location":{"type":"string"}},"required":["location"]}"#.into(),
        }),
    }
}

fn assistant_call(id: &str, name: &str, arguments: &str) -> Message {
    Message {
        role: Role::Assistant as i32,
        content: Some(Content::Text("Let me look.".into())),
        tool_calls: vec![ToolCall {
            id: id.into(),
            function: Some(FunctionCall {
                name: name.into(),
                arguments: arguments.into(),
            }),
        }],
        ..Message::default()
    }
}

fn tool_result(id: &str, result: &str) -> Message {
    Message {
        role: Role::Tool as i32,
        tool_call_id: id.into(),
        content: Some(Content::Text(result.into())),
        ..Message::default()
    }
}

#[tokio::test]
async fn tool_use_with_history_tools_and_a_forced_choice() {
    let mut request = request(true);
    request.messages = vec![
        text(Role::User, "What's the weather in London?"),
        assistant_call("toolu_01London", "get_weather", r#"{"location":"London"}"#),
        tool_result("toolu_01London", "12°C, cloudy"),
        text(Role::User, "And in Paris?"),
    ];
    request.tools = vec![weather_tool()];
    request.tool_choice = Some(ToolChoice {
        choice: Some(Choice::Mode(ToolChoiceMode::Required as i32)),
    });
    let reply = Reply::sse(recorded("messages_tool_use.sse")).chunked(3);
    let (events, sent) = run(reply, request).await;
    let body = assert_messages_request(&sent);
    assert_eq!(
        body["messages"],
        json!([
            {"role": "user", "content": [{"type": "text", "text": "What's the weather in London?"}]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "toolu_01London", "name": "get_weather", "input": {"location": "London"}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01London", "content": "12°C, cloudy"},
                {"type": "text", "text": "And in Paris?"},
            ]},
        ])
    );
    assert_eq!(body["tool_choice"], json!({"type": "any"}));
    assert_eq!(body["tools"][0]["name"], "get_weather");
    assert_eq!(body["max_tokens"], 8192);
    assert_eq!(
        priced(events, (377.0 * 3.0 + 65.0 * 15.0) / 1e6),
        [
            status("claude-sonnet-4-20250514"),
            token("I"),
            token("'ll check the current weather in Paris for you."),
            tool_call(
                "toolu_01NRLabsLyVHZPKxbKvkfSMn",
                "get_weather",
                r#"{"location": "Paris"}"#
            ),
            usage(377, 65, 0),
            done("tool_calls"),
        ]
    );
}

#[tokio::test]
async fn parallel_tool_calls_byte_by_byte_with_images_in_the_request() {
    let mut request = request(true);
    request.messages = vec![Message {
        role: Role::User as i32,
        content: Some(Content::Parts(ContentParts {
            parts: vec![
                ContentPart {
                    part: Some(Part::Text("Where is this? Weather and time there?".into())),
                },
                ContentPart {
                    part: Some(Part::Image(Image {
                        source: Some(Source::Data(b"\x89PNG\r\n".to_vec())),
                        media_type: "image/png".into(),
                        ..Image::default()
                    })),
                },
                ContentPart {
                    part: Some(Part::Image(Image {
                        source: Some(Source::Url("https://example.com/oslo.jpg".into())),
                        ..Image::default()
                    })),
                },
            ],
        })),
        ..Message::default()
    }];
    request.tools = vec![weather_tool()];
    let reply = Reply::sse(fixture("messages_parallel_tools.sse")).chunked(1);
    let (events, sent) = run(reply, request).await;
    let body = assert_messages_request(&sent);
    assert_eq!(
        body["messages"][0]["content"][1],
        json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0K"}})
    );
    assert_eq!(
        body["messages"][0]["content"][2],
        json!({"type": "image", "source": {"type": "url", "url": "https://example.com/oslo.jpg"}})
    );
    let expected = (512.0 * 3.0 + 100.0 * 3.75 + 2048.0 * 0.3 + 88.0 * 15.0) / 1e6;
    assert_eq!(
        priced(events, expected),
        [
            status("claude-sonnet-4-5-20250929"),
            token("Checking both cities."),
            tool_call("toolu_01B", "get_time", r#"{"timezone": "Europe/Oslo"}"#),
            tool_call("toolu_01A", "get_weather", r#"{"city": "Oslo"}"#),
            usage(2660, 88, 2048),
            done("tool_calls"),
        ]
    );
}

#[tokio::test]
async fn a_unary_call_reads_the_json_answer() {
    let server =
        ReplayServer::start(Reply::json(200, fixture("message_unary.json")).chunked(50)).await;
    let answer = complete(&provider(&server), request(false))
        .await
        .expect("answer");
    let body = assert_messages_request(&server.single_request());
    assert_eq!(body.get("stream"), None);
    assert_eq!(answer.text, "Let me check.");
    assert_eq!(answer.model, "claude-sonnet-4-5-20250929");
    assert_eq!(answer.finish_reason, "tool_calls");
    assert_eq!(answer.tool_calls.len(), 1);
    assert_eq!(answer.tool_calls[0].id, "toolu_01Unary");
    let usage = answer.usage.expect("usage");
    assert_eq!(
        (usage.tokens_in, usage.tokens_out, usage.cached_tokens),
        (3095, 503, 1000)
    );
}

#[tokio::test]
async fn an_overload_mid_stream_ends_with_provider_unavailable() {
    let reply = Reply::sse(recorded("messages_error_midstream.sse")).chunked(11);
    let (events, _) = run(reply, request(true)).await;
    assert_eq!(
        events[..2],
        [status("claude-3-opus-latest"), token("Hello")]
    );
    let error = error_of(events.last().expect("events"));
    assert_eq!(error.code(), ErrorCode::ProviderUnavailable);
    assert_eq!(error.phase(), Phase::AfterFirstToken);
    assert!(error.retryable);
    assert_eq!(error.message, "anthropic: Overloaded");
}

/// The connection drops after the first token: the stream ends with an
/// error in the after-first-token phase, never with `done`.
#[tokio::test]
async fn a_connection_cut_mid_stream() {
    let body = recorded("messages_text.sse");
    let second_delta = String::from_utf8_lossy(&body)
        .find("\" there\"")
        .expect("second delta");
    let reply = Reply::sse(body).chunked(64).cut_after(second_delta);
    let (events, _) = run(reply, request(true)).await;
    assert_eq!(
        events[..2],
        [status("claude-3-opus-latest"), token("Hello")]
    );
    assert!(matches!(events[2], Body::Usage(_)), "{events:?}");
    let error = error_of(&events[3]);
    assert_eq!(
        error.code(),
        ErrorCode::ProviderUnavailable,
        "{}",
        error.message
    );
    assert_eq!(error.phase(), Phase::AfterFirstToken);
    assert_eq!(events.len(), 4);
}

#[tokio::test]
async fn a_stream_ending_without_message_stop_is_an_error() {
    let reply = Reply::sse(fixture("messages_cut.sse"));
    let (events, _) = run(reply, request(true)).await;
    let error = error_of(events.last().expect("events"));
    assert_eq!(error.code(), ErrorCode::ProviderError);
    assert_eq!(error.phase(), Phase::AfterFirstToken);
}

#[tokio::test]
async fn a_malformed_event_is_a_provider_error() {
    let reply = Reply::sse(fixture("messages_malformed.sse"));
    let (events, _) = run(reply, request(true)).await;
    let error = error_of(events.last().expect("events"));
    assert_eq!(error.code(), ErrorCode::ProviderError);
    assert!(error.message.contains("malformed"), "{}", error.message);
}

/// Every HTTP error class Anthropic documents, with its documented body.
#[tokio::test]
async fn http_errors_map_to_gtl_codes() {
    let cases = [
        (
            "400_context_length.json",
            400,
            ErrorCode::ContextLengthExceeded,
        ),
        ("400_invalid_request.json", 400, ErrorCode::InvalidRequest),
        ("401.json", 401, ErrorCode::Unauthenticated),
        ("403.json", 403, ErrorCode::PermissionDenied),
        ("404.json", 404, ErrorCode::ModelNotFound),
        ("413.json", 413, ErrorCode::InvalidRequest),
        ("429.json", 429, ErrorCode::RateLimit),
        ("500.json", 500, ErrorCode::ProviderUnavailable),
        ("504.json", 504, ErrorCode::ProviderTimeout),
        ("529.json", 529, ErrorCode::ProviderUnavailable),
    ];
    for (file, status, code) in cases {
        let body = fixture(&format!("errors/{file}"));
        let message: Value = serde_json::from_slice(&body).expect("JSON");
        let message = message["error"]["message"].as_str().expect("message");
        let server = ReplayServer::start(Reply::json(status, body.clone())).await;
        let error = rejected(&server, request(true)).await;
        assert_eq!(error.code, code, "{file}: {}", error.message);
        assert_eq!(error.phase, Phase::BeforeFirstToken);
        assert!(
            error.message.starts_with("anthropic: "),
            "{}",
            error.message
        );
        assert!(error.message.contains(message), "{}", error.message);
        assert!(!error.message.contains(KEY));
        assert_messages_request(&server.single_request());
    }
}

#[tokio::test]
async fn a_rate_limit_carries_retry_after() {
    let reply = Reply::json(429, fixture("errors/429.json")).header("retry-after", "7");
    let server = ReplayServer::start(reply).await;
    let error = rejected(&server, request(true)).await;
    assert_eq!(error.code, ErrorCode::RateLimit);
    assert_eq!(error.retry_after, Some(Duration::from_secs(7)));
    assert!(error.is_retryable());
}

#[tokio::test]
async fn invalid_requests_are_refused_before_sending() {
    let server = ReplayServer::start(Reply::sse(recorded("messages_text.sse"))).await;
    let mut no_turns = request(true);
    no_turns.messages = vec![text(Role::System, "alone")];
    let error = rejected(&server, no_turns).await;
    assert_eq!(error.code, ErrorCode::InvalidRequest);
    let mut bad_arguments = request(true);
    bad_arguments
        .messages
        .push(assistant_call("toolu_1", "f", "not json"));
    assert_eq!(
        rejected(&server, bad_arguments).await.code,
        ErrorCode::InvalidRequest
    );
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn config_headers_aliases_and_the_registry_build() {
    let server = ReplayServer::start(Reply::sse(recorded("messages_text.sse"))).await;
    let config = config(&server)
        .with_header("anthropic-beta", "prompt-caching-2024-07-31")
        .with_alias("fast", "claude-haiku-4-5");
    let provider = gtl_providers::build(config).expect("built");
    assert_eq!(provider.name(), "anthropic");
    let mut request = request(true);
    request.model = "fast".into();
    let events = collect(provider.stream(request).await.expect("stream")).await;
    assert_eq!(events.last(), Some(&done("stop")));
    let sent = server.single_request();
    let body = assert_messages_request(&sent);
    assert_eq!(body["model"], "claude-haiku-4-5");
    assert_eq!(
        sent.header("anthropic-beta"),
        Some("prompt-caching-2024-07-31")
    );
    let versions = sent
        .headers
        .iter()
        .filter(|(name, _)| name == "anthropic-version")
        .count();
    assert_eq!(versions, 1);
}

#[tokio::test]
async fn models_come_from_the_built_in_list_and_config_prices() {
    let server = ReplayServer::start(Reply::new(500)).await;
    let config = config(&server).with_price("claude-haiku-4-5", Price::per_1k(0.5, 0.75));
    let provider = AnthropicProvider::new(config).expect("valid config");
    let info = provider.models().await.expect("models");
    assert_eq!(info.provider, "anthropic");
    let sonnet = info
        .models
        .iter()
        .find(|model| model.name == "claude-sonnet-4-5")
        .expect("listed");
    assert_eq!(
        (sonnet.context_window, sonnet.max_tokens),
        (200_000, 64_000)
    );
    assert!(sonnet.supports_streaming && sonnet.supports_functions && sonnet.supports_vision);
    assert!((sonnet.cost_per_1k_input - 0.003).abs() < 1e-12);
    assert!((sonnet.cost_per_1k_output - 0.015).abs() < 1e-12);
    let haiku = info
        .models
        .iter()
        .find(|model| model.name == "claude-haiku-4-5")
        .expect("listed");
    assert_eq!(
        (haiku.cost_per_1k_input, haiku.cost_per_1k_output),
        (0.5, 0.75)
    );
    // No request was needed.
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn counts_tokens_with_anthropics_own_count() {
    let server = ReplayServer::start(Reply::json(200, r#"{"input_tokens":14}"#)).await;
    let mut counted = request(false);
    counted.max_tokens = Some(100);
    counted.temperature = Some(0.5);
    counted.stop = vec!["END".into()];
    counted.tools = vec![weather_tool()];
    let count = provider(&server).count_tokens(counted).await.unwrap();
    assert_eq!(count, 14);
    let sent = server.single_request();
    assert_eq!(sent.path, "/v1/messages/count_tokens");
    assert_eq!(sent.header("x-api-key"), Some(KEY));
    let body = sent.json().unwrap();
    if let Err(violations) = spec().validate("CountMessageTokensParams", &body) {
        panic!("request body breaks CountMessageTokensParams:\n{violations}\n{body:#}");
    }
    assert_eq!(body["system"], "You are terse.");
    assert_eq!(body["tools"][0]["name"], "get_weather");

    // Anthropic's refusal keeps its meaning.
    let server = ReplayServer::start(Reply::json(
        404,
        r#"{"type":"error","error":{"type":"not_found_error","message":"model: nope"}}"#,
    ))
    .await;
    let error = provider(&server)
        .count_tokens(request(false))
        .await
        .unwrap_err();
    assert_eq!(error.code, ErrorCode::ModelNotFound);
}
