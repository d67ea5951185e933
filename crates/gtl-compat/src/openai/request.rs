//! A Chat Completions request body → GTL's `CompletionRequest`.

use std::collections::BTreeMap;

use gtl_proto::types::{Choice, Content, Part, ToolChoiceMode};
use gtl_proto::{
    CompletionRequest, ContentPart, ContentParts, FunctionCall, FunctionDef, Message, Role, Tool,
    ToolCall, ToolChoice,
};
use serde_json::Value;

use super::Options;
use crate::json::{self, Object, Path, Style};
use crate::{DialectError, image};

/// The most stop sequences OpenAI accepts.
const MAX_STOP: usize = 4;

/// Parses a `POST /v1/chat/completions` body.
///
/// Returns the GTL request (its `model` as the client sent it, for the
/// registry to resolve; `stream` as asked) and the [`Options`] that shape
/// the answer. Refuses, naming the field in `param`: malformed JSON, wrong
/// types, missing `model` or `messages`, and what GTL cannot honour for
/// every provider (`n` > 1, `logprobs`, non-text `response_format`, audio,
/// `parallel_tool_calls: false`, custom tools, audio and file parts, …).
/// Generation hints GTL has no field for (`seed`, penalties,
/// `reasoning_effort`, `service_tier`, …) and unknown fields are ignored.
/// `docs/compat.md` has the full table.
pub fn parse_request(body: &[u8]) -> Result<(CompletionRequest, Options), DialectError> {
    let map = json::parse_object(body)?;
    let root = Path::root(Style::OpenAi);
    let body = Object {
        map: &map,
        path: &root,
    };
    refuse_unsupported(&body)?;

    let model = body.required_str("model")?;
    if model.is_empty() {
        return Err(root.key("model").invalid("must not be empty"));
    }
    let stream = body.bool("stream")?.unwrap_or(false);
    let include_usage = stream_options(&body, stream)?;
    // `max_completion_tokens` replaced `max_tokens`; both are read so a
    // wrong type in either is reported.
    let max_completion_tokens = body.u32("max_completion_tokens")?;
    let max_tokens = max_completion_tokens.or(body.u32("max_tokens")?);
    let user = body.str("user")?.map(str::to_owned);

    let request = CompletionRequest {
        model: model.to_owned(),
        messages: messages(&body)?,
        stream,
        max_tokens,
        temperature: body.number_in("temperature", 0.0, 2.0)?,
        top_p: body.number_in("top_p", 0.0, 1.0)?,
        stop: stop(&body)?,
        tools: tools(&body)?,
        tool_choice: tool_choice(&body)?,
        metadata: metadata(&body)?,
        ..CompletionRequest::default()
    };
    let options = Options {
        stream,
        include_usage,
        model: model.to_owned(),
        user,
    };
    Ok((request, options))
}

/// Refuses fields whose value asks for something GTL cannot give through
/// every provider. Their default values are accepted, so clients that
/// always send them (`n: 1`, `logprobs: false`) keep working.
fn refuse_unsupported(body: &Object<'_, '_>) -> Result<(), DialectError> {
    let path = body.path;
    if let Some(n) = body.u32("n")?
        && n != 1
    {
        return Err(path.key("n").unsupported(
            "GTL answers with one choice; send `n: 1` (or omit it) and repeat the request for more",
        ));
    }
    if body.bool("logprobs")? == Some(true) {
        return Err(path
            .key("logprobs")
            .unsupported("log probabilities are not carried by GTL"));
    }
    if body.get("top_logprobs").is_some() {
        return Err(path
            .key("top_logprobs")
            .unsupported("log probabilities are not carried by GTL"));
    }
    if body.bool("parallel_tool_calls")? == Some(false) {
        return Err(path.key("parallel_tool_calls").unsupported(
            "GTL cannot stop every provider from calling tools in parallel; omit the field or send `true`",
        ));
    }
    if let Some(format) = body.get("response_format") {
        let path = path.key("response_format");
        let format = Object::new(format, &path)?;
        let kind = format.required_str("type")?;
        if kind != "text" {
            return Err(path.key("type").unsupported(format!(
                "`{kind}` output is not carried by GTL; only `text` is accepted"
            )));
        }
    }
    if let Some(modalities) = body.array("modalities")? {
        let path = path.key("modalities");
        for (i, modality) in modalities.iter().enumerate() {
            let path = path.index(i);
            if json::as_str(modality, &path)? != "text" {
                return Err(path.unsupported("GTL answers with text only"));
            }
        }
    }
    for (field, why) in [
        ("audio", "audio output is not carried by GTL"),
        ("prediction", "predicted outputs are not carried by GTL"),
        ("web_search_options", "web search is not carried by GTL"),
        (
            "functions",
            "the deprecated `functions` are not accepted; send `tools`",
        ),
        (
            "function_call",
            "the deprecated `function_call` is not accepted; send `tool_choice`",
        ),
    ] {
        if body.get(field).is_some() {
            return Err(path.key(field).unsupported(why));
        }
    }
    if let Some(bias) = body.get("logit_bias") {
        let path = path.key("logit_bias");
        if !Object::new(bias, &path)?.map.is_empty() {
            return Err(path.unsupported("token biases are not carried by GTL"));
        }
    }
    Ok(())
}

