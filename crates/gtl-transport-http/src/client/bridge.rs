//! The bridge task: the frames a framed client writes become requests on
//! the HTTP port's routes, and the answers become the frames a framed
//! server would send, addressed by `call_id`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use gtl_proto::{Body, ErrorCode, Frame, Pong};
use gtl_transport::TransportError;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::SendError;
use tokio::task::JoinSet;

use super::call::{self, Action, CallTask, Control, Session, Start};
use super::conn::{Delivery, Written};
use super::exchange::{self, Outgoing, Requester};
use super::mapping;

/// Frames written and not yet taken by the bridge, at most.
pub(super) const WRITER_QUEUE: usize = 64;

/// Frames for the reader not yet read, at most. A reader that falls behind
/// stops the calls' streams (and, through HTTP's flow control, the
/// gateway's sending).
pub(super) const READER_QUEUE: usize = 256;

/// A call's `cancel` and `input` frames not yet sent, at most.
const CONTROL_QUEUE: usize = 16;

/// Requests in flight on one connection (calls, models lists, controls by
/// session id), at most: the framed server's default cap on calls.
const MAX_IN_FLIGHT: usize = 1024;

/// A models list may be this many times the frame-size limit: it holds
/// one `provider_info` per provider, each of which must fit a frame.
const MODELS_LIMIT_FACTOR: usize = 16;

/// The bridge's state.
#[derive(Debug)]
pub(super) struct Bridge {
    requester: Arc<Requester>,
    max_frame_bytes: Arc<AtomicUsize>,
    from_writer: mpsc::Receiver<Written>,
    to_reader: mpsc::Sender<Delivery>,
    /// The calls in flight, by `call_id`: where their controls go.
    calls: HashMap<u64, mpsc::Sender<Control>>,
    tasks: JoinSet<Result<(), TransportError>>,
}

impl Bridge {
    pub(super) fn new(
        requester: Requester,
        max_frame_bytes: Arc<AtomicUsize>,
        from_writer: mpsc::Receiver<Written>,
        to_reader: mpsc::Sender<Delivery>,
    ) -> Self {
        Self {
            requester: Arc::new(requester),
            max_frame_bytes,
            from_writer,
            to_reader,
            calls: HashMap::new(),
            tasks: JoinSet::new(),
        }
    }

    /// Bridges until the writing half is closed, the reading half dropped,
    /// or the connection fails; then every request still in flight is
    /// dropped (the gateway keeps their sessions for a resume).
    pub(super) async fn run(mut self) {
        let to_reader = self.to_reader.clone();
        let failure = tokio::select! {
            () = to_reader.closed() => None,
            failure = self.serve() => failure,
        };
        // Nothing may follow the failure: stop every call first.
        self.tasks.shutdown().await;
        if let Some(e) = failure {
            tracing::debug!(error = %e, "http bridge failed");
            let _ = self.to_reader.send(Err(e)).await;
        }
    }

    /// Takes the frames written, in order, until the writer is gone (`None`)
    /// or a request failed without an answer.
    async fn serve(&mut self) -> Option<TransportError> {
        loop {
            tokio::select! {
                written = self.from_writer.recv() => match written {
                    Some(written) => {
                        if let Err(e) = self.dispatch(written).await {
                            return Some(e);
                        }
                    }
                    None => return None,
                },
                Some(joined) = self.tasks.join_next(), if !self.tasks.is_empty() => match joined {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Some(e),
                    Err(e) => {
                        let message = format!("an HTTP request task failed: {e}");
                        return Some(TransportError::Io(std::io::Error::other(message)));
                    }
                },
            }
        }
    }

    fn max_frame_bytes(&self) -> usize {
        self.max_frame_bytes.load(Ordering::Relaxed)
    }

    /// Turns one frame into its request. An error is a connection failure.
    async fn dispatch(&mut self, written: Written) -> Result<(), TransportError> {
        let Written { frame, json } = written;
        let Frame {
            call_id,
            session_id,
            body,
            ..
        } = frame;
        match body {
            Some(Body::Hello(hello)) => return self.hello(&hello.token, json).await,
            Some(Body::CompletionRequest(_)) => {
                // Always the event stream, whatever the request's `stream`:
                // on a framed connection a call's answer is its events.
                self.start(call_id, &session_id, Start::Stream { json })
                    .await;
            }
            Some(Body::Resume(resume)) => {
                let session = Session {
                    id: session_id.clone(),
                    token: resume.resume_token,
                };
                let after_seq = resume.after_seq;
                self.start(call_id, &session_id, Start::Resume { session, after_seq })
                    .await;
            }
            Some(Body::Cancel(cancel)) => {
                let session = Session {
                    id: session_id,
                    token: cancel.resume_token,
                };
                self.control(call_id, Action::Cancel, session, json).await;
            }
            Some(Body::Input(input)) => {
                let session = Session {
                    id: session_id,
                    token: input.resume_token,
                };
                self.control(call_id, Action::Input, session, json).await;
            }
            // The HTTP port has no ack route: an SSE stream's delivery is
            // all it knows of the client, and the session keeps its events
            // for the resume window (docs/protocol.md §8.3) as it does for
            // any SSE client. An ack is only ever an allowance to forget
            // early (§8.8), so dropping it loses nothing.
            Some(Body::Ack(_)) => {}
            // HTTP keeps its own connections alive; a ping only asks
            // whether the bridge is there, and it is.
            Some(Body::Ping(ping)) => {
                let pong = Frame::control(call_id, Body::Pong(Pong { nonce: ping.nonce }));
                self.deliver(Ok(pong)).await;
            }
            Some(Body::ModelsRequest(request)) => self.models(call_id, request.provider).await,
            Some(other) => {
                let message = format!(
                    "`{}` is not a frame a client sends",
                    other.frame_type().as_str()
                );
                self.refuse(call_id, &session_id, ErrorCode::InvalidRequest, &message)
                    .await;
            }
            None => {
                self.refuse(
                    call_id,
                    &session_id,
                    ErrorCode::InvalidRequest,
                    "frame has no body",
                )
                .await;
            }
        }
        Ok(())
    }

