//! The per-call task that drives a provider stream into a session.

use std::sync::Arc;

use futures::{FutureExt as _, StreamExt as _};
use gtl_proto::types::Content;
use gtl_proto::{Body, CompletionRequest, Done, ErrorCode, Message, Role, ToolCall};

use tokio::sync::mpsc;

use super::persist::{Job, mark_dirty};
use super::{MemoryBudget, Shared, now};
use crate::{Command, Provider, ProviderError};
use std::time::Duration;

/// Events taken from the provider per wakeup: one lock, one notify and one
/// store transaction per batch rather than per token.
const BATCH: usize = 256;

/// How a turn ended.
enum Turn {
    /// The session is over (terminal event, cancel, expiry).
    Over,
    /// session.pipe: the turn's `done` arrived; the conversation goes on.
    Continue(Message),
}

pub(super) async fn drive(
    shared: Arc<Shared>,
    jobs: mpsc::UnboundedSender<Job>,
    provider: Arc<dyn Provider>,
    mut request: CompletionRequest,
) {
    let pipe = request.pipe;
    shared.lock().session.set_pipe(pipe);
    loop {
        match run_turn(&shared, &jobs, provider.as_ref(), request.clone(), pipe).await {
            Turn::Over => break,
            Turn::Continue(assistant) => {
                request.messages.push(assistant);
                match next_input(&shared, &jobs).await {
                    Some(messages) => request.messages.extend(messages),
                    None => break,
                }
            }
        }
    }
    mark_dirty(&shared, &jobs);
    shared.to_client.notify_waiters();
}

async fn run_turn(
    shared: &Arc<Shared>,
    jobs: &mpsc::UnboundedSender<Job>,
    provider: &dyn Provider,
    request: CompletionRequest,
    pipe: bool,
) -> Turn {
    // A cancel while the provider is still connecting drops the attempt.
    let started = {
        let notified = shared.to_driver.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if cancel_if_requested(shared) {
            return Turn::Over;
        }
        let stream = provider.stream(request);
        tokio::pin!(stream);
        loop {
            tokio::select! {
                started = &mut stream => break started,
                () = &mut notified => {
                    if cancel_if_requested(shared) {
                        return Turn::Over;
                    }
                    notified.set(shared.to_driver.notified());
                    notified.as_mut().enable();
                }
            }
        }
    };
    let mut events = match started {
        Ok(events) => events,
        Err(e) => {
            push(
                shared,
                std::iter::once(e.to_event()),
                &mut Transcript::off(),
            );
            return Turn::Over;
        }
    };
    let mut transcript = if pipe {
        Transcript::on()
    } else {
        Transcript::off()
    };
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        // Backpressure and commands first.
        let notified = shared.to_driver.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if shared.lock().cancel.is_some() {
            // Drop the provider's stream first, so the provider has let go
            // by the time the client sees CANCELLED.
            drop(events);
            cancel_if_requested(shared);
            return Turn::Over;
        }
        let server_room = shared.budget.room();
        tokio::pin!(server_room);
        server_room.as_mut().enable();
        let blocked = {
            let mut state = shared.lock();
            if state.stopping
                || state.session.poll_command() == Some(Command::StopProvider)
                || state.session.is_finished()
            {
                return Turn::Over;
            }
            if !state.session.wants_events() {
                Some(None)
            } else {
                state.conn.clone().filter(|conn| !conn.has_room()).map(Some)
            }
        };
        // The server's budget is checked after the lock is released, so any
        // shedding below is already accounted for.
        let blocked = match blocked {
            None if !shared.budget.has_room() => {
                // What this client already has goes before pausing.
                shared.lock().session.shed_delivered();
                (!shared.budget.has_room()).then_some(None)
            }
            other => other,
        };
        if let Some(conn) = blocked {
            wait_for_room(&mut notified, &mut server_room, conn).await;
            continue;
        }
        let first = tokio::select! {
            biased;
            () = &mut notified => continue,
            first = events.next() => first,
        };
        let Some(first) = first else {
            let error = ProviderError::new(
                ErrorCode::ProviderError,
                "the provider's stream ended without done",
            );
            let error = error.with_phase(shared.lock().session.phase());
            push(shared, std::iter::once(error.to_event()), &mut transcript);
            return Turn::Over;
        };
        batch.push(first);
        while batch.len() < BATCH {
            match events.next().now_or_never() {
                Some(Some(body)) => batch.push(body),
                _ => break,
            }
        }
        let outcome = push(shared, batch.drain(..), &mut transcript);
        mark_dirty(shared, jobs);
        match outcome {
            Pushed::More => {}
            Pushed::Over => return Turn::Over,
            Pushed::TurnDone => return Turn::Continue(transcript.into_message()),
        }
    }
}

