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

mod names;
mod request;

use std::collections::BTreeMap;

use serde::de::Error as _;
use serde::ser::{Error as _, SerializeMap};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::frame::{FrameRef, FrameType};
use crate::generated::{
    Accepted, Ack, Cancel, CompletionRequest, Done, Error, Frame, FunctionCall, Hello, Input,
    ModelInfo, ModelsRequest, Patch, PatchOp, Ping, Pong, ProviderInfo, Resume, Status, Token,
    ToolCall, Usage, Welcome, frame::Body, patch_op,
};
use names::{encoding_name, parse_encoding, parse_phase, phase_name};
use request::{MessageJson, RoutingJson, ToolChoiceJson, ToolJson};

/// A JSON frame could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("invalid JSON frame: {0}")]
pub struct JsonError(#[from] serde_json::Error);

impl Frame {
    /// Parses a frame from its JSON form.
    pub fn from_json(json: &[u8]) -> Result<Self, JsonError> {
        Ok(serde_json::from_slice(json)?)
    }

    /// The frame's JSON form.
    pub fn to_json(&self) -> Result<String, JsonError> {
        Ok(serde_json::to_string(&self.as_ref())?)
    }
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
            }
            Body::Token(b) => out.0.serialize_entry("text", &b.text)?,
            Body::ToolCall(b) => {
                out.str("id", &b.id)?;
                out.some("function", b.function.as_ref())?;
            }
            Body::Patch(b) => {
                out.some("op", b.op.as_ref().map(|op| &op.kind))?;
                out.num("rev", b.rev)?;
            }
            Body::Usage(b) => {
                out.0.serialize_entry("tokens_in", &b.tokens_in)?;
                out.0.serialize_entry("tokens_out", &b.tokens_out)?;
                out.0.serialize_entry("cost", &b.cost)?;
                out.num("cached_tokens", b.cached_tokens)?;
            }
            Body::Error(b) => {
                if let Ok(code) = crate::ErrorCode::try_from(b.code)
                    && code != crate::ErrorCode::Unspecified
                {
                    out.0.serialize_entry("code", code.name())?;
                }
                out.0.serialize_entry("message", &b.message)?;
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
            }
            Body::Resume(b) => {
                out.num("after_seq", b.after_seq)?;
                out.str("resume_token", &b.resume_token)?;
            }
            Body::Accepted(b) => out.str("resume_token", &b.resume_token)?,
            Body::Ack(Ack {}) => {}
            Body::Cancel(b) => out.str("reason", &b.reason)?,
            Body::Ping(b) => out.num("nonce", b.nonce)?,
            Body::Pong(b) => out.num("nonce", b.nonce)?,
            Body::ModelsRequest(b) => out.str("provider", &b.provider)?,
            Body::ProviderInfo(b) => {
                out.str("provider", &b.provider)?;
                out.list("models", &b.models)?;
            }
        }
        map.end()
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

/// Every field any frame type has, so decoding is one pass with no buffering;
/// [`Flat::into_frame`] then keeps the fields of the frame's type.
#[derive(Deserialize)]
#[serde(default)]
#[derive(Default)]
struct Flat {
    #[serde(rename = "type")]
    ty: Option<String>,
    call_id: u64,
    session_id: String,
    seq: u64,
    // status, models_request, provider_info, completion_request
    state: String,
    provider: String,
    model: String,
    // token
    text: Option<String>,
    // tool_call
    id: String,
    function: Option<FunctionCall>,
    // patch
    op: Option<patch_op::Kind>,
    rev: u64,
    // usage
    tokens_in: u64,
    tokens_out: u64,
    cost: f64,
    cached_tokens: u64,
    // error
    code: Option<String>,
    #[serde(alias = "msg")]
    message: String,
    retryable: bool,
    phase: Option<String>,
    retry_after_ms: u64,
    // done
    finish_reason: String,
    // hello, welcome
    versions: Vec<String>,
    encodings: Vec<String>,
    features: Vec<String>,
    token: String,
    client: String,
    version: String,
    encoding: Option<String>,
    server: String,
    max_frame_bytes: u64,
    // completion_request, input
    messages: Vec<MessageJson>,
    stream: bool,
    max_tokens: Option<u32>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    stop: Vec<String>,
    tools: Vec<ToolJson>,
    tool_choice: Option<ToolChoiceJson>,
    providers: Vec<String>,
    routing: Option<RoutingJson>,
    metadata: BTreeMap<String, String>,
    pipe: bool,
    end: bool,
    // resume, accepted
    after_seq: u64,
    resume_token: String,
    // cancel, ping, pong, provider_info
    reason: String,
    nonce: u64,
    models: Vec<ModelInfo>,
}

