//! One call's protocol state on the client side, kept free of IO: frames in,
//! frames out and deliveries to the caller.
//!
//! The connection task feeds each call the frames addressed to it and writes
//! whatever the call asks to send. After a reconnect it asks every call for
//! its [`start_frames`](Call::start_frames): the request again when the
//! gateway never accepted it, else a `resume` after the last event the
//! caller was given, so the caller's stream neither loses nor repeats an
//! event.

use gtl_proto::{
    Body, Cancel, CompletionRequest, Frame, Input, Message, ModelsRequest, ProviderInfo, Resume,
};
use tokio::sync::{mpsc, oneshot};

use crate::client::{Event, ResumePoint};
use crate::error::{ClientError, ServerError};

/// What the connection task hands a session call's caller.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "events are nearly every delivery; boxing them would allocate per token"
)]
pub(crate) enum Delivery {
    /// The gateway accepted the call (always first).
    Accepted {
        /// The session's id.
        session_id: String,
        /// What proves the caller may resume it.
        resume_token: String,
    },
    /// The next event; `last` when it ends the call.
    Event {
        /// The event.
        event: Event,
        /// Whether this is the call's terminal event.
        last: bool,
    },
    /// The call failed; nothing follows.
    Failed(ClientError),
}

/// Whether a call goes on after a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    /// More frames are expected.
    Active,
    /// The call is over; forget it.
    Over,
}

/// A call in flight on the client's connection.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "completion calls are the common case; models calls are rare and short"
)]
pub(crate) enum Call {
    /// chat.complete, chat.stream or session.pipe.
    Session(SessionCall),
    /// models.list.
    Models(ModelsCall),
}

impl Call {
    /// The frames that (re)start the call on a fresh connection.
    pub(crate) fn start_frames(&mut self) -> Vec<Frame> {
        match self {
            Self::Session(call) => call.start_frames(),
            Self::Models(call) => call.start_frames(),
        }
    }

    /// Handles a frame addressed to this call; frames to send go to `out`.
    pub(crate) fn on_frame(&mut self, frame: Frame, out: &mut Vec<Frame>) -> Flow {
        match self {
            Self::Session(call) => call.on_frame(frame, out),
            Self::Models(call) => call.on_frame(frame),
        }
    }

    /// session.pipe: queues input; it goes out when the gateway is idle.
    pub(crate) fn on_input(&mut self, messages: Vec<Message>, end: bool, out: &mut Vec<Frame>) {
        if let Self::Session(call) = self {
            call.on_input(messages, end, out);
        }
    }

    /// Asks the gateway to cancel the session.
    pub(crate) fn on_cancel(&mut self, reason: String, out: &mut Vec<Frame>) {
        if let Self::Session(call) = self {
            call.on_cancel(reason, out);
        }
    }

    /// The caller is gone: the frame that stops the session, if any.
    pub(crate) fn abandon(&self) -> Option<Frame> {
        match self {
            Self::Session(call) => Some(call.cancel_frame("the client dropped the event stream")),
            Self::Models(_) => None,
        }
    }

    /// Ends the call with `error`.
    pub(crate) fn fail(self, error: ClientError) {
        match self {
            Self::Session(call) => {
                let _ = call.reply.send(Delivery::Failed(error));
            }
            Self::Models(call) => {
                if let Some(reply) = call.reply {
                    let _ = reply.send(Err(error));
                }
            }
        }
    }
}

/// A completion call and, once accepted, its session.
#[derive(Debug)]
pub(crate) struct SessionCall {
    call_id: u64,
    reply: mpsc::UnboundedSender<Delivery>,
    /// Kept until the gateway accepts the call, to send again after a break.
    request: Option<CompletionRequest>,
    /// The gateway has the session: a reconnect resumes it.
    accepted: bool,
    /// The caller was told the session's id and token.
    announced: bool,
    session_id: String,
    resume_token: String,
    /// The last event handed to the caller.
    last_seq: u64,
    /// Set once the caller cancelled; sent again after a reconnect.
    cancel: Option<String>,
    /// session.pipe only.
    pipe: Option<Pipe>,
}

