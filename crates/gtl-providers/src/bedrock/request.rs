//! `CompletionRequest` → a Converse / ConverseStream request body.
//!
//! Pure data mapping: no IO. What Converse cannot express fails here with
//! `INVALID_REQUEST` before anything is signed or sent.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use gtl_core::ProviderError;
use gtl_proto::types::{Choice, Content, Part, Source, ToolChoiceMode};
use gtl_proto::{CompletionRequest, ErrorCode, Image, Message, Role};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

/// The body of `POST /model/{modelId}/converse` and `…/converse-stream`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConverseRequest<'a> {
    messages: Vec<BedrockMessage<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    system: Vec<SystemBlock<'a>>,
    #[serde(skip_serializing_if = "InferenceConfig::is_empty")]
    inference_config: InferenceConfig<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_config: Option<ToolConfig<'a>>,
}

#[derive(Debug, Serialize)]
struct BedrockMessage<'a> {
    role: &'static str,
    content: Vec<ContentBlock<'a>>,
}

#[derive(Debug, Serialize)]
struct SystemBlock<'a> {
    text: &'a str,
}

/// A `ContentBlock` union member. Tool results hold the same `text` and
/// `image` members (`ToolResultContentBlock`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
enum ContentBlock<'a> {
    Text(&'a str),
    Image(ImageBlock),
    ToolUse(ToolUseBlock<'a>),
    ToolResult(ToolResultBlock<'a>),
}

#[derive(Debug, Serialize)]
struct ImageBlock {
    format: &'static str,
    source: ImageSource,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
enum ImageSource {
    /// Base64 in JSON (a blob member).
    Bytes(String),
    S3Location {
        uri: String,
    },
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolUseBlock<'a> {
    tool_use_id: &'a str,
    name: &'a str,
    /// A JSON object, kept byte for byte.
    input: &'a RawValue,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolResultBlock<'a> {
    tool_use_id: &'a str,
    content: Vec<ContentBlock<'a>>,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct InferenceConfig<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    stop_sequences: &'a [String],
}

impl InferenceConfig<'_> {
    fn is_empty(&self) -> bool {
        self.max_tokens.is_none()
            && self.temperature.is_none()
            && self.top_p.is_none()
            && self.stop_sequences.is_empty()
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolConfig<'a> {
    tools: Vec<ToolEntry<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<Value>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolEntry<'a> {
    tool_spec: ToolSpec<'a>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolSpec<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    description: &'a str,
    input_schema: InputSchema,
}

#[derive(Debug, Serialize)]
struct InputSchema {
    json: Value,
}

fn invalid(message: impl Into<String>) -> ProviderError {
    ProviderError::new(ErrorCode::InvalidRequest, message)
}

/// The request path for `model_id`: `/model/{modelId}/converse-stream`
/// when `stream`, else `/model/{modelId}/converse`.
///
/// The model id (or inference-profile ARN) is one path segment, so every
/// byte but RFC 3986's unreserved characters is percent-encoded (`:` in
/// `…-v1:0`, `/` in an ARN).
pub(crate) fn path(model_id: &str, stream: bool) -> String {
    let mut path = String::with_capacity(model_id.len() + 24);
    path.push_str("/model/");
    for byte in model_id.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            path.push(char::from(byte));
        } else {
            path.push_str(&format!("%{byte:02X}"));
        }
    }
    path.push_str(if stream {
        "/converse-stream"
    } else {
        "/converse"
    });
    path
}

/// Builds the Converse body for `request`.
///
/// System messages become the top-level `system` blocks; tool results
/// become `toolResult` blocks of a user turn; consecutive messages of one
/// role are merged into one turn, since Converse wants user and assistant
/// turns to alternate.
pub(crate) fn converse_request(
    request: &CompletionRequest,
) -> Result<ConverseRequest<'_>, ProviderError> {
    let mut system = Vec::new();
    let mut messages: Vec<BedrockMessage<'_>> = Vec::new();
    let mut has_tool_blocks = false;
    for message in &request.messages {
        let (role, blocks) = match message.role() {
            Role::System => {
                for block in content_blocks(message, "system")? {
                    let ContentBlock::Text(text) = block else {
                        return Err(invalid("bedrock system prompts take text only"));
                    };
                    system.push(SystemBlock { text });
                }
                continue;
            }
            Role::User => ("user", content_blocks(message, "user")?),
            Role::Assistant => {
                let mut blocks = content_blocks(message, "assistant")?;
                for call in &message.tool_calls {
                    let Some(function) = &call.function else {
                        return Err(invalid(format!("tool call `{}` has no function", call.id)));
                    };
                    blocks.push(ContentBlock::ToolUse(ToolUseBlock {
                        tool_use_id: &call.id,
                        name: &function.name,
                        input: input_object(&function.name, &function.arguments)?,
                    }));
                    has_tool_blocks = true;
                }
                ("assistant", blocks)
            }
            Role::Tool => {
                if message.tool_call_id.is_empty() {
                    return Err(invalid(
                        "a tool message needs the `tool_call_id` it answers",
                    ));
                }
                has_tool_blocks = true;
                let content = content_blocks(message, "tool")?;
                let result = ToolResultBlock {
                    tool_use_id: &message.tool_call_id,
                    // Converse rejects an empty result; say so in text.
                    content: if content.is_empty() {
                        vec![ContentBlock::Text("(empty)")]
                    } else {
                        content
                    },
                };
                ("user", vec![ContentBlock::ToolResult(result)])
            }
            Role::Unspecified => return Err(invalid("a message has no role")),
        };
        if blocks.is_empty() {
            continue;
        }
        match messages.last_mut() {
            Some(last) if last.role == role => last.content.extend(blocks),
            _ => messages.push(BedrockMessage {
                role,
                content: blocks,
            }),
        }
    }
    Ok(ConverseRequest {
        messages,
        system,
        inference_config: InferenceConfig {
            max_tokens: request.max_tokens,
            temperature: request.temperature,
            top_p: request.top_p,
            stop_sequences: &request.stop,
        },
        tool_config: tool_config(request, has_tool_blocks)?,
    })
}

/// The text and image blocks of a message (empty texts dropped: Converse
/// rejects blank text blocks).
fn content_blocks<'a>(
    message: &'a Message,
    role: &str,
) -> Result<Vec<ContentBlock<'a>>, ProviderError> {
    match &message.content {
        None => Ok(Vec::new()),
        Some(Content::Text(text)) if text.is_empty() => Ok(Vec::new()),
        Some(Content::Text(text)) => Ok(vec![ContentBlock::Text(text)]),
        Some(Content::Parts(parts)) => {
            let mut blocks = Vec::with_capacity(parts.parts.len());
            for part in &parts.parts {
                match &part.part {
                    Some(Part::Text(text)) if !text.is_empty() => {
                        blocks.push(ContentBlock::Text(text));
                    }
                    Some(Part::Image(image)) => {
                        blocks.push(ContentBlock::Image(image_block(image, role)?))
                    }
                    Some(Part::Text(_)) | None => {}
                }
            }
            Ok(blocks)
        }
    }
}

