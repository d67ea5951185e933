//! The HTTP client under the bridge: requests to one gateway, with the
//! connection's headers, and the reading of their answers.
//!
//! It is hyper-util's pooling client rather than reqwest (which the
//! workspace also has). The workspace's reqwest is built with rustls and no
//! crypto provider, so even a plain-HTTP client of it needs either a
//! process-wide default provider — which a library must not install behind
//! its user's back — or a configuration handed over through
//! `tls_backend_preconfigured(impl Any)`, which reqwest documents as having
//! no semver stability. hyper-util's client links no TLS at all for
//! `http://`; `https://` adds hyper-rustls with a configuration built
//! explicitly on the `ring` provider (the `tls` feature). hyper and
//! hyper-util are what the server side is built on already.

use std::sync::Arc;

use bytes::Bytes;
use gtl_proto::Frame;
use gtl_transport::TransportError;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue};
use http::uri::{Authority, Scheme};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::mapping;
use crate::VERSION_HEADER;

/// A pooled HTTP client, plain or TLS.
#[derive(Debug, Clone)]
enum HttpClient {
    Plain(Client<HttpConnector, Full<Bytes>>),
    #[cfg(feature = "tls")]
    Tls(Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>),
}

/// Where the gateway is: the scheme and authority requests go to, and a
/// path prefix (a gateway behind a reverse proxy at `/prefix`).
#[derive(Debug, Clone)]
pub(super) struct Origin {
    pub(super) scheme: Scheme,
    pub(super) authority: Authority,
    /// "" or `/prefix`, without a trailing slash.
    pub(super) prefix: String,
}

/// How the client reaches the gateway.
#[derive(Debug, Clone)]
pub(super) struct ClientConfig {
    pub(super) origin: Origin,
    /// HTTP/2 without negotiation on `http://` (h2c), every call a stream of
    /// one TCP connection. `https://` negotiates by ALPN instead.
    pub(super) h2c: bool,
    /// The TLS configuration for `https://`; `None` for plain HTTP.
    #[cfg(feature = "tls")]
    pub(super) tls: Option<Arc<rustls::ClientConfig>>,
}

/// Requests to one gateway, carrying the connection's version and
/// credential once the hello set them. Cheap to clone.
#[derive(Debug, Clone)]
pub(super) struct Requester {
    client: HttpClient,
    origin: Arc<Origin>,
    version: Option<HeaderValue>,
    authorization: Option<HeaderValue>,
}

impl Requester {
    /// A new client, with its own pool: one bridge's requests share its
    /// connections, and they close when the bridge ends.
    pub(super) fn new(config: &ClientConfig) -> Self {
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new());
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        #[cfg(feature = "tls")]
        if let Some(tls) = &config.tls {
            connector.enforce_http(false);
            // hyper-rustls sets the ALPN list itself (h2, then http/1.1).
            let mut tls = rustls::ClientConfig::clone(tls);
            tls.alpn_protocols.clear();
            let https = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(tls)
                .https_only()
                .enable_http1()
                .enable_http2()
                .wrap_connector(connector);
            return Self::with_client(HttpClient::Tls(builder.build(https)), config);
        }
        builder.http2_only(config.h2c);
        Self::with_client(HttpClient::Plain(builder.build(connector)), config)
    }

    fn with_client(client: HttpClient, config: &ClientConfig) -> Self {
        Self {
            client,
            origin: Arc::new(config.origin.clone()),
            version: None,
            authorization: None,
        }
    }

    /// This requester with the connection's negotiated `version` and, when
    /// not empty, the hello's `token` as a bearer credential.
    pub(super) fn after_welcome(&self, version: &str, token: &str) -> Self {
        let bearer = (!token.is_empty())
            .then(|| HeaderValue::from_str(&format!("Bearer {token}")).ok())
            .flatten();
        Self {
            version: HeaderValue::from_str(version).ok(),
            authorization: bearer,
            ..self.clone()
        }
    }

    /// Sends a request to `path` (under the origin's prefix) and waits for
    /// the answer's head. A request that gets no answer (the gateway is
    /// unreachable, the connection broke) is a connection failure.
    pub(super) async fn send(
        &self,
        request: Outgoing<'_>,
    ) -> Result<Response<Incoming>, TransportError> {
        let Outgoing {
            method,
            path,
            headers,
            body,
        } = request;
        let origin = &self.origin;
        let uri = format!(
            "{}://{}{}{path}",
            origin.scheme, origin.authority, origin.prefix
        );
        let mut builder = Request::builder().method(method.clone()).uri(uri);
        let json = body.is_some();
        if let Some(map) = builder.headers_mut() {
            if json {
                map.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            }
            if let Some(version) = &self.version {
                map.insert(VERSION_HEADER, version.clone());
            }
            if let Some(bearer) = &self.authorization {
                map.insert(AUTHORIZATION, bearer.clone());
            }
            for (name, value) in headers {
                // A value that is not a header value (a token with a line
                // end) is left out: the body carries it too, or the gateway
                // refuses the request as it would an empty one.
                if value.is_empty() {
                    continue;
                }
                if let Ok(value) = HeaderValue::from_str(value) {
                    map.insert(name.clone(), value);
                }
            }
        }
        let request = builder
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| failure(&method, path, &e))?;
        let sent = match &self.client {
            HttpClient::Plain(client) => client.request(request).await,
            #[cfg(feature = "tls")]
            HttpClient::Tls(client) => client.request(request).await,
        };
        sent.map_err(|e| failure(&method, path, &e))
    }
}

