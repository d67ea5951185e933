//! The HTTP layer every network adapter shares (feature `__http`).
//!
//! - [`HttpClient`]: one pooled reqwest client per provider (keep-alive,
//!   HTTP/2 when the server offers it through ALPN, ring-only TLS), with
//!   the connect, first-byte and idle [`Timeouts`]. [`HttpClient::post`]
//!   sends a request and maps a failure or a non-2xx answer to a
//!   [`ProviderError`] (see [`error`] for the table); keys in headers built
//!   with [`Headers::secret`] are marked sensitive and scrubbed from every
//!   message. Request and response bodies are logged on the [`BODIES`]
//!   target at trace level, with those keys scrubbed.
//! - [`HttpClient::events`]: drives a [`StreamDecoder`] over the response
//!   body into an [`EventStream`] (see [`stream`] for the contract).
//! - [`ErrorBody`], [`classify`], [`status_error`], [`retry_after`]: the
//!   error mapping, for adapters reading errors sent inside a body.
//!
//! # Writing an adapter
//!
//! ```text
//! let client = HttpClient::from_config(&config)?;
//! let headers = Headers::new()
//!     .bearer(key)
//!     .extra(&config.headers)
//!     .build()?;
//! let response = client.post(&url, headers, body).await?;
//! let meta = StreamMeta::streaming(&name, &model).with_price(price);
//! Ok(client.events(response, Sse::new(MyHandler::default()), meta))
//! ```

pub(crate) mod error;
pub(crate) mod stream;

use std::sync::{Arc, Once};
use std::time::SystemTime;

use futures::StreamExt as _;
use gtl_core::{EventStream, ProviderError};
use gtl_proto::ErrorCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};

pub(crate) use error::{ErrorBody, classify, retry_after, scrub, status_error};
pub(crate) use stream::{
    JsonBody, Ndjson, NdjsonHandler, Sse, SseHandler, StreamDecoder, StreamMeta, drive, malformed,
};

use crate::config::{ConfigError, ProviderConfig, Secret, Timeouts};

/// The largest error body read from a failed response, in bytes.
const MAX_ERROR_BODY: usize = 64 << 10;

/// The log target of upstream request and response bodies, at trace
/// level only, so the usual `debug` never shows a conversation: an
/// operator asks for them by name (`RUST_LOG=gtl::bodies=trace,info`).
pub(crate) const BODIES: &str = "gtl::bodies";

/// Adds the current span's trace context to an upstream request's headers.
static TRACE_INJECTOR: std::sync::OnceLock<fn(&mut HeaderMap)> = std::sync::OnceLock::new();

/// Sets how every adapter's upstream requests carry the trace context
/// (e.g. a W3C `traceparent` header), once per process: a server
/// exporting traces sets it. It runs inside the request's
/// `gen_ai.upstream` span.
pub fn set_trace_injector(inject: fn(&mut HeaderMap)) {
    let _ = TRACE_INJECTOR.set(inject);
}

/// Header names whose values are always treated as secrets.
const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "api-key",
    "x-api-key",
    "x-goog-api-key",
    "x-amz-security-token",
];

/// Installs ring as rustls's process-wide crypto provider, once. reqwest's
/// `rustls-no-provider` panics without one; if another part of the process
/// installed a provider first, that one stays.
fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A provider's HTTP client: pooled connections and its timeouts. Clones
/// share the pool.
#[derive(Debug, Clone)]
pub(crate) struct HttpClient {
    client: reqwest::Client,
    provider: Arc<str>,
    timeouts: Timeouts,
}

impl HttpClient {
    /// A client for `config`'s provider, with its timeouts.
    pub(crate) fn from_config(config: &ProviderConfig) -> Result<Self, ConfigError> {
        install_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .connect_timeout(config.timeouts.connect)
            .tcp_keepalive(std::time::Duration::from_secs(30))
            .pool_idle_timeout(std::time::Duration::from_secs(90))
            // Fixed, generous HTTP/2 windows rather than adaptive ones: h2
            // budgets the small DATA frames it buffers at half the
            // connection window, and thousands of token streams sharing one
            // connection each buffer a few (below that, the connection is
            // torn down with ENHANCE_YOUR_CALM).
            .http2_initial_connection_window_size(16 << 20)
            .http2_initial_stream_window_size(1 << 20)
            .user_agent(concat!("gtl/", env!("CARGO_PKG_VERSION")));
        if config.http2_prior_knowledge {
            builder = builder.http2_prior_knowledge();
        }
        let client = builder.build().map_err(|error| ConfigError::Invalid {
            provider: config.name.clone(),
            message: format!("cannot build the HTTP client: {error}"),
        })?;
        Ok(Self {
            client,
            provider: Arc::from(config.name.as_str()),
            timeouts: config.timeouts,
        })
    }

