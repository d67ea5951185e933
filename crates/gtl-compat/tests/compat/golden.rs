//! GTL event sequences → exact dialect bytes, and those bytes read back.

use std::borrow::Cow;

use gtl_compat::{anthropic, openai};
use gtl_core::Completion;
use gtl_proto::Body;

use crate::clients::{Answer, read_anthropic, read_openai};
use crate::support::{
    CREATED, Golden, MODEL, Output, SESSION, anthropic_stream, case, cases, openai_stream,
    render_reply,
};

/// Cases whose OpenAI stream is also kept without the usage chunk.
const WITHOUT_USAGE: [&str; 2] = ["text", "parallel_tool_calls"];

#[test]
fn every_sequence_gives_its_golden_bytes() {
    let mut golden = Golden::default();
    for (name, events) in cases() {
        let completion: Completion = events.iter().cloned().collect();
        match openai_stream(&events, true) {
            Output::Stream(bytes, _) => golden.check(&format!("openai/{name}.sse"), &bytes),
            Output::Rejected(reply) => {
                golden.check(
                    &format!("openai/{name}.stream.reply"),
                    &render_reply(&reply),
                );
            }
        }
        if WITHOUT_USAGE.contains(&name.as_str()) {
            let Output::Stream(bytes, _) = openai_stream(&events, false) else {
                panic!("{name} was rejected");
            };
            golden.check(&format!("openai/{name}.no_usage.sse"), &bytes);
        }
        match openai::completion_response(&completion, SESSION, MODEL, CREATED) {
            Ok(body) => golden.check(&format!("openai/{name}.json"), &body),
            Err(reply) => golden.check(&format!("openai/{name}.reply"), &render_reply(&reply)),
        }
        match anthropic_stream(&events) {
            Output::Stream(bytes, _) => golden.check(&format!("anthropic/{name}.sse"), &bytes),
            Output::Rejected(reply) => {
                golden.check(
                    &format!("anthropic/{name}.stream.reply"),
                    &render_reply(&reply),
                );
            }
        }
        match anthropic::completion_response(&completion, SESSION, MODEL) {
            Ok(body) => golden.check(&format!("anthropic/{name}.json"), &body),
            Err(reply) => golden.check(&format!("anthropic/{name}.reply"), &render_reply(&reply)),
        }
    }
    golden.finish(&["openai", "anthropic"]);
}

/// What a client must read from the stream of `events`.
fn expected(events: &[Body], anthropic: bool, include_usage: bool) -> Answer {
    let completion: Completion = events.iter().cloned().collect();
    let usage = completion.usage.unwrap_or_default();
    let done = events.iter().any(|b| matches!(b, Body::Done(_)));
    let error = completion.error.as_ref().map(|error| {
        let kind = if anthropic {
            "overloaded_error"
        } else {
            "server_error"
        };
        (kind.to_owned(), error.message.clone())
    });
    let finish = done.then(|| {
        let reason = completion.finish_reason.as_str();
        let mapped = match (anthropic, reason) {
            (false, "length" | "tool_calls" | "content_filter") => reason,
            (false, _) => "stop",
            (true, "length") => "max_tokens",
            (true, "tool_calls") => "tool_use",
            (true, "content_filter") => "refusal",
            (true, _) => "end_turn",
        };
        mapped.to_owned()
    });
    Answer {
        text: completion.text.clone(),
        tool_calls: completion
            .tool_calls
            .iter()
            .map(|call| {
                let function = call.function.clone().unwrap_or_default();
                let id = if anthropic {
                    Cow::Owned(call.id.replace([':', '.', '/'], "_"))
                } else {
                    Cow::Borrowed(call.id.as_str())
                };
                (id.into_owned(), function.name, function.arguments)
            })
            .collect(),
        usage: (done && (anthropic || include_usage)).then_some((
            usage.tokens_in,
            usage.tokens_out,
            usage.cached_tokens,
        )),
        finish,
        error,
        ended: done,
    }
}

#[test]
fn clients_read_back_what_went_in() {
    for (name, events) in cases() {
        if let Output::Stream(bytes, _) = openai_stream(&events, true) {
            assert_eq!(
                read_openai([&bytes[..]]),
                expected(&events, false, true),
                "{name}"
            );
        }
        if let Output::Stream(bytes, _) = openai_stream(&events, false) {
            assert_eq!(
                read_openai([&bytes[..]]),
                expected(&events, false, false),
                "{name}"
            );
        }
        if let Output::Stream(bytes, _) = anthropic_stream(&events) {
            let mut answer = read_anthropic([&bytes[..]]);
            if !answer.ended {
                // The stream broke off: the usage is what message_start knew.
                answer.usage = None;
            }
            assert_eq!(answer, expected(&events, true, false), "{name}");
        }
    }
}

/// The stream read in two pieces cut at `cut`, for every `cut`, and one
/// byte at a time: the same answer as read whole.
fn assert_split_invariant(name: &str, bytes: &[u8], read: fn(Vec<&[u8]>) -> Answer) {
    let whole = read(vec![bytes]);
    for cut in 0..=bytes.len() {
        let (head, tail) = bytes.split_at(cut);
        assert_eq!(read(vec![head, tail]), whole, "{name} cut at byte {cut}");
    }
    assert_eq!(
        read(bytes.chunks(1).collect()),
        whole,
        "{name} byte by byte"
    );
}

