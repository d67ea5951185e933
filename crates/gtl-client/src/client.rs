//! The client handle, event streams and pipe input.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::{Stream, StreamExt as _};
use gtl_core::Completion;
use gtl_proto::{Body, CompletionRequest, Frame, Message, ProviderInfo};
use tokio::sync::{mpsc, oneshot};

use crate::driver::{Command, Delivery, Driver};
use crate::endpoint::Endpoint;
use crate::error::ClientError;
use crate::opts::ConnectOpts;

/// Ack after this many events read, so the gateway can forget them.
const ACK_EVERY: u32 = 64;

/// Connects to the first endpoint of `opts` that answers and returns a
/// client for it.
///
/// Endpoints are tried in order, in rounds as the
/// [`ReconnectPolicy`](crate::ReconnectPolicy) says. An endpoint whose
/// scheme this build cannot speak (a transport feature turned off, or a
/// newer scheme) is skipped with a warning, so a list meant for several
/// clients still works; when none is left, that is the error. A malformed
/// URL fails at once, before any is tried. Must be called inside a tokio
/// runtime: the connection is served by a task on it, which stops when the
/// [`Client`] and every stream it returned are dropped.
pub async fn connect(opts: ConnectOpts) -> Result<Client, ClientError> {
    if opts.endpoints.is_empty() {
        return Err(ClientError::NoEndpoints);
    }
    let mut endpoints = Vec::new();
    let mut unsupported = None;
    for url in &opts.endpoints {
        match Endpoint::parse(url) {
            Ok(endpoint) => endpoints.push(endpoint),
            Err(e @ ClientError::UnsupportedScheme { .. }) => {
                tracing::warn!("skipping an endpoint: {e}");
                unsupported.get_or_insert(e);
            }
            Err(e) => return Err(e),
        }
    }
    if endpoints.is_empty() {
        return Err(unsupported.unwrap_or(ClientError::NoEndpoints));
    }
    let (commands, commands_rx) = mpsc::unbounded_channel();
    let endpoint = Arc::new(Mutex::new(String::new()));
    let mut driver = Driver::new(endpoints, &opts, commands_rx, endpoint.clone());
    driver
        .open(0)
        .await
        .map_err(|failures| ClientError::Connect { failures })?;
    tokio::spawn(driver.run());
    Ok(Client {
        inner: Arc::new(Inner {
            commands,
            next_call_id: AtomicU64::new(1),
            endpoint,
        }),
    })
}

/// A connection to a GTL gateway, shared by every call made through it.
///
/// Cloning is cheap; clones share the connection. Calls run concurrently,
/// multiplexed on the one connection. When it breaks, the client reconnects
/// (the same endpoint first, then the next ones) and resumes every stream
/// in flight where its caller left off.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    commands: mpsc::UnboundedSender<Command>,
    next_call_id: AtomicU64,
    endpoint: Arc<Mutex<String>>,
}

impl Client {
    /// chat.complete: runs `request` to its end and returns the aggregate.
    ///
    /// The events are folded with [`Completion::push`], the same path the
    /// gateway uses; an `error` event is returned as
    /// [`ClientError::Server`].
    pub async fn complete(
        &self,
        mut request: CompletionRequest,
    ) -> Result<Completion, ClientError> {
        request.stream = false;
        request.pipe = false;
        let mut events = self.call(request).await?;
        let mut completion = Completion::default();
        while let Some(event) = events.next().await {
            completion.push(&event?.body);
        }
        Ok(completion)
    }

    /// chat.stream: starts `request` and returns its events as they come.
    ///
    /// Returns once the gateway has accepted the call; a call it refuses
    /// (unknown provider, limits) is an `Err` here.
    pub async fn stream(&self, mut request: CompletionRequest) -> Result<EventStream, ClientError> {
        request.stream = true;
        request.pipe = false;
        self.call(request).await
    }

