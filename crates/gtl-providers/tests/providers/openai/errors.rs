//! Failures: every error class by status, Retry-After, timeouts, refused
//! connections, and streams that are cut, malformed or carry an error.

use std::time::Duration;

use gtl_proto::{Body, ErrorCode, Phase};
use gtl_providers::Timeouts;
use gtl_providers::openai::OpenAiProvider;
use gtl_test::{ReplayServer, Reply};

use super::{KEY, error_of, events, openai_config, own, request, shared, start_error, text};

#[tokio::test]
async fn every_error_status_maps_to_its_code() {
    let cases: &[(u16, &str, ErrorCode)] = &[
        (
            400,
            r#"{"error":{"message":"Invalid value for 'temperature'.","type":"invalid_request_error","param":"temperature","code":"invalid_value"}}"#,
            ErrorCode::InvalidRequest,
        ),
        (
            400,
            r#"{"error":{"message":"This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#,
            ErrorCode::ContextLengthExceeded,
        ),
        (
            400,
            r#"{"error":{"message":"Your request was rejected as a result of our safety system.","type":"invalid_request_error","param":null,"code":"content_policy_violation"}}"#,
            ErrorCode::ContentFiltered,
        ),
        (
            401,
            r#"{"error":{"message":"Incorrect API key provided.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#,
            ErrorCode::Unauthenticated,
        ),
        (
            403,
            r#"{"error":{"message":"Country, region, or territory not supported","type":"request_forbidden","param":null,"code":"unsupported_country_region_territory"}}"#,
            ErrorCode::PermissionDenied,
        ),
        (
            404,
            r#"{"error":{"message":"The model `gpt-9` does not exist or you do not have access to it.","type":"invalid_request_error","param":null,"code":"model_not_found"}}"#,
            ErrorCode::ModelNotFound,
        ),
        (408, "request timeout", ErrorCode::ProviderTimeout),
        (
            422,
            r#"{"detail":[{"loc":["body","messages"],"msg":"field required","type":"missing"}]}"#,
            ErrorCode::InvalidRequest,
        ),
        (
            429,
            r#"{"error":{"message":"You exceeded your current quota.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#,
            ErrorCode::RateLimit,
        ),
        (
            500,
            r#"{"error":{"message":"The server had an error while processing your request.","type":"server_error","param":null,"code":null}}"#,
            ErrorCode::ProviderUnavailable,
        ),
        (
            502,
            "<html>Bad Gateway</html>",
            ErrorCode::ProviderUnavailable,
        ),
        (
            503,
            r#"{"error":{"message":"The engine is currently overloaded, please try again later","type":"server_error","param":null,"code":null}}"#,
            ErrorCode::ProviderUnavailable,
        ),
        (504, "", ErrorCode::ProviderTimeout),
        (
            529,
            r#"{"error":{"message":"Overloaded"}}"#,
            ErrorCode::ProviderUnavailable,
        ),
    ];
    for &(status, body, code) in cases {
        let server = ReplayServer::start(Reply::json(status, body)).await;
        let provider = OpenAiProvider::new(openai_config(&server)).unwrap();
        let error = start_error(&provider, request("gpt-4o", true)).await;
        assert_eq!(error.code, code, "HTTP {status} {body}: {error}");
        assert_eq!(error.phase, Phase::BeforeFirstToken, "HTTP {status}");
        assert!(error.message.starts_with("openai: "), "{}", error.message);
        assert!(
            error.message.contains(&format!("(HTTP {status})")),
            "{}",
            error.message
        );
        assert_eq!(error.retry_after, None);
    }
}

#[tokio::test]
async fn rate_limits_carry_retry_after() {
    let date = httpdate_in(Duration::from_secs(3600));
    let cases = [
        (
            Reply::json(429, "{}").header("retry-after", "20"),
            Duration::from_secs(20),
        ),
        (
            Reply::json(429, "{}")
                .header("retry-after", "20")
                .header("retry-after-ms", "1500"),
            Duration::from_millis(1500),
        ),
        (
            Reply::json(503, "{}").header("retry-after", "2"),
            Duration::from_secs(2),
        ),
    ];
    for (reply, expected) in cases {
        let server = ReplayServer::start(reply).await;
        let provider = OpenAiProvider::new(openai_config(&server)).unwrap();
        let error = start_error(&provider, request("gpt-4o", true)).await;
        assert_eq!(error.retry_after, Some(expected));
        assert!(error.is_retryable());
    }
    // An HTTP date an hour ahead: about an hour, whatever the clock says.
    let server = ReplayServer::start(Reply::json(429, "{}").header("retry-after", &date)).await;
    let provider = OpenAiProvider::new(openai_config(&server)).unwrap();
    let error = start_error(&provider, request("gpt-4o", true)).await;
    assert_eq!(error.code, ErrorCode::RateLimit);
    let delay = error.retry_after.expect("a delay from the date");
    assert!(
        delay > Duration::from_secs(3000) && delay <= Duration::from_secs(3600),
        "{delay:?}"
    );
}

/// An HTTP date `ahead` from now.
fn httpdate_in(ahead: Duration) -> String {
    httpdate::fmt_http_date(std::time::SystemTime::now() + ahead)
}

