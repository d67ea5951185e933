//! The client side: [`QuicConnector`] opens `quic://` connections.

use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use gtl_transport::{Connection, Connector, PeerInfo, TransportError};
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::CertificateDer;

use crate::QuicError;
use crate::conn::Quic;
use crate::tls::{PinnedCert, client_crypto, platform_verifier, roots_verifier};

/// Where a connector goes and whom it trusts there, parsed from its URL:
/// `SCHEME://HOST[:PORT][/PATH][?cert_sha256=HEX]`.
#[derive(Clone)]
pub(crate) struct Target {
    pub(crate) url: String,
    pub(crate) host: String,
    pub(crate) port: u16,
    /// The path (WebTransport), or `None` for a scheme that takes none.
    #[cfg_attr(
        not(feature = "webtransport"),
        allow(dead_code, reason = "only WebTransport URLs have a path")
    )]
    pub(crate) path: Option<String>,
    pub(crate) verifier: Arc<dyn ServerCertVerifier>,
}

/// How a scheme's URLs look.
pub(crate) struct Scheme {
    /// `quic://`, `wt://`.
    pub(crate) prefix: &'static str,
    pub(crate) default_port: u16,
    /// The default path, for a scheme that takes one.
    pub(crate) default_path: Option<&'static str>,
    /// An example URL, for error messages.
    pub(crate) example: &'static str,
}

impl Target {
    /// Parses `url`, trusting the system's roots, or, with
    /// `?cert_sha256=HEX`, exactly the certificate with that SHA-256.
    pub(crate) fn parse(url: &str, scheme: &Scheme) -> Result<Self, QuicError> {
        let invalid = |reason: String| QuicError::Endpoint {
            endpoint: url.to_owned(),
            reason,
        };
        let shape = format!("expected {}, e.g. {}", scheme.prefix, scheme.example);
        let rest = url
            .strip_prefix(scheme.prefix)
            .ok_or_else(|| invalid(shape.clone()))?;
        let (rest, pin) = match rest.split_once('?') {
            Some((rest, query)) => {
                let hex = query
                    .strip_prefix("cert_sha256=")
                    .ok_or_else(|| invalid("the only query parameter is cert_sha256=HEX".into()))?;
                let pin = parse_sha256(hex)
                    .ok_or_else(|| invalid("cert_sha256 must be 64 hex digits".into()))?;
                (rest, Some(pin))
            }
            None => (rest, None),
        };
        let (authority, path) = match rest.find('/') {
            Some(slash) => (&rest[..slash], &rest[slash..]),
            None => (rest, ""),
        };
        let path = match scheme.default_path {
            Some(default) if path.is_empty() || path == "/" => Some(default.to_owned()),
            Some(_) => Some(path.to_owned()),
            None if path.is_empty() || path == "/" => None,
            None => return Err(invalid(shape)),
        };
        if authority.is_empty() {
            return Err(invalid(shape));
        }
        let (host, port) = split_host_port(authority, scheme.default_port)
            .ok_or_else(|| invalid("bad port".into()))?;
        let verifier = match pin {
            Some(pin) => Arc::new(PinnedCert::new(pin)) as Arc<dyn ServerCertVerifier>,
            None => platform_verifier()?,
        };
        Ok(Self {
            url: url.to_owned(),
            host,
            port,
            path,
            verifier,
        })
    }

    pub(crate) fn with_roots(
        mut self,
        roots: Vec<CertificateDer<'static>>,
    ) -> Result<Self, QuicError> {
        self.verifier = roots_verifier(roots)?;
        Ok(self)
    }

    pub(crate) fn with_trust(mut self, trust: &crate::Trust) -> Result<Self, QuicError> {
        self.verifier = trust.verifier()?;
        Ok(self)
    }

    pub(crate) fn with_cert_sha256(mut self, sha256: [u8; 32]) -> Self {
        self.verifier = Arc::new(PinnedCert::new(sha256));
        self
    }

    pub(crate) fn with_pinned_cert_file(self, path: &std::path::Path) -> Result<Self, QuicError> {
        use rustls::pki_types::pem::PemObject as _;
        let cert = CertificateDer::from_pem_file(path).map_err(|e| QuicError::Endpoint {
            endpoint: self.url.clone(),
            reason: format!("cannot read the certificate {}: {e}", path.display()),
        })?;
        let sha256 = crate::cert_sha256(&cert);
        Ok(self.with_cert_sha256(sha256))
    }

    pub(crate) fn is_pinned(&self) -> bool {
        self.url.contains("?cert_sha256=")
    }

    pub(crate) fn is_loopback(&self) -> bool {
        self.host == "localhost"
            || self
                .host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }

    /// The server's address.
    pub(crate) async fn resolve(&self) -> Result<SocketAddr, TransportError> {
        tokio::net::lookup_host((self.host.as_str(), self.port))
            .await?
            .next()
            .ok_or_else(|| TransportError::Endpoint {
                endpoint: self.url.clone(),
                reason: format!("`{}` has no address", self.host),
            })
    }
}

const QUIC: Scheme = Scheme {
    prefix: "quic://",
    default_port: crate::DEFAULT_PORT,
    default_path: None,
    example: "quic://127.0.0.1:7302",
};

/// Opens GTL connections to `quic://host[:port]`.
///
/// The server is trusted as the system's roots say, unless
/// [`with_roots`](Self::with_roots) names the CAs to trust or
/// [`with_cert_sha256`](Self::with_cert_sha256) pins its certificate.
#[derive(Clone)]
pub struct QuicConnector {
    target: Target,
    endpoint: Option<quinn::Endpoint>,
}

