//! The web chat page's routes: the embedded files with their content types
//! and Content-Security-Policy, `GET /gtl/v1/web`, and unknown paths.

use gtl_service::ConnectionLimits;
use gtl_transport_http::WebTransportInfo;
use serde_json::Value;

use crate::{client, gateway, serve, start};

fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn the_page_and_its_files_have_their_types_and_a_strict_policy() {
    let addr = start().await;
    let http = client();
    for (path, content_type, contains) in [
        ("/", "text/html; charset=utf-8", "<textarea id=\"prompt\""),
        ("/index.html", "text/html; charset=utf-8", "id=\"output\""),
        ("/app.js", "text/javascript; charset=utf-8", "new WebSocket"),
        ("/style.css", "text/css; charset=utf-8", "#output"),
    ] {
        let response = http
            .get(format!("http://{addr}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(header(&response, "content-type"), content_type, "{path}");
        assert_eq!(header(&response, "x-content-type-options"), "nosniff");
        let csp = header(&response, "content-security-policy");
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self';",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        let body = response.text().await.unwrap();
        assert!(body.contains(contains), "{path}");
    }
}

#[tokio::test]
async fn the_page_has_no_inline_script_or_style() {
    let addr = start().await;
    let html = client()
        .get(format!("http://{addr}/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("<script src=\"/app.js\" defer></script>"));
    assert_eq!(html.matches("<script").count(), 1, "{html}");
    assert!(!html.contains("<style"), "{html}");
    assert!(!html.contains(" on"), "no inline event handlers: {html}");
}

#[tokio::test]
async fn without_http3_the_page_is_told_to_use_websocket() {
    let addr = start().await;
    let response = client()
        .get(format!("http://{addr}/gtl/v1/web"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "content-type"), "application/json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["webtransport"], Value::Null, "{body}");
    assert_eq!(body["certificate_hashes"], serde_json::json!([]), "{body}");
    assert_eq!(body["websocket"], "/gtl/v1/ws", "{body}");
    assert_eq!(body["models"], "/gtl/v1/models", "{body}");
}

#[tokio::test]
async fn with_http3_the_page_gets_the_url_for_its_host_and_the_hash() {
    let info = WebTransportInfo::new("127.0.0.1:4433".parse().unwrap(), "/gtl/v1/wt", [0xab; 32]);
    let addr = serve(gateway(ConnectionLimits::default()).with_webtransport(info)).await;
    let port = addr.rsplit_once(':').unwrap().1;
    let http = client();
    for (host, expected) in [
        ("127.0.0.1", "https://127.0.0.1:4433/gtl/v1/wt"),
        ("localhost", "https://localhost:4433/gtl/v1/wt"),
    ] {
        let response = http
            .get(format!("http://{host}:{port}/gtl/v1/web"))
            .send()
            .await
            .unwrap();
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["webtransport"], expected, "{body}");
        assert_eq!(
            body["certificate_hashes"],
            serde_json::json!(["ab".repeat(32)]),
            "{body}"
        );
        let page = http
            .get(format!("http://{host}:{port}/"))
            .send()
            .await
            .unwrap();
        let csp = header(&page, "content-security-policy");
        assert!(
            csp.contains(&format!("connect-src 'self' https://{host}:4433;")),
            "{csp}"
        );
    }
}

#[tokio::test]
async fn unknown_paths_are_404_and_the_origin_rule_still_holds() {
    let addr = start().await;
    let http = client();
    let missing = http
        .get(format!("http://{addr}/favicon.ico"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["type"], "error", "{body}");
    // The page itself is public...
    let page = http
        .get(format!("http://{addr}/"))
        .header("origin", "https://example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    // ...but a page elsewhere still gets no same-host trust for calls.
    let models = http
        .get(format!("http://{addr}/gtl/v1/models"))
        .header("origin", "https://example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(models.status(), 401);
    let same_host = http
        .get(format!("http://{addr}/gtl/v1/models"))
        .header("origin", format!("http://{addr}"))
        .send()
        .await
        .unwrap();
    assert_eq!(same_host.status(), 200);
}