/// One request to the gateway.
#[derive(Debug)]
pub(super) struct Outgoing<'a> {
    method: Method,
    path: &'a str,
    headers: Vec<(HeaderName, &'a str)>,
    body: Option<Bytes>,
}

impl<'a> Outgoing<'a> {
    /// A `POST` of a frame's JSON.
    pub(super) fn post(path: &'a str, json: Bytes) -> Self {
        Self {
            method: Method::POST,
            path,
            headers: Vec::new(),
            body: Some(json),
        }
    }

    /// A `GET`.
    pub(super) fn get(path: &'a str) -> Self {
        Self {
            method: Method::GET,
            path,
            headers: Vec::new(),
            body: None,
        }
    }

    /// With a header.
    pub(super) fn header(mut self, name: HeaderName, value: &'a str) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Asking for an event stream.
    pub(super) fn event_stream(self) -> Self {
        self.header(ACCEPT, "text/event-stream")
    }
}

/// The body of an answer, of at most `limit` bytes.
pub(super) async fn body(
    response: Response<Incoming>,
    limit: usize,
) -> Result<Bytes, TransportError> {
    let status = response.status();
    Limited::new(response.into_body(), limit)
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .map_err(|e| {
            let message = format!("the HTTP {status} answer could not be read: {}", chain(&*e));
            TransportError::Io(std::io::Error::other(message))
        })
}

/// An unsuccessful answer as the `error` frame it carries, for `call_id`.
/// An answer that carries none did not come from a GTL gateway (a proxy's
/// `502`, a web server's `404`): a connection failure.
pub(super) async fn refusal(
    response: Response<Incoming>,
    call_id: u64,
    limit: usize,
) -> Result<Frame, TransportError> {
    let status = response.status();
    let body = body(response, limit).await?;
    mapping::error_frame(&body, call_id).ok_or_else(|| not_gtl(status, "an error frame"))
}

/// An answer that is not what a GTL gateway sends.
pub(super) fn not_gtl(status: StatusCode, expected: &str) -> TransportError {
    TransportError::Io(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("the endpoint answered HTTP {status} without {expected}: is it a GTL gateway?"),
    ))
}

/// Whether an answer is an event stream.
pub(super) fn is_event_stream(response: &Response<Incoming>) -> bool {
    response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/event-stream"))
}

/// A request that got no answer, with every cause (hyper's own message is
/// only "client error (Connect)").
fn failure(method: &Method, path: &str, e: &(dyn std::error::Error + 'static)) -> TransportError {
    TransportError::Io(std::io::Error::other(format!(
        "{method} {path}: {}",
        chain(e)
    )))
}

/// An error and its sources, `: `-separated.
pub(super) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// TLS with the `ring` provider, trusting the system's roots, as the
/// WebSocket client's `wss://` does.
#[cfg(feature = "tls")]
pub(super) fn default_tls() -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    use rustls_platform_verifier::BuilderVerifierExt as _;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_platform_verifier()?
        .with_no_client_auth();
    Ok(Arc::new(config))
}
