//! The client side: [`GrpcConnector`].

mod pipe;

use std::error::Error as _;
use std::io;

use async_trait::async_trait;
use gtl_proto::DEFAULT_MAX_FRAME_BYTES;
use gtl_transport::{Connection, Connector, PeerInfo, TransportError};
use http::Uri;
use tonic::transport::Endpoint;

/// Opens GTL connections to `grpc://host:port` (HTTP/2 in cleartext, prior
/// knowledge) or, with the `tls` feature, `grpcs://host:port`.
///
/// Each [`connect`](Connector::connect) opens a new HTTP/2 connection and
/// one `gtl.v1.Gtl/Pipe` RPC on it, and returns it as a framed
/// [`Connection`]: what is written goes out as the RPC's request messages,
/// what the gateway answers is read back, one [`Frame`](gtl_proto::Frame)
/// per gRPC message. The handshake runs over the RPC like on any stream
/// transport: `hello` first, `welcome` back.
///
/// The RPC starts when the first frame is flushed, so that a `hello` can
/// set its metadata: the hello's token travels as `authorization: Bearer
/// <token>` (and is taken out of the hello itself), its versions as
/// `gtl-version`.
///
/// # Errors while connected
///
/// - When the gateway fails the RPC with a GTL error (its status carries
///   `gtl-error-code`, e.g. `UNAUTHENTICATED` for a refused credential), the
///   reading half yields that error as an `error` frame with `call_id` 0 —
///   what a framed gateway sends before it closes — then the end of the
///   stream.
/// - Any other failure (the server went away, the connection was reset, a
///   gRPC status from a proxy or from the HTTP/2 layer) is a
///   [`TransportError::Io`]: the connection is cut, and a client resumes
///   its calls elsewhere.
/// - A frame larger than the limit is a
///   [recoverable](TransportError::is_recoverable) `FRAME_TOO_LARGE` codec
///   error, on either half, as on byte streams; one over
///   [`SKIP_LIMIT_FACTOR`](gtl_proto::SKIP_LIMIT_FACTOR) times the limit fails the RPC.
///
/// # Example
///
/// ```no_run
/// use gtl_proto::{Body, Frame, Hello, ModelsRequest};
/// use gtl_transport::{Connector as _, client_handshake};
/// use gtl_transport_grpc::GrpcConnector;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let connector = GrpcConnector::new("grpc://127.0.0.1:7300")?;
/// let mut conn = connector.connect().await?;
/// let hello = Hello {
///     encodings: conn.encodings.iter().map(|e| *e as i32).collect(),
///     ..Hello::default()
/// };
/// let welcome = client_handshake(&mut conn, hello).await?;
/// println!("{} speaks GTL {}", welcome.server, welcome.version);
///
/// let list = Frame::control(1, Body::ModelsRequest(ModelsRequest::default()));
/// conn.write.write_frame(list.as_ref())?;
/// conn.write.flush().await?;
/// while let Some(frame) = conn.read.read_frame().await? {
///     match frame.body {
///         Some(Body::ProviderInfo(info)) => println!("{}", info.provider),
///         _ => break,
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct GrpcConnector {
    /// The URL as [`endpoint`](Connector::endpoint) reports it.
    url: String,
    /// `host:port`, for the connection's [`PeerInfo`].
    authority: String,
    same_host: bool,
    endpoint: Endpoint,
    max_frame_bytes: usize,
}

impl std::fmt::Debug for GrpcConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcConnector")
            .field("url", &self.url)
            .field("max_frame_bytes", &self.max_frame_bytes)
            .finish_non_exhaustive()
    }
}

impl GrpcConnector {
    /// A connector for `url`: `grpc://host[:port]`, or `grpcs://…` when the
    /// crate's `tls` feature is on (the server's certificate is checked
    /// against the system's roots). The port defaults to 80 (`grpc`) or 443
    /// (`grpcs`); a GTL gateway serves gRPC on its HTTP port, 7300 by
    /// default. The URL has no path: the RPC's path is fixed.
    pub fn new(url: &str) -> Result<Self, TransportError> {
        let invalid = |reason: &str| TransportError::Endpoint {
            endpoint: url.to_owned(),
            reason: reason.to_owned(),
        };
        let uri: Uri = url.trim().parse().map_err(|_| invalid("not a URL"))?;
        let secure = match uri.scheme_str() {
            Some("grpc") => false,
            Some("grpcs") if cfg!(feature = "tls") => true,
            Some("grpcs") => return Err(invalid("grpcs:// needs the `tls` feature")),
            _ => return Err(invalid("expected grpc:// or grpcs://")),
        };
        let authority = uri.authority().ok_or_else(|| invalid("no host"))?;
        if authority.host().is_empty() {
            return Err(invalid("no host"));
        }
        if authority.as_str().contains('@') {
            return Err(invalid(
                "credentials do not go in the URL: the hello's token is sent as metadata",
            ));
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(invalid(
                "a gRPC URL has no path: the RPC is always /gtl.v1.Gtl/Pipe",
            ));
        }
        let host = authority.host();
        let port = authority
            .port_u16()
            .unwrap_or(if secure { 443 } else { 80 });
        let authority = format!("{host}:{port}");
        let (scheme, http_scheme) = if secure {
            ("grpcs", "https")
        } else {
            ("grpc", "http")
        };
        let endpoint = Endpoint::from_shared(format!("{http_scheme}://{authority}"))
            .map_err(|e| invalid(&e.to_string()))?;
        #[cfg(feature = "tls")]
        let endpoint = if secure {
            tls::system_roots(endpoint).map_err(|e| invalid(&e))?
        } else {
            endpoint
        };
        // An IPv6 host keeps its brackets in `host`.
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let same_host = bare == "localhost"
            || bare
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        Ok(Self {
            url: format!("{scheme}://{authority}"),
            authority,
            same_host,
            endpoint,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
        })
    }

