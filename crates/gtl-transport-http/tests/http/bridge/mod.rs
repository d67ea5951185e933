//! `HttpConnector` against the real gateway: the frames a framed client
//! writes, bridged onto the HTTP routes, and the frames it reads back.

use std::time::Duration;

use gtl_proto::types::Content;
use gtl_proto::{Body, CompletionRequest, Frame, Hello, Message, Role, Welcome};
use gtl_transport::{Connection, Connector as _, client_handshake};
use gtl_transport_http::HttpConnector;

mod calls;
mod control;
mod resume;

/// How long a test waits for the next frame before calling it a hang.
const PATIENCE: Duration = Duration::from_secs(20);

/// A connection to `url` after a handshake with the default hello.
pub(crate) async fn open(connector: &HttpConnector) -> (Connection, Welcome) {
    let mut conn = connector.connect().await.unwrap();
    let hello = Hello {
        encodings: conn.encodings.iter().map(|e| *e as i32).collect(),
        ..Hello::default()
    };
    let welcome = client_handshake(&mut conn, hello).await.unwrap();
    (conn, welcome)
}

/// A connector to the gateway at `addr`, as `sse://`.
pub(crate) fn connector(addr: &str) -> HttpConnector {
    HttpConnector::new(&format!("sse://{addr}")).unwrap()
}

/// Writes and flushes frames.
pub(crate) async fn send(conn: &mut Connection, frames: impl IntoIterator<Item = Frame>) {
    for frame in frames {
        conn.write.write_frame(frame.as_ref()).unwrap();
    }
    conn.write.flush().await.unwrap();
}

/// The next frame; panics when the connection ends or fails.
pub(crate) async fn next(conn: &mut Connection) -> Frame {
    match tokio::time::timeout(PATIENCE, conn.read.read_frame()).await {
        Ok(Ok(Some(frame))) => frame,
        Ok(Ok(None)) => panic!("the connection ended"),
        Ok(Err(e)) => panic!("the connection failed: {e}"),
        Err(_) => panic!("no frame within {PATIENCE:?}"),
    }
}

/// Frames up to and including the first for which `stop` holds.
pub(crate) async fn until(
    conn: &mut Connection,
    mut stop: impl FnMut(&Frame) -> bool,
) -> Vec<Frame> {
    let mut out = Vec::new();
    loop {
        let frame = next(conn).await;
        let end = stop(&frame);
        out.push(frame);
        if end {
            return out;
        }
    }
}

/// Whether a frame ends its call: `done`, or an `error` (an event or a
/// refusal).
pub(crate) fn terminal(frame: &Frame) -> bool {
    matches!(frame.body, Some(Body::Done(_) | Body::Error(_)))
}

/// A user message.
pub(crate) fn user(text: &str) -> Message {
    Message {
        role: Role::User as i32,
        content: Some(Content::Text(text.into())),
        ..Message::default()
    }
}

/// A streamed `completion_request` for `call_id`.
pub(crate) fn request(call_id: u64, model: &str, text: &str) -> Frame {
    let request = CompletionRequest {
        model: model.into(),
        messages: vec![user(text)],
        stream: true,
        ..CompletionRequest::default()
    };
    Frame::control(call_id, Body::CompletionRequest(Box::new(request)))
}

/// The concatenated text of `token` frames.
pub(crate) fn text(frames: &[Frame]) -> String {
    frames
        .iter()
        .filter_map(|f| match &f.body {
            Some(Body::Token(token)) => Some(token.text.as_str()),
            _ => None,
        })
        .collect()
}

/// The seqs of the session events among `frames`.
pub(crate) fn seqs(frames: &[Frame]) -> Vec<u64> {
    frames
        .iter()
        .filter(|f| f.body.as_ref().is_some_and(Body::is_event))
        .map(|f| f.seq)
        .collect()
}

/// The session id and resume token of an `accepted` frame.
pub(crate) fn accepted(frame: &Frame) -> (String, String) {
    match &frame.body {
        Some(Body::Accepted(accepted)) => (frame.session_id.clone(), accepted.resume_token.clone()),
        other => panic!("expected accepted, got {other:?}"),
    }
}

/// The error of an `error` frame.
pub(crate) fn error(frame: &Frame) -> &gtl_proto::Error {
    match &frame.body {
        Some(Body::Error(error)) => error,
        other => panic!("expected an error, got {other:?}"),
    }
}
