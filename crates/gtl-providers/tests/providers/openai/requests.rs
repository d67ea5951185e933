//! The outbound request: every GTL field mapped, and the body valid
//! against OpenAI's `CreateChatCompletionRequest`.

use gtl_proto::types::{Choice, Content, Part, Source, ToolChoiceMode};
use gtl_proto::{
    ContentPart, ContentParts, ErrorCode, FunctionCall, FunctionDef, Image, Message, Role, Tool,
    ToolCall, ToolChoice,
};
use gtl_providers::openai::OpenAiProvider;
use gtl_providers::{Compat, ProviderConfig, ProviderKind};
use gtl_test::{ReplayServer, Reply};
use serde_json::json;

use super::{assert_valid, events, openai_config, request, shared, spec, start_error, user};

fn text_message(role: Role, text: &str) -> Message {
    Message {
        role: role as i32,
        content: Some(Content::Text(text.into())),
        ..Message::default()
    }
}

/// A request using every field GTL maps.
fn everything() -> gtl_proto::CompletionRequest {
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    let mut request = request("gpt-4o", true);
    request.messages = vec![
        text_message(Role::System, "You are terse."),
        Message {
            role: Role::User as i32,
            content: Some(Content::Parts(ContentParts {
                parts: vec![
                    ContentPart {
                        part: Some(Part::Text("What is in these images?".into())),
                    },
                    ContentPart {
                        part: Some(Part::Image(Image {
                            source: Some(Source::Data(png)),
                            media_type: String::new(),
                            detail: "low".into(),
                        })),
                    },
                    ContentPart {
                        part: Some(Part::Image(Image {
                            source: Some(Source::Url("https://example.invalid/cat.jpg".into())),
                            media_type: String::new(),
                            detail: String::new(),
                        })),
                    },
                ],
            })),
            name: "alice".into(),
            ..Message::default()
        },
        Message {
            role: Role::Assistant as i32,
            tool_calls: vec![ToolCall {
                id: "call_1".into(),
                function: Some(FunctionCall {
                    name: "get_weather".into(),
                    arguments: r#"{"city":"Oslo"}"#.into(),
                }),
            }],
            ..Message::default()
        },
        Message {
            role: Role::Tool as i32,
            content: Some(Content::Text(r#"{"temp_c":3}"#.into())),
            tool_call_id: "call_1".into(),
            ..Message::default()
        },
        text_message(Role::Assistant, "It is 3 °C in Oslo."),
        user("And tomorrow?"),
    ];
    request.max_tokens = Some(256);
    request.temperature = Some(0.2);
    request.top_p = Some(0.9);
    request.stop = vec!["\n\n".into(), "END".into()];
    request.tools = vec![
        Tool {
            function: Some(FunctionDef {
                name: "get_weather".into(),
                description: "Weather for a city".into(),
                parameters: r#"{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}"#.into(),
            }),
        },
        Tool {
            function: Some(FunctionDef {
                name: "now".into(),
                description: String::new(),
                parameters: String::new(),
            }),
        },
    ];
    request.tool_choice = Some(ToolChoice {
        choice: Some(Choice::Function("get_weather".into())),
    });
    request.metadata.insert("trace".into(), "t-1".into());
    request
}

async fn sent_body(
    config: ProviderConfig,
    request: gtl_proto::CompletionRequest,
) -> serde_json::Value {
    let server = ReplayServer::start(Reply::sse("").body_file(shared("chat_text.sse"))).await;
    let config = config.with_base_url(format!("{}/v1", server.url()));
    let provider = OpenAiProvider::new(config).unwrap();
    events(&provider, request).await;
    server.single_request().json().unwrap()
}

#[tokio::test]
async fn every_field_maps_to_a_valid_request() {
    let server = ReplayServer::sequence([]).await;
    let body = sent_body(openai_config(&server), everything()).await;
    assert_valid(&body);
    assert_eq!(
        body,
        json!({
            "model": "gpt-4o",
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "name": "alice", "content": [
                    {"type": "text", "text": "What is in these images?"},
                    {"type": "image_url", "image_url": {
                        "url": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUg==", "detail": "low"}},
                    {"type": "image_url", "image_url": {"url": "https://example.invalid/cat.jpg"}},
                ]},
                {"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp_c\":3}"},
                {"role": "assistant", "content": "It is 3 °C in Oslo."},
                {"role": "user", "content": "And tomorrow?"},
            ],
            "stream": true,
            "stream_options": {"include_usage": true},
            "max_completion_tokens": 256,
            "temperature": 0.2,
            "top_p": 0.9,
            "stop": ["\n\n", "END"],
            "tools": [
                {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
                {"type": "function", "function": {"name": "now"}},
            ],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        })
    );
}

#[tokio::test]
async fn tool_choice_modes_map_to_their_strings() {
    let server = ReplayServer::sequence([]).await;
    for (mode, expected) in [
        (ToolChoiceMode::Auto, "auto"),
        (ToolChoiceMode::None, "none"),
        (ToolChoiceMode::Required, "required"),
    ] {
        let mut request = everything();
        request.tool_choice = Some(ToolChoice {
            choice: Some(Choice::Mode(mode as i32)),
        });
        let body = sent_body(openai_config(&server), request).await;
        assert_eq!(body["tool_choice"], expected);
        assert_valid(&body);
    }
}

#[tokio::test]
async fn compatible_servers_get_their_dialect() {
    let config = ProviderConfig::new(ProviderKind::OpenAiCompatible(Compat::Vllm));
    let body = sent_body(config, everything()).await;
    assert_eq!(body["max_tokens"], 256);
    assert!(body.get("max_completion_tokens").is_none());
    assert_eq!(body["stream_options"]["include_usage"], true);
    assert_valid(&body);

    // Mistral rejects fields it does not know.
    let config =
        ProviderConfig::new(ProviderKind::OpenAiCompatible(Compat::Mistral)).with_api_key("m-key");
    let body = sent_body(config, everything()).await;
    assert!(body.get("stream_options").is_none(), "{body}");
    assert_valid(&body);
}

#[tokio::test]
async fn the_schema_check_is_not_vacuous() {
    // The validator must reject what OpenAI rejects.
    for bad in [
        json!({"model": "gpt-4o"}),
        json!({"model": "gpt-4o", "messages": []}),
        json!({"model": "gpt-4o", "messages": [{"role": "robot", "content": "hi"}]}),
        json!({"model": "gpt-4o", "messages": [{"role": "tool", "content": "x"}]}),
        json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "stop": ["a", "b", "c", "d", "e"]}),
        json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "tool_choice": "sometimes"}),
    ] {
        assert!(
            spec()
                .validate("CreateChatCompletionRequest", &bad)
                .is_err(),
            "accepted {bad}"
        );
    }
}

