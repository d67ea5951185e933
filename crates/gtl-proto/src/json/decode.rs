//! Reading the JSON form.
//!
//! Every field of every frame type shares one flat object, so the full
//! mapping ([`Flat`]) has some fifty fields. Streams are nearly all events of
//! a few *hot* types (`status`, `token`, `tool_call`, `usage`, `error`,
//! `done`, `ack`, `ping`, `pong`), so they take shorter ways:
//!
//! - [`read_canonical`] reads a hot event laid out as encoders write it
//!   without serde, and gives up on anything else;
//! - the visitor ([`FrameVisitor`]) reads the envelope and the hot types'
//!   fields into locals ([`Hot`]), borrowing the `type` tag and the keys,
//!   and keeps the keys of other types aside as raw JSON;
//! - the other types take the full mapping: at once when `type` is the
//!   first key (as encoders write it), else from what the visitor kept.
//!
//! All of them accept exactly the same UTF-8 input: keys in any order,
//! unknown keys ignored, every known key type-checked whatever the frame's
//! type, a key given twice an error, `msg` for `message`.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::value::{MapAccessDeserializer, MapDeserializer, SeqAccessDeserializer};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use super::names::{parse_encoding, parse_phase};
use super::request::{MessageJson, RoutingJson, ToolChoiceJson, ToolJson};
use crate::frame::FrameType;
use crate::generated::{
    Accepted, Ack, Cancel, CompletionRequest, Done, Error, Frame, FunctionCall, Hello, Input,
    ModelInfo, ModelsRequest, Patch, PatchOp, Ping, Pong, ProviderInfo, Resume, Status, Token,
    ToolCall, Usage, Welcome, frame::Body, patch_op,
};

impl<'de> Deserialize<'de> for Frame {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut frame = Self::default();
        Self::deserialize_in_place(deserializer, &mut frame)?;
        Ok(frame)
    }

    /// Fills `place`: a `Frame` is a few hundred bytes, and every layer of
    /// `Result` it would be returned through copies it.
    fn deserialize_in_place<D: Deserializer<'de>>(
        deserializer: D,
        place: &mut Self,
    ) -> Result<(), D::Error> {
        deserializer.deserialize_struct("Frame", HOT_KEYS, FrameVisitor(place))
    }
}

/// Reads JSON text that is not UTF-8 (so invalid, unless the bad bytes lie
/// in a string no field reads) with the full mapping alone: serde_json
/// checks the UTF-8 of what it reads, and the raw values the visitor keeps
/// aside would be read too.
pub(super) fn read_bytes(json: &[u8]) -> Result<Frame, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(json);
    let frame = Flat::deserialize(&mut de)?
        .into_frame()
        .map_err(de::Error::custom)?;
    de.end()?;
    Ok(frame)
}

/// Whether a frame type is read without the full mapping.
fn is_hot(ty: FrameType) -> bool {
    matches!(
        ty,
        FrameType::Status
            | FrameType::Token
            | FrameType::ToolCall
            | FrameType::Usage
            | FrameType::Error
            | FrameType::Done
            | FrameType::Ack
            | FrameType::Ping
            | FrameType::Pong
    )
}

/// Writes the frame it reads to the place it holds.
struct FrameVisitor<'a>(&'a mut Frame);

impl<'de> Visitor<'de> for FrameVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a GTL frame (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut hot = Hot::default();
        let Some(first) = map.next_key_seed(KeySeed)? else {
            return Err(de::Error::custom(MISSING_TYPE));
        };
        if let Key::Type = first {
            let tag: Tag = map.next_value()?;
            if let Tag::Known(ty) = tag
                && !is_hot(ty)
            {
                // The full mapping reads the rest of the object in one pass.
                let mut flat = Flat::deserialize(MapAccessDeserializer::new(map))?;
                if !matches!(flat.ty, Tag::Absent) {
                    return Err(de::Error::duplicate_field("type"));
                }
                flat.ty = tag;
                *self.0 = flat.into_frame().map_err(de::Error::custom)?;
                return Ok(());
            }
            hot.ty = Some(tag);
        } else {
            hot.take(first, &mut map)?;
        }
        while let Some(key) = map.next_key_seed(KeySeed)? {
            hot.take(key, &mut map)?;
        }
        hot.finish(self.0)
    }

    /// The derived mapping also takes the fields as an array, in its field
    /// order; kept so that nothing that parsed before stops parsing.
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        *self.0 = Flat::deserialize(SeqAccessDeserializer::new(seq))?
            .into_frame()
            .map_err(de::Error::custom)?;
        Ok(())
    }
}

