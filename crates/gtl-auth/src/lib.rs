//! GhostToken verification: who a caller is and what it may do.
//!
//! A GhostToken is a JWT. [`Verifier::verify`] checks it against trusted
//! [`Keys`] — a JWKS (by `kid`), a PEM public key, or an HS256 secret —
//! with each key pinned to the algorithms of its own type (see
//! [`Keys`]), then `exp` and `nbf` (with a small leeway), `iss`, `aud`
//! (default `gtl`) and `sub`. The result is [`Claims`]: the subject, its
//! [`Scopes`], and provider keys encrypted to the server. Each operation
//! needs one scope ([`Operation::scope`]).
//!
//! This crate does no IO: the server fetches a JWKS (or discovers it from
//! an OIDC issuer) and hands the document to [`Keys::from_jwks`];
//! [`TokenError::UnknownKey`] tells it when a refresh may help. [`mint`]
//! signs tokens for development and tests.
//!
//! # Example
//!
//! ```
//! use gtl_auth::{Keys, Mint, Operation, Settings, SigningKey, Verifier, mint};
//!
//! let secret = b"0123456789abcdef0123456789abcdef".to_vec();
//! let now = std::time::SystemTime::now()
//!     .duration_since(std::time::UNIX_EPOCH)
//!     .unwrap()
//!     .as_secs();
//! let token = mint(
//!     &SigningKey::Hs256(secret.clone()),
//!     &Mint::new("alice", &["chat:*"], now, 3600),
//! )?;
//!
//! let verifier = Verifier::new(Keys::from_secret(&secret)?, Settings::default());
//! let claims = verifier.verify(&token).expect("a valid token");
//! assert_eq!(claims.subject, "alice");
//! assert!(claims.scopes.allows(Operation::Chat));
//! assert!(!claims.scopes.allows(Operation::ReadSession));
//! # Ok::<(), gtl_auth::KeyError>(())
//! ```

#![doc(test(no_crate_inject, attr(deny(warnings))))]

mod keys;
mod mint;
mod scope;
mod verify;

pub use keys::Keys;
pub use mint::{Mint, SigningKey, mint};
pub use scope::{Operation, Scopes};
pub use verify::{Claims, Settings, TokenError, Verifier};

/// A key, key set or secret is unusable; the message says why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(pub(crate) String);
