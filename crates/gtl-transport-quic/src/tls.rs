//! TLS for QUIC: TLS 1.3 only, ring only, ALPN `gtl/1`, and the ways a
//! client decides to trust a server (system roots, a CA file, or the
//! SHA-256 of the server's certificate).

use std::sync::Arc;

#[cfg(feature = "client")]
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
#[cfg(feature = "client")]
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::CertificateDer;
#[cfg(feature = "client")]
use rustls::pki_types::{ServerName, UnixTime};
#[cfg(feature = "client")]
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest as _, Sha256};

/// Setting up or using a QUIC endpoint failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QuicError {
    /// The certificate, key or trust settings are unusable.
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// The TLS settings do not suit QUIC (e.g. no TLS 1.3 cipher suite).
    #[error("TLS settings unusable for QUIC: {0}")]
    QuicTls(String),
    /// The endpoint URL or address is unusable.
    #[error("invalid QUIC endpoint `{endpoint}`: {reason}")]
    Endpoint {
        /// The endpoint as given.
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// The SHA-256 of a DER certificate: what `--cert-sha256` pins and what the
/// server logs at start.
pub fn cert_sha256(cert: &CertificateDer<'_>) -> [u8; 32] {
    Sha256::digest(cert.as_ref()).into()
}

pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS 1.3 server configuration (ring, no client certificates, no early
/// data) offering `alpn`: `gtl/1` for native QUIC, `h3` for WebTransport.
/// The certificate is `certificates`' at each handshake, so a server can
/// rotate it without a restart.
#[cfg(feature = "server")]
pub(crate) fn server_tls(
    certificates: Arc<dyn rustls::server::ResolvesServerCert>,
    alpn: &[u8],
) -> Result<rustls::ServerConfig, QuicError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_cert_resolver(certificates);
    config.alpn_protocols = vec![alpn.to_vec()];
    // 0-RTT stays off (rustls' default of no early data): a call is not
    // safe to replay.
    Ok(config)
}

/// [`server_tls`] as quinn takes it.
#[cfg(feature = "server")]
pub(crate) fn server_crypto(
    certificates: Arc<dyn rustls::server::ResolvesServerCert>,
    alpn: &[u8],
) -> Result<quinn::crypto::rustls::QuicServerConfig, QuicError> {
    let config = server_tls(certificates, alpn)?;
    quinn::crypto::rustls::QuicServerConfig::try_from(config)
        .map_err(|e| QuicError::QuicTls(e.to_string()))
}

/// One fixed certificate, as a resolver.
#[cfg(feature = "server")]
pub(crate) fn single_cert(
    cert_chain: Vec<CertificateDer<'static>>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
) -> Result<Arc<dyn rustls::server::ResolvesServerCert>, QuicError> {
    let certified = rustls::sign::CertifiedKey::from_der(cert_chain, key, &provider())?;
    Ok(Arc::new(rustls::sign::SingleCertAndKey::from(certified)))
}

/// A TLS 1.3 client configuration offering `alpn` that trusts as
/// `verifier` says.
#[cfg(feature = "client")]
pub(crate) fn client_tls(
    verifier: Arc<dyn ServerCertVerifier>,
    alpn: &[u8],
) -> Result<rustls::ClientConfig, QuicError> {
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(config)
}

/// A quinn client configuration for `gtl/1` that trusts as `verifier`
/// says.
#[cfg(feature = "client")]
pub(crate) fn client_crypto(
    verifier: Arc<dyn ServerCertVerifier>,
) -> Result<quinn::crypto::rustls::QuicClientConfig, QuicError> {
    let config = client_tls(verifier, crate::ALPN)?;
    quinn::crypto::rustls::QuicClientConfig::try_from(config)
        .map_err(|e| QuicError::QuicTls(e.to_string()))
}

/// Whom a TLS client trusts: what `--ca FILE` and `--cert-hash SHA256`
/// choose, for every TLS transport (QUIC, WebTransport, and TLS over TCP:
/// `tcps://`, `https://`, `wss://`).
#[cfg(feature = "client")]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Trust {
    /// The system's roots.
    #[default]
    System,
    /// Certificates issued by these CAs (`--ca FILE`).
    Roots(Vec<CertificateDer<'static>>),
    /// Exactly the certificate with this SHA-256, while it is valid
    /// (`--cert-hash`, `?cert_sha256=`).
    Sha256([u8; 32]),
}

#[cfg(feature = "client")]
impl Trust {
    /// The CA certificates of a PEM file.
    pub fn ca_file(path: &std::path::Path) -> Result<Self, QuicError> {
        use rustls::pki_types::pem::PemObject as _;
        let roots = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| QuicError::QuicTls(format!("{}: {e}", path.display())))?;
        if roots.is_empty() {
            return Err(QuicError::QuicTls(format!(
                "{}: no certificate in the file",
                path.display()
            )));
        }
        Ok(Self::Roots(roots))
    }

    /// A certificate's SHA-256 given as 64 hex digits (colons allowed).
    pub fn sha256_hex(hex: &str) -> Result<Self, QuicError> {
        let digits: String = hex.chars().filter(|c| *c != ':').collect();
        crate::client::parse_sha256(&digits)
            .map(Self::Sha256)
            .ok_or_else(|| QuicError::QuicTls("a certificate hash is 64 hex digits".into()))
    }

    pub(crate) fn verifier(&self) -> Result<Arc<dyn ServerCertVerifier>, QuicError> {
        match self {
            Self::System => platform_verifier(),
            Self::Roots(roots) => roots_verifier(roots.clone()),
            Self::Sha256(sha256) => Ok(Arc::new(PinnedCert::new(*sha256))),
        }
    }
}

