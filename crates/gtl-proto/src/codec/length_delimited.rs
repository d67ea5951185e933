//! Protobuf frames, each preceded by its length as a varint (the framing of
//! `prost::Message::encode_length_delimited`).

use bytes::{Buf, BytesMut};
use prost::Message as _;
use prost::encoding::{decode_varint, encode_varint, encoded_len_varint};

use super::{Codec, CodecError, Skip};
use crate::{Frame, FrameRef};

pub(super) fn encode(
    frame: FrameRef<'_>,
    max: usize,
    dst: &mut BytesMut,
) -> Result<(), CodecError> {
    let size = frame.protobuf_len();
    if size > max {
        return Err(CodecError::FrameTooLarge { size, max });
    }
    dst.reserve(encoded_len_varint(size as u64) + size);
    encode_varint(size as u64, dst);
    frame.encode_protobuf(dst);
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
    let decoded = Frame::decode(&src[header..header + size]);
    src.advance(header + size);
    decoded.map(Some).map_err(CodecError::from)
}
