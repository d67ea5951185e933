//! `CompletionRequest` → Gemini `GenerateContentRequest` (proto3 JSON).
//!
//! IO-free: [`path`] gives the endpoint, [`build`] the JSON body. Every
//! mapping decision is listed in the [module docs](super).

use std::collections::HashMap;

use base64::Engine as _;
use gtl_core::ProviderError;
use gtl_proto::types::{Choice, Content, Part, Source, ToolChoiceMode};
use gtl_proto::{CompletionRequest, ErrorCode, Image, Message, Role, Tool, ToolCall, ToolChoice};
use serde_json::{Map, Value, json};

use super::tool_id;

/// The thought signature Google documents for function calls Gemini did not
/// produce (or whose signature was lost): it tells Gemini 3 models to skip
/// their signature check instead of rejecting the request.
pub(crate) const SKIP_SIGNATURE: &str = "skip_thought_signature_validator";

/// The model id as it goes into the path: without a `models/` prefix, and
/// only if it is a plain id (letters, digits, `-`, `.`, `_`).
pub(crate) fn model_id(model: &str) -> Result<&str, ProviderError> {
    let id = model.strip_prefix("models/").unwrap_or(model);
    let plain = !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    if plain {
        Ok(id)
    } else {
        Err(ProviderError::new(
            ErrorCode::ModelNotFound,
            format!("gemini: `{model}` is not a Gemini model id"),
        ))
    }
}

/// The path (and query) of the call: `:streamGenerateContent?alt=sse` for a
/// stream, `:generateContent` for a unary answer.
pub(crate) fn path(model: &str, stream: bool) -> Result<String, ProviderError> {
    let id = model_id(model)?;
    Ok(if stream {
        format!("/v1beta/models/{id}:streamGenerateContent?alt=sse")
    } else {
        format!("/v1beta/models/{id}:generateContent")
    })
}

/// The request body, the same for both endpoints.
pub(crate) fn build(request: &CompletionRequest) -> Result<Value, ProviderError> {
    let model = model_id(&request.model)?;
    let mut body = Map::new();
    let (system, contents) = contents(&request.messages, needs_signatures(model))?;
    if contents.is_empty() {
        return Err(invalid("the request has no user or assistant message"));
    }
    body.insert("contents".into(), Value::Array(contents));
    if let Some(system) = system {
        body.insert("systemInstruction".into(), system);
    }
    if !request.tools.is_empty() {
        let declarations = request
            .tools
            .iter()
            .map(declaration)
            .collect::<Result<Vec<_>, _>>()?;
        body.insert(
            "tools".into(),
            json!([{ "functionDeclarations": declarations }]),
        );
        if let Some(config) = request.tool_choice.as_ref().and_then(tool_config) {
            body.insert("toolConfig".into(), config);
        }
    }
    let config = generation_config(request);
    if !config.is_empty() {
        body.insert("generationConfig".into(), Value::Object(config));
    }
    Ok(Value::Object(body))
}

fn invalid(message: impl Into<String>) -> ProviderError {
    ProviderError::new(ErrorCode::InvalidRequest, message)
}

/// Whether `model` checks thought signatures on replayed function calls:
/// Gemini 3 and later. Gemini 1.x and 2.x models, and models that are not
/// Gemini (Gemma), do not.
fn needs_signatures(model: &str) -> bool {
    model.starts_with("gemini-") && !model.starts_with("gemini-1") && !model.starts_with("gemini-2")
}

fn generation_config(request: &CompletionRequest) -> Map<String, Value> {
    let mut config = Map::new();
    if let Some(max_tokens) = request.max_tokens {
        // The field is an int32.
        let max_tokens = i32::try_from(max_tokens).unwrap_or(i32::MAX);
        config.insert("maxOutputTokens".into(), max_tokens.into());
    }
    if let Some(temperature) = request.temperature {
        config.insert("temperature".into(), json!(temperature));
    }
    if let Some(top_p) = request.top_p {
        config.insert("topP".into(), json!(top_p));
    }
    if !request.stop.is_empty() {
        config.insert("stopSequences".into(), json!(request.stop));
    }
    config
}

