//! The client side: [`QuicConnector`] opens `quic://` connections.

use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use gtl_transport::{Connection, Connector, PeerInfo, TransportError};
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::CertificateDer;

use crate::QuicError;
use crate::tls::{PinnedCert, client_crypto, platform_verifier, roots_verifier};

/// Opens GTL connections to `quic://host[:port]`.
///
/// The server is trusted as the system's roots say, unless
/// [`with_roots`](Self::with_roots) names the CAs to trust or
/// [`with_cert_sha256`](Self::with_cert_sha256) pins its certificate.
#[derive(Clone)]
pub struct QuicConnector {
    url: String,
    host: String,
    port: u16,
    verifier: Arc<dyn ServerCertVerifier>,
    endpoint: Option<quinn::Endpoint>,
}

impl std::fmt::Debug for QuicConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuicConnector")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl QuicConnector {
    /// A connector for `quic://host[:port]` (port 7302 when not given),
    /// trusting the system's roots, or, with `?cert_sha256=HEX`, exactly
    /// the certificate with that SHA-256 (64 hex digits).
    pub fn new(url: &str) -> Result<Self, QuicError> {
        let invalid = |reason: &str| QuicError::Endpoint {
            endpoint: url.to_owned(),
            reason: reason.to_owned(),
        };
        let rest = url
            .strip_prefix("quic://")
            .ok_or_else(|| invalid("expected quic://HOST[:PORT]"))?;
        let (rest, pin) = match rest.split_once('?') {
            Some((rest, query)) => {
                let hex = query
                    .strip_prefix("cert_sha256=")
                    .ok_or_else(|| invalid("the only query parameter is cert_sha256=HEX"))?;
                let pin = parse_sha256(hex)
                    .ok_or_else(|| invalid("cert_sha256 must be 64 hex digits"))?;
                (rest, Some(pin))
            }
            None => (rest, None),
        };
        let authority = rest.trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') {
            return Err(invalid(
                "expected quic://HOST[:PORT], e.g. quic://127.0.0.1:7302",
            ));
        }
        let (host, port) = split_host_port(authority).ok_or_else(|| invalid("bad port"))?;
        let verifier = match pin {
            Some(pin) => Arc::new(PinnedCert::new(pin)) as Arc<dyn ServerCertVerifier>,
            None => platform_verifier()?,
        };
        Ok(Self {
            url: url.to_owned(),
            host,
            port,
            verifier,
            endpoint: None,
        })
    }

    /// Trusts certificates issued by `roots` instead of the system's.
    pub fn with_roots(mut self, roots: Vec<CertificateDer<'static>>) -> Result<Self, QuicError> {
        self.verifier = roots_verifier(roots)?;
        Ok(self)
    }

    /// Trusts exactly the certificate whose SHA-256 is `sha256` (see
    /// [`cert_sha256`](crate::cert_sha256)), whatever its name or issuer,
    /// while it is within its validity period.
    pub fn with_cert_sha256(mut self, sha256: [u8; 32]) -> Self {
        self.verifier = Arc::new(PinnedCert::new(sha256));
        self
    }

    /// Pins the certificate in the PEM file at `path`, e.g. a local
    /// gtl-server's `<data dir>/tls/cert.pem`.
    pub fn with_pinned_cert_file(self, path: &std::path::Path) -> Result<Self, QuicError> {
        use rustls::pki_types::pem::PemObject as _;
        let cert = CertificateDer::from_pem_file(path).map_err(|e| QuicError::Endpoint {
            endpoint: self.url.clone(),
            reason: format!("cannot read the certificate {}: {e}", path.display()),
        })?;
        let sha256 = crate::cert_sha256(&cert);
        Ok(self.with_cert_sha256(sha256))
    }

    /// Whether the URL pins a certificate itself (`?cert_sha256=`).
    pub fn is_pinned(&self) -> bool {
        self.url.contains("?cert_sha256=")
    }

    /// Whether the host is this machine (`localhost` or a loopback
    /// address).
    pub fn is_loopback(&self) -> bool {
        self.host == "localhost"
            || self
                .host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }

    /// Connects from `endpoint` (its UDP socket) instead of a new one per
    /// connection: connections can share a socket, and whoever holds the
    /// endpoint can move it to another address
    /// ([`quinn::Endpoint::rebind`]) while its calls go on.
    pub fn with_endpoint(mut self, endpoint: quinn::Endpoint) -> Self {
        self.endpoint = Some(endpoint);
        self
    }

    async fn open(&self) -> Result<Connection, TransportError> {
        let endpoint_error = |reason: String| TransportError::Endpoint {
            endpoint: self.url.clone(),
            reason,
        };
        let addr = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await?
            .next()
            .ok_or_else(|| endpoint_error(format!("`{}` has no address", self.host)))?;
        let crypto =
            client_crypto(self.verifier.clone()).map_err(|e| endpoint_error(e.to_string()))?;
        let mut config = quinn::ClientConfig::new(Arc::new(crypto));
        config.transport_config(Arc::new(crate::transport_config(0)));
        let endpoint = match &self.endpoint {
            Some(endpoint) => endpoint.clone(),
            None => {
                let bind: SocketAddr = if addr.is_ipv6() {
                    "[::]:0".parse().expect("literal")
                } else {
                    "0.0.0.0:0".parse().expect("literal")
                };
                quinn::Endpoint::client(bind)?
            }
        };
        let connecting = endpoint
            .connect_with(config, addr, &self.host)
            .map_err(|e| endpoint_error(e.to_string()))?;
        let connection = connecting.await.map_err(connection_error)?;
        let (send, recv) = connection.open_bi().await.map_err(connection_error)?;
        let peer = PeerInfo::new("quic", addr.to_string()).with_same_host(addr.ip().is_loopback());
        Ok(crate::mux::connection(
            endpoint, connection, send, recv, peer,
        ))
    }
}

