//! `gtl_proto::sse::Parser` on arbitrary bytes fed in arbitrary chunks.
//!
//! Input: byte 0 sets the line limit (`4 + 4 * b`, so 4 to 1024 bytes: the
//! limit is hit constantly), then the `chunks` layout. The target fails on
//! a panic, and unless these all agree:
//!
//! - the parser fed the chunks (stopping at the first error, as the
//!   provider framer does, then `finish`);
//! - the parser fed the whole body at once, and then again after `finish`
//!   (which must reset it, byte-order mark included);
//! - a line-at-a-time reference parser written from the HTML standard's
//!   event-stream rules and the parser's documented choices (each event
//!   carries its own `id`, events without `data` are dropped), including
//!   the bound: an error exactly when a line (a trailing unterminated one
//!   included) is longer than the limit, with the events completed before
//!   it, and the error names the limit.
//!
//! "Agree" means the same events, the same error (or none), and, without
//! an error, the same answer from `finish` on whether an incomplete event
//! was discarded.

#![no_main]

mod chunks;

use chunks::Split;
use gtl_proto::sse::{Event, LineTooLong, Parser};
use libfuzzer_sys::fuzz_target;

const BOM: &[u8] = b"\xEF\xBB\xBF";

#[derive(Debug, PartialEq)]
struct Parsed {
    events: Vec<Event>,
    /// Whether a line was too long (parsing stopped there).
    too_long: bool,
    /// What `finish` said, without an error.
    incomplete: Option<bool>,
}

/// The parser, fed `chunks`.
fn parse(parser: &mut Parser, max: usize, chunks: &[&[u8]]) -> Parsed {
    let mut events = Vec::new();
    for chunk in chunks {
        if let Err(error) = parser.feed(chunk, &mut events) {
            assert_eq!(error, LineTooLong { max });
            // Reset for the caller (`finish` always does).
            parser.finish();
            return Parsed {
                events,
                too_long: true,
                incomplete: None,
            };
        }
    }
    Parsed {
        events,
        too_long: false,
        incomplete: Some(parser.finish()),
    }
}

/// The reference: whole lines of the whole body.
fn reference(max: usize, body: &[u8]) -> Parsed {
    let too_long = |events| Parsed {
        events,
        too_long: true,
        incomplete: None,
    };
    let mut rest = body.strip_prefix(BOM).unwrap_or(body);
    let mut events = Vec::new();
    let mut pending = Event::default();
    let mut has_data = false;
    loop {
        let Some(end) = rest.iter().position(|&b| b == b'\n' || b == b'\r') else {
            if rest.len() > max {
                return too_long(events);
            }
            return Parsed {
                events,
                too_long: false,
                incomplete: Some(has_data || !rest.is_empty()),
            };
        };
        let line = &rest[..end];
        if line.len() > max {
            return too_long(events);
        }
        rest = match (rest[end], rest.get(end + 1)) {
            (b'\r', Some(b'\n')) => &rest[end + 2..],
            _ => &rest[end + 1..],
        };
        if line.is_empty() {
            let event = std::mem::take(&mut pending);
            if std::mem::take(&mut has_data) {
                events.push(event);
            }
            continue;
        }
        if line[0] == b':' {
            continue;
        }
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        let value = String::from_utf8_lossy(value);
        match name {
            b"event" => pending.event = value.into_owned(),
            b"data" => {
                if has_data {
                    pending.data.push('\n');
                }
                pending.data.push_str(&value);
                has_data = true;
            }
            b"id" if !value.contains('\0') => pending.id = Some(value.into_owned()),
            // "If the field value consists of only ASCII digits": a
            // number too big for a u64 is not a valid delay either.
            b"retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                if let Ok(ms) = value.parse() {
                    pending.retry = Some(ms);
                }
            }
            _ => {}
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&limit, rest)) = data.split_first() else {
        return;
    };
    let Some(split) = Split::parse(rest) else {
        return;
    };
    let max = 4 + 4 * usize::from(limit);
    let mut parser = Parser::new(max);
    let chunked = parse(&mut parser, max, &split.chunks());
    let expected = reference(max, split.body);
    assert_eq!(
        chunked, expected,
        "chunked parsing differs from the reference"
    );
    // The same parser again, reset by `finish`: the whole body at once.
    let whole = parse(&mut parser, max, &[split.body]);
    assert_eq!(
        whole, expected,
        "whole-body parsing differs from the reference"
    );
});
