//! The connection's sending half: control frames and call events.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures::stream::FuturesUnordered;
use futures::{FutureExt as _, StreamExt as _};
use gtl_core::Call;
use gtl_proto::{Accepted, Body, Frame};
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
    /// The reader stopped tracking this call (it was cancelled or replaced).
    Detach { call_id: u64 },
}

type Ready = Pin<Box<dyn Future<Output = (u64, Arc<Call>)> + Send>>;

fn ready(call_id: u64, call: Arc<Call>) -> Ready {
    Box::pin(async move {
        call.ready().await;
        (call_id, call)
    })
}

pub(super) async fn run(
    mut write: Box<dyn FrameWrite>,
    mut from_reader: mpsc::UnboundedReceiver<Out>,
) {
    let mut calls: FuturesUnordered<Ready> = FuturesUnordered::new();
    let mut detached: Vec<u64> = Vec::new();
    let mut reader_open = true;
    loop {
        if !reader_open && calls.is_empty() {
            break;
        }
        tokio::select! {
            msg = from_reader.recv(), if reader_open => match msg {
                Some(msg) => handle(&mut *write, msg, &mut calls, &mut detached),
                None => {
                    // The peer is gone: its calls are disconnected (dropped
                    // below), the sessions live on for resume.
                    reader_open = false;
                    calls.clear();
                }
            },
            Some((call_id, call)) = calls.next(), if !calls.is_empty() => {
                send_events(&mut *write, call_id, call, &mut calls, &detached);
            }
        }
        // Take whatever else is ready before paying for a flush.
        while write.buffered() < FLUSH_BYTES {
            if let Some(Some(msg)) = from_reader.recv().now_or_never() {
                handle(&mut *write, msg, &mut calls, &mut detached);
                continue;
            }
            match calls.next().now_or_never() {
                Some(Some((call_id, call))) => {
                    send_events(&mut *write, call_id, call, &mut calls, &detached)
                }
                _ => break,
            }
        }
        if write.buffered() > 0 && write.flush().await.is_err() {
            // The connection broke; dropping the calls detaches them.
            return;
        }
    }
    let _ = write.close().await;
}

fn handle(
    write: &mut dyn FrameWrite,
    msg: Out,
    calls: &mut FuturesUnordered<Ready>,
    detached: &mut Vec<u64>,
) {
    match msg {
        Out::Frame(frame) => write_or_report(write, &frame),
        Out::Attach { call_id, call } => {
            detached.retain(|id| *id != call_id);
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
        Out::Detach { call_id } => detached.push(call_id),
    }
}

fn send_events(
    write: &mut dyn FrameWrite,
    call_id: u64,
    call: Arc<Call>,
    calls: &mut FuturesUnordered<Ready>,
    detached: &[u64],
) {
    if detached.contains(&call_id) {
        return;
    }
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