    /// POSTs `body` (JSON unless `headers` say otherwise) and returns the
    /// response when its status is 2xx.
    ///
    /// Errors: no response headers within the first-byte timeout is
    /// `PROVIDER_TIMEOUT`; a connection failure `PROVIDER_UNAVAILABLE` (or
    /// `PROVIDER_TIMEOUT` when connecting timed out); a non-2xx status is
    /// read (up to 64 KiB) and mapped by [`status_error`], with
    /// `Retry-After`.
    pub(crate) async fn post(
        &self,
        url: impl reqwest::IntoUrl + std::fmt::Display,
        headers: HeaderMap,
        body: Vec<u8>,
    ) -> Result<reqwest::Response, ProviderError> {
        let secrets = secrets_of(&headers);
        let response = self.send(url, headers, body).await?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let delay = retry_after(response.headers(), SystemTime::now());
        let body = self.read_limited(response, MAX_ERROR_BODY).await;
        let mut error = status_error(&self.provider, status.as_u16(), delay, &body);
        error.message = scrub(&error.message, &secrets);
        Err(error)
    }

    /// Like [`post`](Self::post), but returns the response whatever its
    /// status, for adapters that read error bodies themselves.
    /// `url` may be parsed once by the adapter (a `reqwest::Url`) or given
    /// as text.
    pub(crate) async fn send(
        &self,
        url: impl reqwest::IntoUrl + std::fmt::Display,
        mut headers: HeaderMap,
        body: Vec<u8>,
    ) -> Result<reqwest::Response, ProviderError> {
        headers
            .entry(CONTENT_TYPE)
            .or_insert(HeaderValue::from_static("application/json"));
        for name in SECRET_HEADERS {
            if let Some(value) = headers.get_mut(*name) {
                value.set_sensitive(true);
            }
        }
        let secrets = secrets_of(&headers);
        // The upstream attempt, as a child of the call's span: until the
        // response's headers (the body is the call's).
        // Only when traces are exported (the injector is installed then).
        let span = if TRACE_INJECTOR.get().is_some() {
            tracing::info_span!(
                "gen_ai.upstream",
                otel.name = format!("POST {}", self.provider),
                otel.kind = "client",
                "gen_ai.system" = &*self.provider,
                "http.request.method" = "POST",
                "http.response.status_code" = tracing::field::Empty,
            )
        } else {
            tracing::Span::none()
        };
        if let Some(inject) = TRACE_INJECTOR.get() {
            let _entered = span.enter();
            inject(&mut headers);
        }
        if tracing::enabled!(target: BODIES, tracing::Level::TRACE) {
            // The query may hold a key (Gemini's `?key=`); headers are not
            // logged; a key echoed in the body is scrubbed.
            let body = String::from_utf8_lossy(&body);
            let url = url.to_string();
            tracing::trace!(
                target: BODIES,
                provider = %self.provider,
                url = url.split('?').next().unwrap_or(&url),
                body = %scrub(&body, &secrets),
                "upstream request"
            );
        }
        let request = self.client.post(url).headers(headers).body(body).send();
        let sent = tokio::time::timeout(self.timeouts.first_byte, request);
        match tracing::Instrument::instrument(sent, span.clone()).await {
            Ok(Ok(response)) => {
                span.record(
                    "http.response.status_code",
                    i64::from(response.status().as_u16()),
                );
                Ok(response)
            }
            Ok(Err(error)) => Err(self.transport_error(error, &secrets)),
            Err(_) => Err(ProviderError::new(
                ErrorCode::ProviderTimeout,
                format!(
                    "{}: no response within {} s (first-byte timeout)",
                    self.provider,
                    self.timeouts.first_byte.as_secs_f64()
                ),
            )),
        }
    }

    /// Drives `decoder` over `response`'s body; see [`stream`].
    pub(crate) fn events<D: StreamDecoder>(
        &self,
        response: reqwest::Response,
        decoder: D,
        meta: StreamMeta,
    ) -> EventStream {
        let provider = Arc::clone(&self.provider);
        let body = response.bytes_stream().map(move |chunk| {
            if let Ok(bytes) = &chunk
                && tracing::enabled!(target: BODIES, tracing::Level::TRACE)
            {
                tracing::trace!(
                    target: BODIES,
                    provider = %provider,
                    chunk = %String::from_utf8_lossy(bytes),
                    "upstream response"
                );
            }
            chunk.map_err(|error| {
                let code = if error.is_timeout() {
                    ErrorCode::ProviderTimeout
                } else {
                    ErrorCode::ProviderUnavailable
                };
                ProviderError::new(
                    code,
                    format!(
                        "{provider}: connection lost mid-stream: {}",
                        error_chain(&error.without_url())
                    ),
                )
            })
        });
        drive(
            body,
            decoder,
            meta,
            Arc::clone(&self.provider),
            self.timeouts.idle,
        )
    }

