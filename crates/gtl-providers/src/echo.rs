//! The built-in `echo` provider: deterministic, keyless, the test workhorse.
//!
//! It streams the text of the request's last non-assistant message (the
//! user's turn, or a tool result in `session.pipe`) back, one word per
//! `token` event. A word keeps its trailing whitespace (and the first one
//! any leading whitespace), so the tokens concatenate to the input exactly.
//! Text parts of a multi-part message are concatenated; images are ignored.
//!
//! A call yields `status {state: "streaming", provider: "echo", model:
//! "echo"}`, the tokens, `usage {tokens_in, tokens_out, cost: 0}` and `done
//! {finish_reason: "stop"}`. `tokens_in` is the number of whitespace-separated
//! words in all input messages; `tokens_out` the number of `token` events.
//! `max_tokens`, when set, cuts the output and finishes with `"length"`.
//!
//! # Knobs
//!
//! Behaviour for tests and load tests is set per request, in `metadata`
//! under keys prefixed `echo.`, or in the model name as
//! `echo:key=value,key=value` (same keys without the prefix). Metadata wins
//! over the model name. An unknown `echo.` key or a bad value fails the call
//! with `INVALID_REQUEST`.
//!
//! | key | value | effect |
//! |---|---|---|
//! | `delay_ms` | ms ≤ 60,000, default 0 | wait this long (tokio timer) before each token; 0 never sleeps |
//! | `tokens` | N ≤ 10,000,000 | send N generated tokens instead of echoing |
//! | `token_bytes` | B in 1..=1048576, default 4 | size of each generated token (needs `tokens`): B-1 letters and a space |
//! | `tool_call` | function name | send no tokens but one `tool_call` (id `call_0`, arguments `{"text":"<echoed text>"}`), then `done` with `"tool_calls"`; when the last message is a tool result, echo it instead (as a model answers a tool result) |
//! | `error` | an error code name, e.g. `RATE_LIMIT` | fail the call with this code |
//! | `error_after` | k, default 0 | 0: `stream` returns `Err` (before the first token); k > 0: an `error` event after min(k, token count) tokens ends the stream |
//! | `retry_after_ms` | ms | the injected error's retry delay (needs `error`) |
//! | `stall_after` | k | after min(k, token count) tokens the stream never yields again; dropping it cancels |
//!
//! The only model is `echo`; an empty model name means `echo` too. Any other
//! name fails with `MODEL_NOT_FOUND`.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures::Stream;
use gtl_core::{EventStream, Provider, ProviderError};
use gtl_proto::types::{Content, Part};
use gtl_proto::{
    Body, CompletionRequest, Done, ErrorCode, FunctionCall, Message, ModelInfo, Phase,
    ProviderInfo, Role, Status, Token, ToolCall, Usage,
};

/// The provider's name and its one model's name.
const ECHO: &str = "echo";
/// The metadata key prefix of the knobs.
const KNOB_PREFIX: &str = "echo.";
/// The largest generated token, in bytes.
const MAX_TOKEN_BYTES: usize = 1 << 20;
/// The most tokens one call may ask to be generated.
const MAX_TOKENS: u64 = 10_000_000;
/// The longest delay before each token, in milliseconds.
const MAX_DELAY_MS: u64 = 60_000;
/// The size of a generated token when `token_bytes` is not given.
const DEFAULT_TOKEN_BYTES: usize = 4;

/// The built-in `echo` provider. See the [module docs](self) for what it
/// sends and the knobs that change it.
///
/// Clones share their [`EchoStats`] counters.
#[derive(Debug, Clone, Default)]
pub struct EchoProvider {
    counters: Arc<Counters>,
}

/// Counts of the streams an [`EchoProvider`] (and its clones) produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EchoStats {
    /// Streams returned by [`Provider::stream`].
    pub started: u64,
    /// Streams that yielded their terminal event (`done` or `error`).
    pub completed: u64,
    /// Streams dropped before their terminal event (cancelled).
    pub dropped: u64,
    /// Calls [`Provider::stream`] refused with an `Err`.
    pub rejected: u64,
}

