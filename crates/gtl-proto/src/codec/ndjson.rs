//! NDJSON: one JSON frame per line. JSON escapes newlines inside strings, so
//! a raw `\n` always ends a frame.

use bytes::{Buf, BytesMut};

use super::{Appender, Codec, CodecError, Skip};
use crate::json::read_json;
use crate::{Frame, FrameRef, JsonError};

pub(super) fn encode(
    frame: FrameRef<'_>,
    max: usize,
    dst: &mut BytesMut,
) -> Result<(), CodecError> {
    let start = dst.len();
    let written = frame.write_json(&mut Appender(dst));
    let size = dst.len() - start;
    if let Err(e) = written {
        dst.truncate(start);
        return Err(e.into());
    }
    if size > max {
        dst.truncate(start);
        return Err(CodecError::FrameTooLarge { size, max });
    }
    dst.extend_from_slice(b"\n");
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
        let json = trim(&src[..end]);
        if json.is_empty() {
            // Blank lines (keep-alives, a trailing CRLF) carry nothing.
            src.advance(end + 1);
            continue;
        }
        if let Err(e) = super::check_cost(json, super::cost::json) {
            src.advance(end + 1);
            return Err(e);
        }
        let mut frame = Frame::default();
        let read = read_json(json, &mut frame);
        src.advance(end + 1);
        return match read {
            Ok(()) if frame.body.is_none() => Err(CodecError::MissingBody {
                call_id: frame.call_id,
            }),
            Ok(()) => Ok(Some(frame)),
            Err(e) => Err(e.into()),
        };
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
