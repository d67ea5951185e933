//! The seeds' JSON form of GTL frames: one flat object per frame with a
//! `type` tag, the envelope's fields and the body's fields side by side.
//!
//! ```json
//! {"type":"token","session_id":"s_1","seq":2,"text":"Hel"}
//! ```
//!
//! Canonical form: a field equal to its protobuf default (0, "", false, an
//! empty list, unset) is omitted, except the fields the seeds always show
//! (`text` of a token; `tokens_in`, `tokens_out`, `cost` of usage; `code`,
//! `message`, `retryable` of an error). A decoder treats an absent field as
//! its default, ignores unknown fields and accepts `msg` for `message`, so
//! canonical JSON and protobuf convert into each other without loss.
//!
//! Some protobuf values have no JSON form. Writing a frame with a non-finite
//! double (NaN or an infinity: usage `cost`, `temperature`, `top_p`, routing
//! `budget`, a model's costs) or tool `parameters` that are not JSON text is
//! an error. Empty values are dropped instead: a content part with no part,
//! an image part with neither `data` nor `url`, and a patch `op` with no
//! operation (written as if unset). Unknown enum numbers are omitted, or
//! written as `"unspecified"` in `hello.encodings`.

mod decode;
mod names;
mod request;

use std::collections::BTreeMap;

use serde::ser::{Error as _, SerializeMap};
use serde::{Deserialize as _, Serialize, Serializer};

use crate::frame::FrameRef;
use crate::generated::{Ack, Frame, frame::Body};
use names::{encoding_name, phase_name};
use request::MessageJson;

/// A JSON frame could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("invalid JSON frame: {0}")]
pub struct JsonError(#[from] serde_json::Error);

impl Frame {
    /// Parses a frame from its JSON form.
    pub fn from_json(json: &[u8]) -> Result<Self, JsonError> {
        // Checking the UTF-8 of the whole text at once is much cheaper than
        // serde_json checking every key and string of a slice on its own.
        // Invalid input goes to the slice parser, which reports (or, in an
        // ignored field, tolerates) it as it always did.
        let mut frame = Self::default();
        read_json(json, &mut frame)?;
        Ok(frame)
    }

    /// The frame's JSON form.
    pub fn to_json(&self) -> Result<String, JsonError> {
        Ok(serde_json::to_string(&self.as_ref())?)
    }
}

/// [`Frame::from_json`], writing to `frame` (a `Frame` is a few hundred
/// bytes; the codec decodes into its result in place).
pub(crate) fn read_json(json: &[u8], frame: &mut Frame) -> Result<(), JsonError> {
    // Checking the UTF-8 of the whole text at once is much cheaper than
    // serde_json checking every key and string of a slice on its own.
    let Ok(text) = std::str::from_utf8(json) else {
        *frame = decode::read_bytes(json)?;
        return Ok(());
    };
    if decode::read_canonical(text, frame) {
        return Ok(());
    }
    let mut de = serde_json::Deserializer::from_str(text);
    Frame::deserialize_in_place(&mut de, frame)?;
    de.end()?;
    Ok(())
}

impl FrameRef<'_> {
    /// Appends the frame's JSON form to `out`.
    pub fn write_json(&self, out: &mut impl std::io::Write) -> Result<(), JsonError> {
        Ok(serde_json::to_writer(out, self)?)
    }
}

impl Serialize for Frame {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.as_ref().serialize(serializer)
    }
}

