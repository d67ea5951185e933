//! The routing layer: one call over a route's targets, with retries,
//! failover before the first token and the route's policy after it.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use gtl_core::{EventStream, Provider, ProviderError};
use gtl_proto::types::Content;
use gtl_proto::{
    Body, CompletionRequest, ErrorCode, Message, Phase, ProviderInfo, Role, Status, Usage,
};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::plan::Plan;
use crate::route::{Budget, Route};
use crate::target::Target;
use crate::timeout::{Timed, is_output};
use crate::{AfterFirstToken, BackoffConfig, CallContext};

/// Events buffered between the routing task and the engine.
const CHANNEL: usize = 64;

/// A provider that serves each call from a route's targets.
#[derive(Debug)]
pub struct Routed {
    route: Arc<Route>,
    policy: AfterFirstToken,
    backoff: BackoffConfig,
    budget: Option<Budget>,
    context: CallContext,
}

impl Routed {
    pub(crate) fn new(
        route: Arc<Route>,
        policy: AfterFirstToken,
        backoff: BackoffConfig,
        budget: Option<Budget>,
        context: CallContext,
    ) -> Self {
        Self {
            route,
            policy,
            backoff,
            budget,
            context,
        }
    }
}

/// Whether another target (or another try) may succeed where this error
/// happened: the retryable codes, and a provider's broken stream.
pub(crate) fn fails_over(error: &ProviderError) -> bool {
    error.is_retryable() || error.code == ErrorCode::ProviderError
}

#[async_trait::async_trait]
impl Provider for Routed {
    fn name(&self) -> &str {
        self.route.name()
    }

    async fn models(&self) -> Result<ProviderInfo, ProviderError> {
        let target = self.route.targets.first().ok_or_else(no_targets)?;
        target.provider.models().await
    }

    async fn count_tokens(&self, mut request: CompletionRequest) -> Result<u64, ProviderError> {
        let target = self
            .route
            .order(self.budget)
            .into_iter()
            .next()
            .ok_or_else(no_targets)?;
        target.provider_name().clone_into(&mut request.provider);
        request.model.clone_from(&target.model);
        target.provider.count_tokens(request).await
    }

    async fn stream(&self, request: CompletionRequest) -> Result<EventStream, ProviderError> {
        let start = Instant::now();
        let total = start + self.route.timeouts.total;
        let deadline = self.context.deadline.map_or(total, |d| d.min(total));
        let mut call = Call {
            keys: self.context.keys.clone(),
            timing: self.context.timing.clone(),
            plan: Plan::new(
                self.route.order(self.budget),
                self.route.config.retries,
                self.backoff,
                deadline,
            ),
            route: self.route.clone(),
            policy: self.policy,
            request,
            partial: String::new(),
            sent_output: false,
            tool_output: false,
            usage: None,
        };
        tracing::debug!(
            route = %self.route.name(),
            subject = %self.context.subject,
            request_id = %self.context.request_id,
            attempt = self.context.attempt,
            "routed call"
        );
        // The first attempt runs before the stream exists, so an error that
        // ends the call at once is the caller's `Err`, as for any provider.
        let first = match call.plan.next(None) {
            Ok((target, _)) => target,
            Err(error) => return Err(error),
        };
        let (leg, failed) = match call.start(&first).await {
            Ok(leg) => (Ok(leg), None),
            Err(error) if fails_over(&error) && call.plan.has_next(&error) => {
                let status = call.retrying(&first, &error);
                (Err(error), Some(status))
            }
            Err(error) => return Err(error),
        };
        let (tx, mut rx) = mpsc::channel(CHANNEL);
        let driver = async move {
            if let Some(status) = failed
                && tx.send(status).await.is_err()
            {
                return;
            }
            call.run(leg, &tx).await;
        };
        // The driver runs inside the stream: dropping the stream (a cancel)
        // drops the upstream call with it.
        let driver = futures::stream::once(driver).filter_map(|()| std::future::ready(None));
        let events = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
        Ok(Box::pin(futures::stream::select(events, driver)))
    }
}

fn no_targets() -> ProviderError {
    ProviderError::new(ErrorCode::ModelNotFound, "the route has no usable target")
}

