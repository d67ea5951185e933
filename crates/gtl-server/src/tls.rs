//! The server's certificate: on first start a self-signed one is created in
//! the data dir, so QUIC (which is always TLS) works with no configuration.
//!
//! It is ECDSA P-256 and valid for 14 days, as browsers require of a
//! certificate they trust by hash (WebTransport's
//! `serverCertificateHashes`); one with less than a day left is replaced
//! at start. Clients on this host trust it by its SHA-256, which the server
//! logs and puts in its `quic://` endpoint URL, and which `gtl-client`
//! reads from `tls/cert.pem` for loopback endpoints.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Validity of a generated certificate.
const VALIDITY: Duration = Duration::from_secs(14 * 86_400);
/// A certificate with less than this left is replaced.
const RENEW_BEFORE: Duration = Duration::from_secs(86_400);

/// A certificate and its key.
#[derive(Debug)]
pub struct LocalCertificate {
    /// The certificate (one, self-signed).
    pub cert: CertificateDer<'static>,
    /// Its private key.
    pub key: PrivateKeyDer<'static>,
    /// The certificate's SHA-256.
    pub sha256: [u8; 32],
}

/// The certificate could not be read, created or stored.
#[derive(Debug, thiserror::Error)]
#[error("TLS certificate in {path}: {message}")]
pub struct CertificateError {
    path: PathBuf,
    message: String,
}

impl LocalCertificate {
    /// Loads `tls/cert.pem` and `tls/key.pem` from `data_dir`, creating them
    /// when missing or about to expire.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, CertificateError> {
        let dir = data_dir.join("tls");
        let cert_path = dir.join("cert.pem");
        let key_path = dir.join("key.pem");
        let fail = |message: String| CertificateError {
            path: dir.clone(),
            message,
        };
        if let Ok(existing) = Self::load(&cert_path, &key_path)
            && !expires_soon(&existing.cert)
        {
            return Ok(existing);
        }
        let (cert_pem, key_pem) = generate().map_err(fail)?;
        std::fs::create_dir_all(&dir).map_err(|e| fail(e.to_string()))?;
        write_private(&key_path, key_pem.as_bytes()).map_err(|e| fail(e.to_string()))?;
        std::fs::write(&cert_path, cert_pem).map_err(|e| fail(e.to_string()))?;
        let created = Self::load(&cert_path, &key_path).map_err(fail)?;
        tracing::info!(
            path = %cert_path.display(),
            sha256 = %hex(&created.sha256),
            "created a self-signed certificate"
        );
        Ok(created)
    }

    fn load(cert_path: &Path, key_path: &Path) -> Result<Self, String> {
        let cert = CertificateDer::from_pem_file(cert_path).map_err(|e| e.to_string())?;
        let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| e.to_string())?;
        let sha256 = gtl_transport_quic::cert_sha256(&cert);
        Ok(Self { cert, key, sha256 })
    }
}

/// The certificate's SHA-256 in hex, as URLs and logs show it.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn generate() -> Result<(String, String), String> {
    let names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    let mut params = rcgen::CertificateParams::new(names).map_err(|e| e.to_string())?;
    let now = SystemTime::now();
    // A little slack for clocks that are behind.
    params.not_before = (now - Duration::from_secs(3600)).into();
    params.not_after = (now + VALIDITY - Duration::from_secs(3600)).into();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "gtl-server (self-signed)");
    let key =
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| e.to_string())?;
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn expires_soon(cert: &CertificateDer<'_>) -> bool {
    let Some((_, not_after)) = gtl_transport_quic::cert_validity(cert) else {
        return true;
    };
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    not_after - now < RENEW_BEFORE.as_secs() as i64
}

/// Writes a file only its owner can read.
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = LocalCertificate::load_or_create(dir.path()).unwrap();
        let again = LocalCertificate::load_or_create(dir.path()).unwrap();
        assert_eq!(first.sha256, again.sha256);
        let (not_before, not_after) = gtl_transport_quic::cert_validity(&first.cert).unwrap();
        assert!(not_after - not_before <= 14 * 86_400, "browsers' limit");
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join("tls/key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn an_unreadable_certificate_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("tls")).unwrap();
        std::fs::write(dir.path().join("tls/cert.pem"), "garbage").unwrap();
        let created = LocalCertificate::load_or_create(dir.path()).unwrap();
        assert_eq!(
            created.sha256,
            gtl_transport_quic::cert_sha256(&created.cert)
        );
    }
}
