//! The timeout layer: a provider whose calls give up on a silent upstream.

use std::sync::Arc;

use futures::StreamExt as _;
use gtl_core::{EventStream, Provider, ProviderError, Wrapper};
use gtl_proto::{Body, CompletionRequest, ErrorCode, Phase};
use tokio::time::{Instant, timeout_at};

use crate::Timeouts;

/// A provider whose streams end with `PROVIDER_TIMEOUT` when the upstream
/// does not answer, sends no first token, or falls silent, in time; and
/// that never runs past `deadline`.
#[derive(Debug, Clone)]
pub struct Timed {
    inner: Arc<dyn Provider>,
    timeouts: Timeouts,
    deadline: Option<Instant>,
}

impl Timed {
    /// `inner` under `timeouts`, and stopped at `deadline` if given.
    pub fn new(inner: Arc<dyn Provider>, timeouts: Timeouts, deadline: Option<Instant>) -> Self {
        Self {
            inner,
            timeouts,
            deadline,
        }
    }
}

/// Whether `body` is output a client keeps (so errors after it are
/// after-first-token).
pub(crate) fn is_output(body: &Body) -> bool {
    matches!(body, Body::Token(_) | Body::ToolCall(_) | Body::Patch(_))
}

#[async_trait::async_trait]
impl Wrapper for Timed {
    fn inner(&self) -> &Arc<dyn Provider> {
        &self.inner
    }

    async fn wrap(&self, request: CompletionRequest) -> Result<EventStream, ProviderError> {
        let start = Instant::now();
        let deadline = self.deadline.unwrap_or(start + self.timeouts.total);
        let name = self.inner.name().to_owned();
        let connect_by = (start + self.timeouts.connect).min(deadline);
        let events = match timeout_at(connect_by, self.inner.stream(request)).await {
            Ok(started) => started?,
            Err(_) => {
                return Err(ProviderError::new(
                    ErrorCode::ProviderTimeout,
                    format!(
                        "`{name}` did not answer within {:?}",
                        connect_by.saturating_duration_since(start)
                    ),
                ));
            }
        };
        let watch = Watch {
            events,
            name,
            timeouts: self.timeouts,
            first_by: (start + self.timeouts.first_token).min(deadline),
            deadline,
            output: false,
            done: false,
        };
        Ok(Box::pin(futures::stream::unfold(watch, Watch::next)))
    }
}

/// A stream under watch.
struct Watch {
    events: EventStream,
    name: String,
    timeouts: Timeouts,
    first_by: Instant,
    deadline: Instant,
    output: bool,
    done: bool,
}

impl Watch {
    async fn next(mut self) -> Option<(Body, Self)> {
        if self.done {
            return None;
        }
        let limit = if self.output {
            (Instant::now() + self.timeouts.idle).min(self.deadline)
        } else {
            self.first_by
        };
        match timeout_at(limit, self.events.next()).await {
            Ok(Some(body)) => {
                self.output |= is_output(&body);
                self.done = body.is_terminal();
                Some((body, self))
            }
            Ok(None) => None,
            Err(_) => {
                self.done = true;
                let name = &self.name;
                let message = if limit >= self.deadline {
                    format!("`{name}`: the call's total time is up")
                } else if self.output {
                    format!("`{name}` sent nothing for {:?}", self.timeouts.idle)
                } else {
                    format!(
                        "`{name}` sent no first token within {:?}",
                        self.timeouts.first_token
                    )
                };
                let phase = if self.output {
                    Phase::AfterFirstToken
                } else {
                    Phase::BeforeFirstToken
                };
                let error =
                    ProviderError::new(ErrorCode::ProviderTimeout, message).with_phase(phase);
                Some((error.to_event(), self))
            }
        }
    }
}
