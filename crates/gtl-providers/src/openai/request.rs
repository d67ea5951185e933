//! GTL request → Chat Completions request body (`CreateChatCompletionRequest`).

use base64::Engine as _;
use gtl_core::ProviderError;
use gtl_proto::types::{Choice, Content, Part, Source, ToolChoiceMode};
use gtl_proto::{CompletionRequest, ErrorCode, Image, Message, Role, ToolChoice};
use serde_json::{Map, Value, json};

use super::Dialect;

/// The most stop sequences OpenAI accepts.
const MAX_STOP: usize = 4;

/// Builds the JSON body for `request`, sent for `model`.
pub(super) fn body(
    request: &CompletionRequest,
    model: &str,
    dialect: &Dialect,
    stream: bool,
) -> Result<Value, ProviderError> {
    if request.messages.is_empty() {
        return Err(invalid("request has no messages"));
    }
    let mut body = Map::new();
    body.insert("model".into(), json!(model));
    let messages = request
        .messages
        .iter()
        .map(message)
        .collect::<Result<Vec<_>, _>>()?;
    body.insert("messages".into(), Value::Array(messages));
    if stream {
        body.insert("stream".into(), json!(true));
        if dialect.stream_options {
            // Always: the usage chunk is the only source of token counts.
            body.insert("stream_options".into(), json!({"include_usage": true}));
        }
    }
    if let Some(max_tokens) = request.max_tokens {
        body.insert(dialect.max_tokens_field.into(), json!(max_tokens));
    }
    if let Some(temperature) = request.temperature {
        body.insert("temperature".into(), json!(temperature));
    }
    if let Some(top_p) = request.top_p {
        body.insert("top_p".into(), json!(top_p));
    }
    if !request.stop.is_empty() {
        if dialect.official && request.stop.len() > MAX_STOP {
            return Err(invalid(format!(
                "at most {MAX_STOP} stop sequences are allowed, got {}",
                request.stop.len()
            )));
        }
        body.insert("stop".into(), json!(request.stop));
    }
    if !request.tools.is_empty() {
        let tools = request
            .tools
            .iter()
            .map(|tool| {
                let function = tool
                    .function
                    .as_ref()
                    .ok_or_else(|| invalid("a tool has no function"))?;
                let mut definition = Map::new();
                definition.insert("name".into(), json!(function.name));
                if !function.description.is_empty() {
                    definition.insert("description".into(), json!(function.description));
                }
                if !function.parameters.trim().is_empty() {
                    let parameters: Value =
                        serde_json::from_str(&function.parameters).map_err(|error| {
                            invalid(format!(
                                "tool `{}`: parameters are not JSON: {error}",
                                function.name
                            ))
                        })?;
                    definition.insert("parameters".into(), parameters);
                }
                Ok(json!({"type": "function", "function": definition}))
            })
            .collect::<Result<Vec<_>, ProviderError>>()?;
        body.insert("tools".into(), Value::Array(tools));
    }
    if let Some(choice) = tool_choice(request.tool_choice.as_ref()) {
        body.insert("tool_choice".into(), choice);
    }
    Ok(Value::Object(body))
}

fn tool_choice(choice: Option<&ToolChoice>) -> Option<Value> {
    match choice?.choice.as_ref()? {
        Choice::Mode(mode) => match ToolChoiceMode::try_from(*mode).ok()? {
            ToolChoiceMode::Auto => Some(json!("auto")),
            ToolChoiceMode::None => Some(json!("none")),
            ToolChoiceMode::Required => Some(json!("required")),
            ToolChoiceMode::Unspecified => None,
        },
        Choice::Function(name) => Some(json!({"type": "function", "function": {"name": name}})),
    }
}

