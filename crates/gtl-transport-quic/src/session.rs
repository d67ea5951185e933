//! The server's side of a QUIC-like connection, once it is established
//! and admitted: the control stream's handshake, then a task per call
//! stream, each a thin adapter onto the call service. Native QUIC
//! ([`QuicGateway`](crate::QuicGateway)) and WebTransport
//! ([`WtGateway`](crate::WtGateway)) differ only in how a connection is
//! set up; from here on they are the same code.

use std::net::SocketAddr;
use std::sync::Arc;

use gtl_core::MemoryBudget;
use gtl_proto::{Accepted, Body, Done, Encoding, Error, ErrorCode, Frame, Phase, Pong, Status};
use gtl_service::{CallError, CallEvents, CallService, Principal};
use gtl_transport::{
    FrameRead as _, FrameWrite as _, PeerInfo, StreamReader, StreamWriter, server_handshake,
    stream_connection,
};
use tracing::Instrument as _;

use crate::close_code;
use crate::conn::BiStreams;

/// What every call stream of one connection shares.
struct Conn {
    service: Arc<CallService>,
    principal: Principal,
    /// The connection's place among its subject's, held while it is open.
    _subject_place: Arc<gtl_service::SubjectConnection>,
    budget: Arc<MemoryBudget>,
    encoding: Encoding,
}

/// Serves an established, admitted connection until it closes: the
/// control stream first, then one task per call stream.
pub(crate) async fn serve<C: BiStreams>(service: Arc<CallService>, connection: C, peer: PeerInfo) {
    let Some((conn, mut control)) = handshake(&service, &connection, peer).await else {
        return;
    };
    let conn = Arc::new(conn);
    tracing::debug!(subject = %conn.principal.subject, "connection accepted");
    let mut streams = 0u64;
    let mut calls = tokio::task::JoinSet::new();
    let draining = service.draining();
    tokio::pin!(draining);
    let mut closing = false;
    loop {
        if closing && calls.is_empty() {
            // The calls' last bytes may still be in flight: closing now
            // would discard them, so the client (told to) hangs up first.
            let _ = tokio::time::timeout(DRAIN_LINGER, connection.closed()).await;
            connection.close(close_code::DONE, b"drained");
            break;
        }
        tokio::select! {
            stream = connection.accept_bi() => match stream {
                Ok((send, recv)) => {
                    streams += 1;
                    let span = tracing::debug_span!("call", stream = streams);
                    calls.spawn(serve_call(conn.clone(), send, recv).instrument(span));
                }
                Err(e) => {
                    tracing::debug!(error = %e, "connection closed");
                    break;
                }
            },
            alive = control_frame(&mut control) => if !alive {
                // The control stream is the connection's life line.
                connection.close(close_code::DONE, b"control stream closed");
                break;
            },
            Some(_) = calls.join_next(), if !calls.is_empty() => {}
            () = &mut draining, if !closing => {
                closing = true;
                let status = Status {
                    state: "draining".into(),
                    reason: "the gateway is restarting or shutting down: running calls finish \
                             here, new ones go to another endpoint"
                        .into(),
                    ..Status::default()
                };
                send(&mut *control.write, &Frame::control(0, Body::Status(status))).await;
            }
        }
    }
}

/// How long a drained connection waits for its client to hang up.
const DRAIN_LINGER: std::time::Duration = std::time::Duration::from_secs(2);

