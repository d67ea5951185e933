//! The client side: [`HttpConnector`], a GTL connection carried by the
//! HTTP port's routes.

mod bridge;
mod call;
mod conn;
mod exchange;
mod mapping;

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use async_trait::async_trait;
use gtl_proto::{DEFAULT_MAX_FRAME_BYTES, Encoding};
use gtl_transport::{Connection, Connector, PeerInfo, TransportError};
use tokio::sync::mpsc;

use self::bridge::{Bridge, READER_QUEUE, WRITER_QUEUE};
use self::conn::{BridgeRead, BridgeWrite};
use self::exchange::{ClientConfig, Origin, Requester};

/// Opens GTL connections to a gateway's HTTP port: `sse://host:port` or
/// `http://host:port` (the same: plain HTTP; `sse://` is the seeds' name
/// for it), or `https://host:port` with the `tls` feature.
///
/// HTTP has no connection that carries frames both ways, so the
/// [`Connection`] returned is a bridge: a task that turns each frame the
/// client writes into a request on the port's routes and each answer back
/// into the frames a framed server sends, with the request's `call_id`
/// (docs/protocol.md §13.6):
///
/// | frame written | request | frames read |
/// |---|---|---|
/// | `hello` | `POST /gtl/v1/hello` | the gateway's `welcome`, or its `error` |
/// | `completion_request` | `POST /gtl/v1/stream` | `accepted`, then every event, from the SSE stream |
/// | `resume` | `GET /gtl/v1/sessions/{id}/events`, `Last-Event-ID: <after_seq>`, `GTL-Resume-Token` | `accepted`, then the events after `after_seq` |
/// | `cancel`, `input` | `POST /gtl/v1/sessions/{id}/cancel` or `…/input`, `GTL-Resume-Token` | nothing, or an `error` |
/// | `models_request` | `GET /gtl/v1/models` | `provider_info` per provider, then `done` |
/// | `ping` | none | `pong` |
/// | `ack` | none | nothing |
///
/// `cancel` and `input` go to the session of the call with their
/// `call_id` (learnt from its `accepted`) unless the frame names a session
/// and token itself. An `ack` is dropped: the port has no ack route, and an
/// ack only lets a gateway forget events early (§8.8). After the `welcome`
/// every request carries `GTL-Version` with the negotiated version and, if
/// the `hello` had a token, `Authorization: Bearer <token>`.
///
/// An HTTP error answer is the `error` frame its body holds, for the
/// request's `call_id`. A request that gets no answer, an answer that is
/// not from a GTL gateway, and an event stream that breaks, or ends
/// anywhere but right after a terminal event (`done` or an `error` event),
/// fail the connection: the reading half returns the error, then
/// `Ok(None)`, and a client resumes its calls on a new connection. Closing the
/// writing half, or dropping the reading half, ends the connection and
/// every request in flight; their sessions wait for a resume, as after any
/// disconnect.
///
/// Calls run concurrently, each on its own request: over HTTP/1.1 a pool
/// of connections, over HTTP/2 (h2c with
/// [`with_http2_prior_knowledge`](Self::with_http2_prior_knowledge), or
/// negotiated on `https://`) streams of one. Each connection has its own
/// pool. Every queue is bounded: a reader that does not read stops the
/// streams, and HTTP's flow control the gateway.
///
/// # Example
///
/// ```no_run
/// use gtl_proto::{Body, Frame, ModelsRequest};
/// use gtl_transport::{Connector as _, client_handshake};
/// use gtl_transport_http::HttpConnector;
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let connector = HttpConnector::new("sse://127.0.0.1:7300")?;
/// let mut conn = connector.connect().await?;
/// let welcome = client_handshake(&mut conn, Default::default()).await?;
/// println!("{} speaks GTL {}", welcome.server, welcome.version);
///
/// let models = ModelsRequest { provider: String::new() };
/// conn.write.write_frame(Frame::control(1, Body::ModelsRequest(models)).as_ref())?;
/// conn.write.flush().await?;
/// while let Some(frame) = conn.read.read_frame().await? {
///     match frame.body {
///         Some(Body::ProviderInfo(info)) => println!("{}", info.provider),
///         _ => break, // `done`
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct HttpConnector {
    /// The URL as given, normalized.
    endpoint: String,
    config: ClientConfig,
    same_host: bool,
    max_frame_bytes: usize,
}

impl HttpConnector {
    /// A connector for `url`: `sse://host[:port][/prefix]`,
    /// `http://host[:port][/prefix]`, or `https://…` when the crate's `tls`
    /// feature is on (the gateway's certificate is checked against the
    /// system's roots). The port defaults to 80 (443 for `https`); a prefix
    /// reaches a gateway whose routes a reverse proxy serves under it.
    pub fn new(url: &str) -> Result<Self, TransportError> {
        let invalid = |reason: &str| TransportError::Endpoint {
            endpoint: url.to_owned(),
            reason: reason.to_owned(),
        };
        let uri: http::Uri = url.parse().map_err(|_| invalid("not a URL"))?;
        let secure = match uri.scheme_str() {
            Some("sse" | "http") => false,
            Some("https") if cfg!(feature = "tls") => true,
            Some("https") => return Err(invalid("https:// needs the `tls` feature")),
            _ => return Err(invalid("expected sse://, http:// or https://")),
        };
        let authority = uri.authority().ok_or_else(|| invalid("no host"))?.clone();
        if authority.host().is_empty() {
            return Err(invalid("no host"));
        }
        if authority.as_str().contains('@') {
            return Err(invalid(
                "credentials in the URL are not supported: give a token in the hello",
            ));
        }
        if uri.query().is_some() {
            return Err(invalid("a query string is not supported"));
        }
        let prefix = uri.path().trim_end_matches('/').to_owned();
        let scheme = if secure {
            http::uri::Scheme::HTTPS
        } else {
            http::uri::Scheme::HTTP
        };
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let same_host = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        let endpoint = format!(
            "{}://{authority}{prefix}",
            uri.scheme_str().unwrap_or("http")
        );
        Ok(Self {
            endpoint,
            config: ClientConfig {
                origin: Origin {
                    scheme,
                    authority,
                    prefix,
                },
                h2c: false,
                #[cfg(feature = "tls")]
                tls: if secure {
                    Some(exchange::default_tls().map_err(|e| invalid(&e.to_string()))?)
                } else {
                    None
                },
            },
            same_host,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
        })
    }