    /// session.pipe: starts `request` as a conversation the caller feeds
    /// with [`PipeSender`] (tool results, follow-ups) while reading its
    /// events.
    ///
    /// Each turn ends with a `done` event (e.g. `finish_reason:
    /// "tool_calls"`). Once the input is ended ([`PipeSender::send_and_end`],
    /// [`PipeSender::end`] or dropping the sender) and no turn is left, the
    /// stream ends with `done {finish_reason: "end_of_input"}`.
    pub async fn pipe(
        &self,
        mut request: CompletionRequest,
    ) -> Result<(PipeSender, EventStream), ClientError> {
        request.stream = true;
        request.pipe = true;
        let events = self.call(request).await?;
        let sender = PipeSender {
            call_id: events.call_id,
            commands: self.inner.commands.clone(),
            ended: false,
        };
        Ok((sender, events))
    }

    /// Picks up a session where `point` says, e.g. in a new process after
    /// the one that started it exited (an editor that reloads): the
    /// stream yields exactly the events after `point.after_seq`, then the
    /// live tail, and resumes by itself after later breaks like any other.
    ///
    /// Fails with `RESUME_NOT_FOUND` when the session is unknown to this
    /// caller, expired, or the token does not match; the gateway does not
    /// say which. A session.pipe session resumes as a stream of its events
    /// (its input side stays with the process that started it).
    pub async fn resume(&self, point: ResumePoint) -> Result<EventStream, ClientError> {
        let call_id = self.inner.next_call_id();
        let (reply, deliveries) = mpsc::unbounded_channel();
        let mut events = EventStream::new(call_id, deliveries, self.inner.commands.clone());
        events.last_seq = point.after_seq;
        self.inner.send(Command::Resume {
            call_id,
            point,
            reply,
        })?;
        events.accepted().await?;
        Ok(events)
    }

    /// models.list: every provider the gateway serves and its models.
    pub async fn models(&self) -> Result<Vec<ProviderInfo>, ClientError> {
        let (reply, answer) = oneshot::channel();
        let call_id = self.inner.next_call_id();
        self.inner.send(Command::Models { call_id, reply })?;
        answer.await.map_err(|_| ClientError::Closed)?
    }

    /// The endpoint in use (or last used), as a URL, e.g.
    /// `unix:///run/user/1000/gtl/gtl.sock`.
    pub fn endpoint(&self) -> String {
        self.inner
            .endpoint
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    async fn call(&self, request: CompletionRequest) -> Result<EventStream, ClientError> {
        let call_id = self.inner.next_call_id();
        let (reply, deliveries) = mpsc::unbounded_channel();
        // Built first, so that dropping this future forgets the call.
        let mut events = EventStream::new(call_id, deliveries, self.inner.commands.clone());
        self.inner.send(Command::Start {
            call_id,
            request: Box::new(request),
            reply,
        })?;
        events.accepted().await?;
        Ok(events)
    }
}

impl Inner {
    fn next_call_id(&self) -> u64 {
        self.next_call_id.fetch_add(1, Ordering::Relaxed)
    }

    fn send(&self, command: Command) -> Result<(), ClientError> {
        self.commands.send(command).map_err(|_| ClientError::Closed)
    }
}

/// Where a session can be picked up: see [`Client::resume`] and
/// [`EventStream::resume_point`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumePoint {
    /// The session's id.
    pub session_id: String,
    /// The last event already received; the stream starts after it (0:
    /// from the first event).
    pub after_seq: u64,
    /// The token the gateway gave in `accepted`.
    pub resume_token: String,
}

/// One event of a session: its `seq` and its body (`status`, `token`,
/// `tool_call`, `patch`, `usage` or `done`).
///
/// `error` events are not events of an [`EventStream`]: they end it as
/// [`ClientError::Server`], with their seq in [`ServerError::seq`](crate::ServerError::seq).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Event {
    /// The event's number in its session: 1, 2, 3, … without gaps.
    pub seq: u64,
    /// The event.
    pub body: Body,
}

impl Event {
    /// The event as a frame of session `session_id`, e.g. to print with
    /// [`Frame::to_json`].
    pub fn to_frame(&self, session_id: &str) -> Frame {
        Frame::event(session_id, self.seq, self.body.clone())
    }
}

