//! Every body and event in the golden files, and every error and model
//! answer, checked against the providers' OpenAPI definitions.

use std::sync::OnceLock;

use gtl_compat::{anthropic, openai};
use gtl_proto::ErrorCode;
use gtl_test::{OpenApi, provider_spec};
use serde_json::{Value, json};

use crate::answers::catalog;
use crate::support::golden_dir;

pub(crate) fn openai() -> &'static OpenApi {
    static SPEC: OnceLock<OpenApi> = OnceLock::new();
    SPEC.get_or_init(|| OpenApi::from_json_file(provider_spec("openai/openapi.json")).unwrap())
}

pub(crate) fn anthropic() -> &'static OpenApi {
    static SPEC: OnceLock<OpenApi> = OnceLock::new();
    SPEC.get_or_init(|| OpenApi::from_json_file(provider_spec("anthropic/openapi.json")).unwrap())
}

fn validate(spec: &OpenApi, component: &str, value: &Value, what: &str) {
    if let Err(violations) = spec.validate(component, value) {
        panic!("{what} is not a valid {component}:\n{violations}\n{value}");
    }
}

/// The `data:` payloads of an SSE text, with their event names.
fn events(text: &str) -> Vec<(&str, &str)> {
    text.split("\n\n")
        .filter(|block| !block.is_empty())
        .map(|block| {
            let mut name = "";
            let mut data = "";
            for line in block.lines() {
                if let Some(value) = line.strip_prefix("event: ") {
                    name = value;
                } else if let Some(value) = line.strip_prefix("data: ") {
                    data = value;
                }
            }
            (name, data)
        })
        .collect()
}

/// The body of a rendered error answer (`support::render_reply`).
fn reply_body(text: &str) -> Value {
    let (_, body) = text.split_once("\n\n").expect("a reply");
    serde_json::from_str(body).unwrap()
}

fn golden_files(dialect: &str) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(golden_dir().join(dialect))
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&path).unwrap())
        })
        .collect();
    files.sort();
    files
}

#[test]
fn openai_goldens_follow_the_definition() {
    let spec = openai();
    for (name, text) in golden_files("openai") {
        if name.ends_with(".sse") {
            for (_, data) in events(&text) {
                if data == "[DONE]" {
                    continue;
                }
                let chunk: Value = serde_json::from_str(data).unwrap();
                let component = if chunk.get("error").is_some() {
                    "ErrorResponse"
                } else {
                    "CreateChatCompletionStreamResponse"
                };
                validate(spec, component, &chunk, &name);
            }
        } else if name.ends_with(".json") {
            let body: Value = serde_json::from_str(&text).unwrap();
            validate(spec, "CreateChatCompletionResponse", &body, &name);
        } else {
            validate(spec, "ErrorResponse", &reply_body(&text), &name);
        }
    }
}

#[test]
fn anthropic_goldens_follow_the_definition() {
    let spec = anthropic();
    for (name, text) in golden_files("anthropic") {
        if name.ends_with(".sse") {
            for (event, data) in events(&text) {
                let mut value: Value = serde_json::from_str(data).unwrap();
                if event == "error" {
                    // The definition's stream union has no error event
                    // (Anthropic documents it apart); it is the error body
                    // without `request_id`.
                    value["request_id"] = Value::Null;
                    validate(spec, "ErrorResponse", &value, &name);
                } else {
                    validate(spec, "MessageStreamEvent", &value, &name);
                }
            }
        } else if name.ends_with(".json") {
            let body: Value = serde_json::from_str(&text).unwrap();
            validate(spec, "Message", &body, &name);
        } else {
            validate(spec, "ErrorResponse", &reply_body(&text), &name);
        }
    }
}

#[test]
fn every_error_answer_follows_the_definition() {
    for &code in ErrorCode::ALL {
        let reply = openai::error_response(code, "went wrong", None);
        let body: Value = serde_json::from_slice(&reply.body).unwrap();
        validate(openai(), "ErrorResponse", &body, code.name());
        let reply = anthropic::error_response(code, "went wrong", None);
        let body: Value = serde_json::from_slice(&reply.body).unwrap();
        if code == ErrorCode::FrameTooLarge {
            // Anthropic's errors page lists 413 `request_too_large`; its
            // definition's error union does not.
            assert_eq!(body["error"]["type"], "request_too_large");
            continue;
        }
        validate(anthropic(), "ErrorResponse", &body, code.name());
    }
    let reply = anthropic::count_tokens_unsupported("openai");
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    validate(
        anthropic(),
        "ErrorResponse",
        &body,
        "count_tokens_unsupported",
    );
}

#[test]
fn model_lists_and_token_counts_follow_the_definitions() {
    let (providers, aliases) = catalog();
    let body: Value = serde_json::from_slice(&openai::models_response(
        &providers,
        &aliases,
        1_700_000_000,
    ))
    .unwrap();
    validate(openai(), "ListModelsResponse", &body, "models");
    let model: Value = serde_json::from_slice(
        &openai::model_response(&providers, &aliases, "fast", 1_700_000_000).unwrap(),
    )
    .unwrap();
    validate(openai(), "Model", &model, "model");

    let body: Value = serde_json::from_slice(&anthropic::models_response(
        &providers,
        &aliases,
        1_700_000_000,
    ))
    .unwrap();
    validate(anthropic(), "ListResponse_ModelInfo_", &body, "models");
    let model: Value = serde_json::from_slice(
        &anthropic::model_response(&providers, &aliases, "fast", 1_700_000_000).unwrap(),
    )
    .unwrap();
    validate(anthropic(), "ModelInfo", &model, "model");

    let count: Value = serde_json::from_slice(&anthropic::count_tokens_response(42)).unwrap();
    assert_eq!(count, json!({"input_tokens": 42}));
    validate(anthropic(), "CountMessageTokensResponse", &count, "count");
}
