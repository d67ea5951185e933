//! The authentication seam: every call's credentials are checked here, the
//! same way for every transport.
//!
//! Today only same-host trust exists (by configuration): stdio, Unix
//! sockets and loopback TCP are on this machine, where the OS says who the
//! peer is. Each local user is its own subject, `uid:<n>` (on any of those
//! transports, so a session started over one resumes over another), and
//! owns its own sessions; a peer whose user the OS does not tell is
//! `local`. Token validation plugs in here.

use gtl_proto::ErrorCode;
use gtl_transport::PeerInfo;

/// Who is calling, once authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Principal {
    /// The subject that owns the caller's sessions.
    pub subject: String,
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

/// Decides who a connection is.
#[derive(Debug, Clone)]
pub struct Authenticator {
    trust_same_host: bool,
}

impl Authenticator {
    /// An authenticator; `trust_same_host` accepts same-host peers without a
    /// token.
    pub fn new(trust_same_host: bool) -> Self {
        Self { trust_same_host }
    }

    /// Authenticates a caller of the OpenAI- or Anthropic-compatible
    /// routes from its peer and its API key (`Authorization: Bearer …` or
    /// `x-api-key`).
    ///
    /// Those SDKs refuse to send a request without a key, and users often
    /// leave their real provider key in the environment: until this server
    /// verifies GTL tokens, a same-host caller's key is ignored (never
    /// checked, logged or forwarded), so any value or none works there, as
    /// on the native transports without a token.
    pub fn authenticate_api_key(
        &self,
        peer: &PeerInfo,
        _key: &str,
    ) -> Result<Principal, AuthError> {
        self.authenticate(peer, "")
    }

    /// Authenticates a connection from its peer and the hello's token.
    pub fn authenticate(&self, peer: &PeerInfo, token: &str) -> Result<Principal, AuthError> {
        if !token.is_empty() {
            return Err(AuthError {
                code: ErrorCode::Unauthenticated,
                message: "token authentication is not configured on this server: connect \
                          without a token over a same-host transport"
                    .into(),
            });
        }
        if self.trust_same_host && peer.same_host {
            let subject = match peer.uid {
                Some(uid) => format!("uid:{uid}"),
                None => "local".into(),
            };
            return Ok(Principal { subject });
        }
        Err(AuthError {
            code: ErrorCode::Unauthenticated,
            message: format!(
                "{} peer {} is not trusted: set auth.trust_same_host or present a token",
                peer.transport, peer.addr
            ),
        })
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

    #[test]
    fn tokens_are_refused_until_token_auth_exists() {
        let local = PeerInfo::new("uds", "/run/gtl.sock");
        let err = Authenticator::new(true)
            .authenticate(&local, "eyJ...")
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::Unauthenticated);
    }
}
