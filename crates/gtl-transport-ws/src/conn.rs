//! The two halves of a connection over one [`WebSocketStream`].
//!
//! Both halves share the stream behind a mutex that is held only for the
//! duration of one poll (a poll never blocks), so reading and writing run
//! in separate tasks without waiting for each other. tokio-tungstenite keeps
//! a waker per direction, which is exactly this use.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, ready};

use async_trait::async_trait;
use bytes::BytesMut;
use futures::{Sink, Stream};
use gtl_proto::{Body, CodecError, Encoding, Frame, FrameRef, JsonError};
use gtl_transport::{FrameRead, FrameWrite, TransportError};
use prost::Message as _;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::close_code;

/// The stream both halves use, and why reading stopped, if it did.
#[derive(Debug)]
struct Inner<S> {
    ws: WebSocketStream<S>,
    /// Set by the reader when the peer broke the WebSocket protocol or sent
    /// a message over tungstenite's limit: the close code the writer's
    /// `close` sends instead of its own choice.
    failure: Option<u16>,
}

type Shared<S> = Arc<Mutex<Inner<S>>>;

/// Locks the shared stream. A panic while it was held leaves nothing half
/// done that a later poll could trip on (tungstenite's state is updated
/// before it returns), so a poisoned lock is used as it is.
fn lock<S>(shared: &Shared<S>) -> MutexGuard<'_, Inner<S>> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Splits a WebSocket into its reading and writing halves, with the
/// frame-size limits of each direction.
pub(crate) fn split<S>(
    ws: WebSocketStream<S>,
    read_max: usize,
    write_max: usize,
) -> (WsReader<S>, WsWriter<S>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let shared = Arc::new(Mutex::new(Inner { ws, failure: None }));
    let reader = WsReader {
        shared: Arc::clone(&shared),
        encoding: Encoding::Json,
        max_frame_bytes: read_max,
        done: false,
    };
    let writer = WsWriter {
        shared,
        encoding: Encoding::Json,
        max_frame_bytes: write_max,
        queue: VecDeque::new(),
        queued_bytes: 0,
        last_error: None,
    };
    (reader, writer)
}

/// Frames from the peer: one per text (JSON) or binary (protobuf) message.
#[derive(Debug)]
pub(crate) struct WsReader<S> {
    shared: Shared<S>,
    encoding: Encoding,
    max_frame_bytes: usize,
    /// The stream ended (close, error or end of input): `Ok(None)` from now on.
    done: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsReader<S> {
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Frame>, TransportError>> {
        loop {
            if self.done {
                return Poll::Ready(Ok(None));
            }
            let mut inner = lock(&self.shared);
            // A ping was answered by tungstenite, which queued the pong; the
            // next poll (the loop's next turn, or the next wake-up) writes it
            // before reading on, so pongs go out whenever a read is pending.
            let message = match ready!(Pin::new(&mut inner.ws).poll_next(cx)) {
                Some(Ok(message)) => message,
                Some(Err(e)) => {
                    self.done = true;
                    return Poll::Ready(Err(read_error(e, self.max_frame_bytes, &mut inner)));
                }
                None => {
                    self.done = true;
                    return Poll::Ready(Ok(None));
                }
            };
            if let Message::Close(_) = message {
                self.done = true;
                // tungstenite queued the close reply; one more poll writes it
                // (it is flushed before reading) without waiting for the
                // peer to drop the connection.
                let _ = Pin::new(&mut inner.ws).poll_next(cx);
                return Poll::Ready(Ok(None));
            }
            drop(inner);
            let result = match message {
                Message::Text(text) => self.decode(text.as_bytes(), Encoding::Json),
                Message::Binary(bytes) => self.decode(&bytes, Encoding::Protobuf),
                _ => continue,
            };
            return Poll::Ready(result);
        }
    }

    /// Decodes one message that arrived as `kind`.
    fn decode(&self, bytes: &[u8], kind: Encoding) -> Result<Option<Frame>, TransportError> {
        if bytes.len() > self.max_frame_bytes {
            return Err(CodecError::FrameTooLarge {
                size: bytes.len(),
                max: self.max_frame_bytes,
            }
            .into());
        }
        let expected = match self.encoding {
            Encoding::Protobuf => Encoding::Protobuf,
            _ => Encoding::Json,
        };
        if kind != expected {
            return Err(wrong_message_type(expected).into());
        }
        let frame = match kind {
            Encoding::Protobuf => Frame::decode(bytes).map_err(CodecError::from)?,
            _ => Frame::from_json(bytes).map_err(CodecError::from)?,
        };
        if frame.body.is_none() {
            return Err(CodecError::MissingBody {
                call_id: frame.call_id,
            }
            .into());
        }
        Ok(Some(frame))
    }
}

/// The codec error for a message of the wrong type: text on a protobuf
/// connection, binary on a JSON one.
fn wrong_message_type(expected: Encoding) -> CodecError {
    if expected == Encoding::Protobuf {
        #[allow(
            deprecated,
            reason = "prost has no other constructor for a decode error; this one is about the message type, not its bytes"
        )]
        let e = prost::DecodeError::new(
            "text message on a protobuf connection: protobuf frames travel as binary messages",
        );
        CodecError::Protobuf(e)
    } else {
        let e = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "binary message on a JSON connection: JSON frames travel as text messages",
        );
        CodecError::Json(JsonError::from(serde_json::Error::io(e)))
    }
}