#[async_trait]
impl Connector for QuicConnector {
    async fn connect(&self) -> Result<Connection, TransportError> {
        self.open().await
    }

    fn endpoint(&self) -> String {
        self.url.clone()
    }
}

/// A SHA-256 written as 64 hex digits (either case, `:` separators
/// allowed, as certificate tools print fingerprints).
pub(crate) fn parse_sha256(hex: &str) -> Option<[u8; 32]> {
    let digits: Vec<u8> = hex.bytes().filter(|b| *b != b':').collect();
    if digits.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in digits.chunks_exact(2).enumerate() {
        let text = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}

/// `host:port`, `[v6]:port` or a host alone (the default port).
fn split_host_port(authority: &str) -> Option<(String, u16)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(port) => port.parse().ok()?,
            None if after.is_empty() => crate::DEFAULT_PORT,
            None => return None,
        };
        return Some((host.to_owned(), port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Some((host.to_owned(), port.parse().ok()?)),
        None => Some((authority.to_owned(), crate::DEFAULT_PORT)),
    }
}

/// A failed QUIC connection as a transport error: a refusal by the peer's
/// TLS (wrong pin, expired certificate) says so.
pub(crate) fn connection_error(e: impl Into<quinn::ConnectionError>) -> TransportError {
    let e = e.into();
    TransportError::Io(std::io::Error::new(
        std::io::ErrorKind::ConnectionAborted,
        e,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_give_host_and_port() {
        assert_eq!(
            split_host_port("127.0.0.1:9"),
            Some(("127.0.0.1".into(), 9))
        );
        assert_eq!(
            split_host_port("example.org"),
            Some(("example.org".into(), 7302))
        );
        assert_eq!(split_host_port("[::1]:7"), Some(("::1".into(), 7)));
        assert_eq!(split_host_port("[::1]"), Some(("::1".into(), 7302)));
        assert_eq!(split_host_port("h:port"), None);
        assert!(QuicConnector::new("tcp://127.0.0.1:1").is_err());
        assert!(QuicConnector::new("quic://").is_err());
        assert!(QuicConnector::new("quic://h:1/path").is_err());
        let hex = "ab".repeat(32);
        assert!(QuicConnector::new(&format!("quic://h:1?cert_sha256={hex}")).is_ok());
        assert!(QuicConnector::new("quic://h:1?cert_sha256=abc").is_err());
        assert!(QuicConnector::new("quic://h:1?pin=x").is_err());
        assert_eq!(
            parse_sha256("0A:".repeat(32).trim_end_matches(':')),
            Some([10; 32])
        );
    }
}
