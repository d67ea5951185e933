//! A Messages request body → GTL's `CompletionRequest`.

use gtl_proto::types::{Choice, Content, Part, ToolChoiceMode};
use gtl_proto::{
    CompletionRequest, ContentPart, ContentParts, FunctionCall, FunctionDef, Message, Role, Tool,
    ToolCall, ToolChoice,
};
use serde_json::Value;

use super::Options;
use crate::json::{self, Object, Path, Style};
use crate::{DialectError, image};

/// Which route a body is for: they differ in `max_tokens` and `stream`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Messages,
    CountTokens,
}

/// Parses a `POST /v1/messages` body.
///
/// Returns the GTL request (its `model` as the client sent it, for the
/// registry to resolve; `stream` as asked) and the [`Options`] that shape
/// the answer. `max_tokens` is required, as Anthropic requires it. Refuses,
/// naming the field: malformed JSON, wrong types, missing fields, and what
/// GTL cannot honour for every provider (server tools, documents,
/// `disable_parallel_tool_use`, structured output formats, …). `thinking`,
/// `top_k`, `cache_control` and unknown fields are accepted and not
/// carried; `thinking` blocks in earlier assistant turns are dropped.
/// `docs/compat.md` has the full table.
pub fn parse_request(body: &[u8]) -> Result<(CompletionRequest, Options), DialectError> {
    parse(body, Route::Messages)
}

/// Parses a `POST /v1/messages/count_tokens` body: the same fields as a
/// message, without `max_tokens` and `stream`. The request to count is
/// returned with `stream: false`.
pub fn parse_count_tokens_request(body: &[u8]) -> Result<CompletionRequest, DialectError> {
    parse(body, Route::CountTokens).map(|(request, _)| request)
}

fn parse(body: &[u8], route: Route) -> Result<(CompletionRequest, Options), DialectError> {
    let map = json::parse_object(body)?;
    let root = Path::root(Style::Anthropic);
    let body = Object {
        map: &map,
        path: &root,
    };
    refuse_unsupported(&body)?;

    let model = body.required_str("model")?;
    if model.is_empty() {
        return Err(root.key("model").invalid("must not be empty"));
    }
    let (max_tokens, stream) = match route {
        Route::Messages => (
            Some(
                body.u32("max_tokens")?
                    .ok_or_else(|| root.key("max_tokens").missing())?,
            ),
            body.bool("stream")?.unwrap_or(false),
        ),
        Route::CountTokens => (None, false),
    };
    // `top_k` is a sampling hint GTL has no field for: checked, not carried.
    body.u32("top_k")?;
    // Extended thinking is not carried (GTL's events have no thinking
    // blocks); the answer simply has none, which every client handles.
    if let Some(thinking) = body.get("thinking") {
        Object::new(thinking, &root.key("thinking"))?;
    }
    let user = match body.get("metadata") {
        Some(metadata) => Object::new(metadata, &root.key("metadata"))?
            .str("user_id")?
            .map(str::to_owned),
        None => None,
    };

    let mut messages = system(&body)?;
    messages.extend(conversation(&body)?);
    let stop = match body.array("stop_sequences")? {
        Some(items) => {
            let path = root.key("stop_sequences");
            items
                .iter()
                .enumerate()
                .map(|(i, item)| json::as_str(item, &path.index(i)).map(str::to_owned))
                .collect::<Result<_, _>>()?
        }
        None => Vec::new(),
    };
    let request = CompletionRequest {
        model: model.to_owned(),
        messages,
        stream,
        max_tokens,
        temperature: body.number_in("temperature", 0.0, 1.0)?,
        top_p: body.number_in("top_p", 0.0, 1.0)?,
        stop,
        tools: tools(&body)?,
        tool_choice: tool_choice(&body)?,
        ..CompletionRequest::default()
    };
    let options = Options {
        stream,
        model: model.to_owned(),
        user,
    };
    Ok((request, options))
}

