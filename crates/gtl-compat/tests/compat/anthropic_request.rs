//! Messages request bodies → GTL requests, and refusals.

use gtl_compat::{DialectError, anthropic};
use gtl_proto::types::{Choice, Content, Part, Source, ToolChoiceMode};
use gtl_proto::{CompletionRequest, FunctionDef, Image, Role, Tool, ToolChoice};
use serde_json::{Value, json};

use crate::openai_request::{PNG, call, parts, png_bytes, text, tool_result};
use crate::spec;

/// A request that uses every field the dialect maps.
pub(crate) fn full_body() -> Value {
    json!({
        "model": "anthropic/claude-sonnet-4-5",
        "max_tokens": 2048,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": "What's the weather?"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "The user wants weather.", "signature": "c2ln"},
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18°C"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": [{"type": "text", "text": "12:00"}], "is_error": false},
                {"type": "text", "text": "And this image?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}}
            ]},
            {"role": "assistant", "content": [{"type": "redacted_thinking", "data": "opaque"}]},
            {"role": "assistant", "content": "A cat."}
        ],
        "stop_sequences": ["END"],
        "temperature": 0.5,
        "top_p": 0.9,
        "top_k": 40,
        "stream": true,
        "tools": [
            {"name": "get_weather", "description": "Weather for a city",
             "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
             "cache_control": {"type": "ephemeral"}},
            {"type": "custom", "name": "get_time", "input_schema": {"type": "object"}}
        ],
        "tool_choice": {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": false},
        "metadata": {"user_id": "user-1234"},
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "service_tier": "auto"
    })
}

#[test]
fn every_mapped_field_reaches_the_gtl_request() {
    let body = full_body();
    spec::anthropic()
        .validate("CreateMessageParams", &body)
        .unwrap();
    let (mut request, options) = anthropic::parse_request(body.to_string().as_bytes()).unwrap();
    // Schemas are compared as JSON: key order depends on serde_json's
    // features.
    for (i, tool) in request.tools.iter_mut().enumerate() {
        let schema = std::mem::take(&mut tool.function.as_mut().unwrap().parameters);
        assert_eq!(
            serde_json::from_str::<Value>(&schema).unwrap(),
            body["tools"][i]["input_schema"]
        );
    }
    let mut assistant = parts(Role::Assistant, vec![Part::Text("Checking.".into())]);
    assistant.tool_calls = vec![
        call("toolu_1", "get_weather", r#"{"city":"Paris"}"#),
        call("toolu_2", "get_time", "{}"),
    ];
    let expected = CompletionRequest {
        model: "anthropic/claude-sonnet-4-5".into(),
        messages: vec![
            parts(Role::System, vec![Part::Text("Be brief.".into())]),
            text(Role::User, "What's the weather?"),
            assistant,
            tool_result("toolu_1", Content::Text("18°C".into())),
            tool_result(
                "toolu_2",
                parts(Role::Tool, vec![Part::Text("12:00".into())])
                    .content
                    .unwrap(),
            ),
            parts(
                Role::User,
                vec![
                    Part::Text("And this image?".into()),
                    Part::Image(Image {
                        media_type: "image/png".into(),
                        detail: String::new(),
                        source: Some(Source::Data(png_bytes())),
                    }),
                    Part::Image(Image {
                        source: Some(Source::Url("https://example.com/a.jpg".into())),
                        ..Image::default()
                    }),
                ],
            ),
            // The turn with only redacted thinking is left out.
            text(Role::Assistant, "A cat."),
        ],
        stream: true,
        max_tokens: Some(2048),
        temperature: Some(0.5),
        top_p: Some(0.9),
        stop: vec!["END".into()],
        tools: vec![
            Tool {
                function: Some(FunctionDef {
                    name: "get_weather".into(),
                    description: "Weather for a city".into(),
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
        ..CompletionRequest::default()
    };
    assert_eq!(request, expected);
    assert!(options.stream);
    assert_eq!(options.model, "anthropic/claude-sonnet-4-5");
    assert_eq!(options.user.as_deref(), Some("user-1234"));
}

fn minimal() -> Value {
    json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]})
}

fn with(key: &str, value: Value) -> Value {
    let mut body = minimal();
    body[key] = value;
    body
}

fn parse(body: &Value) -> Result<CompletionRequest, DialectError> {
    anthropic::parse_request(body.to_string().as_bytes()).map(|(request, _)| request)
}

#[test]
fn the_smaller_forms_map_too() {
    let request = parse(&minimal()).unwrap();
    assert_eq!(request.messages, [text(Role::User, "hi")]);
    assert_eq!(request.max_tokens, Some(10));
    assert!(!request.stream);
    assert_eq!(
        parse(&with("system", json!("Be brief."))).unwrap().messages[0],
        text(Role::System, "Be brief.")
    );
    assert_eq!(parse(&with("system", json!(""))).unwrap().messages.len(), 1);
    for (kind, expected) in [
        ("auto", ToolChoiceMode::Auto),
        ("any", ToolChoiceMode::Required),
        ("none", ToolChoiceMode::None),
    ] {
        let choice = parse(&with("tool_choice", json!({"type": kind})))
            .unwrap()
            .tool_choice;
        assert_eq!(
            choice.and_then(|c| c.choice),
            Some(Choice::Mode(expected as i32))
        );
    }
    // A tool result without content, and one with an image.
    let body = with(
        "messages",
        json!([{"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "a"},
            {"type": "tool_result", "tool_use_id": "b", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
            ]}
        ]}]),
    );
    let messages = parse(&body).unwrap().messages;
    assert_eq!(messages[0], tool_result("a", Content::Text(String::new())));
    assert_eq!(messages[1].tool_call_id, "b");
    // count_tokens needs no max_tokens and never streams.
    let mut body = minimal();
    body.as_object_mut().unwrap().remove("max_tokens");
    body["stream"] = json!(true);
    let request = anthropic::parse_count_tokens_request(body.to_string().as_bytes()).unwrap();
    assert_eq!(request.max_tokens, None);
    assert!(!request.stream);
}