/// The control stream: `hello`/`welcome`, then authentication.
async fn handshake<C: BiStreams>(
    service: &Arc<CallService>,
    connection: &C,
    peer: PeerInfo,
) -> Option<(Conn, gtl_transport::Connection)> {
    let limits = service.limits();
    let opened = tokio::time::timeout(limits.handshake_timeout, connection.accept_bi()).await;
    let Ok(Ok((send, recv))) = opened else {
        connection.close(close_code::REFUSED, b"no control stream");
        return None;
    };
    let mut control = stream_connection(recv, send, peer.clone(), Encoding::Json);
    control.read.set_max_frame_bytes(limits.max_frame_bytes);
    let server = concat!("gtl-server/", env!("CARGO_PKG_VERSION"));
    let handshake = server_handshake(&mut control, server, limits.max_frame_bytes as u64);
    let handshake = match tokio::time::timeout(limits.handshake_timeout, handshake).await {
        Ok(Ok(handshake)) => handshake,
        Ok(Err(e)) => {
            // The handshake answered on the control stream already.
            tracing::debug!(error = %e, "handshake failed");
            let _ = tokio::time::timeout(REFUSAL_LINGER, control.write.close()).await;
            close_refused(connection, b"handshake failed").await;
            return None;
        }
        Err(_) => {
            let e = CallError::new(ErrorCode::InvalidRequest, "no hello in time");
            refuse(connection, &mut control, &e).await;
            return None;
        }
    };
    let admitted = service
        .authenticate(&peer, &handshake.hello.token)
        .and_then(|principal| Ok((service.admit_subject(&principal)?, principal)));
    let (subject_place, principal) = match admitted {
        Ok(admitted) => admitted,
        Err(e) => {
            tracing::info!(code = %e.code, "connection refused: {}", e.message);
            refuse(connection, &mut control, &e).await;
            return None;
        }
    };
    if handshake.first.is_some() {
        let e = CallError::new(
            ErrorCode::InvalidRequest,
            "a call goes on its own stream, not the control stream (docs/protocol.md §13.7, §13.8)",
        );
        refuse(connection, &mut control, &e).await;
        return None;
    }
    let conn = Conn {
        service: service.clone(),
        principal,
        _subject_place: Arc::new(subject_place),
        budget: service.connection_budget(),
        encoding: handshake.welcome.encoding(),
    };
    Some((conn, control))
}

/// Answers one control-stream frame; false once the stream is done.
async fn control_frame(control: &mut gtl_transport::Connection) -> bool {
    let frame = match control.read.read_frame().await {
        Ok(Some(frame)) => frame,
        Ok(None) => return false,
        Err(e) if e.is_recoverable() => {
            let frame = error_frame(0, "", e.code(), &e.to_string());
            return send(&mut *control.write, &frame).await;
        }
        Err(_) => return false,
    };
    let reply = match frame.body {
        Some(Body::Ping(ping)) => Frame::control(0, Body::Pong(Pong { nonce: ping.nonce })),
        _ => error_frame(
            frame.call_id,
            &frame.session_id,
            ErrorCode::InvalidRequest,
            "the control stream carries ping only after the handshake: open a stream per call",
        ),
    };
    send(&mut *control.write, &reply).await
}

async fn send(write: &mut dyn gtl_transport::FrameWrite, frame: &Frame) -> bool {
    write.write_frame(frame.as_ref()).is_ok() && write.flush().await.is_ok()
}

/// Refuses a connection: the error frame on the control stream, then the
/// connection closes.
async fn refuse(
    connection: &impl BiStreams,
    control: &mut gtl_transport::Connection,
    e: &CallError,
) {
    let frame = error_frame(0, "", e.code, &e.message);
    if control.write.write_frame(frame.as_ref()).is_ok() {
        let _ = tokio::time::timeout(REFUSAL_LINGER, control.write.close()).await;
    }
    close_refused(connection, e.message.as_bytes()).await;
}

/// How long a refused connection stays open for its error frame to
/// arrive, unless the client hangs up first.
const REFUSAL_LINGER: std::time::Duration = std::time::Duration::from_secs(1);

/// Closes a refused connection once the client has hung up after reading
/// why, or after [`REFUSAL_LINGER`]: closing at once would discard the
/// error frame still in flight on the control stream.
async fn close_refused(connection: &impl BiStreams, reason: &[u8]) {
    let _ = tokio::time::timeout(REFUSAL_LINGER, connection.closed()).await;
    connection.close(close_code::REFUSED, reason);
}