/// Maps an error that ended the WebSocket's reading side, and records the
/// close code the writer should send.
fn read_error<S>(e: WsError, max: usize, inner: &mut Inner<S>) -> TransportError {
    match e {
        WsError::Io(e) => TransportError::Io(e),
        // Reported as `FRAME_TOO_LARGE`, which the application answers as it
        // does on every transport; the stream cannot be read past the
        // message, so the next read gives `Ok(None)` and `close` sends 1009.
        WsError::Capacity(CapacityError::MessageTooLong { size, .. }) => {
            inner.failure = Some(close_code::MESSAGE_TOO_BIG);
            CodecError::FrameTooLarge { size, max }.into()
        }
        WsError::ConnectionClosed | WsError::AlreadyClosed => TransportError::Closed,
        other => {
            inner.failure = Some(close_code::PROTOCOL_ERROR);
            TransportError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                other.to_string(),
            ))
        }
    }
}

#[async_trait]
impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> FrameRead for WsReader<S> {
    async fn read_frame(&mut self) -> Result<Option<Frame>, TransportError> {
        poll_fn(|cx| self.poll_frame(cx)).await
    }

    fn set_encoding(&mut self, encoding: Encoding) {
        self.encoding = encoding;
    }

    fn set_max_frame_bytes(&mut self, max: usize) {
        self.max_frame_bytes = max;
    }
}

/// Frames to the peer, one message each, sent in batches by `flush`.
#[derive(Debug)]
pub(crate) struct WsWriter<S> {
    shared: Shared<S>,
    encoding: Encoding,
    max_frame_bytes: usize,
    /// Encoded and not yet handed to tungstenite.
    queue: VecDeque<Message>,
    queued_bytes: usize,
    /// The code of a connection-level `error` frame (`call_id` 0, outside
    /// any session) written since the last flush and followed by no other
    /// frame: the reason for a `close` that follows.
    last_error: Option<i32>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsWriter<S> {
    /// Hands the queued messages to tungstenite, then flushes it (which
    /// also writes any pong or close reply it has queued).
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        let mut inner = lock(&self.shared);
        let mut ws = Pin::new(&mut inner.ws);
        while !self.queue.is_empty() {
            ready!(ws.as_mut().poll_ready(cx))?;
            if let Some(message) = self.queue.pop_front() {
                self.queued_bytes -= message.len();
                ws.as_mut().start_send(message)?;
            }
        }
        ws.poll_flush(cx)
    }

    fn enqueue(&mut self, message: Message) {
        self.queued_bytes += message.len();
        self.queue.push_back(message);
    }

    async fn send(&mut self) -> Result<(), TransportError> {
        poll_fn(|cx| self.poll_send(cx)).await.map_err(write_error)
    }
}

/// Maps an error from sending.
fn write_error(e: WsError) -> TransportError {
    match e {
        WsError::Io(e) => TransportError::Io(e),
        WsError::ConnectionClosed
        | WsError::AlreadyClosed
        | WsError::Protocol(ProtocolError::SendAfterClosing) => TransportError::Closed,
        other => TransportError::Io(std::io::Error::other(other.to_string())),
    }
}

#[async_trait]
impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> FrameWrite for WsWriter<S> {
    fn write_frame(&mut self, frame: FrameRef<'_>) -> Result<(), TransportError> {
        let Some(body) = frame.body else {
            return Err(CodecError::MissingBody {
                call_id: frame.call_id,
            }
            .into());
        };
        let max = self.max_frame_bytes;
        let message = if self.encoding == Encoding::Protobuf {
            let size = frame.protobuf_len();
            if size > max {
                return Err(CodecError::FrameTooLarge { size, max }.into());
            }
            let mut buf = BytesMut::with_capacity(size);
            frame.encode_protobuf(&mut buf);
            Message::Binary(buf.freeze())
        } else {
            let mut json = Vec::new();
            frame.write_json(&mut json).map_err(CodecError::from)?;
            if json.len() > max {
                let size = json.len();
                return Err(CodecError::FrameTooLarge { size, max }.into());
            }
            // serde_json writes UTF-8 only; the check is a formality.
            let text = Utf8Bytes::try_from(json).map_err(|e| {
                TransportError::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, e))
            })?;
            Message::Text(text)
        };
        self.last_error = match body {
            Body::Error(error) if frame.call_id == 0 && frame.session_id.is_empty() => {
                Some(error.code)
            }
            _ => None,
        };
        self.enqueue(message);
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), TransportError> {
        self.send().await?;
        self.last_error = None;
        Ok(())
    }

    fn buffered(&self) -> usize {
        self.queued_bytes
    }

    fn set_encoding(&mut self, encoding: Encoding) {
        self.encoding = encoding;
    }

    /// Sends what is buffered, then a close message: 1000 (normal), unless
    /// the reader stopped on a protocol violation (1002) or an oversized
    /// message (1009), or the last frame buffered since the previous flush
    /// is a connection-level `error` frame, whose code picks the close code
    /// ([`close_code::for_error`]).
    async fn close(&mut self) -> Result<(), TransportError> {
        let failure = lock(&self.shared).failure;
        let code = failure
            .or_else(|| {
                let code = gtl_proto::ErrorCode::try_from(self.last_error?).ok()?;
                Some(close_code::for_error(code))
            })
            .unwrap_or(close_code::NORMAL);
        self.send().await?;
        self.last_error = None;
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: Utf8Bytes::from_static(close_code::reason(code)),
        };
        self.enqueue(Message::Close(Some(frame)));
        match self.send().await {
            // The peer closed first; there is nothing left to tell it.
            Err(TransportError::Closed) => Ok(()),
            other => other,
        }
    }
}