#[test]
fn tool_call_arguments_and_usage_survive_any_split() {
    let openai: fn(Vec<&[u8]>) -> Answer = |chunks| read_openai(chunks);
    let anthropic: fn(Vec<&[u8]>) -> Answer = |chunks| read_anthropic(chunks);
    for name in [
        "tool_call",
        "parallel_tool_calls",
        "usage_before_text",
        "usage_after_text",
        "text",
    ] {
        let events = case(name);
        let Output::Stream(bytes, true) = openai_stream(&events, true) else {
            panic!("{name}: the OpenAI stream did not end");
        };
        assert_split_invariant(name, &bytes, openai);
        let Output::Stream(bytes, true) = anthropic_stream(&events) else {
            panic!("{name}: the Anthropic stream did not end");
        };
        assert_split_invariant(name, &bytes, anthropic);
    }
}

#[test]
fn usage_before_or_after_the_last_text_ends_the_same() {
    let before = case("usage_before_text");
    let after = case("usage_after_text");
    let tail = |output: Output, from: &str| match output {
        Output::Stream(bytes, true) => {
            let text = String::from_utf8(bytes).unwrap();
            text[text.rfind(from).expect(from)..].to_owned()
        }
        other => panic!("{other:?}"),
    };
    // OpenAI: the finish chunk, the usage chunk and [DONE] are identical.
    assert_eq!(
        tail(
            openai_stream(&before, true),
            "data: {\"id\":\"chatcmpl-s_golden\",\"object\":\"chat.completion.chunk\",\"created\":1727346178,\"model\":\"openai/gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{},"
        ),
        tail(
            openai_stream(&after, true),
            "data: {\"id\":\"chatcmpl-s_golden\",\"object\":\"chat.completion.chunk\",\"created\":1727346178,\"model\":\"openai/gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{},"
        ),
    );
    // Anthropic: message_delta carries the same totals either way.
    assert_eq!(
        tail(anthropic_stream(&before), "event: message_delta"),
        tail(anthropic_stream(&after), "event: message_delta"),
    );
    let read = |output: Output| match output {
        Output::Stream(bytes, _) => read_anthropic([&bytes[..]]),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        read(anthropic_stream(&before)),
        read(anthropic_stream(&after))
    );
}

#[test]
fn parallel_calls_keep_their_indexes_and_order() {
    let events = case("parallel_tool_calls");
    let Output::Stream(bytes, true) = openai_stream(&events, true) else {
        panic!("the stream did not end");
    };
    let text = String::from_utf8(bytes).unwrap();
    for (index, id) in ["call_a", "call_b", "toolu:with.odd/chars"]
        .iter()
        .enumerate()
    {
        let head =
            format!("\"tool_calls\":[{{\"index\":{index},\"id\":\"{id}\",\"type\":\"function\"");
        assert!(text.contains(&head), "{head}");
    }
    let answer = read_anthropic([&match anthropic_stream(&events) {
        Output::Stream(bytes, _) => bytes,
        other => panic!("{other:?}"),
    }[..]]);
    let ids: Vec<&str> = answer.tool_calls.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(ids, ["call_a", "call_b", "toolu_with_odd_chars"]);
}

#[test]
fn errors_before_any_output_are_http_errors_and_after_it_in_stream_events() {
    let Output::Rejected(reply) = openai_stream(&case("error_before_output"), true) else {
        panic!("not rejected");
    };
    assert_eq!(reply.status, 429);
    let Output::Rejected(reply) = anthropic_stream(&case("error_after_status")) else {
        panic!("a status alone writes nothing, so the error is still an HTTP one");
    };
    assert_eq!(reply.status, 400);
    let Output::Stream(bytes, true) = anthropic_stream(&case("error_mid_stream")) else {
        panic!("not an in-stream error");
    };
    assert!(bytes.ends_with(b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"anthropic: Overloaded\"}}\n\n"));
    let Output::Stream(bytes, true) = openai_stream(&case("error_mid_stream"), true) else {
        panic!("not an in-stream error");
    };
    assert!(!bytes.ends_with(b"data: [DONE]\n\n"));
}

#[test]
fn an_unfinished_call_is_a_provider_error_and_a_stream_left_open() {
    let events = case("unfinished");
    assert!(matches!(
        openai_stream(&events, true),
        Output::Stream(_, false)
    ));
    let completion: Completion = events.iter().cloned().collect();
    let reply = anthropic::completion_response(&completion, SESSION, MODEL).unwrap_err();
    assert_eq!(reply.status, 500);
}

#[test]
fn encoders_ignore_events_after_the_end_and_keep_alives_are_harmless() {
    let mut encoder = openai::StreamEncoder::new(SESSION, MODEL, CREATED, false);
    let mut out = Vec::new();
    encoder.keep_alive(&mut out);
    assert!(encoder.has_started());
    for body in case("text") {
        let _ = encoder.push(&body, &mut out);
    }
    assert!(encoder.is_finished());
    let len = out.len();
    assert_eq!(
        encoder.push(&case("text")[1], &mut out),
        gtl_compat::Flow::End
    );
    assert_eq!(out.len(), len);
    let answer = read_openai([&out[..]]);
    assert_eq!(answer, expected(&case("text"), false, false));

    let mut encoder = anthropic::StreamEncoder::new(SESSION, MODEL);
    let mut out = Vec::new();
    encoder.keep_alive(&mut out);
    for body in case("tool_call") {
        let _ = encoder.push(&body, &mut out);
    }
    assert!(out.starts_with(b"event: ping\n"));
    assert_eq!(
        read_anthropic([&out[..]]),
        expected(&case("tool_call"), true, false)
    );
}