const MISSING_TYPE: &str = "missing field `type`";

/// The `type` tag, mapped to a frame type without allocating. What it names
/// is checked only once the whole object is read, so that a malformed field
/// is reported first, as the full mapping does.
#[derive(Debug, Default)]
enum Tag {
    /// No `type` key (yet).
    #[default]
    Absent,
    /// `"type": null`.
    Null,
    Known(FrameType),
    Unknown(String),
}

impl Tag {
    fn frame_type(&self) -> Result<FrameType, String> {
        match self {
            Self::Known(ty) => Ok(*ty),
            Self::Unknown(tag) => Err(format!("unknown frame type `{tag}`")),
            Self::Absent | Self::Null => Err(MISSING_TYPE.to_owned()),
        }
    }
}

impl<'de> Deserialize<'de> for Tag {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_option(TagVisitor)
    }
}

struct TagVisitor;

impl<'de> Visitor<'de> for TagVisitor {
    type Value = Tag;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_none<E: de::Error>(self) -> Result<Tag, E> {
        Ok(Tag::Null)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Tag, E> {
        Ok(Tag::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Tag, D::Error> {
        deserializer.deserialize_str(self)
    }

    fn visit_str<E: de::Error>(self, tag: &str) -> Result<Tag, E> {
        Ok(match FrameType::from_tag(tag) {
            Some(ty) => Tag::Known(ty),
            None => Tag::Unknown(tag.to_owned()),
        })
    }
}

/// The keys [`Hot`] keeps in locals, as passed to `deserialize_struct`.
const HOT_KEYS: &[&str] = &[
    "type",
    "call_id",
    "session_id",
    "seq",
    "text",
    "state",
    "provider",
    "model",
    "id",
    "function",
    "tokens_in",
    "tokens_out",
    "cost",
    "cached_tokens",
    "code",
    "message",
    "msg",
    "retryable",
    "phase",
    "retry_after_ms",
    "finish_reason",
    "nonce",
];

/// The other keys of the full mapping ([`Flat`]).
const COLD_KEYS: &[&str] = &[
    "op",
    "rev",
    "versions",
    "encodings",
    "features",
    "token",
    "client",
    "version",
    "encoding",
    "server",
    "max_frame_bytes",
    "messages",
    "stream",
    "max_tokens",
    "temperature",
    "top_p",
    "stop",
    "tools",
    "tool_choice",
    "providers",
    "routing",
    "metadata",
    "pipe",
    "end",
    "after_seq",
    "resume_token",
    "reason",
    "models",
];

/// An object key: one of [`HOT_KEYS`], one of [`COLD_KEYS`] (borrowed when
/// the input allows), or unknown.
enum Key<'de> {
    Type,
    CallId,
    SessionId,
    Seq,
    Text,
    State,
    Provider,
    Model,
    Id,
    Function,
    TokensIn,
    TokensOut,
    Cost,
    CachedTokens,
    Code,
    Message,
    /// The Zig seed's spelling of `message`.
    Msg,
    Retryable,
    Phase,
    RetryAfterMs,
    FinishReason,
    Nonce,
    Cold(Cow<'de, str>),
    Unknown,
}

impl Key<'_> {
    fn hot(key: &str) -> Option<Self> {
        Some(match key {
            "type" => Self::Type,
            "call_id" => Self::CallId,
            "session_id" => Self::SessionId,
            "seq" => Self::Seq,
            "text" => Self::Text,
            "state" => Self::State,
            "provider" => Self::Provider,
            "model" => Self::Model,
            "id" => Self::Id,
            "function" => Self::Function,
            "tokens_in" => Self::TokensIn,
            "tokens_out" => Self::TokensOut,
            "cost" => Self::Cost,
            "cached_tokens" => Self::CachedTokens,
            "code" => Self::Code,
            "message" => Self::Message,
            // The Zig seed's spelling.
            "msg" => Self::Msg,
            "retryable" => Self::Retryable,
            "phase" => Self::Phase,
            "retry_after_ms" => Self::RetryAfterMs,
            "finish_reason" => Self::FinishReason,
            "nonce" => Self::Nonce,
            _ => return None,
        })
    }
}

impl<'de> Key<'de> {
    /// A key that is not hot: kept, as `keep` makes it, if it is cold.
    fn other(key: &str, keep: impl FnOnce() -> Cow<'de, str>) -> Self {
        if COLD_KEYS.contains(&key) {
            Self::Cold(keep())
        } else {
            Self::Unknown
        }
    }
}

struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Key<'de>, D::Error> {
        deserializer.deserialize_identifier(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<Key<'de>, E> {
        Ok(Key::hot(key).unwrap_or_else(|| Key::other(key, || Cow::Borrowed(key))))
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Key<'de>, E> {
        Ok(Key::hot(key).unwrap_or_else(|| Key::other(key, || Cow::Owned(key.to_owned()))))
    }
}

/// The envelope and the fields of the hot frame types, each with the type
/// [`Flat`] gives it; `Some` once the key was seen.
#[derive(Default)]
struct Hot<'de> {
    ty: Option<Tag>,
    call_id: Option<u64>,
    session_id: Option<String>,
    seq: Option<u64>,
    text: Option<Option<String>>,
    state: Option<String>,
    provider: Option<String>,
    model: Option<String>,
    id: Option<String>,
    function: Option<Option<FunctionCall>>,
    tokens_in: Option<u64>,
    tokens_out: Option<u64>,
    cost: Option<f64>,
    cached_tokens: Option<u64>,
    code: Option<Option<String>>,
    message: Option<String>,
    msg: Option<String>,
    retryable: Option<bool>,
    phase: Option<Option<String>>,
    retry_after_ms: Option<u64>,
    finish_reason: Option<String>,
    nonce: Option<u64>,
    /// The [`COLD_KEYS`] seen, for the full mapping: it checks them, and
    /// reads them when the frame's type is not hot.
    other: Vec<(Cow<'de, str>, Box<RawValue>)>,
}

/// Reads a key's value, once.
fn once<'de, T: Deserialize<'de>, A: MapAccess<'de>>(
    slot: &mut Option<T>,
    key: &'static str,
    map: &mut A,
) -> Result<(), A::Error> {
    if slot.is_some() {
        return Err(de::Error::duplicate_field(key));
    }
    *slot = Some(map.next_value()?);
    Ok(())
}

