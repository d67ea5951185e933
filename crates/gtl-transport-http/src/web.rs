//! The web chat page at `/`, its script and style sheet (embedded in the
//! binary), and `GET /gtl/v1/web`, which tells the page where the
//! transports are (docs/protocol.md §13.6).
//!
//! The files need no credential: they are the same for everyone and carry
//! nothing of the gateway's. What the page then does (list models, open a
//! WebSocket or WebTransport session, call) goes through the routes'
//! ordinary authentication, the `Origin` rule included.

use http::header::{CACHE_CONTROL, CONTENT_TYPE, HOST, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use serde_json::json;

use crate::WebTransportInfo;
use crate::respond::{self, Body};

/// The path of the JSON document that describes the transports.
pub(crate) const WEB_PATH: &str = "/gtl/v1/web";

const INDEX_HTML: &str = include_str!("../web/index.html");
const APP_JS: &str = include_str!("../web/app.js");
const STYLE_CSS: &str = include_str!("../web/style.css");

/// The WebTransport URL for a page loaded from `host`: the endpoint's
/// path and UDP port, on the host the page used (`localhost` or an
/// address), so that the page's origin and the session's name the same
/// host.
fn webtransport_url(info: &WebTransportInfo, host: &str) -> String {
    let path = info
        .url
        .parse::<http::Uri>()
        .map_or_else(|_| "/".to_owned(), |uri| uri.path().to_owned());
    format!("https://{host}:{}{path}", info.port)
}

/// Answers the page's routes: `GET` of `/`, `/index.html`,
/// `/app.js`, `/style.css` and [`WEB_PATH`]. `None` for every other
/// request.
pub(crate) fn respond<B>(
    webtransport: Option<&WebTransportInfo>,
    request: &Request<B>,
) -> Option<Response<Body>> {
    if request.method() != Method::GET {
        return None;
    }
    let host = request_host(request);
    let (content_type, body) = match request.uri().path() {
        "/" | "/index.html" => ("text/html; charset=utf-8", INDEX_HTML.to_owned()),
        "/app.js" => ("text/javascript; charset=utf-8", APP_JS.to_owned()),
        "/style.css" => ("text/css; charset=utf-8", STYLE_CSS.to_owned()),
        WEB_PATH => ("application/json", describe(webtransport, &host)),
        _ => return None,
    };
    let mut response = Response::new(respond::full(body));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    if let Ok(csp) = HeaderValue::from_str(&content_security_policy(webtransport, &host)) {
        headers.insert("content-security-policy", csp);
    }
    Some(response)
}

/// The JSON document of [`WEB_PATH`].
fn describe(webtransport: Option<&WebTransportInfo>, host: &str) -> String {
    let hashes: Vec<String> = webtransport
        .iter()
        .map(|info| info.cert_sha256_hex())
        .collect();
    json!({
        "webtransport": webtransport.map(|info| webtransport_url(info, host)),
        "certificate_hashes": hashes,
        "websocket": gtl_transport_ws::DEFAULT_PATH,
        "models": "/gtl/v1/models",
    })
    .to_string()
}

/// Scripts and styles only from this origin (none inline), connections to
/// this origin (HTTP, and its WebSocket: CSP Level 3 `'self'` covers
/// `ws:`/`wss:` on the same host and port) and to the WebTransport URL,
/// nothing else.
fn content_security_policy(webtransport: Option<&WebTransportInfo>, host: &str) -> String {
    let mut connect = String::from("'self'");
    if let Some(info) = webtransport {
        connect.push_str(&format!(" https://{host}:{}", info.port));
    }
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src {connect}; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
}

/// The host (without the port) the request was sent to: the URI's
/// authority (HTTP/2) or the `Host` header; `127.0.0.1` when neither is a
/// plain host name or address. Only such characters go into the URL and
/// the policy.
fn request_host<B>(request: &Request<B>) -> String {
    let from_header = |headers: &HeaderMap| {
        headers
            .get(HOST)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<http::uri::Authority>().ok())
            .map(|a| a.host().to_owned())
    };
    request
        .uri()
        .host()
        .map(str::to_owned)
        .or_else(|| from_header(request.headers()))
        .filter(|host| {
            !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        })
        .unwrap_or_else(|| "127.0.0.1".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str, host: &str) -> Request<()> {
        Request::get(path).header(HOST, host).body(()).unwrap()
    }

    #[test]
    fn the_host_comes_from_the_request_and_is_checked() {
        assert_eq!(request_host(&get("/", "localhost:7300")), "localhost");
        assert_eq!(request_host(&get("/", "[::1]:7300")), "[::1]");
        assert_eq!(request_host(&get("/", "a b")), "127.0.0.1");
        let absolute = Request::get("http://app.localhost:1/").body(()).unwrap();
        assert_eq!(request_host(&absolute), "app.localhost");
    }

    fn info() -> WebTransportInfo {
        WebTransportInfo::new("127.0.0.1:7300".parse().unwrap(), "/gtl/v1/wt", [1; 32])
    }

    #[test]
    fn the_url_names_the_pages_host() {
        assert_eq!(
            webtransport_url(&info(), "localhost"),
            "https://localhost:7300/gtl/v1/wt"
        );
    }

    #[test]
    fn the_policy_names_webtransport_only_when_there_is_one() {
        let none = content_security_policy(None, "localhost");
        assert!(none.contains("connect-src 'self';"), "{none}");
        let with = content_security_policy(Some(&info()), "localhost");
        assert!(
            with.contains("connect-src 'self' https://localhost:7300;"),
            "{with}"
        );
        assert!(with.contains("script-src 'self';"), "{with}");
    }

    #[test]
    fn unknown_paths_and_methods_are_not_the_page() {
        assert!(respond(None, &get("/favicon.ico", "localhost")).is_none());
        let post = Request::post("/").body(()).unwrap();
        assert!(respond(None, &post).is_none());
        assert!(respond(None, &get("/app.js", "localhost")).is_some());
    }
}
