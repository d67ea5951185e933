//! Assembling streamed tool calls into complete GTL `tool_call` events.
//!
//! Providers stream a tool call in fragments: OpenAI keys them by `index`
//! (the id and name only in the first fragment, the arguments JSON in
//! pieces, several calls interleaved), Anthropic by content-block index
//! (`input_json_delta`, the call ending at `content_block_stop`), while
//! Gemini, Ollama and Bedrock's final messages give whole calls. GTL sends
//! each call once, complete: [`ToolCalls`] collects fragments per key,
//! emits a call when the provider says it is complete
//! ([`ToolCalls::complete`]) or at the end of the turn
//! ([`ToolCalls::finish`]), in the order calls first appeared.
//!
//! # Choices
//!
//! - Empty arguments become `{}` (OpenAI sends `""` for a function without
//!   parameters; Anthropic an empty `input_json_delta`).
//! - Arguments that are not valid JSON are passed through verbatim, as
//!   OpenAI's own API does ("the model does not always generate valid
//!   JSON"): the client validates arguments against its own schema anyway,
//!   and dropping or failing the call would lose what the model produced.
//!   [`ToolCalls::invalid_json`] counts them for logs.
//! - A call without an id gets `call_<n>`, `n` its position in the turn.
//! - The first non-empty id and name win; later fragments repeating them
//!   (some compatible servers do) are ignored.
//! - A final payload ([`ToolCalls::reconcile`]) replaces the streamed
//!   arguments and fills a missing id or name: it is the provider's
//!   authoritative answer.
//! - A stream cut before the end emits no half-built call: the caller
//!   simply never calls [`ToolCalls::finish`].

use std::collections::HashMap;

use gtl_proto::{Body, FunctionCall, ToolCall};

/// How a provider identifies the call a fragment belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum CallKey {
    /// A position (OpenAI `tool_calls[].index`, Anthropic block index).
    Index(u64),
    /// An id (providers whose fragments carry the call id).
    Id(String),
}

#[derive(Debug, Default)]
struct Partial {
    id: String,
    name: String,
    arguments: String,
    emitted: bool,
}

/// The tool calls of one turn, being assembled. See the [module docs](self).
#[derive(Debug, Default)]
pub(crate) struct ToolCalls {
    calls: Vec<Partial>,
    keys: HashMap<CallKey, usize>,
    invalid_json: usize,
}

impl ToolCalls {
    /// No calls yet.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Adds a fragment of call `key`: its id and name when this fragment
    /// has them, and a piece of its arguments (possibly empty).
    pub(crate) fn fragment(
        &mut self,
        key: CallKey,
        id: Option<&str>,
        name: Option<&str>,
        arguments: &str,
    ) {
        let call = self.entry(key);
        if call.id.is_empty()
            && let Some(id) = id
        {
            call.id = id.to_owned();
        }
        if call.name.is_empty()
            && let Some(name) = name
        {
            call.name = name.to_owned();
        }
        call.arguments.push_str(arguments);
    }

    /// Replaces call `key`'s arguments with the provider's final ones, and
    /// fills its id or name if still missing (creating the call if no
    /// fragment came).
    pub(crate) fn reconcile(
        &mut self,
        key: CallKey,
        id: Option<&str>,
        name: Option<&str>,
        arguments: &str,
    ) {
        let call = self.entry(key);
        if call.id.is_empty()
            && let Some(id) = id
        {
            call.id = id.to_owned();
        }
        if call.name.is_empty()
            && let Some(name) = name
        {
            call.name = name.to_owned();
        }
        arguments.clone_into(&mut call.arguments);
    }

    /// Call `key` is complete: appends its `tool_call` event to `out`,
    /// unless it is unknown or already emitted.
    pub(crate) fn complete(&mut self, key: &CallKey, out: &mut Vec<Body>) {
        if let Some(&position) = self.keys.get(key) {
            self.emit(position, out);
        }
    }

    /// A whole call at once (Gemini, Ollama): appends its event now.
    pub(crate) fn whole(
        &mut self,
        id: Option<&str>,
        name: &str,
        arguments: &str,
        out: &mut Vec<Body>,
    ) {
        let position = self.calls.len();
        self.calls.push(Partial {
            id: id.unwrap_or_default().to_owned(),
            name: name.to_owned(),
            arguments: arguments.to_owned(),
            emitted: false,
        });
        self.emit(position, out);
    }

    /// The turn ended: appends every call not emitted yet, in the order
    /// they first appeared.
    pub(crate) fn finish(&mut self, out: &mut Vec<Body>) {
        for position in 0..self.calls.len() {
            self.emit(position, out);
        }
    }

