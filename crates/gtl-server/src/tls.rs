//! The server's TLS identity.
//!
//! By default a self-signed certificate is created in the data dir on
//! first start, so QUIC, WebTransport and the TLS listeners work with no
//! configuration. It is ECDSA P-256 and valid for 14 days, as browsers
//! require of a certificate they trust by hash (WebTransport's
//! `serverCertificateHashes`), and it is replaced while the server runs
//! once less than half of that is left ([`ServerIdentity::refresh`]).
//! Clients on this host trust it by its SHA-256, which the server logs and
//! puts in its `quic://` endpoint URL, and which `gtl-client` reads from
//! `tls/cert.pem` for loopback endpoints.
//!
//! With `[tls] cert` and `key` the server presents those files instead
//! (a chain from a real CA) and reloads them when they change on disk.
//!
//! Every TLS listener resolves the certificate per handshake from the one
//! [`ServerIdentity`], so a rotation or reload takes effect on the next
//! connection without a restart; connections already open keep theirs.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Validity of a generated certificate.
const VALIDITY: Duration = Duration::from_secs(14 * 86_400);
/// A generated certificate with less than this left is replaced: half its
/// validity, so a page that fetched the hash keeps a valid one for a week.
const RENEW_BEFORE: Duration = Duration::from_secs(7 * 86_400);
/// How often a running server checks for rotation and changed files.
pub const REFRESH_EVERY: Duration = Duration::from_secs(600);

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
        if let Ok(existing) = Self::load(&cert_path, &key_path)
            && !expires_soon(&existing.cert, SystemTime::now())
        {
            return Ok(existing);
        }
        Self::create(data_dir)
    }

    /// Creates a new certificate in `<data_dir>/tls/`, replacing any.
    fn create(data_dir: &Path) -> Result<Self, CertificateError> {
        let dir = data_dir.join("tls");
        let cert_path = dir.join("cert.pem");
        let key_path = dir.join("key.pem");
        let fail = |message: String| CertificateError {
            path: dir.clone(),
            message,
        };
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

fn expires_soon(cert: &CertificateDer<'_>, now: SystemTime) -> bool {
    let Some((_, not_after)) = gtl_transport_quic::cert_validity(cert) else {
        return true;
    };
    let now = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    not_after - now < RENEW_BEFORE.as_secs() as i64
}

/// Where the identity comes from.
#[derive(Debug)]
enum Source {
    /// Generated in `<data dir>/tls/`, rotated before it expires.
    SelfSigned { data_dir: PathBuf },
    /// The operator's files, reloaded when either changes.
    Files {
        cert: PathBuf,
        key: PathBuf,
        modified: std::sync::Mutex<Option<(SystemTime, SystemTime)>>,
    },
}

/// What is presented now.
#[derive(Debug)]
struct Current {
    certified: Arc<CertifiedKey>,
    sha256: [u8; 32],
}

/// The certificate every TLS listener presents, swapped in place on
/// rotation or reload (see the [module docs](self)).
#[derive(Debug)]
pub struct ServerIdentity {
    source: Source,
    current: RwLock<Arc<Current>>,
}

impl ServerIdentity {
    /// The self-signed identity of `data_dir` (created, or renewed when
    /// due).
    pub fn self_signed(data_dir: &Path) -> Result<Arc<Self>, CertificateError> {
        let local = LocalCertificate::load_or_create(data_dir)?;
        let current = current(vec![local.cert], local.key).map_err(|message| CertificateError {
            path: data_dir.join("tls"),
            message,
        })?;
        Ok(Arc::new(Self {
            source: Source::SelfSigned {
                data_dir: data_dir.to_owned(),
            },
            current: RwLock::new(Arc::new(current)),
        }))
    }

    /// The identity in `cert` (a PEM chain, leaf first) and `key` (PEM).
    pub fn from_files(cert: &Path, key: &Path) -> Result<Arc<Self>, CertificateError> {
        let (loaded, stamps) = load_files(cert, key)?;
        Ok(Arc::new(Self {
            source: Source::Files {
                cert: cert.to_owned(),
                key: key.to_owned(),
                modified: std::sync::Mutex::new(stamps),
            },
            current: RwLock::new(Arc::new(loaded)),
        }))
    }

    /// The SHA-256 of the certificate presented now.
    pub fn sha256(&self) -> [u8; 32] {
        self.now().sha256
    }

    /// The chain and key presented now, for endpoints that take them
    /// whole rather than through [`ResolvesServerCert`].
    pub fn certified(&self) -> Arc<CertifiedKey> {
        self.now().certified.clone()
    }

    /// Rotates a self-signed certificate that is due (as of `now`), or
    /// reloads files that changed. `Ok(true)` when what is presented
    /// changed. A failed reload keeps the previous certificate.
    pub fn refresh(&self, now: SystemTime) -> Result<bool, CertificateError> {
        let next = match &self.source {
            Source::SelfSigned { data_dir } => {
                let leaf = self.now().certified.cert[0].clone();
                if !expires_soon(&leaf, now) {
                    return Ok(false);
                }
                let local = LocalCertificate::create(data_dir)?;
                current(vec![local.cert], local.key).map_err(|message| CertificateError {
                    path: data_dir.join("tls"),
                    message,
                })?
            }
            Source::Files {
                cert,
                key,
                modified,
            } => {
                let stamps = stamps(cert, key);
                let mut seen = modified.lock().unwrap_or_else(|p| p.into_inner());
                if stamps.is_none() || stamps == *seen {
                    return Ok(false);
                }
                let (loaded, stamps) = load_files(cert, key)?;
                *seen = stamps;
                loaded
            }
        };
        tracing::info!(sha256 = %hex(&next.sha256), "TLS certificate replaced");
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(next);
        Ok(true)
    }

    /// A rustls server configuration presenting this identity (whatever
    /// it is at each handshake), for `alpn`.
    pub fn server_config(self: &Arc<Self>, alpn: &[&[u8]]) -> rustls::ServerConfig {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        config
    }

    fn now(&self) -> Arc<Current> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl ResolvesServerCert for ServerIdentity {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.certified())
    }
}