    /// Sets the largest frame sent or accepted (default
    /// [`DEFAULT_MAX_FRAME_BYTES`]). A larger frame is refused with a
    /// recoverable `FRAME_TOO_LARGE` error and the connection goes on; a
    /// gRPC message over [`SKIP_LIMIT_FACTOR`](gtl_proto::SKIP_LIMIT_FACTOR) times the limit fails the
    /// RPC.
    pub fn with_max_frame_bytes(mut self, max: usize) -> Self {
        self.max_frame_bytes = max;
        self
    }

    /// Trusts the certificates of this PEM bundle instead of the system's
    /// roots for `grpcs://` (e.g. a private CA, or a self-signed server
    /// certificate). A `grpc://` connector has no use for them and ignores
    /// them.
    #[cfg(feature = "tls")]
    pub fn with_ca_certificates(mut self, pem: &[u8]) -> Result<Self, TransportError> {
        if self.url.starts_with("grpcs:") {
            self.endpoint =
                tls::ca_certificates(self.endpoint, pem).map_err(|e| TransportError::Endpoint {
                    endpoint: self.url.clone(),
                    reason: format!("unusable CA certificates: {}", error_chain(&e)),
                })?;
        }
        Ok(self)
    }
}

#[async_trait]
impl Connector for GrpcConnector {
    async fn connect(&self) -> Result<Connection, TransportError> {
        let channel = self.endpoint.connect().await.map_err(connect_error)?;
        let peer = PeerInfo::new("grpc", self.authority.clone()).with_same_host(self.same_host);
        Ok(pipe::connection(channel, peer, self.max_frame_bytes))
    }

    fn endpoint(&self) -> String {
        self.url.clone()
    }
}

/// A failed connection attempt: refused, unreachable, or a failed TLS or
/// HTTP/2 handshake. tonic's error says only "transport error"; the kind
/// and the words come from its sources.
fn connect_error(e: tonic::transport::Error) -> TransportError {
    let mut kind = io::ErrorKind::Other;
    let mut source = e.source();
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<io::Error>() {
            kind = io.kind();
            break;
        }
        source = cause.source();
    }
    TransportError::Io(io::Error::new(kind, error_chain(&e)))
}

/// An error and its sources, `: `-separated.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Wrappers often repeat their source's words.
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(feature = "tls")]
mod tls {
    use std::sync::Arc;

    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Error};

    use super::error_chain;

    /// TLS with the `ring` provider, trusting the system's roots through the
    /// platform verifier, as `wss://` does.
    pub(super) fn system_roots(endpoint: Endpoint) -> Result<Endpoint, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls_platform_verifier::Verifier::new(provider)
            .map_err(|e| format!("no TLS verifier: {}", error_chain(&e)))?;
        endpoint
            .tls_config_with_verifier(ClientTlsConfig::new(), Arc::new(verifier))
            .map_err(|e| error_chain(&e))
    }

    /// TLS trusting only the certificates of a PEM bundle.
    pub(super) fn ca_certificates(endpoint: Endpoint, pem: &[u8]) -> Result<Endpoint, Error> {
        endpoint.tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_host_and_port() {
        let c = GrpcConnector::new("grpc://127.0.0.1:7300").unwrap();
        assert_eq!(c.endpoint(), "grpc://127.0.0.1:7300");
        assert!(c.same_host);
        let c = GrpcConnector::new(" grpc://gateway.internal/ ").unwrap();
        assert_eq!(c.endpoint(), "grpc://gateway.internal:80");
        assert!(!c.same_host);
        let c = GrpcConnector::new("grpc://[::1]:9").unwrap();
        assert_eq!(c.endpoint(), "grpc://[::1]:9");
        assert_eq!(c.authority, "[::1]:9");
        assert!(c.same_host);
        assert!(GrpcConnector::new("grpc://localhost:1").unwrap().same_host);
    }

    #[test]
    fn other_urls_are_refused() {
        for (url, hint) in [
            ("http://h:1", "expected grpc://"),
            ("tcp://h:1", "expected grpc://"),
            ("h:1", "expected grpc://"),
            ("grpc:///path", "not a URL"),
            ("grpc://:7300", "no host"),
            ("grpc://h:1/gtl.v1.Gtl/Pipe", "no path"),
            ("grpc://h:1/?x=1", "no path"),
            ("grpc://user:secret@h:1", "credentials"),
        ] {
            let err = GrpcConnector::new(url).unwrap_err();
            assert!(
                matches!(&err, TransportError::Endpoint { reason, .. } if reason.contains(hint)),
                "{url}: {err}"
            );
        }
    }

    #[cfg(not(feature = "tls"))]
    #[test]
    fn grpcs_needs_the_tls_feature() {
        let err = GrpcConnector::new("grpcs://h:1").unwrap_err();
        assert!(err.to_string().contains("`tls` feature"), "{err}");
    }

    #[cfg(feature = "tls")]
    #[test]
    fn grpcs_defaults_to_port_443() {
        let c = GrpcConnector::new("grpcs://example.invalid").unwrap();
        assert_eq!(c.endpoint(), "grpcs://example.invalid:443");
    }
}
