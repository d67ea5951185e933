//! The OpenAI- and Anthropic-compatible routes on the HTTP port, over the
//! echo provider: answers, streams, model lists, errors in each dialect's
//! shape, and the GTL session underneath (resumable on the native route).

use std::sync::Arc;

use gtl_providers::{EchoProvider, Registry};
use gtl_service::ConnectionLimits;
use serde_json::{Value, json};

use crate::{SseReader, client, data, events, start_serving, terminal, text};

async fn start() -> String {
    let mut limits = ConnectionLimits::default();
    limits.max_frame_bytes = 64 * 1024;
    let mut registry = Registry::new();
    registry.add(Arc::new(EchoProvider::new()));
    registry.alias("fast", "echo/echo");
    start_serving(registry, limits).await
}

fn openai(model: &str, text: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": text}]})
}

fn anthropic(model: &str, text: &str) -> Value {
    json!({"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": text}]})
}

/// The `data:` payloads of an OpenAI stream, `[DONE]` included.
async fn chunks(response: reqwest::Response) -> Vec<String> {
    events(response, |_| false)
        .await
        .into_iter()
        .map(|e| e.data)
        .collect()
}

#[tokio::test]
async fn openai_chat_completions_answer_whole_and_streamed() {
    let addr = start().await;
    let url = format!("http://{addr}/v1/chat/completions");
    let response = client()
        .post(&url)
        .bearer_auth("sk-anything")
        .json(&openai("fast", "hello there world"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let session = response.headers()["gtl-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["id"], format!("chatcmpl-{session}"));
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "fast");
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "hello there world"
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(body["usage"]["prompt_tokens"], 3);
    assert_eq!(body["usage"]["completion_tokens"], 3);

    let mut request = openai("echo", "one two");
    request["stream"] = json!(true);
    request["stream_options"] = json!({"include_usage": true});
    let response = client().post(&url).json(&request).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let chunks = chunks(response).await;
    assert_eq!(chunks.last().unwrap(), "[DONE]");
    let parsed: Vec<Value> = chunks[..chunks.len() - 1]
        .iter()
        .map(|c| serde_json::from_str(c).unwrap())
        .collect();
    assert_eq!(parsed[0]["choices"][0]["delta"]["role"], "assistant");
    let content: String = parsed
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "one two");
    let usage = parsed.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["total_tokens"], 4);
    let finish = &parsed[parsed.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
}

#[tokio::test]
async fn anthropic_messages_answer_whole_and_streamed() {
    let addr = start().await;
    let url = format!("http://{addr}/v1/messages");
    let response = client()
        .post(&url)
        .header("x-api-key", "anything")
        .header("anthropic-version", "2023-06-01")
        .json(&anthropic("echo/echo", "hi you"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], "message");
    assert_eq!(body["role"], "assistant");
    assert_eq!(body["content"][0]["type"], "text");
    assert_eq!(body["content"][0]["text"], "hi you");
    assert_eq!(body["stop_reason"], "end_turn");
    assert_eq!(body["usage"]["input_tokens"], 2);
    assert_eq!(body["usage"]["output_tokens"], 2);

    let mut request = anthropic("echo", "a b c");
    request["stream"] = json!(true);
    let response = client().post(&url).json(&request).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let events = events(response, |_| false).await;
    let names: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(names.first(), Some(&"message_start"));
    assert_eq!(names.last(), Some(&"message_stop"));
    assert!(names.contains(&"content_block_start"), "{names:?}");
    assert!(names.contains(&"content_block_stop"), "{names:?}");
    let text: String = events
        .iter()
        .filter(|e| e.event == "content_block_delta")
        .map(|e| data(e)["delta"]["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(text, "a b c");
    let delta = events.iter().find(|e| e.event == "message_delta").unwrap();
    assert_eq!(data(delta)["delta"]["stop_reason"], "end_turn");
    assert_eq!(data(delta)["usage"]["output_tokens"], 3);
}

#[tokio::test]
async fn model_lists_in_each_dialect_include_aliases() {
    let addr = start().await;
    let url = format!("http://{addr}/v1/models");
    let list: Value = client()
        .get(&url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["object"], "list");
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["echo/echo", "fast"]);

    let list: Value = client()
        .get(&url)
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"][1]["type"], "model");
    assert_eq!(list["data"][1]["id"], "fast");
    assert_eq!(list["has_more"], false);

    let one: Value = client()
        .get(format!("{url}/echo%2Fecho"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["id"], "echo/echo");
    let missing = client().get(format!("{url}/nope")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "model_not_found");
}

#[tokio::test]
async fn bad_requests_get_the_dialects_own_errors_and_the_server_keeps_serving() {
    let addr = start().await;
    let openai_url = format!("http://{addr}/v1/chat/completions");
    let anthropic_url = format!("http://{addr}/v1/messages");
    let http = client();

    // (request, status, OpenAI error code or Anthropic error type)
    let mut n2 = openai("echo", "hi");
    n2["n"] = json!(2);
    let mut no_max = anthropic("echo", "hi");
    no_max.as_object_mut().unwrap().remove("max_tokens");
    let oversized = openai("echo", &"word ".repeat(20_000));
    let openai_cases = [
        (http.post(&openai_url).body("{not json"), 400, Value::Null),
        (http.post(&openai_url).json(&n2), 400, Value::Null),
        (
            http.post(&openai_url).json(&openai("nope/x", "hi")),
            404,
            json!("model_not_found"),
        ),
        (
            http.post(&openai_url).json(&oversized),
            413,
            json!("request_too_large"),
        ),
        (
            http.post(&openai_url)
                .json(&openai("echo:error=RATE_LIMIT,retry_after_ms=2500", "hi")),
            429,
            json!("rate_limit_exceeded"),
        ),
    ];
    for (request, status, code) in openai_cases {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), status);
        if status == 429 {
            assert_eq!(response.headers()["retry-after"], "3");
        }
        let body: Value = response.json().await.unwrap();
        assert!(body["error"]["message"].is_string(), "{body}");
        assert_eq!(body["error"]["code"], code, "{body}");
    }
    let refused: Value = http
        .post(&openai_url)
        .json(&n2)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(refused["error"]["param"], "n");

    let anthropic_cases = [
        (
            http.post(&anthropic_url).json(&no_max),
            400,
            "invalid_request_error",
        ),
        (
            http.post(&anthropic_url).json(&anthropic("nope/x", "hi")),
            404,
            "not_found_error",
        ),
        (
            http.post(&anthropic_url)
                .json(&anthropic("echo:error=PROVIDER_UNAVAILABLE", "hi")),
            529,
            "overloaded_error",
        ),
    ];
    for (request, status, kind) in anthropic_cases {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), status);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["type"], "error", "{body}");
        assert_eq!(body["error"]["type"], kind, "{body}");
    }

    // A stream that fails before its first byte gets the status, not 200.
    let mut early = openai("echo:error=MODEL_NOT_FOUND", "hi");
    early["stream"] = json!(true);
    let response = http.post(&openai_url).json(&early).send().await.unwrap();
    assert_eq!(response.status(), 404);

    // After its first byte, the dialect's in-stream error.
    let mut late = anthropic("echo:error=PROVIDER_ERROR,error_after=1", "one two three");
    late["stream"] = json!(true);
    let response = http.post(&anthropic_url).json(&late).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let events = events(response, |_| false).await;
    let last = events.last().unwrap();
    assert_eq!(last.event, "error");
    assert_eq!(data(last)["error"]["type"], "api_error");

    let still: Value = http
        .post(&openai_url)
        .json(&openai("echo", "still here"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(still["choices"][0]["message"]["content"], "still here");
}

#[tokio::test]
async fn a_page_elsewhere_is_refused_in_the_dialects_shape() {
    let addr = start().await;
    let response = client()
        .post(format!("http://{addr}/v1/messages"))
        .header("origin", "https://evil.example")
        .json(&anthropic("echo", "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "authentication_error", "{body}");
}

#[tokio::test]
async fn tokens_are_counted_by_the_routed_provider() {
    let addr = start().await;
    let count: Value = client()
        .post(format!("http://{addr}/v1/messages/count_tokens"))
        .json(&json!({"model": "echo", "system": "be brief",
                      "messages": [{"role": "user", "content": "count these four words"}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(count, json!({"input_tokens": 6}));
}

#[tokio::test]
async fn a_compatible_stream_cut_by_the_network_resumes_on_the_native_route() {
    let addr = start().await;
    let mut request = openai("echo:delay_ms=5", "a b c d e f g h");
    request["stream"] = json!(true);
    let response = client()
        .post(format!("http://{addr}/v1/chat/completions"))
        .json(&request)
        .send()
        .await
        .unwrap();
    let session = response.headers()["gtl-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let token = response.headers()["gtl-resume-token"]
        .to_str()
        .unwrap()
        .to_owned();
    // Read the first content chunk, then drop the connection.
    let mut reader = SseReader::new(response);
    let first = reader
        .until(|e| e.data.contains("\"content\":\"a \""))
        .await;
    assert!(!first.is_empty());
    drop(reader);

    let resumed = client()
        .get(format!("http://{addr}/gtl/v1/sessions/{session}/events"))
        .header("last-event-id", "0")
        .header("gtl-resume-token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(resumed.status(), 200);
    let events = events(resumed, terminal).await;
    assert_eq!(text(&events), "a b c d e f g h");
    assert_eq!(events.last().unwrap().event, "done");
}
