//! Chat Completions request bodies → GTL requests, and refusals.

use std::collections::BTreeMap;

use gtl_compat::{DialectError, openai};
use gtl_proto::types::{Choice, Content, Part, Source, ToolChoiceMode};
use gtl_proto::{
    CompletionRequest, ContentPart, ContentParts, FunctionCall, FunctionDef, Image, Message, Role,
    Tool, ToolCall, ToolChoice,
};
use serde_json::{Value, json};

use crate::spec;

pub(crate) fn text(role: Role, text: &str) -> Message {
    Message {
        role: role as i32,
        content: Some(Content::Text(text.into())),
        ..Message::default()
    }
}

pub(crate) fn parts(role: Role, parts: Vec<Part>) -> Message {
    Message {
        role: role as i32,
        content: Some(Content::Parts(ContentParts {
            parts: parts
                .into_iter()
                .map(|part| ContentPart { part: Some(part) })
                .collect(),
        })),
        ..Message::default()
    }
}

pub(crate) fn call(id: &str, name: &str, arguments: &str) -> ToolCall {
    ToolCall {
        id: id.into(),
        function: Some(FunctionCall {
            name: name.into(),
            arguments: arguments.into(),
        }),
    }
}

pub(crate) fn tool_result(id: &str, content: Content) -> Message {
    Message {
        role: Role::Tool as i32,
        tool_call_id: id.into(),
        content: Some(content),
        ..Message::default()
    }
}

/// A 1×1 PNG, base64.
pub(crate) const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";

pub(crate) fn png_bytes() -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(PNG)
        .unwrap()
}

/// A request that uses every field the dialect maps.
pub(crate) fn full_body() -> Value {
    json!({
        "model": "openai/gpt-4o",
        "messages": [
            {"role": "developer", "content": "Be brief."},
            {"role": "system", "content": [{"type": "text", "text": "Use metric units."}]},
            {"role": "user", "name": "ada", "content": [
                {"type": "text", "text": "What is in these?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg", "detail": "low"}},
                {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{PNG}")}}
            ]},
            {"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18°C"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "12:00"}]},
            {"role": "assistant", "content": null, "refusal": "I can't say more."},
            {"role": "user", "content": "Thanks"}
        ],
        "max_completion_tokens": 256,
        "max_tokens": 100,
        "temperature": 0.5,
        "top_p": 0.9,
        "stop": ["\n\n", "END"],
        "n": 1,
        "stream": true,
        "stream_options": {"include_usage": true},
        "tools": [
            {"type": "function", "function": {
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
                "strict": true
            }},
            {"type": "function", "function": {"name": "get_time"}}
        ],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "parallel_tool_calls": true,
        "user": "user-1234",
        "metadata": {"team": "search", "trace": "t-1"},
        "seed": 7,
        "frequency_penalty": 0.1,
        "presence_penalty": 0,
        "store": false,
        "logprobs": false,
        "response_format": {"type": "text"},
        "modalities": ["text"],
        "logit_bias": {},
        "service_tier": "auto",
        "reasoning_effort": "low",
        "some_vendor_extension": {"ignored": true}
    })
}