    /// Whether any call was seen this turn.
    pub(crate) fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// How many emitted calls had arguments that are not valid JSON.
    pub(crate) fn invalid_json(&self) -> usize {
        self.invalid_json
    }

    fn entry(&mut self, key: CallKey) -> &mut Partial {
        let position = *self.keys.entry(key).or_insert_with(|| {
            self.calls.push(Partial::default());
            self.calls.len() - 1
        });
        &mut self.calls[position]
    }

    fn emit(&mut self, position: usize, out: &mut Vec<Body>) {
        let call = &mut self.calls[position];
        if call.emitted {
            return;
        }
        call.emitted = true;
        let id = if call.id.is_empty() {
            format!("call_{position}")
        } else {
            std::mem::take(&mut call.id)
        };
        let arguments = if call.arguments.trim().is_empty() {
            "{}".to_owned()
        } else {
            std::mem::take(&mut call.arguments)
        };
        if serde_json::from_str::<serde::de::IgnoredAny>(&arguments).is_err() {
            self.invalid_json += 1;
        }
        out.push(Body::ToolCall(ToolCall {
            id,
            function: Some(FunctionCall {
                name: std::mem::take(&mut call.name),
                arguments,
            }),
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(id: &str, name: &str, arguments: &str) -> Body {
        Body::ToolCall(ToolCall {
            id: id.into(),
            function: Some(FunctionCall {
                name: name.into(),
                arguments: arguments.into(),
            }),
        })
    }

    #[test]
    fn interleaved_fragments_assemble_per_key_in_first_seen_order() {
        let mut calls = ToolCalls::new();
        let (a, b) = (CallKey::Index(1), CallKey::Index(0));
        calls.fragment(a.clone(), Some("call_a"), Some("get_weather"), "");
        calls.fragment(b.clone(), Some("call_b"), Some("get_time"), "{\"tz\"");
        calls.fragment(a.clone(), None, None, "{\"city\":");
        calls.fragment(b.clone(), None, None, ":\"UTC\"}");
        calls.fragment(a, Some("ignored"), Some("ignored"), "\"Oslo\"}");
        let mut out = Vec::new();
        calls.finish(&mut out);
        assert_eq!(
            out,
            [
                call("call_a", "get_weather", "{\"city\":\"Oslo\"}"),
                call("call_b", "get_time", "{\"tz\":\"UTC\"}"),
            ]
        );
        assert_eq!(calls.invalid_json(), 0);
        // Nothing is emitted twice.
        calls.finish(&mut out);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn complete_emits_one_call_early() {
        let mut calls = ToolCalls::new();
        calls.fragment(CallKey::Index(0), Some("a"), Some("f"), "{}");
        calls.fragment(CallKey::Index(1), Some("b"), Some("g"), "{\"x\":1}");
        let mut out = Vec::new();
        calls.complete(&CallKey::Index(1), &mut out);
        assert_eq!(out, [call("b", "g", "{\"x\":1}")]);
        calls.complete(&CallKey::Index(7), &mut out);
        calls.finish(&mut out);
        assert_eq!(out[1], call("a", "f", "{}"));
    }

    #[test]
    fn empty_arguments_are_an_empty_object_and_ids_are_synthesised() {
        let mut calls = ToolCalls::new();
        calls.fragment(CallKey::Id("x".into()), None, Some("now"), "");
        let mut out = Vec::new();
        calls.whole(None, "later", "{\"a\":[1]}", &mut out);
        calls.finish(&mut out);
        assert_eq!(
            out,
            [
                call("call_1", "later", "{\"a\":[1]}"),
                call("call_0", "now", "{}")
            ]
        );
    }

    #[test]
    fn invalid_json_is_passed_through_and_counted() {
        let mut calls = ToolCalls::new();
        calls.fragment(CallKey::Index(0), Some("a"), Some("f"), "{\"city\": Oslo");
        let mut out = Vec::new();
        calls.finish(&mut out);
        assert_eq!(out, [call("a", "f", "{\"city\": Oslo")]);
        assert_eq!(calls.invalid_json(), 1);
    }

    #[test]
    fn reconcile_prefers_the_final_payload() {
        let mut calls = ToolCalls::new();
        calls.fragment(CallKey::Index(0), None, Some("f"), "{\"a\":");
        calls.reconcile(CallKey::Index(0), Some("id_0"), Some("g"), "{\"a\":2}");
        calls.reconcile(CallKey::Index(1), Some("id_1"), Some("h"), "");
        let mut out = Vec::new();
        calls.finish(&mut out);
        assert_eq!(
            out,
            [call("id_0", "f", "{\"a\":2}"), call("id_1", "h", "{}")]
        );
        assert!(!calls.is_empty());
    }
}