#[tokio::test]
async fn keys_never_appear_in_errors() {
    let body = format!(
        r#"{{"error":{{"message":"Incorrect API key provided: {KEY}.","type":"invalid_request_error","code":"invalid_api_key"}}}}"#
    );
    let server = ReplayServer::start(Reply::json(401, body)).await;
    let provider = OpenAiProvider::new(openai_config(&server)).unwrap();
    let error = start_error(&provider, request("gpt-4o", true)).await;
    assert_eq!(error.code, ErrorCode::Unauthenticated);
    assert!(!error.message.contains(KEY), "{}", error.message);
    assert!(error.message.contains("[redacted]"), "{}", error.message);
    assert!(!format!("{provider:?}").contains(KEY));
}

#[tokio::test]
async fn a_stream_without_done_is_cut() {
    // The text recording minus its final `data: [DONE]`: usage known, no end.
    let full = String::from_utf8(gtl_test::read(shared("chat_text.sse"))).unwrap();
    let cut = full
        .trim_end()
        .strip_suffix("data: [DONE]")
        .unwrap()
        .to_owned();
    let server = ReplayServer::start(Reply::sse(cut)).await;
    let provider = OpenAiProvider::new(openai_config(&server)).unwrap();
    let events = events(&provider, request("gpt-4o", true)).await;
    let n = events.len();
    // The usage known so far is reported before the error.
    assert!(matches!(&events[n - 2], Body::Usage(u) if u.tokens_in == 14 && u.tokens_out == 30));
    let error = error_of(&events);
    assert_eq!(error.code, ErrorCode::ProviderError);
    assert_eq!(error.phase, Phase::AfterFirstToken);
}

#[tokio::test]
async fn a_connection_lost_mid_stream_is_an_error_after_the_first_token() {
    let body = gtl_test::read(shared("chat_text.sse"));
    let server = ReplayServer::start(Reply::sse(body).chunked(64).cut_after(1500)).await;
    let provider = OpenAiProvider::new(openai_config(&server)).unwrap();
    let events = events(&provider, request("gpt-4o", true)).await;
    assert!(text(&events).starts_with("I'm unable"));
    let error = error_of(&events);
    assert_eq!(error.code, ErrorCode::ProviderUnavailable);
    assert_eq!(error.phase, Phase::AfterFirstToken);
    assert!(events.iter().all(|e| !matches!(e, Body::Done(_))));
}

#[tokio::test]
async fn a_malformed_chunk_ends_the_stream() {
    let server = ReplayServer::start(Reply::sse("").body_file(own("chat_malformed.sse"))).await;
    let provider = OpenAiProvider::new(openai_config(&server)).unwrap();
    let events = events(&provider, request("gpt-4o", true)).await;
    assert_eq!(text(&events), "Hello");
    let error = error_of(&events);
    assert_eq!(error.code, ErrorCode::ProviderError);
    assert_eq!(error.phase, Phase::AfterFirstToken);
    assert!(error.message.contains("malformed"), "{}", error.message);
}

#[tokio::test]
async fn an_error_chunk_mid_stream_is_mapped() {
    let server =
        ReplayServer::start(Reply::sse("").body_file(own("chat_error_midstream.sse"))).await;
    let provider = OpenAiProvider::new(openai_config(&server)).unwrap();
    let events = events(&provider, request("gpt-4o", true)).await;
    assert_eq!(text(&events), "Hello");
    let error = error_of(&events);
    assert_eq!(error.code, ErrorCode::ProviderUnavailable);
    assert_eq!(error.phase, Phase::AfterFirstToken);
    assert!(
        error.message.contains("The server had an error"),
        "{}",
        error.message
    );
}

fn short(connect: u64, first_byte: u64, idle: u64) -> Timeouts {
    Timeouts::new(
        Duration::from_millis(connect),
        Duration::from_millis(first_byte),
        Duration::from_millis(idle),
    )
}

#[tokio::test]
async fn silence_between_chunks_is_an_idle_timeout() {
    let body = gtl_test::read(shared("chat_text.sse"));
    let server = ReplayServer::start(Reply::sse(body).stall_after(800)).await;
    let config = openai_config(&server).with_timeouts(short(5_000, 5_000, 300));
    let provider = OpenAiProvider::new(config).unwrap();
    let events = events(&provider, request("gpt-4o", true)).await;
    let error = error_of(&events);
    assert_eq!(error.code, ErrorCode::ProviderTimeout);
    assert_eq!(error.phase, Phase::AfterFirstToken);
    assert!(error.message.contains("idle"), "{}", error.message);
}

#[tokio::test]
async fn no_response_headers_is_a_first_byte_timeout() {
    let server = ReplayServer::start(Reply::sse("").stall_headers()).await;
    let config = openai_config(&server).with_timeouts(short(5_000, 300, 5_000));
    let provider = OpenAiProvider::new(config).unwrap();
    let error = start_error(&provider, request("gpt-4o", true)).await;
    assert_eq!(error.code, ErrorCode::ProviderTimeout);
    assert_eq!(error.phase, Phase::BeforeFirstToken);
    assert!(error.message.contains("first-byte"), "{}", error.message);
}

#[tokio::test]
async fn a_refused_connection_is_unavailable() {
    // A port that was just free: nothing listens there any more.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let config = gtl_providers::ProviderConfig::new(gtl_providers::ProviderKind::OpenAi)
        .with_api_key(KEY)
        .with_base_url(format!("http://127.0.0.1:{port}/v1"));
    let provider = OpenAiProvider::new(config).unwrap();
    let error = start_error(&provider, request("gpt-4o", true)).await;
    assert_eq!(error.code, ErrorCode::ProviderUnavailable);
    assert!(error.is_retryable());
    assert!(!error.message.contains(KEY));
}
