//! The [`Provider`] trait every AI backend adapter implements.
//!
//! An adapter turns a [`CompletionRequest`] into a stream of normalised GTL
//! events: any `status`, `token`, `tool_call`, `patch` and `usage` events,
//! ending with exactly one `done` or `error`. A failure before the stream
//! exists (bad request, unknown model, rejected key, rate limit on the first
//! request) is returned as an `Err` from [`Provider::stream`]; a failure
//! after it started is an `error` event, the stream's last item.
//!
//! Unary calls use [`complete`], which drains the stream through
//! [`Completion`]: there is one code path for both.

use std::fmt;
use std::pin::Pin;
use std::time::Duration;

use futures::{Stream, StreamExt as _};
use gtl_proto::{Body, CompletionRequest, ErrorCode, Phase, ProviderInfo};

use crate::Completion;

/// A provider's normalised event stream.
///
/// Its last item is a `done` or an `error` event. Dropping the stream
/// cancels the provider call.
pub type EventStream = Pin<Box<dyn Stream<Item = Body> + Send>>;

/// An AI backend: OpenAI, Anthropic, the built-in echo provider, ...
///
/// Implementations are shared between tasks (`Arc<dyn Provider>`), so they
/// keep per-call state inside the returned stream.
#[async_trait::async_trait]
pub trait Provider: fmt::Debug + Send + Sync + 'static {
    /// The provider's name as used in requests and routing, e.g. `"openai"`.
    fn name(&self) -> &str;

    /// The models this provider serves and what they support.
    async fn models(&self) -> Result<ProviderInfo, ProviderError>;

    /// Starts a completion and returns its event stream.
    ///
    /// Errors that happen before any event exists are returned here, with
    /// [`Phase::BeforeFirstToken`], so a router may fail over. Errors after
    /// the stream started are its final `error` event.
    async fn stream(&self, request: CompletionRequest) -> Result<EventStream, ProviderError>;

    /// This provider, calling with `key` instead of its configured
    /// credential: a caller's own provider key, for one call. The key lives
    /// only in the returned value. Providers without a key to replace (a
    /// local model, one signed with cloud credentials) answer
    /// `INVALID_REQUEST` (the default).
    fn with_api_key(&self, key: &str) -> Result<std::sync::Arc<dyn Provider>, ProviderError> {
        let _ = key;
        Err(takes_no_key(self.name()))
    }

    /// How many input tokens `request` is, counted as the provider counts
    /// them for billing, without generating anything.
    ///
    /// Providers without a way to count answer `INVALID_REQUEST` (the
    /// default): an estimate from another tokenizer would be a wrong
    /// number presented as the provider's.
    async fn count_tokens(&self, request: CompletionRequest) -> Result<u64, ProviderError> {
        Err(ProviderError::new(
            ErrorCode::InvalidRequest,
            format!(
                "provider `{}` cannot count tokens for `{}`: send the request and read its usage",
                self.name(),
                request.model
            ),
        ))
    }
}

fn takes_no_key(provider: &str) -> ProviderError {
    ProviderError::new(
        ErrorCode::InvalidRequest,
        format!(
            "provider `{provider}` does not take a caller's own key: leave it out of provider_keys"
        ),
    )
}

/// A provider in front of another that changes only how its calls run (a
/// timeout, a cache, metrics, a span, an audit record): its name, models
/// and token counts are the inner provider's. Implementing it implements
/// [`Provider`].
#[async_trait::async_trait]
pub trait Wrapper: fmt::Debug + Send + Sync + 'static {
    /// The provider behind this one.
    fn inner(&self) -> &std::sync::Arc<dyn Provider>;

    /// [`Provider::stream`], through this wrapper.
    async fn wrap(&self, request: CompletionRequest) -> Result<EventStream, ProviderError>;

    /// [`Provider::with_api_key`]: by default, not taken (a wrapper that
    /// can rebuild itself around the keyed inner provider says so).
    fn wrap_with_api_key(&self, key: &str) -> Result<std::sync::Arc<dyn Provider>, ProviderError> {
        let _ = key;
        Err(takes_no_key(self.inner().name()))
    }
}

#[async_trait::async_trait]
impl<W: Wrapper> Provider for W {
    fn name(&self) -> &str {
        self.inner().name()
    }

    async fn models(&self) -> Result<ProviderInfo, ProviderError> {
        self.inner().models().await
    }

    async fn stream(&self, request: CompletionRequest) -> Result<EventStream, ProviderError> {
        self.wrap(request).await
    }

