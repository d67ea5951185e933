//! Ollama through a local replay server: the request Ollama would receive
//! (checked against Ollama's OpenAPI definition) and the GTL events.

use crate::support::{collect, refused, stream_once};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use gtl_core::{Provider, ProviderError};
use gtl_proto::types::{Choice, Content, Part, Source};
use gtl_proto::{
    Body, CompletionRequest, ContentPart, ContentParts, Done, ErrorCode, FunctionCall, FunctionDef,
    Image, Message, Phase, Role, Status, Token, Tool, ToolCall, ToolChoice, Usage,
};
use gtl_providers::ollama::OllamaProvider;
use gtl_providers::{ProviderConfig, ProviderKind};
use gtl_test::{OpenApi, RecordedRequest, ReplayServer, Reply, provider_fixture, provider_spec};
use serde_json::{Value, json};

/// Ollama's OpenAPI definition, converted from YAML once.
fn spec() -> &'static OpenApi {
    static SPEC: OnceLock<OpenApi> = OnceLock::new();
    SPEC.get_or_init(|| {
        let text = std::fs::read_to_string(provider_spec("ollama/openapi.yaml")).unwrap();
        let documents = yaml_rust2::YamlLoader::load_from_str(&text).unwrap();
        OpenApi::from_value(yaml_to_json(&documents[0]))
    })
}

fn yaml_to_json(yaml: &yaml_rust2::Yaml) -> Value {
    use yaml_rust2::Yaml;
    match yaml {
        Yaml::Real(text) => text.parse::<f64>().map_or(Value::Null, |f| json!(f)),
        Yaml::Integer(i) => json!(i),
        Yaml::String(s) => json!(s),
        Yaml::Boolean(b) => json!(b),
        Yaml::Array(items) => Value::Array(items.iter().map(yaml_to_json).collect()),
        Yaml::Hash(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let key = match k {
                        Yaml::String(s) => s.clone(),
                        Yaml::Integer(i) => i.to_string(),
                        Yaml::Boolean(b) => b.to_string(),
                        other => panic!("unsupported yaml key {other:?}"),
                    };
                    (key, yaml_to_json(v))
                })
                .collect(),
        ),
        Yaml::Null => Value::Null,
        other => panic!("unsupported yaml value {other:?}"),
    }
}

fn provider(server: &ReplayServer) -> OllamaProvider {
    OllamaProvider::new(ProviderConfig::new(ProviderKind::Ollama).with_base_url(server.url()))
        .unwrap()
}

fn user(text: &str) -> Message {
    Message {
        role: Role::User as i32,
        content: Some(Content::Text(text.into())),
        ..Message::default()
    }
}

fn request(stream: bool) -> CompletionRequest {
    CompletionRequest {
        model: "llama3.2".into(),
        messages: vec![user("why is the sky blue?")],
        stream,
        ..CompletionRequest::default()
    }
}

async fn run(reply: Reply, request: CompletionRequest) -> (Vec<Body>, RecordedRequest) {
    let server = ReplayServer::start(reply).await;
    stream_once(&provider(&server), &server, request).await
}

async fn rejected(reply: Reply) -> ProviderError {
    let server = ReplayServer::start(reply).await;
    refused(&provider(&server), request(true)).await
}

fn status() -> Body {
    Body::Status(Status {
        state: "streaming".into(),
        provider: "ollama".into(),
        model: "llama3.2".into(),
        reason: String::new(),
    })
}

fn token(text: &str) -> Body {
    Body::Token(Token { text: text.into() })
}