    /// `hello` → `POST /gtl/v1/hello`: the gateway's `welcome` (or its
    /// refusal) is the answer. From then on every request carries the
    /// negotiated version and the hello's token.
    async fn hello(&mut self, token: &str, json: Bytes) -> Result<(), TransportError> {
        let max = self.max_frame_bytes();
        let response = self
            .requester
            .send(Outgoing::post(crate::HELLO_PATH, json))
            .await?;
        let status = response.status();
        if !status.is_success() {
            let error = exchange::refusal(response, 0, max).await?;
            self.deliver(Ok(error)).await;
            return Ok(());
        }
        let body = exchange::body(response, max).await?;
        let Ok(
            welcome @ Frame {
                body: Some(Body::Welcome(_)),
                ..
            },
        ) = Frame::from_json(&body)
        else {
            return Err(exchange::not_gtl(status, "a welcome"));
        };
        if let Some(Body::Welcome(answer)) = &welcome.body {
            self.requester = Arc::new(self.requester.after_welcome(&answer.version, token));
        }
        self.deliver(Ok(welcome)).await;
        Ok(())
    }

    /// Starts a call's task, with the checks a framed server makes.
    async fn start(&mut self, call_id: u64, session_id: &str, start: Start) {
        if call_id == 0 {
            let message = "call_id must be non-zero on a call: 0 is for connection frames";
            self.refuse(call_id, session_id, ErrorCode::InvalidRequest, message)
                .await;
            return;
        }
        // Forget the calls that are over.
        self.calls.retain(|_, controls| !controls.is_closed());
        if self.calls.contains_key(&call_id) {
            let message = "call_id is in use on this connection";
            self.refuse(call_id, session_id, ErrorCode::InvalidRequest, message)
                .await;
            return;
        }
        if !self.room(call_id).await {
            return;
        }
        let (controls_tx, controls) = mpsc::channel(CONTROL_QUEUE);
        self.calls.insert(call_id, controls_tx);
        let task = CallTask {
            requester: self.requester.clone(),
            call_id,
            start,
            controls,
            to_reader: self.to_reader.clone(),
            max_frame_bytes: self.max_frame_bytes(),
        };
        self.tasks.spawn(task.run());
    }

    /// `cancel` / `input`: to the call's task, which knows its session; for
    /// a call not (or no longer) on this connection, by the session id and
    /// token the frame carries, as a framed server takes them.
    async fn control(&mut self, call_id: u64, action: Action, session: Session, json: Bytes) {
        let control = Control {
            action,
            session,
            json,
        };
        let control = match self.calls.get(&call_id) {
            Some(call) => match call.send(control).await {
                Ok(()) => return,
                // The call just ended.
                Err(SendError(control)) => control,
            },
            None => control,
        };
        if control.session.id.is_empty() {
            let frame = match action {
                Action::Cancel => "cancel",
                Action::Input => "input",
            };
            let message = format!("{frame} names no call on this connection and no session");
            self.refuse(call_id, "", ErrorCode::InvalidRequest, &message)
                .await;
            return;
        }
        if !self.room(call_id).await {
            return;
        }
        let requester = self.requester.clone();
        let to_reader = self.to_reader.clone();
        let max = self.max_frame_bytes();
        self.tasks.spawn(async move {
            call::send_control(&requester, call_id, control, &to_reader, max).await
        });
    }

    /// `models_request` → `GET /gtl/v1/models`, answered as on a framed
    /// transport: `provider_info` frames, then `done`.
    async fn models(&mut self, call_id: u64, provider: String) {
        if !self.room(call_id).await {
            return;
        }
        let requester = self.requester.clone();
        let to_reader = self.to_reader.clone();
        let max = self.max_frame_bytes();
        self.tasks.spawn(async move {
            let path = mapping::models_path(&provider);
            let response = requester.send(Outgoing::get(&path)).await?;
            let status = response.status();
            let frames = if status.is_success() {
                let limit = max.saturating_mul(MODELS_LIMIT_FACTOR);
                let body = exchange::body(response, limit).await?;
                mapping::models_frames(&body, call_id)
                    .map_err(|e| exchange::not_gtl(status, &format!("a models list ({e})")))?
            } else {
                vec![exchange::refusal(response, call_id, max).await?]
            };
            for frame in frames {
                if to_reader.send(Ok(frame)).await.is_err() {
                    break;
                }
            }
            Ok(())
        });
    }

    /// Whether another request may start; if not, `call_id` is told so.
    async fn room(&mut self, call_id: u64) -> bool {
        if self.tasks.len() < MAX_IN_FLIGHT {
            return true;
        }
        let message = format!("at most {MAX_IN_FLIGHT} concurrent calls per connection");
        self.refuse(call_id, "", ErrorCode::RateLimit, &message)
            .await;
        false
    }

    /// Answers `call_id` with an `error` frame, as a framed server answers a
    /// frame it refuses.
    async fn refuse(&self, call_id: u64, session_id: &str, code: ErrorCode, message: &str) {
        let frame = mapping::refusal(call_id, session_id, code, message);
        self.deliver(Ok(frame)).await;
    }

    async fn deliver(&self, delivery: Delivery) {
        // A reader that is gone stops the bridge (see `run`).
        let _ = self.to_reader.send(delivery).await;
    }
}