    fn with_api_key(&self, key: &str) -> Result<std::sync::Arc<dyn Provider>, ProviderError> {
        self.wrap_with_api_key(key)
    }

    async fn count_tokens(&self, request: CompletionRequest) -> Result<u64, ProviderError> {
        self.inner().count_tokens(request).await
    }
}

/// Runs `request` on `provider` and aggregates its events into one answer.
///
/// This drains [`Provider::stream`] through [`Completion::push`] until the
/// terminal event, then returns [`Completion::into_result`]: an `error`
/// event, or a stream that ends without `done`, becomes an `Err`.
pub async fn complete(
    provider: &dyn Provider,
    request: CompletionRequest,
) -> Result<Completion, ProviderError> {
    let mut events = provider.stream(request).await?;
    let mut completion = Completion::default();
    while let Some(body) = events.next().await {
        completion.push(&body);
        if body.is_terminal() {
            break;
        }
    }
    completion.into_result()
}

/// A provider failure, in GTL's terms.
///
/// The message is meant for people; callers match on [`code`](Self::code).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message} ({code})")]
#[non_exhaustive]
pub struct ProviderError {
    /// What went wrong.
    pub code: ErrorCode,
    /// A human-readable description (lowercase, no trailing period).
    pub message: String,
    /// How long to wait before retrying, when the provider said so.
    pub retry_after: Option<Duration>,
    /// Whether output was already sent when the error happened.
    pub phase: Phase,
}

impl ProviderError {
    /// An error with the given code and message, before the first token
    /// and without a retry delay.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after: None,
            phase: Phase::BeforeFirstToken,
        }
    }

    /// Sets how long the caller should wait before retrying.
    #[must_use]
    pub fn with_retry_after(mut self, retry_after: Duration) -> Self {
        self.retry_after = Some(retry_after);
        self
    }

    /// Sets the phase the error happened in.
    #[must_use]
    pub fn with_phase(mut self, phase: Phase) -> Self {
        self.phase = phase;
        self
    }

    /// Whether retrying the same request later may succeed (by its code).
    pub fn is_retryable(&self) -> bool {
        self.code.is_retryable()
    }

    /// The error as the `error` event that ends a stream.
    pub fn to_event(&self) -> Body {
        Body::Error(self.into())
    }
}

impl From<&ProviderError> for gtl_proto::Error {
    fn from(error: &ProviderError) -> Self {
        let retry_after_ms = error
            .retry_after
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Self {
            code: error.code as i32,
            message: error.message.clone(),
            retryable: error.is_retryable(),
            phase: error.phase as i32,
            retry_after_ms,
        }
    }
}

impl From<ProviderError> for gtl_proto::Error {
    fn from(error: ProviderError) -> Self {
        Self::from(&error)
    }
}

/// Reads an `error` event back. An unset or unknown code becomes
/// `INTERNAL`; the event's `retryable` flag is not kept, since
/// [`ProviderError::is_retryable`] follows the code.
impl From<gtl_proto::Error> for ProviderError {
    fn from(error: gtl_proto::Error) -> Self {
        let code = match error.code() {
            ErrorCode::Unspecified => ErrorCode::Internal,
            code => code,
        };
        Self {
            code,
            phase: error.phase(),
            retry_after: (error.retry_after_ms != 0)
                .then(|| Duration::from_millis(error.retry_after_ms)),
            message: error.message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_round_trip_through_events() {
        let error = ProviderError::new(ErrorCode::RateLimit, "too many requests")
            .with_retry_after(Duration::from_millis(2500))
            .with_phase(Phase::AfterFirstToken);
        let Body::Error(event) = error.to_event() else {
            panic!("to_event must give an error event");
        };
        assert_eq!(event.code(), ErrorCode::RateLimit);
        assert!(event.retryable);
        assert_eq!(event.retry_after_ms, 2500);
        assert_eq!(event.phase(), Phase::AfterFirstToken);
        assert_eq!(ProviderError::from(event), error);
    }

    #[test]
    fn an_unset_code_reads_back_as_internal() {
        let error = ProviderError::from(gtl_proto::Error::default());
        assert_eq!(error.code, ErrorCode::Internal);
        assert_eq!(error.retry_after, None);
    }

    #[test]
    fn display_names_the_code() {
        let error = ProviderError::new(ErrorCode::ModelNotFound, "unknown model `x`");
        assert_eq!(error.to_string(), "unknown model `x` (MODEL_NOT_FOUND)");
        assert!(!error.is_retryable());
    }
}
