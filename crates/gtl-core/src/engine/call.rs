//! A client's attachment to a session.

use std::sync::{Arc, LazyLock};

use gtl_proto::{ErrorCode, Input};

use super::{EngineError, MemoryBudget, Shared, now};
use crate::{AttachId, Transmit};

/// One client's view of a running or finished session: drains its events
/// and sends it acks, cancels and (session.pipe) input.
///
/// Dropping a `Call` is a disconnect: the generation goes on for the resume
/// window, and the owner may resume it from another connection.
#[derive(Debug)]
pub struct Call {
    shared: Arc<Shared>,
    attach: AttachId,
    resume_token: Option<String>,
}

/// What one [`Call::drain`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Drained {
    /// Events handed to the callback.
    pub events: usize,
    /// The session ended and the client has every event: the call is over.
    pub finished: bool,
    /// Another connection resumed the session, or it expired: this
    /// attachment gets nothing more. After a resume elsewhere the callback
    /// was handed one last control frame (seq 0): a `SESSION_MOVED` error.
    pub detached: bool,
}

impl Call {
    pub(super) fn new(shared: Arc<Shared>, attach: AttachId, resume_token: Option<String>) -> Self {
        Self {
            shared,
            attach,
            resume_token,
        }
    }

    /// The session's id.
    pub fn session_id(&self) -> &str {
        self.shared.id()
    }

    /// The secret that lets the owner resume; `Some` on the call that
    /// created the session, to be sent in `accepted`.
    pub fn resume_token(&self) -> Option<&str> {
        self.resume_token.as_deref()
    }

    /// Hands up to `max` pending events to `send`, borrowed from the log.
    pub fn drain(&self, max: usize, mut send: impl FnMut(Transmit<'_>)) -> Drained {
        let mut drained = Drained::default();
        let mut first_output = None;
        let relieved = {
            let mut guard = self.shared.lock();
            let state = &mut *guard;
            let session = &mut state.session;
            if session.attached() != Some(self.attach) || state.moved {
                drained.detached = true;
                if session.attached().is_some() || state.moved {
                    // Taken over by a resume elsewhere: this call ends with a
                    // frame saying so rather than in silence.
                    send(Transmit {
                        seq: 0,
                        body: &MOVED,
                        session_id: session.id(),
                    });
                    drained.events = 1;
                }
                return drained;
            }
            let was_full = !session.wants_events();
            while drained.events < max {
                let Some(transmit) = session.poll_transmit() else {
                    break;
                };
                if state.on_first_output.is_some() && is_output(transmit.body) {
                    first_output = state.on_first_output.take();
                }
                send(transmit);
                drained.events += 1;
            }
            drained.finished = session.is_finished() && session.sent_seq() == session.last_seq();
            was_full && session.wants_events()
        };
        if relieved {
            self.shared.to_driver.notify_one();
        }
        // After the batch is handed over, outside the lock.
        if let Some(hook) = first_output {
            hook.run();
        }
        drained
    }

    /// Waits until [`drain`](Self::drain) has something to do: events, the
    /// end of the session, or a detach.
    pub async fn ready(&self) {
        loop {
            let notified = self.shared.to_client.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let state = self.shared.lock();
                let session = &state.session;
                if session.attached() != Some(self.attach)
                    || state.moved
                    || session.has_transmit()
                    || (session.is_finished() && session.sent_seq() >= session.last_seq())
                {
                    return;
                }
            }
            notified.await;
        }
    }

    /// Whether this attachment gets nothing more: the session ended and
    /// everything was drained, or another connection took over.
    pub fn is_over(&self) -> bool {
        let state = self.shared.lock();
        let session = &state.session;
        session.attached() != Some(self.attach)
            || state.moved
            || (session.is_finished() && session.sent_seq() == session.last_seq())
    }

    /// Charges the events not yet delivered to this attachment to `budget`
    /// (its connection's), instead of any budget charged before; while it is
    /// spent, the generation pauses.
    pub fn charge_to(&self, budget: Arc<MemoryBudget>) {
        let mut state = self.shared.lock();
        if state.session.attached() == Some(self.attach) {
            state.charge_to(budget);
        }
    }

    /// The client has every event up to `seq`.
    pub fn ack(&self, seq: u64) {
        self.shared.lock().session.handle_ack(now(), seq);
    }

    /// Cancels the generation: the provider call is dropped and the client
    /// gets a final `CANCELLED` error.
    pub fn cancel(&self, reason: &str) {
        cancel(&self.shared, reason);
    }

    /// session.pipe: appends messages (and/or ends the input).
    pub fn input(&self, input: Input) -> Result<(), EngineError> {
        input_to(&self.shared, input)
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.shared
            .lock()
            .session
            .handle_disconnect(now(), self.attach);
    }
}

/// The control frame (seq 0) that ends a call whose session another
/// connection resumed.
static MOVED: LazyLock<gtl_proto::Body> = LazyLock::new(|| {
    gtl_proto::Body::Error(gtl_proto::Error {
        code: ErrorCode::SessionMoved as i32,
        message: "the session was resumed on another connection: its events go there now".into(),
        retryable: false,
        phase: gtl_proto::Phase::Unspecified as i32,
        retry_after_ms: 0,
    })
});

/// Whether `body` is output the client waits for (what time to first
/// token measures).
fn is_output(body: &gtl_proto::Body) -> bool {
    use gtl_proto::Body;
    matches!(body, Body::Token(_) | Body::ToolCall(_) | Body::Patch(_))
}

/// Asks the driver to cancel: it drops the provider's stream, then ends the
/// session with a CANCELLED error.
pub(super) fn cancel(shared: &Shared, reason: &str) {
    {
        let mut state = shared.lock();
        if state.session.is_finished() {
            return;
        }
        state.cancel = Some(reason.to_owned());
    }
    shared.to_driver.notify_one();
}

pub(super) fn input(shared: &Shared, input: Input) -> Result<(), EngineError> {
    input_to(shared, input)
}

fn input_to(shared: &Shared, input: Input) -> Result<(), EngineError> {
    {
        let mut state = shared.lock();
        if state.session.is_finished() {
            return Err(EngineError::new(
                ErrorCode::InvalidRequest,
                "the session has ended: start a new call",
            ));
        }
        if shared.mirror {
            return Err(EngineError::new(
                ErrorCode::InvalidRequest,
                "this session runs on another server of this deployment, and session.pipe input \
                 is taken only there: route the client back to it (load-balancer affinity)",
            ));
        }
        if state.input_ended {
            return Err(EngineError::new(
                ErrorCode::InvalidRequest,
                "input was already ended for this session",
            ));
        }
        state.input.extend(input.messages);
        state.input_ended |= input.end;
    }
    shared.to_driver.notify_one();
    Ok(())
}