/// `stream_options.include_usage`. Like OpenAI, `stream_options` is
/// refused on a request that does not stream.
fn stream_options(body: &Object<'_, '_>, stream: bool) -> Result<bool, DialectError> {
    let Some(options) = body.get("stream_options") else {
        return Ok(false);
    };
    let path = body.path.key("stream_options");
    let options = Object::new(options, &path)?;
    if !stream {
        return Err(path.invalid("only allowed when `stream` is true"));
    }
    // `include_obfuscation` is read for its type only: GTL never pads
    // chunks, which is what `false` asks for.
    options.bool("include_obfuscation")?;
    Ok(options.bool("include_usage")?.unwrap_or(false))
}

fn messages(body: &Object<'_, '_>) -> Result<Vec<Message>, DialectError> {
    let path = body.path.key("messages");
    let items = body.array("messages")?.ok_or_else(|| path.missing())?;
    if items.is_empty() {
        return Err(path.invalid("must contain at least one message"));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| message(item, &path.index(i)))
        .collect()
}

fn message(value: &Value, path: &Path<'_>) -> Result<Message, DialectError> {
    let object = Object::new(value, path)?;
    let role = object.required_str("role")?;
    let mut message = Message {
        name: object.str("name")?.unwrap_or_default().to_owned(),
        ..Message::default()
    };
    match role {
        // `developer` is the newer name of `system`.
        "system" | "developer" => {
            message.set_role(Role::System);
            message.content = Some(content(&object, Allowed::Text)?);
        }
        "user" => {
            message.set_role(Role::User);
            message.content = Some(content(&object, Allowed::TextAndImages)?);
        }
        "assistant" => assistant(&object, &mut message)?,
        "tool" => {
            message.set_role(Role::Tool);
            message.tool_call_id = object.required_str("tool_call_id")?.to_owned();
            message.content = Some(content(&object, Allowed::Text)?);
            // Tool messages have no `name` in the API.
            message.name.clear();
        }
        "function" => {
            return Err(path.key("role").unsupported(
                "the deprecated `function` role is not accepted; send `tool` messages",
            ));
        }
        other => {
            return Err(path.key("role").invalid(format!(
                "unknown role `{other}`; expected system, developer, user, assistant or tool"
            )));
        }
    }
    Ok(message)
}

fn assistant(object: &Object<'_, '_>, message: &mut Message) -> Result<(), DialectError> {
    message.set_role(Role::Assistant);
    if object.get("audio").is_some() {
        return Err(object
            .path
            .key("audio")
            .unsupported("audio answers are not carried by GTL"));
    }
    if object.get("function_call").is_some() {
        return Err(object
            .path
            .key("function_call")
            .unsupported("the deprecated `function_call` is not accepted; send `tool_calls`"));
    }
    if let Some(calls) = object.array("tool_calls")? {
        let path = object.path.key("tool_calls");
        message.tool_calls = calls
            .iter()
            .enumerate()
            .map(|(i, call)| tool_call(call, &path.index(i)))
            .collect::<Result<_, _>>()?;
    }
    let refusal = object.str("refusal")?.filter(|r| !r.is_empty());
    // Content may be left out next to tool calls or a refusal.
    message.content = if object.get("content").is_some()
        || (message.tool_calls.is_empty() && refusal.is_none())
    {
        Some(content(object, Allowed::TextAndRefusals)?)
    } else {
        None
    };
    // A refusal the model gave earlier is context like any other text.
    if let Some(refusal) = refusal {
        append_text(&mut message.content, refusal);
    }
    Ok(())
}

