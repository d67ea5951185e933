//! The connection's sending half: control frames and call events.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::FuturesUnordered;
use futures::{FutureExt as _, StreamExt as _};
use gtl_core::Call;
use gtl_proto::{Accepted, Body, Frame, Status};
use gtl_transport::FrameWrite;
use tokio::sync::mpsc;

use super::error_frame;

/// Events drained from one call before others get a turn.
const DRAIN: usize = 128;

/// Flush when this much is buffered even if more events are ready.
const FLUSH_BYTES: usize = 64 * 1024;

/// What the reader asks the writer to do.
#[derive(Debug)]
pub(super) enum Out {
    /// Send a control frame (pong, provider_info, errors, ...).
    Frame(Box<Frame>),
    /// Start sending a call's events, after an `accepted` frame.
    Attach { call_id: u64, call: Arc<Call> },
}

type Ready = Pin<Box<dyn Future<Output = (u64, Arc<Call>)> + Send>>;

fn ready(call_id: u64, call: Arc<Call>) -> Ready {
    Box::pin(async move {
        call.ready().await;
        (call_id, call)
    })
}

/// Sends until the reader is gone and the calls attached are over, or,
/// once `draining` resolves, until the calls attached are over (after
/// telling the peer with a `draining` status).
pub(super) async fn run(
    mut write: Box<dyn FrameWrite>,
    mut from_reader: mpsc::Receiver<Out>,
    send_timeout: Duration,
    draining: impl Future<Output = ()>,
) {
    let mut calls: FuturesUnordered<Ready> = FuturesUnordered::new();
    let mut reader_open = true;
    let mut closing = false;
    tokio::pin!(draining);
    loop {
        if (!reader_open || closing) && calls.is_empty() {
            break;
        }
        tokio::select! {
            () = &mut draining, if !closing => {
                closing = true;
                write_or_report(&mut *write, &draining_frame());
            }
            msg = from_reader.recv(), if reader_open => match msg {
                Some(msg) => handle(&mut *write, msg, &mut calls),
                None => {
                    // The peer is gone: its calls are disconnected (dropped
                    // below), the sessions live on for resume.
                    reader_open = false;
                    calls.clear();
                }
            },
            Some((call_id, call)) = calls.next(), if !calls.is_empty() => {
                send_events(&mut *write, call_id, call, &mut calls);
            }
        }
        // Take whatever else is ready before paying for a flush.
        while write.buffered() < FLUSH_BYTES {
            if let Some(Some(msg)) = from_reader.recv().now_or_never() {
                handle(&mut *write, msg, &mut calls);
                continue;
            }
            match calls.next().now_or_never() {
                Some(Some((call_id, call))) => send_events(&mut *write, call_id, call, &mut calls),
                _ => break,
            }
        }
        if write.buffered() > 0 {
            match tokio::time::timeout(send_timeout, write.flush()).await {
                Ok(Ok(())) => {}
                // The connection broke; dropping the calls detaches them.
                Ok(Err(_)) => return,
                Err(_) => {
                    // The peer took nothing for the whole timeout: it is
                    // gone or flooding without reading. Its sessions stay
                    // resumable; this connection ends.
                    tracing::info!(
                        timeout_secs = send_timeout.as_secs(),
                        "peer reads nothing: closing the connection"
                    );
                    let message = format!(
                        "the connection read nothing for {} s and is closed; resume its \
                         sessions on a new one",
                        send_timeout.as_secs()
                    );
                    let error = error_frame(0, "", gtl_proto::ErrorCode::RateLimit, &message);
                    write_or_report(&mut *write, &error);
                    let _ = tokio::time::timeout(LAST_WORDS, write.close()).await;
                    return;
                }
            }
        }
    }
    let _ = tokio::time::timeout(send_timeout, write.close()).await;
}

/// Tells the peer that the gateway is draining: its calls may finish, the
/// next ones belong elsewhere.
fn draining_frame() -> Frame {
    Frame::control(
        0,
        Body::Status(Status {
            state: "draining".into(),
            reason: "the gateway is restarting or shutting down: running calls finish here, \
                     new ones go to another endpoint"
                .into(),
            ..Status::default()
        }),
    )
}

/// How long a connection being closed for not reading gets to take its
/// error frame.
const LAST_WORDS: Duration = Duration::from_secs(1);

fn handle(write: &mut dyn FrameWrite, msg: Out, calls: &mut FuturesUnordered<Ready>) {
    match msg {
        Out::Frame(frame) => write_or_report(write, &frame),
        Out::Attach { call_id, call } => {
            let accepted = Frame {
                call_id,
                session_id: call.session_id().to_owned(),
                seq: 0,
                body: Some(Body::Accepted(Accepted {
                    resume_token: call.resume_token().unwrap_or_default().to_owned(),
                })),
            };
            write_or_report(write, &accepted);
            calls.push(ready(call_id, call));
        }
    }
}

fn send_events(
    write: &mut dyn FrameWrite,
    call_id: u64,
    call: Arc<Call>,
    calls: &mut FuturesUnordered<Ready>,
) {
    let mut failed = None;
    let drained = call.drain(DRAIN, |transmit| {
        if let Err(e) = write.write_frame(transmit.frame(call_id)) {
            failed.get_or_insert((transmit.seq, e));
        }
    });
    if let Some((seq, e)) = failed {
        // One event could not be sent (too large for the peer's limit): the
        // client learns it instead of silently missing an event.
        let message = format!("event {seq} could not be sent: {e}");
        write_or_report(
            write,
            &error_frame(call_id, call.session_id(), e.code(), &message),
        );
    }
    if !drained.finished && !drained.detached {
        calls.push(ready(call_id, call));
    }
}

fn write_or_report(write: &mut dyn FrameWrite, frame: &Frame) {
    if let Err(e) = write.write_frame(frame.as_ref()) {
        tracing::warn!(error = %e, "frame dropped");
    }
}