fn current(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Current, String> {
    let sha256 = gtl_transport_quic::cert_sha256(chain.first().ok_or("the chain is empty")?);
    let signing = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| format!("the key cannot sign: {e}"))?;
    Ok(Current {
        certified: Arc::new(CertifiedKey::new(chain, signing)),
        sha256,
    })
}

fn stamps(cert: &Path, key: &Path) -> Option<(SystemTime, SystemTime)> {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    Some((modified(cert)?, modified(key)?))
}

fn load_files(
    cert: &Path,
    key: &Path,
) -> Result<(Current, Option<(SystemTime, SystemTime)>), CertificateError> {
    let fail = |path: &Path, message: String| CertificateError {
        path: path.to_owned(),
        message,
    };
    let stamps = stamps(cert, key);
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| fail(cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(fail(cert, "no certificate in the file".into()));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| fail(key, e.to_string()))?;
    let loaded = current(chain, private).map_err(|message| fail(key, message))?;
    tracing::info!(path = %cert.display(), sha256 = %hex(&loaded.sha256), "loaded the TLS certificate");
    Ok((loaded, stamps))
}

/// Writes a file only its owner can read.
pub(crate) fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
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
    fn a_self_signed_identity_rotates_when_half_its_validity_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let identity = ServerIdentity::self_signed(dir.path()).unwrap();
        let first = identity.sha256();
        let now = SystemTime::now();
        assert!(!identity.refresh(now).unwrap());
        assert_eq!(identity.sha256(), first);
        // Eight days on, less than half of the 14 days is left.
        assert!(
            identity
                .refresh(now + Duration::from_secs(8 * 86_400))
                .unwrap()
        );
        let rotated = identity.sha256();
        assert_ne!(rotated, first);
        assert_eq!(
            gtl_transport_quic::cert_sha256(&identity.certified().cert[0]),
            rotated
        );
        // The new certificate is the one on disk, so clients reading the
        // data dir trust it, and a restart keeps it.
        let on_disk = LocalCertificate::load_or_create(dir.path()).unwrap();
        assert_eq!(on_disk.sha256, rotated);
    }

    fn write_pair(dir: &Path, name: &str, stamp: SystemTime) -> (PathBuf, PathBuf) {
        let (cert, key) = generate().unwrap();
        let (cert_path, key_path) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        );
        for (path, text) in [(&cert_path, cert), (&key_path, key)] {
            std::fs::write(path, text).unwrap();
            std::fs::File::options()
                .write(true)
                .open(path)
                .unwrap()
                .set_modified(stamp)
                .unwrap();
        }
        (cert_path, key_path)
    }

    #[test]
    fn certificate_files_are_reloaded_when_they_change() {
        let dir = tempfile::tempdir().unwrap();
        let then = SystemTime::now() - Duration::from_secs(60);
        let (cert, key) = write_pair(dir.path(), "server", then);
        let identity = ServerIdentity::from_files(&cert, &key).unwrap();
        let first = identity.sha256();
        assert!(!identity.refresh(SystemTime::now()).unwrap());

        // A half-written replacement keeps the working certificate.
        std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\n").unwrap();
        assert!(identity.refresh(SystemTime::now()).is_err());
        assert_eq!(identity.sha256(), first);

        let (new_cert, new_key) = write_pair(dir.path(), "next", SystemTime::now());
        std::fs::rename(new_key, &key).unwrap();
        std::fs::rename(new_cert, &cert).unwrap();
        assert!(identity.refresh(SystemTime::now()).unwrap());
        assert_ne!(identity.sha256(), first);
        assert!(!identity.refresh(SystemTime::now()).unwrap());
    }

    #[test]
    fn unusable_files_are_refused_with_their_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let error = ServerIdentity::from_files(&missing, &missing).unwrap_err();
        assert!(error.to_string().contains("nope.pem"), "{error}");
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
