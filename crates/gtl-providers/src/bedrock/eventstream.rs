//! The `application/vnd.amazon.eventstream` framing, over
//! `aws-smithy-eventstream`.
//!
//! A frame is a 12-byte prelude (total length, headers length, CRC32 of the
//! first 8 bytes), the headers, the payload and a CRC32 of everything
//! before it. [`FrameReader`] buffers bytes as they arrive and hands each
//! complete frame to the crate's `read_message_from`, which parses the
//! headers and verifies both checksums. The reader checks the prelude CRC
//! as soon as the prelude is in, so a corrupt length fails at once instead
//! of waiting for bytes that will never come, and the message CRC before
//! parsing, so a corrupt frame is reported as such rather than as whatever
//! header or payload error the damage happens to cause.

use aws_smithy_eventstream::frame::read_message_from;
use aws_smithy_types::event_stream::{HeaderValue, Message};
use bytes::{Buf as _, BytesMut};

/// Prelude: total length, headers length, prelude CRC (4 bytes each).
const PRELUDE_LEN: usize = 12;
/// The prelude and the trailing message CRC.
const MIN_FRAME_LEN: usize = PRELUDE_LEN + 4;
/// The largest frame accepted. AWS caps event-stream messages at 16 MiB.
pub(crate) const MAX_FRAME_LEN: usize = 16 * 1024 * 1024 + MIN_FRAME_LEN;

/// Why the byte stream is not valid event-stream framing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum FrameError {
    /// The prelude's checksum does not match its bytes.
    #[error(
        "event-stream prelude checksum mismatch (expected {expected:#010x}, got {actual:#010x})"
    )]
    PreludeChecksum { expected: u32, actual: u32 },
    /// The prelude announces an impossible frame length.
    #[error("event-stream frame length {0} is out of bounds")]
    Length(usize),
    /// The message's checksum does not match its bytes.
    #[error(
        "event-stream message checksum mismatch (expected {expected:#010x}, got {actual:#010x})"
    )]
    MessageChecksum { expected: u32, actual: u32 },
    /// The frame failed to decode (its headers).
    #[error("corrupt event-stream frame: {0}")]
    Frame(String),
    /// The body ended inside a frame.
    #[error("the event stream ended inside a frame ({0} bytes left over)")]
    Truncated(usize),
}

/// Splits a byte stream into event-stream messages.
#[derive(Debug, Default)]
pub(crate) struct FrameReader {
    buffer: BytesMut,
}

impl FrameReader {
    /// An empty reader.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Appends bytes as they arrive from the network.
    pub(crate) fn push(&mut self, chunk: &[u8]) {
        self.buffer.extend_from_slice(chunk);
    }

    /// The next complete message, `Ok(None)` if more bytes are needed.
    ///
    /// After an error the stream cannot be resynchronised: stop reading.
    pub(crate) fn next_message(&mut self) -> Result<Option<Message>, FrameError> {
        if self.buffer.len() < PRELUDE_LEN {
            return Ok(None);
        }
        let prelude = &self.buffer[..PRELUDE_LEN];
        let actual = u32::from_be_bytes([prelude[8], prelude[9], prelude[10], prelude[11]]);
        let expected = crc32fast::hash(&prelude[..8]);
        if expected != actual {
            return Err(FrameError::PreludeChecksum { expected, actual });
        }
        let total = u32::from_be_bytes([prelude[0], prelude[1], prelude[2], prelude[3]]) as usize;
        if !(MIN_FRAME_LEN..=MAX_FRAME_LEN).contains(&total) {
            return Err(FrameError::Length(total));
        }
        if self.buffer.len() < total {
            return Ok(None);
        }
        let frame = self.buffer.split_to(total).freeze();
        let (checked, crc) = frame.split_at(total - 4);
        let actual = u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]);
        let expected = crc32fast::hash(checked);
        if expected != actual {
            return Err(FrameError::MessageChecksum { expected, actual });
        }
        read_message_from(frame)
            .map(Some)
            .map_err(|e| FrameError::Frame(e.to_string()))
    }

    /// The body ended: leftover bytes mean a frame was cut.
    pub(crate) fn finish(&mut self) -> Result<(), FrameError> {
        match self.buffer.remaining() {
            0 => Ok(()),
            left => Err(FrameError::Truncated(left)),
        }
    }
}

/// A string header's value, if the message has it.
pub(crate) fn header<'a>(message: &'a Message, name: &str) -> Option<&'a str> {
    message
        .headers()
        .iter()
        .find(|h| h.name().as_str() == name)
        .and_then(|h| match h.value() {
            HeaderValue::String(value) => Some(value.as_str()),
            _ => None,
        })
}

