//! Unit tests of the IO-free parts: request bodies, the frame decoder on
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

use super::stream::Decoder;
use super::{error, models, request, tool_id};
use crate::http::{ErrorBody, JsonBody, Sse, StreamDecoder, StreamMeta, drive, status_error};
use crate::usage::Price;

/// A recorded stream from the shared fixtures (`shared/providers/fixtures/gemini/`).
fn recorded(name: &str) -> Vec<u8> {
    gtl_test::read(gtl_test::provider_fixture(&format!("gemini/{name}")))
}

/// One of this crate's fixtures (`tests/fixtures/gemini/`): cases the
/// recorded ones lack, composed from the provider's documentation.
fn fixture(name: &str) -> Vec<u8> {
    gtl_test::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/gemini")
            .join(name),
    )
}

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
        Arc::from("gemini"),
        Duration::from_secs(60),
    )
    .collect()
    .await
}

/// Decodes a stream of a call to `model`, priced from the built-in list.
async fn decode_chunks(model: &str, chunks: &[&[u8]]) -> Vec<Body> {
    let price = models::find(model).map(models::Model::price);
    run(Sse::new(Decoder::new("gemini", model, price)), chunks).await
}

async fn decode(model: &str, body: &[u8]) -> Vec<Body> {
    decode_chunks(model, &[body]).await
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

fn tool_call(id: &str, name: &str, arguments: &str) -> Body {
    Body::ToolCall(ToolCall {
        id: id.into(),
        function: Some(FunctionCall {
            name: name.into(),
            arguments: arguments.into(),
        }),
    })
}

/// The usage event of a call to a listed `model`.
fn usage(model: &str, tokens_in: u64, cached: u64, tokens_out: u64) -> Body {
    let model = models::find(model).expect("listed");
    Body::Usage(Usage {
        tokens_in,
        tokens_out,
        cost: models::cost(
            model.price(),
            model.cached_ratio,
            tokens_in,
            cached,
            tokens_out,
        ),
        cached_tokens: cached,
    })
}

fn unpriced_usage(tokens_in: u64, tokens_out: u64) -> Body {
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

fn error(code: ErrorCode, message: &str, phase: Phase) -> Body {
    ProviderError::new(code, message)
        .with_phase(phase)
        .to_event()
}

#[tokio::test]
async fn recorded_text_with_cumulative_usage() {
    assert_eq!(
        decode("gemini-exp", &recorded("stream_text_usage.sse")).await,
        [
            status("gemini-exp"),
            token("The"),
            token(" current stock price for Alphabet Inc. (Google) Class C (GOOG)"),
            token(r" is \$166.79 USD. This price reflects a decrease of"),
            token(
                " -0.97% over the last 24 hours. \n\nPlease note that stock prices can change rapidly.  This information is current as of"
            ),
            token(
                " October 2, 2024, at 5:58 PM UTC.  You can find the most up-to-date information on"
            ),
            token(" financial websites like Google Finance or TradingView.\n"),
            // The last frame's counts; an unlisted model has no price.
            unpriced_usage(8, 106),
            done("stop"),
        ]
    );
}

#[tokio::test]
async fn recorded_function_call() {
    assert_eq!(
        decode("gemini-2.5-flash", &recorded("stream_function_call.sse")).await,
        [
            status("gemini-2.5-flash"),
            tool_call(
                "call_0_getTemperature",
                "getTemperature",
                r#"{"city":"San Jose"}"#
            ),
            done("tool_calls"),
        ]
    );
}

#[tokio::test]
async fn recorded_multi_byte_text() {
    assert_eq!(
        decode("gemini-2.5-flash", &recorded("stream_utf8.sse")).await,
        [
            status("gemini-2.5-flash"),
            token("秋风瑟瑟，叶落纷纷，\n西风残照，寒"),
            token("霜渐浓。\n枫叶红了，菊花黄了，\n秋雨绵绵，秋意浓浓。\n\n秋夜漫漫，思"),
            token(
                "绪万千，\n明月当空，星星眨眼。\n思念远方的亲人，\n祝愿他们幸福安康。\n\n秋天是收获的季节，\n人们忙着收割庄稼，\n为一年的辛劳画上圆满的句号。\n秋天也是团圆的季节"
            ),
            token(
                "，\n一家人围坐在一起，\n分享丰收的喜悦，共度美好时光。\n\n秋天是一个美丽的季节，\n它有着独特的韵味，\n让人沉醉其中，流连忘返。\n让我们一起欣赏秋天的美景，\n感受秋天的气息，领悟秋天的哲理。"
            ),
            done("stop"),
        ]
    );
}

#[tokio::test]
async fn recorded_safety_block_after_output() {
    assert_eq!(
        decode("gemini-2.5-flash", &recorded("stream_safety_block.sse")).await,
        [
            status("gemini-2.5-flash"),
            token("No"),
            error(
                ErrorCode::ContentFiltered,
                "gemini: the answer was blocked (SAFETY)",
                Phase::AfterFirstToken
            ),
        ]
    );
}

#[tokio::test]
async fn a_blocked_prompt_is_filtered_before_the_first_token() {
    assert_eq!(
        decode("gemini-2.5-flash", &fixture("stream_prompt_blocked.sse")).await,
        [
            status("gemini-2.5-flash"),
            usage("gemini-2.5-flash", 12, 0, 0),
            error(
                ErrorCode::ContentFiltered,
                "gemini: the prompt was blocked (SAFETY)",
                Phase::BeforeFirstToken
            ),
        ]
    );
}

#[tokio::test]
async fn parallel_calls_carry_their_signature_in_the_id() {
    let model = "gemini-3-pro-preview";
    let events = decode(model, &fixture("stream_parallel_calls.sse")).await;
    assert_eq!(
        events,
        [
            status(model),
            token("I will check both."),
            tool_call(
                "call_0_get_weather~CiQBcsjafDk3c2lnbmF0dXJlLWV4YW1wbGU=",
                "get_weather",
                r#"{"city":"Oslo"}"#
            ),
            tool_call(
                "call_1_get_time",
                "get_time",
                r#"{"timezone":"Europe/Oslo"}"#
            ),
            usage(model, 2120, 2000, 100),
            done("tool_calls"),
        ]
    );
    let Body::Usage(usage) = &events[4] else {
        unreachable!()
    };
    // 120 uncached at $2, 2000 cached at $0.20, 100 out at $12 per million.
    assert!((usage.cost - 0.00184).abs() < 1e-12, "{}", usage.cost);
}

#[tokio::test]
async fn thoughts_are_not_text_and_max_tokens_is_length() {
    let model = "gemini-2.5-flash";
    assert_eq!(
        decode(model, &fixture("stream_thoughts_max_tokens.sse")).await,
        [
            status(model),
            token("Autumn moonlight—"),
            token("\na worm digs silently"),
            usage(model, 9, 0, 35),
            done("length"),
        ]
    );
}

#[tokio::test]
async fn an_error_frame_ends_the_stream() {
    assert_eq!(
        decode("gemini-2.5-pro", &fixture("stream_error_frame.sse")).await,
        [
            status("gemini-2.5-pro"),
            token("Partial answer"),
            error(
                ErrorCode::ProviderUnavailable,
                "gemini: The model is overloaded. Please try again later. (HTTP 503)",
                Phase::AfterFirstToken
            ),
        ]
    );
}

#[tokio::test]
async fn a_stream_cut_without_finish_reason_is_an_error() {
    assert_eq!(
        decode("gemini-2.5-flash", &fixture("stream_cut.sse")).await,
        [
            status("gemini-2.5-flash"),
            token("Once upon"),
            token(" a time"),
            usage("gemini-2.5-flash", 7, 0, 4),
            error(
                ErrorCode::ProviderError,
                "gemini: stream ended before its final event",
                Phase::AfterFirstToken
            ),
        ]
    );
    assert_eq!(
        decode("gemini-2.5-flash", b"").await,
        [error(
            ErrorCode::ProviderError,
            "gemini: stream ended before its final event",
            Phase::BeforeFirstToken
        )]
    );
}

#[tokio::test]
async fn a_malformed_frame_ends_the_stream() {
    let events = decode("gemini-2.5-flash", &fixture("stream_malformed.sse")).await;
    assert_eq!(events.len(), 3, "{events:?}");
    assert_eq!(events[..2], [status("gemini-2.5-flash"), token("Hel")]);
    let Body::Error(error) = &events[2] else {
        panic!("expected an error, got {:?}", events[2]);
    };
    assert_eq!(error.code(), ErrorCode::ProviderError);
    assert_eq!(error.phase(), Phase::AfterFirstToken);
    assert!(
        error
            .message
            .starts_with("gemini: malformed response frame: "),
        "{}",
        error.message
    );
}

#[tokio::test]
async fn bad_function_calls_and_other_filters() {
    let frame = |reason: &str| {
        format!(
            "data: {{\"candidates\": [{{\"content\": {{\"parts\": [], \"role\": \"model\"}}, \"finishReason\": \"{reason}\", \"finishMessage\": \"details\", \"index\": 0}}]}}\r\n\r\n"
        )
    };
    let cases = [
        (
            "MALFORMED_FUNCTION_CALL",
            ErrorCode::ProviderError,
            "gemini: the model's function call failed (MALFORMED_FUNCTION_CALL): details",
        ),
        (
            "RECITATION",
            ErrorCode::ContentFiltered,
            "gemini: the answer was blocked (RECITATION): details",
        ),
        (
            "PROHIBITED_CONTENT",
            ErrorCode::ContentFiltered,
            "gemini: the answer was blocked (PROHIBITED_CONTENT): details",
        ),
    ];
    for (reason, code, message) in cases {
        assert_eq!(
            decode("m", frame(reason).as_bytes()).await,
            [status("m"), error(code, message, Phase::BeforeFirstToken)]
        );
    }
    for reason in ["OTHER", "LANGUAGE", "A_REASON_ADDED_LATER"] {
        assert_eq!(
            decode("m", frame(reason).as_bytes()).await,
            [status("m"), done("stop")],
            "{reason}"
        );
    }
}

#[tokio::test]
async fn other_candidates_are_ignored() {
    let body = b"data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"second\"}]}, \"index\": 1}, {\"content\": {\"parts\": [{\"text\": \"first\"}]}, \"finishReason\": \"STOP\", \"index\": 0}]}\n\n";
    assert_eq!(
        decode("m", body).await,
        [status("m"), token("first"), done("stop")]
    );
}

/// Every fixture, split into two reads at every byte offset (which splits
/// multi-byte characters and CRLF pairs), and fed one byte at a time,
/// decodes to the same events as in one read.
#[tokio::test]
async fn frames_split_across_reads_at_every_offset() {
    let fixtures: [&[u8]; 10] = [
        &recorded("stream_text_usage.sse"),
        &recorded("stream_function_call.sse"),
        &recorded("stream_utf8.sse"),
        &recorded("stream_safety_block.sse"),
        &fixture("stream_prompt_blocked.sse"),
        &fixture("stream_parallel_calls.sse"),
        &fixture("stream_thoughts_max_tokens.sse"),
        &fixture("stream_error_frame.sse"),
        &fixture("stream_cut.sse"),
        &fixture("stream_malformed.sse"),
    ];
    for body in fixtures {
        let whole = decode("gemini-2.5-flash", body).await;
        for at in 0..=body.len() {
            let (head, tail) = body.split_at(at);
            assert_eq!(
                decode_chunks("gemini-2.5-flash", &[head, tail]).await,
                whole,
                "split at {at}"
            );
        }
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(
            decode_chunks("gemini-2.5-flash", &bytes).await,
            whole,
            "byte by byte"
        );
    }
}

fn unary(mut decoder: Decoder) -> impl StreamDecoder {
    JsonBody::new(move |body: &[u8], out: &mut Vec<Body>| {
        decoder.frame(body, out);
        decoder.finish(out);
    })
}

#[tokio::test]
async fn unary_response() {
    let model = "gemini-2.5-flash";
    let price = models::find(model).map(models::Model::price);
    let body = &fixture("generate_content.json");
    // Read in pieces: the body is decoded whole at its end.
    let (head, tail) = body.split_at(body.len() / 2);
    assert_eq!(
        run(unary(Decoder::new("gemini", model, price)), &[head, tail]).await,
        [
            status(model),
            token("The weather in Oslo is "),
            token("mild."),
            tool_call("call_0_get_weather", "get_weather", r#"{"city":"Oslo"}"#),
            usage(model, 30, 0, 12),
            done("tool_calls"),
        ]
    );
}

/// Counts whose sums do not fit a u64 saturate. The sums overflowed (a
/// panic in debug builds; found with the `provider_gemini` fuzz target).
#[tokio::test]
async fn token_counts_too_large_to_add_saturate() {
    let model = "gemini-2.5-flash";
    let body = br#"data: {"candidates":[{"content":{"parts":[{"text":"a"}]},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":18446744073709551615,"toolUsePromptTokenCount":1,"candidatesTokenCount":18446744073709551615,"thoughtsTokenCount":2}}

"#;
    assert_eq!(
        decode(model, body).await,
        [
            status(model),
            token("a"),
            usage(model, u64::MAX, 0, u64::MAX),
            done("stop"),
        ]
    );
}

#[test]
fn error_payloads_refine_the_shared_mapping() {
    let cases: [(u16, &[u8], ErrorCode, Option<Duration>); 10] = [
        (
            400,
            &fixture("errors/400_api_key_invalid.json"),
            ErrorCode::Unauthenticated,
            None,
        ),
        (
            400,
            &fixture("errors/400_context_length.json"),
            ErrorCode::ContextLengthExceeded,
            None,
        ),
        (
            400,
            &fixture("errors/400_invalid_argument.json"),
            ErrorCode::InvalidRequest,
            None,
        ),
        (
            401,
            &fixture("errors/401.json"),
            ErrorCode::Unauthenticated,
            None,
        ),
        (
            403,
            &fixture("errors/403.json"),
            ErrorCode::PermissionDenied,
            None,
        ),
        (
            404,
            &fixture("errors/404.json"),
            ErrorCode::ModelNotFound,
            None,
        ),
        (
            429,
            &fixture("errors/429.json"),
            ErrorCode::RateLimit,
            Some(Duration::from_secs(37)),
        ),
        (
            500,
            &fixture("errors/500.json"),
            ErrorCode::ProviderUnavailable,
            None,
        ),
        (
            503,
            &fixture("errors/503.json"),
            ErrorCode::ProviderUnavailable,
            None,
        ),
        (
            504,
            &fixture("errors/504.json"),
            ErrorCode::ProviderTimeout,
            None,
        ),
    ];
    for (status, body, code, retry_after) in cases {
        let error = error::refine(status_error("gemini", status, None, body), body);
        assert_eq!(error.code, code, "{}", error.message);
        assert_eq!(error.retry_after, retry_after, "{}", error.message);
        assert!(error.message.starts_with("gemini: "), "{}", error.message);
    }
    // A Retry-After header, when there is one, wins over RetryInfo.
    let body = &fixture("errors/429.json");
    let header = Some(Duration::from_secs(5));
    let error = error::refine(status_error("gemini", 429, header, body), body);
    assert_eq!(error.retry_after, header);
    // The array form of a streaming error.
    let array = [
        b"[".as_slice(),
        &fixture("errors/400_api_key_invalid.json"),
        b"]",
    ]
    .concat();
    let error = ErrorBody::parse(&array).to_error("gemini");
    assert_eq!(
        error::refine(error, &array).code,
        ErrorCode::Unauthenticated
    );
}

#[test]
fn tool_ids_carry_signatures() {
    assert_eq!(tool_id::make(2, "f", "", ""), "call_2_f");
    assert_eq!(tool_id::make(0, "f", "abc", ""), "abc");
    assert_eq!(tool_id::make(0, "f", "", "c2ln"), "call_0_f~c2ln");
    assert_eq!(tool_id::signature("call_0_f~c2ln"), Some("c2ln"));
    assert_eq!(tool_id::signature("call_0_f"), None);
    assert_eq!(tool_id::signature("x~not base64!"), None);
    assert_eq!(tool_id::signature("x~"), None);
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

fn base_request(model: &str, messages: Vec<Message>) -> CompletionRequest {
    CompletionRequest {
        model: model.into(),
        messages,
        stream: true,
        ..CompletionRequest::default()
    }
}

/// `GenerateContentRequest`, compiled once from Gemini's v1beta protos.
fn request_descriptor() -> &'static prost_reflect::MessageDescriptor {
    static DESCRIPTOR: std::sync::OnceLock<prost_reflect::MessageDescriptor> =
        std::sync::OnceLock::new();
    DESCRIPTOR.get_or_init(|| {
        let files = protox::compile(
            ["google/ai/generativelanguage/v1beta/generative_service.proto"],
            [gtl_test::provider_spec("gemini/proto")],
        )
        .expect("gemini protos compile");
        prost_reflect::DescriptorPool::from_file_descriptor_set(files)
            .expect("descriptor pool")
            .get_message_by_name("google.ai.generativelanguage.v1beta.GenerateContentRequest")
            .expect("GenerateContentRequest")
    })
}

/// The body for `request`, checked to be a `GenerateContentRequest` in
/// proto3 JSON (unknown fields denied).
fn build(request: &CompletionRequest) -> Value {
    let body = request::build(request).expect("builds");
    let options = prost_reflect::DeserializeOptions::new().deny_unknown_fields(true);
    if let Err(error) = prost_reflect::DynamicMessage::deserialize_with_options(
        request_descriptor().clone(),
        &body,
        &options,
    ) {
        panic!("body is not a GenerateContentRequest: {error}\n{body:#}");
    }
    body
}

#[test]
fn paths_for_stream_and_unary() {
    assert_eq!(
        request::path("gemini-2.5-flash", true).unwrap(),
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    );
    assert_eq!(
        request::path("models/gemini-2.5-flash", false).unwrap(),
        "/v1beta/models/gemini-2.5-flash:generateContent"
    );
    for bad in ["", "models/", "../x", "a/b", "x?alt=json", "gemini 2"] {
        assert_eq!(
            request::path(bad, true).unwrap_err().code,
            ErrorCode::ModelNotFound,
            "{bad}"
        );
    }
}

#[test]
fn system_instruction_turns_and_generation_config() {
    let mut request = base_request(
        "gemini-2.5-flash",
        vec![
            text(Role::System, "Be brief."),
            text(Role::User, "Hello"),
            text(Role::Assistant, "Hi!"),
            text(Role::System, "Answer in French."),
            text(Role::User, "How are you?"),
        ],
    );
    request.max_tokens = Some(256);
    request.temperature = Some(0.25);
    request.top_p = Some(0.5);
    request.stop = vec!["END".into()];
    assert_eq!(
        build(&request),
        json!({
            "systemInstruction": {"parts": [{"text": "Be brief."}, {"text": "Answer in French."}]},
            "contents": [
                {"role": "user", "parts": [{"text": "Hello"}]},
                {"role": "model", "parts": [{"text": "Hi!"}]},
                {"role": "user", "parts": [{"text": "How are you?"}]},
            ],
            "generationConfig": {
                "maxOutputTokens": 256,
                "temperature": 0.25,
                "topP": 0.5,
                "stopSequences": ["END"],
            },
        })
    );
    // Nothing set: no generationConfig at all.
    let plain = build(&base_request(
        "gemini-2.5-flash",
        vec![text(Role::User, "x")],
    ));
    assert_eq!(
        plain,
        json!({"contents": [{"role": "user", "parts": [{"text": "x"}]}]})
    );
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
    let mut request = base_request("gemini-2.5-flash", vec![text(Role::User, "Weather?")]);
    request.tools = vec![
        function_tool(
            "get_weather",
            r#"{"type":"object","properties":{"city":{"type":"string"}},"required":["city"],"additionalProperties":false}"#,
        ),
        function_tool("now", ""),
    ];
    let body = build(&request);
    assert_eq!(
        body["tools"],
        json!([{"functionDeclarations": [
            {
                "name": "get_weather",
                "description": "get_weather tool",
                "parametersJsonSchema": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                    "additionalProperties": false,
                },
            },
            {"name": "now", "description": "now tool"},
        ]}])
    );
    assert_eq!(body.get("toolConfig"), None);
    let cases = [
        (
            choice_mode(ToolChoiceMode::Auto),
            Some(json!({"functionCallingConfig": {"mode": "AUTO"}})),
        ),
        (
            choice_mode(ToolChoiceMode::None),
            Some(json!({"functionCallingConfig": {"mode": "NONE"}})),
        ),
        (
            choice_mode(ToolChoiceMode::Required),
            Some(json!({"functionCallingConfig": {"mode": "ANY"}})),
        ),
        (choice_mode(ToolChoiceMode::Unspecified), None),
        (
            Some(ToolChoice {
                choice: Some(Choice::Function("now".into())),
            }),
            Some(
                json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["now"]}}),
            ),
        ),
    ];
    for (choice, expected) in cases {
        request.tool_choice = choice;
        assert_eq!(build(&request).get("toolConfig"), expected.as_ref());
    }
}