impl std::fmt::Debug for QuicConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuicConnector")
            .field("url", &self.target.url)
            .finish_non_exhaustive()
    }
}

impl QuicConnector {
    /// A connector for `quic://host[:port]` (port 7302 when not given),
    /// trusting the system's roots, or, with `?cert_sha256=HEX`, exactly
    /// the certificate with that SHA-256 (64 hex digits).
    pub fn new(url: &str) -> Result<Self, QuicError> {
        Ok(Self {
            target: Target::parse(url, &QUIC)?,
            endpoint: None,
        })
    }

    /// Trusts certificates issued by `roots` instead of the system's.
    pub fn with_roots(mut self, roots: Vec<CertificateDer<'static>>) -> Result<Self, QuicError> {
        self.target = self.target.with_roots(roots)?;
        Ok(self)
    }

    /// Trusts exactly the certificate whose SHA-256 is `sha256` (see
    /// [`cert_sha256`](crate::cert_sha256)), whatever its name or issuer,
    /// while it is within its validity period.
    pub fn with_cert_sha256(mut self, sha256: [u8; 32]) -> Self {
        self.target = self.target.with_cert_sha256(sha256);
        self
    }

    /// Pins the certificate in the PEM file at `path`, e.g. a local
    /// gtl-server's `<data dir>/tls/cert.pem`.
    pub fn with_pinned_cert_file(mut self, path: &std::path::Path) -> Result<Self, QuicError> {
        self.target = self.target.with_pinned_cert_file(path)?;
        Ok(self)
    }

    /// Trusts as `trust` says, instead of the URL's pin or the system's
    /// roots.
    pub fn with_trust(mut self, trust: &crate::Trust) -> Result<Self, QuicError> {
        self.target = self.target.with_trust(trust)?;
        Ok(self)
    }

    /// Whether the URL pins a certificate itself (`?cert_sha256=`).
    pub fn is_pinned(&self) -> bool {
        self.target.is_pinned()
    }

    /// Whether the host is this machine (`localhost` or a loopback
    /// address).
    pub fn is_loopback(&self) -> bool {
        self.target.is_loopback()
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
        let target = &self.target;
        let endpoint_error = |reason: String| TransportError::Endpoint {
            endpoint: target.url.clone(),
            reason,
        };
        let addr = target.resolve().await?;
        refuse_if_unbound(addr)?;
        let crypto =
            client_crypto(target.verifier.clone()).map_err(|e| endpoint_error(e.to_string()))?;
        let mut config = quinn::ClientConfig::new(Arc::new(crypto));
        config.transport_config(Arc::new(crate::transport_config(0)));
        let endpoint = match &self.endpoint {
            Some(endpoint) => endpoint.clone(),
            None => quinn::Endpoint::client(unspecified(addr))?,
        };
        let connecting = endpoint
            .connect_with(config, addr, &target.host)
            .map_err(|e| endpoint_error(e.to_string()))?;
        let connection = connecting.await.map_err(connection_error)?;
        let (send, recv) = connection.open_bi().await.map_err(connection_error)?;
        let peer = PeerInfo::new("quic", addr.to_string()).with_same_host(addr.ip().is_loopback());
        let connection = Quic {
            connection,
            endpoint: Some(endpoint),
        };
        Ok(crate::mux::connection(connection, send, recv, peer))
    }
}

/// The any-address of `addr`'s family, port 0: where a client binds.
pub(crate) fn unspecified(addr: SocketAddr) -> SocketAddr {
    if addr.is_ipv6() {
        "[::]:0".parse().expect("literal")
    } else {
        "0.0.0.0:0".parse().expect("literal")
    }
}

#[async_trait]
impl Connector for QuicConnector {
    async fn connect(&self) -> Result<Connection, TransportError> {
        self.open().await
    }

    fn endpoint(&self) -> String {
        self.target.url.clone()
    }
}

/// Fails at once when `addr` is on this host and nothing is bound to its
/// UDP port: a handshake there would wait for its timeout, since QUIC
/// hears no refusal. (A stopped local gateway then fails like a closed TCP
/// port, and a list of endpoints moves on without a pause.)
pub(crate) fn refuse_if_unbound(addr: SocketAddr) -> Result<(), TransportError> {
    if addr.ip().is_loopback() && gtl_transport::peer_uid::udp_port_bound(addr) == Some(false) {
        return Err(TransportError::Io(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            format!("nothing listens on UDP port {} of this host", addr.port()),
        )));
    }
    Ok(())
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

/// `host:port`, `[v6]:port` or a host alone (`default_port`).
fn split_host_port(authority: &str, default_port: u16) -> Option<(String, u16)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(port) => port.parse().ok()?,
            None if after.is_empty() => default_port,
            None => return None,
        };
        return Some((host.to_owned(), port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Some((host.to_owned(), port.parse().ok()?)),
        None => Some((authority.to_owned(), default_port)),
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
            split_host_port("127.0.0.1:9", 7302),
            Some(("127.0.0.1".into(), 9))
        );
        assert_eq!(
            split_host_port("example.org", 7302),
            Some(("example.org".into(), 7302))
        );
        assert_eq!(split_host_port("[::1]:7", 7302), Some(("::1".into(), 7)));
        assert_eq!(split_host_port("[::1]", 7302), Some(("::1".into(), 7302)));
        assert_eq!(split_host_port("h:port", 7302), None);
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
