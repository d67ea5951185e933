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

use crate::respond::{self, Body};

/// The path of the JSON document that describes the transports.
pub(crate) const WEB_PATH: &str = "/gtl/v1/web";

/// The path of the WebTransport session on the HTTP/3 listener.
const WEBTRANSPORT_PATH: &str = "/gtl/v1/wt";

const INDEX_HTML: &str = include_str!("../web/index.html");
const APP_JS: &str = include_str!("../web/app.js");
const STYLE_CSS: &str = include_str!("../web/style.css");

/// What the web page is told about the gateway: whether it has a
/// WebTransport (HTTP/3) listener, and the certificate a browser trusts it
/// by.
///
/// The default has no WebTransport: the page then uses the WebSocket on
/// the same port.
///
/// # Example
///
/// ```
/// use gtl_transport_http::WebPage;
///
/// let page = WebPage::new().with_webtransport(7300, vec![[0xab; 32]]);
/// assert_eq!(page.webtransport_port(), Some(7300));
/// ```
#[derive(Debug, Clone, Default)]
pub struct WebPage {
    webtransport: Option<WebTransport>,
}

#[derive(Debug, Clone)]
struct WebTransport {
    port: u16,
    certificate_sha256: Vec<[u8; 32]>,
}

impl WebPage {
    /// A page with no WebTransport.
    pub fn new() -> Self {
        Self::default()
    }

    /// The gateway serves WebTransport at `https://<host>:<port>/gtl/v1/wt`
    /// over HTTP/3 (UDP), where `<host>` is the host the page was loaded
    /// from, with a certificate whose SHA-256 is one of
    /// `certificate_sha256` (a browser trusts it by hash, as
    /// `serverCertificateHashes`, without a CA).
    pub fn with_webtransport(mut self, port: u16, certificate_sha256: Vec<[u8; 32]>) -> Self {
        self.webtransport = Some(WebTransport {
            port,
            certificate_sha256,
        });
        self
    }

    /// The UDP port of the WebTransport listener, when there is one.
    pub fn webtransport_port(&self) -> Option<u16> {
        self.webtransport.as_ref().map(|wt| wt.port)
    }

    /// The WebTransport URL for a page loaded from `host`.
    fn webtransport_url(&self, host: &str) -> Option<String> {
        let wt = self.webtransport.as_ref()?;
        Some(format!("https://{host}:{}{WEBTRANSPORT_PATH}", wt.port))
    }
}

/// Answers the page's routes: `GET` of `/`, `/index.html`,
/// `/app.js`, `/style.css` and [`WEB_PATH`]. `None` for every other
/// request.
pub(crate) fn respond<B>(page: &WebPage, request: &Request<B>) -> Option<Response<Body>> {
    if request.method() != Method::GET {
        return None;
    }
    let host = request_host(request);
    let (content_type, body) = match request.uri().path() {
        "/" | "/index.html" => ("text/html; charset=utf-8", INDEX_HTML.to_owned()),
        "/app.js" => ("text/javascript; charset=utf-8", APP_JS.to_owned()),
        "/style.css" => ("text/css; charset=utf-8", STYLE_CSS.to_owned()),
        WEB_PATH => ("application/json", describe(page, &host)),
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
    if let Ok(csp) = HeaderValue::from_str(&content_security_policy(page, &host)) {
        headers.insert("content-security-policy", csp);
    }
    Some(response)
}

/// The JSON document of [`WEB_PATH`].
fn describe(page: &WebPage, host: &str) -> String {
    let hashes: Vec<String> = page
        .webtransport
        .iter()
        .flat_map(|wt| wt.certificate_sha256.iter().map(|h| hex(h)))
        .collect();
    json!({
        "webtransport": page.webtransport_url(host),
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
fn content_security_policy(page: &WebPage, host: &str) -> String {
    let mut connect = String::from("'self'");
    if let Some(wt) = &page.webtransport {
        connect.push_str(&format!(" https://{host}:{}", wt.port));
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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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

    #[test]
    fn the_policy_names_webtransport_only_when_there_is_one() {
        let none = content_security_policy(&WebPage::new(), "localhost");
        assert!(none.contains("connect-src 'self';"), "{none}");
        let page = WebPage::new().with_webtransport(7300, vec![[1; 32]]);
        let with = content_security_policy(&page, "localhost");
        assert!(
            with.contains("connect-src 'self' https://localhost:7300;"),
            "{with}"
        );
        assert!(with.contains("script-src 'self';"), "{with}");
    }

    #[test]
    fn unknown_paths_and_methods_are_not_the_page() {
        let page = WebPage::new();
        assert!(respond(&page, &get("/favicon.ico", "localhost")).is_none());
        let post = Request::post("/").body(()).unwrap();
        assert!(respond(&page, &post).is_none());
        assert!(respond(&page, &get("/app.js", "localhost")).is_some());
    }
}