    /// Sets the largest frame written or read (default
    /// [`DEFAULT_MAX_FRAME_BYTES`]). A larger frame written is refused with
    /// `FRAME_TOO_LARGE`; an event line from the gateway over it fails the
    /// connection.
    pub fn with_max_frame_bytes(mut self, max: usize) -> Self {
        self.max_frame_bytes = max;
        self
    }

    /// Speaks HTTP/2 to an `http://` (or `sse://`) gateway without
    /// negotiating it first (h2c with prior knowledge, which GTL's HTTP
    /// port serves): every call is a stream of one TCP connection. The
    /// default is HTTP/1.1, a connection per call in flight, which every
    /// proxy forwards. `https://` negotiates HTTP/2 by ALPN and ignores
    /// this.
    pub fn with_http2_prior_knowledge(mut self) -> Self {
        self.config.h2c = true;
        self
    }

    /// Uses this TLS configuration for `https://` instead of one trusting
    /// the system's roots (e.g. to trust a private CA). Build it with the
    /// `ring` provider; its ALPN list is replaced with `h2` and `http/1.1`.
    /// A plain-HTTP connector has no use for it and ignores it.
    #[cfg(feature = "tls")]
    pub fn with_tls_config(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        if self.config.tls.is_some() {
            self.config.tls = Some(config);
        }
        self
    }
}

#[async_trait]
impl Connector for HttpConnector {
    /// Starts a bridge with a pool of its own. No request is made yet: the
    /// first is the `hello`, which is where an unreachable gateway shows.
    async fn connect(&self) -> Result<Connection, TransportError> {
        let (to_bridge, from_writer) = mpsc::channel(WRITER_QUEUE);
        let (to_reader, from_bridge) = mpsc::channel(READER_QUEUE);
        let max_frame_bytes = Arc::new(AtomicUsize::new(self.max_frame_bytes));
        let requester = Requester::new(&self.config);
        let bridge = Bridge::new(requester, max_frame_bytes.clone(), from_writer, to_reader);
        tokio::spawn(bridge.run());
        let transport = if self.config.origin.scheme == http::uri::Scheme::HTTPS {
            "https"
        } else {
            "http"
        };
        let peer = PeerInfo::new(transport, self.config.origin.authority.to_string())
            .with_same_host(self.same_host);
        Ok(Connection {
            read: Box::new(BridgeRead {
                from_bridge,
                max_frame_bytes,
            }),
            write: Box::new(BridgeWrite {
                to_bridge: Some(to_bridge),
                buffered: Vec::new(),
                buffered_bytes: 0,
                max_frame_bytes: self.max_frame_bytes,
            }),
            peer,
            encodings: vec![Encoding::Json],
        })
    }

    fn endpoint(&self) -> String {
        self.endpoint.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_and_http_are_plain_http_with_an_optional_prefix() {
        let c = HttpConnector::new("sse://127.0.0.1:7300").unwrap();
        assert_eq!(c.endpoint(), "sse://127.0.0.1:7300");
        assert_eq!(c.config.origin.scheme, http::uri::Scheme::HTTP);
        assert_eq!(c.config.origin.prefix, "");
        assert!(c.same_host);
        let c = HttpConnector::new("http://gateway.example:8080/gtl-proxy/").unwrap();
        assert_eq!(c.endpoint(), "http://gateway.example:8080/gtl-proxy");
        assert_eq!(c.config.origin.prefix, "/gtl-proxy");
        assert!(!c.same_host);
        let c = HttpConnector::new("http://[::1]:9").unwrap();
        assert_eq!(c.config.origin.authority.as_str(), "[::1]:9");
        assert!(c.same_host);
    }

    #[test]
    fn other_urls_are_refused() {
        for url in [
            "ws://h:1",
            "tcp://h:1",
            "h:1",
            "http:///path",
            "http://user:pw@h:1",
            "http://h:1/?x=1",
        ] {
            let err = HttpConnector::new(url).unwrap_err();
            assert!(
                matches!(err, TransportError::Endpoint { .. }),
                "{url}: {err}"
            );
        }
    }

    #[cfg(not(feature = "tls"))]
    #[test]
    fn https_needs_the_tls_feature() {
        let err = HttpConnector::new("https://h").unwrap_err();
        assert!(err.to_string().contains("`tls` feature"), "{err}");
    }

    #[cfg(feature = "tls")]
    #[test]
    fn https_is_tls() {
        let c = HttpConnector::new("https://example.invalid").unwrap();
        assert_eq!(c.config.origin.scheme, http::uri::Scheme::HTTPS);
        assert!(c.config.tls.is_some());
        assert_eq!(c.endpoint(), "https://example.invalid");
    }
}
