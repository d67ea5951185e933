//! OpenRouter, Azure OpenAI, and providers built from the environment.

use gtl_core::Provider;
use gtl_proto::{Body, ErrorCode, Phase, Usage};
use gtl_providers::openai::OpenAiProvider;
use gtl_providers::{Compat, Env, ProviderConfig, ProviderKind, Registry, providers_from_env};
use gtl_test::{ReplayServer, Reply};

use super::{
    KEY, assert_valid, done, error_of, events, gpt4o_usage, own, request, shared, status, text,
    usage_of,
};

fn openrouter(server: &ReplayServer) -> OpenAiProvider {
    let config = ProviderConfig::new(ProviderKind::OpenAiCompatible(Compat::OpenRouter))
        .with_api_key("or-key-123456")
        .with_base_url(format!("{}/api/v1", server.url()))
        .with_header("HTTP-Referer", "https://gtl.example.invalid")
        .with_header("X-Title", "GTL");
    OpenAiProvider::new(config).unwrap()
}

#[tokio::test]
async fn openrouter_comments_are_skipped() {
    let server = ReplayServer::start(
        Reply::sse("")
            .body_file(own("openrouter_stream.sse"))
            .chunked(3),
    )
    .await;
    let provider = openrouter(&server);
    let events = events(&provider, request("openai/gpt-4o", true)).await;
    assert_eq!(events[0], status("openrouter", "openai/gpt-4o"));
    assert_eq!(text(&events), "Hi there");
    // OpenRouter's own cost wins over the price table.
    assert_eq!(
        usage_of(&events),
        Usage {
            tokens_in: 10,
            tokens_out: 2,
            cached_tokens: 0,
            cost: 0.00004
        }
    );
    assert_eq!(events.last(), Some(&done("stop")));

    let sent = server.single_request();
    assert_eq!(sent.path, "/api/v1/chat/completions");
    assert_eq!(sent.header("authorization"), Some("Bearer or-key-123456"));
    assert_eq!(
        sent.header("http-referer"),
        Some("https://gtl.example.invalid")
    );
    assert_eq!(sent.header("x-title"), Some("GTL"));
    let body = sent.json().unwrap();
    assert_eq!(body["max_tokens"], serde_json::Value::Null);
    assert_valid(&body);
}

#[tokio::test]
async fn openrouter_in_band_errors_under_200_are_errors() {
    let server =
        ReplayServer::start(Reply::sse("").body_file(own("openrouter_error_midstream.sse"))).await;
    let provider = openrouter(&server);
    let events = events(&provider, request("openai/gpt-4o", true)).await;
    assert_eq!(text(&events), "Partial");
    let error = error_of(&events);
    // Its `code` is the upstream's HTTP status: 502.
    assert_eq!(error.code, ErrorCode::ProviderUnavailable);
    assert_eq!(error.phase, Phase::AfterFirstToken);
    assert!(
        error.message.contains("Provider disconnected"),
        "{}",
        error.message
    );
}

fn azure_config(server: &ReplayServer) -> ProviderConfig {
    ProviderConfig::new(ProviderKind::Azure)
        .with_base_url(format!("{}/", server.url()))
        .with_api_version("2024-10-21")
        .with_alias("gpt-4o", "prod gpt-4o")
}

#[tokio::test]
async fn azure_uses_deployment_urls_and_skips_filter_frames() {
    let server = ReplayServer::start(
        Reply::sse("")
            .body_file(own("azure_content_filter.sse"))
            .chunked(11),
    )
    .await;
    let provider =
        OpenAiProvider::new(azure_config(&server).with_api_key("azure-key-123")).unwrap();
    let events = events(&provider, request("gpt-4o", true)).await;
    assert_eq!(
        events,
        [
            status("azure", "prod gpt-4o"),
            Body::Token(gtl_proto::Token {
                text: "Blue".into()
            }),
            Body::Token(gtl_proto::Token {
                text: " sky".into()
            }),
            Body::Usage(gpt4o_usage(11, 2, 0)),
            done("stop"),
        ]
    );

    let sent = server.single_request();
    assert_eq!(
        sent.path,
        "/openai/deployments/prod%20gpt-4o/chat/completions?api-version=2024-10-21"
    );
    assert_eq!(sent.header("api-key"), Some("azure-key-123"));
    assert_eq!(sent.header("authorization"), None);
    let body = sent.json().unwrap();
    assert_eq!(body["max_completion_tokens"], serde_json::Value::Null);
    assert_eq!(body["stream_options"]["include_usage"], true);
    assert_valid(&body);
}

