//! The client side: [`WsConnector`].

#[cfg(feature = "tls")]
use std::sync::Arc;

use async_trait::async_trait;
use gtl_proto::DEFAULT_MAX_FRAME_BYTES;
use gtl_transport::{Connection, Connector, PeerInfo, TransportError};
use http::Uri;
use http::header::{HeaderValue, SEC_WEBSOCKET_PROTOCOL};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

use crate::{DEFAULT_PATH, SUBPROTOCOL, connection, websocket_config};

/// Opens GTL connections to `ws://host:port/path` (or `wss://` with the
/// `tls` feature), offering the `gtl.v1` subprotocol.
#[derive(Clone)]
pub struct WsConnector {
    uri: Uri,
    host: String,
    port: u16,
    max_frame_bytes: usize,
    #[cfg(feature = "tls")]
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for WsConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsConnector")
            .field("uri", &self.uri)
            .field("max_frame_bytes", &self.max_frame_bytes)
            .finish_non_exhaustive()
    }
}

impl WsConnector {
    /// A connector for `url`: `ws://host[:port][/path]`, or `wss://…` when
    /// the crate's `tls` feature is on (the server's certificate is checked
    /// against the system's roots). Without a path the path is
    /// [`DEFAULT_PATH`]; the port defaults to 80 (`ws`) or 443 (`wss`).
    pub fn new(url: &str) -> Result<Self, TransportError> {
        let invalid = |reason: &str| TransportError::Endpoint {
            endpoint: url.to_owned(),
            reason: reason.to_owned(),
        };
        let uri: Uri = url.parse().map_err(|_| invalid("not a URL"))?;
        let secure = match uri.scheme_str() {
            Some("ws") => false,
            Some("wss") if cfg!(feature = "tls") => true,
            Some("wss") => return Err(invalid("wss:// needs the `tls` feature")),
            _ => return Err(invalid("expected ws:// or wss://")),
        };
        let host = uri.host().ok_or_else(|| invalid("no host"))?;
        // rustls and `TcpStream::connect` want an IPv6 host without brackets.
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
        let path = match uri.path_and_query().map(|p| p.as_str()) {
            None | Some("" | "/") => DEFAULT_PATH,
            Some(path) => path,
        };
        let authority = uri.authority().ok_or_else(|| invalid("no host"))?;
        let uri = Uri::builder()
            .scheme(uri.scheme_str().unwrap_or("ws"))
            .authority(authority.as_str())
            .path_and_query(path)
            .build()
            .map_err(|e| invalid(&e.to_string()))?;
        Ok(Self {
            uri,
            host,
            port,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            #[cfg(feature = "tls")]
            tls: if secure {
                Some(tls::default_config().map_err(|e| invalid(&e.to_string()))?)
            } else {
                None
            },
        })
    }

    /// Sets the largest message accepted from the server (default
    /// [`DEFAULT_MAX_FRAME_BYTES`]). A larger one is refused from its
    /// header: `FRAME_TOO_LARGE`, then the end of the stream, and `close`
    /// sends 1009.
    pub fn with_max_frame_bytes(mut self, max: usize) -> Self {
        self.max_frame_bytes = max;
        self
    }

    /// Uses this TLS configuration for `wss://` instead of one trusting the
    /// system's roots (e.g. to trust a private CA). Build it with the `ring`
    /// provider; its ALPN list should be empty or `http/1.1`. A `ws://`
    /// connector has no use for it and ignores it.
    #[cfg(feature = "tls")]
    pub fn with_tls_config(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        if self.tls.is_some() {
            self.tls = Some(config);
        }
        self
    }