#[derive(Debug, Default)]
struct Counters {
    started: AtomicU64,
    completed: AtomicU64,
    dropped: AtomicU64,
    rejected: AtomicU64,
}

impl EchoProvider {
    /// The provider's name, `"echo"`.
    pub const NAME: &'static str = ECHO;

    /// A new provider with its counters at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// A snapshot of the stream counters.
    pub fn stats(&self) -> EchoStats {
        let c = &self.counters;
        EchoStats {
            started: c.started.load(Ordering::Acquire),
            completed: c.completed.load(Ordering::Acquire),
            dropped: c.dropped.load(Ordering::Acquire),
            rejected: c.rejected.load(Ordering::Acquire),
        }
    }
}

#[async_trait::async_trait]
impl Provider for EchoProvider {
    fn name(&self) -> &str {
        ECHO
    }

    async fn models(&self) -> Result<ProviderInfo, ProviderError> {
        Ok(ProviderInfo {
            provider: ECHO.to_owned(),
            models: vec![ModelInfo {
                name: ECHO.to_owned(),
                // Echo has no real limits; these are what it advertises.
                context_window: 1 << 20,
                max_tokens: 1 << 20,
                supports_streaming: true,
                supports_functions: true,
                supports_vision: false,
                cost_per_1k_input: 0.0,
                cost_per_1k_output: 0.0,
                health: String::new(),
            }],
        })
    }

    /// The `tokens_in` its answer would report: whitespace-separated words.
    async fn count_tokens(&self, request: CompletionRequest) -> Result<u64, ProviderError> {
        Ok(tokens_in(&request))
    }

    async fn stream(&self, request: CompletionRequest) -> Result<EventStream, ProviderError> {
        match Plan::new(&request) {
            Ok(plan) => {
                self.counters.started.fetch_add(1, Ordering::AcqRel);
                let generator = Generator {
                    plan,
                    emitted: 0,
                    stage: Stage::Status,
                };
                let events = futures::stream::unfold(generator, |mut generator| async move {
                    let body = generator.next().await?;
                    Some((body, generator))
                });
                Ok(Box::pin(Tracked {
                    inner: Box::pin(events),
                    counters: Arc::clone(&self.counters),
                    ended: false,
                }))
            }
            Err(error) => {
                self.counters.rejected.fetch_add(1, Ordering::AcqRel);
                Err(error)
            }
        }
    }
}

/// The knobs of one call, parsed.
#[derive(Debug, Default)]
struct Knobs {
    delay: Duration,
    tokens: Option<u64>,
    token_bytes: Option<usize>,
    tool_call: Option<String>,
    error: Option<ErrorCode>,
    error_after: Option<u64>,
    retry_after: Option<Duration>,
    stall_after: Option<u64>,
}

impl Knobs {
    /// Parses the model name's knobs, then the metadata's over them.
    fn from_request(request: &CompletionRequest) -> Result<Self, ProviderError> {
        let mut knobs = Self::default();
        match request.model.as_str() {
            "" | ECHO => {}
            model => {
                let Some(spec) = model.strip_prefix("echo:") else {
                    return Err(ProviderError::new(
                        ErrorCode::ModelNotFound,
                        format!("echo has no model `{model}`; its one model is `echo`"),
                    ));
                };
                for pair in spec.split(',').filter(|pair| !pair.is_empty()) {
                    let Some((key, value)) = pair.split_once('=') else {
                        return Err(invalid(format!("model knob `{pair}` is not key=value")));
                    };
                    knobs.set(key, value)?;
                }
            }
        }
        // Sorted, so that the first bad knob reported does not depend on
        // the map's order.
        let from_metadata: BTreeMap<&str, &str> = request
            .metadata
            .iter()
            .filter_map(|(key, value)| Some((key.strip_prefix(KNOB_PREFIX)?, value.as_str())))
            .collect();
        for (key, value) in from_metadata {
            knobs.set(key, value)?;
        }
        knobs.check()?;
        Ok(knobs)
    }