/// The events of one call, in order, each exactly once — across reconnects.
///
/// Ends after the call's terminal event: `done` (for session.pipe, the
/// last turn's), or an `Err` — [`ClientError::Server`] for an `error` event
/// (e.g. `CANCELLED` after [`cancel`](Self::cancel)), or a connection that
/// could not be restored. Events wait in memory until polled. Dropping the
/// stream before its end cancels the call.
#[derive(Debug)]
pub struct EventStream {
    call_id: u64,
    session_id: String,
    resume_token: String,
    deliveries: mpsc::UnboundedReceiver<Delivery>,
    commands: mpsc::UnboundedSender<Command>,
    last_seq: u64,
    /// Events read since the last ack.
    unacked: u32,
    finished: bool,
}

impl EventStream {
    fn new(
        call_id: u64,
        deliveries: mpsc::UnboundedReceiver<Delivery>,
        commands: mpsc::UnboundedSender<Command>,
    ) -> Self {
        Self {
            call_id,
            session_id: String::new(),
            resume_token: String::new(),
            deliveries,
            commands,
            last_seq: 0,
            unacked: 0,
            finished: false,
        }
    }

    /// Where to pick this session up from another process with
    /// [`Client::resume`]: its id, the last event yielded, and its resume
    /// token. Keep it with the events already shown (it is a credential:
    /// store it as privately as the conversation).
    pub fn resume_point(&self) -> ResumePoint {
        ResumePoint {
            session_id: self.session_id.clone(),
            after_seq: self.last_seq,
            resume_token: self.resume_token.clone(),
        }
    }

    /// Stops reading this stream here without cancelling the session, and
    /// returns where to pick it up (with [`Client::resume`], from this
    /// process or another). Dropping the stream instead cancels it.
    pub fn detach(mut self) -> ResumePoint {
        let point = self.resume_point();
        if !self.finished {
            self.finished = true;
            let _ = self.commands.send(Command::Detach {
                call_id: self.call_id,
            });
        }
        point
    }

    /// The session's id, as the gateway named it.
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// The seq of the last event yielded (0 before the first).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Asks the gateway to stop the generation. The stream then ends with
    /// a `CANCELLED` [`ClientError::Server`] (unless the call ended first).
    pub fn cancel(&self, reason: impl Into<String>) {
        if !self.finished {
            let _ = self.commands.send(Command::Cancel {
                call_id: self.call_id,
                reason: reason.into(),
            });
        }
    }

    /// Tells the gateway every event up to `last_seq` has been read: only
    /// events a caller has actually read are forgotten, so a
    /// [`resume_point`](Self::resume_point) is always resumable.
    fn ack(&mut self) {
        self.unacked = 0;
        let _ = self.commands.send(Command::Ack {
            call_id: self.call_id,
            session_id: self.session_id.clone(),
            seq: self.last_seq,
        });
    }

    async fn accepted(&mut self) -> Result<(), ClientError> {
        let result = match self.deliveries.recv().await {
            Some(Delivery::Accepted {
                session_id,
                resume_token,
            }) => {
                self.session_id = session_id;
                self.resume_token = resume_token;
                return Ok(());
            }
            Some(Delivery::Failed(e)) => Err(e),
            Some(Delivery::Event { .. }) => Err(ClientError::Protocol {
                message: "an event arrived before `accepted`".into(),
            }),
            None => Err(ClientError::Closed),
        };
        self.finished = true;
        result
    }
}