fn message(message: &Message) -> Result<Value, ProviderError> {
    let mut out = Map::new();
    match message.role() {
        Role::System => {
            out.insert("role".into(), json!("system"));
            out.insert("content".into(), json!(text_only(message, "system")?));
        }
        Role::User => {
            out.insert("role".into(), json!("user"));
            out.insert("content".into(), user_content(message)?);
        }
        Role::Assistant => {
            out.insert("role".into(), json!("assistant"));
            let text = text_only(message, "assistant")?;
            if !message.tool_calls.is_empty() {
                let calls: Vec<Value> = message
                    .tool_calls
                    .iter()
                    .map(|call| {
                        let (name, arguments) = call
                            .function
                            .as_ref()
                            .map_or(("", ""), |f| (f.name.as_str(), f.arguments.as_str()));
                        json!({
                            "id": call.id,
                            "type": "function",
                            "function": {"name": name, "arguments": arguments},
                        })
                    })
                    .collect();
                out.insert("tool_calls".into(), Value::Array(calls));
                // Content is optional next to tool calls.
                if !text.is_empty() {
                    out.insert("content".into(), json!(text));
                }
            } else {
                out.insert("content".into(), json!(text));
            }
        }
        Role::Tool => {
            if message.tool_call_id.is_empty() {
                return Err(invalid("a tool message needs the tool_call_id it answers"));
            }
            out.insert("role".into(), json!("tool"));
            out.insert("tool_call_id".into(), json!(message.tool_call_id));
            out.insert("content".into(), json!(text_only(message, "tool")?));
        }
        Role::Unspecified => return Err(invalid("a message has no role")),
    }
    if !message.name.is_empty() && message.role() != Role::Tool {
        out.insert("name".into(), json!(message.name));
    }
    Ok(Value::Object(out))
}

/// The text of a message whose role takes text only.
fn text_only(message: &Message, role: &str) -> Result<String, ProviderError> {
    match &message.content {
        None => Ok(String::new()),
        Some(Content::Text(text)) => Ok(text.clone()),
        Some(Content::Parts(parts)) => parts
            .parts
            .iter()
            .map(|part| match &part.part {
                Some(Part::Text(text)) => Ok(text.as_str()),
                Some(Part::Image(_)) => Err(invalid(format!(
                    "OpenAI takes images in user messages only, not in {role} messages"
                ))),
                None => Ok(""),
            })
            .collect(),
    }
}

fn user_content(message: &Message) -> Result<Value, ProviderError> {
    match &message.content {
        None => Ok(json!("")),
        Some(Content::Text(text)) => Ok(json!(text)),
        Some(Content::Parts(parts)) => {
            let parts = parts
                .parts
                .iter()
                .filter_map(|part| match &part.part {
                    Some(Part::Text(text)) => Some(Ok(json!({"type": "text", "text": text}))),
                    Some(Part::Image(image)) => Some(image_part(image)),
                    None => None,
                })
                .collect::<Result<Vec<_>, _>>()?;
            if parts.is_empty() {
                // The spec wants at least one part.
                return Ok(json!(""));
            }
            Ok(Value::Array(parts))
        }
    }
}

fn image_part(image: &Image) -> Result<Value, ProviderError> {
    let url = match &image.source {
        Some(Source::Url(url)) => url.clone(),
        Some(Source::Data(data)) => {
            let media_type = if image.media_type.is_empty() {
                sniff_image(data)
                    .ok_or_else(|| invalid("image data without media_type, of an unknown format"))?
            } else {
                image.media_type.as_str()
            };
            format!(
                "data:{media_type};base64,{}",
                base64::engine::general_purpose::STANDARD.encode(data)
            )
        }
        None => return Err(invalid("an image has neither data nor url")),
    };
    let mut image_url = Map::new();
    image_url.insert("url".into(), json!(url));
    if matches!(image.detail.as_str(), "auto" | "low" | "high") {
        image_url.insert("detail".into(), json!(image.detail));
    }
    Ok(json!({"type": "image_url", "image_url": image_url}))
}

/// The media type of the image formats OpenAI takes, by magic bytes.
fn sniff_image(data: &[u8]) -> Option<&'static str> {
    if data.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if data.starts_with(b"\xff\xd8\xff") {
        Some("image/jpeg")
    } else if data.starts_with(b"GIF87a") || data.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if data.len() >= 12 && &data[..4] == b"RIFF" && &data[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

fn invalid(message: impl Into<String>) -> ProviderError {
    ProviderError::new(ErrorCode::InvalidRequest, message)
}
