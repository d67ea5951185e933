//! JSON mapping of the request-side types (messages, tools, routing).
//!
//! These mirror structs carry serde's derives; requests are not on the hot
//! path, so converting through them costs nothing that matters.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::names::{parse_role, role_name};
use super::{Fields, finite};
use crate::generated::{
    CompletionRequest, ContentPart, ContentParts, FunctionDef, Image, Message, Routing, Tool,
    ToolCall, ToolChoice, content_part::Part, image::Source, message::Content, tool_choice,
};

pub(super) fn serialize_request<M: SerializeMap>(
    b: &CompletionRequest,
    out: &mut Fields<'_, M>,
) -> Result<(), M::Error> {
    out.str("provider", &b.provider)?;
    out.str("model", &b.model)?;
    let messages: Vec<MessageJson> = b.messages.iter().map(MessageJson::from).collect();
    out.list("messages", &messages)?;
    out.flag("stream", b.stream)?;
    out.some("max_tokens", b.max_tokens.as_ref())?;
    let temperature = b
        .temperature
        .map(|t| finite("temperature", t))
        .transpose()?;
    out.some("temperature", temperature.as_ref())?;
    let top_p = b.top_p.map(|p| finite("top_p", p)).transpose()?;
    out.some("top_p", top_p.as_ref())?;
    out.list("stop", &b.stop)?;
    let tools = b
        .tools
        .iter()
        .map(ToolJson::try_from)
        .collect::<Result<Vec<_>, _>>();
    let tools = tools.map_err(<M::Error as serde::ser::Error>::custom)?;
    out.list("tools", &tools)?;
    let choice = b.tool_choice.as_ref().and_then(ToolChoiceJson::from_proto);
    out.some("tool_choice", choice.as_ref())?;
    out.list("providers", &b.providers)?;
    if let Some(budget) = b.routing.as_ref().and_then(|r| r.budget) {
        finite("budget", budget)?;
    }
    out.some(
        "routing",
        b.routing.as_ref().map(RoutingJson::from).as_ref(),
    )?;
    out.map("metadata", &b.metadata)?;
    out.flag("pipe", b.pipe)
}

/// `{"role":…,"content":…,"tool_call_id":…,"tool_calls":[…],"name":…}`.
#[derive(Serialize, Deserialize, Default)]
#[serde(default)]
pub(super) struct MessageJson {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<ContentJson>,
    #[serde(skip_serializing_if = "String::is_empty")]
    tool_call_id: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ToolCallJson>,
    #[serde(skip_serializing_if = "String::is_empty")]
    name: String,
    /// The seeds' form of images: base64 strings (or URLs) beside the
    /// content. Read as image parts after the text; never written (the
    /// parts are).
    #[serde(skip_serializing)]
    images: Vec<String>,
}

