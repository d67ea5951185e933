//! OpenAI Chat Completions: every shared recording replayed, plus the
//! cases they lack. Submodules: `errors` (statuses, timeouts, cut and
//! malformed streams), `requests` (the outbound request against OpenAI's
//! OpenAPI definition), `compat` (OpenRouter, presets, Azure, the
//! environment).

mod compat;
mod errors;
mod requests;

use std::path::PathBuf;
use std::sync::OnceLock;

use futures::StreamExt as _;
use gtl_core::{Provider, ProviderError};
use gtl_proto::types::Content;
use gtl_proto::{
    Body, CompletionRequest, Done, FunctionCall, Message, Role, Status, Token, ToolCall, Usage,
};
use gtl_providers::openai::OpenAiProvider;
use gtl_providers::{ProviderConfig, ProviderKind};
use gtl_test::{OpenApi, RecordedRequest, ReplayServer, Reply};

/// The key every test provider is configured with.
const KEY: &str = "sk-test-0123456789";

/// OpenAI's OpenAPI definition, loaded once.
fn spec() -> &'static OpenApi {
    static SPEC: OnceLock<OpenApi> = OnceLock::new();
    SPEC.get_or_init(|| {
        OpenApi::from_json_file(gtl_test::provider_spec("openai/openapi.json"))
            .expect("load the OpenAI OpenAPI definition")
    })
}

/// Asserts `body` is a valid `CreateChatCompletionRequest`.
fn assert_valid(body: &serde_json::Value) {
    if let Err(violations) = spec().validate("CreateChatCompletionRequest", body) {
        panic!("request body breaks the OpenAI schema:\n{violations}\nbody: {body:#}");
    }
}

/// A shared recording.
fn shared(name: &str) -> PathBuf {
    gtl_test::provider_fixture(&format!("openai/{name}"))
}

/// One of this crate's OpenAI fixtures.
fn own(name: &str) -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/openai"
    ))
    .join(name)
}

fn openai_config(server: &ReplayServer) -> ProviderConfig {
    ProviderConfig::new(ProviderKind::OpenAi)
        .with_api_key(KEY)
        .with_base_url(format!("{}/v1", server.url()))
}

fn user(text: &str) -> Message {
    Message {
        role: Role::User as i32,
        content: Some(Content::Text(text.into())),
        ..Message::default()
    }
}

fn request(model: &str, stream: bool) -> CompletionRequest {
    CompletionRequest {
        model: model.into(),
        messages: vec![user("What's the weather like in San Francisco?")],
        stream,
        ..CompletionRequest::default()
    }
}

async fn events(provider: &OpenAiProvider, request: CompletionRequest) -> Vec<Body> {
    provider
        .stream(request)
        .await
        .expect("the stream starts")
        .collect()
        .await
}

async fn start_error(provider: &OpenAiProvider, request: CompletionRequest) -> ProviderError {
    match provider.stream(request).await {
        Ok(stream) => panic!(
            "expected an error before the stream, got {:?}",
            stream.collect::<Vec<_>>().await
        ),
        Err(error) => error,
    }
}

