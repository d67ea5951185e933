//! A client QUIC connection (native or WebTransport) as one multiplexed
//! [`Connection`]: frames of call 0 go on the control stream; the first frame of a new call opens
//! its own stream, the call's later frames follow it there, and what the
//! server sends on every stream is merged, by call id, into one read half.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::BytesMut;
use gtl_proto::{Body, Codec, DEFAULT_MAX_FRAME_BYTES, Encoding, Frame, FrameRef};
use gtl_transport::{
    Connection, FrameRead, FrameWrite, PeerInfo, StreamReader, StreamWriter, TransportError,
};
use tokio::io::AsyncWriteExt as _;
use tokio::sync::mpsc;

use crate::close_code;
use crate::conn::BiStreams;

/// Frames read from call streams and not yet taken by the client, at most.
const INCOMING: usize = 256;

/// Call ids whose stream the server finished, for the writer to forget.
type Ended = Arc<Mutex<Vec<u64>>>;

/// `connection` with its control stream (`send`, `recv`) open.
pub(crate) fn connection<C: BiStreams>(
    connection: C,
    send: C::Send,
    recv: C::Recv,
    peer: PeerInfo,
) -> Connection {
    let (to_reader, calls) = mpsc::channel(INCOMING);
    let ended = Ended::default();
    let read = MuxReader {
        control: StreamReader::new(recv, Encoding::Json),
        control_done: false,
        calls,
        connection: connection.clone(),
    };
    let write = MuxWriter {
        connection,
        control: StreamWriter::new(send, Encoding::Json),
        codec: Codec::new(Encoding::Json),
        max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
        calls: HashMap::new(),
        to_reader,
        ended,
    };
    Connection {
        read: Box::new(read),
        write: Box::new(write),
        peer,
        encodings: vec![Encoding::Protobuf],
    }
}

struct MuxReader<C: BiStreams> {
    control: StreamReader<C::Recv>,
    control_done: bool,
    calls: mpsc::Receiver<Result<Frame, TransportError>>,
    /// The connection (and the endpoint it runs on, which it owns).
    connection: C,
}

impl<C: BiStreams> Drop for MuxReader<C> {
    fn drop(&mut self) {
        // The client is done with the connection: close it, which also
        // ends every call stream's reading task.
        self.connection.close(close_code::DONE, b"client closed");
    }
}

#[async_trait]
impl<C: BiStreams> FrameRead for MuxReader<C> {
    async fn read_frame(&mut self) -> Result<Option<Frame>, TransportError> {
        // Both branches are cancel-safe: the control reader keeps what it
        // read in its buffer, and a channel receive takes nothing when
        // dropped.
        tokio::select! {
            frame = self.control.read_frame(), if !self.control_done => match frame {
                Ok(Some(frame)) => Ok(Some(frame)),
                // The server finished the control stream: it is closing the
                // connection.
                Ok(None) => {
                    self.control_done = true;
                    Ok(None)
                }
                Err(e) => Err(e),
            },
            Some(result) = self.calls.recv() => result.map(Some),
            else => Ok(None),
        }
    }

    fn set_encoding(&mut self, encoding: Encoding) {
        self.control.set_encoding(encoding);
    }

    fn set_max_frame_bytes(&mut self, max: usize) {
        self.control.set_max_frame_bytes(max);
    }
}

/// A call's stream, opened at the first flush after its first frame.
struct CallOut<S> {
    send: Option<S>,
    pending: BytesMut,
}

impl<S> Default for CallOut<S> {
    fn default() -> Self {
        Self {
            send: None,
            pending: BytesMut::new(),
        }
    }
}

struct MuxWriter<C: BiStreams> {
    connection: C,
    control: StreamWriter<C::Send>,
    /// Encodes call frames; its encoding is the connection's.
    codec: Codec,
    max_frame_bytes: usize,
    calls: HashMap<u64, CallOut<C::Send>>,
    to_reader: mpsc::Sender<Result<Frame, TransportError>>,
    ended: Ended,
}