/// Writes one frame: the test helpers and fixtures use the crate's encoder.
#[cfg(test)]
pub(crate) fn encode(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    use aws_smithy_types::event_stream::Header;

    let message = Message::new_from_parts(
        headers
            .iter()
            .map(|(name, value)| {
                Header::new(
                    name.to_string(),
                    HeaderValue::String(value.to_string().into()),
                )
            })
            .collect(),
        payload.to_vec(),
    );
    let mut out = Vec::new();
    aws_smithy_eventstream::frame::write_message_to(&message, &mut out).expect("encodable frame");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> Vec<u8> {
        encode(
            &[
                (":message-type", "event"),
                (":event-type", "messageStart"),
                (":content-type", "application/json"),
            ],
            br#"{"role":"assistant"}"#,
        )
    }

    #[test]
    fn frame_layout_matches_the_spec() {
        // Independent of the crate: prelude lengths and both CRC32s.
        let bytes = frame();
        let total = u32::from_be_bytes(bytes[0..4].try_into().unwrap()) as usize;
        let headers = u32::from_be_bytes(bytes[4..8].try_into().unwrap()) as usize;
        assert_eq!(total, bytes.len());
        assert_eq!(
            u32::from_be_bytes(bytes[8..12].try_into().unwrap()),
            crc32fast::hash(&bytes[..8])
        );
        assert_eq!(
            u32::from_be_bytes(bytes[total - 4..].try_into().unwrap()),
            crc32fast::hash(&bytes[..total - 4])
        );
        assert_eq!(&bytes[12 + headers..total - 4], br#"{"role":"assistant"}"#);
        // The first header: name length, name, type 7 (string), u16 length, value.
        assert_eq!(bytes[12] as usize, ":message-type".len());
        assert_eq!(&bytes[13..26], b":message-type");
        assert_eq!(bytes[26], 7);
        assert_eq!(&bytes[27..29], &5u16.to_be_bytes());
        assert_eq!(&bytes[29..34], b"event");
    }

    #[test]
    fn reads_frames_split_at_every_offset() {
        let mut wire = frame();
        wire.extend(frame());
        for cut in 0..=wire.len() {
            let mut reader = FrameReader::new();
            let mut messages = Vec::new();
            for part in [&wire[..cut], &wire[cut..]] {
                reader.push(part);
                while let Some(message) = reader.next_message().unwrap() {
                    messages.push(message);
                }
            }
            reader.finish().unwrap();
            assert_eq!(messages.len(), 2, "cut at {cut}");
            assert_eq!(header(&messages[1], ":event-type"), Some("messageStart"));
            assert_eq!(&messages[0].payload()[..], br#"{"role":"assistant"}"#);
        }
    }

    #[test]
    fn corrupt_frames_are_errors() {
        let good = frame();

        let mut payload = good.clone();
        let at = payload.len() - 6;
        payload[at] ^= 0x20;
        let mut reader = FrameReader::new();
        reader.push(&payload);
        assert!(matches!(
            reader.next_message(),
            Err(FrameError::MessageChecksum { .. })
        ));

        // Damage in the headers is a checksum error too, not a header error.
        let mut header = good.clone();
        header[26] = 0x52;
        let mut reader = FrameReader::new();
        reader.push(&header);
        assert!(matches!(
            reader.next_message(),
            Err(FrameError::MessageChecksum { .. })
        ));

        // A frame with valid checksums but a header of an unknown type.
        let mut bad_type = header[..header.len() - 4].to_vec();
        let crc = crc32fast::hash(&bad_type);
        bad_type.extend_from_slice(&crc.to_be_bytes());
        let mut reader = FrameReader::new();
        reader.push(&bad_type);
        assert!(matches!(reader.next_message(), Err(FrameError::Frame(_))));

        let mut prelude = good.clone();
        prelude[2] ^= 0x01;
        let mut reader = FrameReader::new();
        reader.push(&prelude[..PRELUDE_LEN]);
        assert!(matches!(
            reader.next_message(),
            Err(FrameError::PreludeChecksum { .. })
        ));

        let mut reader = FrameReader::new();
        reader.push(&good[..good.len() - 1]);
        assert_eq!(reader.next_message(), Ok(None));
        assert_eq!(reader.finish(), Err(FrameError::Truncated(good.len() - 1)));
    }

    #[test]
    fn absurd_lengths_are_refused() {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&u32::MAX.to_be_bytes());
        bytes.extend_from_slice(&0u32.to_be_bytes());
        bytes.extend_from_slice(&crc32fast::hash(&bytes).to_be_bytes());
        let mut reader = FrameReader::new();
        reader.push(&bytes);
        assert_eq!(
            reader.next_message(),
            Err(FrameError::Length(u32::MAX as usize))
        );
    }
}
