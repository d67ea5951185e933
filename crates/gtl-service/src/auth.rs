//! The authentication seam: every call's credentials are checked here, the
//! same way for every transport.
//!
//! Two ways in:
//!
//! - **Same-host trust** (by configuration): stdio, Unix sockets and
//!   loopback peers are on this machine, where the OS says who the peer
//!   is. Each local user is its own subject, `uid:<n>` (on any of those
//!   transports, so a session started over one resumes over another), and
//!   owns its own sessions; a peer whose user the OS does not tell is
//!   `local`. Such a caller has every scope. When tokens are verified too,
//!   only Unix-socket and stdio peers running as the server's own user are
//!   trusted this way; loopback TCP, HTTP and QUIC peers need a token.
//! - **GhostTokens** (JWTs, [`gtl_auth`]), when a verifier is configured:
//!   the subject is `sub:<sub>` (never a local user's namespace) and the
//!   token's scopes bound what it may do ([`Principal::allows`]); its
//!   expiry ends its right to start calls, even on a connection opened
//!   before.

use std::sync::Arc;

use gtl_auth::{Claims, Operation, Scopes, TokenError};
use gtl_proto::ErrorCode;
use gtl_transport::PeerInfo;

/// Who is calling, once authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Principal {
    /// The subject that owns the caller's sessions.
    pub subject: String,
    /// What a token allows; `None` for a trusted same-host peer, which may
    /// do everything.
    pub scopes: Option<Scopes>,
    /// When the caller's token expires (Unix seconds), if it has one.
    pub expires_at: Option<u64>,
    /// The transport the caller came in on, for the audit log.
    pub transport: &'static str,
    /// The caller's own provider keys, sealed to the server (a token's
    /// `provider_keys`), by provider name: opened for one call at a time.
    pub provider_keys: std::collections::BTreeMap<String, String>,
}

impl Principal {
    /// A trusted same-host caller.
    pub fn local(subject: impl Into<String>) -> Self {
        Self {
            subject: subject.into(),
            scopes: None,
            expires_at: None,
            transport: "",
            provider_keys: std::collections::BTreeMap::new(),
        }
    }

    /// Whether the caller may do `operation`.
    pub fn allows(&self, operation: Operation) -> bool {
        self.scopes
            .as_ref()
            .is_none_or(|scopes| scopes.allows(operation))
    }

    /// `PERMISSION_DENIED` unless the caller may do `operation`, and
    /// `UNAUTHENTICATED` once its token has expired (as of `now`, Unix
    /// seconds).
    pub fn check(&self, operation: Operation, now: u64) -> Result<(), AuthError> {
        if self.expires_at.is_some_and(|expiry| now >= expiry) {
            return Err(AuthError {
                code: ErrorCode::Unauthenticated,
                message: "the token has expired: reconnect with a new one".into(),
            });
        }
        if !self.allows(operation) {
            return Err(AuthError {
                code: ErrorCode::PermissionDenied,
                message: format!(
                    "the token lacks the `{}` scope this needs (see docs/security.md for the \
                     scope of each operation)",
                    operation.scope()
                ),
            });
        }
        Ok(())
    }
}

/// A caller was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
#[non_exhaustive]
pub struct AuthError {
    /// UNAUTHENTICATED or PERMISSION_DENIED.
    pub code: ErrorCode,
    /// What to do about it.
    pub message: String,
}

/// Opens a provider key sealed to the server (age, to its X25519
/// recipient). The opened key must not be logged or kept.
pub trait KeyOpener: std::fmt::Debug + Send + Sync {
    /// The key, or why it cannot be opened.
    fn open(&self, sealed: &str) -> Result<String, String>;
}

/// Checks GhostTokens: a [`gtl_auth::Verifier`], or one whose keys a server
/// refreshes (a JWKS).
pub trait TokenVerifier: std::fmt::Debug + Send + Sync {
    /// The token's claims, or why it is refused.
    fn verify(&self, token: &str) -> Result<Claims, TokenError>;
}