fn status(provider: &str, model: &str) -> Body {
    Body::Status(Status {
        state: "streaming".into(),
        provider: provider.into(),
        model: model.into(),
        reason: String::new(),
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

fn done(reason: &str) -> Body {
    Body::Done(Done {
        finish_reason: reason.into(),
    })
}

fn text(events: &[Body]) -> String {
    events
        .iter()
        .filter_map(|event| match event {
            Body::Token(Token { text }) => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

fn usage_of(events: &[Body]) -> Usage {
    let usages: Vec<&Usage> = events
        .iter()
        .filter_map(|event| match event {
            Body::Usage(usage) => Some(usage),
            _ => None,
        })
        .collect();
    assert_eq!(usages.len(), 1, "exactly one usage event in {events:?}");
    *usages[0]
}

fn error_of(events: &[Body]) -> ProviderError {
    match events.last() {
        Some(Body::Error(error)) => ProviderError::from(error.clone()),
        other => panic!("expected a final error, got {other:?} in {events:?}"),
    }
}

/// The usage event with the cost gpt-4o's built-in price gives.
fn gpt4o_usage(tokens_in: u64, tokens_out: u64, cached_tokens: u64) -> Usage {
    Usage {
        tokens_in,
        tokens_out,
        cached_tokens,
        cost: tokens_in as f64 / 1000.0 * 0.0025 + tokens_out as f64 / 1000.0 * 0.01,
    }
}

/// Asserts the request a streaming call to OpenAI sends.
fn assert_streaming_request(request: &RecordedRequest, model: &str) {
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/v1/chat/completions");
    assert_eq!(
        request.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("accept"), Some("text/event-stream"));
    let body = request.json().expect("a JSON body");
    assert_eq!(body["model"], model);
    assert_eq!(body["stream"], true);
    assert_eq!(body["stream_options"]["include_usage"], true);
    assert_valid(&body);
}

/// Every chunk size the recordings are replayed with: whole, one byte per
/// write, and an odd size that splits lines and UTF-8 anywhere.
const CHUNK_SIZES: [usize; 3] = [0, 1, 7];

#[tokio::test]
async fn text_recording() {
    for size in CHUNK_SIZES {
        let server = ReplayServer::start(
            Reply::sse("")
                .body_file(shared("chat_text.sse"))
                .chunked(size),
        )
        .await;
        let provider = OpenAiProvider::new(openai_config(&server)).unwrap();
        let events = events(&provider, request("gpt-4o", true)).await;

        assert_eq!(events[0], status("openai", "gpt-4o"));
        assert_eq!(
            text(&events),
            "I'm unable to provide real-time weather updates. To get the current weather in \
             San Francisco, I recommend checking a reliable weather website or a weather app.",
            "chunk size {size}"
        );
        let n = events.len();
        assert_eq!(events[n - 2], Body::Usage(gpt4o_usage(14, 30, 0)));
        assert_eq!(events[n - 1], done("stop"));
        // Status, then only tokens until the usage.
        assert!(events[1..n - 2].iter().all(|e| matches!(e, Body::Token(_))));
        assert_streaming_request(&server.single_request(), "gpt-4o");
    }
}

#[tokio::test]
async fn tool_call_recording() {
    for size in CHUNK_SIZES {
        let server = ReplayServer::start(
            Reply::sse("")
                .body_file(shared("chat_tool_call.sse"))
                .chunked(size),
        )
        .await;
        let provider = OpenAiProvider::new(openai_config(&server)).unwrap();
        let events = events(&provider, request("gpt-4o-2024-08-06", true)).await;
        assert_eq!(
            events,
            [
                status("openai", "gpt-4o-2024-08-06"),
                call(
                    "call_CTf1nWJLqSeRgDqaCG27xZ74",
                    "get_weather",
                    r#"{"city":"San Francisco","state":"CA"}"#
                ),
                Body::Usage(gpt4o_usage(48, 19, 0)),
                done("tool_calls"),
            ],
            "chunk size {size}"
        );
        assert_streaming_request(&server.single_request(), "gpt-4o-2024-08-06");
    }
}

#[tokio::test]
async fn parallel_tool_calls_recording() {
    for size in CHUNK_SIZES {
        let server = ReplayServer::start(
            Reply::sse("")
                .body_file(shared("chat_parallel_tool_calls.sse"))
                .chunked(size),
        )
        .await;
        let provider = OpenAiProvider::new(openai_config(&server)).unwrap();
        let events = events(&provider, request("gpt-4o", true)).await;
        assert_eq!(
            events,
            [
                status("openai", "gpt-4o"),
                call(
                    "call_JMW1whyEaYG438VE1OIflxA2",
                    "GetWeatherArgs",
                    r#"{"city": "Edinburgh", "country": "GB", "units": "c"}"#
                ),
                call(
                    "call_DNYTawLBoN8fj3KN6qU9N1Ou",
                    "get_stock_price",
                    r#"{"ticker": "AAPL", "exchange": "NASDAQ"}"#
                ),
                Body::Usage(gpt4o_usage(149, 60, 0)),
                done("tool_calls"),
            ],
            "chunk size {size}"
        );
    }
}

#[tokio::test]
async fn refusal_recording() {
    for size in CHUNK_SIZES {
        let server = ReplayServer::start(
            Reply::sse("")
                .body_file(shared("chat_refusal.sse"))
                .chunked(size),
        )
        .await;
        let provider = OpenAiProvider::new(openai_config(&server)).unwrap();
        let events = events(&provider, request("gpt-4o", true)).await;
        // GTL has no refusal event: the refusal is the answer's text.
        assert_eq!(
            text(&events),
            "I'm very sorry, but I can't assist with that."
        );
        assert_eq!(usage_of(&events), gpt4o_usage(79, 12, 0));
        assert_eq!(events.last(), Some(&done("stop")));
    }
}

#[tokio::test]
async fn interleaved_parallel_calls_assemble_by_index() {
    let server = ReplayServer::start(
        Reply::sse("")
            .body_file(own("chat_parallel_interleaved.sse"))
            .chunked(5),
    )
    .await;
    let provider = OpenAiProvider::new(openai_config(&server)).unwrap();
    let events = events(&provider, request("gpt-4o", true)).await;
    assert_eq!(
        events,
        [
            status("openai", "gpt-4o"),
            call("call_weather", "get_weather", r#"{"city": "Oslo"}"#),
            call("call_stock", "get_stock_price", r#"{"ticker": "NOK"}"#),
            // A call without arguments has an empty object.
            call("call_time", "get_time", "{}"),
            Body::Usage(gpt4o_usage(120, 45, 64)),
            done("tool_calls"),
        ]
    );
}

#[tokio::test]
async fn unary_calls_use_the_unary_api() {
    let server = ReplayServer::start(Reply::json(200, "").body_file(own("chat_unary.json"))).await;
    let provider = OpenAiProvider::new(openai_config(&server)).unwrap();
    let answer = gtl_core::complete(&provider, request("gpt-4o", false))
        .await
        .expect("the unary call succeeds");
    assert_eq!(answer.text, "Hello from the unary API.");
    assert_eq!(answer.finish_reason, "stop");
    assert_eq!(answer.usage, Some(gpt4o_usage(9, 6, 0)));
    assert_eq!(answer.provider, "openai");

    let sent = server.single_request();
    assert_eq!(sent.header("accept"), Some("application/json"));
    let body = sent.json().unwrap();
    assert!(body.get("stream").is_none(), "{body}");
    assert!(body.get("stream_options").is_none(), "{body}");
    assert_valid(&body);
}

#[tokio::test]
async fn models_come_from_configuration_not_the_network() {
    let server = ReplayServer::sequence([]).await;
    let provider = OpenAiProvider::new(openai_config(&server)).unwrap();
    let info = provider.models().await.unwrap();
    assert_eq!(info.provider, "openai");
    let gpt4o = info.models.iter().find(|m| m.name == "gpt-4o").unwrap();
    assert_eq!(gpt4o.context_window, 128_000);
    assert!(gpt4o.supports_functions && gpt4o.supports_vision && gpt4o.supports_streaming);
    assert!((gpt4o.cost_per_1k_input - 0.0025).abs() < 1e-12);
    assert!(server.requests().is_empty());
}