#[tokio::test]
async fn requests_openai_cannot_take_fail_before_sending() {
    let server = ReplayServer::sequence([]).await;
    let provider = OpenAiProvider::new(openai_config(&server)).unwrap();

    let mut too_many_stops = request("gpt-4o", true);
    too_many_stops.stop = (0..5).map(|i| i.to_string()).collect();
    let mut tool_without_id = request("gpt-4o", true);
    tool_without_id
        .messages
        .push(text_message(Role::Tool, "{}"));
    let mut image_in_system = request("gpt-4o", true);
    image_in_system.messages[0].role = Role::System as i32;
    image_in_system.messages[0].content = Some(Content::Parts(ContentParts {
        parts: vec![ContentPart {
            part: Some(Part::Image(Image {
                source: Some(Source::Url("https://example.invalid/x.png".into())),
                ..Image::default()
            })),
        }],
    }));
    let mut bad_schema = request("gpt-4o", true);
    bad_schema.tools = vec![Tool {
        function: Some(FunctionDef {
            name: "f".into(),
            description: String::new(),
            parameters: "{not json".into(),
        }),
    }];
    let no_model = request("", true);

    for bad in [
        too_many_stops,
        tool_without_id,
        image_in_system,
        bad_schema,
        no_model,
    ] {
        let error = start_error(&provider, bad).await;
        assert_eq!(error.code, ErrorCode::InvalidRequest, "{error}");
    }
    assert!(server.requests().is_empty());
}