    fn set(&mut self, key: &str, value: &str) -> Result<(), ProviderError> {
        match key {
            "delay_ms" => {
                self.delay = Duration::from_millis(bounded(key, value, MAX_DELAY_MS)?);
            }
            "tokens" => self.tokens = Some(bounded(key, value, MAX_TOKENS)?),
            "token_bytes" => {
                let bytes = number(key, value)?;
                let bytes = usize::try_from(bytes)
                    .ok()
                    .filter(|bytes| (1..=MAX_TOKEN_BYTES).contains(bytes))
                    .ok_or_else(|| {
                        invalid(format!(
                            "knob `token_bytes` must be in 1..={MAX_TOKEN_BYTES}, not {bytes}"
                        ))
                    })?;
                self.token_bytes = Some(bytes);
            }
            "tool_call" => {
                if value.is_empty() {
                    return Err(invalid("knob `tool_call` needs a function name"));
                }
                self.tool_call = Some(value.to_owned());
            }
            "error" => {
                let code = ErrorCode::from_name(value)
                    .map_err(|_| invalid(format!("knob `error`: unknown error code `{value}`")))?;
                self.error = Some(code);
            }
            "error_after" => self.error_after = Some(number(key, value)?),
            "retry_after_ms" => self.retry_after = Some(Duration::from_millis(number(key, value)?)),
            "stall_after" => self.stall_after = Some(number(key, value)?),
            _ => return Err(invalid(format!("unknown echo knob `{key}`"))),
        }
        Ok(())
    }

    /// Rejects combinations that mean nothing.
    fn check(&self) -> Result<(), ProviderError> {
        if self.token_bytes.is_some() && self.tokens.is_none() {
            return Err(invalid("knob `token_bytes` needs `tokens`"));
        }
        if self.tool_call.is_some() && self.tokens.is_some() {
            return Err(invalid("knobs `tool_call` and `tokens` exclude each other"));
        }
        if self.error.is_none() && (self.error_after.is_some() || self.retry_after.is_some()) {
            return Err(invalid(
                "knobs `error_after` and `retry_after_ms` need `error`",
            ));
        }
        Ok(())
    }
}

fn invalid(message: impl Into<String>) -> ProviderError {
    ProviderError::new(ErrorCode::InvalidRequest, message)
}

fn number(key: &str, value: &str) -> Result<u64, ProviderError> {
    value.parse().map_err(|_| {
        invalid(format!(
            "knob `{key}` must be a non-negative integer, not `{value}`"
        ))
    })
}

/// [`number`], at most `max`: a knob cannot ask the gateway for unbounded
/// work.
fn bounded(key: &str, value: &str, max: u64) -> Result<u64, ProviderError> {
    let n = number(key, value)?;
    if n > max {
        return Err(invalid(format!("knob `{key}` is at most {max}, not {n}")));
    }
    Ok(n)
}

/// What a call sends, decided before its stream starts.
#[derive(Debug)]
struct Plan {
    delay: Duration,
    output: Output,
    /// Tokens to send (after `max_tokens`).
    token_count: u64,
    /// Whether `max_tokens` cut the output.
    truncated: bool,
    /// The injected error and the token count it comes after.
    error: Option<(ProviderError, u64)>,
    /// The token count after which the stream stalls.
    stall_at: Option<u64>,
    tokens_in: u64,
}

#[derive(Debug)]
enum Output {
    /// The echoed text's words.
    Words(Vec<String>),
    /// Generated tokens of this many bytes.
    Generated(usize),
    /// One tool call instead of text.
    ToolCall(ToolCall),
}

