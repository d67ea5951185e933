//! The one call pipeline, the same for every transport:
//! decode → authenticate → route to a provider → session machine → encode.
//!
//! A connection is served by two tasks. The reader decodes frames and
//! dispatches them (new calls, resumes, acks, cancels, pipe input, pings,
//! models.list). The writer owns the sending half: it waits for any of the
//! connection's calls to have events, drains them straight from the
//! sessions' logs into the transport's buffer, and flushes once per batch.

mod reader;
mod writer;

use std::sync::Arc;

use gtl_core::Engine;
use gtl_proto::{Body, Error, ErrorCode, Frame};
use gtl_providers::Registry;
use gtl_transport::{Connection, server_handshake};
use tokio::sync::mpsc;

use crate::auth::Authenticator;

/// Everything a connection needs from the server, shared by all of them.
#[derive(Debug)]
pub(crate) struct Context {
    pub(crate) engine: Engine,
    pub(crate) registry: Registry,
    pub(crate) auth: Authenticator,
    pub(crate) max_frame_bytes: usize,
    pub(crate) max_calls: usize,
}

/// Serves one connection until it closes.
pub(crate) async fn serve(ctx: Arc<Context>, mut conn: Connection) {
    let peer = conn.peer.clone();
    let span = tracing::info_span!("conn", transport = peer.transport, peer = %peer.addr);
    let _enter = span.enter();
    conn.read.set_max_frame_bytes(ctx.max_frame_bytes);
    let server = concat!("gtl-server/", env!("CARGO_PKG_VERSION"));
    let handshake = match server_handshake(&mut conn, server, ctx.max_frame_bytes as u64).await {
        Ok(handshake) => handshake,
        Err(e) => {
            tracing::debug!(error = %e, "handshake failed");
            return;
        }
    };
    let principal = match ctx.auth.authenticate(&peer, &handshake.hello.token) {
        Ok(principal) => principal,
        Err(e) => {
            tracing::info!(code = %e.code, "connection refused: {}", e.message);
            let frame = error_frame(0, "", e.code, &e.message);
            if conn.write.write_frame(frame.as_ref()).is_ok() {
                let _ = conn.write.close().await;
            }
            return;
        }
    };
    tracing::debug!(subject = %principal.subject, "connection accepted");
    let (to_writer, from_reader) = mpsc::unbounded_channel();
    let writer = tokio::spawn(writer::run(conn.write, from_reader));
    reader::run(&ctx, conn.read, &principal.subject, to_writer).await;
    // The reader is done (peer closed or failed); the writer finishes what
    // it has and stops when its channel closes.
    let _ = writer.await;
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
