//! The `gtl.v1.Gtl` service over the call service: each RPC a thin
//! translation, so gRPC routes, authenticates and limits exactly as every
//! other transport does.

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt as _};
use gtl_core::Completion as Aggregate;
use gtl_proto::{
    Accepted, Body, CompleteRequest, Completion, Encoding, ErrorCode, Frame, FrameRef,
    ModelsRequest, ModelsResponse, ResumeRequest,
};
use gtl_service::{CallError, CallEvents, CallService, Principal, serve_calls};
use gtl_transport::{
    Connection, FrameRead, FrameWrite, PeerInfo, TransportError, server_handshake,
};
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};

use crate::{AUTHORIZATION_METADATA, Gtl, GtlServer, status_from, status_from_error};

/// A stream of frames answering an RPC.
type Frames = Pin<Box<dyn Stream<Item = Result<Frame, Status>> + Send>>;

/// Frames queued towards a `Pipe` client before the calls pause.
const PIPE_QUEUE: usize = 256;

/// The `server` of a `welcome` on `Pipe`, as on the framed transports.
const SERVER: &str = concat!("gtl-server/", env!("CARGO_PKG_VERSION"));

/// Serves `gtl.v1.Gtl` from a [`CallService`].
///
/// `Pipe` is served as a framed connection (the call service's
/// `serve_calls`): calls multiplexed by `call_id`, after an optional
/// `hello` / `welcome` exchange when the client opens with `hello`.
///
/// The transport that carries the RPCs puts the caller's [`PeerInfo`] in
/// each request's extensions (the HTTP port does); without one, the caller
/// is a remote peer that must present a token.
#[derive(Debug, Clone)]
pub struct GrpcGateway {
    service: Arc<CallService>,
}

impl GrpcGateway {
    /// A gateway calling `service`.
    pub fn new(service: Arc<CallService>) -> Self {
        Self { service }
    }

    /// The tonic server for this gateway, with the service's frame-size
    /// limit on every message.
    pub fn into_server(self) -> GtlServer<Self> {
        let max = self.service.limits().max_frame_bytes;
        GtlServer::new(self)
            .max_decoding_message_size(max)
            .max_encoding_message_size(max)
    }

    fn principal<T>(&self, request: &Request<T>) -> Result<Principal, Status> {
        let peer = peer(request);
        let token = request
            .metadata()
            .get(AUTHORIZATION_METADATA)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        self.service.authenticate(&peer, token).map_err(status)
    }

    async fn start(
        &self,
        principal: &Principal,
        request: CompleteRequest,
    ) -> Result<CallEvents, Status> {
        let call = request.request.ok_or_else(|| {
            status(CallError::new(
                ErrorCode::InvalidRequest,
                "CompleteRequest.request is required",
            ))
        })?;
        let session_id = (!request.session_id.is_empty()).then_some(request.session_id);
        let call = self
            .service
            .start(principal, session_id, call)
            .await
            .map_err(status)?;
        Ok(CallEvents::new(call))
    }
}

/// The request, with the RPC's `traceparent` metadata in its request's
/// metadata (unless that has one): the call's span continues the trace.
fn with_trace_context(request: Request<CompleteRequest>) -> CompleteRequest {
    let traceparent = request
        .metadata()
        .get(gtl_service::TRACEPARENT)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let mut inner = request.into_inner();
    if let (Some(traceparent), Some(call)) = (traceparent, inner.request.as_mut()) {
        call.metadata
            .entry(gtl_service::TRACEPARENT.to_owned())
            .or_insert(traceparent);
    }
    inner
}

/// The caller as the carrying transport saw it.
fn peer<T>(request: &Request<T>) -> PeerInfo {
    request
        .extensions()
        .get::<PeerInfo>()
        .cloned()
        .unwrap_or_else(|| PeerInfo::new("grpc", "unknown").with_same_host(false))
}

fn status(e: CallError) -> Status {
    status_from(e.code, &e.message)
}

