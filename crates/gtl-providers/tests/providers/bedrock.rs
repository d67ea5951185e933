//! Bedrock through a local replay server: the signed request AWS would
//! receive and the GTL events decoded from binary event-stream bodies.

use crate::support::{refused, stream_once};
use std::path::PathBuf;
use std::time::Duration;

use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use futures::StreamExt as _;
use gtl_core::{Provider, ProviderError};
use gtl_proto::types::Content;
use gtl_proto::{
    Body, CompletionRequest, Done, ErrorCode, FunctionCall, FunctionDef, Phase, Role, Status,
    Token, Tool, ToolCall, Usage,
};
use gtl_providers::bedrock::BedrockProvider;
use gtl_providers::{AwsCredentials, ProviderConfig, ProviderKind};
use gtl_test::{RecordedRequest, ReplayServer, Reply};
use hmac::{Hmac, Mac as _};
use serde_json::json;
use sha2::{Digest as _, Sha256};

const MODEL: &str = "anthropic.claude-3-haiku-20240307-v1:0";
const ACCESS_KEY: &str = "AKIDEXAMPLE";
const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const SESSION_TOKEN: &str = "FwoGZXIvYXdzEXAMPLESESSIONTOKEN";

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/bedrock")
        .join(name);
    gtl_test::read(path)
}

fn eventstream(body: Vec<u8>) -> Reply {
    Reply::new(200)
        .header("content-type", "application/vnd.amazon.eventstream")
        .body(body)
}

fn provider(server: &ReplayServer, session_token: bool) -> BedrockProvider {
    let mut credentials = AwsCredentials::new(ACCESS_KEY, SECRET_KEY);
    if session_token {
        credentials = credentials.with_session_token(SESSION_TOKEN);
    }
    BedrockProvider::new(
        ProviderConfig::new(ProviderKind::Bedrock)
            .with_region("us-east-1")
            .with_aws(credentials)
            .with_base_url(server.url()),
    )
    .unwrap()
}

fn request(stream: bool) -> CompletionRequest {
    CompletionRequest {
        model: MODEL.into(),
        messages: vec![
            gtl_proto::Message {
                role: Role::System as i32,
                content: Some(Content::Text("be brief".into())),
                ..gtl_proto::Message::default()
            },
            gtl_proto::Message {
                role: Role::User as i32,
                content: Some(Content::Text("hello".into())),
                ..gtl_proto::Message::default()
            },
        ],
        stream,
        max_tokens: Some(256),
        ..CompletionRequest::default()
    }
}

async fn run(reply: Reply, request: CompletionRequest) -> (Vec<Body>, RecordedRequest) {
    let server = ReplayServer::start(reply).await;
    stream_once(&provider(&server, true), &server, request).await
}

async fn rejected(reply: Reply) -> ProviderError {
    let server = ReplayServer::start(reply).await;
    refused(&provider(&server, false), request(true)).await
}