impl Serialize for FrameRef<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let body = self
            .body
            .ok_or_else(|| S::Error::custom("frame has no body"))?;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("type", body.frame_type().as_str())?;
        if self.call_id != 0 {
            map.serialize_entry("call_id", &self.call_id)?;
        }
        if !self.session_id.is_empty() {
            map.serialize_entry("session_id", self.session_id)?;
        }
        if self.seq != 0 {
            map.serialize_entry("seq", &self.seq)?;
        }
        let mut out = Fields(&mut map);
        match body {
            Body::Status(b) => {
                out.str("state", &b.state)?;
                out.str("provider", &b.provider)?;
                out.str("model", &b.model)?;
                out.str("reason", &b.reason)?;
            }
            Body::Token(b) => out.0.serialize_entry("text", &b.text)?,
            Body::ToolCall(b) => {
                out.str("id", &b.id)?;
                out.some("function", b.function.as_ref())?;
            }
            Body::Patch(b) => {
                // An op with no operation has no JSON form: omitted, like unset.
                out.some("op", b.op.as_ref().and_then(|op| op.kind.as_ref()))?;
                out.num("rev", b.rev)?;
            }
            Body::Usage(b) => {
                out.0.serialize_entry("tokens_in", &b.tokens_in)?;
                out.0.serialize_entry("tokens_out", &b.tokens_out)?;
                out.0.serialize_entry("cost", &finite("cost", b.cost)?)?;
                out.num("cached_tokens", b.cached_tokens)?;
            }
            Body::Error(b) => {
                if let Ok(code) = crate::ErrorCode::try_from(b.code)
                    && code != crate::ErrorCode::Unspecified
                {
                    out.0.serialize_entry("code", code.name())?;
                }
                out.0.serialize_entry("message", &b.message)?;
                // The Zig seed reads `msg`: both are written, the same text.
                out.0.serialize_entry("msg", &b.message)?;
                out.0.serialize_entry("retryable", &b.retryable)?;
                out.some("phase", phase_name(b.phase))?;
                out.num("retry_after_ms", b.retry_after_ms)?;
            }
            Body::Done(b) => out.str("finish_reason", &b.finish_reason)?,
            Body::Hello(b) => {
                out.list("versions", &b.versions)?;
                let encodings: Vec<&str> = b.encodings.iter().map(|&e| encoding_name(e)).collect();
                out.list("encodings", &encodings)?;
                out.list("features", &b.features)?;
                out.str("token", &b.token)?;
                out.str("client", &b.client)?;
            }
            Body::Welcome(b) => {
                out.str("version", &b.version)?;
                if b.encoding != 0 {
                    out.0
                        .serialize_entry("encoding", encoding_name(b.encoding))?;
                }
                out.list("features", &b.features)?;
                out.str("server", &b.server)?;
                out.num("max_frame_bytes", b.max_frame_bytes)?;
            }
            Body::CompletionRequest(b) => request::serialize_request(b, &mut out)?,
            Body::Input(b) => {
                let messages: Vec<MessageJson> = b.messages.iter().map(MessageJson::from).collect();
                out.list("messages", &messages)?;
                out.flag("end", b.end)?;
                out.str("resume_token", &b.resume_token)?;
            }
            Body::Resume(b) => {
                out.num("after_seq", b.after_seq)?;
                out.str("resume_token", &b.resume_token)?;
            }
            Body::Accepted(b) => out.str("resume_token", &b.resume_token)?,
            Body::Ack(Ack {}) => {}
            Body::Cancel(b) => {
                out.str("reason", &b.reason)?;
                out.str("resume_token", &b.resume_token)?;
            }
            Body::Ping(b) => out.num("nonce", b.nonce)?,
            Body::Pong(b) => out.num("nonce", b.nonce)?,
            Body::ModelsRequest(b) => out.str("provider", &b.provider)?,
            Body::ProviderInfo(b) => {
                out.str("provider", &b.provider)?;
                for model in &b.models {
                    finite("cost_per_1k_input", model.cost_per_1k_input)?;
                    finite("cost_per_1k_output", model.cost_per_1k_output)?;
                }
                out.list("models", &b.models)?;
            }
        }
        map.end()
    }
}

/// Checks a double before it is written: JSON has no NaN or infinities (and
/// serde_json would print `null`, which no decoder takes for a number), so a
/// frame holding one has no JSON form.
fn finite<E: serde::ser::Error>(key: &str, value: f64) -> Result<f64, E> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(E::custom(format_args!(
            "`{key}` is {value}: a JSON number must be finite"
        )))
    }
}

/// Writes fields, skipping defaults (the canonical form).
struct Fields<'a, M>(&'a mut M);

impl<M: SerializeMap> Fields<'_, M> {
    fn str(&mut self, key: &'static str, value: &str) -> Result<(), M::Error> {
        if value.is_empty() {
            Ok(())
        } else {
            self.0.serialize_entry(key, value)
        }
    }

    fn num(&mut self, key: &'static str, value: u64) -> Result<(), M::Error> {
        if value == 0 {
            Ok(())
        } else {
            self.0.serialize_entry(key, &value)
        }
    }

    fn flag(&mut self, key: &'static str, value: bool) -> Result<(), M::Error> {
        if value {
            self.0.serialize_entry(key, &true)
        } else {
            Ok(())
        }
    }

    fn some<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: Option<&T>,
    ) -> Result<(), M::Error> {
        match value {
            Some(value) => self.0.serialize_entry(key, value),
            None => Ok(()),
        }
    }

    fn list<T: Serialize>(&mut self, key: &'static str, value: &[T]) -> Result<(), M::Error> {
        if value.is_empty() {
            Ok(())
        } else {
            self.0.serialize_entry(key, value)
        }
    }

    fn map(&mut self, key: &'static str, value: &BTreeMap<String, String>) -> Result<(), M::Error> {
        if value.is_empty() {
            Ok(())
        } else {
            self.0.serialize_entry(key, value)
        }
    }
}