impl<'de> Hot<'de> {
    fn take<A: MapAccess<'de>>(&mut self, key: Key<'de>, map: &mut A) -> Result<(), A::Error> {
        match key {
            Key::Type => once(&mut self.ty, "type", map),
            Key::CallId => once(&mut self.call_id, "call_id", map),
            Key::SessionId => once(&mut self.session_id, "session_id", map),
            Key::Seq => once(&mut self.seq, "seq", map),
            Key::Text => once(&mut self.text, "text", map),
            Key::State => once(&mut self.state, "state", map),
            Key::Provider => once(&mut self.provider, "provider", map),
            Key::Model => once(&mut self.model, "model", map),
            Key::Id => once(&mut self.id, "id", map),
            Key::Function => once(&mut self.function, "function", map),
            Key::TokensIn => once(&mut self.tokens_in, "tokens_in", map),
            Key::TokensOut => once(&mut self.tokens_out, "tokens_out", map),
            Key::Cost => once(&mut self.cost, "cost", map),
            Key::CachedTokens => once(&mut self.cached_tokens, "cached_tokens", map),
            Key::Code => once(&mut self.code, "code", map),
            Key::Message => once(&mut self.message, "message", map),
            Key::Msg => once(&mut self.msg, "msg", map),
            Key::Retryable => once(&mut self.retryable, "retryable", map),
            Key::Phase => once(&mut self.phase, "phase", map),
            Key::RetryAfterMs => once(&mut self.retry_after_ms, "retry_after_ms", map),
            Key::FinishReason => once(&mut self.finish_reason, "finish_reason", map),
            Key::Nonce => once(&mut self.nonce, "nonce", map),
            Key::Cold(key) => {
                let value = map.next_value()?;
                self.other.push((key, value));
                Ok(())
            }
            // As the full mapping does.
            Key::Unknown => map.next_value::<IgnoredAny>().map(drop),
        }
    }

    /// Writes the frame to `out`.
    fn finish<E: de::Error>(&mut self, out: &mut Frame) -> Result<(), E> {
        // The other keys are checked first: a malformed field is the error
        // even when the type is missing or unknown, as in the full mapping.
        let other = std::mem::take(&mut self.other);
        let flat = if other.is_empty() {
            None
        } else {
            let fields = other.iter().map(|(key, value)| (&**key, &**value));
            let flat = Flat::deserialize(MapDeserializer::<_, serde_json::Error>::new(fields));
            Some(flat.map_err(E::custom)?)
        };
        let ty = self
            .ty
            .as_ref()
            .unwrap_or(&Tag::Absent)
            .frame_type()
            .map_err(E::custom)?;
        if is_hot(ty) {
            // A status's `reason` is the one cold key a hot frame reads.
            let reason = flat.map(|flat| flat.reason).unwrap_or_default();
            return self.write_hot(ty, reason, out).map_err(E::custom);
        }
        let mut flat = flat.unwrap_or_default();
        std::mem::take(self).fill(&mut flat);
        *out = flat.into_frame().map_err(E::custom)?;
        Ok(())
    }

    /// Writes the frame of a hot type to `out`. (Other types go through the
    /// full mapping.)
    fn write_hot(&mut self, ty: FrameType, reason: String, out: &mut Frame) -> Result<(), String> {
        let body = match ty {
            FrameType::Status => Body::Status(Status {
                state: self.state.take().unwrap_or_default(),
                provider: self.provider.take().unwrap_or_default(),
                model: self.model.take().unwrap_or_default(),
                reason,
            }),
            FrameType::Token => Body::Token(Token {
                text: self.text.take().flatten().unwrap_or_default(),
            }),
            FrameType::ToolCall => Body::ToolCall(ToolCall {
                id: self.id.take().unwrap_or_default(),
                function: self.function.take().flatten(),
            }),
            FrameType::Usage => Body::Usage(Usage {
                tokens_in: self.tokens_in.unwrap_or_default(),
                tokens_out: self.tokens_out.unwrap_or_default(),
                cost: self.cost.unwrap_or_default(),
                cached_tokens: self.cached_tokens.unwrap_or_default(),
            }),
            FrameType::Error => Body::Error(error_body(
                self.code.take().flatten(),
                // Both may be present (they say the same); `message` wins.
                self.message.take().or(self.msg.take()).unwrap_or_default(),
                self.retryable.unwrap_or_default(),
                self.phase.take().flatten(),
                self.retry_after_ms.unwrap_or_default(),
            )?),
            FrameType::Done => Body::Done(Done {
                finish_reason: self.finish_reason.take().unwrap_or_default(),
            }),
            FrameType::Ack => Body::Ack(Ack {}),
            FrameType::Ping => Body::Ping(Ping {
                nonce: self.nonce.unwrap_or_default(),
            }),
            FrameType::Pong => Body::Pong(Pong {
                nonce: self.nonce.unwrap_or_default(),
            }),
            _ => {
                let mut flat = Flat::default();
                std::mem::take(self).fill(&mut flat);
                *out = flat.into_frame()?;
                return Ok(());
            }
        };
        out.call_id = self.call_id.unwrap_or_default();
        out.session_id = self.session_id.take().unwrap_or_default();
        out.seq = self.seq.unwrap_or_default();
        out.body = Some(body);
        Ok(())
    }
}

