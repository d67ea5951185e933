//! One call on the bridge: its event stream (`POST /gtl/v1/stream`, or
//! `GET …/events` for a resume) read into frames, and its `cancel` and
//! `input` sent to the session routes in the order written.

use std::sync::Arc;

use bytes::Bytes;
use gtl_proto::{Body, Frame};
use gtl_transport::TransportError;
use http::header::HeaderName;
use http_body_util::BodyExt as _;
use tokio::sync::{mpsc, watch};

use super::conn::Delivery;
use super::exchange::{self, Outgoing, Requester};
use super::mapping::{self, EventFrames};
use crate::RESUME_TOKEN_HEADER;

/// How a call starts.
#[derive(Debug)]
pub(super) enum Start {
    /// A `completion_request`, whose JSON is the body of `POST /stream`.
    Stream { json: Bytes },
    /// A `resume` of `session` after `after_seq`.
    Resume { session: Session, after_seq: u64 },
}

/// A session the bridge can address: its id and resume token.
#[derive(Debug, Clone, Default)]
pub(super) struct Session {
    pub(super) id: String,
    pub(super) token: String,
}

/// A session route taking a frame as its body.
#[derive(Debug, Clone, Copy)]
pub(super) enum Action {
    Cancel,
    Input,
}

impl Action {
    fn route(self) -> &'static str {
        match self {
            Self::Cancel => "cancel",
            Self::Input => "input",
        }
    }
}

/// A `cancel` or `input` frame, to send to its session's route. Its
/// envelope's session id and its body's token win over what the call
/// learnt from `accepted`.
#[derive(Debug)]
pub(super) struct Control {
    pub(super) action: Action,
    pub(super) session: Session,
    pub(super) json: Bytes,
}

/// What a call task needs.
#[derive(Debug)]
pub(super) struct CallTask {
    pub(super) requester: Arc<Requester>,
    pub(super) call_id: u64,
    pub(super) start: Start,
    pub(super) controls: mpsc::Receiver<Control>,
    pub(super) to_reader: mpsc::Sender<Delivery>,
    pub(super) max_frame_bytes: usize,
}

impl CallTask {
    /// Runs the call until its stream ends. An error is a connection
    /// failure: the stream was cut before the call's end, or a request got
    /// no answer.
    pub(super) async fn run(self) -> Result<(), TransportError> {
        let Self {
            requester,
            call_id,
            start,
            controls,
            to_reader,
            max_frame_bytes,
        } = self;
        let known = match &start {
            Start::Resume { session, .. } => Some(session.clone()),
            Start::Stream { .. } => None,
        };
        let (learnt, watch_learnt) = watch::channel(known);
        let call = Call {
            requester: &requester,
            call_id,
            to_reader: &to_reader,
            max_frame_bytes,
        };
        let stream = call.stream(start, &learnt);
        let controls = call.controls(controls, watch_learnt);
        tokio::pin!(stream, controls);
        // The controls run beside the stream and stop with it: once the
        // call is over a cancel has nothing to stop.
        tokio::select! {
            ended = &mut stream => ended,
            failed = &mut controls => match failed {
                Ok(()) => stream.await,
                Err(e) => Err(e),
            },
        }
    }
}

/// A call's shared context.
#[derive(Clone, Copy)]
struct Call<'a> {
    requester: &'a Requester,
    call_id: u64,
    to_reader: &'a mpsc::Sender<Delivery>,
    max_frame_bytes: usize,
}