impl SessionCall {
    pub(crate) fn new(
        call_id: u64,
        request: CompletionRequest,
        reply: mpsc::UnboundedSender<Delivery>,
    ) -> Self {
        Self {
            call_id,
            reply,
            pipe: request.pipe.then(Pipe::default),
            request: Some(request),
            accepted: false,
            announced: false,
            session_id: String::new(),
            resume_token: String::new(),
            last_seq: 0,
            cancel: None,
        }
    }

    /// A call that picks up an existing session after `point.after_seq`,
    /// e.g. one a previous process started.
    pub(crate) fn resuming(
        call_id: u64,
        point: ResumePoint,
        reply: mpsc::UnboundedSender<Delivery>,
    ) -> Self {
        Self {
            call_id,
            reply,
            pipe: None,
            request: None,
            accepted: true,
            announced: false,
            session_id: point.session_id,
            resume_token: point.resume_token,
            last_seq: point.after_seq,
            cancel: None,
        }
    }

    fn frame(&self, seq: u64, body: Body) -> Frame {
        Frame {
            call_id: self.call_id,
            session_id: self.session_id.clone(),
            seq,
            body: Some(body),
        }
    }

    fn start_frames(&mut self) -> Vec<Frame> {
        let mut out = Vec::new();
        match &self.request {
            // Never accepted: nothing reached the caller, so asking again
            // loses and repeats nothing.
            Some(request) if !self.accepted => {
                out.push(Frame::control(
                    self.call_id,
                    Body::CompletionRequest(Box::new(request.clone())),
                ));
            }
            _ => {
                //= design#4
                //# A client reconnects over any transport with `resume
                //# {session_id, after_seq, resume_token}` and receives exactly
                //# the events after `after_seq`, then the live tail.
                out.push(self.frame(
                    0,
                    Body::Resume(Resume {
                        after_seq: self.last_seq,
                        resume_token: self.resume_token.clone(),
                    }),
                ));
            }
        }
        if let Some(reason) = &self.cancel {
            out.push(self.cancel_frame(reason));
        }
        self.push_ready_input(&mut out);
        out
    }

    fn cancel_frame(&self, reason: &str) -> Frame {
        self.frame(
            0,
            Body::Cancel(Cancel {
                reason: reason.to_owned(),
                resume_token: self.resume_token.clone(),
            }),
        )
    }

    fn on_frame(&mut self, frame: Frame, out: &mut Vec<Frame>) -> Flow {
        let Frame {
            session_id,
            seq,
            body,
            ..
        } = frame;
        match body {
            Some(Body::Accepted(accepted)) => {
                if !session_id.is_empty() {
                    self.session_id = session_id;
                }
                if !accepted.resume_token.is_empty() {
                    self.resume_token = accepted.resume_token;
                }
                if self.announced {
                    // A resume after a reconnect was accepted; the events
                    // follow.
                    return Flow::Active;
                }
                self.accepted = true;
                self.announced = true;
                self.request = None;
                let delivery = Delivery::Accepted {
                    session_id: self.session_id.clone(),
                    resume_token: self.resume_token.clone(),
                };
                if self.reply.send(delivery).is_err() {
                    out.push(self.cancel_frame("the client dropped the call"));
                    return Flow::Over;
                }
                Flow::Active
            }
            // Refused before a session existed, a refused resume, or a
            // failure outside the session's events: the call is over.
            Some(Body::Error(error)) if seq == 0 => {
                let session_id = if session_id.is_empty() {
                    self.session_id.clone()
                } else {
                    session_id
                };
                let error = ServerError::new(error, 0, session_id);
                let _ = self.reply.send(Delivery::Failed(error.into()));
                Flow::Over
            }
            Some(body) if body.is_event() => self.on_event(seq, body, out),
            // Nothing else is addressed to a completion call.
            _ => Flow::Active,
        }
    }