/// `systemInstruction` and `contents`.
///
/// System messages, wherever they are, become the parts of
/// `systemInstruction`. Assistant messages are `model` turns; tool messages
/// are `functionResponse` parts of a `user` turn. Consecutive messages that
/// land on the same role are merged into one turn, so the responses to
/// parallel calls share one turn as Gemini expects.
fn contents(
    input: &[Message],
    signatures: bool,
) -> Result<(Option<Value>, Vec<Value>), ProviderError> {
    // Function names by call id, to name each functionResponse.
    let names: HashMap<&str, &str> = input
        .iter()
        .flat_map(|message| &message.tool_calls)
        .filter_map(|call| Some((call.id.as_str(), call.function.as_ref()?.name.as_str())))
        .collect();
    let mut system = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for message in input {
        let (role, parts) = match message.role() {
            Role::System => {
                let text = plain_text(message);
                if !text.is_empty() {
                    system.push(json!({ "text": text }));
                }
                continue;
            }
            Role::User | Role::Unspecified => ("user", content_parts(message)?),
            Role::Assistant => ("model", model_parts(message, signatures)?),
            Role::Tool => ("user", vec![function_response(message, &names)?]),
        };
        if parts.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((last, existing)) if *last == role => existing.extend(parts),
            _ => turns.push((role, parts)),
        }
    }
    let system = (!system.is_empty()).then(|| json!({ "parts": system }));
    let contents = turns
        .into_iter()
        .map(|(role, parts)| json!({ "role": role, "parts": parts }))
        .collect();
    Ok((system, contents))
}

/// A message's text: its string, or its text parts concatenated.
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

/// Text and image parts of a message; empty text is dropped.
fn content_parts(message: &Message) -> Result<Vec<Value>, ProviderError> {
    let mut parts = Vec::new();
    match &message.content {
        None => {}
        Some(Content::Text(text)) => push_text(&mut parts, text),
        Some(Content::Parts(list)) => {
            for part in &list.parts {
                match &part.part {
                    Some(Part::Text(text)) => push_text(&mut parts, text),
                    Some(Part::Image(image)) => parts.push(image_part(image)?),
                    None => {}
                }
            }
        }
    }
    Ok(parts)
}

fn push_text(parts: &mut Vec<Value>, text: &str) {
    if !text.is_empty() {
        parts.push(json!({ "text": text }));
    }
}

/// An image: `inlineData` for bytes and `data:` URLs, `fileData` for any
/// other URL (Gemini reads Files API URIs there; it does not fetch
/// arbitrary web URLs, and answers such a request with its own 400).
fn image_part(image: &Image) -> Result<Value, ProviderError> {
    match &image.source {
        Some(Source::Data(data)) => inline_data(
            &image.media_type,
            &base64::engine::general_purpose::STANDARD.encode(data),
        ),
        Some(Source::Url(url)) => match parse_data_url(url) {
            Some((media_type, data)) => {
                let media_type = if image.media_type.is_empty() {
                    media_type
                } else {
                    &image.media_type
                };
                inline_data(media_type, data)
            }
            None => {
                let mut file = Map::new();
                let media_type = if image.media_type.is_empty() {
                    media_type_of(url).unwrap_or_default()
                } else {
                    &image.media_type
                };
                if !media_type.is_empty() {
                    file.insert("mimeType".into(), media_type.into());
                }
                file.insert("fileUri".into(), url.as_str().into());
                Ok(json!({ "fileData": file }))
            }
        },
        None => Err(invalid("an image part has neither data nor url")),
    }
}

fn inline_data(media_type: &str, data: &str) -> Result<Value, ProviderError> {
    if media_type.is_empty() {
        return Err(invalid("an inline image needs its media_type"));
    }
    Ok(json!({ "inlineData": { "mimeType": media_type, "data": data } }))
}

/// Splits a base64 `data:` URL into its media type and payload.
fn parse_data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let media_type = meta.strip_suffix(";base64")?;
    Some((media_type, data))
}

/// The image media type a URL's file extension names.
fn media_type_of(url: &str) -> Option<&'static str> {
    let path = url.split(['?', '#']).next()?;
    let extension = path.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match extension.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "heic" => "image/heic",
        "heif" => "image/heif",
        _ => return None,
    })
}

