//! Unit tests of the IO-free parts: request bodies, the stream decoder on
//! every fixture (recorded and composed), unary bodies and error mapping.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt as _;
use gtl_core::ProviderError;
use gtl_proto::types::{Choice, Content, Part, Source, ToolChoiceMode};
use gtl_proto::{
    Body, CompletionRequest, ContentPart, ContentParts, Done, ErrorCode, FunctionCall, FunctionDef,
    Image, Message, Phase, Role, Status, Token, Tool, ToolCall, ToolChoice, Usage,
};
use serde_json::{Value, json};

use super::stream::{Decoder, cost, message};
use super::{models, request};
use crate::http::{JsonBody, Sse, StreamDecoder, StreamMeta, drive};
use crate::usage::Price;

/// A recorded stream from the shared fixtures (`shared/providers/fixtures/anthropic/`).
fn recorded(name: &str) -> Vec<u8> {
    gtl_test::read(gtl_test::provider_fixture(&format!("anthropic/{name}")))
}

/// One of this crate's fixtures (`tests/fixtures/anthropic/`): cases the
/// recorded ones lack, composed from the provider's documentation.
fn fixture(name: &str) -> Vec<u8> {
    gtl_test::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/anthropic")
            .join(name),
    )
}

use gtl_test::served_sse as served;

/// The price the tests use: Claude Sonnet's list price.
const PRICE: Price = Price::per_1m(3.0, 15.0);

/// Runs a body, read in `chunks`, through the shared driver and the
/// decoder: exactly the events a client gets.
async fn run<D: StreamDecoder>(decoder: D, chunks: &[&[u8]]) -> Vec<Body> {
    let body: Vec<Result<Bytes, ProviderError>> = chunks
        .iter()
        .map(|chunk| Ok(Bytes::copy_from_slice(chunk)))
        .collect();
    drive(
        futures::stream::iter(body),
        decoder,
        StreamMeta::default(),
        Arc::from("anthropic"),
        Duration::from_secs(60),
    )
    .collect()
    .await
}

async fn decode_chunks(chunks: &[&[u8]]) -> Vec<Body> {
    run(
        Sse::new(Decoder::new("anthropic", "requested", Some(PRICE))),
        chunks,
    )
    .await
}