#[tokio::test]
async fn azure_filtered_output_finishes_as_content_filter() {
    let server =
        ReplayServer::start(Reply::sse("").body_file(own("azure_filtered_output.sse"))).await;
    let provider =
        OpenAiProvider::new(azure_config(&server).with_bearer_token("entra-token-1")).unwrap();
    let events = events(&provider, request("gpt-4o", true)).await;
    assert_eq!(text(&events), "Once");
    assert_eq!(events.last(), Some(&done("content_filter")));
    let sent = server.single_request();
    assert_eq!(sent.header("authorization"), Some("Bearer entra-token-1"));
    assert_eq!(sent.header("api-key"), None);
}

#[tokio::test]
async fn azure_filtered_prompts_are_content_filtered() {
    let body = r#"{"error":{"message":"The response was filtered due to the prompt triggering Azure OpenAI's content management policy. Please modify your prompt and retry.","type":null,"param":"prompt","code":"content_filter","status":400,"innererror":{"code":"ResponsibleAIPolicyViolation","content_filter_result":{"violence":{"filtered":true,"severity":"high"}}}}}"#;
    let server = ReplayServer::start(Reply::json(400, body)).await;
    let provider =
        OpenAiProvider::new(azure_config(&server).with_api_key("azure-key-123")).unwrap();
    let error = super::start_error(&provider, request("gpt-4o", true)).await;
    assert_eq!(error.code, ErrorCode::ContentFiltered);
    assert!(!error.message.contains("azure-key-123"));
}

#[tokio::test]
async fn the_environment_switches_providers_on() {
    let server = ReplayServer::start(Reply::sse("").body_file(shared("chat_text.sse"))).await;
    let base = format!("{}/v1", server.url());
    let env: Env = [
        ("OPENAI_API_KEY", KEY),
        ("OPENAI_BASE_URL", base.as_str()),
        ("OPENAI_PROJECT_ID", "proj_1"),
        ("GROQ_API_KEY", "gsk-1"),
        ("GROQ_BASE_URL", base.as_str()),
    ]
    .into_iter()
    .collect();
    let providers = providers_from_env(&env).unwrap();
    let names: Vec<&str> = providers.iter().map(|p| p.name()).collect();
    assert_eq!(names, ["openai", "groq"]);

    let mut registry = Registry::new();
    for provider in providers {
        registry.add(provider);
    }
    for (model, key) in [
        ("openai/gpt-4o", KEY),
        ("groq/llama-3.3-70b-versatile", "gsk-1"),
    ] {
        let mut call = request(model, true);
        let provider = registry.resolve(&mut call).unwrap();
        let answer = gtl_core::complete(provider.as_ref(), call).await.unwrap();
        assert!(answer.text.starts_with("I'm unable"));
        let sent = server.requests().pop().unwrap();
        assert_eq!(sent.path, "/v1/chat/completions");
        assert_eq!(
            sent.header("authorization"),
            Some(format!("Bearer {key}").as_str())
        );
    }
    let sent = server.requests();
    assert_eq!(sent[0].header("openai-project"), Some("proj_1"));
    assert_eq!(sent[1].header("openai-project"), None);
}

#[tokio::test]
async fn configured_models_are_listed_with_prices() {
    let server = ReplayServer::sequence([]).await;
    let model = gtl_proto::ModelInfo {
        name: "llama-3.3-70b-versatile".into(),
        context_window: 131_072,
        max_tokens: 32_768,
        supports_streaming: true,
        supports_functions: true,
        ..gtl_proto::ModelInfo::default()
    };
    let config = ProviderConfig::new(ProviderKind::OpenAiCompatible(Compat::Groq))
        .with_api_key("gsk")
        .with_base_url(server.url())
        .with_model(model);
    let info = OpenAiProvider::new(config).unwrap().models().await.unwrap();
    assert_eq!(info.provider, "groq");
    assert_eq!(info.models.len(), 1);
    assert!((info.models[0].cost_per_1k_input - 0.00059).abs() < 1e-12);

    // A local server without configured models lists none.
    let local = ProviderConfig::new(ProviderKind::OpenAiCompatible(Compat::LlamaCpp));
    let info = OpenAiProvider::new(local).unwrap().models().await.unwrap();
    assert!(info.models.is_empty());
}
