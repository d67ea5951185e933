//! Error answers, model lists and token counts in each dialect.

use std::time::Duration;

use gtl_compat::{anthropic, openai};
use gtl_proto::{ErrorCode, ModelInfo, ProviderInfo};
use serde_json::{Value, json};

/// Two providers and an alias, as the route would pass them.
pub(crate) fn catalog() -> (Vec<ProviderInfo>, Vec<(&'static str, &'static str)>) {
    let model = |name: &str, context_window, max_tokens| ModelInfo {
        name: name.into(),
        context_window,
        max_tokens,
        supports_streaming: true,
        ..ModelInfo::default()
    };
    let providers = vec![
        ProviderInfo {
            provider: "openai".into(),
            models: vec![model("gpt-4o", 128_000, 16_384), model("gpt-4o-mini", 0, 0)],
        },
        ProviderInfo {
            provider: "anthropic".into(),
            models: vec![model("claude-sonnet-4-5", 200_000, 64_000)],
        },
        ProviderInfo {
            provider: "down".into(),
            models: Vec::new(),
        },
    ];
    (providers, vec![("fast", "openai/gpt-4o-mini")])
}

#[test]
fn error_codes_map_to_each_dialects_status_and_type() {
    // (code, OpenAI status, type, code, Anthropic status, type)
    let table: [(ErrorCode, u16, &str, Value, u16, &str); 17] = [
        (
            ErrorCode::Unauthenticated,
            401,
            "invalid_request_error",
            json!("invalid_api_key"),
            401,
            "authentication_error",
        ),
        (
            ErrorCode::PermissionDenied,
            403,
            "invalid_request_error",
            json!("permission_denied"),
            403,
            "permission_error",
        ),
        (
            ErrorCode::InvalidRequest,
            400,
            "invalid_request_error",
            Value::Null,
            400,
            "invalid_request_error",
        ),
        (
            ErrorCode::ModelNotFound,
            404,
            "invalid_request_error",
            json!("model_not_found"),
            404,
            "not_found_error",
        ),
        (
            ErrorCode::RateLimit,
            429,
            "requests",
            json!("rate_limit_exceeded"),
            429,
            "rate_limit_error",
        ),
        (
            ErrorCode::ContextLengthExceeded,
            400,
            "invalid_request_error",
            json!("context_length_exceeded"),
            400,
            "invalid_request_error",
        ),
        (
            ErrorCode::ContentFiltered,
            400,
            "invalid_request_error",
            json!("content_filter"),
            400,
            "invalid_request_error",
        ),
        (
            ErrorCode::ProviderTimeout,
            504,
            "server_error",
            json!("timeout"),
            504,
            "timeout_error",
        ),
        (
            ErrorCode::ProviderUnavailable,
            503,
            "server_error",
            json!("service_unavailable"),
            529,
            "overloaded_error",
        ),
        (
            ErrorCode::ProviderError,
            500,
            "server_error",
            Value::Null,
            500,
            "api_error",
        ),
        (
            ErrorCode::Cancelled,
            499,
            "invalid_request_error",
            json!("cancelled"),
            499,
            "invalid_request_error",
        ),
        (
            ErrorCode::ResumeNotFound,
            404,
            "invalid_request_error",
            Value::Null,
            404,
            "not_found_error",
        ),
        (
            ErrorCode::ResumeWindowExceeded,
            410,
            "invalid_request_error",
            Value::Null,
            410,
            "invalid_request_error",
        ),
        (
            ErrorCode::VersionUnsupported,
            400,
            "invalid_request_error",
            Value::Null,
            400,
            "invalid_request_error",
        ),
        (
            ErrorCode::FrameTooLarge,
            413,
            "invalid_request_error",
            json!("request_too_large"),
            413,
            "request_too_large",
        ),
        (
            ErrorCode::Internal,
            500,
            "server_error",
            Value::Null,
            500,
            "api_error",
        ),
        (
            ErrorCode::SessionMoved,
            409,
            "invalid_request_error",
            json!("session_moved"),
            409,
            "invalid_request_error",
        ),
    ];
    assert_eq!(table.len(), ErrorCode::ALL.len());
    for (code, status, kind, openai_code, anthropic_status, anthropic_kind) in table {
        let reply = openai::error_response(code, "it broke", None);
        assert_eq!(reply.status, status, "{code}");
        assert!(reply.headers.is_empty());
        let body: Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(
            body,
            json!({"error": {"message": "it broke", "type": kind, "param": null, "code": openai_code}}),
            "{code}"
        );
        let reply = anthropic::error_response(code, "it broke", None);
        assert_eq!(reply.status, anthropic_status, "{code}");
        let body: Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(
            body,
            json!({"type": "error", "error": {"type": anthropic_kind, "message": "it broke"}, "request_id": null}),
            "{code}"
        );
    }
    // An unset code is an internal error, as GTL reads it.
    assert_eq!(
        openai::error_response(ErrorCode::Unspecified, "x", None).status,
        500
    );
}

