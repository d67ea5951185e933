//! One `Pipe` RPC as a framed connection's two halves.
//!
//! The writing half opens the RPC on its first flush — with the metadata
//! taken from a `hello`, when that is the first frame — and feeds the
//! request stream through a bounded queue; the reading half waits for the
//! RPC's response and then reads its messages.

use std::io;

use async_trait::async_trait;
use gtl_proto::{Body, CodecError, Encoding, Frame, FrameRef, SKIP_LIMIT_FACTOR};
use gtl_transport::{Connection, FrameRead, FrameWrite, PeerInfo, TransportError};
use prost::Message as _;
use tokio::sync::{mpsc, oneshot};
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::transport::Channel;
use tonic::{Code, Status, Streaming};

use crate::{AUTHORIZATION_METADATA, ERROR_CODE_METADATA, GtlClient, VERSION_METADATA, error_from};

/// Frames queued towards the gateway before a flush waits: HTTP/2 flow
/// control holds the rest back.
const REQUEST_QUEUE: usize = 64;

/// The RPC's answer: its response stream, or the status it failed with.
type Opened = Result<Streaming<Frame>, Status>;

/// A connection whose `Pipe` RPC starts on the first flush.
pub(super) fn connection(channel: Channel, peer: PeerInfo, max_frame_bytes: usize) -> Connection {
    let (opened_tx, opened_rx) = oneshot::channel();
    let hard_limit =
        max_frame_bytes.saturating_mul(usize::try_from(SKIP_LIMIT_FACTOR).unwrap_or(usize::MAX));
    let client = GtlClient::new(channel.clone())
        .max_decoding_message_size(hard_limit)
        .max_encoding_message_size(hard_limit);
    Connection {
        read: Box::new(PipeReader {
            state: Reading::Opening(opened_rx),
            max_frame_bytes,
            _channel: channel,
        }),
        write: Box::new(PipeWriter {
            state: Writing::Idle {
                client,
                opened: opened_tx,
            },
            buffered: Vec::new(),
            bytes: 0,
            max_frame_bytes,
        }),
        peer,
        // Every gRPC message is a protobuf `Frame`.
        encodings: vec![Encoding::Protobuf],
    }
}

enum Writing {
    /// Nothing flushed yet.
    Idle {
        client: GtlClient<Channel>,
        opened: oneshot::Sender<Opened>,
    },
    /// The RPC is under way; its request stream reads from this queue.
    Open(mpsc::Sender<Frame>),
    /// Closed by [`FrameWrite::close`].
    Closed,
}

/// The sending half: the `Pipe` RPC's request stream.
struct PipeWriter {
    state: Writing,
    buffered: Vec<Frame>,
    bytes: usize,
    max_frame_bytes: usize,
}

impl PipeWriter {
    /// Starts the RPC, with the buffered hello's token and versions as its
    /// metadata. The call runs in a task, so the request stream flows
    /// whether or not the reading half is being read.
    fn open(
        &mut self,
        client: GtlClient<Channel>,
        opened: oneshot::Sender<Opened>,
    ) -> Result<mpsc::Sender<Frame>, TransportError> {
        let metadata = match self.buffered.first_mut() {
            Some(Frame {
                call_id: 0,
                body: Some(Body::Hello(hello)),
                ..
            }) => {
                // The credential travels once, in the metadata the gateway
                // authenticates; a hello on Pipe is not read for it.
                let token = std::mem::take(&mut hello.token);
                self.bytes = self.bytes.saturating_sub(token.len());
                hello_metadata(&token, &hello.versions)?
            }
            _ => MetadataMap::new(),
        };
        let (to_server, outgoing) = mpsc::channel(REQUEST_QUEUE);
        let outgoing = futures::stream::unfold(outgoing, |mut outgoing| async move {
            outgoing.recv().await.map(|frame| (frame, outgoing))
        });
        let mut request = tonic::Request::new(outgoing);
        *request.metadata_mut() = metadata;
        let mut client = client;
        tokio::spawn(async move {
            let answer = client.pipe(request).await.map(tonic::Response::into_inner);
            // The reading half may be gone already; then so is the answer.
            let _ = opened.send(answer);
        });
        Ok(to_server)
    }
}

/// `authorization` and `gtl-version` for a hello's token and versions.
fn hello_metadata(token: &str, versions: &[String]) -> Result<MetadataMap, TransportError> {
    let mut metadata = MetadataMap::new();
    if !token.is_empty() {
        let mut value = MetadataValue::try_from(format!("Bearer {token}")).map_err(|_| {
            TransportError::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the token cannot be sent as gRPC metadata: it holds characters a header cannot",
            ))
        })?;
        value.set_sensitive(true);
        metadata.insert(AUTHORIZATION_METADATA, value);
    }
    // The gateway negotiates from the hello; the header says the same for
    // whatever sits in between. A list a header cannot hold is left out.
    if let Ok(value) = MetadataValue::try_from(versions.join(", "))
        && !versions.is_empty()
    {
        metadata.insert(VERSION_METADATA, value);
    }
    Ok(metadata)
}