fn image_block(image: &Image, role: &str) -> Result<ImageBlock, ProviderError> {
    if role == "system" {
        return Err(invalid("bedrock system prompts take text only"));
    }
    let (source, sniffed) = match &image.source {
        Some(Source::Data(data)) => (ImageSource::Bytes(BASE64.encode(data)), sniff(data)),
        Some(Source::Url(url)) if url.starts_with("s3://") => {
            (ImageSource::S3Location { uri: url.clone() }, None)
        }
        Some(Source::Url(_)) => {
            return Err(invalid(
                "bedrock does not fetch image urls: send the image bytes inline (`data`) or an `s3://` uri",
            ));
        }
        None => return Err(invalid("an image part has neither `data` nor `url`")),
    };
    let format = match image.media_type.to_ascii_lowercase().as_str() {
        "image/png" => "png",
        "image/jpeg" | "image/jpg" => "jpeg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        "" => sniffed.ok_or_else(|| {
            invalid("an image has no `media_type` and is not png, jpeg, gif or webp")
        })?,
        other => {
            return Err(invalid(format!(
                "bedrock takes png, jpeg, gif or webp images, not `{other}`"
            )));
        }
    };
    Ok(ImageBlock { format, source })
}

/// The image format from the data's magic bytes.
fn sniff(data: &[u8]) -> Option<&'static str> {
    if data.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("png")
    } else if data.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("jpeg")
    } else if data.starts_with(b"GIF87a") || data.starts_with(b"GIF89a") {
        Some("gif")
    } else if data.len() >= 12 && &data[..4] == b"RIFF" && &data[8..12] == b"WEBP" {
        Some("webp")
    } else {
        None
    }
}

/// A call's arguments as the JSON object `toolUse.input` wants.
fn input_object<'a>(name: &str, arguments: &'a str) -> Result<&'a RawValue, ProviderError> {
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