/// A started attempt.
struct Leg {
    target: Target,
    events: EventStream,
    started: Instant,
}

/// One routed call's state across its attempts.
struct Call {
    /// The caller's own provider keys.
    keys: Option<Arc<dyn crate::CallerKeys>>,
    /// Where attempts note their times for the call's metrics.
    timing: Option<Arc<crate::CallTiming>>,
    plan: Plan,
    route: Arc<Route>,
    policy: AfterFirstToken,
    request: CompletionRequest,
    /// The answer's text so far (what `continue` asks the next target to
    /// continue).
    partial: String,
    /// Whether the client has been sent output (for the final error's phase).
    sent_output: bool,
    /// Whether a tool call or patch was sent (text cannot continue those).
    tool_output: bool,
    /// Every leg's usage, summed.
    usage: Option<Usage>,
}

type Tx = mpsc::Sender<Body>;

impl Call {
    /// The request for the next attempt on `target`.
    fn leg_request(&self, target: &Target) -> CompletionRequest {
        let mut request = self.request.clone();
        target.provider_name().clone_into(&mut request.provider);
        request.model.clone_from(&target.model);
        if self.policy == AfterFirstToken::Continue && !self.partial.is_empty() {
            request.messages.push(Message {
                role: Role::Assistant as i32,
                content: Some(Content::Text(self.partial.clone())),
                ..Message::default()
            });
        }
        request
    }

    /// Starts an attempt on `target`, recording a failure in its breaker.
    async fn start(&self, target: &Target) -> Result<Leg, ProviderError> {
        let provider = match &self.keys {
            Some(keys) => keys
                .apply(&target.provider)?
                .unwrap_or_else(|| target.provider.clone()),
            None => target.provider.clone(),
        };
        let timed = Timed::new(provider, self.route.timeouts, Some(self.plan.deadline()));
        // Outside the timeouts, so a timed-out attempt counts as its
        // provider's error.
        let timed = crate::observe::Observed::new(
            Arc::new(timed),
            target.provider_name(),
            &target.metric_model,
            self.timing.clone(),
        );
        let started = Instant::now();
        match timed.stream(self.leg_request(target)).await {
            Ok(events) => Ok(Leg {
                target: target.clone(),
                events,
                started,
            }),
            Err(error) => {
                // A refused request (400, 401, ...) still shows the target up.
                target.stats.record(!fails_over(&error));
                tracing::info!(target = %target.label, error = %error, "attempt failed");
                Err(error)
            }
        }
    }

    fn retrying(&self, target: &Target, error: &ProviderError) -> Body {
        status("retrying", target, error)
    }

    /// Drives the call to its end from the first attempt's outcome,
    /// sending the client's events to `tx`.
    async fn run(mut self, first: Result<Leg, ProviderError>, tx: &Tx) {
        let (mut leg, mut last) = match first {
            Ok(leg) => (Some(leg), None),
            Err(error) => (None, Some(error)),
        };
        loop {
            let current = match leg.take() {
                Some(leg) => leg,
                None => match self.next_leg(last.take(), tx).await {
                    Ok(leg) => leg,
                    Err(error) => return self.fail(error, tx).await,
                },
            };
            match self.forward(current, tx).await {
                Ended::Done | Ended::Gone => return,
                Ended::Failed(error) => last = Some(error),
            }
        }
    }

