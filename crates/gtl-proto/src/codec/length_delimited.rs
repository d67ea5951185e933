//! Protobuf frames, each preceded by its length as a varint (the framing of
//! `prost::Message::encode_length_delimited`).

use bytes::{Buf, BytesMut};
use prost::Message as _;
use prost::encoding::{decode_varint, encode_varint, encoded_len_varint};

use super::{Codec, CodecError, Skip};
use crate::{Body, Frame, FrameRef, Token};

pub(super) fn encode(
    frame: FrameRef<'_>,
    max: usize,
    dst: &mut BytesMut,
) -> Result<(), CodecError> {
    let size = frame.protobuf_len();
    if size > max {
        return Err(CodecError::FrameTooLarge { size, max });
    }
    // Writing varints byte by byte through `BytesMut` costs a capacity check
    // and a call per byte; a slice of the exact size takes plain stores.
    let start = dst.len();
    dst.resize(start + encoded_len_varint(size as u64) + size, 0);
    let mut out = &mut dst[start..];
    encode_varint(size as u64, &mut out);
    frame.encode_protobuf(&mut out);
    debug_assert!(out.is_empty(), "protobuf_len disagrees with the encoding");
    Ok(())
}

pub(super) fn decode(codec: &mut Codec, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
    if let Skip::Bytes(left) = codec.skip {
        let n = left.min(src.len());
        src.advance(n);
        codec.skip = if n == left {
            Skip::Nothing
        } else {
            Skip::Bytes(left - n)
        };
        if codec.skip != Skip::Nothing {
            return Ok(None);
        }
    }
    let mut prefix = &src[..];
    let size = match decode_varint(&mut prefix) {
        Ok(size) => size,
        // Fewer than 10 bytes with no terminating byte: the prefix is split.
        Err(_) if src.len() < 10 && src.iter().all(|b| b & 0x80 != 0) => return Ok(None),
        Err(_) => {
            // Nothing after this can be framed again: drop what we have.
            src.clear();
            return Err(CodecError::LengthPrefix);
        }
    };
    let header = src.len() - prefix.len();
    let bound = codec.skip_limit();
    if size > bound {
        // Not an overlong frame but a stream out of step (or a peer holding
        // the connection with a length it never means to send).
        src.clear();
        return Err(CodecError::LengthPrefixTooLarge {
            size,
            bound,
            max: codec.max_frame_bytes,
        });
    }
    // Saturating keeps a size a 32-bit `usize` cannot hold over the limit.
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    if size > codec.max_frame_bytes {
        src.advance(header);
        codec.skip = Skip::Bytes(size);
        return Err(CodecError::FrameTooLarge {
            size,
            max: codec.max_frame_bytes,
        });
    }
    if src.len() < header + size {
        src.reserve(header + size - src.len());
        return Ok(None);
    }
    let bytes = &src[header..header + size];
    if let Err(e) = super::check_cost(bytes, super::cost::protobuf) {
        src.advance(header + size);
        return Err(e);
    }
    if let Some(token) = TokenEvent::decode(bytes) {
        src.advance(header + size);
        return Ok(Some(token.into_frame()));
    }
    let decoded = Frame::decode(bytes);
    src.advance(header + size);
    match decoded {
        Ok(frame) if frame.body.is_none() => Err(CodecError::MissingBody {
            call_id: frame.call_id,
        }),
        Ok(frame) => Ok(Some(frame)),
        Err(e) => Err(e.into()),
    }
}

/// A token event, nearly every frame of a stream, decoded without prost's
/// generic machinery.
///
/// Only the layout encoders write is taken: `call_id`, `session_id`, `seq`
/// (each at most once, in field order), then the token body as the last
/// field, holding at most its text. Any other layout, or invalid UTF-8,
/// goes to prost, so the frame is always the one `Frame::decode` gives.
#[derive(Debug)]
struct TokenEvent {
    call_id: u64,
    session_id: String,
    seq: u64,
    text: String,
}

impl TokenEvent {
    fn decode(mut buf: &[u8]) -> Option<Self> {
        // Keys are `field << 3 | wire type` (0: varint, 2: length-delimited).
        let mut call_id = 0;
        if let [0x08, rest @ ..] = buf {
            buf = rest;
            call_id = decode_varint(&mut buf).ok()?;
        }
        let mut session_id = String::new();
        if let [0x12, rest @ ..] = buf {
            buf = rest;
            session_id = string(&mut buf)?;
        }
        let mut seq = 0;
        if let [0x18, rest @ ..] = buf {
            buf = rest;
            seq = decode_varint(&mut buf).ok()?;
        }
        // Field 5: the token, filling the rest of the frame.
        let [0x2a, rest @ ..] = buf else {
            return None;
        };
        buf = rest;
        if decode_varint(&mut buf).ok()? != u64::try_from(buf.len()).ok()? {
            return None;
        }
        let mut text = String::new();
        if let [0x0a, rest @ ..] = buf {
            buf = rest;
            text = string(&mut buf)?;
        }
        buf.is_empty().then_some(Self {
            call_id,
            session_id,
            seq,
            text,
        })
    }

    /// The frame, built where the caller puts it (returned directly, it is
    /// not copied).
    #[inline]
    fn into_frame(self) -> Frame {
        Frame {
            call_id: self.call_id,
            session_id: self.session_id,
            seq: self.seq,
            body: Some(Body::Token(Token { text: self.text })),
        }
    }
}

/// A length-delimited UTF-8 string, after its key.
fn string(buf: &mut &[u8]) -> Option<String> {
    let len = usize::try_from(decode_varint(buf).ok()?).ok()?;
    let (bytes, rest) = buf.split_at_checked(len)?;
    *buf = rest;
    Some(std::str::from_utf8(bytes).ok()?.to_owned())
}
