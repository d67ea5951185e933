//! The authentication seam: every call's credentials are checked here, the
//! same way for every transport.
//!
//! Three ways in:
//!
//! - **Local users** ([`LocalUsers`]): stdio, in-process and Unix-socket
//!   callers whose user the kernel names, running as the server's own user
//!   (or a configured one). Each user is its own subject, `uid:<n>`, owns
//!   its own sessions and has every scope.
//! - **The local token**: a token the server signs with a key only it (and
//!   its user) can read, for its own user's clients on loopback TCP, HTTP
//!   and QUIC. Its holder is that user's subject, so a session started over
//!   the Unix socket resumes over QUIC.
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

    /// A number that changes whenever the keys do (a JWKS refresh), so
    /// that tokens verified with the old keys are checked again.
    fn keys_version(&self) -> u64 {
        0
    }
}

impl TokenVerifier for gtl_auth::Verifier {
    fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        Self::verify(self, token)
    }
}

/// The users a server trusts on this host without a token: those the
/// kernel names end to end.
///
/// stdio and in-process callers run as the server's own user (they
/// started it, or are it); a Unix-socket peer is trusted when
/// `SO_PEERCRED` says it runs as that user or as one of `uids`, or in one
/// of `gids`. Loopback TCP, HTTP and QUIC peers are never trusted this
/// way: any page a browser on this host loads, and any local user, can
/// reach those ports. They present a token (on this host, the server's
/// local one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LocalUsers {
    /// The user the server runs as, where known.
    pub own_uid: Option<u32>,
    /// Further users trusted on the Unix socket.
    pub uids: Vec<u32>,
    /// Groups whose members are trusted on the Unix socket.
    pub gids: Vec<u32>,
}

impl LocalUsers {
    /// The server's own user only.
    pub fn new(own_uid: Option<u32>) -> Self {
        Self {
            own_uid,
            uids: Vec::new(),
            gids: Vec::new(),
        }
    }

    /// Also trusts these users and groups on the Unix socket.
    #[must_use]
    pub fn with_others(mut self, uids: Vec<u32>, gids: Vec<u32>) -> Self {
        self.uids = uids;
        self.gids = gids;
        self
    }

    /// The subject of the server's own user.
    fn own_subject(&self) -> String {
        self.own_uid
            .map_or_else(|| "local".to_owned(), |uid| format!("uid:{uid}"))
    }

    /// The subject `peer` is trusted as, if any.
    fn subject_of(&self, peer: &PeerInfo) -> Option<String> {
        match peer.transport {
            "stdio" | "embedded" => Some(self.own_subject()),
            "uds" => {
                let uid = peer.uid?;
                let trusted = Some(uid) == self.own_uid
                    || self.uids.contains(&uid)
                    || peer.gid.is_some_and(|gid| self.gids.contains(&gid));
                trusted.then(|| format!("uid:{uid}"))
            }
            _ => None,
        }
    }
}

/// Who may call without a token.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Trust {
    /// Nobody: every caller presents a token.
    Nobody,
    /// Every peer on this host, each user its own subject (for embedding
    /// and tests on a single-user machine).
    SameHost,
    /// The users the kernel vouches for (a server's setting).
    Users(LocalUsers),
}

/// Decides who a connection is.
#[derive(Debug, Clone)]
pub struct Authenticator {
    trust: Trust,
    tokens: Option<Arc<dyn TokenVerifier>>,
    /// Verifies the server's local token, and whose it is.
    local_token: Option<(Arc<dyn TokenVerifier>, String)>,
    verified: Arc<Verified>,
}

/// Tokens already verified, each until it expires or the keys change.
/// Checking a signature and decoding the claims is the dearest step of an
/// HTTP call, and an SDK sends the same bearer token with every request. A
/// JWKS refresh changes [`TokenVerifier::keys_version`]; a reload builds a
/// new authenticator.
#[derive(Debug, Default)]
struct Verified {
    /// By token and whether the peer was on this host (the local token
    /// counts only from there): the principal without its transport, and
    /// the keys' version it was verified with.
    entries: std::sync::Mutex<std::collections::HashMap<VerifiedKey, (Principal, u64)>>,
}

/// A remembered token: the token, and whether its peer was on this host.
type VerifiedKey = (Box<str>, bool);

/// Verified tokens kept at once; when full, the cache starts over.
const VERIFIED_TOKENS: usize = 4_096;

