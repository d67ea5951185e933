//! The framed-connection adapter: stdio, Unix sockets, TCP (and any other
//! transport that carries GTL frames with call ids) on top of the
//! [`CallService`].
//!
//! A connection is served by two tasks. The reader decodes frames and turns
//! them into service operations (new calls, resumes, acks, cancels, pipe
//! input, pings, models.list). The writer owns the sending half: it waits
//! for any of the connection's calls to have events, drains them straight
//! from the sessions' logs into the transport's buffer, and flushes once per
//! batch.
//!
//! Every queue is bounded. The reader hands the writer at most
//! [`CONTROL_QUEUE`] frames; when the peer does not read its replies the
//! reader stops reading from it, and a peer that accepts nothing for the
//! send timeout is disconnected (its sessions stay resumable).

mod reader;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use gtl_proto::{Body, Error, ErrorCode, Frame};
use gtl_transport::{Connection, FrameRead, FrameWrite, server_handshake};
use tokio::sync::mpsc;
use tracing::Instrument as _;

use crate::Principal;
use crate::service::{CallError, CallService};

/// Replies (pongs, errors, models) queued for the writer at most.
const CONTROL_QUEUE: usize = 64;

/// The `server` a `welcome` names: this implementation and its version.
pub const SERVER_NAME: &str = concat!("gtl-server/", env!("CARGO_PKG_VERSION"));

/// How long a refusal waits for the peer to take its error frame.
const REFUSAL_FLUSH: Duration = Duration::from_secs(1);

/// Serves one framed connection until it closes: handshake, then every
/// frame as a call-service operation, under the service's connection
/// limits.
pub async fn serve(service: Arc<CallService>, conn: Connection) {
    serve_with_bearer(service, conn, String::new()).await;
}

/// [`serve`] for a connection whose transport carried a credential of its
/// own (a WebSocket upgrade's `Authorization: Bearer`): the hello's token
/// when it has one, else `bearer`.
pub async fn serve_with_bearer(service: Arc<CallService>, conn: Connection, bearer: String) {
    let span = tracing::info_span!("conn", transport = conn.peer.transport, peer = %conn.peer.addr);
    serve_connection(service, conn, bearer)
        .instrument(span)
        .await;
}

async fn serve_connection(service: Arc<CallService>, mut conn: Connection, bearer: String) {
    let limits = service.limits().clone();
    let _admission = match service.admit(&conn.peer) {
        Ok(admission) => admission,
        Err(e) => {
            tracing::info!(code = %e.code, "connection refused: {}", e.message);
            refuse(&mut conn, &e).await;
            return;
        }
    };
    conn.read.set_max_frame_bytes(limits.max_frame_bytes);
    let handshake = server_handshake(&mut conn, SERVER_NAME, limits.max_frame_bytes as u64);
    let handshake = match tokio::time::timeout(limits.handshake_timeout, handshake).await {
        Ok(Ok(handshake)) => handshake,
        Ok(Err(e)) => {
            // The handshake already answered whatever the peer can hear.
            tracing::debug!(error = %e, "handshake failed");
            return;
        }
        Err(_) => {
            let e = CallError::new(
                ErrorCode::InvalidRequest,
                format!(
                    "no hello within {} s: send hello first",
                    limits.handshake_timeout.as_secs()
                ),
            );
            tracing::debug!("handshake timed out");
            refuse(&mut conn, &e).await;
            return;
        }
    };
    let token = match handshake.hello.token.as_str() {
        "" => bearer.as_str(),
        token => token,
    };
    let principal = match service.authenticate(&conn.peer, token) {
        Ok(principal) => principal,
        Err(e) => {
            tracing::info!(code = %e.code, "connection refused: {}", e.message);
            refuse(&mut conn, &e).await;
            return;
        }
    };
    let _subject = match service.admit_subject(&principal) {
        Ok(place) => place,
        Err(e) => {
            tracing::info!(code = %e.code, "connection refused: {}", e.message);
            refuse(&mut conn, &e).await;
            return;
        }
    };
    tracing::debug!(subject = %principal.subject, "connection accepted");
    run(service, &principal, conn.read, conn.write, handshake.first).await;
}

/// Serves the calls of an admitted, authenticated framed connection (for
/// transports with a handshake of their own, e.g. a gRPC stream): every
/// frame read becomes a call-service operation, every call's events are
/// written back, until the peer closes.
pub async fn serve_calls(
    service: Arc<CallService>,
    principal: &Principal,
    read: Box<dyn FrameRead>,
    write: Box<dyn FrameWrite>,
) {
    run(service, principal, read, write, None).await;
}

/// Serves the calls, starting with `first` when the handshake already read
/// one.
async fn run(
    service: Arc<CallService>,
    principal: &Principal,
    read: Box<dyn FrameRead>,
    write: Box<dyn FrameWrite>,
    first: Option<Frame>,
) {
    let send_timeout = service.limits().send_timeout;
    let (to_writer, from_reader) = mpsc::channel(CONTROL_QUEUE);
    let draining = service.draining();
    let writer =
        tokio::spawn(writer::run(write, from_reader, send_timeout, draining).in_current_span());
    reader::run(&service, read, principal, to_writer, first).await;
    // The reader is done (peer closed, failed or idle); the writer finishes
    // what it has and stops when its channel closes.
    let _ = writer.await;
}

/// Answers a connection that will not be served with an error frame, then
/// closes it, never waiting long on a peer that does not read.
async fn refuse(conn: &mut Connection, e: &CallError) {
    let frame = error_frame(0, "", e.code, &e.message);
    if conn.write.write_frame(frame.as_ref()).is_ok() {
        let _ = tokio::time::timeout(REFUSAL_FLUSH, conn.write.close()).await;
    }
}

/// An error frame for call `call_id`, outside any session's sequence.
pub(crate) fn error_frame(call_id: u64, session_id: &str, code: ErrorCode, message: &str) -> Frame {
    Frame {
        call_id,
        session_id: session_id.to_owned(),
        seq: 0,
        body: Some(Body::Error(Error {
            code: code as i32,
            message: message.to_owned(),
            retryable: code.is_retryable(),
            phase: gtl_proto::Phase::BeforeFirstToken as i32,
            retry_after_ms: 0,
        })),
    }
}
