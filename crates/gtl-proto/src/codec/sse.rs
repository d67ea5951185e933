//! Server-Sent Events framing of GTL frames, for the SSE transport.
//!
//! Each frame is one event: `event:` is the frame type, `id:` the session
//! sequence number (so a reconnecting browser's `Last-Event-ID` is exactly
//! the `after_seq` of a resume), `data:` the frame's JSON form. JSON never
//! holds a raw newline, so one `data:` line carries the whole frame.

use std::fmt::Write as _;

use bytes::{BufMut, BytesMut};

use crate::{CodecError, FrameRef};

/// Appends one SSE event for `frame` to `dst`. On error `dst` is unchanged.
pub fn encode(frame: FrameRef<'_>, max: usize, dst: &mut BytesMut) -> Result<(), CodecError> {
    let body = frame.body.ok_or(CodecError::MissingBody)?;
    let start = dst.len();
    dst.put_slice(b"event: ");
    dst.put_slice(body.frame_type().as_str().as_bytes());
    if frame.seq != 0 {
        // Writing into a BytesMut cannot fail.
        let _ = write!(dst, "\nid: {}", frame.seq);
    }
    dst.put_slice(b"\ndata: ");
    let json_start = dst.len();
    if let Err(e) = frame.write_json(&mut dst.writer()) {
        dst.truncate(start);
        return Err(e.into());
    }
    let size = dst.len() - json_start;
    if size > max {
        dst.truncate(start);
        return Err(CodecError::FrameTooLarge { size, max });
    }
    dst.put_slice(b"\n\n");
    Ok(())
}

/// Appends an SSE comment line, e.g. a keep-alive that proxies will not
/// buffer forever.
pub fn comment(text: &str, dst: &mut BytesMut) {
    for line in text.split('\n') {
        dst.put_slice(b": ");
        dst.put_slice(line.as_bytes());
        dst.put_u8(b'\n');
    }
    dst.put_u8(b'\n');
}
