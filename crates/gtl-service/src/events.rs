//! A call as a sequence of event batches, for transports that carry one
//! call per request or stream (SSE, plain HTTP, gRPC, QUIC streams) rather
//! than framing many calls themselves.

use std::sync::Arc;

use futures::{Stream, StreamExt as _};
use gtl_core::{Call, MemoryBudget, Transmit};
use gtl_proto::{Frame, Input};

use crate::CallError;

/// Events drained per batch before other work gets a turn.
pub const BATCH: usize = 128;

/// Drains one call batch by batch, straight from its session's log.
#[derive(Debug)]
pub struct CallEvents {
    call: Arc<Call>,
    over: bool,
}

impl CallEvents {
    /// The events of `call`, from where its attachment starts.
    pub fn new(call: Call) -> Self {
        Self {
            call: Arc::new(call),
            over: false,
        }
    }

    /// The session's id.
    pub fn session_id(&self) -> &str {
        self.call.session_id()
    }

    /// The resume token, on the call that created the session.
    pub fn resume_token(&self) -> Option<&str> {
        self.call.resume_token()
    }

    /// The client has every event up to `seq`: the session may forget them.
    pub fn ack(&self, seq: u64) {
        self.call.ack(seq);
    }

    /// Stops the generation; the call ends with `CANCELLED`.
    pub fn cancel(&self, reason: &str) {
        self.call.cancel(reason);
    }

    /// session.pipe input for this call's session.
    pub fn input(&self, input: Input) -> Result<(), CallError> {
        Ok(self.call.input(input)?)
    }

    /// Charges the call's undelivered events to `budget` (a connection's).
    pub fn charge_to(&self, budget: Arc<MemoryBudget>) {
        self.call.charge_to(budget);
    }

    /// Waits for events and hands up to [`BATCH`] of them to `each`,
    /// borrowed from the log. `None` once the call is over: its terminal
    /// event was handed out, or another connection resumed the session.
    pub async fn next_batch(&mut self, mut each: impl FnMut(Transmit<'_>)) -> Option<usize> {
        loop {
            if self.over {
                return None;
            }
            self.call.ready().await;
            let drained = self.call.drain(BATCH, &mut each);
            self.over = drained.finished || drained.detached;
            if drained.events > 0 {
                return Some(drained.events);
            }
        }
    }

    /// Reads the call to its end and folds its events into one answer
    /// (unary APIs), acknowledging them all.
    pub async fn complete(&mut self) -> gtl_core::Completion {
        let mut completion = gtl_core::Completion::default();
        let mut last = 0;
        while self
            .next_batch(|t| {
                completion.push(t.body);
                last = t.seq;
            })
            .await
            .is_some()
        {}
        self.ack(last);
        completion
    }

    /// The events as owned frames on call `call_id`, for APIs that need
    /// them owned (each is a copy of the logged event).
    pub fn into_frames(self, call_id: u64) -> impl Stream<Item = Frame> + Send {
        futures::stream::unfold(self, move |mut events| async move {
            let mut batch = Vec::new();
            events
                .next_batch(|t| {
                    batch.push(Frame {
                        call_id,
                        session_id: t.session_id.to_owned(),
                        seq: t.seq,
                        body: Some(t.body.clone()),
                    });
                })
                .await?;
            Some((futures::stream::iter(batch), events))
        })
        .flatten()
    }
}
