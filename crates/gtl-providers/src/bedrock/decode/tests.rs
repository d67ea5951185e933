//! The ConverseStream decoder on frames encoded from the event shapes of
//! the Bedrock API reference, and on the saved binary fixtures.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt as _;
use gtl_proto::{FunctionCall, Phase, ToolCall};
use serde_json::json;

use super::*;
use crate::bedrock::eventstream::encode;
use crate::http::{StreamMeta, drive};

/// Padding Bedrock adds to every event payload (its `p` field) so that
/// frame sizes do not reveal token lengths.
const PADDING: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0";

/// An event frame with the headers Bedrock sends.
fn event(kind: &str, mut payload: serde_json::Value) -> Vec<u8> {
    payload["p"] = json!(PADDING);
    encode(
        &[
            (":event-type", kind),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ],
        payload.to_string().as_bytes(),
    )
}

/// An exception frame.
fn exception_frame(kind: &str, message: &str) -> Vec<u8> {
    encode(
        &[
            (":exception-type", kind),
            (":content-type", "application/json"),
            (":message-type", "exception"),
        ],
        json!({ "message": message }).to_string().as_bytes(),
    )
}

fn text_stream() -> Vec<u8> {
    [
        event("messageStart", json!({"role": "assistant"})),
        event("contentBlockDelta", json!({"contentBlockIndex": 0, "delta": {"text": "Hello"}})),
        event("contentBlockDelta", json!({"contentBlockIndex": 0, "delta": {"text": ", world"}})),
        event("contentBlockStop", json!({"contentBlockIndex": 0})),
        event("messageStop", json!({"stopReason": "end_turn"})),
        event(
            "metadata",
            json!({"usage": {"inputTokens": 12, "outputTokens": 5, "totalTokens": 17}, "metrics": {"latencyMs": 321}}),
        ),
    ]
    .concat()
}

/// Text, then two tool-use blocks whose input fragments interleave.
fn tool_stream() -> Vec<u8> {
    [
        event("messageStart", json!({"role": "assistant"})),
        event("contentBlockDelta", json!({"contentBlockIndex": 0, "delta": {"text": "Checking."}})),
        event("contentBlockStop", json!({"contentBlockIndex": 0})),
        event(
            "contentBlockStart",
            json!({"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "tooluse_oslo", "name": "get_weather"}}}),
        ),
        event("contentBlockDelta", json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "{\"city\":"}}})),
        event(
            "contentBlockStart",
            json!({"contentBlockIndex": 2, "start": {"toolUse": {"toolUseId": "tooluse_utc", "name": "get_time"}}}),
        ),
        event("contentBlockDelta", json!({"contentBlockIndex": 2, "delta": {"toolUse": {"input": "{\"tz\":"}}})),
        event("contentBlockDelta", json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "\"Oslo\"}"}}})),
        event("contentBlockDelta", json!({"contentBlockIndex": 2, "delta": {"toolUse": {"input": "\"UTC\"}"}}})),
        event("contentBlockStop", json!({"contentBlockIndex": 2})),
        event("contentBlockStop", json!({"contentBlockIndex": 1})),
        event("messageStop", json!({"stopReason": "tool_use"})),
        event(
            "metadata",
            json!({"usage": {"inputTokens": 40, "outputTokens": 30, "totalTokens": 170,
                "cacheReadInputTokens": 100, "cacheWriteInputTokens": 0}, "metrics": {"latencyMs": 800}}),
        ),
    ]
    .concat()
}

/// Text, then a throttling exception mid-stream.
fn throttled_stream() -> Vec<u8> {
    [
        event("messageStart", json!({"role": "assistant"})),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": "Hel"}}),
        ),
        exception_frame(
            "throttlingException",
            "Too many requests, please wait before trying again.",
        ),
    ]
    .concat()
}

