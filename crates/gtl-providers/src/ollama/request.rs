//! `CompletionRequest` → the JSON body of `POST /api/chat`.
//!
//! Pure data mapping: no IO. Everything Ollama cannot express fails here
//! with `INVALID_REQUEST` before any network call.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use gtl_core::ProviderError;
use gtl_proto::types::{Choice, Content, Part, Source, ToolChoiceMode};
use gtl_proto::{CompletionRequest, ErrorCode, Message, Role, Tool};
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;

/// The body of `POST /api/chat` (`components.schemas.ChatRequest`).
#[derive(Debug, Serialize)]
pub(crate) struct ChatRequest<'a> {
    model: &'a str,
    messages: Vec<ChatMessage<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<ToolDefinition<'a>>,
    #[serde(skip_serializing_if = "Options::is_empty")]
    options: Options<'a>,
    stream: bool,
}

/// `components.schemas.ChatMessage`.
#[derive(Debug, Serialize)]
struct ChatMessage<'a> {
    role: &'static str,
    content: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    images: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<OutToolCall<'a>>,
    /// On `tool` messages: the name of the tool whose result this is
    /// (`docs/api.md`, "Chat request (With history, with tools)").
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_name: Option<&'a str>,
}

/// `components.schemas.ToolCall`, as sent back in the history.
#[derive(Debug, Serialize)]
struct OutToolCall<'a> {
    function: OutFunction<'a>,
}

#[derive(Debug, Serialize)]
struct OutFunction<'a> {
    name: &'a str,
    /// A JSON object: Ollama takes arguments as an object, not a string.
    arguments: &'a RawValue,
}

/// `components.schemas.ToolDefinition`.
#[derive(Debug, Serialize)]
struct ToolDefinition<'a> {
    r#type: &'static str,
    function: FunctionDefinition<'a>,
}

#[derive(Debug, Serialize)]
struct FunctionDefinition<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    description: &'a str,
    parameters: Value,
}

/// `components.schemas.ModelOptions`: the sampling settings GTL carries.
#[derive(Debug, Default, Serialize)]
struct Options<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    num_predict: Option<u32>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    stop: &'a [String],
}

impl Options<'_> {
    fn is_empty(&self) -> bool {
        self.temperature.is_none()
            && self.top_p.is_none()
            && self.num_predict.is_none()
            && self.stop.is_empty()
    }
}

/// The JSON Schema sent for a tool that declares no parameters.
fn empty_parameters() -> Value {
    serde_json::json!({ "type": "object", "properties": {} })
}

fn invalid(message: impl Into<String>) -> ProviderError {
    ProviderError::new(ErrorCode::InvalidRequest, message)
}

/// Builds the `/api/chat` body for `request`, asking for `model`. `request.stream` picks an
/// NDJSON stream or one JSON answer (`"stream": false`).
///
/// Fails with `INVALID_REQUEST` for what Ollama cannot take: image URLs
/// (it only accepts inline base64 images), tool-call arguments or tool
/// schemas that are not JSON objects, a tool result whose tool cannot be
/// named, and messages without a role.
pub(crate) fn chat_request<'a>(
    request: &'a CompletionRequest,
    model: &'a str,
) -> Result<ChatRequest<'a>, ProviderError> {
    // Tool results name their tool on Ollama; GTL names the call instead.
    let mut call_names: HashMap<&str, &str> = HashMap::new();
    let mut messages = Vec::with_capacity(request.messages.len());
    for message in &request.messages {
        for call in &message.tool_calls {
            if let Some(function) = &call.function {
                call_names.insert(call.id.as_str(), function.name.as_str());
            }
        }
        messages.push(chat_message(message, &call_names)?);
    }
    Ok(ChatRequest {
        model,
        messages,
        tools: tools(request)?,
        options: Options {
            temperature: request.temperature,
            top_p: request.top_p,
            num_predict: request.max_tokens,
            stop: &request.stop,
        },
        stream: request.stream,
    })
}

