//! Framing codecs: NDJSON lines and varint-length-delimited protobuf on
//! stream transports, SSE events on HTTP.
//!
//! A [`Codec`] reads from a [`BytesMut`] that the transport fills as bytes
//! arrive: a frame split across reads is simply not returned until the rest
//! is there. Every frame is bounded by a size limit; an oversized frame is a
//! [`CodecError::FrameTooLarge`] and its bytes are skipped, so the connection
//! can answer `FRAME_TOO_LARGE` and go on with the next frame.

mod length_delimited;
mod ndjson;
pub mod sse;

use bytes::BytesMut;

use crate::{Encoding, ErrorCode, Frame, FrameRef, JsonError};

/// Default limit on one encoded frame: 8 MiB, room for a few inline images.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 8 * 1024 * 1024;

/// Why bytes could not become a frame, or a frame could not become bytes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The frame is larger than the limit. Its bytes are skipped.
    #[error("frame of {size} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// The frame's size, or a lower bound when it was not complete yet.
        size: usize,
        /// The limit in force.
        max: usize,
    },
    /// A JSON frame is malformed; the line was consumed.
    #[error(transparent)]
    Json(#[from] JsonError),
    /// A protobuf frame is malformed; its bytes were consumed.
    #[error("invalid protobuf frame: {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// A length prefix is not a valid varint.
    #[error("invalid length prefix")]
    LengthPrefix,
    /// A frame carries no body this version knows.
    #[error("frame has no known body")]
    MissingBody,
}

impl CodecError {
    /// The GTL error code to answer with.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::FrameTooLarge { .. } => ErrorCode::FrameTooLarge,
            _ => ErrorCode::InvalidRequest,
        }
    }
}

/// What the decoder is skipping after an oversized frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Skip {
    Nothing,
    /// NDJSON: the rest of the current line.
    Line,
    /// Protobuf: this many more bytes.
    Bytes(usize),
}

/// Encodes and decodes frames in one [`Encoding`] with a frame-size limit.
///
/// `Encoding::Unspecified` behaves as JSON, the encoding every peer speaks.
#[derive(Debug, Clone)]
pub struct Codec {
    encoding: Encoding,
    max_frame_bytes: usize,
    skip: Skip,
    /// NDJSON: how far the buffer was already searched for a newline.
    scanned: usize,
}

impl Codec {
    /// A codec with the default frame-size limit.
    pub fn new(encoding: Encoding) -> Self {
        let encoding = match encoding {
            Encoding::Unspecified => Encoding::Json,
            other => other,
        };
        Self {
            encoding,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            skip: Skip::Nothing,
            scanned: 0,
        }
    }

    /// Sets the largest frame accepted or produced, in bytes.
    pub fn with_max_frame_bytes(mut self, max: usize) -> Self {
        self.max_frame_bytes = max;
        self
    }

    /// The encoding in use.
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// The frame-size limit.
    pub fn max_frame_bytes(&self) -> usize {
        self.max_frame_bytes
    }

    /// Switches encoding, e.g. after `welcome` picked protobuf.
    pub fn set_encoding(&mut self, encoding: Encoding) {
        *self = Self::new(encoding).with_max_frame_bytes(self.max_frame_bytes);
    }

    /// Appends one framed frame to `dst`. On error `dst` is left as it was.
    pub fn encode(&mut self, frame: FrameRef<'_>, dst: &mut BytesMut) -> Result<(), CodecError> {
        if frame.body.is_none() {
            return Err(CodecError::MissingBody);
        }
        match self.encoding {
            Encoding::Protobuf => length_delimited::encode(frame, self.max_frame_bytes, dst),
            _ => ndjson::encode(frame, self.max_frame_bytes, dst),
        }
    }

    /// Takes the next complete frame off the front of `src`.
    ///
    /// `Ok(None)` means more bytes are needed. After an error the offending
    /// bytes are consumed (or will be skipped as they arrive), so calling
    /// `decode` again continues with the next frame.
    pub fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        // The decoders build their result in place: a `Frame` is a few
        // hundred bytes, and each move of one is a copy.
        match self.encoding {
            Encoding::Protobuf => length_delimited::decode(self, src),
            _ => ndjson::decode(self, src),
        }
    }
}

/// Appends to a `BytesMut` through its inlined `extend_from_slice`.
/// (`BytesMut::writer` goes through `BufMut::put_slice`, a call per piece,
/// and serde_json writes a frame in many small pieces.)
struct Appender<'a>(&'a mut BytesMut);

impl std::io::Write for Appender<'_> {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    #[inline]
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.0.extend_from_slice(buf);
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
