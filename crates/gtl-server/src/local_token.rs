//! The local token: how this host's own clients reach the loopback TCP,
//! HTTP and QUIC listeners, which trust no peer without a token (any local
//! user, and any page a browser here loads, can reach those ports).
//!
//! The server keeps an HS256 key in `<data dir>/local.key` and writes
//! `<data dir>/local.token`: a token for its own user, with every scope,
//! valid for [`LIFETIME`]. Both files are readable by that user only, so
//! holding the token proves being that user (or root). It is written again
//! at each start and every [`RENEW_EVERY`], so a running server's file is
//! always fresh; tokens read earlier stay valid until they expire. `gtl`
//! reads the file by itself for loopback endpoints; `gtl token show`
//! prints it for other tools (the OpenAI and Anthropic SDKs take it as
//! their API key).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use gtl_auth::{Keys, Mint, Settings, SigningKey, Verifier};
use gtl_service::TokenVerifier;

/// The key's file in the data dir.
pub const KEY_FILE: &str = "local.key";
/// The token's file in the data dir.
pub const TOKEN_FILE: &str = "local.token";
/// The local token's `iss`.
pub const ISSUER: &str = "gtl-local";
/// How long one local token is valid.
pub const LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);
/// How often a running server writes a new one.
pub const RENEW_EVERY: Duration = Duration::from_secs(24 * 3600);

/// The server's local-token key, and where its token goes.
#[derive(Clone)]
pub(crate) struct LocalToken {
    key: Vec<u8>,
    path: PathBuf,
    user: String,
}

impl std::fmt::Debug for LocalToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalToken")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl LocalToken {
    /// The key in `data_dir` (created when missing) and a fresh token
    /// written beside it.
    pub(crate) fn set_up(data_dir: &Path) -> Result<Self, String> {
        std::fs::create_dir_all(data_dir).map_err(|e| format!("{}: {e}", data_dir.display()))?;
        let key = load_or_create_key(&data_dir.join(KEY_FILE))?;
        let local = Self {
            key,
            path: data_dir.join(TOKEN_FILE),
            user: os_user(),
        };
        local.write(now())?;
        Ok(local)
    }

    /// The token's file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Checks tokens signed with this key.
    pub(crate) fn verifier(&self) -> Arc<dyn TokenVerifier> {
        let mut settings = Settings::default();
        settings.issuer = Some(ISSUER.to_owned());
        let keys = Keys::from_secret(&self.key).expect("the key is 32 bytes");
        Arc::new(Verifier::new(keys, settings))
    }

    /// Writes a token valid from `now` (Unix seconds), replacing the file
    /// at once so a reader never sees half of it.
    pub(crate) fn write(&self, now: u64) -> Result<(), String> {
        let mut claims = Mint::new(
            &self.user,
            &["chat:*", "session:*", "tools:*"],
            now,
            LIFETIME.as_secs(),
        );
        claims.issuer = Some(ISSUER.to_owned());
        let token = gtl_auth::mint(&SigningKey::Hs256(self.key.clone()), &claims)
            .map_err(|e| e.to_string())?;
        let fail = |e: std::io::Error| format!("{}: {e}", self.path.display());
        let partial = self.path.with_extension("token.partial");
        crate::tls::write_private(&partial, format!("{token}\n").as_bytes()).map_err(fail)?;
        std::fs::rename(&partial, &self.path).map_err(fail)
    }

    /// Writes a new token every [`RENEW_EVERY`], for as long as the server
    /// runs.
    pub(crate) async fn renew(self) {
        loop {
            tokio::time::sleep(RENEW_EVERY).await;
            if let Err(e) = self.write(now()) {
                tracing::warn!(error = %e, "the local token was not renewed");
            }
        }
    }
}

/// The 32-byte key in `path`, created (readable by its owner only) when
/// missing.
fn load_or_create_key(path: &Path) -> Result<Vec<u8>, String> {
    let fail = |e: String| format!("{}: {e}", path.display());
    match std::fs::read(path) {
        Ok(key) if key.len() == 32 => Ok(key),
        Ok(_) => Err(fail(
            "not a local-token key (32 bytes): delete it and restart to make a new one".into(),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = vec![0; 32];
            getrandom::fill(&mut key).map_err(|e| fail(e.to_string()))?;
            crate::tls::write_private(path, &key).map_err(|e| fail(e.to_string()))?;
            Ok(key)
        }
        Err(e) => Err(fail(e.to_string())),
    }
}

/// The name of the user this server runs as, for the token's `sub`.
fn os_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| {
            use std::os::unix::fs::MetadataExt as _;
            std::fs::metadata("/proc/self")
                .map_or_else(|_| "local".to_owned(), |m| format!("uid:{}", m.uid()))
        })
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn the_token_is_private_verifies_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let local = LocalToken::set_up(dir.path()).unwrap();
        for file in [KEY_FILE, TOKEN_FILE] {
            let mode = std::fs::metadata(dir.path().join(file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
        let first = std::fs::read_to_string(dir.path().join(TOKEN_FILE)).unwrap();
        let claims = local.verifier().verify(first.trim()).unwrap();
        assert_eq!(claims.issuer.as_deref(), Some(ISSUER));
        assert!(claims.expires_at >= now() + LIFETIME.as_secs() - 60);
        // A restart keeps the key: the token a client read before still works.
        let again = LocalToken::set_up(dir.path()).unwrap();
        assert!(again.verifier().verify(first.trim()).is_ok());
        // Another data dir's key does not accept it.
        let other = tempfile::tempdir().unwrap();
        let stranger = LocalToken::set_up(other.path()).unwrap();
        assert!(stranger.verifier().verify(first.trim()).is_err());
    }

    #[test]
    fn an_expired_local_token_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let local = LocalToken::set_up(dir.path()).unwrap();
        local.write(now() - LIFETIME.as_secs() - 3600).unwrap();
        let old = std::fs::read_to_string(dir.path().join(TOKEN_FILE)).unwrap();
        assert!(local.verifier().verify(old.trim()).is_err());
    }

    #[test]
    fn a_damaged_key_is_refused_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(KEY_FILE), b"short").unwrap();
        let err = LocalToken::set_up(dir.path()).unwrap_err();
        assert!(err.contains("delete it"), "{err}");
    }
}
