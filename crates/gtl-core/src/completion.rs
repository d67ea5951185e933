//! Turning a stream of GTL events into one unary answer.
//!
//! [`Completion::push`] folds events in the order they arrive. It is the one
//! aggregation path: [`complete`](crate::complete) uses it on a provider's
//! stream, and clients use it to answer `chat.complete` from a `chat.stream`.

use gtl_proto::{Body, Patch, ToolCall, Usage};

use crate::ProviderError;

/// The aggregate of a call's events: its text, tool calls, usage and how it
/// ended.
///
/// Build one with [`Completion::default`] and feed it every event with
/// [`Completion::push`]; [`Completion::into_result`] then turns it into the
/// answer of a unary call.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Completion {
    /// The provider that served the call, from the last `status` event that
    /// named one.
    pub provider: String,
    /// The model that served the call, from the last `status` event that
    /// named one.
    pub model: String,
    /// Every `token` event's text, concatenated.
    pub text: String,
    /// The `tool_call` events, in order.
    pub tool_calls: Vec<ToolCall>,
    /// The `patch` events, in order.
    pub patches: Vec<Patch>,
    /// The merged `usage` events: for each field the last non-zero value.
    pub usage: Option<Usage>,
    /// The last `done` event's finish reason ("" before one arrives).
    pub finish_reason: String,
    /// The `error` event that ended the call, if one did.
    pub error: Option<gtl_proto::Error>,
    /// Whether a terminal event (`done` or `error`) was pushed.
    pub finished: bool,
}

/// The `status` state with which a router tells the client to discard the
/// answer so far: the next provider answers from the start.
pub const RESTARTED: &str = "restarted";

impl Completion {
    /// Folds one event into the aggregate.
    ///
    /// Tokens are concatenated, tool calls and patches collected (and
    /// dropped again by a `status {state: "restarted"}`), usage
    /// merged (a later non-zero value replaces an earlier one; a zero never
    /// overwrites), `done` sets the finish reason and `error` is recorded.
    /// Bodies that are not session events are ignored.
    pub fn push(&mut self, body: &Body) {
        match body {
            Body::Status(status) => {
                // A router restarted the answer on another provider: what
                // came before is not part of it (docs/protocol.md §4.1).
                if status.state == RESTARTED {
                    self.text.clear();
                    self.tool_calls.clear();
                    self.patches.clear();
                }
                if !status.provider.is_empty() {
                    self.provider.clone_from(&status.provider);
                }
                if !status.model.is_empty() {
                    self.model.clone_from(&status.model);
                }
            }
            Body::Token(token) => self.text.push_str(&token.text),
            Body::ToolCall(call) => self.tool_calls.push(call.clone()),
            Body::Patch(patch) => self.patches.push(patch.clone()),
            Body::Usage(usage) => merge_usage(self.usage.get_or_insert_with(Usage::default), usage),
            Body::Done(done) => {
                self.finish_reason.clone_from(&done.finish_reason);
                self.finished = true;
            }
            Body::Error(error) => {
                self.error = Some(error.clone());
                self.finished = true;
            }
            _ => {}
        }
    }

    /// Whether any output (text, tool call or patch) was received.
    pub fn has_output(&self) -> bool {
        !self.text.is_empty() || !self.tool_calls.is_empty() || !self.patches.is_empty()
    }

    /// The answer of a unary call: the completion when it ended with `done`,
    /// the error when it ended with `error`, and a `PROVIDER_ERROR` when the
    /// events stopped before a terminal event.
    pub fn into_result(self) -> Result<Self, ProviderError> {
        if let Some(error) = self.error {
            return Err(ProviderError::from(error));
        }
        if !self.finished {
            let phase = if self.has_output() {
                gtl_proto::Phase::AfterFirstToken
            } else {
                gtl_proto::Phase::BeforeFirstToken
            };
            return Err(ProviderError::new(
                gtl_proto::ErrorCode::ProviderError,
                "event stream ended without done or error",
            )
            .with_phase(phase));
        }
        Ok(self)
    }
}

impl Extend<Body> for Completion {
    fn extend<I: IntoIterator<Item = Body>>(&mut self, iter: I) {
        for body in iter {
            self.push(&body);
        }
    }
}

impl<'a> Extend<&'a Body> for Completion {
    fn extend<I: IntoIterator<Item = &'a Body>>(&mut self, iter: I) {
        for body in iter {
            self.push(body);
        }
    }
}

impl FromIterator<Body> for Completion {
    fn from_iter<I: IntoIterator<Item = Body>>(iter: I) -> Self {
        let mut completion = Self::default();
        completion.extend(iter);
        completion
    }
}

/// Merges `new` into `into`: each non-zero field of `new` wins.
fn merge_usage(into: &mut Usage, new: &Usage) {
    if new.tokens_in != 0 {
        into.tokens_in = new.tokens_in;
    }
    if new.tokens_out != 0 {
        into.tokens_out = new.tokens_out;
    }
    if new.cost != 0.0 {
        into.cost = new.cost;
    }
    if new.cached_tokens != 0 {
        into.cached_tokens = new.cached_tokens;
    }
}

#[cfg(test)]
mod tests {
    use gtl_proto::{Done, ErrorCode, FunctionCall, Phase, Status, Token};

    use super::*;