#[test]
fn every_mapped_field_reaches_the_gtl_request() {
    let body = full_body();
    let mut checked = body.clone();
    // The definition does not know the vendor extension; everything else
    // is a valid OpenAI request.
    checked
        .as_object_mut()
        .unwrap()
        .remove("some_vendor_extension");
    spec::openai()
        .validate("CreateChatCompletionRequest", &checked)
        .unwrap();

    let (mut request, options) = openai::parse_request(body.to_string().as_bytes()).unwrap();
    let schema = std::mem::take(&mut request.tools[0].function.as_mut().unwrap().parameters);
    assert_eq!(
        serde_json::from_str::<Value>(&schema).unwrap(),
        body["tools"][0]["function"]["parameters"]
    );
    let image = |source, media_type: &str, detail: &str| {
        Part::Image(Image {
            media_type: media_type.into(),
            detail: detail.into(),
            source: Some(source),
        })
    };
    let mut user = parts(
        Role::User,
        vec![
            Part::Text("What is in these?".into()),
            image(Source::Url("https://example.com/a.jpg".into()), "", "low"),
            image(Source::Data(png_bytes()), "image/png", ""),
        ],
    );
    user.name = "ada".into();
    let mut assistant = text(Role::Assistant, "Checking.");
    assistant.tool_calls = vec![
        call("call_1", "get_weather", "{\"city\":\"Paris\"}"),
        call("call_2", "get_time", "{}"),
    ];
    let expected = CompletionRequest {
        model: "openai/gpt-4o".into(),
        messages: vec![
            text(Role::System, "Be brief."),
            parts(Role::System, vec![Part::Text("Use metric units.".into())]),
            user,
            assistant,
            tool_result("call_1", Content::Text("18°C".into())),
            tool_result(
                "call_2",
                Content::Parts(ContentParts {
                    parts: vec![ContentPart {
                        part: Some(Part::Text("12:00".into())),
                    }],
                }),
            ),
            text(Role::Assistant, "I can't say more."),
            text(Role::User, "Thanks"),
        ],
        stream: true,
        max_tokens: Some(256),
        temperature: Some(0.5),
        top_p: Some(0.9),
        stop: vec!["\n\n".into(), "END".into()],
        tools: vec![
            Tool {
                function: Some(FunctionDef {
                    name: "get_weather".into(),
                    description: "Weather for a city".into(),
                    // Compared as JSON below: key order depends on
                    // serde_json's features.
                    parameters: String::new(),
                }),
            },
            Tool {
                function: Some(FunctionDef {
                    name: "get_time".into(),
                    ..FunctionDef::default()
                }),
            },
        ],
        tool_choice: Some(ToolChoice {
            choice: Some(Choice::Function("get_weather".into())),
        }),
        metadata: BTreeMap::from([
            ("team".into(), "search".into()),
            ("trace".into(), "t-1".into()),
        ]),
        ..CompletionRequest::default()
    };
    assert_eq!(request, expected);
    assert!(options.stream);
    assert!(options.include_usage);
    assert_eq!(options.model, "openai/gpt-4o");
    assert_eq!(options.user.as_deref(), Some("user-1234"));
}

fn parse(body: &Value) -> Result<CompletionRequest, DialectError> {
    openai::parse_request(body.to_string().as_bytes()).map(|(request, _)| request)
}

fn minimal() -> Value {
    json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
}

fn with(key: &str, value: Value) -> Value {
    let mut body = minimal();
    body[key] = value;
    body
}