/// A `model` turn: its text, then a `functionCall` part per tool call.
///
/// The first call carries its thought signature (recovered from the call id,
/// see [`tool_id`]); for models that check signatures, a first call without
/// one carries [`SKIP_SIGNATURE`].
fn model_parts(message: &Message, signatures: bool) -> Result<Vec<Value>, ProviderError> {
    let mut parts = content_parts(message)?;
    for (index, call) in message.tool_calls.iter().enumerate() {
        let mut part = function_call(call)?;
        let signature = tool_id::signature(&call.id);
        match signature {
            Some(signature) => {
                part.insert("thoughtSignature".into(), signature.into());
            }
            None if signatures && index == 0 => {
                part.insert("thoughtSignature".into(), SKIP_SIGNATURE.into());
            }
            None => {}
        }
        parts.push(Value::Object(part));
    }
    Ok(parts)
}

fn function_call(call: &ToolCall) -> Result<Map<String, Value>, ProviderError> {
    let function = call
        .function
        .as_ref()
        .ok_or_else(|| invalid(format!("tool call `{}` has no function", call.id)))?;
    let mut function_call = Map::new();
    function_call.insert("name".into(), function.name.as_str().into());
    if !function.arguments.trim().is_empty() {
        match serde_json::from_str::<Value>(&function.arguments) {
            Ok(args @ Value::Object(_)) => {
                function_call.insert("args".into(), args);
            }
            _ => {
                return Err(invalid(format!(
                    "the arguments of tool call `{}` are not a JSON object",
                    call.id
                )));
            }
        }
    }
    let mut part = Map::new();
    part.insert("functionCall".into(), Value::Object(function_call));
    Ok(part)
}

/// A tool message as a `functionResponse` part.
///
/// The function's name comes from the assistant message that made the
/// call (or the tool message's `name`). A result that is a JSON object is
/// the `response` as is; anything else is wrapped as `{"result": …}` (the
/// JSON value, or the text as a string).
fn function_response(
    message: &Message,
    names: &HashMap<&str, &str>,
) -> Result<Value, ProviderError> {
    if message.tool_call_id.is_empty() {
        return Err(invalid("a tool message has no tool_call_id"));
    }
    let name = names
        .get(message.tool_call_id.as_str())
        .copied()
        .or_else(|| (!message.name.is_empty()).then_some(message.name.as_str()))
        .ok_or_else(|| {
            invalid(format!(
                "tool result `{}` answers no tool call of the conversation, and has no name",
                message.tool_call_id
            ))
        })?;
    let text = plain_text(message);
    let response = match serde_json::from_str::<Value>(&text) {
        Ok(object @ Value::Object(_)) => object,
        Ok(value) => json!({ "result": value }),
        Err(_) => json!({ "result": text }),
    };
    Ok(json!({ "functionResponse": { "name": name, "response": response } }))
}

/// A tool declaration: the GTL parameters schema as `parametersJsonSchema`
/// (full JSON Schema, not the OpenAPI subset `parameters` takes).
fn declaration(tool: &Tool) -> Result<Value, ProviderError> {
    let function = tool
        .function
        .as_ref()
        .ok_or_else(|| invalid("a tool has no function"))?;
    let mut out = Map::new();
    out.insert("name".into(), function.name.as_str().into());
    if !function.description.is_empty() {
        out.insert("description".into(), function.description.as_str().into());
    }
    if !function.parameters.trim().is_empty() {
        match serde_json::from_str::<Value>(&function.parameters) {
            Ok(schema @ Value::Object(_)) => {
                out.insert("parametersJsonSchema".into(), schema);
            }
            _ => {
                return Err(invalid(format!(
                    "the parameters of tool `{}` are not a JSON object",
                    function.name
                )));
            }
        }
    }
    Ok(Value::Object(out))
}

/// `auto` → `AUTO`, `none` → `NONE`, `required` → `ANY`, a function name →
/// `ANY` restricted to it. Unset leaves Gemini's default (`AUTO`).
fn tool_config(choice: &ToolChoice) -> Option<Value> {
    let config = match choice.choice.as_ref()? {
        Choice::Mode(mode) => match ToolChoiceMode::try_from(*mode).ok()? {
            ToolChoiceMode::Unspecified => return None,
            ToolChoiceMode::Auto => json!({ "mode": "AUTO" }),
            ToolChoiceMode::None => json!({ "mode": "NONE" }),
            ToolChoiceMode::Required => json!({ "mode": "ANY" }),
        },
        Choice::Function(name) => json!({ "mode": "ANY", "allowedFunctionNames": [name] }),
    };
    Some(json!({ "functionCallingConfig": config }))
}