async fn decode(body: &[u8]) -> Vec<Body> {
    decode_chunks(&[body]).await
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

/// The usage event for these counts at [`PRICE`].
fn usage(input: u64, written: u64, read: u64, output: u64) -> Body {
    Body::Usage(Usage {
        tokens_in: input + written + read,
        tokens_out: output,
        cost: cost(PRICE, input, written, read, output),
        cached_tokens: read,
    })
}

fn done(reason: &str) -> Body {
    Body::Done(Done {
        finish_reason: reason.into(),
    })
}

fn error(code: ErrorCode, message: &str, phase: Phase) -> Body {
    ProviderError::new(code, message)
        .with_phase(phase)
        .to_event()
}

#[tokio::test]
async fn recorded_text_stream() {
    assert_eq!(
        decode(&served(&recorded("messages_text.sse"))).await,
        [
            status("claude-3-opus-latest"),
            token("Hello"),
            token(" there"),
            token("!"),
            usage(11, 0, 0, 6),
            done("stop"),
        ]
    );
}

#[tokio::test]
async fn recorded_tool_use_stream() {
    let events = decode(&served(&recorded("messages_tool_use.sse"))).await;
    assert_eq!(
        events,
        [
            status("claude-sonnet-4-20250514"),
            token("I"),
            token("'ll check the current weather in Paris for you."),
            tool_call(
                "toolu_01NRLabsLyVHZPKxbKvkfSMn",
                "get_weather",
                r#"{"location": "Paris"}"#
            ),
            usage(377, 0, 0, 65),
            done("tool_calls"),
        ]
    );
    let Body::Usage(usage) = &events[4] else {
        unreachable!()
    };
    assert!((usage.cost - (377.0 * 3.0 + 65.0 * 15.0) / 1e6).abs() < 1e-12);
}

#[tokio::test]
async fn recorded_overload_mid_stream() {
    let events = decode(&served(&recorded("messages_error_midstream.sse"))).await;
    assert_eq!(
        events,
        [
            status("claude-3-opus-latest"),
            token("Hello"),
            // The usage known so far goes out before the error.
            usage(11, 0, 0, 1),
            error(
                ErrorCode::ProviderUnavailable,
                "anthropic: Overloaded",
                Phase::AfterFirstToken
            ),
        ]
    );
    let Body::Error(event) = &events[3] else {
        unreachable!()
    };
    assert!(event.retryable);
}

#[tokio::test]
async fn overload_before_any_output_is_before_first_token() {
    assert_eq!(
        decode(&fixture("messages_error_overloaded_first.sse")).await,
        [error(
            ErrorCode::ProviderUnavailable,
            "anthropic: Overloaded",
            Phase::BeforeFirstToken
        )]
    );
}

/// Every error type Anthropic documents, sent as an `error` event.
#[tokio::test]
async fn every_error_event_type_maps_to_a_code() {
    let cases = [
        (
            "invalid_request_error",
            "max_tokens: Field required",
            ErrorCode::InvalidRequest,
        ),
        (
            "invalid_request_error",
            "prompt is too long: 208310 tokens > 200000 maximum",
            ErrorCode::ContextLengthExceeded,
        ),
        (
            "authentication_error",
            "invalid x-api-key",
            ErrorCode::Unauthenticated,
        ),
        (
            "permission_error",
            "not allowed",
            ErrorCode::PermissionDenied,
        ),
        (
            "not_found_error",
            "model: claude-x",
            ErrorCode::ModelNotFound,
        ),
        ("rate_limit_error", "slow down", ErrorCode::RateLimit),
        (
            "api_error",
            "Internal server error",
            ErrorCode::ProviderUnavailable,
        ),
        (
            "overloaded_error",
            "Overloaded",
            ErrorCode::ProviderUnavailable,
        ),
        (
            "timeout_error",
            "Request timed out",
            ErrorCode::ProviderTimeout,
        ),
    ];
    for (kind, text, code) in cases {
        let body = format!(
            "event: error\ndata: {{\"type\":\"error\",\"error\":{{\"type\":\"{kind}\",\"message\":\"{text}\"}}}}\n\n"
        );
        assert_eq!(
            decode(body.as_bytes()).await,
            [error(
                code,
                &format!("anthropic: {text}"),
                Phase::BeforeFirstToken
            )],
            "{kind}"
        );
    }
}

#[tokio::test]
async fn parallel_tool_calls_with_interleaved_fragments() {
    let events = decode(&fixture("messages_parallel_tools.sse")).await;
    assert_eq!(
        events,
        [
            status("claude-sonnet-4-5-20250929"),
            token("Checking both cities."),
            // Each call is sent when its block stops: index 2 stops first.
            tool_call("toolu_01B", "get_time", r#"{"timezone": "Europe/Oslo"}"#),
            tool_call("toolu_01A", "get_weather", r#"{"city": "Oslo"}"#),
            usage(512, 100, 2048, 88),
            done("tool_calls"),
        ]
    );
    let Body::Usage(usage) = &events[4] else {
        unreachable!()
    };
    assert_eq!((usage.tokens_in, usage.cached_tokens), (2660, 2048));
    // Cache writes at 1.25x and reads at 0.1x the input price.
    let expected = (512.0 * 3.0 + 100.0 * 3.75 + 2048.0 * 0.3 + 88.0 * 15.0) / 1e6;
    assert!((usage.cost - expected).abs() < 1e-12, "{}", usage.cost);
}

#[tokio::test]
async fn thinking_citations_and_unknown_events_are_not_surfaced() {
    assert_eq!(
        decode(&fixture("messages_thinking.sse")).await,
        [
            status("claude-sonnet-4-5-20250929"),
            token("27 * 453 = 12,231."),
            usage(40, 0, 0, 120),
            done("length"),
        ]
    );
}

#[tokio::test]
async fn refusal_finishes_with_content_filter() {
    assert_eq!(
        decode(&fixture("messages_refusal.sse")).await,
        [
            status("claude-haiku-4-5-20251001"),
            token("I can"),
            token("'t"),
            usage(20, 0, 0, 3),
            done("content_filter"),
        ]
    );
}

#[tokio::test]
async fn a_stream_cut_before_message_stop_is_an_error() {
    assert_eq!(
        decode(&fixture("messages_cut.sse")).await,
        [
            status("claude-haiku-4-5"),
            token("Partial"),
            usage(9, 0, 0, 2),
            error(
                ErrorCode::ProviderError,
                "anthropic: stream ended before its final event",
                Phase::AfterFirstToken
            ),
        ]
    );
    // Cut before anything was sent: before the first token.
    assert_eq!(
        decode(b"").await,
        [error(
            ErrorCode::ProviderError,
            "anthropic: stream ended before its final event",
            Phase::BeforeFirstToken
        )]
    );
}

#[tokio::test]
async fn a_malformed_event_ends_the_stream() {
    let events = decode(&fixture("messages_malformed.sse")).await;
    assert_eq!(events.len(), 3, "{events:?}");
    assert_eq!(events[..2], [status("claude-haiku-4-5"), usage(9, 0, 0, 1)]);
    let Body::Error(error) = &events[2] else {
        panic!("expected an error, got {:?}", events[2]);
    };
    assert_eq!(error.code(), ErrorCode::ProviderError);
    assert_eq!(error.phase(), Phase::BeforeFirstToken);
    assert!(
        error
            .message
            .starts_with("anthropic: malformed `content_block_delta` event: "),
        "{}",
        error.message
    );
}

const TOOL_BLOCK: &[u8] = b"event: content_block_start\n\
    data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_x\",\"name\":\"f\",\"input\":{}}}\n\n";

#[tokio::test]
async fn tool_input_that_is_not_json_is_passed_through() {
    let body = [
        TOOL_BLOCK,
        b"event: content_block_delta\n\
        data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"a\\\":\"}}\n\n\
        event: content_block_stop\n\
        data: {\"type\":\"content_block_stop\",\"index\":0}\n\n\
        event: message_stop\n\
        data: {\"type\":\"message_stop\"}\n\n",
    ]
    .concat();
    assert_eq!(
        decode(&body).await,
        [
            status("requested"),
            tool_call("toolu_x", "f", r#"{"a":"#),
            // Tools were called: `stop` becomes `tool_calls`.
            done("tool_calls"),
        ]
    );
}

#[tokio::test]
async fn a_delta_for_an_unknown_block_is_malformed() {
    let body = b"event: content_block_delta\n\
        data: {\"type\":\"content_block_delta\",\"index\":3,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{}\"}}\n\n";
    assert_eq!(
        decode(body).await,
        [
            status("requested"),
            error(
                ErrorCode::ProviderError,
                "anthropic: input_json_delta for unknown content block 3",
                Phase::BeforeFirstToken
            ),
        ]
    );
}

#[tokio::test]
async fn a_tool_call_without_deltas_uses_its_start_input_or_an_empty_object() {
    let body = b"event: content_block_start\n\
        data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_a\",\"name\":\"f\",\"input\":{\"k\":1}}}\n\n\
        event: content_block_start\n\
        data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_b\",\"name\":\"g\",\"input\":{}}}\n\n\
        event: message_stop\n\
        data: {\"type\":\"message_stop\"}\n\n";
    assert_eq!(
        decode(body).await,
        [
            status("requested"),
            tool_call("toolu_a", "f", r#"{"k":1}"#),
            tool_call("toolu_b", "g", "{}"),
            done("tool_calls"),
        ]
    );
}

/// Every `stop_reason` of the API definition, and one it may add later.
#[tokio::test]
async fn every_stop_reason_maps_to_a_finish_reason() {
    let cases = [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
        ("a_reason_added_later", "stop"),
    ];
    for (stop_reason, expected) in cases {
        let body = format!(
            "event: message_delta\ndata: {{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":\"{stop_reason}\"}},\"usage\":{{\"output_tokens\":1}}}}\n\n\
             event: message_stop\ndata: {{\"type\":\"message_stop\"}}\n\n"
        );
        let events = decode(body.as_bytes()).await;
        assert_eq!(events.last(), Some(&done(expected)), "{stop_reason}");
    }
}

#[tokio::test]
async fn events_after_the_end_are_ignored() {
    let mut body = served(&recorded("messages_text.sse"));
    body.extend_from_slice(b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"late\"}}\n\n");
    let events = decode(&body).await;
    assert_eq!(events.last(), Some(&done("stop")));
    assert!(!events.contains(&token("late")));
}

/// Every fixture, split into two reads at every byte offset, and fed one
/// byte at a time, decodes to the same events as in one read.
#[tokio::test]
async fn events_split_across_reads_at_every_offset() {
    let fixtures: [&[u8]; 9] = [
        &recorded("messages_text.sse"),
        &recorded("messages_tool_use.sse"),
        &recorded("messages_error_midstream.sse"),
        &fixture("messages_error_overloaded_first.sse"),
        &fixture("messages_parallel_tools.sse"),
        &fixture("messages_thinking.sse"),
        &fixture("messages_refusal.sse"),
        &fixture("messages_cut.sse"),
        &fixture("messages_malformed.sse"),
    ];
    for fixture in fixtures {
        let body = served(fixture);
        let whole = decode(&body).await;
        for at in 0..=body.len() {
            let (head, tail) = body.split_at(at);
            assert_eq!(decode_chunks(&[head, tail]).await, whole, "split at {at}");
        }
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(decode_chunks(&bytes).await, whole, "byte by byte");
    }
}

#[tokio::test]
async fn crlf_line_ends_decode_the_same() {
    let body = served(&recorded("messages_tool_use.sse"));
    let crlf = String::from_utf8(body.clone())
        .expect("utf-8")
        .replace('\n', "\r\n");
    assert_eq!(decode(crlf.as_bytes()).await, decode(&body).await);
}

fn unary(decoder: Decoder) -> impl StreamDecoder {
    JsonBody::new(move |body: &[u8], out: &mut Vec<Body>| message(&decoder, body, out))
}

#[tokio::test]
async fn unary_response() {
    let decoder = Decoder::new("anthropic", "claude-sonnet-4-5", Some(PRICE));
    assert_eq!(
        run(unary(decoder), &[&fixture("message_unary.json")]).await,
        [
            status("claude-sonnet-4-5-20250929"),
            token("Let me check."),
            tool_call("toolu_01Unary", "get_weather", r#"{"city":"Oslo"}"#),
            usage(2095, 0, 1000, 503),
            done("tool_calls"),
        ]
    );
    let decoder = Decoder::new("anthropic", "m", None);
    let events = run(unary(decoder), &[b"{not json"]).await;
    assert!(
        matches!(&events[..], [Body::Error(e)] if e.code() == ErrorCode::ProviderError),
        "{events:?}"
    );
}

/// Input counts whose sum does not fit a u64 saturate. The sum overflowed
/// (a panic in debug builds; found with the `provider_anthropic` fuzz
/// target).
#[tokio::test]
async fn input_counts_too_large_to_add_saturate() {
    let counts = r#"{"input_tokens":18446744073709551615,"cache_creation_input_tokens":1,"cache_read_input_tokens":2,"output_tokens":3}"#;
    let saturated = Body::Usage(Usage {
        tokens_in: u64::MAX,
        tokens_out: 3,
        cost: cost(PRICE, u64::MAX, 1, 2, 3),
        cached_tokens: 2,
    });
    let stream = format!(
        "event: message_start\ndata: {{\"type\":\"message_start\",\"message\":{{\"model\":\"m\",\"usage\":{counts}}}}}\n\n\
         event: message_stop\ndata: {{\"type\":\"message_stop\"}}\n\n"
    );
    assert_eq!(
        decode(stream.as_bytes()).await,
        [status("m"), saturated.clone(), done("stop")]
    );
    let body = format!(r#"{{"model":"m","content":[],"stop_reason":"end_turn","usage":{counts}}}"#);
    let decoder = Decoder::new("anthropic", "m", Some(PRICE));
    assert_eq!(
        run(unary(decoder), &[body.as_bytes()]).await,
        [status("m"), saturated, done("stop")]
    );
}

// ---------------------------------------------------------------------------
// Request bodies
// ---------------------------------------------------------------------------

fn text(role: Role, text: &str) -> Message {
    Message {
        role: role as i32,
        content: Some(Content::Text(text.into())),
        ..Message::default()
    }
}

fn base_request(messages: Vec<Message>) -> CompletionRequest {
    CompletionRequest {
        model: "claude-sonnet-4-5".into(),
        messages,
        stream: true,
        ..CompletionRequest::default()
    }
}

/// Anthropic's OpenAPI definition, loaded once.
fn spec() -> &'static gtl_test::OpenApi {
    static SPEC: std::sync::OnceLock<gtl_test::OpenApi> = std::sync::OnceLock::new();
    SPEC.get_or_init(|| {
        gtl_test::OpenApi::from_json_file(gtl_test::provider_spec("anthropic/openapi.json"))
            .expect("anthropic spec")
    })
}

/// The streaming body for `request`, checked against `CreateMessageParams`.
fn build(request: &CompletionRequest) -> Value {
    let body = request::build(request, true).expect("builds");
    if let Err(violations) = spec().validate("CreateMessageParams", &body) {
        panic!("body breaks CreateMessageParams:\n{violations}\n{body:#}");
    }
    body
}

#[test]
fn system_prompt_user_turn_and_defaults() {
    let request = base_request(vec![
        text(Role::System, "Be brief."),
        text(Role::User, "Hello"),
    ]);
    assert_eq!(
        build(&request),
        json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 8192,
            "system": "Be brief.",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}],
            "stream": true,
        })
    );
    let unary = request::build(&request, false).expect("builds");
    assert_eq!(unary.get("stream"), None);
}

#[test]
fn sampling_fields_and_several_system_messages() {
    let mut request = base_request(vec![
        text(Role::System, "One."),
        text(Role::User, "Hi"),
        text(Role::System, "Two."),
    ]);
    request.max_tokens = Some(100);
    request.temperature = Some(0.5);
    request.top_p = Some(0.9);
    request.stop = vec!["\n\nHuman:".into(), "END".into()];
    let body = build(&request);
    assert_eq!(body["max_tokens"], 100);
    assert_eq!(body["temperature"], 0.5);
    assert_eq!(body["top_p"], 0.9);
    assert_eq!(body["stop_sequences"], json!(["\n\nHuman:", "END"]));
    assert_eq!(
        body["system"],
        json!([{"type": "text", "text": "One."}, {"type": "text", "text": "Two."}])
    );
}

#[test]
fn default_max_tokens_per_model() {
    assert_eq!(models::default_max_tokens("claude-opus-4-6"), 8192);
    assert_eq!(models::default_max_tokens("claude-3-haiku-20240307"), 4096);
    assert_eq!(
        models::default_max_tokens("claude-sonnet-4-5-20250929"),
        8192
    );
    assert_eq!(models::default_max_tokens("claude-next-9"), 4096);
}

fn function_tool(name: &str, parameters: &str) -> Tool {
    Tool {
        function: Some(FunctionDef {
            name: name.into(),
            description: format!("{name} tool"),
            parameters: parameters.into(),
        }),
    }
}

fn choice_mode(mode: ToolChoiceMode) -> Option<ToolChoice> {
    Some(ToolChoice {
        choice: Some(Choice::Mode(mode as i32)),
    })
}

#[test]
fn tools_and_every_tool_choice() {
    let mut request = base_request(vec![text(Role::User, "Weather?")]);
    request.tools = vec![
        function_tool(
            "get_weather",
            r#"{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}"#,
        ),
        function_tool("now", ""),
    ];
    let body = build(&request);
    assert_eq!(
        body["tools"],
        json!([
            {
                "name": "get_weather",
                "description": "get_weather tool",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            },
            {"name": "now", "description": "now tool", "input_schema": {"type": "object"}},
        ])
    );
    assert_eq!(body.get("tool_choice"), None);
    let cases = [
        (
            choice_mode(ToolChoiceMode::Auto),
            Some(json!({"type": "auto"})),
        ),
        (
            choice_mode(ToolChoiceMode::None),
            Some(json!({"type": "none"})),
        ),
        (
            choice_mode(ToolChoiceMode::Required),
            Some(json!({"type": "any"})),
        ),
        (choice_mode(ToolChoiceMode::Unspecified), None),
        (
            Some(ToolChoice {
                choice: Some(Choice::Function("now".into())),
            }),
            Some(json!({"type": "tool", "name": "now"})),
        ),
    ];
    for (choice, expected) in cases {
        request.tool_choice = choice;
        assert_eq!(build(&request).get("tool_choice"), expected.as_ref());
    }
    // Without tools, a tool choice is not sent.
    request.tools.clear();
    assert_eq!(build(&request).get("tool_choice"), None);
}

fn assistant_calls(text: &str, calls: &[(&str, &str, &str)]) -> Message {
    Message {
        role: Role::Assistant as i32,
        content: Some(Content::Text(text.into())),
        tool_calls: calls
            .iter()
            .map(|(id, name, arguments)| ToolCall {
                id: (*id).into(),
                function: Some(FunctionCall {
                    name: (*name).into(),
                    arguments: (*arguments).into(),
                }),
            })
            .collect(),
        ..Message::default()
    }
}

fn tool_result(id: &str, result: &str) -> Message {
    Message {
        role: Role::Tool as i32,
        content: Some(Content::Text(result.into())),
        tool_call_id: id.into(),
        ..Message::default()
    }
}

#[test]
fn tool_calls_and_results_round_trip_into_turns() {
    let request = base_request(vec![
        text(Role::User, "Weather and time in Oslo?"),
        assistant_calls(
            "",
            &[
                ("toolu_1", "get_weather", r#"{"city":"Oslo"}"#),
                ("call_1_get_time~c2ln/+=", "get_time", ""),
            ],
        ),
        tool_result("toolu_1", "3°C"),
        tool_result("call_1_get_time~c2ln/+=", "09:00"),
        text(Role::User, "Thanks"),
    ]);
    assert_eq!(
        build(&request)["messages"],
        json!([
            {"role": "user", "content": [{"type": "text", "text": "Weather and time in Oslo?"}]},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}},
                {"type": "tool_use", "id": "call_1_get_time_c2ln___", "name": "get_time", "input": {}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "3°C"},
                {"type": "tool_result", "tool_use_id": "call_1_get_time_c2ln___", "content": "09:00"},
                {"type": "text", "text": "Thanks"},
            ]},
        ])
    );
}