/// A tool call inside an assistant message: the event's fields.
#[derive(Serialize, Deserialize, Default)]
#[serde(default)]
struct ToolCallJson {
    #[serde(skip_serializing_if = "String::is_empty")]
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    function: Option<crate::FunctionCall>,
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum ContentJson {
    Text(String),
    Parts(Vec<PartJson>),
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum PartJson {
    Text {
        text: String,
    },
    Image {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        data: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        url: Option<String>,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        media_type: String,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        detail: String,
    },
}

impl From<&Message> for MessageJson {
    fn from(m: &Message) -> Self {
        Self {
            role: role_name(m.role).map(str::to_owned),
            content: m.content.as_ref().map(|c| match c {
                Content::Text(text) => ContentJson::Text(text.clone()),
                Content::Parts(parts) => ContentJson::Parts(
                    parts
                        .parts
                        .iter()
                        .filter_map(PartJson::from_proto)
                        .collect(),
                ),
            }),
            tool_call_id: m.tool_call_id.clone(),
            tool_calls: m
                .tool_calls
                .iter()
                .map(|c| ToolCallJson {
                    id: c.id.clone(),
                    function: c.function.clone(),
                })
                .collect(),
            name: m.name.clone(),
            images: Vec::new(),
        }
    }
}

impl TryFrom<MessageJson> for Message {
    type Error = String;

    fn try_from(m: MessageJson) -> Result<Self, String> {
        let mut content = match m.content {
            None => None,
            Some(ContentJson::Text(text)) => Some(Content::Text(text)),
            Some(ContentJson::Parts(parts)) => Some(Content::Parts(ContentParts {
                parts: parts
                    .into_iter()
                    .map(PartJson::into_proto)
                    .collect::<Result<_, _>>()?,
            })),
        };
        if !m.images.is_empty() {
            let mut parts = match content {
                None => Vec::new(),
                Some(Content::Text(text)) => vec![ContentPart {
                    part: Some(Part::Text(text)),
                }],
                Some(Content::Parts(parts)) => parts.parts,
            };
            for image in m.images {
                parts.push(seed_image(image)?);
            }
            content = Some(Content::Parts(ContentParts { parts }));
        }
        Ok(Self {
            role: m.role.as_deref().map(parse_role).transpose()?.unwrap_or(0),
            content,
            tool_call_id: m.tool_call_id,
            tool_calls: m
                .tool_calls
                .into_iter()
                .map(|c| ToolCall {
                    id: c.id,
                    function: c.function,
                })
                .collect(),
            name: m.name,
        })
    }
}

/// One of the seeds' `images`: a URL (`https:`, `http:`, `data:`) or the
/// image's bytes in base64, whose media type is read from its first bytes.
fn seed_image(image: String) -> Result<ContentPart, String> {
    let is_url = ["https:", "http:", "data:"]
        .iter()
        .any(|scheme| image.starts_with(scheme));
    let (source, media_type) = if is_url {
        (Source::Url(image), String::new())
    } else {
        let bytes = BASE64
            .decode(image.trim())
            .map_err(|e| format!("an `images` entry is not base64: {e}"))?;
        let media_type = sniff_image(&bytes).unwrap_or_default().to_owned();
        (Source::Data(bytes), media_type)
    };
    Ok(ContentPart {
        part: Some(Part::Image(Image {
            source: Some(source),
            media_type,
            detail: String::new(),
        })),
    })
}

/// The media type of the common image formats, from their magic bytes.
fn sniff_image(bytes: &[u8]) -> Option<&'static str> {
    match bytes {
        [0x89, b'P', b'N', b'G', ..] => Some("image/png"),
        [0xFF, 0xD8, 0xFF, ..] => Some("image/jpeg"),
        [b'G', b'I', b'F', b'8', ..] => Some("image/gif"),
        [
            b'R',
            b'I',
            b'F',
            b'F',
            _,
            _,
            _,
            _,
            b'W',
            b'E',
            b'B',
            b'P',
            ..,
        ] => Some("image/webp"),
        _ => None,
    }
}

impl PartJson {
    /// A part with no content, like an image with neither data nor url, has
    /// no JSON form (a decoder rejects `{"type":"image"}`); it is dropped.
    fn from_proto(part: &ContentPart) -> Option<Self> {
        Some(match part.part.as_ref()? {
            Part::Text(text) => Self::Text { text: text.clone() },
            Part::Image(image) => {
                let (data, url) = match image.source.as_ref()? {
                    Source::Data(bytes) => (Some(BASE64.encode(bytes)), None),
                    Source::Url(url) => (None, Some(url.clone())),
                };
                Self::Image {
                    data,
                    url,
                    media_type: image.media_type.clone(),
                    detail: image.detail.clone(),
                }
            }
        })
    }

    fn into_proto(self) -> Result<ContentPart, String> {
        let part = match self {
            Self::Text { text } => Part::Text(text),
            Self::Image {
                data,
                url,
                media_type,
                detail,
            } => {
                let source = match (data, url) {
                    (Some(data), None) => Source::Data(
                        BASE64
                            .decode(data)
                            .map_err(|e| format!("image data is not base64: {e}"))?,
                    ),
                    (None, Some(url)) => Source::Url(url),
                    _ => return Err("an image part needs exactly one of `data` or `url`".into()),
                };
                Part::Image(Image {
                    source: Some(source),
                    media_type,
                    detail,
                })
            }
        };
        Ok(ContentPart { part: Some(part) })
    }
}

/// `{"type":"function","function":{"name":…,"description":…,"parameters":{…}}}`.
#[derive(Serialize, Deserialize)]
pub(super) struct ToolJson {
    #[serde(rename = "type", default = "function_type")]
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    function: Option<FunctionDefJson>,
}

fn function_type() -> String {
    "function".to_owned()
}

#[derive(Serialize, Deserialize)]
struct FunctionDefJson {
    #[serde(default)]
    name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    description: String,
    /// Kept as raw JSON text: byte for byte what the proto's string holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    parameters: Option<Box<RawValue>>,
}

impl TryFrom<&Tool> for ToolJson {
    type Error = String;

