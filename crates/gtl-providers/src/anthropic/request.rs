//! `CompletionRequest` → Anthropic Messages request body.
//!
//! IO-free: [`build`] returns the JSON body; the provider adds the path and
//! headers. Every mapping decision is listed in the [module docs](super).

use base64::Engine as _;
use gtl_core::ProviderError;
use gtl_proto::types::{Choice, Content, Part, Source, ToolChoiceMode};
use gtl_proto::{CompletionRequest, ErrorCode, Image, Message, Role, Tool, ToolCall, ToolChoice};
use serde_json::{Map, Value, json};

use super::models;

/// The request body for `POST /v1/messages`.
///
/// `stream` sets the body's `stream` field: `true` for the SSE endpoint,
/// `false` for a unary answer.
pub(crate) fn build(request: &CompletionRequest, stream: bool) -> Result<Value, ProviderError> {
    let mut body = Map::new();
    body.insert("model".into(), Value::String(request.model.clone()));
    let max_tokens = request
        .max_tokens
        .unwrap_or_else(|| models::default_max_tokens(&request.model));
    body.insert("max_tokens".into(), max_tokens.into());

    let (system, messages) = messages(&request.messages)?;
    if messages.is_empty() {
        return Err(invalid("the request has no user or assistant message"));
    }
    if let Some(system) = system {
        body.insert("system".into(), system);
    }
    body.insert("messages".into(), Value::Array(messages));

    if !request.stop.is_empty() {
        body.insert("stop_sequences".into(), json!(request.stop));
    }
    if let Some(temperature) = request.temperature {
        body.insert("temperature".into(), json!(temperature));
    }
    if let Some(top_p) = request.top_p {
        body.insert("top_p".into(), json!(top_p));
    }
    if !request.tools.is_empty() {
        let tools = request.tools.iter().map(tool).collect::<Result<_, _>>()?;
        body.insert("tools".into(), Value::Array(tools));
        if let Some(choice) = request.tool_choice.as_ref().and_then(tool_choice) {
            body.insert("tool_choice".into(), choice);
        }
    }
    if stream {
        body.insert("stream".into(), Value::Bool(true));
    }
    Ok(Value::Object(body))
}

fn invalid(message: impl Into<String>) -> ProviderError {
    ProviderError::new(ErrorCode::InvalidRequest, message)
}

/// The top-level `system` field and the `messages` array.
///
/// System messages, wherever they are, go to `system` in order: a string for
/// one, an array of text blocks for several. Tool messages become
/// `tool_result` blocks in a user turn; consecutive messages that land on
/// the same role are merged into one turn, so results of parallel tool
/// calls share one user message.
fn messages(input: &[Message]) -> Result<(Option<Value>, Vec<Value>), ProviderError> {
    let mut system = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for message in input {
        let (role, blocks) = match message.role() {
            Role::System => {
                let text = plain_text(message);
                if !text.is_empty() {
                    system.push(text);
                }
                continue;
            }
            Role::User | Role::Unspecified => ("user", content_blocks(message)?),
            Role::Assistant => ("assistant", assistant_blocks(message)?),
            Role::Tool => ("user", vec![tool_result(message)?]),
        };
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((last, existing)) if *last == role => existing.extend(blocks),
            _ => turns.push((role, blocks)),
        }
    }
    let system = match system.len() {
        0 => None,
        1 => system.pop().map(Value::String),
        _ => Some(Value::Array(
            system
                .into_iter()
                .map(|text| json!({"type": "text", "text": text}))
                .collect(),
        )),
    };
    let messages = turns
        .into_iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect();
    Ok((system, messages))
}

/// A message's text: its string, or its text parts joined with nothing
/// between them.
fn plain_text(message: &Message) -> String {
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

/// Text and image blocks of a message. Empty text is dropped: the API
/// rejects empty text blocks.
fn content_blocks(message: &Message) -> Result<Vec<Value>, ProviderError> {
    let mut blocks = Vec::new();
    match &message.content {
        None => {}
        Some(Content::Text(text)) => push_text(&mut blocks, text),
        Some(Content::Parts(parts)) => {
            for part in &parts.parts {
                match &part.part {
                    Some(Part::Text(text)) => push_text(&mut blocks, text),
                    Some(Part::Image(image)) => blocks.push(image_block(image)?),
                    None => {}
                }
            }
        }
    }
    Ok(blocks)
}

fn push_text(blocks: &mut Vec<Value>, text: &str) {
    if !text.is_empty() {
        blocks.push(json!({"type": "text", "text": text}));
    }
}

/// The media types the API takes for images.
const IMAGE_TYPES: [&str; 4] = ["image/jpeg", "image/png", "image/gif", "image/webp"];

/// An `image` block: base64 `source` for inline data and `data:` URLs, a
/// `url` source for other URLs (the API fetches them).
fn image_block(image: &Image) -> Result<Value, ProviderError> {
    let source = match &image.source {
        Some(Source::Data(data)) => base64_source(
            &image.media_type,
            &base64::engine::general_purpose::STANDARD.encode(data),
        )?,
        Some(Source::Url(url)) => match parse_data_url(url) {
            Some((media_type, data)) => {
                let media_type = if image.media_type.is_empty() {
                    media_type
                } else {
                    &image.media_type
                };
                base64_source(media_type, data)?
            }
            None => json!({"type": "url", "url": url}),
        },
        None => return Err(invalid("an image part has neither data nor url")),
    };
    Ok(json!({"type": "image", "source": source}))
}

fn base64_source(media_type: &str, data: &str) -> Result<Value, ProviderError> {
    if !IMAGE_TYPES.contains(&media_type) {
        return Err(invalid(format!(
            "image media type `{media_type}` is not one of {}",
            IMAGE_TYPES.join(", ")
        )));
    }
    Ok(json!({"type": "base64", "media_type": media_type, "data": data}))
}

/// Splits a base64 `data:` URL into its media type and payload.
pub(crate) fn parse_data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let media_type = meta.strip_suffix(";base64")?;
    Some((media_type, data))
}