fn chat_message<'a>(
    message: &'a Message,
    call_names: &HashMap<&str, &'a str>,
) -> Result<ChatMessage<'a>, ProviderError> {
    let role = match message.role() {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
        Role::Unspecified => return Err(invalid("a message has no role")),
    };
    let mut content = String::new();
    let mut images = Vec::new();
    match &message.content {
        None => {}
        Some(Content::Text(text)) => content.push_str(text),
        Some(Content::Parts(parts)) => {
            for part in &parts.parts {
                match &part.part {
                    Some(Part::Text(text)) => content.push_str(text),
                    Some(Part::Image(image)) => match &image.source {
                        Some(Source::Data(data)) => images.push(BASE64.encode(data)),
                        Some(Source::Url(_)) => {
                            return Err(invalid(
                                "ollama does not fetch image urls: send the image bytes inline (`data`)",
                            ));
                        }
                        None => return Err(invalid("an image part has neither `data` nor `url`")),
                    },
                    None => {}
                }
            }
        }
    }
    let mut tool_calls = Vec::with_capacity(message.tool_calls.len());
    for call in &message.tool_calls {
        let Some(function) = &call.function else {
            return Err(invalid(format!("tool call `{}` has no function", call.id)));
        };
        tool_calls.push(OutToolCall {
            function: OutFunction {
                name: &function.name,
                arguments: arguments_object(&function.name, &function.arguments)?,
            },
        });
    }
    let tool_name = if message.role() == Role::Tool {
        let name = if message.name.is_empty() {
            call_names.get(message.tool_call_id.as_str()).copied()
        } else {
            Some(message.name.as_str())
        };
        Some(name.ok_or_else(|| {
            invalid(format!(
                "tool result `{}` answers no earlier tool call; set the message's `name` to the tool's name",
                message.tool_call_id
            ))
        })?)
    } else {
        None
    };
    Ok(ChatMessage {
        role,
        content,
        images,
        tool_calls,
        tool_name,
    })
}

/// The JSON object Ollama wants for a call's arguments (GTL carries text).
fn arguments_object<'a>(name: &str, arguments: &'a str) -> Result<&'a RawValue, ProviderError> {
    let text = if arguments.trim().is_empty() {
        "{}"
    } else {
        arguments
    };
    let raw: &RawValue = serde_json::from_str(text).map_err(|e| {
        invalid(format!(
            "the arguments of tool call `{name}` are not valid json: {e}"
        ))
    })?;
    if !raw.get().trim_start().starts_with('{') {
        return Err(invalid(format!(
            "the arguments of tool call `{name}` must be a json object"
        )));
    }
    Ok(raw)
}

/// The tools to offer, after `tool_choice`.
///
/// Ollama has no `tool_choice`: `none` sends no tools, a named function
/// sends only that tool, and `required` cannot be enforced (the tools are
/// sent and the model may still answer in text).
fn tools(request: &CompletionRequest) -> Result<Vec<ToolDefinition<'_>>, ProviderError> {
    let only = match request.tool_choice.as_ref().and_then(|c| c.choice.as_ref()) {
        Some(Choice::Mode(mode)) if *mode == ToolChoiceMode::None as i32 => return Ok(Vec::new()),
        Some(Choice::Function(name)) => {
            if !request.tools.iter().any(|t| tool_name(t) == Some(name)) {
                return Err(invalid(format!(
                    "tool_choice names `{name}`, which is not among the request's tools"
                )));
            }
            Some(name.as_str())
        }
        _ => None,
    };
    let mut out = Vec::with_capacity(request.tools.len());
    for tool in &request.tools {
        let Some(function) = &tool.function else {
            return Err(invalid("a tool has no function definition"));
        };
        if only.is_some_and(|only| only != function.name) {
            continue;
        }
        let parameters = if function.parameters.trim().is_empty() {
            empty_parameters()
        } else {
            let value: Value = serde_json::from_str(&function.parameters).map_err(|e| {
                invalid(format!(
                    "the parameters of tool `{}` are not valid json: {e}",
                    function.name
                ))
            })?;
            if !value.is_object() {
                return Err(invalid(format!(
                    "the parameters of tool `{}` must be a json schema object",
                    function.name
                )));
            }
            value
        };
        out.push(ToolDefinition {
            r#type: "function",
            function: FunctionDefinition {
                name: &function.name,
                description: &function.description,
                parameters,
            },
        });
    }
    Ok(out)
}