impl Verified {
    fn get(&self, token: &str, same_host: bool, keys: u64) -> Option<Principal> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (principal, version) = entries.get(&(Box::from(token), same_host))?;
        if *version != keys {
            return None;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        // Past its expiry the verifier decides again (with its leeway).
        principal
            .expires_at
            .is_some_and(|at| now < at)
            .then(|| principal.clone())
    }

    fn insert(&self, token: &str, same_host: bool, keys: u64, principal: &Principal) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= VERIFIED_TOKENS {
            entries.clear();
        }
        entries.insert((Box::from(token), same_host), (principal.clone(), keys));
    }
}

impl Authenticator {
    /// An authenticator; `trust_same_host` accepts every peer on this host
    /// without a token, loopback ones included (each user, where the OS
    /// says, its own subject). A server trusts less:
    /// [`local_users`](Self::local_users).
    pub fn new(trust_same_host: bool) -> Self {
        Self {
            trust: if trust_same_host {
                Trust::SameHost
            } else {
                Trust::Nobody
            },
            tokens: None,
            local_token: None,
            verified: Arc::default(),
        }
    }

    /// An authenticator that trusts only `users` without a token (see
    /// [`LocalUsers`]).
    pub fn local_users(users: LocalUsers) -> Self {
        Self {
            trust: Trust::Users(users),
            tokens: None,
            local_token: None,
            verified: Arc::default(),
        }
    }

    /// Verifies GhostTokens with `verifier`.
    #[must_use]
    pub fn with_tokens(mut self, verifier: Arc<dyn TokenVerifier>) -> Self {
        self.tokens = Some(verifier);
        self.verified = Arc::default();
        self
    }

    /// Accepts the server's local token, as `verifier` checks it, from
    /// peers on this host: its holder is the server's own user (the
    /// subject of [`LocalUsers::own_uid`], so its sessions are the ones
    /// that user starts over the Unix socket) with every scope.
    #[must_use]
    pub fn with_local_token(mut self, verifier: Arc<dyn TokenVerifier>) -> Self {
        let subject = match &self.trust {
            Trust::Users(users) => users.own_subject(),
            _ => "local".to_owned(),
        };
        self.local_token = Some((verifier, subject));
        self.verified = Arc::default();
        self
    }

    /// Whether tokens are verified.
    pub fn verifies_tokens(&self) -> bool {
        self.tokens.is_some() || self.local_token.is_some()
    }

    /// Authenticates a caller of the OpenAI- or Anthropic-compatible
    /// routes from its peer and its API key (`Authorization: Bearer …` or
    /// `x-api-key`).
    ///
    /// Those SDKs refuse to send a request without a key, and users often
    /// leave their real provider key in the environment. A key that looks
    /// like a JWT is a GhostToken and is verified (when tokens are on);
    /// any other key is ignored (never checked, logged or forwarded), so
    /// a trusted caller may send any value.
    pub fn authenticate_api_key(&self, peer: &PeerInfo, key: &str) -> Result<Principal, AuthError> {
        if self.verifies_tokens() && key.split('.').count() == 3 {
            return self.authenticate(peer, key);
        }
        self.authenticate(peer, "")
    }

    /// Authenticates a connection from its peer and the hello's token.
    pub fn authenticate(&self, peer: &PeerInfo, token: &str) -> Result<Principal, AuthError> {
        // Trusting every same-host peer, a server without token keys has
        // nothing to check a same-host caller's token with, nor needs to
        // (a local token a client found for another gateway, say).
        let ignored = self.trust == Trust::SameHost && peer.same_host && !self.verifies_tokens();
        if !token.is_empty() && !ignored {
            return self.authenticate_token(peer, token);
        }
        let subject = match &self.trust {
            Trust::Nobody => None,
            Trust::SameHost => peer.same_host.then(|| match peer.uid {
                Some(uid) => format!("uid:{uid}"),
                None => "local".into(),
            }),
            Trust::Users(users) => users.subject_of(peer),
        };
        if let Some(subject) = subject {
            return Ok(Principal {
                transport: peer.transport,
                ..Principal::local(subject)
            });
        }
        Err(AuthError {
            code: ErrorCode::Unauthenticated,
            message: self.untrusted(peer),
        })
    }

    fn authenticate_token(&self, peer: &PeerInfo, token: &str) -> Result<Principal, AuthError> {
        let keys = self.tokens.as_ref().map_or(0, |t| t.keys_version());
        if let Some(principal) = self.verified.get(token, peer.same_host, keys) {
            return Ok(Principal {
                transport: peer.transport,
                ..principal
            });
        }
        let principal = self.verify_token(peer, token)?;
        self.verified
            .insert(token, peer.same_host, keys, &principal);
        Ok(principal)
    }