fn assistant_calls(calls: &[(&str, &str, &str)]) -> Message {
    Message {
        role: Role::Assistant as i32,
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

fn tool_conversation(model: &str, first_id: &str) -> CompletionRequest {
    base_request(
        model,
        vec![
            text(Role::User, "Weather and time in Oslo?"),
            assistant_calls(&[
                (first_id, "get_weather", r#"{"city":"Oslo"}"#),
                ("call_1_get_time", "get_time", ""),
            ]),
            tool_result(first_id, r#"{"celsius": 3}"#),
            tool_result("call_1_get_time", "09:00"),
        ],
    )
}

#[test]
fn function_calls_and_responses_with_their_signature() {
    let request = tool_conversation(
        "gemini-3-pro-preview",
        "call_0_get_weather~CiQBcsjafDk3c2lnbmF0dXJlLWV4YW1wbGU=",
    );
    assert_eq!(
        build(&request)["contents"],
        json!([
            {"role": "user", "parts": [{"text": "Weather and time in Oslo?"}]},
            {"role": "model", "parts": [
                {
                    "functionCall": {"name": "get_weather", "args": {"city": "Oslo"}},
                    "thoughtSignature": "CiQBcsjafDk3c2lnbmF0dXJlLWV4YW1wbGU=",
                },
                {"functionCall": {"name": "get_time"}},
            ]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"celsius": 3}}},
                {"functionResponse": {"name": "get_time", "response": {"result": "09:00"}}},
            ]},
        ])
    );
}