/// Serves the one call a stream carries, from its first frame to its last
/// event, then finishes the stream.
async fn serve_call<S, R>(conn: Arc<Conn>, send: S, recv: R)
where
    S: tokio::io::AsyncWrite + Send + Unpin,
    R: tokio::io::AsyncRead + Send + Unpin,
{
    let limits = conn.service.limits();
    let mut read =
        StreamReader::new(recv, conn.encoding).with_max_frame_bytes(limits.max_frame_bytes);
    let mut write = StreamWriter::new(send, conn.encoding);
    let first = match tokio::time::timeout(limits.handshake_timeout, read.read_frame()).await {
        Ok(Ok(Some(frame))) => frame,
        Ok(Ok(None)) => return,
        Ok(Err(e)) => {
            finish(&mut write, error_frame(0, "", e.code(), &e.to_string())).await;
            return;
        }
        Err(_) => {
            let e = "no frame on a new call stream in time: send the call's first frame at once";
            finish(&mut write, error_frame(0, "", ErrorCode::InvalidRequest, e)).await;
            return;
        }
    };
    let call_id = first.call_id;
    let session_id = first.session_id;
    let started = match first.body {
        Some(Body::CompletionRequest(request)) => {
            let id = (!session_id.is_empty()).then(|| session_id.clone());
            conn.service.start(&conn.principal, id, *request).await
        }
        Some(Body::Resume(resume)) => {
            conn.service
                .resume(
                    &conn.principal,
                    &session_id,
                    resume.after_seq,
                    &resume.resume_token,
                )
                .await
        }
        Some(Body::ModelsRequest(request)) => {
            let only = (!request.provider.is_empty()).then_some(request.provider.as_str());
            match conn.service.models(&conn.principal, only).await {
                Ok(infos) => {
                    for info in infos {
                        let _ = write.write_frame(
                            Frame::control(call_id, Body::ProviderInfo(info)).as_ref(),
                        );
                    }
                    let done = Body::Done(Done {
                        finish_reason: "stop".into(),
                    });
                    finish(&mut write, Frame::control(call_id, done)).await;
                }
                Err(e) => finish(&mut write, error_frame(call_id, "", e.code, &e.message)).await,
            }
            return;
        }
        Some(other) => Err(CallError::new(
            ErrorCode::InvalidRequest,
            format!(
                "a call stream starts with completion_request, resume or models_request, not `{}`",
                other.frame_type().as_str()
            ),
        )),
        None => Err(CallError::new(
            ErrorCode::InvalidRequest,
            "frame has no body",
        )),
    };
    let call = match started {
        Ok(call) => call,
        Err(e) => {
            finish(
                &mut write,
                error_frame(call_id, &session_id, e.code, &e.message),
            )
            .await;
            return;
        }
    };
    let mut events = CallEvents::new(call);
    events.charge_to(conn.budget.clone());
    let accepted = Frame {
        call_id,
        session_id: events.session_id().to_owned(),
        seq: 0,
        body: Some(Body::Accepted(Accepted {
            resume_token: events.resume_token().unwrap_or_default().to_owned(),
        })),
    };
    let _ = write.write_frame(accepted.as_ref());
    stream_events(
        &mut events,
        call_id,
        &mut read,
        &mut write,
        limits.send_timeout,
    )
    .await;
    let _ = tokio::time::timeout(limits.send_timeout, write.close()).await;
}