    fn verify_token(&self, peer: &PeerInfo, token: &str) -> Result<Principal, AuthError> {
        let refused = |message: String| AuthError {
            code: ErrorCode::Unauthenticated,
            message,
        };
        if let Some((local, subject)) = &self.local_token
            && peer.same_host
        {
            match local.verify(token) {
                Ok(claims) => {
                    return Ok(Principal {
                        expires_at: Some(claims.expires_at),
                        transport: peer.transport,
                        ..Principal::local(subject.clone())
                    });
                }
                Err(e) if self.tokens.is_none() => {
                    return Err(refused(format!(
                        "{e}: this server takes only its local token (`gtl token show` prints \
                         it); configure [auth] for others"
                    )));
                }
                // Not the local token: perhaps an issuer's.
                Err(_) => {}
            }
        }
        let Some(tokens) = &self.tokens else {
            return Err(refused(
                "token authentication is not configured on this server: configure [auth], or, \
                 on the gateway's host, use its local token (`gtl token show`)"
                    .into(),
            ));
        };
        let claims = tokens.verify(token).map_err(|e| refused(e.to_string()))?;
        Ok(Principal {
            subject: format!("sub:{}", claims.subject),
            scopes: Some(claims.scopes),
            expires_at: Some(claims.expires_at),
            transport: peer.transport,
            provider_keys: claims.provider_keys,
        })
    }

    /// Why `peer` is not trusted without a token, and what to do.
    fn untrusted(&self, peer: &PeerInfo) -> String {
        if peer.transport == "uds"
            && let Trust::Users(_) = self.trust
        {
            return match peer.uid {
                Some(uid) => format!(
                    "this Unix-socket peer runs as uid {uid}, not as the gateway's user: \
                     present a token, or add the user to auth.trusted_uids"
                ),
                None => "the OS does not say who this Unix-socket peer is: present a token".into(),
            };
        }
        let local = if peer.same_host && self.local_token.is_some() {
            " (on this host, the gateway's local token: `gtl token show` prints it, and gtl \
             sends it by itself)"
        } else {
            ""
        };
        format!(
            "{} peer {} is not trusted without a token: present one{local}; see docs/security.md",
            peer.transport, peer.addr
        )
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
        let auth =
            Authenticator::local_users(LocalUsers::new(Some(1000))).with_tokens(Arc::new(verifier));
        (auth, token)
    }

    fn hs256(
        secret: &[u8],
        subject: &str,
        settings: gtl_auth::Settings,
    ) -> (Arc<dyn TokenVerifier>, String) {
        let verifier =
            gtl_auth::Verifier::new(gtl_auth::Keys::from_secret(secret).unwrap(), settings);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let token = gtl_auth::mint(
            &gtl_auth::SigningKey::Hs256(secret.to_vec()),
            &gtl_auth::Mint::new(subject, &["chat:*"], now, 60),
        )
        .unwrap();
        (Arc::new(verifier), token)
    }

    #[test]
    fn a_verified_token_is_remembered_only_for_its_peer_kind_and_lifetime() {
        let (local, token) = hs256(
            b"local-key-local-key-local-key-32",
            "me",
            Default::default(),
        );
        let auth = Authenticator::local_users(LocalUsers::new(Some(1000))).with_local_token(local);
        let tcp = PeerInfo::new("tcp", "127.0.0.1:5000");
        let ws = PeerInfo::new("ws", "127.0.0.1:5001");
        assert_eq!(auth.authenticate(&tcp, &token).unwrap().transport, "tcp");
        // Served from the cache, with the second caller's transport.
        let again = auth.authenticate(&ws, &token).unwrap();
        assert_eq!(
            (again.subject.as_str(), again.transport),
            ("uid:1000", "ws")
        );
        // The local token counts only from this host, cached or not.
        let remote = PeerInfo::new("tcp", "10.0.0.2:5000").with_same_host(false);
        assert!(auth.authenticate(&remote, &token).is_err());
        // An expired entry is not served.
        let mut expired = again.clone();
        expired.expires_at = Some(1);
        auth.verified.insert("forged", true, 0, &expired);
        assert!(auth.authenticate(&tcp, "forged").is_err());
    }