/// Refuses fields whose presence asks for what GTL cannot give through
/// every provider.
fn refuse_unsupported(body: &Object<'_, '_>) -> Result<(), DialectError> {
    let path = body.path;
    if body.get("container").is_some() {
        return Err(path
            .key("container")
            .unsupported("code execution containers are not carried by GTL"));
    }
    if let Some(servers) = body.array("mcp_servers")?
        && !servers.is_empty()
    {
        return Err(path
            .key("mcp_servers")
            .unsupported("MCP servers are not carried by GTL"));
    }
    if let Some(config) = body.get("output_config") {
        let config_path = path.key("output_config");
        let config = Object::new(config, &config_path)?;
        if config.get("format").is_some() {
            return Err(config_path
                .key("format")
                .unsupported("structured output formats are not carried by GTL"));
        }
    }
    Ok(())
}

/// `system`: a string or text blocks, as the first (system) message.
fn system(body: &Object<'_, '_>) -> Result<Vec<Message>, DialectError> {
    let path = body.path.key("system");
    let content = match body.get("system") {
        None => return Ok(Vec::new()),
        Some(Value::String(text)) if text.is_empty() => return Ok(Vec::new()),
        Some(Value::String(text)) => Content::Text(text.clone()),
        Some(Value::Array(blocks)) => {
            let parts = blocks
                .iter()
                .enumerate()
                .map(|(i, block)| {
                    let path = path.index(i);
                    let block = Object::new(block, &path)?;
                    match block.required_str("type")? {
                        "text" => Ok(text_part(block.required_str("text")?)),
                        other => Err(path
                            .key("type")
                            .invalid(format!("system blocks are text blocks, not `{other}`"))),
                    }
                })
                .collect::<Result<_, _>>()?;
            Content::Parts(ContentParts { parts })
        }
        Some(other) => return Err(path.expected("a string or an array of text blocks", other)),
    };
    Ok(vec![Message {
        role: Role::System as i32,
        content: Some(content),
        ..Message::default()
    }])
}

/// `messages`: each user turn becomes tool messages (its `tool_result`
/// blocks) and a user message (its other blocks), in their order; each
/// assistant turn one assistant message.
fn conversation(body: &Object<'_, '_>) -> Result<Vec<Message>, DialectError> {
    let path = body.path.key("messages");
    let items = body.array("messages")?.ok_or_else(|| path.missing())?;
    if items.is_empty() {
        return Err(path.invalid("must contain at least one message"));
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = path.index(i);
        let turn = Object::new(item, &path)?;
        match turn.required_str("role")? {
            "user" => user(&turn, &mut out)?,
            "assistant" => out.extend(assistant(&turn)?),
            other => {
                return Err(path.key("role").invalid(format!(
                    "unknown role `{other}`; expected user or assistant (the system prompt is `system`)"
                )));
            }
        }
    }
    if out.is_empty() {
        // Every turn held only thinking blocks, which are dropped.
        return Err(path.invalid("holds nothing but thinking blocks, which GTL does not carry"));
    }
    Ok(out)
}

