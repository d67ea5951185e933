//! complete, stream and models, over HTTP/1.1 and h2c.

use serde_json::{Value, json};

use crate::{chat, client, data, events, start, terminal, text};

#[tokio::test]
async fn complete_answers_with_one_json_object() {
    let addr = start().await;
    let response = client()
        .post(format!("http://{addr}/gtl/v1/complete"))
        .json(&chat("echo", "Hello, GTL"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["gtl-version"], "1.0");
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["text"], "Hello, GTL");
    assert_eq!(answer["finish_reason"], "stop");
    assert_eq!(answer["provider"], "echo");
    assert_eq!(answer["usage"]["tokens_out"], 2);
    assert!(answer["session_id"].as_str().unwrap().starts_with("s_"));
}

#[tokio::test]
async fn stream_sends_accepted_then_numbered_events() {
    let addr = start().await;
    let response = client()
        .post(format!("http://{addr}/gtl/v1/stream"))
        .json(&chat("echo", "one two three"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let events = events(response, terminal).await;
    let accepted = &events[0];
    assert_eq!(accepted.event, "accepted");
    assert_eq!(accepted.id, None);
    assert!(!data(accepted)["resume_token"].as_str().unwrap().is_empty());
    let ids: Vec<String> = events[1..].iter().map(|e| e.id.clone().unwrap()).collect();
    let expected: Vec<String> = (1..=ids.len()).map(|i| i.to_string()).collect();
    assert_eq!(ids, expected);
    assert_eq!(text(&events), "one two three");
    assert_eq!(events.last().unwrap().event, "done");
}

#[tokio::test]
async fn h2c_serves_the_same_routes() {
    let addr = start().await;
    let h2 = crate::builder().http2_prior_knowledge().build().unwrap();
    let response = h2
        .post(format!("http://{addr}/gtl/v1/complete"))
        .json(&chat("echo", "over h2c"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["text"], "over h2c");
}

#[tokio::test]
async fn models_lists_every_provider() {
    let addr = start().await;
    let models: Value = client()
        .get(format!("http://{addr}/gtl/v1/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["providers"][0]["provider"], "echo");
    assert_eq!(models["providers"][0]["models"][0]["name"], "echo");
}

#[tokio::test]
async fn hello_answers_with_the_welcome_or_the_refusal() {
    let addr = start().await;
    let http = client();
    let url = format!("http://{addr}/gtl/v1/hello");
    let response = http
        .post(&url)
        .json(&json!({"type": "hello", "versions": ["1.0"], "encodings": ["json", "protobuf"], "features": ["resume", "x"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["gtl-version"], "1.0");
    let welcome: Value = response.json().await.unwrap();
    assert_eq!(welcome["type"], "welcome");
    assert_eq!(welcome["encoding"], "json", "HTTP carries JSON only");
    assert_eq!(welcome["features"], json!(["resume"]));
    assert!(
        welcome["server"]
            .as_str()
            .unwrap()
            .starts_with("gtl-server/")
    );

    // Trusting this host and verifying no tokens, the gateway has nothing
    // to check a token with and serves the caller as itself.
    let body = json!({"versions": ["1.0"], "token": "t"});
    let response = http.post(&url).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 200);

    let strict = format!(
        "http://{}/gtl/v1/hello",
        crate::start_trusting_nobody().await
    );
    for (url, body, status, code) in [
        (
            &url,
            json!({"versions": ["2.0"]}),
            400,
            "VERSION_UNSUPPORTED",
        ),
        (&url, json!({"type": "ping"}), 400, "INVALID_REQUEST"),
        (
            &strict,
            json!({"versions": ["1.0"]}),
            401,
            "UNAUTHENTICATED",
        ),
        (
            &strict,
            json!({"versions": ["1.0"], "token": "t"}),
            401,
            "UNAUTHENTICATED",
        ),
    ] {
        let response = http.post(url).json(&body).send().await.unwrap();
        assert_eq!(response.status(), status, "{body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(
            (error["type"].as_str(), error["code"].as_str()),
            (Some("error"), Some(code))
        );
    }
}