    #[test]
    fn loopback_peers_need_a_token_and_the_local_one_is_the_servers_user() {
        let (local, token) = hs256(
            b"local-key-local-key-local-key-32",
            "me",
            Default::default(),
        );
        let auth = Authenticator::local_users(LocalUsers::new(Some(1000))).with_local_token(local);
        let tcp = PeerInfo::new("tcp", "127.0.0.1:5000").with_uid(Some(1000));
        let err = auth.authenticate(&tcp, "").unwrap_err();
        assert_eq!(err.code, ErrorCode::Unauthenticated);
        assert!(err.message.contains("gtl token show"), "{}", err.message);
        let principal = auth.authenticate(&tcp, &token).unwrap();
        assert_eq!(principal.subject, "uid:1000");
        assert!(principal.allows(Operation::ControlSession));
        assert!(principal.expires_at.is_some());
        // The same token from another host is refused: it proves nothing there.
        let remote = PeerInfo::new("tcp", "10.0.0.2:5000").with_same_host(false);
        assert!(auth.authenticate(&remote, &token).is_err());
        // A token signed with another key is not the local one.
        let (_, forged) = hs256(
            b"someone-elses-key-someone-elses!",
            "me",
            Default::default(),
        );
        let err = auth.authenticate(&tcp, &forged).unwrap_err();
        assert!(err.message.contains("local token"), "{}", err.message);
        // The compatible APIs take it as their API key; other keys are not trusted.
        assert_eq!(
            auth.authenticate_api_key(&tcp, &token).unwrap().subject,
            "uid:1000"
        );
        assert!(auth.authenticate_api_key(&tcp, "sk-anything").is_err());
        // stdio and the server's own user on its socket need nothing.
        let stdio = PeerInfo::new("stdio", "-");
        assert_eq!(auth.authenticate(&stdio, "").unwrap().subject, "uid:1000");
        let own = PeerInfo::new("uds", "/run/gtl.sock").with_uid(Some(1000));
        assert_eq!(auth.authenticate(&own, "").unwrap().subject, "uid:1000");
    }

    #[test]
    fn the_local_token_and_an_issuers_tokens_are_told_apart() {
        let (local, local_token) = hs256(
            b"local-key-local-key-local-key-32",
            "me",
            Default::default(),
        );
        let (issuer, issued) = hs256(
            b"issuer-key-issuer-key-issuer-key",
            "alice",
            Default::default(),
        );
        let auth = Authenticator::local_users(LocalUsers::new(Some(1000)))
            .with_tokens(issuer)
            .with_local_token(local);
        let tcp = PeerInfo::new("tcp", "127.0.0.1:5000");
        assert_eq!(
            auth.authenticate(&tcp, &local_token).unwrap().subject,
            "uid:1000"
        );
        let principal = auth.authenticate(&tcp, &issued).unwrap();
        assert_eq!(principal.subject, "sub:alice");
        assert!(!principal.allows(Operation::ReadSession));
    }

    #[test]
    fn other_users_on_the_socket_are_trusted_only_when_listed() {
        let peer = |uid, gid| {
            PeerInfo::new("uds", "/run/gtl.sock")
                .with_uid(Some(uid))
                .with_gid(Some(gid))
        };
        let own_only = Authenticator::local_users(LocalUsers::new(Some(1000)));
        let err = own_only.authenticate(&peer(1001, 1001), "").unwrap_err();
        assert!(err.message.contains("uid 1001"), "{}", err.message);
        let listed = Authenticator::local_users(
            LocalUsers::new(Some(1000)).with_others(vec![1001], vec![2000]),
        );
        assert_eq!(
            listed.authenticate(&peer(1001, 1001), "").unwrap().subject,
            "uid:1001"
        );
        assert_eq!(
            listed.authenticate(&peer(1002, 2000), "").unwrap().subject,
            "uid:1002"
        );
        assert!(listed.authenticate(&peer(1003, 1003), "").is_err());
        // A socket peer the OS does not name is never trusted.
        assert!(
            listed
                .authenticate(&PeerInfo::new("uds", "/run/gtl.sock"), "")
                .is_err()
        );
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
        let remote = PeerInfo::new("tcp", "10.0.0.2:5000").with_same_host(false);
        let err = Authenticator::new(true)
            .authenticate(&remote, "eyJ...")
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::Unauthenticated);
        assert!(err.message.contains("not configured"), "{}", err.message);
        let err = Authenticator::local_users(LocalUsers::new(Some(1000)))
            .authenticate(&PeerInfo::new("tcp", "127.0.0.1:5000"), "eyJ...")
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::Unauthenticated);
        // Trusting every same-host peer anyway, such a server ignores theirs.
        let local = PeerInfo::new("tcp", "127.0.0.1:5000");
        assert_eq!(
            Authenticator::new(true)
                .authenticate(&local, "eyJ...")
                .unwrap()
                .subject,
            "local"
        );
    }
}