impl TokenVerifier for gtl_auth::Verifier {
    fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        Self::verify(self, token)
    }
}

/// Decides who a connection is.
#[derive(Debug, Clone)]
pub struct Authenticator {
    trust_same_host: bool,
    tokens: Option<Arc<dyn TokenVerifier>>,
    /// The server's own user, for same-host trust when tokens are on.
    own_uid: Option<u32>,
}

impl Authenticator {
    /// An authenticator; `trust_same_host` accepts same-host peers without a
    /// token.
    pub fn new(trust_same_host: bool) -> Self {
        Self {
            trust_same_host,
            tokens: None,
            own_uid: None,
        }
    }

    /// Verifies tokens with `verifier`. Same-host trust then narrows to
    /// Unix-socket and stdio peers running as `own_uid` (the server's own
    /// user).
    pub fn with_tokens(mut self, verifier: Arc<dyn TokenVerifier>, own_uid: Option<u32>) -> Self {
        self.tokens = Some(verifier);
        self.own_uid = own_uid;
        self
    }

    /// Whether tokens are verified.
    pub fn verifies_tokens(&self) -> bool {
        self.tokens.is_some()
    }

    /// Authenticates a caller of the OpenAI- or Anthropic-compatible
    /// routes from its peer and its API key (`Authorization: Bearer …` or
    /// `x-api-key`).
    ///
    /// Those SDKs refuse to send a request without a key, and users often
    /// leave their real provider key in the environment. A key that looks
    /// like a JWT is a GhostToken and is verified (when tokens are on);
    /// any other key of a trusted same-host caller is ignored (never
    /// checked, logged or forwarded), so any value or none works there, as
    /// on the native transports without a token.
    pub fn authenticate_api_key(&self, peer: &PeerInfo, key: &str) -> Result<Principal, AuthError> {
        if self.tokens.is_some() && key.split('.').count() == 3 {
            return self.authenticate(peer, key);
        }
        self.authenticate(peer, "")
    }

    /// Authenticates a connection from its peer and the hello's token.
    pub fn authenticate(&self, peer: &PeerInfo, token: &str) -> Result<Principal, AuthError> {
        if !token.is_empty() {
            let Some(tokens) = &self.tokens else {
                return Err(AuthError {
                    code: ErrorCode::Unauthenticated,
                    message: "token authentication is not configured on this server: connect \
                              without a token over a same-host transport, or configure [auth]"
                        .into(),
                });
            };
            return match tokens.verify(token) {
                Ok(claims) => Ok(Principal {
                    subject: format!("sub:{}", claims.subject),
                    scopes: Some(claims.scopes),
                    expires_at: Some(claims.expires_at),
                    transport: peer.transport,
                    provider_keys: claims.provider_keys,
                }),
                Err(e) => Err(AuthError {
                    code: ErrorCode::Unauthenticated,
                    message: e.to_string(),
                }),
            };
        }
        if self.trusts(peer) {
            let subject = match peer.uid {
                Some(uid) => format!("uid:{uid}"),
                None => "local".into(),
            };
            return Ok(Principal {
                transport: peer.transport,
                ..Principal::local(subject)
            });
        }
        Err(AuthError {
            code: ErrorCode::Unauthenticated,
            message: format!(
                "{} peer {} is not trusted: present a token{}",
                peer.transport,
                peer.addr,
                if self.tokens.is_some() {
                    ""
                } else {
                    " or set auth.trust_same_host"
                }
            ),
        })
    }