impl<'de> Deserialize<'de> for Frame {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Flat::deserialize(deserializer)?
            .into_frame()
            .map_err(D::Error::custom)
    }
}

impl Flat {
    fn into_frame(self) -> Result<Frame, String> {
        let tag = self.ty.as_deref().ok_or("missing field `type`")?;
        let ty = FrameType::from_tag(tag).ok_or_else(|| format!("unknown frame type `{tag}`"))?;
        let body = match ty {
            FrameType::Status => Body::Status(Status {
                state: self.state,
                provider: self.provider,
                model: self.model,
            }),
            FrameType::Token => Body::Token(Token {
                text: self.text.unwrap_or_default(),
            }),
            FrameType::ToolCall => Body::ToolCall(ToolCall {
                id: self.id,
                function: self.function,
            }),
            FrameType::Patch => Body::Patch(Patch {
                op: self.op.map(|kind| PatchOp { kind: Some(kind) }),
                rev: self.rev,
            }),
            FrameType::Usage => Body::Usage(Usage {
                tokens_in: self.tokens_in,
                tokens_out: self.tokens_out,
                cost: self.cost,
                cached_tokens: self.cached_tokens,
            }),
            FrameType::Error => Body::Error(Error {
                code: match self.code {
                    Some(name) => {
                        crate::ErrorCode::from_name(&name).map_err(|e| e.to_string())? as i32
                    }
                    None => 0,
                },
                message: self.message,
                retryable: self.retryable,
                phase: self
                    .phase
                    .as_deref()
                    .map(parse_phase)
                    .transpose()?
                    .unwrap_or(0),
                retry_after_ms: self.retry_after_ms,
            }),
            FrameType::Done => Body::Done(Done {
                finish_reason: self.finish_reason,
            }),
            FrameType::Hello => Body::Hello(Hello {
                versions: self.versions,
                encodings: self.encodings.iter().map(|e| parse_encoding(e)).collect(),
                features: self.features,
                token: self.token,
                client: self.client,
            }),
            FrameType::Welcome => Body::Welcome(Welcome {
                version: self.version,
                encoding: self.encoding.as_deref().map_or(0, parse_encoding),
                features: self.features,
                server: self.server,
                max_frame_bytes: self.max_frame_bytes,
            }),
            FrameType::CompletionRequest => Body::CompletionRequest(CompletionRequest {
                provider: self.provider,
                model: self.model,
                messages: try_map(self.messages)?,
                stream: self.stream,
                max_tokens: self.max_tokens,
                temperature: self.temperature,
                top_p: self.top_p,
                stop: self.stop,
                tools: self.tools.into_iter().map(Into::into).collect(),
                tool_choice: self.tool_choice.map(Into::into),
                providers: self.providers,
                routing: self.routing.map(Into::into),
                metadata: self.metadata,
                pipe: self.pipe,
            }),
            FrameType::Input => Body::Input(Input {
                messages: try_map(self.messages)?,
                end: self.end,
            }),
            FrameType::Resume => Body::Resume(Resume {
                after_seq: self.after_seq,
                resume_token: self.resume_token,
            }),
            FrameType::Accepted => Body::Accepted(Accepted {
                resume_token: self.resume_token,
            }),
            FrameType::Ack => Body::Ack(Ack {}),
            FrameType::Cancel => Body::Cancel(Cancel {
                reason: self.reason,
            }),
            FrameType::Ping => Body::Ping(Ping { nonce: self.nonce }),
            FrameType::Pong => Body::Pong(Pong { nonce: self.nonce }),
            FrameType::ModelsRequest => Body::ModelsRequest(ModelsRequest {
                provider: self.provider,
            }),
            FrameType::ProviderInfo => Body::ProviderInfo(ProviderInfo {
                provider: self.provider,
                models: self.models,
            }),
        };
        Ok(Frame {
            call_id: self.call_id,
            session_id: self.session_id,
            seq: self.seq,
            body: Some(body),
        })
    }
}

fn try_map(messages: Vec<MessageJson>) -> Result<Vec<crate::Message>, String> {
    messages.into_iter().map(TryInto::try_into).collect()
}
