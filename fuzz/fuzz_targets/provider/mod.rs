//! Shared driver of the provider targets: a response body, cut in chunks
//! (see `chunks` for the input layout), through the adapters' decoders via
//! `gtl_providers::fuzzing`.
//!
//! For each decoder, on the chunked body and on the whole body at once:
//!
//! - [`Decoder::decode`]: the decoder's own events (no IO, no runtime);
//! - [`Decoder::deliver`]: what a client receives through the real driver.
//!
//! The target fails on a panic anywhere, and on:
//!
//! - decoder events that are not session events, a `status` for another
//!   provider or state, a tool call without id, function or arguments, a
//!   usage with a negative or non-finite cost, an error without a code or
//!   message;
//! - delivered events that do not end with exactly one terminal event
//!   (`done` or `error`), or have anything after it; that do not start with
//!   the adapter's `status` when it gives the driver one; with an empty
//!   token, more than one `usage` or a `usage` anywhere but just before the
//!   terminal event; with an error whose phase does not match what was sent
//!   before it;
//! - delivered events that differ from the driver's contract applied to the
//!   decoder's events (a model of `http::stream`'s contract, below);
//! - a difference, in either list, between the chunked and the whole body.

use gtl_core::ProviderError;
use gtl_proto::{Body, ErrorCode, Phase, Usage};
use gtl_providers::fuzzing::{Decoder, is_terminal};
use gtl_providers::merge_usage;

use crate::chunks::Split;

/// Runs `data` through each of `decoders`.
pub fn run(decoders: &[Decoder], data: &[u8]) {
    let Some(split) = Split::parse(data) else {
        return;
    };
    let chunks = split.chunks();
    let whole: Vec<&[u8]> = if split.body.is_empty() {
        Vec::new()
    } else {
        vec![split.body]
    };
    for &decoder in decoders {
        let decoded = decoder.decode(&chunks);
        check_decoded(decoder, &decoded);
        assert_eq!(
            decoded,
            decoder.decode(&whole),
            "{decoder:?}: the chunks decode differently from the whole body"
        );
        let delivered = decoder.deliver(&chunks);
        check_delivered(decoder, &delivered);
        assert_eq!(
            delivered,
            contract(decoder, &decoded),
            "{decoder:?}: the driver broke its contract\ndecoded: {decoded:#?}"
        );
        assert_eq!(
            delivered,
            decoder.deliver(&whole),
            "{decoder:?}: the chunks are delivered differently from the whole body"
        );
    }
}

/// The decoder's own events: session events, well formed; a terminal one
/// only last (`decode` stops there).
fn check_decoded(decoder: Decoder, events: &[Body]) {
    for (position, event) in events.iter().enumerate() {
        match event {
            Body::Status(status) => {
                assert_eq!(status.state, "streaming", "{decoder:?}: {status:?}");
                assert_eq!(
                    status.provider,
                    decoder.provider(),
                    "{decoder:?}: {status:?}"
                );
            }
            Body::Token(_) => {}
            Body::ToolCall(call) => {
                assert!(!call.id.is_empty(), "{decoder:?}: tool call without id");
                let function = call
                    .function
                    .as_ref()
                    .unwrap_or_else(|| panic!("{decoder:?}: tool call without function"));
                assert!(
                    !function.arguments.is_empty(),
                    "{decoder:?}: tool call with empty arguments (`{{}}` expected)"
                );
            }
            Body::Usage(usage) => check_usage(decoder, usage),
            Body::Done(_) => {}
            Body::Error(error) => {
                assert_ne!(
                    error.code(),
                    ErrorCode::Unspecified,
                    "{decoder:?}: {error:?}"
                );
                assert!(!error.message.is_empty(), "{decoder:?}: {error:?}");
            }
            other => panic!("{decoder:?}: not a session event: {other:?}"),
        }
        assert!(
            !is_terminal(event) || position == events.len() - 1,
            "{decoder:?}: decode went on after a terminal event"
        );
    }
}

fn check_usage(decoder: Decoder, usage: &Usage) {
    assert!(
        usage.cost.is_finite() && usage.cost >= 0.0,
        "{decoder:?}: usage cost {}",
        usage.cost
    );
}

/// What a client receives: the stream contract.
fn check_delivered(decoder: Decoder, events: &[Body]) {
    let Some((last, before)) = events.split_last() else {
        panic!("{decoder:?}: nothing delivered");
    };
    assert!(
        is_terminal(last),
        "{decoder:?}: delivered events end with {last:?}"
    );
    assert!(
        !before.iter().any(is_terminal),
        "{decoder:?}: more than one terminal event delivered: {events:#?}"
    );
    if let Some(status) = decoder.status() {
        assert_eq!(
            events.first(),
            Some(&Body::Status(status)),
            "{decoder:?}: the driver's status does not come first"
        );
    }
    let usages: Vec<usize> = (0..events.len())
        .filter(|&i| matches!(events[i], Body::Usage(_)))
        .collect();
    assert!(
        usages.is_empty() || usages == [events.len() - 2],
        "{decoder:?}: usage at {usages:?} of {} events",
        events.len()
    );
    let mut output_sent = false;
    for event in events {
        match event {
            Body::Token(token) => {
                assert!(!token.text.is_empty(), "{decoder:?}: empty token delivered");
                output_sent = true;
            }
            Body::ToolCall(_) | Body::Patch(_) => output_sent = true,
            Body::Usage(usage) => check_usage(decoder, usage),
            Body::Error(error) => {
                let phase = if output_sent {
                    Phase::AfterFirstToken
                } else {
                    Phase::BeforeFirstToken
                };
                assert_eq!(error.phase(), phase, "{decoder:?}: {error:?}");
            }
            _ => {}
        }
    }
}

/// The events the driver's contract (`http::stream`'s module docs) makes of
/// the decoder's: the status first; usage merged, priced and sent once just
/// before the terminal event; empty tokens dropped; the first terminal event
/// last, or a `PROVIDER_ERROR` for a stream cut without one; an error's
/// phase from whether output was sent.
fn contract(decoder: Decoder, decoded: &[Body]) -> Vec<Body> {
    let mut out: Vec<Body> = decoder.status().map(Body::Status).into_iter().collect();
    let mut usage: Option<Usage> = None;
    let mut output_sent = false;
    let mut terminal = None;
    for event in decoded {
        match event {
            Body::Usage(reported) => {
                merge_usage(usage.get_or_insert_with(Usage::default), reported)
            }
            Body::Token(token) if token.text.is_empty() => {}
            Body::Token(_) | Body::ToolCall(_) | Body::Patch(_) => {
                output_sent = true;
                out.push(event.clone());
            }
            Body::Done(_) | Body::Error(_) => {
                terminal = Some(event.clone());
                break;
            }
            other => out.push(other.clone()),
        }
    }
    if let Some(mut usage) = usage {
        if usage.cost == 0.0
            && let Some(price) = decoder.driver_price()
        {
            usage.cost = price.cost(&usage);
        }
        out.push(Body::Usage(usage));
    }
    let terminal = terminal.unwrap_or_else(|| {
        ProviderError::new(
            ErrorCode::ProviderError,
            format!(
                "{}: stream ended before its final event",
                decoder.provider()
            ),
        )
        .to_event()
    });
    out.push(match terminal {
        Body::Error(mut error) => {
            let phase = if output_sent {
                Phase::AfterFirstToken
            } else {
                Phase::BeforeFirstToken
            };
            error.phase = phase as i32;
            Body::Error(error)
        }
        done => done,
    });
    out
}