/// A TLS client configuration (TLS 1.2 and 1.3, ring) trusting as
/// `trust` says and offering `alpn`: for the TLS transports over TCP.
#[cfg(feature = "client")]
pub fn tls_client_config(trust: &Trust, alpn: &[&[u8]]) -> Result<rustls::ClientConfig, QuicError> {
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(trust.verifier()?)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// The system's trust store (as the WebSocket client's `wss://` uses).
#[cfg(feature = "client")]
pub(crate) fn platform_verifier() -> Result<Arc<dyn ServerCertVerifier>, QuicError> {
    let verifier = rustls_platform_verifier::Verifier::new(provider())?;
    Ok(Arc::new(verifier))
}

/// Trust in certificates issued by `roots` (e.g. `--ca FILE`).
#[cfg(feature = "client")]
pub(crate) fn roots_verifier(
    roots: Vec<CertificateDer<'static>>,
) -> Result<Arc<dyn ServerCertVerifier>, QuicError> {
    let mut store = rustls::RootCertStore::empty();
    for root in roots {
        store.add(root)?;
    }
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider())
            .build()
            .map_err(|e| QuicError::QuicTls(e.to_string()))?;
    Ok(verifier)
}

/// Trust in exactly one certificate, named by its SHA-256 (pinning, as
/// browsers' `serverCertificateHashes` do): the name and the issuer do not
/// matter, the handshake signature still must verify with its key.
#[cfg(feature = "client")]
#[derive(Debug)]
pub(crate) struct PinnedCert {
    sha256: [u8; 32],
    algorithms: WebPkiSupportedAlgorithms,
}

#[cfg(feature = "client")]
impl PinnedCert {
    pub(crate) fn new(sha256: [u8; 32]) -> Self {
        Self {
            sha256,
            algorithms: provider().signature_verification_algorithms,
        }
    }
}

#[cfg(feature = "client")]
impl ServerCertVerifier for PinnedCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if cert_sha256(end_entity) != self.sha256 {
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ));
        }
        // A pinned certificate still must be within its validity period.
        match crate::validity::validity(end_entity.as_ref()) {
            Some((not_before, not_after)) => {
                let now = now.as_secs() as i64;
                if now < not_before {
                    return Err(rustls::Error::InvalidCertificate(
                        rustls::CertificateError::NotValidYet,
                    ));
                }
                if now > not_after {
                    return Err(rustls::Error::InvalidCertificate(
                        rustls::CertificateError::Expired,
                    ));
                }
            }
            None => {
                return Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::BadEncoding,
                ));
            }
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
