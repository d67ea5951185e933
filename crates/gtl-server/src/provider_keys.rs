//! Opening callers' own provider keys.
//!
//! A GhostToken may carry `provider_keys`: a provider's API key per
//! provider name, each encrypted with age to this server's X25519
//! recipient (`gtl-server --print-recipient`), by the `age` CLI or `gtl
//! token encrypt-key`. The identity lives in `<data dir>/provider-keys.txt`
//! (created on first use, readable by the server's user only). A key is
//! opened when a call to its provider starts and lives only in that call's
//! adapter: never logged, audited, returned or stored.

use std::io::Write as _;
use std::path::Path;
use std::str::FromStr as _;

use age::secrecy::ExposeSecret as _;
use base64::Engine as _;
use gtl_service::KeyOpener;

/// The server's age identity for provider keys.
pub struct ProviderKeys {
    identity: age::x25519::Identity,
}

impl std::fmt::Debug for ProviderKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderKeys")
            .field("recipient", &self.recipient())
            .finish_non_exhaustive()
    }
}

impl ProviderKeys {
    /// The identity in `<data_dir>/provider-keys.txt`, created when missing.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, String> {
        let path = data_dir.join("provider-keys.txt");
        let fail = |e: String| format!("{}: {e}", path.display());
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let line = text
                    .lines()
                    .find(|l| l.starts_with("AGE-SECRET-KEY-"))
                    .ok_or_else(|| fail("no AGE-SECRET-KEY line".into()))?;
                let identity = age::x25519::Identity::from_str(line.trim())
                    .map_err(|e| fail(e.to_string()))?;
                Ok(Self { identity })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let identity = age::x25519::Identity::generate();
                std::fs::create_dir_all(data_dir).map_err(|e| fail(e.to_string()))?;
                let mut file = {
                    use std::os::unix::fs::OpenOptionsExt as _;
                    std::fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(0o600)
                        .open(&path)
                        .map_err(|e| fail(e.to_string()))?
                };
                writeln!(
                    file,
                    "# gtl-server: opens provider keys sealed to {}\n{}",
                    identity.to_public(),
                    identity.to_string().expose_secret()
                )
                .map_err(|e| fail(e.to_string()))?;
                tracing::info!(recipient = %identity.to_public(), "created the provider-key identity");
                Ok(Self { identity })
            }
            Err(e) => Err(fail(e.to_string())),
        }
    }

    /// The recipient callers encrypt their provider keys to (`age1…`).
    pub fn recipient(&self) -> String {
        self.identity.to_public().to_string()
    }
}

impl KeyOpener for ProviderKeys {
    fn open(&self, sealed: &str) -> Result<String, String> {
        let sealed = sealed.trim();
        let bytes = if sealed.starts_with("-----BEGIN AGE ENCRYPTED FILE-----") {
            sealed.as_bytes().to_vec()
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(sealed)
                .map_err(|_| "neither age armor nor base64".to_owned())?
        };
        let key = age::decrypt(&self.identity, &bytes).map_err(|e| e.to_string())?;
        let key = String::from_utf8(key).map_err(|_| "the key is not text".to_owned())?;
        Ok(key.trim_end_matches(['\n', '\r']).to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_sealed_to_the_recipient_opens_and_nothing_else_does() {
        let dir = tempfile::tempdir().unwrap();
        let keys = ProviderKeys::load_or_create(dir.path()).unwrap();
        let again = ProviderKeys::load_or_create(dir.path()).unwrap();
        assert_eq!(keys.recipient(), again.recipient());
        let recipient = age::x25519::Recipient::from_str(&keys.recipient()).unwrap();
        let armored = age::encrypt_and_armor(&recipient, b"sk-user-123\n").unwrap();
        assert_eq!(keys.open(&armored).unwrap(), "sk-user-123");
        let binary = age::encrypt(&recipient, b"sk-user-456").unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(binary);
        assert_eq!(keys.open(&b64).unwrap(), "sk-user-456");
        let stranger = age::x25519::Identity::generate().to_public();
        let not_ours = age::encrypt_and_armor(&stranger, b"sk-other").unwrap();
        assert!(keys.open(&not_ours).is_err());
        assert!(keys.open("plain text").is_err());
        assert!(!format!("{keys:?}").contains("AGE-SECRET-KEY"));
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join("provider-keys.txt"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