    /// Whether `body` ends the call: an `error`, or a `done` (in
    /// session.pipe only the gateway's `end_of_input`: every other `done`
    /// ends a turn).
    fn ends_call(&self, body: &Body) -> bool {
        match body {
            Body::Error(_) => true,
            Body::Done(done) => self.pipe.is_none() || done.finish_reason == END_OF_INPUT,
            _ => false,
        }
    }

    fn on_event(&mut self, seq: u64, body: Body, out: &mut Vec<Frame>) -> Flow {
        if !self.accepted {
            return self.violation("an event arrived before `accepted`".into(), out);
        }
        if seq <= self.last_seq {
            // Already delivered (a resume's replay overlapping the tail). The
            // end, sent again to a resume at its seq, still ends the call:
            // the stream ends without yielding it twice.
            if !self.ends_call(&body) {
                return Flow::Active;
            }
            let event = Event { seq, body };
            let _ = self.reply.send(Delivery::Event { event, last: true });
            return Flow::Over;
        }
        if seq != self.last_seq + 1 {
            let message = format!(
                "event {seq} of session {} arrived after event {}: events were lost",
                self.session_id, self.last_seq
            );
            return self.violation(message, out);
        }
        self.last_seq = seq;
        if let (Body::Done(_), Some(pipe)) = (&body, self.pipe.as_mut()) {
            pipe.on_done();
        }
        let last = self.ends_call(&body);
        let delivery = match body {
            Body::Error(error) => {
                let error = ServerError::new(error, seq, self.session_id.clone());
                Delivery::Failed(error.into())
            }
            body => Delivery::Event {
                event: Event { seq, body },
                last,
            },
        };
        // The caller acks what it has read (see `EventStream`), not this
        // task: an event handed over here but never read must stay
        // resumable.
        let delivered = self.reply.send(delivery).is_ok();
        if last {
            return Flow::Over;
        }
        if !delivered {
            // The caller dropped its stream (its `Forget`, on the way,
            // cancels the session) or detached it (its `Detach` keeps the
            // session running for a resume elsewhere): the command decides,
            // not this event, which may have overtaken it.
            return Flow::Active;
        }
        self.push_ready_input(out);
        Flow::Active
    }

    fn violation(&mut self, message: String, out: &mut Vec<Frame>) -> Flow {
        out.push(self.cancel_frame("protocol violation"));
        let _ = self
            .reply
            .send(Delivery::Failed(ClientError::Protocol { message }));
        Flow::Over
    }

    fn on_input(&mut self, messages: Vec<Message>, end: bool, out: &mut Vec<Frame>) {
        if let Some(pipe) = &mut self.pipe {
            pipe.queue(messages, end);
            self.push_ready_input(out);
        }
    }

    fn on_cancel(&mut self, reason: String, out: &mut Vec<Frame>) {
        if self.cancel.is_none() {
            out.push(self.cancel_frame(&reason));
            self.cancel = Some(reason);
        }
    }

    fn push_ready_input(&mut self, out: &mut Vec<Frame>) {
        if let Some(mut input) = self.pipe.as_mut().and_then(Pipe::take_ready) {
            input.resume_token.clone_from(&self.resume_token);
            out.push(self.frame(0, Body::Input(input)));
        }
    }
}

/// The `done` finish reason that ends a session.pipe call.
const END_OF_INPUT: &str = "end_of_input";

/// session.pipe input, sent only while the gateway is idle between turns.
///
/// The gateway takes input between turns and, once the client ended its
/// input and no turn is left, ends the call with `done {finish_reason:
/// "end_of_input"}`. Input that reaches it during a turn may be taken with
/// other input into one turn; holding input back until the turn's `done`
/// arrives (one round trip, while the gateway would hold it anyway) makes
/// every input frame start exactly one turn.
#[derive(Debug)]
pub(crate) struct Pipe {
    /// A turn is running: the first from the request, or one we started.
    busy: bool,
    /// The running turn's `done` ends the call.
    last_turn: bool,
    queued: Vec<Message>,
    end_queued: bool,
}

impl Default for Pipe {
    fn default() -> Self {
        Self {
            // The request itself starts the first turn.
            busy: true,
            last_turn: false,
            queued: Vec::new(),
            end_queued: false,
        }
    }
}