    fn trusts(&self, peer: &PeerInfo) -> bool {
        if !self.trust_same_host || !peer.same_host {
            return false;
        }
        if self.tokens.is_none() {
            return true;
        }
        // With tokens on, only the server's own user over a channel the
        // kernel vouches for end to end.
        matches!(peer.transport, "uds" | "stdio") && peer.uid.is_some() && peer.uid == self.own_uid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_host_peers_are_trusted_only_when_configured() {
        let local = PeerInfo::new("uds", "/run/gtl.sock");
        assert_eq!(
            Authenticator::new(true)
                .authenticate(&local, "")
                .unwrap()
                .subject,
            "local"
        );
        let err = Authenticator::new(false)
            .authenticate(&local, "")
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::Unauthenticated);
        let user = PeerInfo::new("tcp", "127.0.0.1:5000").with_uid(Some(1000));
        assert_eq!(
            Authenticator::new(true)
                .authenticate(&user, "")
                .unwrap()
                .subject,
            "uid:1000"
        );
        let remote = PeerInfo::new("tcp", "10.0.0.2:5000").with_same_host(false);
        assert!(Authenticator::new(true).authenticate(&remote, "").is_err());
    }

    fn with_tokens() -> (Authenticator, String) {
        let secret = b"0123456789abcdef0123456789abcdef".to_vec();
        let verifier = gtl_auth::Verifier::new(
            gtl_auth::Keys::from_secret(&secret).unwrap(),
            gtl_auth::Settings::default(),
        );
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let token = gtl_auth::mint(
            &gtl_auth::SigningKey::Hs256(secret),
            &gtl_auth::Mint::new("alice", &["chat:read"], now, 60),
        )
        .unwrap();
        let auth = Authenticator::new(true).with_tokens(Arc::new(verifier), Some(1000));
        (auth, token)
    }

    #[test]
    fn a_token_names_its_own_subject_and_bounds_what_it_may_do() {
        let (auth, token) = with_tokens();
        let remote = PeerInfo::new("tcp", "10.0.0.2:5000").with_same_host(false);
        let principal = auth.authenticate(&remote, &token).unwrap();
        assert_eq!(principal.subject, "sub:alice");
        assert!(principal.allows(Operation::Models));
        assert_eq!(
            principal.check(Operation::Chat, 0).unwrap_err().code,
            ErrorCode::PermissionDenied
        );
        let expiry = principal.expires_at.unwrap();
        assert_eq!(
            principal.check(Operation::Models, expiry).unwrap_err().code,
            ErrorCode::Unauthenticated
        );
        assert!(auth.authenticate(&remote, "x.y.z").is_err());
    }

    #[test]
    fn with_tokens_only_the_servers_own_user_on_a_socket_is_trusted() {
        let (auth, _) = with_tokens();
        let own = PeerInfo::new("uds", "/run/gtl.sock").with_uid(Some(1000));
        assert_eq!(auth.authenticate(&own, "").unwrap().subject, "uid:1000");
        for other in [
            PeerInfo::new("uds", "/run/gtl.sock").with_uid(Some(1001)),
            PeerInfo::new("uds", "/run/gtl.sock"),
            PeerInfo::new("tcp", "127.0.0.1:5000").with_uid(Some(1000)),
            PeerInfo::new("quic", "127.0.0.1:5000").with_uid(Some(1000)),
        ] {
            assert!(auth.authenticate(&other, "").is_err(), "{other:?}");
        }
    }

    #[test]
    fn an_api_key_is_a_token_only_when_it_looks_like_one() {
        let (auth, token) = with_tokens();
        let own = PeerInfo::new("uds", "/run/gtl.sock").with_uid(Some(1000));
        // A provider key left in the environment is ignored on a trusted peer.
        assert_eq!(
            auth.authenticate_api_key(&own, "sk-proj-123")
                .unwrap()
                .subject,
            "uid:1000"
        );
        let remote = PeerInfo::new("tcp", "10.0.0.2:5000").with_same_host(false);
        assert!(auth.authenticate_api_key(&remote, "sk-proj-123").is_err());
        assert_eq!(
            auth.authenticate_api_key(&remote, &token).unwrap().subject,
            "sub:alice"
        );
    }

    #[test]
    fn tokens_are_refused_until_token_auth_exists() {
        let local = PeerInfo::new("uds", "/run/gtl.sock");
        let err = Authenticator::new(true)
            .authenticate(&local, "eyJ...")
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::Unauthenticated);
    }
}