/// An assistant message's text blocks, then a `tool_use` block per call.
fn assistant_blocks(message: &Message) -> Result<Vec<Value>, ProviderError> {
    let mut blocks = content_blocks(message)?;
    for call in &message.tool_calls {
        blocks.push(tool_use(call)?);
    }
    Ok(blocks)
}

fn tool_use(call: &ToolCall) -> Result<Value, ProviderError> {
    let function = call
        .function
        .as_ref()
        .ok_or_else(|| invalid(format!("tool call `{}` has no function", call.id)))?;
    let input = if function.arguments.trim().is_empty() {
        Value::Object(Map::new())
    } else {
        match serde_json::from_str::<Value>(&function.arguments) {
            Ok(value @ Value::Object(_)) => value,
            _ => {
                return Err(invalid(format!(
                    "the arguments of tool call `{}` are not a JSON object",
                    call.id
                )));
            }
        }
    };
    Ok(json!({
        "type": "tool_use",
        "id": tool_id(&call.id),
        "name": function.name,
        "input": input,
    }))
}

/// A tool message as a `tool_result` block: the text as a string, or text
/// and image blocks when the result has images.
fn tool_result(message: &Message) -> Result<Value, ProviderError> {
    if message.tool_call_id.is_empty() {
        return Err(invalid("a tool message has no tool_call_id"));
    }
    let has_images = matches!(&message.content, Some(Content::Parts(parts))
        if parts.parts.iter().any(|p| matches!(p.part, Some(Part::Image(_)))));
    let content = if has_images {
        Value::Array(content_blocks(message)?)
    } else {
        Value::String(plain_text(message))
    };
    Ok(json!({
        "type": "tool_result",
        "tool_use_id": tool_id(&message.tool_call_id),
        "content": content,
    }))
}

/// A tool call id in the form the API accepts (`^[a-zA-Z0-9_-]+$`).
///
/// Ids made by other providers (a conversation may move between them) can
/// hold other characters; each is replaced by `_`. The mapping is the same
/// for a `tool_use` and the `tool_result` that answers it, so they still
/// match.
pub(crate) fn tool_id(id: &str) -> String {
    if id.is_empty() {
        return "_".to_owned();
    }
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A tool definition: the GTL parameters schema as `input_schema`.
fn tool(tool: &Tool) -> Result<Value, ProviderError> {
    let function = tool
        .function
        .as_ref()
        .ok_or_else(|| invalid("a tool has no function"))?;
    let mut schema = if function.parameters.trim().is_empty() {
        Map::new()
    } else {
        match serde_json::from_str::<Value>(&function.parameters) {
            Ok(Value::Object(schema)) => schema,
            _ => {
                return Err(invalid(format!(
                    "the parameters of tool `{}` are not a JSON object",
                    function.name
                )));
            }
        }
    };
    // The API requires an object schema with a `type`.
    schema
        .entry("type")
        .or_insert_with(|| Value::String("object".into()));
    let mut out = Map::new();
    out.insert("name".into(), Value::String(function.name.clone()));
    if !function.description.is_empty() {
        out.insert(
            "description".into(),
            Value::String(function.description.clone()),
        );
    }
    out.insert("input_schema".into(), Value::Object(schema));
    Ok(Value::Object(out))
}

/// `auto` → `auto`, `none` → `none`, `required` → `any`, a function name →
/// `tool`. Unset leaves the API's default (`auto`).
fn tool_choice(choice: &ToolChoice) -> Option<Value> {
    match choice.choice.as_ref()? {
        Choice::Mode(mode) => match ToolChoiceMode::try_from(*mode).ok()? {
            ToolChoiceMode::Unspecified => None,
            ToolChoiceMode::Auto => Some(json!({"type": "auto"})),
            ToolChoiceMode::None => Some(json!({"type": "none"})),
            ToolChoiceMode::Required => Some(json!({"type": "any"})),
        },
        Choice::Function(name) => Some(json!({"type": "tool", "name": name})),
    }
}