fn append_text(content: &mut Option<Content>, text: &str) {
    match content {
        None => *content = Some(Content::Text(text.to_owned())),
        Some(Content::Text(existing)) => existing.push_str(text),
        Some(Content::Parts(parts)) => parts.parts.push(ContentPart {
            part: Some(Part::Text(text.to_owned())),
        }),
    }
}

fn tool_call(value: &Value, path: &Path<'_>) -> Result<ToolCall, DialectError> {
    let object = Object::new(value, path)?;
    if let Some(kind) = object.str("type")?
        && kind != "function"
    {
        return Err(path
            .key("type")
            .unsupported(format!("`{kind}` tool calls are not carried by GTL")));
    }
    let function_path = path.key("function");
    let function = object
        .get("function")
        .ok_or_else(|| function_path.missing())?;
    let function = Object::new(function, &function_path)?;
    Ok(ToolCall {
        id: object.required_str("id")?.to_owned(),
        function: Some(FunctionCall {
            name: function.required_str("name")?.to_owned(),
            arguments: function.required_str("arguments")?.to_owned(),
        }),
    })
}

/// Which content parts a role takes (OpenAI's own rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Allowed {
    /// `text` (system, developer and tool messages).
    Text,
    /// `text` and `image_url` (user messages).
    TextAndImages,
    /// `text` and `refusal` (assistant messages).
    TextAndRefusals,
}

/// A message's `content`: a string, or an array of parts.
fn content(object: &Object<'_, '_>, allowed: Allowed) -> Result<Content, DialectError> {
    let path = object.path.key("content");
    match object.get("content") {
        None => Err(path.missing()),
        Some(Value::String(text)) => Ok(Content::Text(text.clone())),
        Some(Value::Array(parts)) => {
            if parts.is_empty() {
                return Err(path.invalid("must contain at least one content part"));
            }
            let parts = parts
                .iter()
                .enumerate()
                .map(|(i, part)| content_part(part, &path.index(i), allowed))
                .collect::<Result<_, _>>()?;
            Ok(Content::Parts(ContentParts { parts }))
        }
        Some(other) => Err(path.expected("a string or an array of content parts", other)),
    }
}

fn content_part(
    value: &Value,
    path: &Path<'_>,
    allowed: Allowed,
) -> Result<ContentPart, DialectError> {
    let object = Object::new(value, path)?;
    let kind = object.required_str("type")?;
    let part = match (kind, allowed) {
        ("text", _) => Part::Text(object.required_str("text")?.to_owned()),
        ("refusal", Allowed::TextAndRefusals) => {
            Part::Text(object.required_str("refusal")?.to_owned())
        }
        ("image_url", Allowed::TextAndImages) => {
            let image_path = path.key("image_url");
            let image = object
                .get("image_url")
                .ok_or_else(|| image_path.missing())?;
            let image = Object::new(image, &image_path)?;
            let detail = image.str("detail")?.unwrap_or_default();
            if !matches!(detail, "" | "auto" | "low" | "high") {
                return Err(image_path
                    .key("detail")
                    .invalid(format!("`{detail}` is not one of auto, low, high")));
            }
            let url = image.required_str("url")?;
            Part::Image(image::from_url(url, detail, &image_path.key("url"))?)
        }
        ("refusal" | "image_url", _) => {
            return Err(path.key("type").invalid(format!(
                "`{kind}` parts are not allowed in this message's role"
            )));
        }
        ("input_audio" | "file", _) => {
            return Err(path
                .key("type")
                .unsupported(format!("`{kind}` parts are not carried by GTL")));
        }
        (other, _) => {
            return Err(path
                .key("type")
                .invalid(format!("unknown content part type `{other}`")));
        }
    };
    Ok(ContentPart { part: Some(part) })
}