fn image_message(images: Vec<Image>) -> Message {
    let mut parts = vec![ContentPart {
        part: Some(Part::Text("What is this?".into())),
    }];
    parts.extend(images.into_iter().map(|image| ContentPart {
        part: Some(Part::Image(image)),
    }));
    Message {
        role: Role::User as i32,
        content: Some(Content::Parts(ContentParts { parts })),
        ..Message::default()
    }
}

#[test]
fn images_as_base64_or_url_sources() {
    let request = base_request(vec![image_message(vec![
        Image {
            source: Some(Source::Data(b"\x89PNG".to_vec())),
            media_type: "image/png".into(),
            ..Image::default()
        },
        Image {
            source: Some(Source::Url("data:image/jpeg;base64,/9j/4A==".into())),
            ..Image::default()
        },
        Image {
            source: Some(Source::Url("https://example.com/cat.webp".into())),
            ..Image::default()
        },
    ])]);
    assert_eq!(
        build(&request)["messages"][0]["content"],
        json!([
            {"type": "text", "text": "What is this?"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw=="}},
            {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4A=="}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.webp"}},
        ])
    );
}

#[test]
fn invalid_requests_are_refused_before_sending() {
    let cases = [
        (
            base_request(vec![text(Role::System, "only a system prompt")]),
            "no user or assistant message",
        ),
        (
            base_request(vec![image_message(vec![Image {
                source: Some(Source::Data(vec![1, 2, 3])),
                media_type: "image/bmp".into(),
                ..Image::default()
            }])]),
            "image media type `image/bmp`",
        ),
        (
            base_request(vec![image_message(vec![Image::default()])]),
            "neither data nor url",
        ),
        (
            base_request(vec![
                text(Role::User, "x"),
                assistant_calls("", &[("toolu_1", "f", "[1]")]),
            ]),
            "not a JSON object",
        ),
        (
            base_request(vec![text(Role::User, "x"), tool_result("", "r")]),
            "no tool_call_id",
        ),
        (
            {
                let mut request = base_request(vec![text(Role::User, "x")]);
                request.tools = vec![function_tool("f", "not json")];
                request
            },
            "parameters of tool `f`",
        ),
    ];
    for (request, needle) in cases {
        let error = request::build(&request, true).unwrap_err();
        assert_eq!(error.code, ErrorCode::InvalidRequest);
        assert!(error.message.contains(needle), "{}", error.message);
    }
}

#[test]
fn empty_text_is_dropped() {
    let request = base_request(vec![
        text(Role::User, "Hi"),
        text(Role::Assistant, ""),
        text(Role::User, "Again"),
    ]);
    assert_eq!(
        build(&request)["messages"],
        json!([{"role": "user", "content": [
            {"type": "text", "text": "Hi"},
            {"type": "text", "text": "Again"},
        ]}])
    );
}

#[test]
fn model_list_and_prices() {
    let model = models::find("claude-haiku-4-5-20251001").expect("listed");
    let info = model.info(model.price());
    assert_eq!(info.name, "claude-haiku-4-5");
    assert_eq!((info.context_window, info.max_tokens), (200_000, 64_000));
    assert!(info.supports_streaming && info.supports_functions && info.supports_vision);
    assert!((info.cost_per_1k_input - 0.001).abs() < 1e-12);
    assert!((info.cost_per_1k_output - 0.005).abs() < 1e-12);
    assert!(models::find("claude-unknown").is_none());
}
