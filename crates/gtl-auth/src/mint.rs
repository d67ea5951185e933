//! Minting tokens, for development, tests and small setups that sign
//! their own (`gtl token mint`).

use std::collections::BTreeMap;

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

use crate::KeyError;

/// The key a token is signed with.
#[derive(Clone)]
#[non_exhaustive]
pub enum SigningKey {
    /// A shared secret (HS256), at least 32 bytes.
    Hs256(Vec<u8>),
    /// A PEM private key: RSA (RS256), EC P-256 (ES256) or Ed25519
    /// (EdDSA), with the `kid` its JWKS entry has.
    Pem {
        /// The private key.
        pem: Vec<u8>,
        /// The key id to put in the header.
        kid: Option<String>,
    },
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Hs256(_) => f.write_str("SigningKey::Hs256(..)"),
            Self::Pem { kid, .. } => write!(f, "SigningKey::Pem {{ kid: {kid:?}, .. }}"),
        }
    }
}

/// The claims of a token to mint.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Mint {
    /// `sub`.
    pub subject: String,
    /// `scopes` (an array).
    pub scopes: Vec<String>,
    /// `iss`, if any.
    pub issuer: Option<String>,
    /// `aud`.
    pub audience: String,
    /// `iat` and `nbf` (Unix seconds).
    pub issued_at: u64,
    /// `exp` (Unix seconds).
    pub expires_at: u64,
    /// `provider_keys`: provider → key encrypted to the server.
    pub provider_keys: BTreeMap<String, String>,
}

impl Mint {
    /// A token for `subject` with `scopes`, valid from `now` for `ttl_secs`,
    /// for the default audience `gtl`.
    pub fn new(subject: impl Into<String>, scopes: &[&str], now: u64, ttl_secs: u64) -> Self {
        Self {
            subject: subject.into(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            issuer: None,
            audience: "gtl".into(),
            issued_at: now,
            expires_at: now.saturating_add(ttl_secs),
            provider_keys: BTreeMap::new(),
        }
    }
}

/// Signs `claims` with `key`.
pub fn mint(key: &SigningKey, claims: &Mint) -> Result<String, KeyError> {
    let (header, encoding) = match key {
        SigningKey::Hs256(secret) => {
            if secret.len() < 32 {
                return Err(KeyError("an HS256 secret needs at least 32 bytes".into()));
            }
            (
                Header::new(Algorithm::HS256),
                EncodingKey::from_secret(secret),
            )
        }
        SigningKey::Pem { pem, kid } => {
            let (alg, encoding) = if let Ok(k) = EncodingKey::from_rsa_pem(pem) {
                (Algorithm::RS256, k)
            } else if let Ok(k) = EncodingKey::from_ed_pem(pem) {
                (Algorithm::EdDSA, k)
            } else if let Ok(k) = EncodingKey::from_ec_pem(pem) {
                (Algorithm::ES256, k)
            } else {
                return Err(KeyError(
                    "not an RSA, EC P-256 or Ed25519 private key in PEM form".into(),
                ));
            };
            let mut header = Header::new(alg);
            header.kid = kid.clone();
            (header, encoding)
        }
    };
    let mut body = json!({
        "sub": claims.subject,
        "aud": claims.audience,
        "scopes": claims.scopes,
        "iat": claims.issued_at,
        "nbf": claims.issued_at,
        "exp": claims.expires_at,
    });
    if let Some(issuer) = &claims.issuer {
        body["iss"] = Value::String(issuer.clone());
    }
    if !claims.provider_keys.is_empty() {
        body["provider_keys"] = json!(claims.provider_keys);
    }
    encode(&header, &body, &encoding).map_err(|e| KeyError(format!("cannot sign: {e}")))
}
