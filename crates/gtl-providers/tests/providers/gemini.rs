//! Google Gemini through a local replay server: the request Gemini would
//! receive (method, path, headers, and the body parsed as a
//! `google.ai.generativelanguage.v1beta.GenerateContentRequest` from the
//! published protobuf definitions, unknown fields denied) and the GTL events
//! the adapter makes of the recorded and composed streams.

use crate::support::{collect, refused, stream_once};
use std::sync::OnceLock;
use std::time::Duration;

use gtl_core::{Provider, ProviderError, complete};
use gtl_proto::types::{Choice, Content, Part, Source};
use gtl_proto::{
    Body, CompletionRequest, ContentPart, ContentParts, Done, ErrorCode, FunctionDef, Image,
    Message, Phase, Role, Status, Token, Tool, ToolChoice, Usage,
};
use gtl_providers::gemini::GeminiProvider;
use gtl_providers::{ProviderConfig, ProviderKind};
use gtl_test::{RecordedRequest, ReplayServer, Reply, provider_fixture, provider_spec};
use prost_reflect::{DescriptorPool, DeserializeOptions, DynamicMessage, MessageDescriptor};
use serde_json::{Value, json};

const KEY: &str = "AIzaSy-test-0123456789";

/// `GenerateContentRequest`, compiled once from Gemini's v1beta protos.
fn request_descriptor() -> &'static MessageDescriptor {
    static DESCRIPTOR: OnceLock<MessageDescriptor> = OnceLock::new();
    DESCRIPTOR.get_or_init(|| {
        let files = protox::compile(
            ["google/ai/generativelanguage/v1beta/generative_service.proto"],
            [provider_spec("gemini/proto")],
        )
        .expect("gemini protos compile");
        DescriptorPool::from_file_descriptor_set(files)
            .expect("descriptor pool")
            .get_message_by_name("google.ai.generativelanguage.v1beta.GenerateContentRequest")
            .expect("GenerateContentRequest")
    })
}

/// Parses `body` as a `GenerateContentRequest` in proto3 JSON, denying
/// unknown fields.
fn parse_request(body: &[u8]) -> Result<DynamicMessage, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let options = DeserializeOptions::new().deny_unknown_fields(true);
    let message = DynamicMessage::deserialize_with_options(
        request_descriptor().clone(),
        &mut deserializer,
        &options,
    )?;
    deserializer.end()?;
    Ok(message)
}