/// `stop`: one string or up to four.
fn stop(body: &Object<'_, '_>) -> Result<Vec<String>, DialectError> {
    let path = body.path.key("stop");
    match body.get("stop") {
        None => Ok(Vec::new()),
        Some(Value::String(stop)) => Ok(vec![stop.clone()]),
        Some(Value::Array(items)) => {
            if items.len() > MAX_STOP {
                return Err(path.invalid(format!(
                    "at most {MAX_STOP} stop sequences are allowed, got {}",
                    items.len()
                )));
            }
            items
                .iter()
                .enumerate()
                .map(|(i, item)| json::as_str(item, &path.index(i)).map(str::to_owned))
                .collect()
        }
        Some(other) => Err(path.expected("a string or an array of strings", other)),
    }
}

fn tools(body: &Object<'_, '_>) -> Result<Vec<Tool>, DialectError> {
    let path = body.path.key("tools");
    let Some(items) = body.array("tools")? else {
        return Ok(Vec::new());
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| tool(item, &path.index(i)))
        .collect()
}

fn tool(value: &Value, path: &Path<'_>) -> Result<Tool, DialectError> {
    let object = Object::new(value, path)?;
    match object.required_str("type")? {
        "function" => {}
        "custom" => {
            return Err(path
                .key("type")
                .unsupported("custom (free-form) tools are not carried by GTL"));
        }
        other => {
            return Err(path
                .key("type")
                .invalid(format!("unknown tool type `{other}`; expected function")));
        }
    }
    let function_path = path.key("function");
    let function = object
        .get("function")
        .ok_or_else(|| function_path.missing())?;
    let function = Object::new(function, &function_path)?;
    let name = function.required_str("name")?;
    if name.is_empty() {
        return Err(function_path.key("name").invalid("must not be empty"));
    }
    // `strict` is a hint GTL cannot pass to every provider; it is checked
    // for its type and otherwise not carried.
    function.bool("strict")?;
    let parameters = match function.get("parameters") {
        None => String::new(),
        Some(schema @ Value::Object(_)) => schema.to_string(),
        Some(other) => {
            return Err(function_path
                .key("parameters")
                .expected("a JSON Schema object", other));
        }
    };
    Ok(Tool {
        function: Some(FunctionDef {
            name: name.to_owned(),
            description: function.str("description")?.unwrap_or_default().to_owned(),
            parameters,
        }),
    })
}

fn tool_choice(body: &Object<'_, '_>) -> Result<Option<ToolChoice>, DialectError> {
    let path = body.path.key("tool_choice");
    let choice = match body.get("tool_choice") {
        None => return Ok(None),
        Some(Value::String(mode)) => Choice::Mode(match mode.as_str() {
            "auto" => ToolChoiceMode::Auto,
            "none" => ToolChoiceMode::None,
            "required" => ToolChoiceMode::Required,
            other => {
                return Err(path.invalid(format!(
                    "unknown mode `{other}`; expected auto, none or required"
                )));
            }
        } as i32),
        Some(value @ Value::Object(_)) => {
            let object = Object::new(value, &path)?;
            match object.required_str("type")? {
                "function" => {
                    let function_path = path.key("function");
                    let function = object
                        .get("function")
                        .ok_or_else(|| function_path.missing())?;
                    let function = Object::new(function, &function_path)?;
                    Choice::Function(function.required_str("name")?.to_owned())
                }
                kind @ ("allowed_tools" | "custom") => {
                    return Err(path
                        .key("type")
                        .unsupported(format!("`{kind}` tool choices are not carried by GTL")));
                }
                other => {
                    return Err(path
                        .key("type")
                        .invalid(format!("unknown tool choice type `{other}`")));
                }
            }
        }
        Some(other) => return Err(path.expected("a string or an object", other)),
    };
    Ok(Some(ToolChoice {
        choice: Some(choice),
    }))
}

/// `metadata`: string keys to string values, as GTL's.
fn metadata(body: &Object<'_, '_>) -> Result<BTreeMap<String, String>, DialectError> {
    let path = body.path.key("metadata");
    let Some(value) = body.get("metadata") else {
        return Ok(BTreeMap::new());
    };
    let object = Object::new(value, &path)?;
    object
        .map
        .iter()
        .map(|(key, value)| match value {
            Value::String(text) => Ok((key.clone(), text.clone())),
            other => Err(path.key(key).expected("a string", other)),
        })
        .collect()
}