fn usage(tokens_in: u64, tokens_out: u64) -> Body {
    Body::Usage(Usage {
        tokens_in,
        tokens_out,
        ..Usage::default()
    })
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

/// The outbound request: method, path, headers, and a body valid against
/// `ChatRequest`.
fn assert_chat_request(request: &RecordedRequest) -> Value {
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/api/chat");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("authorization"), None);
    let body = request.json().unwrap();
    if let Err(violations) = spec().validate("ChatRequest", &body) {
        panic!("request body breaks ChatRequest:\n{violations}\n{body:#}");
    }
    body
}

#[tokio::test]
async fn streams_the_text_fixture_byte_by_byte() {
    let reply =
        Reply::ndjson(gtl_test::read(provider_fixture("ollama/chat_text.ndjson"))).chunked(1);
    let mut request = request(true);
    request.max_tokens = Some(300);
    request.temperature = Some(0.2);
    request.stop = vec!["\n\n".into()];
    let (events, sent) = run(reply, request).await;
    assert_eq!(
        events,
        [status(), token("The"), usage(26, 282), done("stop")]
    );
    assert_eq!(
        assert_chat_request(&sent),
        json!({
            "model": "llama3.2",
            "messages": [{"role": "user", "content": "why is the sky blue?"}],
            "options": {"temperature": 0.2, "num_predict": 300, "stop": ["\n\n"]},
            "stream": true
        })
    );
}

fn weather_tool() -> Tool {
    Tool {
        function: Some(FunctionDef {
            name: "get_weather".into(),
            description: "Get the weather in a given city".into(),
            parameters: r#"{"type":"object","properties":{"city":{"type":"string","description":"The city to get the weather for"}},"required":["city"]}"#.into(),
        }),
    }
}

#[tokio::test]
async fn tool_calls_and_tool_history() {
    let reply = Reply::ndjson(gtl_test::read(provider_fixture(
        "ollama/chat_tool_call.ndjson",
    )))
    .chunked(7);
    let mut request = request(true);
    request.messages = vec![
        user("what is the weather in Toronto?"),
        Message {
            role: Role::Assistant as i32,
            tool_calls: vec![ToolCall {
                id: "call_0".into(),
                function: Some(FunctionCall {
                    name: "get_weather".into(),
                    arguments: r#"{"city":"Toronto"}"#.into(),
                }),
            }],
            ..Message::default()
        },
        Message {
            role: Role::Tool as i32,
            tool_call_id: "call_0".into(),
            content: Some(Content::Text("11 degrees celsius".into())),
            ..Message::default()
        },
        user("and in Tokyo?"),
    ];
    request.tools = vec![weather_tool()];
    request.tool_choice = Some(ToolChoice {
        choice: Some(Choice::Function("get_weather".into())),
    });
    let (events, sent) = run(reply, request).await;
    assert_eq!(
        events,
        [
            status(),
            Body::ToolCall(ToolCall {
                id: "call_0".into(),
                function: Some(FunctionCall {
                    name: "get_weather".into(),
                    arguments: r#"{"city":"Tokyo"}"#.into(),
                }),
            }),
            usage(169, 15),
            done("tool_calls"),
        ]
    );
    let body = assert_chat_request(&sent);
    assert_eq!(
        body["messages"],
        json!([
            {"role": "user", "content": "what is the weather in Toronto?"},
            {"role": "assistant", "content": "", "tool_calls": [
                {"function": {"name": "get_weather", "arguments": {"city": "Toronto"}}}
            ]},
            {"role": "tool", "content": "11 degrees celsius", "tool_name": "get_weather"},
            {"role": "user", "content": "and in Tokyo?"}
        ])
    );
    assert_eq!(body["tools"][0]["function"]["name"], "get_weather");
    assert_eq!(body["tools"][0]["type"], "function");
}

#[tokio::test]
async fn images_are_sent_inline_and_urls_refused_before_any_request() {
    let image = |source| ContentPart {
        part: Some(Part::Image(Image {
            source: Some(source),
            media_type: "image/png".into(),
            detail: String::new(),
        })),
    };
    let with = |source| {
        let mut request = request(true);
        request.messages = vec![Message {
            role: Role::User as i32,
            content: Some(Content::Parts(ContentParts {
                parts: vec![
                    ContentPart {
                        part: Some(Part::Text("what is this?".into())),
                    },
                    image(source),
                ],
            })),
            ..Message::default()
        }];
        request
    };
    let reply = Reply::ndjson(gtl_test::read(provider_fixture("ollama/chat_text.ndjson")));
    let (_, sent) = run(reply, with(Source::Data(b"GIF89a".to_vec()))).await;
    assert_eq!(
        assert_chat_request(&sent)["messages"][0],
        json!({"role": "user", "content": "what is this?", "images": ["R0lGODlh"]})
    );

    let server = ReplayServer::start(Reply::ndjson("")).await;
    let error = provider(&server)
        .stream(with(Source::Url("https://example.com/cat.png".into())))
        .await
        .err()
        .unwrap();
    assert_eq!(error.code, ErrorCode::InvalidRequest);
    assert!(error.message.contains("image urls"), "{}", error.message);
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn unary_calls_send_stream_false() {
    let answer = r#"{"model":"llama3.2","created_at":"2023-12-12T14:13:43.416799Z","message":{"role":"assistant","content":"Hello! How are you today?"},"done":true,"total_duration":5191566416,"load_duration":2154458,"prompt_eval_count":26,"prompt_eval_duration":383809000,"eval_count":298,"eval_duration":4799921000}"#;
    let server = ReplayServer::start(Reply::json(200, answer).chunked(3)).await;
    let answer = gtl_core::complete(&provider(&server), request(false))
        .await
        .unwrap();
    assert_eq!(answer.text, "Hello! How are you today?");
    assert_eq!(answer.finish_reason, "stop");
    assert_eq!(answer.provider, "ollama");
    let usage = answer.usage.unwrap();
    assert_eq!(
        (usage.tokens_in, usage.tokens_out, usage.cost),
        (26, 298, 0.0)
    );
    let body = assert_chat_request(&server.single_request());
    assert_eq!(body["stream"], false);
}

#[tokio::test]
async fn an_error_line_mid_stream_ends_the_stream_after_output() {
    // Ollama's in-band error format (docs/api/errors.mdx) on a chat stream.
    let body = concat!(
        r#"{"model":"llama3.2","created_at":"2025-10-26T17:21:21.196249Z","message":{"role":"assistant","content":" Yes"},"done":false}"#,
        "\n",
        r#"{"error":"an error was encountered while running the model"}"#,
        "\n",
    );
    let (events, _) = run(Reply::ndjson(body).chunked(5), request(true)).await;
    assert_eq!(events[..2], [status(), token(" Yes")]);
    let error = error_of(&events[2]);
    assert_eq!(error.code(), ErrorCode::ProviderError);
    assert_eq!(error.phase(), Phase::AfterFirstToken);
    assert_eq!(
        error.message,
        "ollama: an error was encountered while running the model"
    );
    assert_eq!(events.len(), 3);
}

#[tokio::test]
async fn an_error_line_before_output_is_before_first_token() {
    let (events, _) = run(
        Reply::ndjson("{\"error\":\"model 'llama9' not found, try pulling it first\"}\n"),
        request(true),
    )
    .await;
    let error = error_of(&events[1]);
    assert_eq!(error.code(), ErrorCode::ModelNotFound);
    assert_eq!(error.phase(), Phase::BeforeFirstToken);
}

#[tokio::test]
async fn http_errors_map_to_gtl_codes() {
    let cases = [
        (
            400,
            r#"{"error":"invalid options"}"#,
            ErrorCode::InvalidRequest,
        ),
        (403, r#"{"error":"forbidden"}"#, ErrorCode::PermissionDenied),
        (
            404,
            r#"{"error":"model 'llama9' not found, try pulling it first"}"#,
            ErrorCode::ModelNotFound,
        ),
        (
            500,
            r#"{"error":"llama runner process has terminated"}"#,
            ErrorCode::ProviderUnavailable,
        ),
        (
            503,
            r#"{"error":"server busy, please try again.  maximum pending requests exceeded"}"#,
            ErrorCode::ProviderUnavailable,
        ),
    ];
    for (status, body, code) in cases {
        let error = rejected(Reply::json(status, body)).await;
        assert_eq!(error.code, code, "HTTP {status}: {}", error.message);
        assert_eq!(error.phase, Phase::BeforeFirstToken);
        assert!(error.message.starts_with("ollama: "), "{}", error.message);
    }
    let error =
        rejected(Reply::json(429, r#"{"error":"too many requests"}"#).header("retry-after", "3"))
            .await;
    assert_eq!(error.code, ErrorCode::RateLimit);
    assert_eq!(error.retry_after, Some(Duration::from_secs(3)));
}

#[tokio::test]
async fn a_stream_without_its_done_line_is_an_error() {
    let text = gtl_test::read(provider_fixture("ollama/chat_text.ndjson"));
    let first_line = text.iter().position(|&b| b == b'\n').unwrap() + 1;
    // The body ends cleanly after the first line.
    let (events, _) = run(Reply::ndjson(text[..first_line].to_vec()), request(true)).await;
    assert_eq!(events[..2], [status(), token("The")]);
    let error = error_of(&events[2]);
    assert_eq!(
        (error.code(), error.phase()),
        (ErrorCode::ProviderError, Phase::AfterFirstToken)
    );
    // The connection drops mid-body, after the first line was delivered.
    let reply = Reply::ndjson(text.clone())
        .chunked(first_line)
        .cut_after(first_line + 10);
    let (events, _) = run(reply, request(true)).await;
    assert_eq!(events[..2], [status(), token("The")]);
    let error = error_of(&events[2]);
    assert_eq!(error.phase(), Phase::AfterFirstToken);
    assert!(
        matches!(
            error.code(),
            ErrorCode::ProviderError | ErrorCode::ProviderUnavailable
        ),
        "{error:?}"
    );
    assert_eq!(events.len(), 3);
}

#[tokio::test]
async fn a_malformed_line_is_an_error() {
    let (events, _) = run(
        Reply::ndjson("{\"message\":{\"role\":\"assistant\",\"content\":\"a\"},\"done\":false}\n<html>oops</html>\n"),
        request(true),
    )
    .await;
    assert_eq!(events[1], token("a"));
    let error = error_of(&events[2]);
    assert_eq!(
        (error.code(), error.phase()),
        (ErrorCode::ProviderError, Phase::AfterFirstToken)
    );
    assert!(
        error.message.contains("malformed line"),
        "{}",
        error.message
    );
}

#[tokio::test]
async fn a_bearer_token_is_sent_when_configured() {
    let server = ReplayServer::start(Reply::ndjson(gtl_test::read(provider_fixture(
        "ollama/chat_text.ndjson",
    ))))
    .await;
    let provider = OllamaProvider::new(
        ProviderConfig::new(ProviderKind::Ollama)
            .with_base_url(server.url())
            .with_api_key("proxy-key"),
    )
    .unwrap();
    let events = collect(provider.stream(request(true)).await.unwrap()).await;
    assert_eq!(events.last(), Some(&done("stop")));
    assert_eq!(
        server.single_request().header("authorization"),
        Some("Bearer proxy-key")
    );
}

#[tokio::test]
async fn models_come_from_api_tags() {
    let tags = json!({"models": [
        {"name": "gemma4", "model": "gemma4", "modified_at": "2025-10-03T23:34:03.409490317-07:00",
         "size": 9608350245u64, "digest": "c6eb396dbd5992bbe3f5cdb947e8bbc0ee413d7c17e2beaae69f5d569cf982eb",
         "details": {"format": "gguf", "family": "gemma4", "families": ["gemma4"], "parameter_size": "8.0B", "quantization_level": "Q4_K_M"}},
        {"name": "llava:7b", "model": "llava:7b", "details": {"family": "llama", "families": ["llama", "clip"]}}
    ]});
    assert!(spec().validate("ListResponse", &tags).is_ok());
    let server = ReplayServer::start(Reply::json(200, tags.to_string())).await;
    let info = provider(&server).models().await.unwrap();
    assert_eq!(info.provider, "ollama");
    let names: Vec<(&str, bool)> = info
        .models
        .iter()
        .map(|m| (m.name.as_str(), m.supports_vision))
        .collect();
    assert_eq!(names, [("gemma4", false), ("llava:7b", true)]);
    let sent = server.single_request();
    assert_eq!(
        (sent.method.as_str(), sent.path.as_str()),
        ("GET", "/api/tags")
    );

    // A failing server lists no models rather than failing the listing.
    let server = ReplayServer::start(Reply::json(500, r#"{"error":"boom"}"#)).await;
    assert!(provider(&server).models().await.unwrap().models.is_empty());
}

#[tokio::test]
async fn the_provider_builds_from_config() {
    let server = ReplayServer::start(Reply::ndjson(gtl_test::read(provider_fixture(
        "ollama/chat_text.ndjson",
    ))))
    .await;
    let built: Arc<dyn Provider> = gtl_providers::build(
        ProviderConfig::new(ProviderKind::Ollama)
            .with_base_url(server.url())
            .with_alias("default", "llama3.2"),
    )
    .unwrap();
    assert_eq!(built.name(), "ollama");
    let mut request = request(true);
    request.model = "default".into();
    let events = collect(built.stream(request).await.unwrap()).await;
    assert_eq!(events[0], status());
    assert_eq!(server.single_request().json().unwrap()["model"], "llama3.2");
}
