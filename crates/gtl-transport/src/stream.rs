//! Frames over any byte stream, with a [`Codec`].

use async_trait::async_trait;
use bytes::BytesMut;
use gtl_proto::{Codec, Encoding, Frame, FrameRef};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::{Connection, FrameRead, FrameWrite, PeerInfo, TransportError};

/// Reads bytes into a buffer before decoding; sized for a batch of tokens.
const READ_CHUNK: usize = 16 * 1024;

/// The reading half of a framed byte stream.
#[derive(Debug)]
pub struct StreamReader<R> {
    io: R,
    codec: Codec,
    buf: BytesMut,
    eof: bool,
}

/// The writing half of a framed byte stream.
#[derive(Debug)]
pub struct StreamWriter<W> {
    io: W,
    codec: Codec,
    buf: BytesMut,
}

/// Frames a byte stream's two halves, starting in `encoding` (JSON until a
/// handshake says otherwise).
pub fn stream_connection<R, W>(read: R, write: W, peer: PeerInfo, encoding: Encoding) -> Connection
where
    R: AsyncRead + Send + Unpin + 'static,
    W: AsyncWrite + Send + Unpin + 'static,
{
    Connection {
        read: Box::new(StreamReader::new(read, encoding)),
        write: Box::new(StreamWriter::new(write, encoding)),
        peer,
        encodings: vec![Encoding::Json, Encoding::Protobuf],
    }
}

impl<R: AsyncRead + Send + Unpin> StreamReader<R> {
    /// Wraps a reader.
    pub fn new(io: R, encoding: Encoding) -> Self {
        Self {
            io,
            codec: Codec::new(encoding),
            buf: BytesMut::with_capacity(READ_CHUNK),
            eof: false,
        }
    }

    /// Sets the frame-size limit.
    pub fn with_max_frame_bytes(mut self, max: usize) -> Self {
        self.codec = self.codec.with_max_frame_bytes(max);
        self
    }
}

#[async_trait]
impl<R: AsyncRead + Send + Unpin> FrameRead for StreamReader<R> {
    async fn read_frame(&mut self) -> Result<Option<Frame>, TransportError> {
        loop {
            if let Some(frame) = self.codec.decode(&mut self.buf)? {
                return Ok(Some(frame));
            }
            if self.eof {
                return Ok(None);
            }
            self.buf.reserve(READ_CHUNK);
            if self.io.read_buf(&mut self.buf).await? == 0 {
                self.eof = true;
                // A last line without its newline still counts.
                if !self.buf.is_empty() && self.codec.encoding() == Encoding::Json {
                    self.buf.extend_from_slice(b"\n");
                    continue;
                }
                return Ok(None);
            }
        }
    }

    fn set_encoding(&mut self, encoding: Encoding) {
        self.codec.set_encoding(encoding);
    }

    fn set_max_frame_bytes(&mut self, max: usize) {
        self.codec = self.codec.clone().with_max_frame_bytes(max);
    }
}

impl<W: AsyncWrite + Send + Unpin> StreamWriter<W> {
    /// Wraps a writer.
    pub fn new(io: W, encoding: Encoding) -> Self {
        Self {
            io,
            codec: Codec::new(encoding),
            buf: BytesMut::with_capacity(READ_CHUNK),
        }
    }
}

#[async_trait]
impl<W: AsyncWrite + Send + Unpin> FrameWrite for StreamWriter<W> {
    fn write_frame(&mut self, frame: FrameRef<'_>) -> Result<(), TransportError> {
        Ok(self.codec.encode(frame, &mut self.buf)?)
    }

    async fn flush(&mut self) -> Result<(), TransportError> {
        if !self.buf.is_empty() {
            self.io.write_all(&self.buf).await?;
            self.buf.clear();
        }
        self.io.flush().await?;
        Ok(())
    }

    fn buffered(&self) -> usize {
        self.buf.len()
    }

    fn set_encoding(&mut self, encoding: Encoding) {
        self.codec.set_encoding(encoding);
    }

    async fn close(&mut self) -> Result<(), TransportError> {
        self.flush().await?;
        self.io.shutdown().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use gtl_proto::{Body, ErrorCode, Ping};
    use tokio::io::AsyncWriteExt;

    use super::*;

    /// A protobuf reader with a 1 KiB limit, fed `wire` and then EOF.
    async fn read_all(wire: &[u8]) -> Vec<Result<Option<Frame>, TransportError>> {
        let (mut a, b) = tokio::io::duplex(64 * 1024);
        let mut reader = StreamReader::new(b, Encoding::Protobuf).with_max_frame_bytes(1024);
        a.write_all(wire).await.unwrap();
        drop(a);
        let mut results = Vec::new();
        loop {
            let result = reader.read_frame().await;
            let done = match &result {
                Ok(frame) => frame.is_none(),
                Err(e) => !e.is_recoverable(),
            };
            results.push(result);
            if done {
                return results;
            }
        }
    }

    fn ping() -> (Frame, Vec<u8>) {
        let frame = Frame::control(0, Body::Ping(Ping { nonce: 1 }));
        let mut wire = BytesMut::new();
        Codec::new(Encoding::Protobuf)
            .encode(frame.as_ref(), &mut wire)
            .unwrap();
        (frame, wire.to_vec())
    }

    #[tokio::test]
    async fn an_oversized_frame_is_skipped_and_reading_goes_on() {
        let (frame, ping) = ping();
        // 2000 bytes announced and sent: over the limit, under the skip limit.
        let mut wire = vec![0xd0, 0x0f];
        wire.resize(2 + 2000, 0);
        wire.extend_from_slice(&ping);
        let mut results = read_all(&wire).await.into_iter();
        let err = results.next().unwrap().unwrap_err();
        assert_eq!(err.code(), ErrorCode::FrameTooLarge);
        assert!(err.is_recoverable());
        assert!(!err.reply_before_close());
        assert_eq!(results.next().unwrap().unwrap(), Some(frame));
        assert_eq!(results.next().unwrap().unwrap(), None);
    }

    #[tokio::test]
    async fn an_absurd_length_prefix_ends_the_stream_with_frame_too_large() {
        let (_, ping) = ping();
        let mut wire = vec![0x80; 9];
        wire.push(0x01);
        wire.extend_from_slice(&ping);
        let results = read_all(&wire).await;
        let [Err(err)] = &results[..] else {
            panic!("{results:?}");
        };
        assert_eq!(err.code(), ErrorCode::FrameTooLarge);
        assert!(!err.is_recoverable());
        assert!(err.reply_before_close());
    }

    #[tokio::test]
    async fn an_invalid_length_prefix_ends_the_stream_with_invalid_request() {
        let results = read_all(&[0xff; 11]).await;
        let [Err(err)] = &results[..] else {
            panic!("{results:?}");
        };
        assert_eq!(err.code(), ErrorCode::InvalidRequest);
        assert!(!err.is_recoverable());
        assert!(err.reply_before_close());
        assert!(
            err.to_string().starts_with("invalid length prefix"),
            "{err}"
        );
    }
}