    fn token(text: &str) -> Body {
        Body::Token(Token { text: text.into() })
    }

    fn usage(tokens_in: u64, tokens_out: u64, cost: f64, cached_tokens: u64) -> Body {
        Body::Usage(Usage {
            tokens_in,
            tokens_out,
            cost,
            cached_tokens,
        })
    }

    fn done(reason: &str) -> Body {
        Body::Done(Done {
            finish_reason: reason.into(),
        })
    }

    #[test]
    fn a_restart_drops_the_answer_so_far() {
        let status = |state: &str, provider: &str| {
            Body::Status(Status {
                state: state.into(),
                provider: provider.into(),
                model: "m".into(),
                reason: String::new(),
            })
        };
        let mut completion = Completion::default();
        for body in [
            status("streaming", "a"),
            token("Partial"),
            status(RESTARTED, "a"),
            status("streaming", "b"),
            token("Whole"),
            done("stop"),
        ] {
            completion.push(&body);
        }
        assert_eq!(completion.text, "Whole");
        assert_eq!(completion.provider, "b");
    }

    #[test]
    fn tokens_are_concatenated_and_done_sets_the_reason() {
        let completion: Completion = [
            Body::Status(Status {
                state: "streaming".into(),
                provider: "echo".into(),
                model: "echo".into(),
                reason: String::new(),
            }),
            token("Hel"),
            token("lo, "),
            token("world"),
            done("stop"),
        ]
        .into_iter()
        .collect();
        assert_eq!(completion.text, "Hello, world");
        assert_eq!(completion.finish_reason, "stop");
        assert_eq!(completion.provider, "echo");
        assert_eq!(completion.model, "echo");
        assert!(completion.finished);
        assert!(completion.error.is_none());
        assert_eq!(
            completion.into_result().map(|c| c.text),
            Ok("Hello, world".into())
        );
    }

    #[test]
    fn a_status_without_names_keeps_earlier_ones() {
        let completion: Completion = [
            Body::Status(Status {
                state: "started".into(),
                provider: "openai".into(),
                model: "gpt".into(),
                reason: String::new(),
            }),
            Body::Status(Status {
                state: "streaming".into(),
                ..Status::default()
            }),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            (completion.provider.as_str(), completion.model.as_str()),
            ("openai", "gpt")
        );
    }

    #[test]
    fn tool_calls_are_collected_in_order() {
        let call = |id: &str, name: &str| {
            Body::ToolCall(ToolCall {
                id: id.into(),
                function: Some(FunctionCall {
                    name: name.into(),
                    arguments: "{}".into(),
                }),
            })
        };
        let completion: Completion = [call("call_0", "a"), call("call_1", "b"), done("tool_calls")]
            .into_iter()
            .collect();
        let ids: Vec<_> = completion
            .tool_calls
            .iter()
            .map(|c| c.id.as_str())
            .collect();
        assert_eq!(ids, ["call_0", "call_1"]);
        assert_eq!(completion.finish_reason, "tool_calls");
        assert!(completion.has_output());
    }

    #[test]
    fn usage_merges_later_non_zero_values() {
        let completion: Completion = [
            usage(10, 0, 0.0, 3),
            usage(0, 5, 0.25, 0),
            usage(12, 0, 0.0, 0),
            usage(0, 0, 0.0, 0),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            completion.usage,
            Some(Usage {
                tokens_in: 12,
                tokens_out: 5,
                cost: 0.25,
                cached_tokens: 3
            })
        );
    }

    #[test]
    fn no_usage_event_leaves_usage_unset() {
        let completion: Completion = [token("x"), done("stop")].into_iter().collect();
        assert_eq!(completion.usage, None);
    }

    #[test]
    fn an_error_is_recorded_and_becomes_the_result() {
        let error = gtl_proto::Error {
            code: ErrorCode::RateLimit as i32,
            message: "slow down".into(),
            retryable: true,
            phase: Phase::AfterFirstToken as i32,
            retry_after_ms: 1500,
        };
        let completion: Completion = [token("partial"), Body::Error(error.clone())]
            .into_iter()
            .collect();
        assert!(completion.finished);
        assert_eq!(completion.text, "partial");
        assert_eq!(completion.error.as_ref(), Some(&error));
        let err = completion.into_result().unwrap_err();
        assert_eq!(err.code, ErrorCode::RateLimit);
        assert_eq!(err.phase, Phase::AfterFirstToken);
        assert_eq!(
            err.retry_after,
            Some(std::time::Duration::from_millis(1500))
        );
        assert_eq!(err.message, "slow down");
    }

    #[test]
    fn a_stream_cut_before_its_end_is_an_error() {
        let completion: Completion = [token("cut")].into_iter().collect();
        assert!(!completion.finished);
        let err = completion.into_result().unwrap_err();
        assert_eq!(err.code, ErrorCode::ProviderError);
        assert_eq!(err.phase, Phase::AfterFirstToken);

        let err = Completion::default().into_result().unwrap_err();
        assert_eq!(err.phase, Phase::BeforeFirstToken);
    }

    #[test]
    fn non_event_bodies_are_ignored() {
        let mut completion = Completion::default();
        completion.push(&Body::Ping(gtl_proto::Ping { nonce: 1 }));
        assert_eq!(completion, Completion::default());
    }
}