#[test]
fn the_protobuf_check_rejects_what_gemini_would() {
    assert!(parse_request(br#"{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}"#).is_ok());
    // A field Gemini does not have, a field in the wrong place, bad base64.
    for bad in [
        r#"{"contents":[],"max_tokens":5}"#,
        r#"{"contents":[{"role":"user","parts":[{"text":"hi","role":"user"}]}]}"#,
        r#"{"contents":[{"parts":[{"inlineData":{"mimeType":"image/png","data":"no base64!"}}]}]}"#,
        r#"{"contents":[],"generationConfig":{"maxOutputTokens":"many"}}"#,
    ] {
        assert!(parse_request(bad.as_bytes()).is_err(), "{bad}");
    }
}

fn recorded(name: &str) -> Vec<u8> {
    gtl_test::read(provider_fixture(&format!("gemini/{name}")))
}

/// One of this crate's composed fixtures.
fn fixture(name: &str) -> Vec<u8> {
    gtl_test::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/gemini")
            .join(name),
    )
}

fn config(server: &ReplayServer) -> ProviderConfig {
    ProviderConfig::new(ProviderKind::Gemini)
        .with_api_key(KEY)
        .with_base_url(server.url())
}

fn provider(server: &ReplayServer) -> GeminiProvider {
    GeminiProvider::new(config(server)).expect("valid config")
}

fn text(role: Role, text: &str) -> Message {
    Message {
        role: role as i32,
        content: Some(Content::Text(text.into())),
        ..Message::default()
    }
}

fn request(model: &str, stream: bool) -> CompletionRequest {
    CompletionRequest {
        model: model.into(),
        messages: vec![
            text(Role::System, "You are terse."),
            text(Role::User, "Tell me something."),
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

/// The outbound request: method, path (`model` and the endpoint), headers
/// (the key in `x-goog-api-key`, never in the URL), and a body that is a
/// valid `GenerateContentRequest`.
fn assert_gemini_request(request: &RecordedRequest, model: &str, stream: bool) -> Value {
    assert_eq!(request.method, "POST");
    let path = if stream {
        format!("/v1beta/models/{model}:streamGenerateContent?alt=sse")
    } else {
        format!("/v1beta/models/{model}:generateContent")
    };
    assert_eq!(request.path, path);
    assert_eq!(request.header("x-goog-api-key"), Some(KEY));
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("authorization"), None);
    if let Err(error) = parse_request(&request.body) {
        panic!(
            "request body is not a GenerateContentRequest: {error}\n{}",
            String::from_utf8_lossy(&request.body)
        );
    }
    request.json().expect("JSON body")
}

fn status(model: &str) -> Body {
    Body::Status(Status {
        state: "streaming".into(),
        provider: "gemini".into(),
        model: model.into(),
        reason: String::new(),
    })
}

fn token(text: &str) -> Body {
    Body::Token(Token { text: text.into() })
}

fn done(reason: &str) -> Body {
    Body::Done(Done {
        finish_reason: reason.into(),
    })
}

fn error_of(body: &Body) -> &gtl_proto::Error {
    match body {
        Body::Error(error) => error,
        other => panic!("expected an error, got {other:?}"),
    }
}

fn usage_of(events: &[Body]) -> &Usage {
    events
        .iter()
        .find_map(|event| match event {
            Body::Usage(usage) => Some(usage),
            _ => None,
        })
        .expect("a usage event")
}

#[tokio::test]
async fn streams_recorded_text_with_its_usage() {
    let mut request = request("gemini-2.5-flash", true);
    request.max_tokens = Some(200);
    request.temperature = Some(0.25);
    request.top_p = Some(0.5);
    request.stop = vec!["END".into()];
    let reply = Reply::sse(recorded("stream_text_usage.sse")).chunked(13);
    let (events, sent) = run(reply, request).await;
    assert_eq!(
        assert_gemini_request(&sent, "gemini-2.5-flash", true),
        json!({
            "systemInstruction": {"parts": [{"text": "You are terse."}]},
            "contents": [{"role": "user", "parts": [{"text": "Tell me something."}]}],
            "generationConfig": {
                "maxOutputTokens": 200,
                "temperature": 0.25,
                "topP": 0.5,
                "stopSequences": ["END"],
            },
        })
    );
    let text: String = events
        .iter()
        .filter_map(|event| match event {
            Body::Token(token) => Some(token.text.as_str()),
            _ => None,
        })
        .collect();
    assert!(text.starts_with("The current stock price for Alphabet Inc."));
    assert!(text.ends_with("Google Finance or TradingView.\n"));
    assert_eq!(events[0], status("gemini-2.5-flash"));
    assert_eq!(events.last(), Some(&done("stop")));
    let usage = usage_of(&events);
    assert_eq!((usage.tokens_in, usage.tokens_out), (8, 106));
    // gemini-2.5-flash: $0.30 / $2.50 per million tokens.
    assert!((usage.cost - (8.0 * 0.3 + 106.0 * 2.5) / 1e6).abs() < 1e-12);
}

/// The CRLF-separated recorded stream of multi-byte text, one byte per
/// read: characters and separators are split across reads.
#[tokio::test]
async fn multi_byte_text_byte_by_byte() {
    let reply = Reply::sse(recorded("stream_utf8.sse")).chunked(1);
    let (events, _) = run(reply, request("gemini-2.5-flash", true)).await;
    let tokens: Vec<&str> = events
        .iter()
        .filter_map(|event| match event {
            Body::Token(token) => Some(token.text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(tokens.len(), 4);
    assert_eq!(tokens[0], "秋风瑟瑟，叶落纷纷，\n西风残照，寒");
    assert!(tokens[3].ends_with("领悟秋天的哲理。"));
    assert_eq!(events.last(), Some(&done("stop")));
}

fn tools() -> Vec<Tool> {
    ["get_weather", "get_time"]
        .into_iter()
        .map(|name| Tool {
            function: Some(FunctionDef {
                name: name.into(),
                description: format!("{name} for a city"),
                parameters: r#"{"type":"object","properties":{"city":{"type":"string"}},"required":["city"],"additionalProperties":false}"#.into(),
            }),
        })
        .collect()
}

/// Two turns of parallel function calling with Gemini 3: the calls of the
/// first answer (one with a thought signature) go back in the second
/// request with their signature, next to their responses.
#[tokio::test]
async fn function_calls_round_trip_with_their_thought_signature() {
    let model = "gemini-3-pro-preview";
    let server = ReplayServer::sequence([
        Reply::sse(fixture("stream_parallel_calls.sse")).chunked(5),
        Reply::sse(recorded("stream_text_usage.sse")),
    ])
    .await;
    let provider = provider(&server);

    let mut first = request(model, true);
    first.tools = tools();
    first.tool_choice = Some(ToolChoice {
        choice: Some(Choice::Function("get_weather".into())),
    });
    let answer = complete(&provider, first.clone()).await.expect("answer");
    assert_eq!(answer.finish_reason, "tool_calls");
    assert_eq!(answer.text, "I will check both.");
    let ids: Vec<&str> = answer
        .tool_calls
        .iter()
        .map(|call| call.id.as_str())
        .collect();
    assert_eq!(
        ids,
        [
            "call_0_get_weather~CiQBcsjafDk3c2lnbmF0dXJlLWV4YW1wbGU=",
            "call_1_get_time"
        ]
    );
    let usage = answer.usage.expect("usage");
    assert_eq!(
        (usage.tokens_in, usage.tokens_out, usage.cached_tokens),
        (2120, 100, 2000)
    );
    // 120 uncached at $2, 2000 cached at $0.20, 100 out at $12 per million.
    assert!((usage.cost - 0.00184).abs() < 1e-12, "{}", usage.cost);

    let mut second = first;
    second.messages.push(Message {
        role: Role::Assistant as i32,
        content: Some(Content::Text(answer.text.clone())),
        tool_calls: answer.tool_calls.clone(),
        ..Message::default()
    });
    for (call, result) in answer.tool_calls.iter().zip([r#"{"celsius":3}"#, "09:00"]) {
        second.messages.push(Message {
            role: Role::Tool as i32,
            tool_call_id: call.id.clone(),
            content: Some(Content::Text(result.into())),
            ..Message::default()
        });
    }
    let events = collect(provider.stream(second).await.expect("stream")).await;
    assert_eq!(events.last(), Some(&done("stop")));

    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    let first_body = assert_gemini_request(&requests[0], model, true);
    assert_eq!(
        first_body["tools"],
        json!([{"functionDeclarations": [
            {
                "name": "get_weather",
                "description": "get_weather for a city",
                "parametersJsonSchema": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                    "additionalProperties": false,
                },
            },
            {
                "name": "get_time",
                "description": "get_time for a city",
                "parametersJsonSchema": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                    "additionalProperties": false,
                },
            },
        ]}])
    );
    assert_eq!(
        first_body["toolConfig"],
        json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}})
    );
    let second_body = assert_gemini_request(&requests[1], model, true);
    assert_eq!(
        second_body["contents"],
        json!([
            {"role": "user", "parts": [{"text": "Tell me something."}]},
            {"role": "model", "parts": [
                {"text": "I will check both."},
                {
                    "functionCall": {"name": "get_weather", "args": {"city": "Oslo"}},
                    "thoughtSignature": "CiQBcsjafDk3c2lnbmF0dXJlLWV4YW1wbGU=",
                },
                {"functionCall": {"name": "get_time", "args": {"timezone": "Europe/Oslo"}}},
            ]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"celsius": 3}}},
                {"functionResponse": {"name": "get_time", "response": {"result": "09:00"}}},
            ]},
        ])
    );
}