fn tool_name(tool: &Tool) -> Option<&String> {
    tool.function.as_ref().map(|f| &f.name)
}

#[cfg(test)]
mod tests {
    use gtl_proto::{
        ContentPart, ContentParts, FunctionCall, FunctionDef, Image, ToolCall, ToolChoice,
    };
    use serde_json::json;

    use super::*;

    fn text(role: Role, text: &str) -> Message {
        Message {
            role: role as i32,
            content: Some(Content::Text(text.into())),
            ..Message::default()
        }
    }

    fn weather_tool() -> Tool {
        Tool {
            function: Some(FunctionDef {
                name: "get_weather".into(),
                description: "Get the weather in a given city".into(),
                parameters: r#"{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}"#.into(),
            }),
        }
    }

    fn body(request: &CompletionRequest) -> Value {
        serde_json::to_value(chat_request(request, &request.model).unwrap()).unwrap()
    }

    #[test]
    fn a_plain_chat_maps_roles_and_options() {
        let request = CompletionRequest {
            model: "llama3.2".into(),
            messages: vec![
                text(Role::System, "be brief"),
                text(Role::User, "why is the sky blue?"),
            ],
            stream: true,
            max_tokens: Some(64),
            temperature: Some(0.5),
            top_p: Some(0.9),
            stop: vec!["\n\n".into()],
            ..CompletionRequest::default()
        };
        assert_eq!(
            body(&request),
            json!({
                "model": "llama3.2",
                "messages": [
                    {"role": "system", "content": "be brief"},
                    {"role": "user", "content": "why is the sky blue?"}
                ],
                "options": {"temperature": 0.5, "top_p": 0.9, "num_predict": 64, "stop": ["\n\n"]},
                "stream": true
            })
        );
    }

