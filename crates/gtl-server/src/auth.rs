//! `[auth]`: where GhostToken keys come from, and keeping a JWKS fresh.
//!
//! One key source: a JWKS (`jwks_url`, a URL or a file), an OIDC issuer
//! whose discovery document names its JWKS (`oidc_issuer`), a PEM public
//! key (`public_key`), or an HS256 secret (`hs256_secret_env`,
//! `hs256_secret_file`). A JWKS is fetched at start, then again every
//! [`REFRESH_EVERY`] and when a token names a key it lacks (a rotation),
//! at most once per [`MIN_REFETCH`]; the token that named the new key is
//! refused and its retry, after the fetch, is accepted.

use std::path::PathBuf;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use gtl_auth::{Claims, Keys, Settings, TokenError, Verifier};
use gtl_service::{Authenticator, LocalUsers, TokenVerifier};
use tokio::sync::Notify;

use crate::config::{Auth, Config};
use crate::local_token::LocalToken;

/// How often a JWKS is fetched again.
const REFRESH_EVERY: Duration = Duration::from_secs(3600);
/// The least time between two fetches, whatever asks for them.
const MIN_REFETCH: Duration = Duration::from_secs(30);
/// Bound on one fetch.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// `[auth]` could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("[auth]: {0}")]
pub struct AuthConfigError(String);

/// The authenticator `config` describes; `local` is the server's local
/// token, when it writes one.
pub(crate) async fn authenticator(
    config: &Config,
    local: Option<&LocalToken>,
) -> Result<Authenticator, AuthConfigError> {
    let auth = &config.auth;
    let mut authenticator = if auth.trust_same_host {
        Authenticator::local_users(
            LocalUsers::new(own_uid())
                .with_others(auth.trusted_uids.clone(), auth.trusted_gids.clone()),
        )
    } else {
        Authenticator::new(false)
    };
    if let Some(verifier) = token_verifier(config).await? {
        authenticator = authenticator.with_tokens(verifier);
    }
    if let Some(local) = local {
        authenticator = authenticator.with_local_token(local.verifier());
    }
    Ok(authenticator)
}

/// The GhostToken verifier `[auth]` describes (its keys loaded, a JWKS
/// kept fresh), or `None` when it sets no key source. `gtl token inspect`
/// checks a token with it exactly as the server would.
pub async fn token_verifier(
    config: &Config,
) -> Result<Option<Arc<dyn TokenVerifier>>, AuthConfigError> {
    let auth = &config.auth;
    if !auth.verifies_tokens() {
        return Ok(None);
    }
    let settings = settings(auth);
    let verifier: Arc<dyn TokenVerifier> = match source(auth)? {
        Source::Fixed(keys) => Arc::new(Verifier::new(keys, settings)),
        Source::Jwks(jwks) => {
            let keys = Keys::from_jwks(&fetch(&jwks).await?)
                .map_err(|e| AuthConfigError(format!("{}: {e}", jwks.describe())))?;
            tracing::info!(source = %jwks.describe(), keys = keys.len(), "GhostToken keys loaded");
            let refreshing = Arc::new(RefreshingVerifier {
                verifier: RwLock::new(Verifier::new(keys, settings)),
                jwks,
                wake: Notify::new(),
                version: std::sync::atomic::AtomicU64::new(0),
            });
            tokio::spawn(refresh(Arc::downgrade(&refreshing)));
            refreshing
        }
    };
    Ok(Some(verifier))
}

fn settings(auth: &Auth) -> Settings {
    let mut settings = Settings::default();
    settings.issuer = auth.issuer.clone().or_else(|| auth.oidc_issuer.clone());
    settings.audience = auth.audience.clone();
    settings.leeway_secs = auth.leeway_secs;
    settings.scopes_claim = auth.scopes_claim.clone();
    settings.default_scopes = auth.default_scopes.clone();
    settings
}

/// Where the keys come from.
enum Source {
    Fixed(Keys),
    Jwks(Jwks),
}

/// Where a JWKS is.
#[derive(Debug, Clone)]
enum Jwks {
    Url(String),
    File(PathBuf),
    Discovery(String),
}

impl Jwks {
    fn describe(&self) -> String {
        match self {
            Self::Url(url) => url.clone(),
            Self::File(path) => path.display().to_string(),
            Self::Discovery(issuer) => format!("{issuer} (OIDC discovery)"),
        }
    }
}