#[tokio::test]
async fn the_recorded_function_call() {
    let mut request = request("gemini-2.5-flash", true);
    request.tools = tools();
    let reply = Reply::sse(recorded("stream_function_call.sse")).chunked(9);
    let (events, sent) = run(reply, request).await;
    assert_gemini_request(&sent, "gemini-2.5-flash", true);
    assert_eq!(events.len(), 3, "{events:?}");
    let Body::ToolCall(call) = &events[1] else {
        panic!("expected a tool call, got {:?}", events[1]);
    };
    assert_eq!(call.id, "call_0_getTemperature");
    let function = call.function.as_ref().expect("function");
    assert_eq!(
        (function.name.as_str(), function.arguments.as_str()),
        ("getTemperature", r#"{"city":"San Jose"}"#)
    );
    assert_eq!(events[2], done("tool_calls"));
}

#[tokio::test]
async fn a_unary_call_uses_generate_content_and_images() {
    let server =
        ReplayServer::start(Reply::json(200, fixture("generate_content.json")).chunked(40)).await;
    let mut request = request("models/gemini-2.5-flash", false);
    request.messages.push(Message {
        role: Role::User as i32,
        content: Some(Content::Parts(ContentParts {
            parts: vec![
                ContentPart {
                    part: Some(Part::Image(Image {
                        source: Some(Source::Data(b"\xff\xd8\xff".to_vec())),
                        media_type: "image/jpeg".into(),
                        ..Image::default()
                    })),
                },
                ContentPart {
                    part: Some(Part::Image(Image {
                        source: Some(Source::Url(
                            "https://generativelanguage.googleapis.com/v1beta/files/abc123".into(),
                        )),
                        media_type: "image/png".into(),
                        ..Image::default()
                    })),
                },
            ],
        })),
        ..Message::default()
    });
    let answer = complete(&provider(&server), request).await.expect("answer");
    let body = assert_gemini_request(&server.single_request(), "gemini-2.5-flash", false);
    assert_eq!(
        body["contents"][0]["parts"],
        json!([
            {"text": "Tell me something."},
            {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/"}},
            {"fileData": {"mimeType": "image/png", "fileUri": "https://generativelanguage.googleapis.com/v1beta/files/abc123"}},
        ])
    );
    assert_eq!(answer.text, "The weather in Oslo is mild.");
    assert_eq!(answer.tool_calls.len(), 1);
    assert_eq!(answer.finish_reason, "tool_calls");
    assert_eq!(answer.model, "gemini-2.5-flash");
}

#[tokio::test]
async fn safety_blocks_are_content_filtered_in_their_phase() {
    let (events, _) = run(
        Reply::sse(recorded("stream_safety_block.sse")),
        request("gemini-2.5-flash", true),
    )
    .await;
    assert_eq!(events[1], token("No"));
    let error = error_of(events.last().expect("events"));
    assert_eq!(error.code(), ErrorCode::ContentFiltered);
    assert_eq!(error.phase(), Phase::AfterFirstToken);

    let (events, _) = run(
        Reply::sse(fixture("stream_prompt_blocked.sse")),
        request("gemini-2.5-flash", true),
    )
    .await;
    let error = error_of(events.last().expect("events"));
    assert_eq!(error.code(), ErrorCode::ContentFiltered);
    assert_eq!(error.phase(), Phase::BeforeFirstToken);
}

#[tokio::test]
async fn a_connection_cut_mid_stream() {
    let body = recorded("stream_utf8.sse");
    let second_frame = body
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .expect("a frame end")
        + 10;
    let reply = Reply::sse(body).chunked(32).cut_after(second_frame);
    let (events, _) = run(reply, request("gemini-2.5-flash", true)).await;
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(matches!(events[1], Body::Token(_)));
    let error = error_of(&events[2]);
    assert_eq!(
        error.code(),
        ErrorCode::ProviderUnavailable,
        "{}",
        error.message
    );
    assert_eq!(error.phase(), Phase::AfterFirstToken);
}

#[tokio::test]
async fn a_stream_ending_without_a_finish_reason_is_an_error() {
    let (events, _) = run(
        Reply::sse(fixture("stream_cut.sse")),
        request("gemini-2.5-flash", true),
    )
    .await;
    let error = error_of(events.last().expect("events"));
    assert_eq!(error.code(), ErrorCode::ProviderError);
    assert_eq!(error.phase(), Phase::AfterFirstToken);
}

/// Every HTTP error class, with Gemini's documented bodies.
#[tokio::test]
async fn http_errors_map_to_gtl_codes() {
    let cases = [
        (
            "400_api_key_invalid.json",
            400,
            ErrorCode::Unauthenticated,
            None,
        ),
        (
            "400_context_length.json",
            400,
            ErrorCode::ContextLengthExceeded,
            None,
        ),
        (
            "400_invalid_argument.json",
            400,
            ErrorCode::InvalidRequest,
            None,
        ),
        ("401.json", 401, ErrorCode::Unauthenticated, None),
        ("403.json", 403, ErrorCode::PermissionDenied, None),
        ("404.json", 404, ErrorCode::ModelNotFound, None),
        (
            "429.json",
            429,
            ErrorCode::RateLimit,
            Some(Duration::from_secs(37)),
        ),
        ("500.json", 500, ErrorCode::ProviderUnavailable, None),
        ("503.json", 503, ErrorCode::ProviderUnavailable, None),
        ("504.json", 504, ErrorCode::ProviderTimeout, None),
    ];
    for (file, status, code, retry_after) in cases {
        let body = fixture(&format!("errors/{file}"));
        let message: Value = serde_json::from_slice(&body).expect("JSON");
        let message = message["error"]["message"].as_str().expect("message");
        let server = ReplayServer::start(Reply::json(status, body.clone())).await;
        let error = rejected(&server, request("gemini-2.5-flash", true)).await;
        assert_eq!(error.code, code, "{file}: {}", error.message);
        assert_eq!(error.retry_after, retry_after, "{file}");
        assert_eq!(error.phase, Phase::BeforeFirstToken);
        assert!(error.message.starts_with("gemini: "), "{}", error.message);
        assert!(error.message.contains(message), "{}", error.message);
        assert!(!error.message.contains(KEY));
        assert_gemini_request(&server.single_request(), "gemini-2.5-flash", true);
    }
}

#[tokio::test]
async fn a_retry_after_header_wins_over_retry_info() {
    let reply = Reply::json(429, fixture("errors/429.json")).header("retry-after", "3");
    let server = ReplayServer::start(reply).await;
    let error = rejected(&server, request("gemini-2.5-flash", true)).await;
    assert_eq!(error.code, ErrorCode::RateLimit);
    assert_eq!(error.retry_after, Some(Duration::from_secs(3)));
}

#[tokio::test]
async fn an_error_frame_mid_stream() {
    let (events, _) = run(
        Reply::sse(fixture("stream_error_frame.sse")),
        request("gemini-2.5-pro", true),
    )
    .await;
    assert_eq!(
        events[..2],
        [status("gemini-2.5-pro"), token("Partial answer")]
    );
    let error = error_of(&events[2]);
    assert_eq!(error.code(), ErrorCode::ProviderUnavailable);
    assert_eq!(error.phase(), Phase::AfterFirstToken);
}

#[tokio::test]
async fn bad_model_ids_and_empty_conversations_are_refused_before_sending() {
    let server = ReplayServer::start(Reply::sse(recorded("stream_text_usage.sse"))).await;
    let error = rejected(&server, request("../admin", true)).await;
    assert_eq!(error.code, ErrorCode::ModelNotFound);
    let mut empty = request("gemini-2.5-flash", true);
    empty.messages = vec![text(Role::System, "alone")];
    assert_eq!(
        rejected(&server, empty).await.code,
        ErrorCode::InvalidRequest
    );
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn the_registry_build_and_the_model_list() {
    let server = ReplayServer::start(Reply::sse(recorded("stream_text_usage.sse"))).await;
    let provider =
        gtl_providers::build(config(&server).with_alias("fast", "gemini-2.5-flash-lite"))
            .expect("built");
    assert_eq!(provider.name(), "gemini");
    let events = collect(
        provider
            .stream(request("fast", true))
            .await
            .expect("stream"),
    )
    .await;
    assert_eq!(events.last(), Some(&done("stop")));
    assert_gemini_request(&server.single_request(), "gemini-2.5-flash-lite", true);

    let info = provider.models().await.expect("models");
    let flash = info
        .models
        .iter()
        .find(|model| model.name == "gemini-2.5-flash")
        .expect("listed");
    assert_eq!(
        (flash.context_window, flash.max_tokens),
        (1_048_576, 65_536)
    );
    assert!((flash.cost_per_1k_input - 0.0003).abs() < 1e-12);
    assert!((flash.cost_per_1k_output - 0.0025).abs() < 1e-12);
    assert_eq!(server.requests().len(), 1);
}