    #[test]
    fn no_options_and_unary() {
        let request = CompletionRequest {
            model: "llama3.2".into(),
            messages: vec![text(Role::User, "hi")],
            ..CompletionRequest::default()
        };
        assert_eq!(
            body(&request),
            json!({"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}], "stream": false})
        );
    }

    #[test]
    fn tool_history_sends_argument_objects_and_tool_names() {
        let request = CompletionRequest {
            model: "llama3.2".into(),
            messages: vec![
                text(Role::User, "what is the weather in Toronto?"),
                Message {
                    role: Role::Assistant as i32,
                    tool_calls: vec![ToolCall {
                        id: "call_0".into(),
                        function: Some(FunctionCall {
                            name: "get_weather".into(),
                            arguments: r#"{"city":"Toronto","units":{"c":true}}"#.into(),
                        }),
                    }],
                    ..Message::default()
                },
                Message {
                    tool_call_id: "call_0".into(),
                    ..text(Role::Tool, "11 degrees celsius")
                },
            ],
            tools: vec![weather_tool()],
            ..CompletionRequest::default()
        };
        let json = serde_json::to_string(&chat_request(&request, &request.model).unwrap()).unwrap();
        // The arguments keep their key order byte for byte.
        assert!(
            json.contains(r#""arguments":{"city":"Toronto","units":{"c":true}}"#),
            "{json}"
        );
        assert_eq!(
            body(&request),
            json!({
                "model": "llama3.2",
                "messages": [
                    {"role": "user", "content": "what is the weather in Toronto?"},
                    {"role": "assistant", "content": "", "tool_calls": [
                        {"function": {"name": "get_weather", "arguments": {"city": "Toronto", "units": {"c": true}}}}
                    ]},
                    {"role": "tool", "content": "11 degrees celsius", "tool_name": "get_weather"}
                ],
                "tools": [{"type": "function", "function": {
                    "name": "get_weather",
                    "description": "Get the weather in a given city",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
                }}],
                "stream": false
            })
        );
    }

    #[test]
    fn images_are_inline_base64_and_urls_are_refused() {
        let image = |source| ContentPart {
            part: Some(Part::Image(Image {
                source: Some(source),
                media_type: "image/png".into(),
                detail: String::new(),
            })),
        };
        let mut request = CompletionRequest {
            model: "llava".into(),
            messages: vec![Message {
                role: Role::User as i32,
                content: Some(Content::Parts(ContentParts {
                    parts: vec![
                        ContentPart {
                            part: Some(Part::Text("what is in this picture?".into())),
                        },
                        image(Source::Data(b"\x89PNG".to_vec())),
                    ],
                })),
                ..Message::default()
            }],
            ..CompletionRequest::default()
        };
        assert_eq!(
            body(&request)["messages"][0],
            json!({"role": "user", "content": "what is in this picture?", "images": ["iVBORw=="]})
        );
        let Some(Content::Parts(parts)) = &mut request.messages[0].content else {
            unreachable!()
        };
        parts
            .parts
            .push(image(Source::Url("https://example.com/cat.png".into())));
        let error = chat_request(&request, &request.model).unwrap_err();
        assert_eq!(error.code, ErrorCode::InvalidRequest);
        assert!(error.message.contains("image urls"), "{}", error.message);
    }

    #[test]
    fn tool_choice_none_and_named() {
        let other = Tool {
            function: Some(FunctionDef {
                name: "other".into(),
                ..FunctionDef::default()
            }),
        };
        let mut request = CompletionRequest {
            model: "llama3.2".into(),
            messages: vec![text(Role::User, "hi")],
            tools: vec![weather_tool(), other],
            tool_choice: Some(ToolChoice {
                choice: Some(Choice::Mode(ToolChoiceMode::None as i32)),
            }),
            ..CompletionRequest::default()
        };
        assert!(body(&request).get("tools").is_none());

        request.tool_choice = Some(ToolChoice {
            choice: Some(Choice::Function("other".into())),
        });
        assert_eq!(
            body(&request)["tools"],
            json!([{"type": "function", "function": {"name": "other", "parameters": {"type": "object", "properties": {}}}}])
        );

        request.tool_choice = Some(ToolChoice {
            choice: Some(Choice::Function("missing".into())),
        });
        assert_eq!(
            chat_request(&request, &request.model).unwrap_err().code,
            ErrorCode::InvalidRequest
        );
    }

    #[test]
    fn bad_json_is_an_invalid_request() {
        let mut request = CompletionRequest {
            model: "llama3.2".into(),
            messages: vec![Message {
                role: Role::Assistant as i32,
                tool_calls: vec![ToolCall {
                    id: "c".into(),
                    function: Some(FunctionCall {
                        name: "f".into(),
                        arguments: "[1,2]".into(),
                    }),
                }],
                ..Message::default()
            }],
            ..CompletionRequest::default()
        };
        assert_eq!(
            chat_request(&request, &request.model).unwrap_err().code,
            ErrorCode::InvalidRequest
        );
        request.messages = vec![text(Role::Tool, "orphan result")];
        assert!(
            chat_request(&request, &request.model)
                .unwrap_err()
                .message
                .contains("answers no earlier tool call")
        );
        request.messages = vec![text(Role::Unspecified, "who?")];
        assert_eq!(
            chat_request(&request, &request.model).unwrap_err().code,
            ErrorCode::InvalidRequest
        );
        request.messages = vec![text(Role::User, "hi")];
        request.tools = vec![Tool {
            function: Some(FunctionDef {
                name: "f".into(),
                parameters: "not json".into(),
                ..FunctionDef::default()
            }),
        }];
        assert_eq!(
            chat_request(&request, &request.model).unwrap_err().code,
            ErrorCode::InvalidRequest
        );
    }
}