/// Reads a hot frame written the way encoders write it, without serde: no
/// whitespace, no escape or control character anywhere, hot keys only, each
/// once, strings, unsigned integers and booleans as values. Returns `false`
/// at the first thing outside that (or for any error), and the caller reads
/// the frame with the visitor instead; for the input it takes, it writes
/// what the visitor would.
pub(super) fn read_canonical(json: &str, out: &mut Frame) -> bool {
    // One pass the compiler vectorizes; then a string ends at its next quote.
    let plain = json
        .bytes()
        .fold(true, |plain, b| plain & (b >= 0x20) & (b != b'\\'));
    plain && read_plain(Scanner { text: json, pos: 0 }, out).is_some()
}

fn read_plain(mut s: Scanner<'_>, out: &mut Frame) -> Option<()> {
    /// Sets a field once; a duplicate is the visitor's error to report.
    fn set<T>(slot: &mut Option<T>, value: T) -> Option<()> {
        slot.is_none().then(|| *slot = Some(value))
    }

    let mut hot = Hot::default();
    s.byte(b'{')?;
    loop {
        let key = Key::hot(s.string()?)?;
        s.byte(b':')?;
        match key {
            Key::Type => {
                let ty = FrameType::from_tag(s.string()?).filter(|&ty| is_hot(ty))?;
                set(&mut hot.ty, Tag::Known(ty))?;
            }
            Key::CallId => set(&mut hot.call_id, s.uint()?)?,
            Key::SessionId => set(&mut hot.session_id, s.string()?.to_owned())?,
            Key::Seq => set(&mut hot.seq, s.uint()?)?,
            Key::Text => set(&mut hot.text, Some(s.string()?.to_owned()))?,
            Key::State => set(&mut hot.state, s.string()?.to_owned())?,
            Key::Provider => set(&mut hot.provider, s.string()?.to_owned())?,
            Key::Model => set(&mut hot.model, s.string()?.to_owned())?,
            Key::Id => set(&mut hot.id, s.string()?.to_owned())?,
            Key::TokensIn => set(&mut hot.tokens_in, s.uint()?)?,
            Key::TokensOut => set(&mut hot.tokens_out, s.uint()?)?,
            Key::CachedTokens => set(&mut hot.cached_tokens, s.uint()?)?,
            Key::Code => set(&mut hot.code, Some(s.string()?.to_owned()))?,
            Key::Message => set(&mut hot.message, s.string()?.to_owned())?,
            Key::Msg => set(&mut hot.msg, s.string()?.to_owned())?,
            Key::Retryable => set(&mut hot.retryable, s.boolean()?)?,
            Key::Phase => set(&mut hot.phase, Some(s.string()?.to_owned()))?,
            Key::RetryAfterMs => set(&mut hot.retry_after_ms, s.uint()?)?,
            Key::FinishReason => set(&mut hot.finish_reason, s.string()?.to_owned())?,
            Key::Nonce => set(&mut hot.nonce, s.uint()?)?,
            // Objects, doubles, other keys: the visitor's.
            Key::Function | Key::Cost | Key::Cold(_) | Key::Unknown => return None,
        }
        match s.next()? {
            b',' => {}
            b'}' => break,
            _ => return None,
        }
    }
    if s.pos != s.text.len() {
        return None;
    }
    hot.finish::<serde_json::Error>(out).ok()
}