#[test]
fn calls_without_signature_skip_the_check_on_gemini_3_only() {
    let body = build(&tool_conversation(
        "gemini-3-flash-preview",
        "toolu_from_claude",
    ));
    assert_eq!(
        body["contents"][1]["parts"][0]["thoughtSignature"],
        json!("skip_thought_signature_validator")
    );
    assert_eq!(
        body["contents"][1]["parts"][1].get("thoughtSignature"),
        None
    );
    for model in ["gemini-2.5-flash", "gemini-2.0-flash-001", "gemma-3-27b-it"] {
        let body = build(&tool_conversation(model, "toolu_from_claude"));
        assert_eq!(
            body["contents"][1]["parts"][0].get("thoughtSignature"),
            None,
            "{model}"
        );
    }
}

#[test]
fn tool_results_are_named_and_wrapped() {
    let mut named = tool_result("unknown", "[1, 2]");
    named.name = "lookup".into();
    let request = base_request("gemini-2.5-flash", vec![text(Role::User, "x"), named]);
    assert_eq!(
        build(&request)["contents"][0]["parts"][1],
        json!({"functionResponse": {"name": "lookup", "response": {"result": [1, 2]}}})
    );
    let orphan = base_request(
        "gemini-2.5-flash",
        vec![text(Role::User, "x"), tool_result("unknown", "r")],
    );
    let error = request::build(&orphan).unwrap_err();
    assert_eq!(error.code, ErrorCode::InvalidRequest);
    assert!(
        error.message.contains("answers no tool call"),
        "{}",
        error.message
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
fn images_inline_or_as_file_data() {
    let request = base_request(
        "gemini-2.5-flash",
        vec![image_message(vec![
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
                source: Some(Source::Url(
                    "https://generativelanguage.googleapis.com/v1beta/files/abc-123".into(),
                )),
                media_type: "image/webp".into(),
                ..Image::default()
            },
            Image {
                source: Some(Source::Url("https://example.com/cat.JPG?size=2".into())),
                ..Image::default()
            },
        ])],
    );
    assert_eq!(
        build(&request)["contents"][0]["parts"],
        json!([
            {"text": "What is this?"},
            {"inlineData": {"mimeType": "image/png", "data": "iVBORw=="}},
            {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4A=="}},
            {"fileData": {"mimeType": "image/webp", "fileUri": "https://generativelanguage.googleapis.com/v1beta/files/abc-123"}},
            {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/cat.JPG?size=2"}},
        ])
    );
}

#[test]
fn invalid_requests_are_refused_before_sending() {
    let cases = [
        (
            base_request("gemini-2.5-flash", vec![text(Role::System, "only")]),
            "no user or assistant message",
        ),
        (
            base_request(
                "gemini-2.5-flash",
                vec![image_message(vec![Image {
                    source: Some(Source::Data(vec![1])),
                    ..Image::default()
                }])],
            ),
            "needs its media_type",
        ),
        (
            base_request(
                "gemini-2.5-flash",
                vec![
                    text(Role::User, "x"),
                    assistant_calls(&[("c", "f", "\"s\"")]),
                ],
            ),
            "not a JSON object",
        ),
        (
            {
                let mut request = base_request("gemini-2.5-flash", vec![text(Role::User, "x")]);
                request.tools = vec![function_tool("f", "[]")];
                request
            },
            "parameters of tool `f`",
        ),
    ];
    for (request, needle) in cases {
        let error = request::build(&request).unwrap_err();
        assert_eq!(error.code, ErrorCode::InvalidRequest);
        assert!(error.message.contains(needle), "{}", error.message);
    }
}

#[test]
fn max_tokens_beyond_int32_is_clamped() {
    let mut request = base_request("gemini-2.5-flash", vec![text(Role::User, "x")]);
    request.max_tokens = Some(u32::MAX);
    assert_eq!(
        build(&request)["generationConfig"]["maxOutputTokens"],
        i32::MAX
    );
}

#[test]
fn model_list_and_prices() {
    let model = models::find("gemini-2.0-flash-001").expect("listed");
    let info = model.info(model.price());
    assert_eq!(info.name, "gemini-2.0-flash");
    assert_eq!((info.context_window, info.max_tokens), (1_048_576, 8_192));
    assert!(
        models::find("gemini-2.5-flash-lite").is_some_and(|m| m.name == "gemini-2.5-flash-lite")
    );
    assert!(models::find("gemini-2.5-flash-preview").is_none());
    let price = Price::per_1m(1.0, 10.0);
    let cost = models::cost(price, 0.25, 2000, 1000, 100);
    assert!(
        (cost - (1000.0 + 250.0 + 1000.0) / 1e6).abs() < 1e-12,
        "{cost}"
    );
}