fn decode_chunks<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Vec<Body> {
    let mut decoder = ConverseStreamDecoder::new(Arc::from("bedrock"));
    let mut out = Vec::new();
    for chunk in chunks {
        decoder.on_chunk(chunk, &mut out);
    }
    decoder.on_end(&mut out);
    assert!(decoder.finished);
    out
}

fn decode(body: &[u8]) -> Vec<Body> {
    decode_chunks([body])
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

fn error_of(body: &Body) -> (ErrorCode, String) {
    let Body::Error(e) = body else {
        panic!("not an error: {body:?}")
    };
    (e.code(), e.message.clone())
}

/// Runs the shared driver over `chunks`, as the provider does.
async fn drive_chunks(chunks: Vec<Vec<u8>>) -> Vec<Body> {
    let body = futures::stream::iter(chunks.into_iter().map(|c| Ok(Bytes::from(c))));
    drive(
        body,
        ConverseStreamDecoder::new(Arc::from("bedrock")),
        StreamMeta::default(),
        Arc::from("bedrock"),
        Duration::from_secs(60),
    )
    .collect()
    .await
}

fn phase_of(body: &Body) -> Phase {
    let Body::Error(e) = body else {
        panic!("not an error: {body:?}")
    };
    e.phase()
}

fn text_events() -> Vec<Body> {
    vec![
        token("Hello"),
        token(", world"),
        Body::Usage(Usage {
            tokens_in: 12,
            tokens_out: 5,
            ..Usage::default()
        }),
        done("stop"),
    ]
}

fn tool_events() -> Vec<Body> {
    vec![
        token("Checking."),
        call("tooluse_utc", "get_time", r#"{"tz":"UTC"}"#),
        call("tooluse_oslo", "get_weather", r#"{"city":"Oslo"}"#),
        Body::Usage(Usage {
            tokens_in: 140,
            tokens_out: 30,
            cached_tokens: 100,
            ..Usage::default()
        }),
        done("tool_calls"),
    ]
}

#[test]
fn text_stream_events() {
    assert_eq!(decode(&text_stream()), text_events());
}

#[test]
fn interleaved_tool_blocks() {
    assert_eq!(decode(&tool_stream()), tool_events());
}

#[test]
fn split_at_every_byte_offset() {
    for (wire, expected) in [
        (text_stream(), text_events()),
        (tool_stream(), tool_events()),
    ] {
        for cut in 0..=wire.len() {
            assert_eq!(
                decode_chunks([&wire[..cut], &wire[cut..]]),
                expected,
                "cut at {cut}"
            );
        }
        // And one byte at a time.
        assert_eq!(decode_chunks(wire.chunks(1)), expected);
    }
}

#[test]
fn exception_mid_stream() {
    let events = decode(&throttled_stream());
    assert_eq!(events.len(), 2);
    assert_eq!(events[0], token("Hel"));
    assert_eq!(
        error_of(&events[1]),
        (
            ErrorCode::RateLimit,
            "bedrock: throttlingException: Too many requests, please wait before trying again."
                .into()
        )
    );
}

#[tokio::test]
async fn the_driver_sets_error_phases() {
    let events = drive_chunks(vec![throttled_stream()]).await;
    assert_eq!(events[0], token("Hel"));
    assert_eq!(error_of(&events[1]).0, ErrorCode::RateLimit);
    assert_eq!(phase_of(&events[1]), Phase::AfterFirstToken);
    let events = drive_chunks(vec![exception_frame("throttlingException", "slow")]).await;
    assert_eq!(phase_of(&events[0]), Phase::BeforeFirstToken);
}

#[tokio::test]
async fn the_driver_sends_usage_once_before_done() {
    let wire = tool_stream();
    let chunks = wire.chunks(7).map(<[u8]>::to_vec).collect();
    assert_eq!(drive_chunks(chunks).await, tool_events());
}

#[test]
fn every_exception_class() {
    let cases = [
        ("throttlingException", "slow down", ErrorCode::RateLimit),
        (
            "validationException",
            "Malformed input request",
            ErrorCode::InvalidRequest,
        ),
        (
            "validationException",
            "Input is too long for requested model.",
            ErrorCode::ContextLengthExceeded,
        ),
        (
            "serviceUnavailableException",
            "try later",
            ErrorCode::ProviderUnavailable,
        ),
        (
            "modelStreamErrorException",
            "model failed",
            ErrorCode::ProviderError,
        ),
        (
            "internalServerException",
            "oops",
            ErrorCode::ProviderUnavailable,
        ),
        (
            "modelTimeoutException",
            "too slow",
            ErrorCode::ProviderTimeout,
        ),
        (
            "accessDeniedException",
            "no access",
            ErrorCode::PermissionDenied,
        ),
        (
            "resourceNotFoundException",
            "no such model",
            ErrorCode::ModelNotFound,
        ),
        ("someFutureException", "new", ErrorCode::ProviderError),
    ];
    for (kind, message, code) in cases {
        let events = decode(&exception_frame(kind, message));
        assert_eq!(events.len(), 1);
        assert_eq!(
            error_of(&events[0]),
            (code, format!("bedrock: {kind}: {message}")),
            "{kind}"
        );
    }
    // The `error` message type carries its code and text in headers.
    let error = encode(
        &[
            (":message-type", "error"),
            (":error-code", "InternalFailure"),
            (":error-message", "boom"),
        ],
        b"",
    );
    let events = decode(&error);
    // An unknown code goes through the shared classification.
    assert_eq!(
        error_of(&events[0]),
        (
            ErrorCode::ProviderUnavailable,
            "bedrock: InternalFailure: boom".into()
        )
    );
}

#[test]
fn cut_before_message_stop() {
    let wire = text_stream();
    // Cut right after the second delta frame: complete frames, no messageStop.
    let frames = [
        event("messageStart", json!({"role": "assistant"})),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": "Hello"}}),
        ),
    ]
    .concat();
    assert!(wire.starts_with(&frames));
    let events = decode(&frames);
    assert_eq!(events[0], token("Hello"));
    assert_eq!(error_of(&events[1]).0, ErrorCode::ProviderError);
    assert!(error_of(&events[1]).1.contains("before `messageStop`"));
    // Cut inside a frame.
    let events = decode(&wire[..frames.len() + 7]);
    assert!(
        error_of(&events[1]).1.contains("ended inside a frame"),
        "{events:?}"
    );
}

#[test]
fn message_stop_without_metadata_still_finishes() {
    let wire = [
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": "Hi"}}),
        ),
        event("messageStop", json!({"stopReason": "max_tokens"})),
    ]
    .concat();
    assert_eq!(decode(&wire), [token("Hi"), done("length")]);
}

#[test]
fn metadata_before_message_stop() {
    let wire = [
        event(
            "metadata",
            json!({"usage": {"inputTokens": 1, "outputTokens": 2}}),
        ),
        event("messageStop", json!({"stopReason": "guardrail_intervened"})),
    ]
    .concat();
    assert_eq!(
        decode(&wire),
        [
            Body::Usage(Usage {
                tokens_in: 1,
                tokens_out: 2,
                ..Usage::default()
            }),
            done("content_filter")
        ]
    );
}

/// Input counts whose sum does not fit a u64 saturate. The sum overflowed
/// (a panic in debug builds; found with the `provider_bedrock` fuzz
/// target).
#[test]
fn input_counts_too_large_to_add_saturate() {
    let counts = json!({"inputTokens": u64::MAX, "outputTokens": 2,
        "cacheReadInputTokens": 3, "cacheWriteInputTokens": 4});
    let saturated = Body::Usage(Usage {
        tokens_in: u64::MAX,
        tokens_out: 2,
        cached_tokens: 3,
        ..Usage::default()
    });
    let wire = [
        event("messageStop", json!({"stopReason": "end_turn"})),
        event("metadata", json!({ "usage": counts })),
    ]
    .concat();
    assert_eq!(decode(&wire), [saturated.clone(), done("stop")]);
    let body = json!({
        "output": {"message": {"role": "assistant", "content": []}},
        "stopReason": "end_turn",
        "usage": counts,
    });
    let mut out = Vec::new();
    converse_response("bedrock", body.to_string().as_bytes(), &mut out);
    assert_eq!(out, [saturated, done("stop")]);
}

#[test]
fn corrupt_and_malformed_frames() {
    // A flipped payload bit: the message CRC no longer matches.
    let mut wire = text_stream();
    let second = event("messageStart", json!({"role": "assistant"})).len();
    wire[second + 40] ^= 0x01;
    let events = decode(&wire);
    assert_eq!(events.len(), 1);
    let (code, message) = error_of(&events[0]);
    assert_eq!(code, ErrorCode::ProviderError);
    assert!(message.contains("checksum"), "{message}");

    // A well-framed event whose JSON is not the event's shape.
    let wire = [
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": "a"}}),
        ),
        encode(
            &[
                (":event-type", "contentBlockDelta"),
                (":message-type", "event"),
            ],
            b"{not json",
        ),
    ]
    .concat();
    let events = decode(&wire);
    assert_eq!(events[0], token("a"));
    let (code, message) = error_of(&events[1]);
    assert_eq!(code, ErrorCode::ProviderError);
    assert!(
        message.contains("malformed `contentBlockDelta`"),
        "{message}"
    );

    // Tool input for a block that never started.
    let wire = event(
        "contentBlockDelta",
        json!({"contentBlockIndex": 3, "delta": {"toolUse": {"input": "{}"}}}),
    );
    assert_eq!(error_of(&decode(&wire)[0]).0, ErrorCode::ProviderError);
}