/// `toolConfig`, after `tool_choice`.
///
/// Converse has `auto`, `any` (GTL `required`) and a named `tool`, but no
/// `none`: `none` sends no tools, unless the history holds tool blocks, which
/// Converse only accepts with a `toolConfig`; then the tools go with no
/// `toolChoice` (the model's default, auto).
fn tool_config(
    request: &CompletionRequest,
    has_tool_blocks: bool,
) -> Result<Option<ToolConfig<'_>>, ProviderError> {
    if request.tools.is_empty() {
        return Ok(None);
    }
    let mut tools = Vec::with_capacity(request.tools.len());
    for tool in &request.tools {
        let Some(function) = &tool.function else {
            return Err(invalid("a tool has no function definition"));
        };
        let json = if function.parameters.trim().is_empty() {
            json!({ "type": "object", "properties": {} })
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
        tools.push(ToolEntry {
            tool_spec: ToolSpec {
                name: &function.name,
                description: &function.description,
                input_schema: InputSchema { json },
            },
        });
    }
    let tool_choice = match request.tool_choice.as_ref().and_then(|c| c.choice.as_ref()) {
        None => None,
        Some(Choice::Mode(mode)) => match ToolChoiceMode::try_from(*mode) {
            Ok(ToolChoiceMode::Auto) => Some(json!({ "auto": {} })),
            Ok(ToolChoiceMode::Required) => Some(json!({ "any": {} })),
            Ok(ToolChoiceMode::None) if has_tool_blocks => None,
            Ok(ToolChoiceMode::None) => return Ok(None),
            Ok(ToolChoiceMode::Unspecified) | Err(_) => None,
        },
        Some(Choice::Function(name)) => {
            if !tools.iter().any(|t| t.tool_spec.name == name) {
                return Err(invalid(format!(
                    "tool_choice names `{name}`, which is not among the request's tools"
                )));
            }
            Some(json!({ "tool": { "name": name } }))
        }
    };
    Ok(Some(ToolConfig { tools, tool_choice }))
}

#[cfg(test)]
mod tests {
    use gtl_proto::{
        ContentPart, ContentParts, FunctionCall, FunctionDef, Tool, ToolCall, ToolChoice,
    };

    use super::*;

    fn text(role: Role, text: &str) -> Message {
        Message {
            role: role as i32,
            content: Some(Content::Text(text.into())),
            ..Message::default()
        }
    }

    fn body(request: &CompletionRequest) -> Value {
        serde_json::to_value(converse_request(request).unwrap()).unwrap()
    }

    fn weather_tool() -> Tool {
        Tool {
            function: Some(FunctionDef {
                name: "get_weather".into(),
                description: "Get the weather".into(),
                parameters: r#"{"type":"object","properties":{"city":{"type":"string"}}}"#.into(),
            }),
        }
    }

    #[test]
    fn paths_encode_the_model_id() {
        assert_eq!(
            path("anthropic.claude-3-5-sonnet-20240620-v1:0", true),
            "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse-stream"
        );
        assert_eq!(
            path(
                "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.meta.llama3",
                false
            ),
            "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.meta.llama3/converse"
        );
    }

    #[test]
    fn system_inference_config_and_text() {
        let request = CompletionRequest {
            model: "amazon.nova-lite-v1:0".into(),
            messages: vec![text(Role::System, "be brief"), text(Role::User, "hello")],
            max_tokens: Some(100),
            temperature: Some(0.25),
            top_p: Some(0.5),
            stop: vec!["END".into()],
            ..CompletionRequest::default()
        };
        assert_eq!(
            body(&request),
            json!({
                "messages": [{"role": "user", "content": [{"text": "hello"}]}],
                "system": [{"text": "be brief"}],
                "inferenceConfig": {"maxTokens": 100, "temperature": 0.25, "topP": 0.5, "stopSequences": ["END"]}
            })
        );
    }