    fn transport_error(&self, error: reqwest::Error, secrets: &[String]) -> ProviderError {
        let code = if error.is_timeout() {
            ErrorCode::ProviderTimeout
        } else {
            ErrorCode::ProviderUnavailable
        };
        // `without_url`: a URL may carry a key in its query.
        let detail = error_chain(&error.without_url());
        ProviderError::new(
            code,
            scrub(
                &format!("{}: request failed: {detail}", self.provider),
                secrets,
            ),
        )
    }

    /// Reads at most `limit` bytes of a body, within the idle timeout per
    /// chunk; what could not be read is left out.
    pub(crate) async fn read_limited(&self, response: reqwest::Response, limit: usize) -> Vec<u8> {
        let mut body = Vec::new();
        let mut chunks = response.bytes_stream();
        while body.len() < limit {
            match tokio::time::timeout(self.timeouts.idle, chunks.next()).await {
                Ok(Some(Ok(chunk))) => {
                    body.extend_from_slice(&chunk[..chunk.len().min(limit - body.len())]);
                }
                _ => break,
            }
        }
        body
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The secret values in `headers` (sensitive ones, and a bearer's token).
fn secrets_of(headers: &HeaderMap) -> Vec<String> {
    let mut secrets = Vec::new();
    for (name, value) in headers {
        if (value.is_sensitive() || SECRET_HEADERS.contains(&name.as_str()))
            && let Ok(text) = value.to_str()
        {
            if let Some(token) = text.strip_prefix("Bearer ") {
                secrets.push(token.to_owned());
            }
            secrets.push(text.to_owned());
        }
    }
    secrets
}

/// Request headers, built without ever showing a secret value in an error.
#[derive(Debug, Default)]
pub(crate) struct Headers {
    map: HeaderMap,
    invalid: Option<String>,
}

impl Headers {
    /// No headers.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Adds a plain header.
    pub(crate) fn header(self, name: &str, value: &str) -> Self {
        self.insert(name, value, false)
    }

    /// Adds a header whose value is a secret: marked sensitive and
    /// scrubbed from error messages.
    pub(crate) fn secret(self, name: &str, value: &str) -> Self {
        self.insert(name, value, true)
    }

    /// Adds `Authorization: Bearer <token>`.
    pub(crate) fn bearer(self, token: &Secret) -> Self {
        self.secret("authorization", &format!("Bearer {}", token.expose()))
    }

    /// Adds a config's extra headers. An extra header carrying a
    /// well-known key name is treated as a secret.
    pub(crate) fn extra(mut self, headers: &[(String, String)]) -> Self {
        for (name, value) in headers {
            let secret = SECRET_HEADERS.contains(&name.to_ascii_lowercase().as_str());
            self = self.insert(name, value, secret);
        }
        self
    }

    /// The headers, or `INVALID_REQUEST` naming the first invalid one
    /// (never its value).
    pub(crate) fn build(self) -> Result<HeaderMap, ProviderError> {
        match self.invalid {
            Some(name) => Err(ProviderError::new(
                ErrorCode::InvalidRequest,
                format!("invalid value for header `{name}`"),
            )),
            None => Ok(self.map),
        }
    }

    fn insert(mut self, name: &str, value: &str, secret: bool) -> Self {
        if self.invalid.is_some() {
            return self;
        }
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            (Ok(name), Ok(mut value)) => {
                value.set_sensitive(secret);
                self.map.append(name, value);
            }
            _ => self.invalid = Some(name.to_owned()),
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_mark_secrets_and_never_show_them() {
        let key = Secret::from("sk-secret\n");
        let error = Headers::new().bearer(&key).build().unwrap_err();
        assert!(!error.message.contains("sk-secret"), "{}", error.message);
        assert_eq!(error.code, ErrorCode::InvalidRequest);

        let headers = Headers::new()
            .bearer(&Secret::from("sk-good"))
            .extra(&[
                ("X-Api-Key".into(), "k2-abcd".into()),
                ("x-trace".into(), "t".into()),
            ])
            .build()
            .unwrap();
        assert!(headers["authorization"].is_sensitive());
        assert!(headers["x-api-key"].is_sensitive());
        assert!(!headers["x-trace"].is_sensitive());
        let secrets = secrets_of(&headers);
        assert!(secrets.contains(&"sk-good".to_owned()));
        assert!(secrets.contains(&"k2-abcd".to_owned()));
    }
}