fn source(auth: &Auth) -> Result<Source, AuthConfigError> {
    let set = [
        auth.jwks_url.is_some(),
        auth.oidc_issuer.is_some(),
        auth.public_key.is_some(),
        auth.hs256_secret_env.is_some(),
        auth.hs256_secret_file.is_some(),
    ];
    if set.iter().filter(|s| **s).count() > 1 {
        return Err(AuthConfigError(
            "set one key source: jwks_url, oidc_issuer, public_key, hs256_secret_env or \
             hs256_secret_file"
                .into(),
        ));
    }
    let fail = |what: String| AuthConfigError(what);
    if let Some(url) = &auth.jwks_url {
        return Ok(Source::Jwks(
            if url.starts_with("http://") || url.starts_with("https://") {
                Jwks::Url(url.clone())
            } else {
                Jwks::File(PathBuf::from(url))
            },
        ));
    }
    if let Some(issuer) = &auth.oidc_issuer {
        return Ok(Source::Jwks(Jwks::Discovery(
            issuer.trim_end_matches('/').to_owned(),
        )));
    }
    if let Some(path) = &auth.public_key {
        let pem = std::fs::read(path).map_err(|e| fail(format!("{}: {e}", path.display())))?;
        return Keys::from_pem(&pem)
            .map(Source::Fixed)
            .map_err(|e| fail(format!("{}: {e}", path.display())));
    }
    let secret = if let Some(var) = &auth.hs256_secret_env {
        std::env::var(var)
            .map_err(|_| fail(format!("hs256_secret_env: ${var} is not set")))?
            .into_bytes()
    } else if let Some(path) = &auth.hs256_secret_file {
        let mut bytes =
            std::fs::read(path).map_err(|e| fail(format!("{}: {e}", path.display())))?;
        // A secret file written by `echo` ends with a newline.
        while bytes.last().is_some_and(u8::is_ascii_whitespace) {
            bytes.pop();
        }
        bytes
    } else {
        unreachable!("verifies_tokens() said a source is set")
    };
    Keys::from_secret(&secret)
        .map(Source::Fixed)
        .map_err(|e| fail(format!("the HS256 secret: {e}")))
}

/// A JWKS document, from its URL, its file, or the issuer's discovery
/// document.
async fn fetch(jwks: &Jwks) -> Result<Vec<u8>, AuthConfigError> {
    let fail = |e: String| AuthConfigError(format!("{}: {e}", jwks.describe()));
    match jwks {
        Jwks::File(path) => std::fs::read(path).map_err(|e| fail(e.to_string())),
        Jwks::Url(url) => get(url).await.map_err(fail),
        Jwks::Discovery(issuer) => {
            let document = get(&format!("{issuer}/.well-known/openid-configuration"))
                .await
                .map_err(fail)?;
            let uri = serde_json::from_slice::<serde_json::Value>(&document)
                .ok()
                .and_then(|d| d.get("jwks_uri")?.as_str().map(str::to_owned))
                .ok_or_else(|| fail("the discovery document has no jwks_uri".into()))?;
            get(&uri).await.map_err(fail)
        }
    }
}

async fn get(url: &str) -> Result<Vec<u8>, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .build()
        .map_err(|e| e.to_string())?;
    let response = client.get(url).send().await.map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("GET {url}: HTTP {}", response.status()));
    }
    Ok(response.bytes().await.map_err(|e| e.to_string())?.to_vec())
}

/// A verifier whose JWKS is fetched again on a schedule and on demand.
#[derive(Debug)]
struct RefreshingVerifier {
    verifier: RwLock<Verifier>,
    jwks: Jwks,
    wake: Notify,
    /// Bumped at every refresh (see [`TokenVerifier::keys_version`]).
    version: std::sync::atomic::AtomicU64,
}

impl TokenVerifier for RefreshingVerifier {
    fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let verified = self
            .verifier
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .verify(token);
        if matches!(verified, Err(TokenError::UnknownKey(_))) {
            self.wake.notify_one();
        }
        verified
    }

    fn keys_version(&self) -> u64 {
        self.version.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// Fetches the JWKS every [`REFRESH_EVERY`] and when woken, at most once
/// per [`MIN_REFETCH`], until the verifier is gone.
async fn refresh(verifier: Weak<RefreshingVerifier>) {
    loop {
        {
            let Some(strong) = verifier.upgrade() else {
                return;
            };
            // Holding the verifier while waiting is fine: it is the server's
            // for as long as the server runs, and the wait ends within
            // REFRESH_EVERY, when a dropped server lets this task end.
            let _ = tokio::time::timeout(REFRESH_EVERY, strong.wake.notified()).await;
        }
        let Some(strong) = verifier.upgrade() else {
            return;
        };
        match fetch(&strong.jwks).await.and_then(|document| {
            Keys::from_jwks(&document).map_err(|e| AuthConfigError(e.to_string()))
        }) {
            Ok(keys) => {
                tracing::info!(keys = keys.len(), "GhostToken keys refreshed");
                strong
                    .verifier
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .set_keys(keys);
                strong
                    .version
                    .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
            }
            Err(e) => {
                tracing::warn!(error = %e, "GhostToken keys not refreshed; the last ones stay")
            }
        }
        drop(strong);
        tokio::time::sleep(MIN_REFETCH).await;
    }
}

/// The user this server runs as (the owner of its `/proc/self`).
fn own_uid() -> Option<u32> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}