impl Pipe {
    fn queue(&mut self, messages: Vec<Message>, end: bool) {
        self.queued.extend(messages);
        self.end_queued |= end;
    }

    /// A turn's (or the call's) `done` arrived: the gateway is idle.
    fn on_done(&mut self) {
        self.busy = false;
    }

    /// The input to send now, if the gateway is idle and there is some.
    fn take_ready(&mut self) -> Option<Input> {
        if self.busy || self.last_turn || (self.queued.is_empty() && !self.end_queued) {
            return None;
        }
        self.busy = true;
        self.last_turn = self.end_queued;
        Some(Input {
            messages: std::mem::take(&mut self.queued),
            end: self.end_queued,
            ..Input::default()
        })
    }
}

/// A models.list call: collects `provider_info` frames until `done`.
#[derive(Debug)]
pub(crate) struct ModelsCall {
    call_id: u64,
    reply: Option<oneshot::Sender<Result<Vec<ProviderInfo>, ClientError>>>,
    infos: Vec<ProviderInfo>,
}

impl ModelsCall {
    pub(crate) fn new(
        call_id: u64,
        reply: oneshot::Sender<Result<Vec<ProviderInfo>, ClientError>>,
    ) -> Self {
        Self {
            call_id,
            reply: Some(reply),
            infos: Vec::new(),
        }
    }

    fn start_frames(&mut self) -> Vec<Frame> {
        // After a reconnect the list is asked for again, from scratch.
        self.infos.clear();
        let request = ModelsRequest {
            provider: String::new(),
        };
        vec![Frame::control(self.call_id, Body::ModelsRequest(request))]
    }

    fn on_frame(&mut self, frame: Frame) -> Flow {
        let result = match frame.body {
            Some(Body::ProviderInfo(info)) => {
                self.infos.push(info);
                return Flow::Active;
            }
            Some(Body::Done(_)) => Ok(std::mem::take(&mut self.infos)),
            Some(Body::Error(error)) => Err(ServerError::new(error, 0, "").into()),
            _ => return Flow::Active,
        };
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(result);
        }
        Flow::Over
    }
}

#[cfg(test)]
mod tests {
    use gtl_proto::{Accepted, Done, ErrorCode, Role, Token};

    use super::*;

    fn accepted(session_id: &str, token: &str) -> Frame {
        Frame {
            call_id: 1,
            session_id: session_id.into(),
            seq: 0,
            body: Some(Body::Accepted(Accepted {
                resume_token: token.into(),
            })),
        }
    }

    fn event(seq: u64, body: Body) -> Frame {
        Frame {
            call_id: 1,
            session_id: "s_1".into(),
            seq,
            body: Some(body),
        }
    }

    fn token(text: &str) -> Body {
        Body::Token(Token { text: text.into() })
    }

    fn done(reason: &str) -> Body {
        Body::Done(Done {
            finish_reason: reason.into(),
        })
    }

    fn session(pipe: bool) -> (SessionCall, mpsc::UnboundedReceiver<Delivery>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let request = CompletionRequest {
            pipe,
            stream: true,
            ..CompletionRequest::default()
        };
        (SessionCall::new(1, request, tx), rx)
    }

    fn delivered(rx: &mut mpsc::UnboundedReceiver<Delivery>) -> Vec<String> {
        std::iter::from_fn(|| rx.try_recv().ok())
            .map(|d| match d {
                Delivery::Accepted { session_id, .. } => format!("accepted {session_id}"),
                Delivery::Event { event, last } => format!(
                    "{} {}{}",
                    event.seq,
                    event.body.frame_type().as_str(),
                    if last { " (last)" } else { "" }
                ),
                Delivery::Failed(e) => format!("failed {e}"),
            })
            .collect()
    }