impl Stream for EventStream {
    type Item = Result<Event, ClientError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if this.finished {
                return Poll::Ready(None);
            }
            let delivery = match this.deliveries.poll_recv(cx) {
                Poll::Ready(delivery) => delivery,
                Poll::Pending => return Poll::Pending,
            };
            match delivery {
                Some(Delivery::Event { event, last }) => {
                    // Replayed events are not yielded twice; a replayed end
                    // (a resume at the terminal event's seq) ends the stream.
                    if event.seq <= this.last_seq {
                        if last {
                            this.finished = true;
                            return Poll::Ready(None);
                        }
                        continue;
                    }
                    this.last_seq = event.seq;
                    this.finished = last;
                    this.unacked += 1;
                    if last || this.unacked >= ACK_EVERY {
                        this.ack();
                    }
                    return Poll::Ready(Some(Ok(event)));
                }
                Some(Delivery::Failed(e)) => {
                    this.finished = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Some(Delivery::Accepted { .. }) => {}
                None => {
                    this.finished = true;
                    return Poll::Ready(Some(Err(ClientError::Closed)));
                }
            }
        }
    }
}

impl futures::stream::FusedStream for EventStream {
    fn is_terminated(&self) -> bool {
        self.finished
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.commands.send(Command::Forget {
                call_id: self.call_id,
            });
        }
    }
}

/// The input side of a session.pipe call.
///
/// Messages sent during a turn are held by the client and sent together
/// when the turn's `done` arrives; each batch starts one turn. Dropping the
/// sender ends the input, like [`end`](Self::end).
#[derive(Debug)]
pub struct PipeSender {
    call_id: u64,
    commands: mpsc::UnboundedSender<Command>,
    ended: bool,
}

impl PipeSender {
    /// Appends messages (tool results, a follow-up) to the conversation;
    /// they start the next turn.
    ///
    /// Fails only when the client has shut down; input for a call that has
    /// ended is dropped.
    pub fn send(&self, messages: Vec<Message>) -> Result<(), ClientError> {
        self.input(messages, false)
    }

    /// Sends the last messages: the call ends after the turn they start,
    /// with `done {finish_reason: "end_of_input"}`.
    pub fn send_and_end(mut self, messages: Vec<Message>) -> Result<(), ClientError> {
        self.ended = true;
        self.input(messages, true)
    }

    /// Ends the input: once the running turn (if any) is done, the call
    /// ends with `done {finish_reason: "end_of_input"}`.
    pub fn end(mut self) -> Result<(), ClientError> {
        self.ended = true;
        self.input(Vec::new(), true)
    }

    fn input(&self, messages: Vec<Message>, end: bool) -> Result<(), ClientError> {
        self.commands
            .send(Command::Input {
                call_id: self.call_id,
                messages,
                end,
            })
            .map_err(|_| ClientError::Closed)
    }
}

impl Drop for PipeSender {
    fn drop(&mut self) {
        if !self.ended {
            let _ = self.input(Vec::new(), true);
        }
    }
}

#[cfg(test)]
mod tests {
    use gtl_proto::Token;

    use super::*;

    #[tokio::test]
    async fn events_are_acked_as_they_are_read_every_64_and_at_the_end() {
        let (reply, deliveries) = mpsc::unbounded_channel();
        let (commands, mut sent) = mpsc::unbounded_channel();
        let mut events = EventStream::new(7, deliveries, commands);
        let accepted = Delivery::Accepted {
            session_id: "s_1".into(),
            resume_token: "rt".into(),
        };
        reply.send(accepted).unwrap();
        events.accepted().await.unwrap();
        for seq in 1..=130 {
            let event = Event {
                seq,
                body: Body::Token(Token::default()),
            };
            let last = seq == 130;
            reply.send(Delivery::Event { event, last }).unwrap();
        }
        // Delivered but unread: nothing is acked.
        assert!(sent.try_recv().is_err());
        for _ in 0..100 {
            events.next().await.unwrap().unwrap();
        }
        let point = events.resume_point();
        assert_eq!((point.after_seq, point.resume_token.as_str()), (100, "rt"));
        while events.next().await.is_some() {}
        let mut acks = Vec::new();
        while let Ok(Command::Ack {
            seq, session_id, ..
        }) = sent.try_recv()
        {
            assert_eq!(session_id, "s_1");
            acks.push(seq);
        }
        assert_eq!(acks, [64, 128, 130]);
    }
}