/// `(body, param, message)`: each refusal names its field and says why.
fn refusals() -> Vec<(Value, &'static str, &'static str)> {
    let turn = |m: Value| with("messages", json!([m]));
    let block = |b: Value| turn(json!({"role": "user", "content": [b]}));
    let assistant = |b: Value| turn(json!({"role": "assistant", "content": [b]}));
    let image = |source: Value| block(json!({"type": "image", "source": source}));
    let mut no_max_tokens = minimal();
    no_max_tokens.as_object_mut().unwrap().remove("max_tokens");
    vec![
        (no_max_tokens, "max_tokens", "`max_tokens` is required"),
        (
            with("max_tokens", json!("many")),
            "max_tokens",
            "`max_tokens`: expected a non-negative integer, got a string",
        ),
        (
            json!({"max_tokens": 1, "messages": []}),
            "model",
            "`model` is required",
        ),
        (
            json!({"model": "m", "max_tokens": 1}),
            "messages",
            "`messages` is required",
        ),
        (
            with("messages", json!([])),
            "messages",
            "`messages`: must contain at least one message",
        ),
        (
            turn(json!({"role": "system", "content": "x"})),
            "messages.0.role",
            "`messages.0.role`: unknown role `system`; expected user or assistant (the system prompt is `system`)",
        ),
        (
            turn(json!({"role": "user"})),
            "messages.0.content",
            "`messages.0.content` is required",
        ),
        (
            turn(json!({"role": "user", "content": 5})),
            "messages.0.content",
            "`messages.0.content`: expected a string or an array of content blocks, got a number",
        ),
        (
            turn(json!({"role": "user", "content": []})),
            "messages.0.content",
            "`messages.0.content`: must contain at least one content block",
        ),
        (
            block(
                json!({"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "x"}}),
            ),
            "messages.0.content.0.type",
            "`messages.0.content.0.type`: `document` blocks are not carried by GTL",
        ),
        (
            block(json!({"type": "tool_use", "id": "t", "name": "f", "input": {}})),
            "messages.0.content.0.type",
            "`messages.0.content.0.type`: `tool_use` blocks belong in assistant turns",
        ),
        (
            block(json!({"type": "video"})),
            "messages.0.content.0.type",
            "`messages.0.content.0.type`: unknown content block type `video`",
        ),
        (
            block(json!({"type": "text", "text": 5})),
            "messages.0.content.0.text",
            "`messages.0.content.0.text`: expected a string, got a number",
        ),
        (
            image(json!({"type": "file", "file_id": "f"})),
            "messages.0.content.0.source.type",
            "`messages.0.content.0.source.type`: `file` image sources are not carried by GTL; send base64 or url",
        ),
        (
            image(json!({"type": "base64", "media_type": "application/pdf", "data": "aGk="})),
            "messages.0.content.0.source",
            "`messages.0.content.0.source`: `application/pdf` is not an image media type (image/png, image/jpeg, image/gif, image/webp)",
        ),
        (
            image(json!({"type": "base64", "media_type": "image/png", "data": "%%%"})),
            "messages.0.content.0.source",
            "`messages.0.content.0.source`: the image data is not base64: Invalid symbol 37, offset 0.",
        ),
        (
            image(json!({"type": "url", "url": "file:///etc/passwd"})),
            "messages.0.content.0.source.url",
            "`messages.0.content.0.source.url`: expected an https:, http: or base64 data: URL",
        ),
        (
            image(json!({"type": "base64", "data": PNG})),
            "messages.0.content.0.source.media_type",
            "`messages.0.content.0.source.media_type` is required",
        ),
        (
            block(json!({"type": "tool_result", "content": "x"})),
            "messages.0.content.0.tool_use_id",
            "`messages.0.content.0.tool_use_id` is required",
        ),
        (
            block(json!({"type": "tool_result", "tool_use_id": "t", "content": 5})),
            "messages.0.content.0.content",
            "`messages.0.content.0.content`: expected a string or an array of content blocks, got a number",
        ),
        (
            block(
                json!({"type": "tool_result", "tool_use_id": "t", "content": [{"type": "document"}]}),
            ),
            "messages.0.content.0.content.0.type",
            "`messages.0.content.0.content.0.type`: `document` blocks are not carried by GTL",
        ),
        (
            block(json!({"type": "tool_result", "tool_use_id": "t", "is_error": "yes"})),
            "messages.0.content.0.is_error",
            "`messages.0.content.0.is_error`: expected a boolean, got a string",
        ),
        (
            assistant(json!({"type": "tool_use", "id": "t", "name": "f", "input": "x"})),
            "messages.0.content.0.input",
            "`messages.0.content.0.input`: expected an object, got a string",
        ),
        (
            assistant(json!({"type": "tool_use", "id": "t", "name": "f"})),
            "messages.0.content.0.input",
            "`messages.0.content.0.input` is required",
        ),
        (
            assistant(json!({"type": "image", "source": {"type": "url", "url": "https://x"}})),
            "messages.0.content.0.type",
            "`messages.0.content.0.type`: `image` blocks belong in user turns",
        ),
        (
            assistant(
                json!({"type": "server_tool_use", "id": "s", "name": "web_search", "input": {}}),
            ),
            "messages.0.content.0.type",
            "`messages.0.content.0.type`: server tool blocks (`server_tool_use`) are not carried by GTL",
        ),
        (
            with("system", json!(5)),
            "system",
            "`system`: expected a string or an array of text blocks, got a number",
        ),
        (
            with("system", json!([{"type": "image"}])),
            "system.0.type",
            "`system.0.type`: system blocks are text blocks, not `image`",
        ),
        (
            with("temperature", json!(1.5)),
            "temperature",
            "`temperature`: 1.5 is not between 0 and 1",
        ),
        (
            with("top_k", json!(-1)),
            "top_k",
            "`top_k`: expected a non-negative integer, got -1",
        ),
        (
            with("stop_sequences", json!([1])),
            "stop_sequences.0",
            "`stop_sequences.0`: expected a string, got a number",
        ),
        (
            with("stream", json!("yes")),
            "stream",
            "`stream`: expected a boolean, got a string",
        ),
        (
            with(
                "tools",
                json!([{"type": "web_search_20250305", "name": "web_search"}]),
            ),
            "tools.0.type",
            "`tools.0.type`: server tools (`web_search_20250305`) are not carried by GTL; define a client tool",
        ),
        (
            with("tools", json!([{"name": "f"}])),
            "tools.0.input_schema",
            "`tools.0.input_schema` is required",
        ),
        (
            with("tools", json!([{"name": "f", "input_schema": "{}"}])),
            "tools.0.input_schema",
            "`tools.0.input_schema`: expected a JSON Schema object, got a string",
        ),
        (
            with("tools", json!([{"name": "", "input_schema": {}}])),
            "tools.0.name",
            "`tools.0.name`: must not be empty",
        ),
        (
            with(
                "tool_choice",
                json!({"type": "any", "disable_parallel_tool_use": true}),
            ),
            "tool_choice.disable_parallel_tool_use",
            "`tool_choice.disable_parallel_tool_use`: GTL cannot stop every provider from calling tools in parallel; omit the field or send false",
        ),
        (
            with("tool_choice", json!({"type": "sometimes"})),
            "tool_choice.type",
            "`tool_choice.type`: unknown tool choice type `sometimes`; expected auto, any, tool or none",
        ),
        (
            with("tool_choice", json!({"type": "tool"})),
            "tool_choice.name",
            "`tool_choice.name` is required",
        ),
        (
            with("tool_choice", json!("auto")),
            "tool_choice",
            "`tool_choice`: expected an object, got a string",
        ),
        (
            with("container", json!("container_1")),
            "container",
            "`container`: code execution containers are not carried by GTL",
        ),
        (
            with(
                "mcp_servers",
                json!([{"type": "url", "url": "https://x", "name": "x"}]),
            ),
            "mcp_servers",
            "`mcp_servers`: MCP servers are not carried by GTL",
        ),
        (
            with(
                "output_config",
                json!({"format": {"type": "json_schema", "schema": {}}}),
            ),
            "output_config.format",
            "`output_config.format`: structured output formats are not carried by GTL",
        ),
        (
            with("thinking", json!("on")),
            "thinking",
            "`thinking`: expected an object, got a string",
        ),
        (
            with("metadata", json!({"user_id": 5})),
            "metadata.user_id",
            "`metadata.user_id`: expected a string, got a number",
        ),
    ]
}

#[test]
fn refusals_name_the_field_and_say_why() {
    for (body, param, message) in refusals() {
        let error = parse(&body).expect_err(&body.to_string());
        assert_eq!(error.param(), Some(param), "{body}");
        assert_eq!(error.to_string(), message, "{body}");
        // Anthropic has no `param`: the 400 answer's message starts with
        // the field.
        let reply = anthropic::request_error(&error);
        assert_eq!(reply.status, 400);
        let answer: Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(
            answer,
            json!({"type": "error", "error": {"type": "invalid_request_error", "message": message}, "request_id": null})
        );
    }
    let error = anthropic::parse_request(b"{\"model\":").unwrap_err();
    assert!(matches!(error, DialectError::Json(_)));
    assert_eq!(anthropic::request_error(&error).status, 400);
}
