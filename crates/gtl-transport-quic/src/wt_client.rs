//! The WebTransport client: [`WtConnector`] opens `wt://` sessions and
//! presents them, like [`QuicConnector`](crate::QuicConnector) does native
//! QUIC connections, as one multiplexed
//! [`Connection`](gtl_transport::Connection).

use std::sync::Arc;

use async_trait::async_trait;
use gtl_transport::{Connection, Connector, PeerInfo, TransportError};
use rustls::pki_types::CertificateDer;

use crate::QuicError;
use crate::client::{Scheme, Target, unspecified};
use crate::conn::{WebTransport, aborted};

const WT: Scheme = Scheme {
    prefix: "wt://",
    default_port: crate::WT_DEFAULT_PORT,
    default_path: Some(crate::WT_PATH),
    example: "wt://127.0.0.1:7300/gtl/v1/wt",
};

/// Opens GTL connections over WebTransport to
/// `wt://host[:port][/path][?cert_sha256=HEX]`: an HTTP/3 `CONNECT` to
/// `https://host:port/path` (port 7300 and path `/gtl/v1/wt` when not
/// given), then the same streams as `quic://`.
///
/// The server is trusted as the system's roots say, unless
/// [`with_roots`](Self::with_roots) names the CAs to trust or the URL's
/// `cert_sha256` (or [`with_cert_sha256`](Self::with_cert_sha256)) pins its
/// certificate, as a browser's `serverCertificateHashes` does.
#[derive(Clone)]
pub struct WtConnector {
    target: Target,
    origin: Option<String>,
}

impl std::fmt::Debug for WtConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WtConnector")
            .field("url", &self.target.url)
            .finish_non_exhaustive()
    }
}

impl WtConnector {
    /// A connector for `wt://host[:port][/path]`, trusting the system's
    /// roots, or, with `?cert_sha256=HEX`, exactly the certificate with that
    /// SHA-256 (64 hex digits).
    pub fn new(url: &str) -> Result<Self, QuicError> {
        Ok(Self {
            target: Target::parse(url, &WT)?,
            origin: None,
        })
    }

    /// Trusts certificates issued by `roots` instead of the system's.
    pub fn with_roots(mut self, roots: Vec<CertificateDer<'static>>) -> Result<Self, QuicError> {
        self.target = self.target.with_roots(roots)?;
        Ok(self)
    }

    /// Trusts exactly the certificate whose SHA-256 is `sha256`, whatever
    /// its name or issuer, while it is within its validity period.
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

    /// Sends `origin` as the `CONNECT`'s `Origin` header, as a browser
    /// sends its page's.
    pub fn with_origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = Some(origin.into());
        self
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

    /// The `https://` URL of the WebTransport session.
    pub fn session_url(&self) -> String {
        let host = &self.target.host;
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        let path = self.target.path.as_deref().unwrap_or(crate::WT_PATH);
        format!("https://{host}:{}{path}", self.target.port)
    }

    async fn open(&self) -> Result<Connection, TransportError> {
        let target = &self.target;
        let endpoint_error = |reason: String| TransportError::Endpoint {
            endpoint: target.url.clone(),
            reason,
        };
        let addr = target.resolve().await?;
        crate::client::refuse_if_unbound(addr)?;
        let tls =
            crate::tls::client_tls(target.verifier.clone(), wtransport::tls::WEBTRANSPORT_ALPN)
                .map_err(|e| endpoint_error(e.to_string()))?;
        let config = wtransport::ClientConfig::builder()
            .with_bind_address(unspecified(addr))
            .with_custom_tls_and_transport(tls, crate::h3_transport_config(0))
            .build();
        let endpoint = wtransport::Endpoint::client(config)?;
        let mut options = wtransport::endpoint::ConnectOptions::builder(self.session_url());
        if let Some(origin) = &self.origin {
            options = options.add_header("origin", origin);
        }
        let connection = endpoint
            .connect(options.build())
            .await
            .map_err(|e| TransportError::Io(aborted(e)))?;
        let connection = WebTransport {
            connection: Arc::new(connection),
            endpoint: Some(Arc::new(endpoint)),
        };
        let (send, recv) = crate::conn::BiStreams::open_bi(&connection).await?;
        let peer = PeerInfo::new("wt", addr.to_string()).with_same_host(addr.ip().is_loopback());
        Ok(crate::mux::connection(connection, send, recv, peer))
    }
}

#[async_trait]
impl Connector for WtConnector {
    async fn connect(&self) -> Result<Connection, TransportError> {
        self.open().await
    }

    fn endpoint(&self) -> String {
        self.target.url.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_give_the_session_url() {
        let hex = "ab".repeat(32);
        let pinned =
            WtConnector::new(&format!("wt://127.0.0.1:9/gtl/v1/wt?cert_sha256={hex}")).unwrap();
        assert!(pinned.is_pinned() && pinned.is_loopback());
        assert_eq!(pinned.session_url(), "https://127.0.0.1:9/gtl/v1/wt");
        let bare = WtConnector::new("wt://localhost").unwrap();
        assert_eq!(bare.session_url(), "https://localhost:7300/gtl/v1/wt");
        let v6 = WtConnector::new("wt://[::1]:7/x").unwrap();
        assert_eq!(v6.session_url(), "https://[::1]:7/x");
        assert!(WtConnector::new("quic://127.0.0.1:1").is_err());
        assert!(WtConnector::new("wt://").is_err());
        assert!(WtConnector::new("wt://h:1?cert_sha256=abc").is_err());
    }
}