/// `accepted`, then the call's events, as an RPC's answer stream.
fn answer(events: CallEvents) -> Frames {
    let accepted = Frame {
        call_id: 0,
        session_id: events.session_id().to_owned(),
        seq: 0,
        body: Some(Body::Accepted(Accepted {
            resume_token: events.resume_token().unwrap_or_default().to_owned(),
        })),
    };
    let frames = futures::stream::once(async { accepted }).chain(events.into_frames(0));
    Box::pin(frames.map(Ok))
}

#[tonic::async_trait]
impl Gtl for GrpcGateway {
    async fn complete(
        &self,
        request: Request<CompleteRequest>,
    ) -> Result<Response<Completion>, Status> {
        let principal = self.principal(&request)?;
        let request = with_trace_context(request);
        if request.request.as_ref().is_some_and(|r| r.pipe) {
            return Err(status(CallError::new(
                ErrorCode::InvalidRequest,
                "Complete cannot run session.pipe: use Pipe",
            )));
        }
        let mut events = self.start(&principal, request).await?;
        let session_id = events.session_id().to_owned();
        let mut aggregate = Aggregate::default();
        let mut last = 0;
        while events
            .next_batch(|t| {
                aggregate.push(t.body);
                last = t.seq;
            })
            .await
            .is_some()
        {}
        events.ack(last);
        let done = aggregate.into_result().map_err(|e| match e.to_event() {
            Body::Error(error) => status_from_error(&error),
            _ => status_from(e.code, &e.message),
        })?;
        Ok(Response::new(Completion {
            session_id,
            text: done.text,
            tool_calls: done.tool_calls,
            usage: done.usage,
            finish_reason: done.finish_reason,
            provider: done.provider,
            model: done.model,
            patches: done.patches,
        }))
    }

    type StreamStream = Frames;

    async fn stream(&self, request: Request<CompleteRequest>) -> Result<Response<Frames>, Status> {
        let principal = self.principal(&request)?;
        let events = self.start(&principal, with_trace_context(request)).await?;
        Ok(Response::new(answer(events)))
    }

    type PipeStream = Frames;

    async fn pipe(&self, request: Request<Streaming<Frame>>) -> Result<Response<Frames>, Status> {
        let principal = self.principal(&request)?;
        // A Pipe is a connection: it holds one of the subject's places.
        let place = self.service.admit_subject(&principal).map_err(status)?;
        let peer = peer(&request);
        let incoming = request.into_inner();
        let (to_client, from_calls) = mpsc::channel(PIPE_QUEUE);
        let service = self.service.clone();
        tokio::spawn(async move {
            let _place = place;
            let conn = Connection {
                read: Box::new(PipeRead { incoming }),
                write: Box::new(PipeWrite {
                    to_client: Some(to_client),
                    buffered: Vec::new(),
                    bytes: 0,
                }),
                peer,
                encodings: vec![Encoding::Protobuf],
            };
            serve_pipe(service, &principal, conn).await;
        });
        let frames = futures::stream::unfold(from_calls, |mut from_calls| async move {
            let frame = from_calls.recv().await?;
            Some((Ok(frame), from_calls))
        });
        Ok(Response::new(Box::pin(frames)))
    }

    type ResumeStream = Frames;

    async fn resume(&self, request: Request<ResumeRequest>) -> Result<Response<Frames>, Status> {
        let principal = self.principal(&request)?;
        let ResumeRequest {
            session_id,
            after_seq,
            resume_token,
        } = request.into_inner();
        let call = self
            .service
            .resume(&principal, &session_id, after_seq, &resume_token)
            .await
            .map_err(status)?;
        Ok(Response::new(answer(CallEvents::new(call))))
    }