    fn try_from(tool: &Tool) -> Result<Self, String> {
        let function = match &tool.function {
            None => None,
            Some(f) => Some(FunctionDefJson {
                name: f.name.clone(),
                description: f.description.clone(),
                parameters: if f.parameters.is_empty() {
                    None
                } else {
                    Some(RawValue::from_string(f.parameters.clone()).map_err(|e| {
                        format!("parameters of tool `{}` are not JSON: {e}", f.name)
                    })?)
                },
            }),
        };
        Ok(Self {
            kind: function_type(),
            function,
        })
    }
}

impl From<ToolJson> for Tool {
    fn from(tool: ToolJson) -> Self {
        Self {
            function: tool.function.map(|f| FunctionDef {
                name: f.name,
                description: f.description,
                parameters: f.parameters.map(|p| p.get().to_owned()).unwrap_or_default(),
            }),
        }
    }
}

/// `"auto"`, `"none"`, `"required"` or `{"type":"function","function":{"name":…}}`.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
pub(super) enum ToolChoiceJson {
    Mode(ToolChoiceMode),
    Function {
        #[serde(rename = "type", default = "function_type")]
        kind: String,
        function: NamedFunction,
    },
}

#[derive(Serialize, Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub(super) enum ToolChoiceMode {
    Auto,
    None,
    Required,
}

#[derive(Serialize, Deserialize)]
pub(super) struct NamedFunction {
    name: String,
}

impl ToolChoiceJson {
    /// An empty tool choice is the same as none; it has no JSON form.
    fn from_proto(choice: &ToolChoice) -> Option<Self> {
        use tool_choice::{Choice, Mode};
        Some(match choice.choice.as_ref()? {
            Choice::Function(name) => Self::Function {
                kind: function_type(),
                function: NamedFunction { name: name.clone() },
            },
            Choice::Mode(mode) => Self::Mode(match Mode::try_from(*mode).ok()? {
                Mode::Unspecified => return None,
                Mode::Auto => ToolChoiceMode::Auto,
                Mode::None => ToolChoiceMode::None,
                Mode::Required => ToolChoiceMode::Required,
            }),
        })
    }
}

impl From<ToolChoiceJson> for ToolChoice {
    fn from(choice: ToolChoiceJson) -> Self {
        use tool_choice::{Choice, Mode};
        let choice = match choice {
            ToolChoiceJson::Mode(mode) => Choice::Mode(
                (match mode {
                    ToolChoiceMode::Auto => Mode::Auto,
                    ToolChoiceMode::None => Mode::None,
                    ToolChoiceMode::Required => Mode::Required,
                }) as i32,
            ),
            ToolChoiceJson::Function { function, .. } => Choice::Function(function.name),
        };
        Self {
            choice: Some(choice),
        }
    }
}

/// `{"intent":…,"budget":…,"latency":…,"prefer_local":…,"tags":{…}}`.
#[derive(Serialize, Deserialize, Default)]
#[serde(default)]
pub(super) struct RoutingJson {
    #[serde(skip_serializing_if = "String::is_empty")]
    intent: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    budget: Option<f64>,
    #[serde(skip_serializing_if = "String::is_empty")]
    latency: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    prefer_local: bool,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    tags: BTreeMap<String, String>,
}

impl From<&Routing> for RoutingJson {
    fn from(r: &Routing) -> Self {
        Self {
            intent: r.intent.clone(),
            budget: r.budget,
            latency: r.latency.clone(),
            prefer_local: r.prefer_local,
            tags: r.tags.clone(),
        }
    }
}

impl From<RoutingJson> for Routing {
    fn from(r: RoutingJson) -> Self {
        Self {
            intent: r.intent,
            budget: r.budget,
            latency: r.latency,
            prefer_local: r.prefer_local,
            tags: r.tags,
        }
    }
}