    /// Runs the opening handshake over `io` and frames the result.
    async fn handshake<S>(&self, io: S, peer: PeerInfo) -> Result<Connection, TransportError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let mut request = self
            .uri
            .clone()
            .into_client_request()
            .map_err(handshake_error)?;
        request.headers_mut().insert(
            SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(SUBPROTOCOL),
        );
        let config = websocket_config(self.max_frame_bytes);
        let (ws, _response) =
            tokio_tungstenite::client_async_with_config(request, io, Some(config))
                .await
                .map_err(handshake_error)?;
        Ok(connection(ws, peer, self.max_frame_bytes))
    }
}

/// A failed opening handshake: the server answered something other than
/// `101 Switching Protocols` (a 404 for a wrong path, a 401 …), or broke
/// the connection.
fn handshake_error(e: tokio_tungstenite::tungstenite::Error) -> TransportError {
    use tokio_tungstenite::tungstenite::Error;
    match e {
        Error::Io(e) => TransportError::Io(e),
        Error::Http(response) => TransportError::Io(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            format!("websocket upgrade refused: HTTP {}", response.status()),
        )),
        other => TransportError::Io(std::io::Error::other(format!(
            "websocket handshake failed: {other}"
        ))),
    }
}

#[async_trait]
impl Connector for WsConnector {
    async fn connect(&self) -> Result<Connection, TransportError> {
        let stream = TcpStream::connect((self.host.as_str(), self.port)).await?;
        stream.set_nodelay(true)?;
        let addr = stream.peer_addr()?;
        let peer = PeerInfo::new("ws", addr.to_string()).with_same_host(addr.ip().is_loopback());
        #[cfg(feature = "tls")]
        if let Some(config) = &self.tls {
            let stream = tls::connect(Arc::clone(config), &self.host, stream).await?;
            return self.handshake(stream, peer).await;
        }
        self.handshake(stream, peer).await
    }

    fn endpoint(&self) -> String {
        self.uri.to_string()
    }
}

#[cfg(feature = "tls")]
mod tls {
    use std::sync::Arc;

    use rustls::ClientConfig;
    use rustls::pki_types::ServerName;
    use rustls_platform_verifier::BuilderVerifierExt as _;
    use tokio::net::TcpStream;
    use tokio_rustls::client::TlsStream;

    /// TLS with the `ring` provider, trusting the system's roots.
    pub(super) fn default_config() -> Result<Arc<ClientConfig>, rustls::Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_platform_verifier()?
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    pub(super) async fn connect(
        config: Arc<ClientConfig>,
        host: &str,
        stream: TcpStream,
    ) -> std::io::Result<TlsStream<TcpStream>> {
        let name = ServerName::try_from(host.to_owned())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        tokio_rustls::TlsConnector::from(config)
            .connect(name, stream)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_defaults_to_the_gtl_route() {
        let c = WsConnector::new("ws://127.0.0.1:7302").unwrap();
        assert_eq!(c.endpoint(), "ws://127.0.0.1:7302/gtl/v1/ws");
        let c = WsConnector::new("ws://localhost/").unwrap();
        assert_eq!((c.host.as_str(), c.port), ("localhost", 80));
        assert_eq!(c.endpoint(), "ws://localhost/gtl/v1/ws");
        let c = WsConnector::new("ws://[::1]:9/other?x=1").unwrap();
        assert_eq!((c.host.as_str(), c.port), ("::1", 9));
        assert_eq!(c.endpoint(), "ws://[::1]:9/other?x=1");
    }

    #[test]
    fn other_schemes_are_refused() {
        for url in ["http://h/", "tcp://h:1", "h:1", "ws:///path"] {
            let err = WsConnector::new(url).unwrap_err();
            assert!(
                matches!(err, TransportError::Endpoint { .. }),
                "{url}: {err}"
            );
        }
    }

    #[cfg(feature = "tls")]
    #[test]
    fn wss_defaults_to_port_443() {
        let c = WsConnector::new("wss://example.invalid").unwrap();
        assert_eq!(c.port, 443);
        assert_eq!(c.endpoint(), "wss://example.invalid/gtl/v1/ws");
    }
}