/// Waits until the session may take events again: its client drained or
/// cancelled, or a budget it is charged to has room. A release that slips
/// between a budget check and this wait is caught by the periodic recheck.
async fn wait_for_room(
    notified: &mut std::pin::Pin<&mut tokio::sync::futures::Notified<'_>>,
    server_room: &mut std::pin::Pin<&mut tokio::sync::futures::Notified<'_>>,
    conn: Option<Arc<MemoryBudget>>,
) {
    const RECHECK: Duration = Duration::from_millis(250);
    let conn_room = async {
        match &conn {
            Some(conn) => conn.room().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = notified.as_mut() => {}
        () = server_room.as_mut() => {}
        () = conn_room => {}
        () = tokio::time::sleep(RECHECK) => {}
    }
}

/// Ends the session with CANCELLED if the client asked; returns whether it did.
fn cancel_if_requested(shared: &Shared) -> bool {
    let cancelled = {
        let mut state = shared.lock();
        let Some(reason) = state.cancel.take() else {
            return false;
        };
        let cancelled = state.session.handle_cancel(now(), &reason).is_some();
        if cancelled {
            state.outcome = Some(crate::Outcome::Failed {
                code: ErrorCode::Cancelled,
            });
        }
        cancelled
    };
    if cancelled {
        shared.to_client.notify_waiters();
    }
    true
}

enum Pushed {
    More,
    Over,
    TurnDone,
}

/// Logs a batch of provider events and wakes the client once.
fn push(shared: &Shared, batch: impl Iterator<Item = Body>, transcript: &mut Transcript) -> Pushed {
    let mut outcome = Pushed::More;
    {
        let mut state = shared.lock();
        let now = now();
        for body in batch {
            transcript.record(&body);
            let turn_done = matches!(body, Body::Done(_));
            let ending = crate::Outcome::from_terminal(&body)
                .filter(|_| !turn_done || !state.session.is_pipe());
            if state.session.handle_event(now, body).is_err() {
                outcome = Pushed::Over;
                break;
            }
            if state.session.is_finished() {
                state.outcome = ending;
                outcome = Pushed::Over;
                break;
            }
            if turn_done {
                outcome = if state.input_ended && state.input.is_empty() {
                    // The client ended its input: this turn was the last.
                    end_of_input(&mut state);
                    Pushed::Over
                } else {
                    Pushed::TurnDone
                };
                break;
            }
        }
    }
    shared.to_client.notify_waiters();
    outcome
}

/// The finish reason of a pipe call's own last `done`.
pub(super) const END_OF_INPUT: &str = "end_of_input";

/// session.pipe: ends the call once the client ended its input and no turn
/// is left to run, with a `done` of its own after the last turn's: a client
/// tells the call's end from a turn's by its `end_of_input`.
fn end_of_input(state: &mut super::SharedState) {
    state.session.set_pipe(false);
    let done = Body::Done(Done {
        finish_reason: END_OF_INPUT.into(),
    });
    state.outcome = crate::Outcome::from_terminal(&done);
    let _ = state.session.handle_event(now(), done);
}

/// session.pipe: waits for the client's next messages; `None` when the
/// session ended instead.
async fn next_input(
    shared: &Arc<Shared>,
    jobs: &mpsc::UnboundedSender<Job>,
) -> Option<Vec<Message>> {
    loop {
        let notified = shared.to_driver.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if cancel_if_requested(shared) {
            return None;
        }
        {
            let mut state = shared.lock();
            if state.stopping
                || state.session.is_finished()
                || state.session.poll_command().is_some()
            {
                return None;
            }
            if !state.input.is_empty() {
                return Some(std::mem::take(&mut state.input));
            }
            if state.input_ended {
                end_of_input(&mut state);
                drop(state);
                mark_dirty(shared, jobs);
                shared.to_client.notify_waiters();
                return None;
            }
        }
        notified.await;
    }
}

/// session.pipe: what the assistant said in the current turn, to put in
/// the conversation of the next one.
struct Transcript {
    on: bool,
    text: String,
    tool_calls: Vec<ToolCall>,
}

impl Transcript {
    fn on() -> Self {
        Self {
            on: true,
            text: String::new(),
            tool_calls: Vec::new(),
        }
    }

    fn off() -> Self {
        Self {
            on: false,
            text: String::new(),
            tool_calls: Vec::new(),
        }
    }

    fn record(&mut self, body: &Body) {
        if !self.on {
            return;
        }
        match body {
            Body::Token(token) => self.text.push_str(&token.text),
            Body::ToolCall(call) => self.tool_calls.push(call.clone()),
            // The turn's answer starts again on another provider.
            Body::Status(status) if status.state == crate::completion::RESTARTED => {
                self.text.clear();
                self.tool_calls.clear();
            }
            _ => {}
        }
    }

    fn into_message(self) -> Message {
        Message {
            role: Role::Assistant as i32,
            content: (!self.text.is_empty()).then_some(Content::Text(self.text)),
            tool_calls: self.tool_calls,
            ..Message::default()
        }
    }
}