#[test]
fn the_smaller_forms_map_too() {
    let request = parse(&minimal()).unwrap();
    assert_eq!(request.messages, [text(Role::User, "hi")]);
    assert!(!request.stream);
    assert_eq!(request.max_tokens, None);

    assert_eq!(parse(&with("stop", json!("END"))).unwrap().stop, ["END"]);
    assert_eq!(
        parse(&with("max_tokens", json!(9))).unwrap().max_tokens,
        Some(9)
    );
    assert_eq!(
        parse(&with("temperature", Value::Null))
            .unwrap()
            .temperature,
        None
    );
    for (mode, expected) in [
        ("auto", ToolChoiceMode::Auto),
        ("none", ToolChoiceMode::None),
        ("required", ToolChoiceMode::Required),
    ] {
        let choice = parse(&with("tool_choice", json!(mode)))
            .unwrap()
            .tool_choice;
        assert_eq!(
            choice.and_then(|c| c.choice),
            Some(Choice::Mode(expected as i32))
        );
    }
    // An assistant message may be only tool calls.
    let body = with(
        "messages",
        json!([{"role": "assistant", "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": ""}}
        ]}]),
    );
    let message = &parse(&body).unwrap().messages[0];
    assert_eq!(message.content, None);
    assert_eq!(message.tool_calls, [call("c", "f", "")]);
    // Base64 without padding is the same image.
    let unpadded = PNG.trim_end_matches('=');
    let body = with(
        "messages",
        json!([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{unpadded}")}}]}]),
    );
    let message = &parse(&body).unwrap().messages[0];
    let Some(Content::Parts(parts)) = &message.content else {
        panic!("parts");
    };
    assert!(
        matches!(&parts.parts[0].part, Some(Part::Image(Image { source: Some(Source::Data(data)), .. })) if *data == png_bytes())
    );
    // Stream options come with a stream.
    let (_, options) =
        openai::parse_request(with("stream", json!(true)).to_string().as_bytes()).unwrap();
    assert!(options.stream && !options.include_usage);
}

/// `(body, param, message)`: each refusal names its field and says why.
fn refusals() -> Vec<(Value, &'static str, &'static str)> {
    let message = |m: Value| with("messages", json!([m]));
    let part = |p: Value| message(json!({"role": "user", "content": [p]}));
    vec![
        (json!({"messages": []}), "model", "`model` is required"),
        (
            with("model", json!(5)),
            "model",
            "`model`: expected a string, got a number",
        ),
        (
            with("model", json!("")),
            "model",
            "`model`: must not be empty",
        ),
        (json!({"model": "m"}), "messages", "`messages` is required"),
        (
            with("messages", json!([])),
            "messages",
            "`messages`: must contain at least one message",
        ),
        (
            with("messages", json!({})),
            "messages",
            "`messages`: expected an array, got an object",
        ),
        (
            message(json!("hi")),
            "messages[0]",
            "`messages[0]`: expected an object, got a string",
        ),
        (
            message(json!({"content": "hi"})),
            "messages[0].role",
            "`messages[0].role` is required",
        ),
        (
            message(json!({"role": "robot", "content": "hi"})),
            "messages[0].role",
            "`messages[0].role`: unknown role `robot`; expected system, developer, user, assistant or tool",
        ),
        (
            message(json!({"role": "function", "name": "f", "content": "x"})),
            "messages[0].role",
            "`messages[0].role`: the deprecated `function` role is not accepted; send `tool` messages",
        ),
        (
            message(json!({"role": "user"})),
            "messages[0].content",
            "`messages[0].content` is required",
        ),
        (
            message(json!({"role": "user", "content": 5})),
            "messages[0].content",
            "`messages[0].content`: expected a string or an array of content parts, got a number",
        ),
        (
            message(json!({"role": "user", "content": []})),
            "messages[0].content",
            "`messages[0].content`: must contain at least one content part",
        ),
        (
            part(json!({"type": "input_audio", "input_audio": {"data": "", "format": "wav"}})),
            "messages[0].content[0].type",
            "`messages[0].content[0].type`: `input_audio` parts are not carried by GTL",
        ),
        (
            part(json!({"type": "file", "file": {"file_id": "f"}})),
            "messages[0].content[0].type",
            "`messages[0].content[0].type`: `file` parts are not carried by GTL",
        ),
        (
            part(json!({"type": "video"})),
            "messages[0].content[0].type",
            "`messages[0].content[0].type`: unknown content part type `video`",
        ),
        (
            part(json!({"text": "x"})),
            "messages[0].content[0].type",
            "`messages[0].content[0].type` is required",
        ),
        (
            part(json!({"type": "text"})),
            "messages[0].content[0].text",
            "`messages[0].content[0].text` is required",
        ),
        (
            message(
                json!({"role": "system", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}),
            ),
            "messages[0].content[0].type",
            "`messages[0].content[0].type`: `image_url` parts are not allowed in this message's role",
        ),
        (
            part(json!({"type": "image_url", "image_url": {"url": "ftp://x/y.png"}})),
            "messages[0].content[0].image_url.url",
            "`messages[0].content[0].image_url.url`: expected an https:, http: or base64 data: URL",
        ),
        (
            part(json!({"type": "image_url", "image_url": {"url": "data:text/plain;base64,aGk="}})),
            "messages[0].content[0].image_url.url",
            "`messages[0].content[0].image_url.url`: `text/plain` is not an image media type (image/png, image/jpeg, image/gif, image/webp)",
        ),
        (
            part(
                json!({"type": "image_url", "image_url": {"url": "data:image/png;base64,not base64!"}}),
            ),
            "messages[0].content[0].image_url.url",
            "`messages[0].content[0].image_url.url`: the image data is not base64: Invalid symbol 32, offset 3.",
        ),
        (
            part(json!({"type": "image_url", "image_url": {"url": "data:image/png,%89PNG"}})),
            "messages[0].content[0].image_url.url",
            "`messages[0].content[0].image_url.url`: only base64 data: URIs are accepted (`data:image/png;base64,...`)",
        ),
        (
            part(
                json!({"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "ultra"}}),
            ),
            "messages[0].content[0].image_url.detail",
            "`messages[0].content[0].image_url.detail`: `ultra` is not one of auto, low, high",
        ),
        (
            part(json!({"type": "image_url"})),
            "messages[0].content[0].image_url",
            "`messages[0].content[0].image_url` is required",
        ),
        (
            message(json!({"role": "tool", "content": "x"})),
            "messages[0].tool_call_id",
            "`messages[0].tool_call_id` is required",
        ),
        (
            message(json!({"role": "assistant", "tool_calls": [{"id": "c", "type": "function"}]})),
            "messages[0].tool_calls[0].function",
            "`messages[0].tool_calls[0].function` is required",
        ),
        (
            message(
                json!({"role": "assistant", "tool_calls": [{"id": "c", "type": "custom", "custom": {"name": "x", "input": ""}}]}),
            ),
            "messages[0].tool_calls[0].type",
            "`messages[0].tool_calls[0].type`: `custom` tool calls are not carried by GTL",
        ),
        (
            message(
                json!({"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": {}}}]}),
            ),
            "messages[0].tool_calls[0].function.arguments",
            "`messages[0].tool_calls[0].function.arguments`: expected a string, got an object",
        ),
        (
            message(json!({"role": "assistant", "content": "x", "audio": {"id": "a"}})),
            "messages[0].audio",
            "`messages[0].audio`: audio answers are not carried by GTL",
        ),
        (
            with("n", json!(2)),
            "n",
            "`n`: GTL answers with one choice; send `n: 1` (or omit it) and repeat the request for more",
        ),
        (
            with("n", json!("2")),
            "n",
            "`n`: expected a non-negative integer, got a string",
        ),
        (
            with("max_tokens", json!(-1)),
            "max_tokens",
            "`max_tokens`: expected a non-negative integer, got -1",
        ),
        (
            with("max_completion_tokens", json!(1.5)),
            "max_completion_tokens",
            "`max_completion_tokens`: expected a non-negative integer, got 1.5",
        ),
        (
            with("max_tokens", json!(5_000_000_000_u64)),
            "max_tokens",
            "`max_tokens`: 5000000000 is larger than 4294967295",
        ),
        (
            with("temperature", json!(3)),
            "temperature",
            "`temperature`: 3 is not between 0 and 2",
        ),
        (
            with("temperature", json!("hot")),
            "temperature",
            "`temperature`: expected a number, got a string",
        ),
        (
            with("top_p", json!(1.5)),
            "top_p",
            "`top_p`: 1.5 is not between 0 and 1",
        ),
        (
            with("stop", json!(["a", "b", "c", "d", "e"])),
            "stop",
            "`stop`: at most 4 stop sequences are allowed, got 5",
        ),
        (
            with("stop", json!([1])),
            "stop[0]",
            "`stop[0]`: expected a string, got a number",
        ),
        (
            with("stream", json!("yes")),
            "stream",
            "`stream`: expected a boolean, got a string",
        ),
        (
            with("stream_options", json!({"include_usage": true})),
            "stream_options",
            "`stream_options`: only allowed when `stream` is true",
        ),
        (
            with("logprobs", json!(true)),
            "logprobs",
            "`logprobs`: log probabilities are not carried by GTL",
        ),
        (
            with("top_logprobs", json!(2)),
            "top_logprobs",
            "`top_logprobs`: log probabilities are not carried by GTL",
        ),
        (
            with("parallel_tool_calls", json!(false)),
            "parallel_tool_calls",
            "`parallel_tool_calls`: GTL cannot stop every provider from calling tools in parallel; omit the field or send `true`",
        ),
        (
            with("response_format", json!({"type": "json_object"})),
            "response_format.type",
            "`response_format.type`: `json_object` output is not carried by GTL; only `text` is accepted",
        ),
        (
            with("modalities", json!(["text", "audio"])),
            "modalities[1]",
            "`modalities[1]`: GTL answers with text only",
        ),
        (
            with("audio", json!({"voice": "alloy", "format": "mp3"})),
            "audio",
            "`audio`: audio output is not carried by GTL",
        ),
        (
            with("prediction", json!({"type": "content", "content": "x"})),
            "prediction",
            "`prediction`: predicted outputs are not carried by GTL",
        ),
        (
            with("web_search_options", json!({})),
            "web_search_options",
            "`web_search_options`: web search is not carried by GTL",
        ),
        (
            with("functions", json!([{"name": "f"}])),
            "functions",
            "`functions`: the deprecated `functions` are not accepted; send `tools`",
        ),
        (
            with("function_call", json!("auto")),
            "function_call",
            "`function_call`: the deprecated `function_call` is not accepted; send `tool_choice`",
        ),
        (
            with("logit_bias", json!({"50256": -100})),
            "logit_bias",
            "`logit_bias`: token biases are not carried by GTL",
        ),
        (
            with(
                "tools",
                json!([{"type": "custom", "custom": {"name": "x"}}]),
            ),
            "tools[0].type",
            "`tools[0].type`: custom (free-form) tools are not carried by GTL",
        ),
        (
            with("tools", json!([{"type": "retrieval"}])),
            "tools[0].type",
            "`tools[0].type`: unknown tool type `retrieval`; expected function",
        ),
        (
            with("tools", json!([{"type": "function"}])),
            "tools[0].function",
            "`tools[0].function` is required",
        ),
        (
            with(
                "tools",
                json!([{"type": "function", "function": {"name": ""}}]),
            ),
            "tools[0].function.name",
            "`tools[0].function.name`: must not be empty",
        ),
        (
            with(
                "tools",
                json!([{"type": "function", "function": {"name": "f", "parameters": "{}"}}]),
            ),
            "tools[0].function.parameters",
            "`tools[0].function.parameters`: expected a JSON Schema object, got a string",
        ),
        (
            with("tool_choice", json!("sometimes")),
            "tool_choice",
            "`tool_choice`: unknown mode `sometimes`; expected auto, none or required",
        ),
        (
            with(
                "tool_choice",
                json!({"type": "allowed_tools", "allowed_tools": {}}),
            ),
            "tool_choice.type",
            "`tool_choice.type`: `allowed_tools` tool choices are not carried by GTL",
        ),
        (
            with("tool_choice", json!(5)),
            "tool_choice",
            "`tool_choice`: expected a string or an object, got a number",
        ),
        (
            with("metadata", json!({"a": 1})),
            "metadata.a",
            "`metadata.a`: expected a string, got a number",
        ),
        (
            with("user", json!(7)),
            "user",
            "`user`: expected a string, got a number",
        ),
    ]
}

