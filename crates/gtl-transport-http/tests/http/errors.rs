//! Bad input on the HTTP port: the HTTP status of its GTL code, the
//! protocol's error frame as the body, and the server goes on serving.

use gtl_service::ConnectionLimits;
use serde_json::{Value, json};

use crate::{chat, client, start_with};

async fn refusal(response: reqwest::Response) -> (u16, String, Value) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], "error", "{body}");
    (status, body["code"].as_str().unwrap().to_owned(), body)
}

#[tokio::test]
async fn each_bad_request_gets_its_status_and_code() {
    let mut limits = ConnectionLimits::default();
    limits.max_frame_bytes = 4096;
    let addr = start_with(limits).await;
    let url = |path: &str| format!("http://{addr}{path}");
    let http = client();

    let cases = [
        (
            http.post(url("/gtl/v1/complete")).body("{not json"),
            400,
            "INVALID_REQUEST",
        ),
        (
            http.post(url("/gtl/v1/complete"))
                .json(&json!({"type": "ping"})),
            400,
            "INVALID_REQUEST",
        ),
        (
            http.post(url("/gtl/v1/complete"))
                .json(&chat("nope/nothing", "hi")),
            404,
            "MODEL_NOT_FOUND",
        ),
        (
            http.post(url("/gtl/v1/complete"))
                .json(&chat("echo", &"x".repeat(10_000))),
            413,
            "FRAME_TOO_LARGE",
        ),
        (
            http.post(url("/gtl/v1/complete"))
                .header("GTL-Version", "2.0")
                .json(&chat("echo", "hi")),
            400,
            "VERSION_UNSUPPORTED",
        ),
        (
            http.post(url("/gtl/v1/complete"))
                .json(&chat("echo:error=RATE_LIMIT", "hi")),
            429,
            "RATE_LIMIT",
        ),
        (http.get(url("/nowhere")), 404, "MODEL_NOT_FOUND"),
        (
            http.get(url("/gtl/v1/sessions/s_nope/events"))
                .header("Last-Event-ID", "abc"),
            400,
            "INVALID_REQUEST",
        ),
        (
            http.get(url("/gtl/v1/sessions/s_nope/events")),
            404,
            "RESUME_NOT_FOUND",
        ),
        (
            http.get(url("/gtl/v1/models?provider=nope")),
            404,
            "MODEL_NOT_FOUND",
        ),
    ];
    for (request, status, code) in cases {
        let (got_status, got_code, body) = refusal(request.send().await.unwrap()).await;
        assert_eq!((got_status, got_code.as_str()), (status, code), "{body}");
        assert!(!body["message"].as_str().unwrap().is_empty());
    }
    // Still serving.
    let answer: Value = http
        .post(url("/gtl/v1/complete"))
        .json(&chat("echo", "still here"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["text"], "still here");
}

/// A page on another site can make a local user's browser call the
/// loopback gateway (a `text/plain` POST needs no preflight): it gets no
/// same-host trust on any route; a page on this host does.
#[tokio::test]
async fn a_page_elsewhere_is_not_trusted_as_this_host() {
    let addr = start_with(ConnectionLimits::default()).await;
    let http = client();
    let complete = |origin: &'static str| {
        http.post(format!("http://{addr}/gtl/v1/complete"))
            .header("origin", origin)
            .header("content-type", "text/plain")
            .body(chat("echo", "hi").to_string())
    };
    let (status, code, _) = refusal(complete("https://example.com").send().await.unwrap()).await;
    assert_eq!((status, code.as_str()), (401, "UNAUTHENTICATED"));
    let models = http
        .get(format!("http://{addr}/gtl/v1/models"))
        .header("origin", "https://example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(models.status(), 401);

    let local = complete("http://localhost:5173").send().await.unwrap();
    assert_eq!(local.status(), 200);
}