fn status() -> Body {
    Body::Status(Status {
        state: "streaming".into(),
        provider: "bedrock".into(),
        model: MODEL.into(),
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

fn call(id: &str, name: &str, arguments: &str) -> Body {
    Body::ToolCall(ToolCall {
        id: id.into(),
        function: Some(FunctionCall {
            name: name.into(),
            arguments: arguments.into(),
        }),
    })
}

fn error_of(body: &Body) -> &gtl_proto::Error {
    match body {
        Body::Error(error) => error,
        other => panic!("expected an error, got {other:?}"),
    }
}

fn usage_of(body: &Body) -> &Usage {
    match body {
        Body::Usage(usage) => usage,
        other => panic!("expected usage, got {other:?}"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// URI-encodes a path the way SigV4 canonicalises it: every byte but the
/// unreserved ones and `/`.
fn uri_encode_path(path: &str) -> String {
    path.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Checks the request the way AWS would: recomputes the SigV4 signature
/// from what was received (method, path, the signed headers' values, the
/// body) with the secret key, independently of `aws-sigv4`.
fn assert_signed(request: &RecordedRequest, session_token: bool) {
    let authorization = request
        .header("authorization")
        .expect("an authorization header");
    let date = request.header("x-amz-date").expect("an x-amz-date header");
    assert_eq!(date.len(), 16, "{date}");
    assert!(date.ends_with('Z') && date.as_bytes()[8] == b'T', "{date}");
    let mut signed_headers = vec!["accept", "content-type", "host", "x-amz-date"];
    if session_token {
        assert_eq!(request.header("x-amz-security-token"), Some(SESSION_TOKEN));
        signed_headers.push("x-amz-security-token");
    } else {
        assert_eq!(request.header("x-amz-security-token"), None);
    }
    let scope = format!("{}/us-east-1/bedrock/aws4_request", &date[..8]);
    let prefix = format!(
        "AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/{scope}, SignedHeaders={}, Signature=",
        signed_headers.join(";")
    );
    let signature = authorization
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{authorization} does not start with {prefix}"));

    // The path is URI-encoded once more for the canonical request (every
    // service but S3).
    let canonical_headers: String = signed_headers
        .iter()
        .map(|name| format!("{name}:{}\n", request.header(name).unwrap().trim()))
        .collect();
    let canonical_request = format!(
        "{}\n{}\n\n{canonical_headers}\n{}\n{}",
        request.method,
        uri_encode_path(&request.path),
        signed_headers.join(";"),
        hex(&Sha256::digest(&request.body)),
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical_request.as_bytes()))
    );
    let mut key = hmac(format!("AWS4{SECRET_KEY}").as_bytes(), &date[..8]);
    for part in ["us-east-1", "bedrock", "aws4_request"] {
        key = hmac(&key, part);
    }
    assert_eq!(
        signature,
        hex(&hmac(&key, &string_to_sign)),
        "{canonical_request}"
    );
}

#[tokio::test]
async fn streams_text_with_a_signed_request() {
    let (events, sent) = run(
        eventstream(fixture("converse_stream_text.bin")).chunked(1),
        request(true),
    )
    .await;
    assert_eq!(events[..3], [status(), token("Hello"), token(", world")]);
    let usage = usage_of(&events[3]);
    assert_eq!(
        (usage.tokens_in, usage.tokens_out, usage.cached_tokens),
        (12, 5, 0)
    );
    // Claude 3 Haiku: $0.25 / $1.25 per million tokens.
    assert!(
        (usage.cost - (12.0 * 0.25 + 5.0 * 1.25) / 1e6).abs() < 1e-12,
        "{}",
        usage.cost
    );
    assert_eq!(events[4], done("stop"));
    assert_eq!(events.len(), 5);

    assert_eq!(sent.method, "POST");
    assert_eq!(
        sent.path,
        "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream"
    );
    assert_eq!(sent.header("content-type"), Some("application/json"));
    assert_eq!(
        sent.header("accept"),
        Some("application/vnd.amazon.eventstream")
    );
    assert_signed(&sent, true);
    assert_eq!(
        sent.json().unwrap(),
        json!({
            "messages": [{"role": "user", "content": [{"text": "hello"}]}],
            "system": [{"text": "be brief"}],
            "inferenceConfig": {"maxTokens": 256}
        })
    );
}

#[tokio::test]
async fn interleaved_tool_use_blocks() {
    let mut request = request(true);
    request.tools = vec![Tool {
        function: Some(FunctionDef {
            name: "get_weather".into(),
            description: "Get the weather".into(),
            parameters: r#"{"type":"object","properties":{"city":{"type":"string"}}}"#.into(),
        }),
    }];
    let (events, sent) = run(
        eventstream(fixture("converse_stream_tool_use.bin")).chunked(13),
        request,
    )
    .await;
    assert_eq!(
        events[..4],
        [
            status(),
            token("Checking."),
            call("tooluse_utc", "get_time", r#"{"tz":"UTC"}"#),
            call("tooluse_oslo", "get_weather", r#"{"city":"Oslo"}"#),
        ]
    );
    let usage = usage_of(&events[4]);
    assert_eq!(
        (usage.tokens_in, usage.tokens_out, usage.cached_tokens),
        (140, 30, 100)
    );
    assert_eq!(events[5], done("tool_calls"));
    assert_eq!(
        sent.json().unwrap()["toolConfig"],
        json!({"tools": [{"toolSpec": {"name": "get_weather", "description": "Get the weather",
            "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}}}}}}]})
    );
}

#[tokio::test]
async fn a_throttling_exception_mid_stream() {
    let (events, _) = run(
        eventstream(fixture("converse_stream_throttling.bin")).chunked(2),
        request(true),
    )
    .await;
    assert_eq!(events[..2], [status(), token("Hel")]);
    let error = error_of(&events[2]);
    assert_eq!(error.code(), ErrorCode::RateLimit);
    assert_eq!(error.phase(), Phase::AfterFirstToken);
    assert!(error.retryable);
    assert_eq!(
        error.message,
        "bedrock: throttlingException: Too many requests, please wait before trying again."
    );
    assert_eq!(events.len(), 3);
}

fn frame(headers: &[(&str, &str)], payload: &str) -> Vec<u8> {
    let message = Message::new_from_parts(
        headers
            .iter()
            .map(|(n, v)| Header::new(n.to_string(), HeaderValue::String(v.to_string().into())))
            .collect(),
        payload.as_bytes().to_vec(),
    );
    let mut out = Vec::new();
    write_message_to(&message, &mut out).unwrap();
    out
}

#[tokio::test]
async fn exceptions_before_output() {
    let cases = [
        (
            "validationException",
            "Input is too long for requested model.",
            ErrorCode::ContextLengthExceeded,
        ),
        (
            "validationException",
            "Malformed input request",
            ErrorCode::InvalidRequest,
        ),
        (
            "serviceUnavailableException",
            "Bedrock is unable to process your request.",
            ErrorCode::ProviderUnavailable,
        ),
        (
            "modelStreamErrorException",
            "The model stream failed.",
            ErrorCode::ProviderError,
        ),
    ];
    for (kind, message, code) in cases {
        let body = frame(
            &[
                (":exception-type", kind),
                (":content-type", "application/json"),
                (":message-type", "exception"),
            ],
            &json!({ "message": message }).to_string(),
        );
        let (events, _) = run(eventstream(body), request(true)).await;
        let error = error_of(&events[1]);
        assert_eq!(
            (error.code(), error.phase()),
            (code, Phase::BeforeFirstToken),
            "{kind}"
        );
    }
}

#[tokio::test]
async fn http_errors_map_by_status_and_error_type() {
    let reply = |status: u16, kind: &str, message: &str| {
        Reply::json(status, json!({ "message": message }).to_string()).header(
            "x-amzn-errortype",
            &format!("{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"),
        )
    };
    let cases = [
        (
            reply(
                400,
                "ValidationException",
                "The provided model identifier is invalid.",
            ),
            ErrorCode::InvalidRequest,
        ),
        (
            reply(
                400,
                "ValidationException",
                "Input is too long for requested model.",
            ),
            ErrorCode::ContextLengthExceeded,
        ),
        (
            reply(
                403,
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            ),
            ErrorCode::Unauthenticated,
        ),
        (
            reply(
                403,
                "AccessDeniedException",
                "You don't have access to the model with the specified model ID.",
            ),
            ErrorCode::PermissionDenied,
        ),
        (
            reply(
                404,
                "ResourceNotFoundException",
                "Could not resolve the foundation model.",
            ),
            ErrorCode::ModelNotFound,
        ),
        (
            reply(408, "ModelTimeoutException", "Model has timed out."),
            ErrorCode::ProviderTimeout,
        ),
        (
            reply(
                424,
                "ModelErrorException",
                "The model failed to process the request.",
            ),
            ErrorCode::ProviderError,
        ),
        (
            reply(500, "InternalServerException", "Internal server error"),
            ErrorCode::ProviderUnavailable,
        ),
        (
            reply(503, "ServiceUnavailableException", "Service unavailable"),
            ErrorCode::ProviderUnavailable,
        ),
        // No error-type header: the body's `__type`, else the status alone.
        (
            Reply::json(
                403,
                r#"{"__type":"com.amazon.coral.service#UnrecognizedClientException","message":"bad token"}"#,
            ),
            ErrorCode::Unauthenticated,
        ),
        (
            Reply::json(403, r#"{"message":"denied"}"#),
            ErrorCode::PermissionDenied,
        ),
    ];
    for (reply, code) in cases {
        let error = rejected(reply).await;
        assert_eq!(error.code, code, "{}", error.message);
        assert_eq!(error.phase, Phase::BeforeFirstToken);
        assert!(error.message.starts_with("bedrock: "), "{}", error.message);
    }
    let error = rejected(
        reply(
            429,
            "ThrottlingException",
            "Too many requests, please wait before trying again.",
        )
        .header("retry-after", "2"),
    )
    .await;
    assert_eq!(error.code, ErrorCode::RateLimit);
    assert_eq!(error.retry_after, Some(Duration::from_secs(2)));
}

#[tokio::test]
async fn cut_and_corrupt_streams() {
    let text = fixture("converse_stream_text.bin");
    // The frames up to the second delta, then a clean end: no messageStop.
    let first = u32::from_be_bytes(text[..4].try_into().unwrap()) as usize;
    let second = u32::from_be_bytes(text[first..first + 4].try_into().unwrap()) as usize;
    let (events, _) = run(eventstream(text[..first + second].to_vec()), request(true)).await;
    assert_eq!(events[..2], [status(), token("Hello")]);
    let error = error_of(&events[2]);
    assert_eq!(
        (error.code(), error.phase()),
        (ErrorCode::ProviderError, Phase::AfterFirstToken)
    );
    assert!(
        error.message.contains("before `messageStop`"),
        "{}",
        error.message
    );

    // A frame cut in the middle.
    let (events, _) = run(
        eventstream(text[..first + second + 9].to_vec()),
        request(true),
    )
    .await;
    assert!(error_of(&events[2]).message.contains("inside a frame"));

    // A flipped bit in the third frame's payload: its CRC fails.
    let mut corrupt = text.clone();
    corrupt[first + second + 60] ^= 0x04;
    let (events, _) = run(eventstream(corrupt), request(true)).await;
    assert_eq!(events[..2], [status(), token("Hello")]);
    let error = error_of(&events[2]);
    assert_eq!(
        (error.code(), error.phase()),
        (ErrorCode::ProviderError, Phase::AfterFirstToken)
    );
    assert!(error.message.contains("checksum"), "{}", error.message);
    assert_eq!(events.len(), 3);
}

#[tokio::test]
async fn unary_calls_use_converse() {
    let answer = json!({
        "output": {"message": {"role": "assistant", "content": [{"text": "Hi there."}]}},
        "stopReason": "max_tokens",
        "usage": {"inputTokens": 8, "outputTokens": 3, "totalTokens": 11},
        "metrics": {"latencyMs": 120}
    });
    let server = ReplayServer::start(Reply::json(200, answer.to_string())).await;
    let provider = provider(&server, false);
    let answer = gtl_core::complete(&provider, request(false)).await.unwrap();
    assert_eq!(answer.text, "Hi there.");
    assert_eq!(answer.finish_reason, "length");
    assert_eq!(
        answer.usage.as_ref().map(|u| (u.tokens_in, u.tokens_out)),
        Some((8, 3))
    );
    let sent = server.single_request();
    assert_eq!(
        sent.path,
        "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
    );
    assert_eq!(sent.header("accept"), Some("application/json"));
    assert_signed(&sent, false);
}

#[tokio::test]
async fn configuration_is_checked() {
    let config = ProviderConfig::new(ProviderKind::Bedrock)
        .with_aws(AwsCredentials::new(ACCESS_KEY, SECRET_KEY));
    assert!(
        BedrockProvider::new(config.clone()).is_err(),
        "a region is required"
    );
    assert!(BedrockProvider::new(config.clone().with_region("us-east-1/../x")).is_err());
    let provider = BedrockProvider::new(config.with_region("eu-central-1")).unwrap();
    assert_eq!(
        provider.base_url(),
        "https://bedrock-runtime.eu-central-1.amazonaws.com"
    );
    assert!(
        BedrockProvider::new(ProviderConfig::new(ProviderKind::Bedrock).with_region("us-east-1"))
            .is_err(),
        "credentials are required"
    );
    let models = provider.models().await.unwrap();
    assert_eq!(models.provider, "bedrock");
    assert!(
        models
            .models
            .iter()
            .any(|m| m.name == MODEL && m.cost_per_1k_input > 0.0)
    );
}

#[tokio::test]
async fn the_provider_builds_from_the_environment() {
    let server = ReplayServer::start(eventstream(fixture("converse_stream_text.bin"))).await;
    let env: gtl_providers::Env = [
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ("AWS_SESSION_TOKEN", SESSION_TOKEN),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", server.url().as_str()),
    ]
    .into_iter()
    .collect();
    let providers = gtl_providers::providers_from_env(&env).unwrap();
    let bedrock = providers
        .iter()
        .find(|p| p.name() == "bedrock")
        .expect("bedrock is enabled");
    let events: Vec<Body> = bedrock.stream(request(true)).await.unwrap().collect().await;
    assert_eq!(events.last(), Some(&done("stop")));
    assert_signed(&server.single_request(), true);
}