#[test]
fn nothing_after_the_terminal_event() {
    let mut wire = text_stream();
    wire.extend(event(
        "contentBlockDelta",
        json!({"contentBlockIndex": 0, "delta": {"text": "late"}}),
    ));
    assert_eq!(decode(&wire), text_events());
    let mut wire = throttled_stream();
    wire.extend(text_stream());
    assert_eq!(decode(&wire).len(), 2);
}

#[test]
fn unary_converse_answer() {
    let body = json!({
        "output": {"message": {"role": "assistant", "content": [
            {"text": "Checking."},
            {"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather", "input": {"city": "Oslo"}}}
        ]}},
        "stopReason": "tool_use",
        "usage": {"inputTokens": 20, "outputTokens": 9, "totalTokens": 29},
        "metrics": {"latencyMs": 400}
    });
    let unary = |body: &[u8]| {
        let mut out = Vec::new();
        converse_response("bedrock", body, &mut out);
        out
    };
    assert_eq!(
        unary(body.to_string().as_bytes()),
        [
            token("Checking."),
            call("tooluse_1", "get_weather", r#"{"city":"Oslo"}"#),
            Body::Usage(Usage {
                tokens_in: 20,
                tokens_out: 9,
                ..Usage::default()
            }),
            done("tool_calls"),
        ]
    );
    assert_eq!(error_of(&unary(b"{}")[0]).0, ErrorCode::ProviderError);
}

/// The saved fixtures are exactly what these builders encode. Run with
/// `GTL_BLESS=1` to rewrite them after changing a builder.
#[test]
fn binary_fixtures_are_up_to_date() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bedrock");
    let fixtures = [
        ("converse_stream_text.bin", text_stream()),
        ("converse_stream_tool_use.bin", tool_stream()),
        ("converse_stream_throttling.bin", throttled_stream()),
    ];
    for (name, bytes) in fixtures {
        let path = dir.join(name);
        if std::env::var_os("GTL_BLESS").is_some() {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        }
        let saved = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(saved, bytes, "{name} is stale: rerun with GTL_BLESS=1");
    }
}
