//! What decoding a frame would cost in memory, estimated from its bytes
//! before it is decoded.
//!
//! A frame's decoded form can be far larger than its bytes: an empty
//! message is 2 bytes of protobuf or 3 of JSON (`{},`), but a `Message`
//! struct of its own once decoded. Millions of them in one frame under the
//! size limit would cost hundreds of megabytes. Frames whose estimate
//! exceeds [`MAX_DECODED_COST`] are refused before any of that is
//! allocated.

/// The most a frame may cost once decoded, estimated: 64 MiB, 8 times the
/// default frame limit, room for any real conversation.
pub const MAX_DECODED_COST: usize = 64 << 20;

/// Frames smaller than this are decoded without an estimate: even made of
/// the smallest elements they cannot reach [`MAX_DECODED_COST`].
pub(super) const CHECK_ABOVE: usize = MAX_DECODED_COST / ELEMENT_COST;

/// An upper bound on what one decoded element (a struct in a list, a
/// string) costs: the largest element struct plus allocator overhead.
const ELEMENT_COST: usize = 256;

/// Nested messages deeper than this are counted as one element (the
/// schema is 5 deep).
const MAX_DEPTH: u32 = 8;

/// The estimated decoded cost of a JSON frame: objects, arrays and strings
/// (outside strings) each count as an element.
pub(super) fn json(bytes: &[u8]) -> usize {
    let mut elements = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &byte in bytes {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => {
                in_string = true;
                elements += 1;
            }
            b'{' | b'[' => elements += 1,
            _ => {}
        }
    }
    elements.saturating_mul(ELEMENT_COST)
}

/// The estimated decoded cost of a protobuf frame: every length-delimited
/// field at any depth (a string, or a nested message) counts as an element.
/// Payloads that parse as messages are counted into; those that do not are
/// strings or bytes.
pub(super) fn protobuf(bytes: &[u8]) -> usize {
    message_elements(bytes, 0)
        .unwrap_or(1)
        .saturating_mul(ELEMENT_COST)
}

/// The elements in `bytes` read as a message, or `None` when they are not
/// one.
fn message_elements(mut bytes: &[u8], depth: u32) -> Option<usize> {
    use prost::encoding::decode_varint;
    let mut elements = 0usize;
    while !bytes.is_empty() {
        let key = decode_varint(&mut bytes).ok()?;
        if key >> 3 == 0 {
            return None;
        }
        match key & 7 {
            0 => {
                decode_varint(&mut bytes).ok()?;
            }
            1 => bytes = bytes.get(8..)?,
            5 => bytes = bytes.get(4..)?,
            2 => {
                let len = usize::try_from(decode_varint(&mut bytes).ok()?).ok()?;
                let payload = bytes.get(..len)?;
                bytes = &bytes[len..];
                let nested = if depth < MAX_DEPTH && !payload.is_empty() {
                    message_elements(payload, depth + 1).unwrap_or(0)
                } else {
                    0
                };
                elements = elements.saturating_add(1 + nested);
            }
            _ => return None,
        }
    }
    Some(elements)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Body, CompletionRequest, Frame, Message};
    use prost::Message as _;

    fn request(messages: usize, text: &str) -> Frame {
        let message = Message {
            role: 2,
            content: Some(crate::types::Content::Text(text.into())),
            ..Message::default()
        };
        Frame::control(
            1,
            Body::CompletionRequest(Box::new(CompletionRequest {
                model: "m".into(),
                messages: vec![message; messages],
                ..CompletionRequest::default()
            })),
        )
    }

    #[test]
    fn json_counts_structures_and_strings_but_not_their_contents() {
        assert_eq!(json(br#"{"a":"x{[\"]"}"#), 3 * ELEMENT_COST);
        assert_eq!(json(b"[{},{},{}]"), 4 * ELEMENT_COST);
    }

    #[test]
    fn protobuf_counts_nested_elements() {
        let frame = request(3, "hello").encode_to_vec();
        // The body, three messages and their texts, and the model.
        assert_eq!(protobuf(&frame), 8 * ELEMENT_COST);
    }

    #[test]
    fn a_flood_of_empty_messages_is_over_the_bound_but_real_requests_are_not() {
        let flood = request(400_000, "").encode_to_vec();
        assert!(flood.len() < 8 << 20);
        assert!(protobuf(&flood) > MAX_DECODED_COST);
        let json_flood = request(400_000, "").to_json().unwrap();
        assert!(json(json_flood.as_bytes()) > MAX_DECODED_COST);
        // A long conversation, and a large text, are fine.
        let long = request(10_000, &"word ".repeat(100)).encode_to_vec();
        assert!(protobuf(&long) < MAX_DECODED_COST);
        let big = request(1, &"x".repeat(7 << 20)).encode_to_vec();
        assert!(protobuf(&big) < MAX_DECODED_COST);
    }

    #[test]
    fn garbage_is_one_element() {
        assert_eq!(protobuf(&[0xff; 20]), ELEMENT_COST);
    }
}