    /// Starts attempts until one streams, waiting as the plan says and
    /// telling the client about each failure.
    async fn next_leg(
        &mut self,
        mut last: Option<ProviderError>,
        tx: &Tx,
    ) -> Result<Leg, ProviderError> {
        loop {
            let (target, wait) = self.plan.next(last.as_ref())?;
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            match self.start(&target).await {
                Ok(leg) => return Ok(leg),
                Err(error) if fails_over(&error) && self.plan.has_next(&error) => {
                    if tx.send(self.retrying(&target, &error)).await.is_err() {
                        return Err(error);
                    }
                    last = Some(error);
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Forwards one leg's events until it ends.
    async fn forward(&mut self, mut leg: Leg, tx: &Tx) -> Ended {
        let mut leg_output = false;
        loop {
            let body = leg.events.next().await.unwrap_or_else(|| {
                let phase = if leg_output {
                    Phase::AfterFirstToken
                } else {
                    Phase::BeforeFirstToken
                };
                ProviderError::new(
                    ErrorCode::ProviderError,
                    format!("`{}` ended its stream without finishing", leg.target.label),
                )
                .with_phase(phase)
                .to_event()
            });
            match body {
                Body::Usage(usage) => {
                    add_usage(self.usage.get_or_insert_with(Usage::default), &usage)
                }
                Body::Done(done) => {
                    leg.target.stats.record(true);
                    if let Some(usage) = self.usage.take()
                        && tx.send(Body::Usage(usage)).await.is_err()
                    {
                        return Ended::Gone;
                    }
                    let _ = tx.send(Body::Done(done)).await;
                    return Ended::Done;
                }
                Body::Error(error) => {
                    let error = ProviderError::from(error);
                    return self.failed(&leg.target, leg_output, error, tx).await;
                }
                body => {
                    if is_output(&body) {
                        if !leg_output {
                            leg.target.stats.record_ttft(leg.started.elapsed());
                        }
                        leg_output = true;
                        self.sent_output = true;
                        match &body {
                            Body::Token(token) => self.partial.push_str(&token.text),
                            _ => self.tool_output = true,
                        }
                    }
                    if tx.send(body).await.is_err() {
                        return Ended::Gone;
                    }
                }
            }
        }
    }

    /// Decides what a leg's error means for the call.
    async fn failed(
        &mut self,
        target: &Target,
        leg_output: bool,
        error: ProviderError,
        tx: &Tx,
    ) -> Ended {
        if fails_over(&error) {
            target.stats.record(false);
        } else {
            target.stats.record(true);
        }
        tracing::info!(target = %target.label, error = %error, after_output = leg_output, "leg failed");
        let go_on = fails_over(&error) && self.plan.has_next(&error);
        let state = match (leg_output, self.policy) {
            (false, _) if go_on => "retrying",
            (true, AfterFirstToken::Restart) if go_on => {
                self.partial.clear();
                self.tool_output = false;
                gtl_core::RESTARTED
            }
            // Text continues; a tool call cannot, so it restarts instead.
            (true, AfterFirstToken::Continue) if go_on && !self.tool_output => "continuing",
            (true, AfterFirstToken::Continue) if go_on => {
                self.partial.clear();
                self.tool_output = false;
                gtl_core::RESTARTED
            }
            _ => {
                self.fail(error, tx).await;
                return Ended::Done;
            }
        };
        if tx.send(status(state, target, &error)).await.is_err() {
            return Ended::Gone;
        }
        Ended::Failed(error)
    }

    /// Ends the call with `error` (after the usage so far).
    async fn fail(&mut self, error: ProviderError, tx: &Tx) {
        let phase = if self.sent_output {
            Phase::AfterFirstToken
        } else {
            Phase::BeforeFirstToken
        };
        if let Some(usage) = self.usage.take()
            && tx.send(Body::Usage(usage)).await.is_err()
        {
            return;
        }
        let _ = tx.send(error.with_phase(phase).to_event()).await;
    }
}

/// How forwarding a leg ended.
enum Ended {
    /// The call is over (done, or a final error was sent).
    Done,
    /// The client went away.
    Gone,
    /// The leg failed and the call goes on with the next attempt.
    Failed(ProviderError),
}

fn status(state: &str, target: &Target, error: &ProviderError) -> Body {
    Body::Status(Status {
        state: state.to_owned(),
        provider: target.provider_name().to_owned(),
        model: target.model.clone(),
        reason: error.to_string(),
    })
}

/// Adds one leg's usage to the call's: both legs are paid for.
fn add_usage(into: &mut Usage, from: &Usage) {
    into.tokens_in += from.tokens_in;
    into.tokens_out += from.tokens_out;
    into.cost += from.cost;
    into.cached_tokens += from.cached_tokens;
}

/// How long the plan waits before a retry on the same target.
pub(crate) fn retry_wait(backoff: Duration, retry_after: Option<Duration>) -> Duration {
    retry_after.map_or(backoff, |after| after.max(backoff))
}