#[async_trait]
impl FrameWrite for PipeWriter {
    fn write_frame(&mut self, frame: FrameRef<'_>) -> Result<(), TransportError> {
        if frame.body.is_none() {
            return Err(CodecError::MissingBody {
                call_id: frame.call_id,
            }
            .into());
        }
        let size = frame.protobuf_len();
        if size > self.max_frame_bytes {
            return Err(CodecError::FrameTooLarge {
                size,
                max: self.max_frame_bytes,
            }
            .into());
        }
        self.buffered.push(frame.to_owned());
        self.bytes += size;
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), TransportError> {
        if matches!(self.state, Writing::Idle { .. }) {
            if self.buffered.is_empty() {
                return Ok(());
            }
            let Writing::Idle { client, opened } =
                std::mem::replace(&mut self.state, Writing::Closed)
            else {
                unreachable!("the state was just matched");
            };
            self.state = Writing::Open(self.open(client, opened)?);
        }
        let Writing::Open(to_server) = &self.state else {
            return Err(TransportError::Closed);
        };
        let to_server = to_server.clone();
        let mut ended = false;
        for frame in self.buffered.drain(..) {
            // The queue's other end goes when the RPC ends: the gateway
            // closed it (e.g. refused the caller) or the connection broke.
            // Why is the RPC's status, which the reading half yields; an
            // error here would race it and hide it. Later writes fail.
            if to_server.send(frame).await.is_err() {
                ended = true;
                break;
            }
        }
        if ended {
            self.state = Writing::Closed;
        }
        self.bytes = 0;
        Ok(())
    }

    fn buffered(&self) -> usize {
        self.bytes
    }

    /// gRPC fixes the encoding: every message is a protobuf `Frame`.
    fn set_encoding(&mut self, _: Encoding) {}

    async fn close(&mut self) -> Result<(), TransportError> {
        let flushed = self.flush().await;
        // Dropping the queue ends the request stream: the RPC half-closes,
        // and the gateway ends the RPC after its calls' last frames.
        self.state = Writing::Closed;
        flushed
    }
}

enum Reading {
    /// Waiting for the writing half to start the RPC and for its answer.
    Opening(oneshot::Receiver<Opened>),
    /// Boxed: a stream is large, and there is one per connection.
    Open(Box<Streaming<Frame>>),
    Done,
}

/// The receiving half: the `Pipe` RPC's response stream.
struct PipeReader {
    state: Reading,
    max_frame_bytes: usize,
    /// The HTTP/2 connection closes with the last handle on it: the RPC
    /// must outlive the task that started it.
    _channel: Channel,
}

#[async_trait]
impl FrameRead for PipeReader {
    async fn read_frame(&mut self) -> Result<Option<Frame>, TransportError> {
        loop {
            match &mut self.state {
                Reading::Opening(opened) => match opened.await {
                    Ok(Ok(stream)) => self.state = Reading::Open(Box::new(stream)),
                    Ok(Err(status)) => {
                        self.state = Reading::Done;
                        return failed(&status);
                    }
                    // The writing half went away before it sent anything.
                    Err(_) => {
                        self.state = Reading::Done;
                        return Ok(None);
                    }
                },
                Reading::Open(stream) => match stream.message().await {
                    Ok(Some(frame)) => {
                        let size = frame.encoded_len();
                        if size > self.max_frame_bytes {
                            return Err(CodecError::FrameTooLarge {
                                size,
                                max: self.max_frame_bytes,
                            }
                            .into());
                        }
                        return Ok(Some(frame));
                    }
                    Ok(None) => {
                        self.state = Reading::Done;
                        return Ok(None);
                    }
                    Err(status) => {
                        self.state = Reading::Done;
                        return failed(&status);
                    }
                },
                Reading::Done => return Ok(None),
            }
        }
    }

    /// gRPC fixes the encoding: every message is a protobuf `Frame`.
    fn set_encoding(&mut self, _: Encoding) {}

    /// Frames over `max` are refused from now on. tonic's own limit, set
    /// when the connection opened, stays at [`SKIP_LIMIT_FACTOR`] times the
    /// connector's limit.
    fn set_max_frame_bytes(&mut self, max: usize) {
        self.max_frame_bytes = max;
    }
}

/// What a failed RPC means to the connection's reader.
///
/// A status naming a GTL code is the gateway refusing the connection (a
/// credential, the version, a limit): it becomes the `error` frame a
/// framed gateway would have sent before closing, and the stream ends.
/// Anything else — the server gone, a reset, a proxy's or HTTP/2's own
/// status — is an IO error: the connection is cut, not finished.
fn failed(status: &Status) -> Result<Option<Frame>, TransportError> {
    if status.metadata().contains_key(ERROR_CODE_METADATA) {
        return Ok(Some(Frame::control(0, Body::Error(error_from(status)))));
    }
    let kind = match status.code() {
        Code::Cancelled | Code::Unknown | Code::Internal | Code::Unavailable => {
            io::ErrorKind::ConnectionReset
        }
        Code::DeadlineExceeded => io::ErrorKind::TimedOut,
        // Not a GTL gateway, or one without Pipe.
        Code::Unimplemented => io::ErrorKind::Unsupported,
        _ => io::ErrorKind::Other,
    };
    Err(TransportError::Io(io::Error::new(
        kind,
        format!("Pipe RPC failed: {:?}: {}", status.code(), status.message()),
    )))
}