/// A turn's `content`: a string, or a non-empty array of blocks.
enum TurnContent<'v> {
    Text(&'v str),
    Blocks(&'v [Value]),
}

fn turn_content<'v>(turn: &Object<'v, '_>) -> Result<TurnContent<'v>, DialectError> {
    let path = turn.path.key("content");
    match turn.get("content") {
        None => Err(path.missing()),
        Some(Value::String(text)) => Ok(TurnContent::Text(text)),
        Some(Value::Array(blocks)) if blocks.is_empty() => {
            Err(path.invalid("must contain at least one content block"))
        }
        Some(Value::Array(blocks)) => Ok(TurnContent::Blocks(blocks)),
        Some(other) => Err(path.expected("a string or an array of content blocks", other)),
    }
}

fn user(turn: &Object<'_, '_>, out: &mut Vec<Message>) -> Result<(), DialectError> {
    let blocks = match turn_content(turn)? {
        TurnContent::Text(text) => {
            out.push(message(Role::User, Some(Content::Text(text.to_owned()))));
            return Ok(());
        }
        TurnContent::Blocks(blocks) => blocks,
    };
    let path = turn.path.key("content");
    let mut parts = Vec::new();
    for (i, block) in blocks.iter().enumerate() {
        let path = path.index(i);
        let object = Object::new(block, &path)?;
        match object.required_str("type")? {
            "tool_result" => {
                if !parts.is_empty() {
                    out.push(parts_message(Role::User, std::mem::take(&mut parts)));
                }
                out.push(tool_result(&object)?);
            }
            kind => parts.push(user_block(&object, kind)?),
        }
    }
    if !parts.is_empty() {
        out.push(parts_message(Role::User, parts));
    }
    Ok(())
}

/// A text or image block of a user turn (or of a tool result).
fn user_block(block: &Object<'_, '_>, kind: &str) -> Result<ContentPart, DialectError> {
    let path = block.path;
    match kind {
        "text" => Ok(text_part(block.required_str("text")?)),
        "image" => {
            let source_path = path.key("source");
            let source = block.get("source").ok_or_else(|| source_path.missing())?;
            let source = Object::new(source, &source_path)?;
            let image = match source.required_str("type")? {
                "base64" => image::from_base64(
                    source.required_str("media_type")?,
                    source.required_str("data")?,
                    "",
                    &source_path,
                )?,
                "url" => image::from_url(source.required_str("url")?, "", &source_path.key("url"))?,
                other => {
                    return Err(source_path.key("type").unsupported(format!(
                        "`{other}` image sources are not carried by GTL; send base64 or url"
                    )));
                }
            };
            Ok(ContentPart {
                part: Some(Part::Image(image)),
            })
        }
        "document" | "search_result" | "container_upload" => Err(path
            .key("type")
            .unsupported(format!("`{kind}` blocks are not carried by GTL"))),
        "tool_use" | "thinking" | "redacted_thinking" => Err(path
            .key("type")
            .invalid(format!("`{kind}` blocks belong in assistant turns"))),
        other => Err(path
            .key("type")
            .invalid(format!("unknown content block type `{other}`"))),
    }
}

/// A `tool_result` block as a tool message. `is_error` has no GTL field
/// and is not carried: the result's text says what went wrong.
fn tool_result(block: &Object<'_, '_>) -> Result<Message, DialectError> {
    block.bool("is_error")?;
    let path = block.path.key("content");
    let content = match block.get("content") {
        None => Content::Text(String::new()),
        Some(Value::String(text)) => Content::Text(text.clone()),
        Some(Value::Array(blocks)) => {
            let parts = blocks
                .iter()
                .enumerate()
                .map(|(i, inner)| {
                    let path = path.index(i);
                    let inner = Object::new(inner, &path)?;
                    let kind = inner.required_str("type")?;
                    user_block(&inner, kind)
                })
                .collect::<Result<_, _>>()?;
            Content::Parts(ContentParts { parts })
        }
        Some(other) => return Err(path.expected("a string or an array of content blocks", other)),
    };
    Ok(Message {
        role: Role::Tool as i32,
        tool_call_id: block.required_str("tool_use_id")?.to_owned(),
        content: Some(content),
        ..Message::default()
    })
}

/// An assistant turn: its text, and a tool call per `tool_use` block.
/// Thinking blocks are dropped (no provider but Anthropic takes them back,
/// and GTL's messages have no field for them); a turn that had only those
/// is left out.
fn assistant(turn: &Object<'_, '_>) -> Result<Option<Message>, DialectError> {
    let blocks = match turn_content(turn)? {
        TurnContent::Text(text) => {
            return Ok(Some(message(
                Role::Assistant,
                Some(Content::Text(text.to_owned())),
            )));
        }
        TurnContent::Blocks(blocks) => blocks,
    };
    let path = turn.path.key("content");
    let mut parts = Vec::new();
    let mut tool_calls = Vec::new();
    for (i, block) in blocks.iter().enumerate() {
        let path = path.index(i);
        let object = Object::new(block, &path)?;
        match object.required_str("type")? {
            "text" => parts.push(text_part(object.required_str("text")?)),
            "tool_use" => {
                let input_path = path.key("input");
                let input = object.get("input").ok_or_else(|| input_path.missing())?;
                if !input.is_object() {
                    return Err(input_path.expected("an object", input));
                }
                tool_calls.push(ToolCall {
                    id: object.required_str("id")?.to_owned(),
                    function: Some(FunctionCall {
                        name: object.required_str("name")?.to_owned(),
                        arguments: input.to_string(),
                    }),
                });
            }
            "thinking" | "redacted_thinking" => {}
            kind @ ("server_tool_use"
            | "web_search_tool_result"
            | "web_fetch_tool_result"
            | "code_execution_tool_result"
            | "bash_code_execution_tool_result"
            | "text_editor_code_execution_tool_result"
            | "tool_search_tool_result"
            | "container_upload") => {
                return Err(path.key("type").unsupported(format!(
                    "server tool blocks (`{kind}`) are not carried by GTL"
                )));
            }
            kind @ ("image" | "tool_result" | "document" | "search_result") => {
                return Err(path
                    .key("type")
                    .invalid(format!("`{kind}` blocks belong in user turns")));
            }
            other => {
                return Err(path
                    .key("type")
                    .invalid(format!("unknown content block type `{other}`")));
            }
        }
    }
    if parts.is_empty() && tool_calls.is_empty() {
        return Ok(None);
    }
    let content = (!parts.is_empty()).then_some(Content::Parts(ContentParts { parts }));
    Ok(Some(Message {
        tool_calls,
        ..message(Role::Assistant, content)
    }))
}

fn message(role: Role, content: Option<Content>) -> Message {
    Message {
        role: role as i32,
        content,
        ..Message::default()
    }
}

fn parts_message(role: Role, parts: Vec<ContentPart>) -> Message {
    message(role, Some(Content::Parts(ContentParts { parts })))
}

fn text_part(text: &str) -> ContentPart {
    ContentPart {
        part: Some(Part::Text(text.to_owned())),
    }
}

/// Client tools. Server tools (`web_search_…`, `bash_…`, `text_editor_…`,
/// `computer_…`, `code_execution_…`) run at Anthropic and are refused.
fn tools(body: &Object<'_, '_>) -> Result<Vec<Tool>, DialectError> {
    let path = body.path.key("tools");
    let Some(items) = body.array("tools")? else {
        return Ok(Vec::new());
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let path = path.index(i);
            let tool = Object::new(item, &path)?;
            if let Some(kind) = tool.str("type")?
                && kind != "custom"
            {
                return Err(path.key("type").unsupported(format!(
                    "server tools (`{kind}`) are not carried by GTL; define a client tool"
                )));
            }
            let name = tool.required_str("name")?;
            if name.is_empty() {
                return Err(path.key("name").invalid("must not be empty"));
            }
            let schema_path = path.key("input_schema");
            let schema = tool
                .get("input_schema")
                .ok_or_else(|| schema_path.missing())?;
            if !schema.is_object() {
                return Err(schema_path.expected("a JSON Schema object", schema));
            }
            Ok(Tool {
                function: Some(FunctionDef {
                    name: name.to_owned(),
                    description: tool.str("description")?.unwrap_or_default().to_owned(),
                    parameters: schema.to_string(),
                }),
            })
        })
        .collect()
}

/// `auto` → auto, `any` → required, `tool` → that function, `none` → none.
fn tool_choice(body: &Object<'_, '_>) -> Result<Option<ToolChoice>, DialectError> {
    let path = body.path.key("tool_choice");
    let Some(choice) = body.get("tool_choice") else {
        return Ok(None);
    };
    let choice = Object::new(choice, &path)?;
    if choice.bool("disable_parallel_tool_use")? == Some(true) {
        return Err(path.key("disable_parallel_tool_use").unsupported(
            "GTL cannot stop every provider from calling tools in parallel; omit the field or send false",
        ));
    }
    let mode = |mode: ToolChoiceMode| Choice::Mode(mode as i32);
    let choice = match choice.required_str("type")? {
        "auto" => mode(ToolChoiceMode::Auto),
        "any" => mode(ToolChoiceMode::Required),
        "none" => mode(ToolChoiceMode::None),
        "tool" => Choice::Function(choice.required_str("name")?.to_owned()),
        other => {
            return Err(path.key("type").invalid(format!(
                "unknown tool choice type `{other}`; expected auto, any, tool or none"
            )));
        }
    };
    Ok(Some(ToolChoice {
        choice: Some(choice),
    }))
}