/// Writes the call's events as they come while reading the client's acks,
/// cancels and input, until the call is over or the client is gone.
async fn stream_events(
    events: &mut CallEvents,
    call_id: u64,
    read: &mut StreamReader<impl tokio::io::AsyncRead + Send + Unpin>,
    write: &mut StreamWriter<impl tokio::io::AsyncWrite + Send + Unpin>,
    send_timeout: std::time::Duration,
) {
    let mut reading = true;
    loop {
        if tokio::time::timeout(send_timeout, write.flush())
            .await
            .map_or(true, |r| r.is_err())
        {
            // Gone, or not reading: the session stays resumable.
            return;
        }
        let mut failed = None;
        tokio::select! {
            batch = events.next_batch(|t| {
                if let Err(e) = write.write_frame(t.frame(call_id)) {
                    failed.get_or_insert((t.seq, e));
                }
            }) => {
                if let Some((seq, e)) = failed.take() {
                    let message = format!("event {seq} could not be sent: {e}");
                    let frame = error_frame(call_id, events.session_id(), e.code(), &message);
                    let _ = write.write_frame(frame.as_ref());
                }
                if batch.is_none() {
                    let _ = tokio::time::timeout(send_timeout, write.flush()).await;
                    return;
                }
            }
            frame = read.read_frame(), if reading => match frame {
                Ok(Some(frame)) => on_client_frame(events, call_id, frame, write),
                // The client finished its side; the call goes on.
                Ok(None) => reading = false,
                Err(e) if e.is_recoverable() => {
                    let frame = error_frame(call_id, events.session_id(), e.code(), &e.to_string());
                    let _ = write.write_frame(frame.as_ref());
                }
                Err(_) => reading = false,
            },
        }
    }
}

/// `ack`, `cancel` or `input` for the stream's call.
fn on_client_frame(
    events: &CallEvents,
    call_id: u64,
    frame: Frame,
    write: &mut StreamWriter<impl tokio::io::AsyncWrite + Send + Unpin>,
) {
    let refusal = match frame.body {
        Some(Body::Ack(_)) => {
            events.ack(frame.seq);
            None
        }
        Some(Body::Cancel(cancel)) => {
            events.cancel(&cancel.reason);
            None
        }
        Some(Body::Input(mut input)) => {
            input.resume_token.clear();
            events.input(input).err()
        }
        Some(other) => Some(CallError::new(
            ErrorCode::InvalidRequest,
            format!(
                "`{}` is not a frame for a call stream (ack, cancel and input are)",
                other.frame_type().as_str()
            ),
        )),
        None => Some(CallError::new(
            ErrorCode::InvalidRequest,
            "frame has no body",
        )),
    };
    if let Some(e) = refusal {
        let frame = error_frame(call_id, events.session_id(), e.code, &e.message);
        let _ = write.write_frame(frame.as_ref());
    }
}

/// Writes `last` and finishes the stream.
async fn finish(write: &mut StreamWriter<impl tokio::io::AsyncWrite + Send + Unpin>, last: Frame) {
    let _ = write.write_frame(last.as_ref());
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), write.close()).await;
}

fn error_frame(call_id: u64, session_id: &str, code: ErrorCode, message: &str) -> Frame {
    Frame {
        call_id,
        session_id: session_id.to_owned(),
        seq: 0,
        body: Some(Body::Error(Error {
            code: code as i32,
            message: message.to_owned(),
            retryable: code.is_retryable(),
            phase: Phase::BeforeFirstToken as i32,
            ..Error::default()
        })),
    }
}

/// Who a peer of a UDP transport (`quic`, `wt`) is: its address, whether
/// it is on this host and, on loopback, the user owning its UDP socket.
pub(crate) fn peer_info(transport: &'static str, addr: SocketAddr) -> PeerInfo {
    let ip = match addr {
        SocketAddr::V6(v6) => v6.ip().to_ipv4_mapped().map_or(addr.ip(), Into::into),
        SocketAddr::V4(_) => addr.ip(),
    };
    let addr = SocketAddr::new(ip, addr.port());
    let loopback = ip.is_loopback();
    let uid = loopback
        .then(|| gtl_transport::peer_uid::loopback_udp_peer_uid(addr))
        .flatten();
    PeerInfo::new(transport, addr.to_string())
        .with_same_host(loopback)
        .with_uid(uid)
}