#[test]
fn rate_limits_say_when_to_retry_in_seconds_and_milliseconds() {
    for delay in [Duration::from_millis(1500), Duration::from_secs(30)] {
        let expected = vec![
            ("retry-after", delay.as_millis().div_ceil(1000).to_string()),
            ("retry-after-ms", delay.as_millis().to_string()),
        ];
        assert_eq!(
            openai::error_response(ErrorCode::RateLimit, "slow down", Some(delay)).headers,
            expected
        );
        assert_eq!(
            anthropic::error_response(ErrorCode::RateLimit, "slow down", Some(delay)).headers,
            expected
        );
    }
    let headers =
        openai::error_response(ErrorCode::RateLimit, "x", Some(Duration::from_millis(1))).headers;
    assert_eq!(
        headers[0],
        ("retry-after", "1".to_owned()),
        "never rounds down to 0"
    );
}

#[test]
fn openai_lists_every_routable_name() {
    let (providers, aliases) = catalog();
    let body: Value = serde_json::from_slice(&openai::models_response(
        &providers,
        &aliases,
        1_700_000_000,
    ))
    .unwrap();
    let entry = |id: &str, owner: &str| json!({"id": id, "object": "model", "created": 1_700_000_000, "owned_by": owner});
    assert_eq!(
        body,
        json!({"object": "list", "data": [
            entry("openai/gpt-4o", "openai"),
            entry("openai/gpt-4o-mini", "openai"),
            entry("anthropic/claude-sonnet-4-5", "anthropic"),
            entry("fast", "openai"),
        ]})
    );
    let one: Value = serde_json::from_slice(
        &openai::model_response(&providers, &aliases, "anthropic/claude-sonnet-4-5", 1).unwrap(),
    )
    .unwrap();
    assert_eq!(one["owned_by"], "anthropic");
    let missing = openai::model_response(&providers, &aliases, "nope", 1).unwrap_err();
    assert_eq!(missing.status, 404);
    let body: Value = serde_json::from_slice(&missing.body).unwrap();
    assert_eq!(body["error"]["code"], "model_not_found");
    assert_eq!(body["error"]["message"], "The model `nope` does not exist");
}

#[test]
fn anthropic_lists_every_routable_name() {
    let (providers, aliases) = catalog();
    let body: Value = serde_json::from_slice(&anthropic::models_response(
        &providers,
        &aliases,
        1_700_000_000,
    ))
    .unwrap();
    let entry = |id: &str, max_input: Value, max_tokens: Value| {
        json!({
            "type": "model", "id": id, "display_name": id,
            "created_at": "2023-11-14T22:13:20Z", "capabilities": null,
            "max_input_tokens": max_input, "max_tokens": max_tokens,
        })
    };
    assert_eq!(
        body,
        json!({
            "data": [
                entry("openai/gpt-4o", json!(128_000), json!(16_384)),
                entry("openai/gpt-4o-mini", Value::Null, Value::Null),
                entry("anthropic/claude-sonnet-4-5", json!(200_000), json!(64_000)),
                entry("fast", Value::Null, Value::Null),
            ],
            "has_more": false,
            "first_id": "openai/gpt-4o",
            "last_id": "fast",
        })
    );
    let empty: Value = serde_json::from_slice(&anthropic::models_response(&[], &[], 0)).unwrap();
    assert_eq!(
        empty,
        json!({"data": [], "has_more": false, "first_id": null, "last_id": null})
    );
    let missing = anthropic::model_response(&providers, &aliases, "nope", 0).unwrap_err();
    assert_eq!(missing.status, 404);
    let body: Value = serde_json::from_slice(&missing.body).unwrap();
    assert_eq!(body["error"]["type"], "not_found_error");
}

#[test]
fn token_counting_answers() {
    assert_eq!(
        anthropic::count_tokens_response(7),
        br#"{"input_tokens":7}"#
    );
    let reply = anthropic::count_tokens_unsupported("openai");
    assert_eq!(reply.status, 400);
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`openai`")
    );
}