impl Plan {
    fn new(request: &CompletionRequest) -> Result<Self, ProviderError> {
        let knobs = Knobs::from_request(request)?;
        if request.messages.is_empty() {
            return Err(invalid("request has no messages"));
        }
        let last = request
            .messages
            .iter()
            .rev()
            .find(|message| message.role() != Role::Assistant);
        let text = last.map(message_text).unwrap_or_default();
        // Like a model, answer a tool result with text rather than calling
        // the tool again.
        let answering_tool = last.is_some_and(|message| message.role() == Role::Tool);
        let tokens_in = tokens_in(request);

        let (output, available) = if let Some(name) = knobs.tool_call.filter(|_| !answering_tool) {
            let arguments = serde_json::json!({ "text": text }).to_string();
            let call = ToolCall {
                id: "call_0".to_owned(),
                function: Some(FunctionCall { name, arguments }),
            };
            (Output::ToolCall(call), 0)
        } else if let Some(count) = knobs.tokens {
            (
                Output::Generated(knobs.token_bytes.unwrap_or(DEFAULT_TOKEN_BYTES)),
                count,
            )
        } else {
            let words = split_words(&text);
            let count = words.len() as u64;
            (Output::Words(words), count)
        };
        let limit = request.max_tokens.map_or(u64::MAX, u64::from);
        let token_count = available.min(limit);

        let error = match (knobs.error, knobs.error_after.unwrap_or(0)) {
            (None, _) => None,
            (Some(code), 0) => {
                let mut error = ProviderError::new(code, format!("echo: injected {code}"));
                if let Some(retry_after) = knobs.retry_after {
                    error = error.with_retry_after(retry_after);
                }
                return Err(error);
            }
            (Some(code), after) => {
                let at = after.min(token_count);
                let phase = if at > 0 {
                    Phase::AfterFirstToken
                } else {
                    Phase::BeforeFirstToken
                };
                let mut error =
                    ProviderError::new(code, format!("echo: injected {code}")).with_phase(phase);
                if let Some(retry_after) = knobs.retry_after {
                    error = error.with_retry_after(retry_after);
                }
                Some((error, at))
            }
        };

        Ok(Self {
            delay: knobs.delay,
            output,
            token_count,
            truncated: token_count < available,
            error,
            stall_at: knobs.stall_after.map(|k| k.min(token_count)),
            tokens_in,
        })
    }

    fn token(&self, index: u64) -> String {
        match &self.output {
            Output::Words(words) => {
                // `index < token_count <= words.len()`, which is a usize.
                words[usize::try_from(index).expect("word index fits in usize")].clone()
            }
            Output::Generated(bytes) => generated_token(index, *bytes),
            Output::ToolCall(_) => String::new(),
        }
    }
}

/// The text of a message: its string, or its text parts concatenated.
fn message_text(message: &Message) -> String {
    match &message.content {
        None => String::new(),
        Some(Content::Text(text)) => text.clone(),
        Some(Content::Parts(parts)) => parts
            .parts
            .iter()
            .filter_map(|part| match &part.part {
                Some(Part::Text(text)) => Some(text.as_str()),
                _ => None,
            })
            .collect(),
    }
}

fn tokens_in(request: &CompletionRequest) -> u64 {
    request
        .messages
        .iter()
        .map(|m| word_count(&message_text(m)))
        .sum::<usize>() as u64
}

fn word_count(text: &str) -> usize {
    text.split_whitespace().count()
}

/// Splits `text` before every word that follows whitespace: each piece is a
/// word and its trailing whitespace, the first also any leading whitespace.
fn split_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut start = 0;
    // Whether the current piece has a word, and whitespace after it.
    let (mut has_word, mut after_word) = (false, false);
    for (index, c) in text.char_indices() {
        if c.is_whitespace() {
            after_word = has_word;
        } else {
            if after_word {
                words.push(text[start..index].to_owned());
                start = index;
                after_word = false;
            }
            has_word = true;
        }
    }
    if start < text.len() {
        words.push(text[start..].to_owned());
    }
    words
}

/// Generated token `index`: `bytes - 1` lowercase letters (starting at a
/// letter that rotates with the index) and a space, or one letter when
/// `bytes` is 1.
fn generated_token(index: u64, bytes: usize) -> String {
    let first = (index % 26) as usize;
    (0..bytes)
        .map(|i| {
            if bytes > 1 && i == bytes - 1 {
                ' '
            } else {
                char::from(b'a' + ((first + i) % 26) as u8)
            }
        })
        .collect()
}

/// Where a [`Generator`] is in its call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Status,
    Tokens,
    ToolCall,
    Usage,
    Done,
    End,
}

/// Produces a call's events one at a time, so a load test's millions of
/// tokens are never held in memory.
#[derive(Debug)]
struct Generator {
    plan: Plan,
    emitted: u64,
    stage: Stage,
}