    async fn models(
        &self,
        request: Request<ModelsRequest>,
    ) -> Result<Response<ModelsResponse>, Status> {
        let principal = self.principal(&request)?;
        let provider = request.into_inner().provider;
        let providers = self
            .service
            .models(
                &principal,
                (!provider.is_empty()).then_some(provider.as_str()),
            )
            .await
            .map_err(status)?;
        Ok(Response::new(ModelsResponse { providers }))
    }
}

/// Serves one `Pipe` RPC: the calls, after a `hello` / `welcome` exchange
/// when the client opens with `hello`, so a GTL client drives the RPC like
/// any stream transport. The caller was authenticated from the RPC's
/// metadata already; a hello's token is not read.
async fn serve_pipe(service: Arc<CallService>, principal: &Principal, mut conn: Connection) {
    let limits = service.limits().clone();
    // The first frame decides; a client that sends none is idle, and is
    // let go after the idle timeout as on every framed transport.
    let Ok(Ok(Some(first))) =
        tokio::time::timeout(limits.idle_timeout, conn.read.read_frame()).await
    else {
        return;
    };
    let hello = matches!(first.body, Some(Body::Hello(_)));
    let mut conn = Connection {
        read: Box::new(Replay {
            first: Some(first),
            rest: conn.read,
        }),
        ..conn
    };
    //= spec#13.5
    //# The client MAY open `Pipe` with `hello`
    if hello
        && server_handshake(&mut conn, SERVER, limits.max_frame_bytes as u64)
            .await
            .is_err()
    {
        // The handshake answered with an error frame and closed.
        return;
    }
    serve_calls(service, principal, conn.read, conn.write).await;
}

/// A reader that yields a frame already read before the rest.
struct Replay {
    first: Option<Frame>,
    rest: Box<dyn FrameRead>,
}

#[async_trait::async_trait]
impl FrameRead for Replay {
    async fn read_frame(&mut self) -> Result<Option<Frame>, TransportError> {
        match self.first.take() {
            Some(frame) => Ok(Some(frame)),
            None => self.rest.read_frame().await,
        }
    }

    fn set_encoding(&mut self, encoding: Encoding) {
        self.rest.set_encoding(encoding);
    }

    fn set_max_frame_bytes(&mut self, max: usize) {
        self.rest.set_max_frame_bytes(max);
    }
}

/// The client's half of a `Pipe` RPC as a framed connection's reader.
struct PipeRead {
    incoming: Streaming<Frame>,
}

#[async_trait::async_trait]
impl FrameRead for PipeRead {
    async fn read_frame(&mut self) -> Result<Option<Frame>, TransportError> {
        self.incoming
            .message()
            .await
            .map_err(|s| TransportError::Io(std::io::Error::other(s.message().to_owned())))
    }

    fn set_encoding(&mut self, _: Encoding) {}

    fn set_max_frame_bytes(&mut self, _: usize) {}
}

/// The server's half of a `Pipe` RPC as a framed connection's writer: a
/// flush hands the buffered frames to the response stream, waiting while
/// the client does not read (the queue is bounded).
struct PipeWrite {
    to_client: Option<mpsc::Sender<Frame>>,
    buffered: Vec<Frame>,
    bytes: usize,
}

#[async_trait::async_trait]
impl FrameWrite for PipeWrite {
    fn write_frame(&mut self, frame: FrameRef<'_>) -> Result<(), TransportError> {
        let frame = frame.to_owned();
        self.bytes += prost::Message::encoded_len(&frame);
        self.buffered.push(frame);
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), TransportError> {
        let Some(to_client) = &self.to_client else {
            return Err(TransportError::Closed);
        };
        for frame in self.buffered.drain(..) {
            to_client
                .send(frame)
                .await
                .map_err(|_| TransportError::Closed)?;
        }
        self.bytes = 0;
        Ok(())
    }

    fn buffered(&self) -> usize {
        self.bytes
    }

    fn set_encoding(&mut self, _: Encoding) {}

    async fn close(&mut self) -> Result<(), TransportError> {
        let flushed = self.flush().await;
        self.to_client = None;
        flushed
    }
}