    #[test]
    fn tool_round_trip_history() {
        let call = |id: &str, city: &str| ToolCall {
            id: id.into(),
            function: Some(FunctionCall {
                name: "get_weather".into(),
                arguments: format!(r#"{{"city":"{city}"}}"#),
            }),
        };
        let result = |id: &str, text_: &str| Message {
            tool_call_id: id.into(),
            ..text(Role::Tool, text_)
        };
        let request = CompletionRequest {
            model: "m".into(),
            messages: vec![
                text(Role::User, "weather in Oslo and Rome?"),
                Message {
                    role: Role::Assistant as i32,
                    content: Some(Content::Text("Checking.".into())),
                    tool_calls: vec![call("t1", "Oslo"), call("t2", "Rome")],
                    ..Message::default()
                },
                result("t1", "3C"),
                result("t2", ""),
                text(Role::User, "thanks"),
            ],
            tools: vec![weather_tool()],
            tool_choice: Some(ToolChoice {
                choice: Some(Choice::Mode(ToolChoiceMode::Required as i32)),
            }),
            ..CompletionRequest::default()
        };
        assert_eq!(
            body(&request),
            json!({
                "messages": [
                    {"role": "user", "content": [{"text": "weather in Oslo and Rome?"}]},
                    {"role": "assistant", "content": [
                        {"text": "Checking."},
                        {"toolUse": {"toolUseId": "t1", "name": "get_weather", "input": {"city": "Oslo"}}},
                        {"toolUse": {"toolUseId": "t2", "name": "get_weather", "input": {"city": "Rome"}}}
                    ]},
                    {"role": "user", "content": [
                        {"toolResult": {"toolUseId": "t1", "content": [{"text": "3C"}]}},
                        {"toolResult": {"toolUseId": "t2", "content": [{"text": "(empty)"}]}},
                        {"text": "thanks"}
                    ]}
                ],
                "toolConfig": {
                    "tools": [{"toolSpec": {"name": "get_weather", "description": "Get the weather",
                        "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}}}}}}],
                    "toolChoice": {"any": {}}
                }
            })
        );
    }

    #[test]
    fn tool_choice_variants() {
        let mut request = CompletionRequest {
            model: "m".into(),
            messages: vec![text(Role::User, "hi")],
            tools: vec![weather_tool()],
            ..CompletionRequest::default()
        };
        assert!(body(&request)["toolConfig"].get("toolChoice").is_none());
        let choose = |choice| {
            Some(ToolChoice {
                choice: Some(choice),
            })
        };
        request.tool_choice = choose(Choice::Mode(ToolChoiceMode::Auto as i32));
        assert_eq!(
            body(&request)["toolConfig"]["toolChoice"],
            json!({"auto": {}})
        );
        request.tool_choice = choose(Choice::Function("get_weather".into()));
        assert_eq!(
            body(&request)["toolConfig"]["toolChoice"],
            json!({"tool": {"name": "get_weather"}})
        );
        request.tool_choice = choose(Choice::Mode(ToolChoiceMode::None as i32));
        assert!(body(&request).get("toolConfig").is_none());
        request.tool_choice = choose(Choice::Function("nope".into()));
        assert_eq!(
            converse_request(&request).unwrap_err().code,
            ErrorCode::InvalidRequest
        );
    }

    #[test]
    fn images() {
        let image = |source, media_type: &str| ContentPart {
            part: Some(Part::Image(Image {
                source: Some(source),
                media_type: media_type.into(),
                detail: String::new(),
            })),
        };
        let with = |parts| CompletionRequest {
            model: "m".into(),
            messages: vec![Message {
                role: Role::User as i32,
                content: Some(Content::Parts(ContentParts { parts })),
                ..Message::default()
            }],
            ..CompletionRequest::default()
        };
        let png = b"\x89PNG\r\n\x1a\n".to_vec();
        assert_eq!(
            body(&with(vec![
                image(Source::Data(png.clone()), ""),
                image(Source::Data(vec![1, 2, 3]), "image/JPG"),
                image(Source::Url("s3://bucket/cat.webp".into()), "image/webp"),
            ]))["messages"][0]["content"],
            json!([
                {"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}},
                {"image": {"format": "jpeg", "source": {"bytes": "AQID"}}},
                {"image": {"format": "webp", "source": {"s3Location": {"uri": "s3://bucket/cat.webp"}}}}
            ])
        );
        for bad in [
            image(
                Source::Url("https://example.com/cat.png".into()),
                "image/png",
            ),
            image(Source::Data(vec![0; 4]), ""),
            image(Source::Data(png), "image/tiff"),
        ] {
            let error = converse_request(&with(vec![bad])).unwrap_err();
            assert_eq!(error.code, ErrorCode::InvalidRequest, "{}", error.message);
        }
    }

    #[test]
    fn invalid_requests() {
        let mut request = CompletionRequest {
            model: "m".into(),
            messages: vec![text(Role::Tool, "no id")],
            ..CompletionRequest::default()
        };
        assert_eq!(
            converse_request(&request).unwrap_err().code,
            ErrorCode::InvalidRequest
        );
        request.messages = vec![Message {
            role: Role::Assistant as i32,
            tool_calls: vec![ToolCall {
                id: "t".into(),
                function: Some(FunctionCall {
                    name: "f".into(),
                    arguments: "\"text\"".into(),
                }),
            }],
            ..Message::default()
        }];
        assert_eq!(
            converse_request(&request).unwrap_err().code,
            ErrorCode::InvalidRequest
        );
        request.messages = vec![text(Role::Unspecified, "who?")];
        assert_eq!(
            converse_request(&request).unwrap_err().code,
            ErrorCode::InvalidRequest
        );
    }
}