impl Call<'_> {
    /// Opens the call's event stream and hands its frames to the reader
    /// until it ends.
    async fn stream(
        self,
        start: Start,
        learnt: &watch::Sender<Option<Session>>,
    ) -> Result<(), TransportError> {
        let response = match start {
            Start::Stream { json } => {
                let request = Outgoing::post("/gtl/v1/stream", json).event_stream();
                self.requester.send(request).await?
            }
            Start::Resume { session, after_seq } => {
                let path = mapping::session_path(&session.id, "events");
                let after = after_seq.to_string();
                let request = Outgoing::get(&path)
                    .event_stream()
                    .header(HeaderName::from_static("last-event-id"), &after)
                    .header(HeaderName::from_static(RESUME_TOKEN_HEADER), &session.token);
                self.requester.send(request).await?
            }
        };
        if !response.status().is_success() {
            let error = exchange::refusal(response, self.call_id, self.max_frame_bytes).await?;
            self.deliver(Ok(error)).await;
            return Ok(());
        }
        if !exchange::is_event_stream(&response) {
            return Err(exchange::not_gtl(response.status(), "an event stream"));
        }
        let mut frames = EventFrames::new(self.call_id, self.max_frame_bytes);
        let mut parsed = Vec::new();
        let mut body = response.into_body();
        loop {
            let chunk = match body.frame().await {
                Some(Ok(chunk)) => chunk,
                // The gateway ends the stream after the call's terminal
                // event (a pipe's: after its last turn). Ending anywhere
                // else, it was cut (a proxy's timeout, say) or another
                // connection resumed the session: like a broken connection,
                // and the client resumes.
                None if frames.complete() => return Ok(()),
                None => return Err(cut("the event stream ended before the call did")),
                // A broken stream is cut even right after a `done`: a
                // session.pipe call goes on after each turn's `done`, and
                // this bridge cannot tell the last one. Reporting a call
                // that was over costs a needless resume; the other way
                // round, a pipe would wait forever.
                Some(Err(e)) => {
                    let message = format!("the event stream broke: {}", exchange::chain(&e));
                    return Err(cut(&message));
                }
            };
            let Ok(data) = chunk.into_data() else {
                continue;
            };
            if let Err(e) = frames.feed(&data, &mut parsed) {
                return Err(cut(&format!("the event stream cannot be read on: {e}")));
            }
            for frame in parsed.drain(..) {
                if let Ok(Frame {
                    session_id,
                    body: Some(Body::Accepted(accepted)),
                    ..
                }) = &frame
                {
                    // Before the reader hears of it: a cancel written right
                    // after `accepted` finds the session.
                    learnt.send_modify(|known| {
                        let known = known.get_or_insert_with(Session::default);
                        if !session_id.is_empty() {
                            known.id.clone_from(session_id);
                        }
                        if !accepted.resume_token.is_empty() {
                            known.token.clone_from(&accepted.resume_token);
                        }
                    });
                }
                if !self.deliver(frame.map_err(TransportError::from)).await {
                    return Ok(());
                }
            }
        }
    }

    /// Sends the call's `cancel` and `input` frames, one at a time, in the
    /// order written. One that names no session waits for `accepted`.
    async fn controls(
        self,
        mut controls: mpsc::Receiver<Control>,
        mut learnt: watch::Receiver<Option<Session>>,
    ) -> Result<(), TransportError> {
        while let Some(mut control) = controls.recv().await {
            if control.session.id.is_empty() || control.session.token.is_empty() {
                let Ok(known) = learnt.wait_for(Option::is_some).await else {
                    return Ok(());
                };
                let known = known.clone().unwrap_or_default();
                if control.session.id.is_empty() {
                    control.session.id = known.id;
                }
                if control.session.token.is_empty() {
                    control.session.token = known.token;
                }
            }
            send_control(
                self.requester,
                self.call_id,
                control,
                self.to_reader,
                self.max_frame_bytes,
            )
            .await?;
        }
        Ok(())
    }

    /// Hands the reader a frame; false when it is gone.
    async fn deliver(self, delivery: Delivery) -> bool {
        self.to_reader.send(delivery).await.is_ok()
    }
}

/// Sends a `cancel` or `input` to its session's route. A refusal is the
/// `error` frame for `call_id` a framed server would send; success sends
/// nothing back, as on a framed transport.
pub(super) async fn send_control(
    requester: &Requester,
    call_id: u64,
    control: Control,
    to_reader: &mpsc::Sender<Delivery>,
    max_frame_bytes: usize,
) -> Result<(), TransportError> {
    let Control {
        action,
        session,
        json,
    } = control;
    let path = mapping::session_path(&session.id, action.route());
    let request = Outgoing::post(&path, json)
        .header(HeaderName::from_static(RESUME_TOKEN_HEADER), &session.token);
    let response = requester.send(request).await?;
    if response.status().is_success() {
        return Ok(());
    }
    let error = exchange::refusal(response, call_id, max_frame_bytes).await?;
    let _ = to_reader.send(Ok(error)).await;
    Ok(())
}

/// A stream cut short: a connection failure.
fn cut(message: &str) -> TransportError {
    TransportError::Io(std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        message.to_owned(),
    ))
}
