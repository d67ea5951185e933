//! Framing codecs: NDJSON lines and varint-length-delimited protobuf on
//! stream transports, SSE events on HTTP.
//!
//! A [`Codec`] reads from a [`BytesMut`] that the transport fills as bytes
//! arrive: a frame split across reads is simply not returned until the rest
//! is there. Every frame is bounded by a size limit; an oversized frame is a
//! [`CodecError::FrameTooLarge`] and its bytes are skipped, so the connection
//! can answer `FRAME_TOO_LARGE` and go on with the next frame.

mod cost;
mod length_delimited;
mod ndjson;
pub mod sse;

use bytes::BytesMut;

use crate::{Encoding, ErrorCode, Frame, FrameRef, JsonError};

pub use cost::MAX_DECODED_COST;

/// Default limit on one encoded frame: 8 MiB, room for a few inline images.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 8 * 1024 * 1024;

/// A protobuf length prefix announcing more than this many times the frame
/// limit is fatal ([`CodecError::LengthPrefixTooLarge`]) instead of skipped.
///
/// A peer with a larger limit of its own may overshoot ours, and skipping
/// its frame keeps the connection; a length far beyond any limit (up to
/// 2^64 − 1) means the stream lost its framing, and skipping it would keep
/// the connection open and useless for as long as the peer likes.
pub const SKIP_LIMIT_FACTOR: u64 = 16;

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
    /// A length prefix is not a valid varint (more than 10 bytes, or over
    /// 64 bits). Fatal: the buffered bytes were dropped.
    #[error("invalid length prefix: not a varint of at most 64 bits; the stream cannot be framed")]
    LengthPrefix,
    /// A length prefix announces more than [`SKIP_LIMIT_FACTOR`] times the
    /// limit. Fatal: the buffered bytes were dropped.
    #[error(
        "length prefix announces {size} bytes, more than {bound} ({SKIP_LIMIT_FACTOR} × the frame limit of {max}); the stream cannot be framed"
    )]
    LengthPrefixTooLarge {
        /// The size the prefix announced.
        size: u64,
        /// The largest announced size that would have been skipped.
        bound: u64,
        /// The frame-size limit in force.
        max: usize,
    },
    /// A frame carries no body this version knows.
    #[error("frame has no known body")]
    MissingBody {
        /// The frame's `call_id`: the answer names the frame it answers.
        call_id: u64,
    },
    /// Decoding the frame would cost more memory than
    /// [`MAX_DECODED_COST`] (many tiny elements, e.g. millions of empty
    /// messages). It was consumed without being decoded.
    #[error(
        "frame would take about {cost} bytes of memory once decoded, over the limit of {max}: send fewer, larger elements"
    )]
    TooCostly {
        /// The estimated decoded size.
        cost: usize,
        /// The limit.
        max: usize,
    },
}

impl CodecError {
    /// The GTL error code to answer with.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::FrameTooLarge { .. }
            | Self::LengthPrefixTooLarge { .. }
            | Self::TooCostly { .. } => ErrorCode::FrameTooLarge,
            Self::Json(_) | Self::Protobuf(_) | Self::LengthPrefix | Self::MissingBody { .. } => {
                ErrorCode::InvalidRequest
            }
        }
    }

    /// The `call_id` of the frame this error is about, when the frame was
    /// decoded far enough to tell; else 0 (the answer then concerns the
    /// connection).
    pub fn call_id(&self) -> u64 {
        match self {
            Self::MissingBody { call_id } => *call_id,
            _ => 0,
        }
    }

    /// Whether the stream can no longer be framed: nothing after this error
    /// can be decoded, so the connection should answer it and close. Other
    /// errors concern one frame, which was consumed or will be skipped.
    pub fn is_fatal(&self) -> bool {
        matches!(self, Self::LengthPrefix | Self::LengthPrefixTooLarge { .. })
    }
}

/// Refuses a frame whose decoded form would cost too much; small frames
/// are not even looked at.
fn check_cost(bytes: &[u8], estimate: fn(&[u8]) -> usize) -> Result<(), CodecError> {
    if bytes.len() < cost::CHECK_ABOVE {
        return Ok(());
    }
    let cost = estimate(bytes);
    if cost > MAX_DECODED_COST {
        return Err(CodecError::TooCostly {
            cost,
            max: MAX_DECODED_COST,
        });
    }
    Ok(())
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

    /// The largest protobuf length prefix that is skipped rather than fatal:
    /// [`SKIP_LIMIT_FACTOR`] times the limit.
    pub fn skip_limit(&self) -> u64 {
        u64::try_from(self.max_frame_bytes)
            .unwrap_or(u64::MAX)
            .saturating_mul(SKIP_LIMIT_FACTOR)
    }

    /// Switches encoding, e.g. after `welcome` picked protobuf.
    pub fn set_encoding(&mut self, encoding: Encoding) {
        *self = Self::new(encoding).with_max_frame_bytes(self.max_frame_bytes);
    }

    /// Appends one framed frame to `dst`. On error `dst` is left as it was.
    pub fn encode(&mut self, frame: FrameRef<'_>, dst: &mut BytesMut) -> Result<(), CodecError> {
        if frame.body.is_none() {
            return Err(CodecError::MissingBody {
                call_id: frame.call_id,
            });
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
    /// `decode` again continues with the next frame; except after a
    /// [fatal](CodecError::is_fatal) error, which empties `src` and after
    /// which the stream should be closed.
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