    fn types(frames: &[Frame]) -> Vec<&'static str> {
        frames
            .iter()
            .map(|f| f.body.as_ref().unwrap().frame_type().as_str())
            .collect()
    }

    #[test]
    fn an_event_for_a_stream_let_go_of_sends_no_cancel() {
        // The stream was detached or dropped; its command, behind this
        // event, decides whether the session is cancelled.
        let (mut call, rx) = session(false);
        let mut out = Vec::new();
        call.on_frame(accepted("s_1", "rt"), &mut out);
        drop(rx);
        assert_eq!(call.on_frame(event(1, token("a")), &mut out), Flow::Active);
        assert!(out.is_empty(), "{out:?}");
        // A dropped stream's `Forget` still cancels it.
        let cancel = call.cancel_frame("dropped");
        assert_eq!(types(&[cancel]), ["cancel"]);
    }

    #[test]
    fn before_accepted_a_restart_sends_the_request_again() {
        let (mut call, _rx) = session(false);
        assert_eq!(types(&call.start_frames()), ["completion_request"]);
        assert_eq!(types(&call.start_frames()), ["completion_request"]);
    }

    #[test]
    fn after_a_break_the_call_resumes_after_the_last_delivered_event() {
        let (mut call, mut rx) = session(false);
        let mut out = Vec::new();
        assert_eq!(call.on_frame(accepted("s_1", "rt"), &mut out), Flow::Active);
        call.on_frame(event(1, token("a")), &mut out);
        call.on_frame(event(2, token("b")), &mut out);
        let restart = call.start_frames();
        assert_eq!(restart.len(), 1);
        assert_eq!(restart[0].session_id, "s_1");
        assert_eq!(
            restart[0].body,
            Some(Body::Resume(Resume {
                after_seq: 2,
                resume_token: "rt".into()
            }))
        );
        // The resume's accepted carries no token; the first one is kept.
        call.on_frame(accepted("s_1", ""), &mut out);
        // An overlapping replay is dropped, the tail delivered once.
        call.on_frame(event(2, token("b")), &mut out);
        call.on_frame(event(3, token("c")), &mut out);
        assert_eq!(call.on_frame(event(4, done("stop")), &mut out), Flow::Over);
        assert_eq!(
            delivered(&mut rx),
            [
                "accepted s_1",
                "1 token",
                "2 token",
                "3 token",
                "4 done (last)"
            ]
        );
        assert!(
            out.is_empty(),
            "the reader acks what it read, not this task"
        );
        assert_eq!(call.resume_token, "rt");
    }

    #[test]
    fn a_gap_in_the_events_is_a_protocol_error() {
        let (mut call, mut rx) = session(false);
        let mut out = Vec::new();
        call.on_frame(accepted("s_1", "rt"), &mut out);
        call.on_frame(event(1, token("a")), &mut out);
        assert_eq!(call.on_frame(event(3, token("c")), &mut out), Flow::Over);
        let seen = delivered(&mut rx);
        assert!(seen[2].starts_with("failed protocol violation"), "{seen:?}");
        assert_eq!(types(&out), ["cancel"]);
    }

    #[test]
    fn error_events_and_refusals_end_the_call_as_server_errors() {
        let (mut call, mut rx) = session(false);
        let mut out = Vec::new();
        call.on_frame(accepted("s_1", "rt"), &mut out);
        let error = gtl_proto::Error {
            code: ErrorCode::Cancelled as i32,
            message: "stop".into(),
            ..gtl_proto::Error::default()
        };
        assert_eq!(
            call.on_frame(event(1, Body::Error(error.clone())), &mut out),
            Flow::Over
        );
        match rx.try_iter_last() {
            Some(Delivery::Failed(ClientError::Server(e))) => {
                assert_eq!(
                    (e.code(), e.seq(), e.session_id()),
                    (ErrorCode::Cancelled, 1, "s_1")
                );
            }
            other => panic!("{other:?}"),
        }

        let (mut call, mut rx) = session(false);
        let refusal = Frame {
            call_id: 1,
            body: Some(Body::Error(error)),
            ..Frame::default()
        };
        assert_eq!(call.on_frame(refusal, &mut out), Flow::Over);
        assert!(matches!(
            rx.try_recv(),
            Ok(Delivery::Failed(ClientError::Server(e))) if e.seq() == 0
        ));
    }

    #[test]
    fn a_cancel_is_sent_again_after_a_reconnect() {
        let (mut call, _rx) = session(false);
        let mut out = Vec::new();
        call.on_frame(accepted("s_1", "rt"), &mut out);
        call.on_cancel("enough".into(), &mut out);
        call.on_cancel("twice".into(), &mut out);
        assert_eq!(types(&out), ["cancel"]);
        assert_eq!(types(&call.start_frames()), ["resume", "cancel"]);
    }

    fn tool_result(text: &str) -> Message {
        Message {
            role: Role::Tool as i32,
            tool_call_id: "call_0".into(),
            content: Some(gtl_proto::types::Content::Text(text.into())),
            ..Message::default()
        }
    }

    #[test]
    fn pipe_input_waits_for_the_turn_and_end_of_input_ends_the_call() {
        let (mut call, mut rx) = session(true);
        let mut out = Vec::new();
        call.on_frame(accepted("s_1", "rt"), &mut out);
        // Input during the first turn is held back.
        call.on_input(vec![tool_result("42")], false, &mut out);
        call.on_input(vec![], true, &mut out);
        assert!(out.is_empty());
        // The turn's done is not the end; the held input (with end) goes out
        // as one frame.
        assert_eq!(
            call.on_frame(event(1, done("tool_calls")), &mut out),
            Flow::Active
        );
        assert_eq!(types(&out), ["input"]);
        let Some(Body::Input(input)) = &out[0].body else {
            unreachable!()
        };
        assert_eq!((input.messages.len(), input.end), (1, true));
        out.clear();
        call.on_frame(event(2, token("42")), &mut out);
        // The last turn's done is a turn's end; the gateway's end_of_input
        // after it ends the call.
        assert_eq!(
            call.on_frame(event(3, done("stop")), &mut out),
            Flow::Active
        );
        assert_eq!(
            call.on_frame(event(4, done("end_of_input")), &mut out),
            Flow::Over
        );
        assert_eq!(
            delivered(&mut rx),
            [
                "accepted s_1",
                "1 done",
                "2 token",
                "3 done",
                "4 done (last)"
            ]
        );
    }

    #[test]
    fn ending_an_idle_pipe_waits_for_end_of_input() {
        let (mut call, mut rx) = session(true);
        let mut out = Vec::new();
        call.on_frame(accepted("s_1", "rt"), &mut out);
        call.on_frame(event(1, done("stop")), &mut out);
        call.on_input(vec![], true, &mut out);
        assert_eq!(types(&out), ["input"]);
        assert_eq!(
            call.on_frame(event(2, done("end_of_input")), &mut out),
            Flow::Over
        );
        assert_eq!(
            delivered(&mut rx),
            ["accepted s_1", "1 done", "2 done (last)"]
        );
    }

    #[test]
    fn models_are_collected_until_done_and_asked_for_again_after_a_break() {
        let (tx, mut rx) = oneshot::channel();
        let mut call = ModelsCall::new(7, tx);
        assert_eq!(types(&call.start_frames()), ["models_request"]);
        let info = |name: &str| {
            Frame::control(
                7,
                Body::ProviderInfo(ProviderInfo {
                    provider: name.into(),
                    models: vec![],
                }),
            )
        };
        call.on_frame(info("lost"));
        call.start_frames();
        call.on_frame(info("echo"));
        assert_eq!(call.on_frame(Frame::control(7, done("stop"))), Flow::Over);
        let infos = rx.try_recv().unwrap().unwrap();
        assert_eq!(infos.len(), 1);
        assert_eq!(infos[0].provider, "echo");
    }

    /// The last delivery, for tests.
    trait TryIterLast {
        fn try_iter_last(&mut self) -> Option<Delivery>;
    }

    impl TryIterLast for mpsc::UnboundedReceiver<Delivery> {
        fn try_iter_last(&mut self) -> Option<Delivery> {
            std::iter::from_fn(|| self.try_recv().ok()).last()
        }
    }
}