/// A JSON text with no escape and no control character, being read by
/// [`read_canonical`].
struct Scanner<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn next(&mut self) -> Option<u8> {
        let b = *self.text.as_bytes().get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    fn byte(&mut self, expected: u8) -> Option<()> {
        (self.next()? == expected).then_some(())
    }

    /// A string: with no escapes, its text is what lies between the quotes.
    fn string(&mut self) -> Option<&'a str> {
        self.byte(b'"')?;
        // Keys and values here are short: a plain loop does as well as `memchr`.
        let len = self.text.as_bytes()[self.pos..]
            .iter()
            .position(|&b| b == b'"')?;
        let text = self.text.get(self.pos..self.pos + len)?;
        self.pos += len + 1;
        Some(text)
    }

    /// Decimal digits, no leading zero, within u64 (JSON has no other way
    /// to write an unsigned integer that serde reads as one).
    fn uint(&mut self) -> Option<u64> {
        let rest = &self.text.as_bytes()[self.pos..];
        let len = rest.iter().position(|b| !b.is_ascii_digit())?;
        if len == 0 || (rest[0] == b'0' && len > 1) {
            return None;
        }
        self.pos += len;
        rest[..len].iter().try_fold(0u64, |n, &d| {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })
    }

    fn boolean(&mut self) -> Option<bool> {
        let rest = &self.text.as_bytes()[self.pos..];
        let (value, len) = if rest.starts_with(b"true") {
            (true, 4)
        } else if rest.starts_with(b"false") {
            (false, 5)
        } else {
            return None;
        };
        self.pos += len;
        Some(value)
    }
}

/// Moves values between [`Hot`] and [`Flat`], field by field.
macro_rules! hot_fields {
    ($($field:ident),* $(,)?) => {
        impl Hot<'_> {
            /// Moves the fields that were seen into `flat`.
            fn fill(self, flat: &mut Flat) {
                $(if let Some(value) = self.$field {
                    flat.$field = value;
                })*
            }

            fn from_flat(flat: Flat) -> Self {
                Self {
                    $($field: Some(flat.$field),)*
                    ..Self::default()
                }
            }
        }
    };
}