#[test]
fn refusals_name_the_field_and_say_why() {
    for (body, param, message) in refusals() {
        let error = parse(&body).expect_err(&body.to_string());
        assert_eq!(error.param(), Some(param), "{body}");
        assert_eq!(error.to_string(), message, "{body}");
        // The 400 answer carries the same in OpenAI's shape.
        let reply = openai::request_error(&error);
        assert_eq!(reply.status, 400);
        let answer: Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(
            answer,
            json!({"error": {"message": message, "type": "invalid_request_error", "param": param, "code": null}})
        );
    }
}

#[test]
fn bodies_that_are_not_json_objects_are_refused() {
    for (body, message) in [
        (
            &b"{"[..],
            "the request body is not valid JSON: EOF while parsing an object at line 1 column 1",
        ),
        (
            b"",
            "the request body is not valid JSON: EOF while parsing a value at line 1 column 0",
        ),
        (b"[1]", "the request body must be a JSON object"),
        (b"\"hi\"", "the request body must be a JSON object"),
        (
            b"\xff",
            "the request body is not valid JSON: expected value at line 1 column 1",
        ),
    ] {
        let error = openai::parse_request(body).unwrap_err();
        assert_eq!(error.to_string(), message);
        assert_eq!(error.param(), None);
        let answer: Value = serde_json::from_slice(&openai::request_error(&error).body).unwrap();
        assert_eq!(answer["error"]["param"], Value::Null);
    }
}
