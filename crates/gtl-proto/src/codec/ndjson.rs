//! NDJSON: one JSON frame per line. JSON escapes newlines inside strings, so
//! a raw `\n` always ends a frame.

use bytes::{Buf, BufMut, BytesMut};

use super::{Codec, CodecError, Skip};
use crate::{Frame, FrameRef, JsonError};

pub(super) fn encode(
    frame: FrameRef<'_>,
    max: usize,
    dst: &mut BytesMut,
) -> Result<(), CodecError> {
    let start = dst.len();
    let written = frame.write_json(&mut dst.writer());
    let size = dst.len() - start;
    if let Err(e) = written {
        dst.truncate(start);
        return Err(e.into());
    }
    if size > max {
        dst.truncate(start);
        return Err(CodecError::FrameTooLarge { size, max });
    }
    dst.put_u8(b'\n');
    Ok(())
}

pub(super) fn decode(codec: &mut Codec, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
    loop {
        let Some(offset) = memchr::memchr(b'\n', &src[codec.scanned..]) else {
            return incomplete(codec, src);
        };
        let end = codec.scanned + offset;
        codec.scanned = 0;
        if codec.skip == Skip::Line {
            // The tail of an oversized line: drop it and start afresh.
            src.advance(end + 1);
            codec.skip = Skip::Nothing;
            continue;
        }
        if end > codec.max_frame_bytes {
            src.advance(end + 1);
            return Err(CodecError::FrameTooLarge {
                size: end,
                max: codec.max_frame_bytes,
            });
        }
        let line = src.split_to(end + 1);
        let json = trim(&line[..end]);
        if json.is_empty() {
            // Blank lines (keep-alives, a trailing CRLF) carry nothing.
            continue;
        }
        return Frame::from_json(json).map(Some).map_err(CodecError::from);
    }
}

/// No newline yet: wait for more, unless the line is already too long.
fn incomplete(codec: &mut Codec, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
    if codec.skip == Skip::Line {
        src.clear();
        codec.scanned = 0;
        return Ok(None);
    }
    if src.len() > codec.max_frame_bytes {
        let size = src.len();
        src.clear();
        codec.scanned = 0;
        codec.skip = Skip::Line;
        return Err(CodecError::FrameTooLarge {
            size,
            max: codec.max_frame_bytes,
        });
    }
    codec.scanned = src.len();
    Ok(None)
}

fn trim(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    line.trim_ascii()
}

impl From<serde_json::Error> for CodecError {
    fn from(e: serde_json::Error) -> Self {
        Self::Json(JsonError::from(e))
    }
}