hot_fields!(
    ty,
    call_id,
    session_id,
    seq,
    text,
    state,
    provider,
    model,
    id,
    function,
    tokens_in,
    tokens_out,
    cost,
    cached_tokens,
    code,
    message,
    retryable,
    phase,
    retry_after_ms,
    finish_reason,
    nonce,
);

fn error_body(
    code: Option<String>,
    message: String,
    retryable: bool,
    phase: Option<String>,
    retry_after_ms: u64,
) -> Result<Error, String> {
    Ok(Error {
        code: match code {
            // A code from a newer peer is not a reason to lose the frame:
            // it reads as unspecified, which clients treat as INTERNAL.
            Some(name) => crate::ErrorCode::from_name(&name).map_or(0, |code| code as i32),
            None => 0,
        },
        message,
        retryable,
        phase: phase.as_deref().map(parse_phase).transpose()?.unwrap_or(0),
        retry_after_ms,
    })
}

/// Every field any frame type has: the full mapping, in one pass with no
/// buffering. [`Flat::into_frame`] then keeps the fields of the frame's type.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Flat {
    #[serde(rename = "type")]
    ty: Tag,
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
    message: String,
    msg: String,
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

impl Flat {
    fn into_frame(mut self) -> Result<Frame, String> {
        let ty = self.ty.frame_type()?;
        let body = match ty {
            FrameType::Patch => Body::Patch(Patch {
                op: self.op.map(|kind| PatchOp { kind: Some(kind) }),
                rev: self.rev,
            }),
            FrameType::Hello => Body::Hello(Box::new(Hello {
                versions: self.versions,
                encodings: self.encodings.iter().map(|e| parse_encoding(e)).collect(),
                features: self.features,
                token: self.token,
                client: self.client,
            })),
            FrameType::Welcome => Body::Welcome(Box::new(Welcome {
                version: self.version,
                encoding: self.encoding.as_deref().map_or(0, parse_encoding),
                features: self.features,
                server: self.server,
                max_frame_bytes: self.max_frame_bytes,
            })),
            FrameType::CompletionRequest => Body::CompletionRequest(Box::new(CompletionRequest {
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
            })),
            FrameType::Input => Body::Input(Input {
                messages: try_map(self.messages)?,
                end: self.end,
                resume_token: self.resume_token,
            }),
            FrameType::Resume => Body::Resume(Resume {
                after_seq: self.after_seq,
                resume_token: self.resume_token,
            }),
            FrameType::Accepted => Body::Accepted(Accepted {
                resume_token: self.resume_token,
            }),
            FrameType::Cancel => Body::Cancel(Cancel {
                reason: self.reason,
                resume_token: self.resume_token,
            }),
            FrameType::ModelsRequest => Body::ModelsRequest(ModelsRequest {
                provider: self.provider,
            }),
            FrameType::ProviderInfo => Body::ProviderInfo(ProviderInfo {
                provider: self.provider,
                models: self.models,
            }),
            // Only reached for an array (see `FrameVisitor::visit_seq`).
            FrameType::Status
            | FrameType::Token
            | FrameType::ToolCall
            | FrameType::Usage
            | FrameType::Error
            | FrameType::Done
            | FrameType::Ack
            | FrameType::Ping
            | FrameType::Pong => {
                let mut frame = Frame::default();
                let reason = std::mem::take(&mut self.reason);
                Hot::from_flat(self).write_hot(ty, reason, &mut frame)?;
                return Ok(frame);
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The field names the derived [`Flat`] reads (aliases included).
    fn flat_fields() -> Vec<&'static str> {
        /// Answers `deserialize_struct` with the names it was given.
        struct Fields;

        #[derive(Debug)]
        struct Names(Vec<&'static str>);

        impl fmt::Display for Names {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:?}", self.0)
            }
        }

        impl std::error::Error for Names {}

        impl de::Error for Names {
            fn custom<T: fmt::Display>(msg: T) -> Self {
                panic!("{msg}")
            }
        }

        impl<'de> Deserializer<'de> for Fields {
            type Error = Names;

            fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Names> {
                panic!("Flat is a struct")
            }

            fn deserialize_struct<V: Visitor<'de>>(
                self,
                _: &'static str,
                fields: &'static [&'static str],
                _: V,
            ) -> Result<V::Value, Names> {
                Err(Names(fields.to_vec()))
            }

            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
                bytes byte_buf option unit unit_struct newtype_struct seq tuple
                tuple_struct map enum identifier ignored_any
            }
        }

        Flat::deserialize(Fields).err().expect("the field names").0
    }

    #[test]
    fn hot_and_cold_keys_are_the_full_mappings_fields() {
        let mut ours: Vec<&str> = HOT_KEYS.iter().chain(COLD_KEYS).copied().collect();
        let mut flat = flat_fields();
        if !flat.contains(&"msg") {
            // Older serde derives leave aliases out of the list.
            flat.push("msg");
        }
        ours.sort_unstable();
        flat.sort_unstable();
        let len = ours.len();
        ours.dedup();
        assert_eq!(ours.len(), len, "a key is both hot and cold");
        assert_eq!(ours, flat);
        for key in HOT_KEYS {
            assert!(Key::hot(key).is_some(), "{key}");
        }
        for key in COLD_KEYS {
            assert!(Key::hot(key).is_none(), "{key}");
            assert!(
                matches!(Key::other(key, || Cow::Borrowed(key)), Key::Cold(_)),
                "{key}"
            );
        }
    }

    fn canonical(json: &str) -> Option<Frame> {
        let mut frame = Frame::default();
        read_canonical(json, &mut frame).then_some(frame)
    }

    #[test]
    fn encoders_output_of_hot_events_takes_the_direct_path() {
        let lines = [
            r#"{"type":"token","call_id":1,"session_id":"s_0123456789abcdef","seq":1,"text":" hello"}"#,
            r#"{"type":"token","session_id":"s","seq":2,"text":""}"#,
            r#"{"type":"status","session_id":"s","seq":1,"state":"streaming","provider":"p","model":"m"}"#,
            r#"{"type":"error","session_id":"s","seq":6,"code":"RATE_LIMIT","message":"...","retryable":true,"phase":"after_first_token","retry_after_ms":500}"#,
            r#"{"type":"done","session_id":"s","seq":7,"finish_reason":"stop"}"#,
            r#"{"type":"ack","session_id":"s","seq":17}"#,
            r#"{"type":"ping","nonce":9}"#,
            r#"{"type":"pong","nonce":18446744073709551615}"#,
        ];
        for json in lines {
            let frame = canonical(json).unwrap_or_else(|| panic!("not direct: {json}"));
            assert_eq!(Some(frame), serde_json::from_str(json).ok(), "{json}");
        }
    }

    #[test]
    fn anything_else_is_left_to_the_visitor() {
        let lines = [
            // Cold types, other fields, doubles, objects, null.
            r#"{"type":"hello","versions":["1.0"]}"#,
            r#"{"type":"token","text":"a","stream":true}"#,
            r#"{"type":"token","text":"a","future":1}"#,
            r#"{"type":"usage","tokens_in":1,"tokens_out":2,"cost":0.5}"#,
            r#"{"type":"tool_call","id":"c","function":{"name":"f"}}"#,
            r#"{"type":"token","text":null}"#,
            // Escapes, control characters, whitespace, trailing bytes.
            r#"{"type":"token","text":"a\nb"}"#,
            "{\"type\":\"token\",\"text\":\"a\tb\"}",
            r#"{"type":"token", "text":"a"}"#,
            r#"{"type":"token","text":"a"} "#,
            // Numbers that are not plain u64 digits.
            r#"{"type":"token","seq":01}"#,
            r#"{"type":"token","seq":1.0}"#,
            r#"{"type":"token","seq":-1}"#,
            r#"{"type":"token","seq":18446744073709551616}"#,
            // Duplicates, the alias, errors only the visitor words.
            r#"{"type":"token","text":"a","text":"b"}"#,
            r#"{"type":"teleport"}"#,
            r#"{"text":"a"}"#,
            r#"{}"#,
        ];
        for json in lines {
            assert!(canonical(json).is_none(), "direct: {json}");
        }
        // What it leaves alone is still read.
        let frame = Frame::from_json(br#"{"type":"token","text":"a\nb"}"#).unwrap();
        assert_eq!(
            frame.body,
            Some(Body::Token(Token {
                text: "a\nb".into()
            }))
        );
    }
}
