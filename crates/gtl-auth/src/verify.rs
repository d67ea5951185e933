//! Checking a GhostToken: signature, algorithm, time, issuer, audience,
//! subject; then its scopes and provider keys.

use std::collections::BTreeMap;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Validation, decode, decode_header};
use serde_json::Value;

use crate::{Keys, Scopes};

/// What a verifier requires of a token besides a valid signature.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Settings {
    /// The `iss` a token must have; `None` accepts any (only sensible with
    /// a key that only one issuer holds).
    pub issuer: Option<String>,
    /// The `aud` a token must include.
    pub audience: String,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    pub leeway_secs: u64,
    /// The claim holding the scopes (an array, or a space-separated
    /// string); the standard `scope` string is read too.
    pub scopes_claim: String,
    /// The scopes of a valid token that names none (ID tokens from Google
    /// or GitHub Actions carry no scopes); empty grants nothing.
    pub default_scopes: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            issuer: None,
            audience: "gtl".into(),
            leeway_secs: 30,
            scopes_claim: "scopes".into(),
            default_scopes: Vec::new(),
        }
    }
}

/// A verified token's claims.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Claims {
    /// The subject: who owns the caller's sessions.
    pub subject: String,
    /// The issuer, when the token has one.
    pub issuer: Option<String>,
    /// What the token allows.
    pub scopes: Scopes,
    /// When the token expires (Unix seconds).
    pub expires_at: u64,
    /// Provider keys encrypted to the server, by provider
    /// (`provider_keys` claim).
    pub provider_keys: BTreeMap<String, String>,
}

/// Why a token was refused. Each message says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not a JWT (three base64url parts of JSON), or an unknown `alg`.
    #[error("the token is not a well-formed JWT: {0}")]
    Malformed(String),
    /// The token names a key (`kid`) this server does not know.
    #[error(
        "the token's key `{0}` is not in the issuer's key set: the key was rotated out, or the token is from another issuer"
    )]
    UnknownKey(String),
    /// No trusted key may verify the token's algorithm.
    #[error("no trusted key verifies `{0}` tokens: the algorithm does not match the key type")]
    Algorithm(String),
    /// The signature does not verify.
    #[error("the token's signature does not verify: it was altered or signed by another key")]
    Signature,
    /// `exp` is past.
    #[error("the token has expired: get a new one")]
    Expired,
    /// `nbf` is in the future.
    #[error("the token is not valid yet (nbf): check this host's clock")]
    NotYetValid,
    /// `iss` is not the configured issuer.
    #[error("the token's issuer is not the one this server trusts")]
    Issuer,
    /// `aud` does not include this server's audience.
    #[error("the token is not for this audience (aud must include `{0}`)")]
    Audience(String),
    /// A required claim is absent or of the wrong type.
    #[error("the token lacks the `{0}` claim or it has the wrong type")]
    Claim(String),
}

/// Checks tokens against [`Keys`] and [`Settings`].
#[derive(Debug, Clone)]
pub struct Verifier {
    keys: Keys,
    settings: Settings,
}

impl Verifier {
    /// A verifier trusting `keys`.
    pub fn new(keys: Keys, settings: Settings) -> Self {
        Self { keys, settings }
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Replaces the keys (a refreshed JWKS).
    pub fn set_keys(&mut self, keys: Keys) {
        self.keys = keys;
    }

    /// Verifies `token`: its header's algorithm against the key's type,
    /// its signature, then `exp`, `nbf` (with the leeway), `iss`, `aud`
    /// and `sub`.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let header = decode_header(token).map_err(|e| TokenError::Malformed(e.to_string()))?;
        let candidates = self
            .keys
            .candidates(header.kid.as_deref(), header.alg)
            .ok_or_else(|| TokenError::UnknownKey(header.kid.clone().unwrap_or_default()))?;
        if candidates.is_empty() {
            return Err(TokenError::Algorithm(format!("{:?}", header.alg)));
        }
        let mut validation = Validation::new(header.alg);
        validation.leeway = self.settings.leeway_secs;
        validation.validate_nbf = true;
        validation.set_audience(&[&self.settings.audience]);
        let mut required = vec!["exp", "sub", "aud"];
        if let Some(issuer) = &self.settings.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);
        let mut last = TokenError::Signature;
        for key in candidates {
            match decode::<Value>(token, &key.key, &validation) {
                Ok(data) => return self.claims(&data.claims),
                Err(e) => {
                    last = self.error(e.kind());
                    if !matches!(last, TokenError::Signature) {
                        // The signature verified: the claims are wrong,
                        // whichever other key is tried.
                        return Err(last);
                    }
                }
            }
        }
        Err(last)
    }

    fn error(&self, kind: &ErrorKind) -> TokenError {
        match kind {
            ErrorKind::InvalidSignature => TokenError::Signature,
            ErrorKind::ExpiredSignature => TokenError::Expired,
            ErrorKind::ImmatureSignature => TokenError::NotYetValid,
            ErrorKind::InvalidIssuer => TokenError::Issuer,
            ErrorKind::InvalidAudience => TokenError::Audience(self.settings.audience.clone()),
            ErrorKind::MissingRequiredClaim(claim) => TokenError::Claim(claim.clone()),
            ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                TokenError::Algorithm("the token's".into())
            }
            other => TokenError::Malformed(format!("{other:?}")),
        }
    }

    fn claims(&self, claims: &Value) -> Result<Claims, TokenError> {
        let string = |name: &str| claims.get(name).and_then(Value::as_str);
        let subject = string("sub")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| TokenError::Claim("sub".into()))?
            .to_owned();
        let scopes = match claims.get(&self.settings.scopes_claim) {
            Some(Value::Array(names)) => Scopes::new(
                names
                    .iter()
                    .map(|n| {
                        n.as_str()
                            .ok_or_else(|| TokenError::Claim(self.settings.scopes_claim.clone()))
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            Some(Value::String(spaced)) => Scopes::parse(spaced),
            Some(_) => return Err(TokenError::Claim(self.settings.scopes_claim.clone())),
            None => match string("scope") {
                Some(spaced) => Scopes::parse(spaced),
                None => Scopes::new(self.settings.default_scopes.iter().cloned()),
            },
        };
        let provider_keys = match claims.get("provider_keys") {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(Value::Object(keys)) => keys
                .iter()
                .map(|(provider, key)| {
                    key.as_str()
                        .map(|k| (provider.clone(), k.to_owned()))
                        .ok_or_else(|| TokenError::Claim("provider_keys".into()))
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(TokenError::Claim("provider_keys".into())),
        };
        Ok(Claims {
            subject,
            issuer: string("iss").map(str::to_owned),
            scopes,
            expires_at: claims.get("exp").and_then(Value::as_u64).unwrap_or(0),
            provider_keys,
        })
    }
}