impl Generator {
    async fn next(&mut self) -> Option<Body> {
        loop {
            match self.stage {
                Stage::Status => {
                    self.stage = Stage::Tokens;
                    return Some(Body::Status(Status {
                        state: "streaming".to_owned(),
                        provider: ECHO.to_owned(),
                        model: ECHO.to_owned(),
                        reason: String::new(),
                    }));
                }
                Stage::Tokens => {
                    if let Some((error, at)) = &self.plan.error
                        && *at == self.emitted
                    {
                        self.stage = Stage::End;
                        return Some(error.to_event());
                    }
                    if self.plan.stall_at == Some(self.emitted) {
                        // Stalls until the stream is dropped.
                        std::future::pending::<()>().await;
                    }
                    if self.emitted == self.plan.token_count {
                        self.stage = match self.plan.output {
                            Output::ToolCall(_) => Stage::ToolCall,
                            _ => Stage::Usage,
                        };
                        continue;
                    }
                    if !self.plan.delay.is_zero() {
                        tokio::time::sleep(self.plan.delay).await;
                    }
                    let text = self.plan.token(self.emitted);
                    self.emitted += 1;
                    return Some(Body::Token(Token { text }));
                }
                Stage::ToolCall => {
                    self.stage = Stage::Usage;
                    if let Output::ToolCall(call) = &self.plan.output {
                        return Some(Body::ToolCall(call.clone()));
                    }
                }
                Stage::Usage => {
                    self.stage = Stage::Done;
                    return Some(Body::Usage(Usage {
                        tokens_in: self.plan.tokens_in,
                        tokens_out: self.emitted,
                        cost: 0.0,
                        cached_tokens: 0,
                    }));
                }
                Stage::Done => {
                    self.stage = Stage::End;
                    let finish_reason = match self.plan.output {
                        Output::ToolCall(_) => "tool_calls",
                        _ if self.plan.truncated => "length",
                        _ => "stop",
                    };
                    return Some(Body::Done(Done {
                        finish_reason: finish_reason.to_owned(),
                    }));
                }
                Stage::End => return None,
            }
        }
    }
}

/// Counts a stream as completed when it yields its terminal event, and as
/// dropped when it goes away before that.
struct Tracked {
    inner: EventStream,
    counters: Arc<Counters>,
    ended: bool,
}

impl Stream for Tracked {
    type Item = Body;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Body>> {
        let this = self.get_mut();
        let item = ready!(this.inner.as_mut().poll_next(cx));
        if !this.ended && item.as_ref().is_some_and(Body::is_terminal) {
            this.ended = true;
            this.counters.completed.fetch_add(1, Ordering::AcqRel);
        }
        Poll::Ready(item)
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if !self.ended {
            self.counters.dropped.fetch_add(1, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_keep_their_whitespace() {
        assert_eq!(split_words("Hello, world"), ["Hello, ", "world"]);
        assert_eq!(
            split_words("  lead and trail  "),
            ["  lead ", "and ", "trail  "]
        );
        assert_eq!(split_words("a\n\tb"), ["a\n\t", "b"]);
        assert_eq!(split_words("   "), ["   "]);
        assert!(split_words("").is_empty());
        assert_eq!(split_words("né ü"), ["né ", "ü"]);
    }

    #[test]
    fn knobs_cannot_ask_for_unbounded_work() {
        assert_eq!(
            bounded("tokens", "10000000", MAX_TOKENS).unwrap(),
            10_000_000
        );
        let error = bounded("tokens", "10000001", MAX_TOKENS).unwrap_err();
        assert_eq!(error.code, ErrorCode::InvalidRequest);
        assert!(
            error.message.contains("at most 10000000"),
            "{}",
            error.message
        );
        assert!(bounded("delay_ms", "60001", MAX_DELAY_MS).is_err());
    }

    #[test]
    fn generated_tokens_have_the_asked_size() {
        assert_eq!(generated_token(0, 4), "abc ");
        assert_eq!(generated_token(1, 4), "bcd ");
        assert_eq!(generated_token(25, 3), "za ");
        assert_eq!(generated_token(2, 1), "c");
        assert_eq!(generated_token(7, 1000).len(), 1000);
    }
}