impl<C: BiStreams> MuxWriter<C> {
    fn forget_ended(&mut self) {
        let ended = std::mem::take(&mut *self.ended.lock().unwrap_or_else(|e| e.into_inner()));
        for call_id in ended {
            // Dropping the send half finishes it.
            self.calls.remove(&call_id);
        }
    }

    fn spawn_reader(&self, call_id: u64, recv: C::Recv) {
        let reader = StreamReader::new(recv, self.codec.encoding())
            .with_max_frame_bytes(self.max_frame_bytes);
        let to_reader = self.to_reader.clone();
        let ended = self.ended.clone();
        tokio::spawn(read_call(call_id, reader, to_reader, ended));
    }
}

/// Forwards one call stream's frames until the server finishes it.
async fn read_call<R: tokio::io::AsyncRead + Send + Unpin>(
    call_id: u64,
    mut reader: StreamReader<R>,
    to_reader: mpsc::Sender<Result<Frame, TransportError>>,
    ended: Ended,
) {
    loop {
        let result = match reader.read_frame().await {
            Ok(Some(mut frame)) => {
                // The stream is the call, whatever id the server echoed.
                frame.call_id = call_id;
                Ok(frame)
            }
            Ok(None) => break,
            Err(e) if e.is_recoverable() => Err(e),
            Err(e) => {
                // A broken call stream breaks the connection for the
                // client: it reconnects and resumes.
                let _ = to_reader.send(Err(e)).await;
                break;
            }
        };
        if to_reader.send(result).await.is_err() {
            break;
        }
    }
    ended
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(call_id);
}

/// Whether a frame opens a call (and so may open a stream).
fn opens_call(body: Option<&Body>) -> bool {
    matches!(
        body,
        Some(Body::CompletionRequest(_) | Body::Resume(_) | Body::ModelsRequest(_))
    )
}

#[async_trait]
impl<C: BiStreams> FrameWrite for MuxWriter<C> {
    fn write_frame(&mut self, frame: FrameRef<'_>) -> Result<(), TransportError> {
        if frame.call_id == 0 {
            return self.control.write_frame(frame);
        }
        self.forget_ended();
        if !self.calls.contains_key(&frame.call_id) && !opens_call(frame.body) {
            // An ack or cancel for a call whose stream is over: the server
            // has nothing more to say about it.
            return Ok(());
        }
        let out = self.calls.entry(frame.call_id).or_default();
        Ok(self.codec.encode(frame, &mut out.pending)?)
    }

    async fn flush(&mut self) -> Result<(), TransportError> {
        self.control.flush().await?;
        let ids: Vec<u64> = self
            .calls
            .iter()
            .filter(|(_, out)| !out.pending.is_empty())
            .map(|(id, _)| *id)
            .collect();
        for call_id in ids {
            if self
                .calls
                .get(&call_id)
                .is_some_and(|out| out.send.is_none())
            {
                let (send, recv) = self.connection.open_bi().await?;
                self.spawn_reader(call_id, recv);
                if let Some(out) = self.calls.get_mut(&call_id) {
                    out.send = Some(send);
                }
            }
            let Some(out) = self.calls.get_mut(&call_id) else {
                continue;
            };
            let Some(send) = out.send.as_mut() else {
                continue;
            };
            if send.write_all(&out.pending).await.is_err() {
                if let Some(reason) = self.connection.close_reason() {
                    return Err(reason.into());
                }
                // The server stopped reading this call (it is over); the
                // connection goes on.
                self.calls.remove(&call_id);
                continue;
            }
            out.pending.clear();
        }
        Ok(())
    }

    fn buffered(&self) -> usize {
        self.control.buffered() + self.calls.values().map(|c| c.pending.len()).sum::<usize>()
    }

    fn set_encoding(&mut self, encoding: Encoding) {
        self.control.set_encoding(encoding);
        self.codec.set_encoding(encoding);
    }

    async fn close(&mut self) -> Result<(), TransportError> {
        self.flush().await?;
        self.control.close().await?;
        for out in self.calls.values_mut() {
            if let Some(send) = out.send.as_mut() {
                // Shutting a stream's sending half down finishes it.
                let _ = send.shutdown().await;
            }
        }
        Ok(())
    }
}
