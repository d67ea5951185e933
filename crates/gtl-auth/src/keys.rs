//! Verification keys, each pinned to the algorithms its type allows.
//!
//! A token's `alg` header is never trusted on its own: a key accepts only
//! the algorithms of its own type (an RSA key RS/PS, a P-256 key ES256, an
//! Ed25519 key EdDSA, a shared secret HS), so an RSA public key can never
//! be used as an HMAC secret, and `none` does not exist here.

use std::collections::HashMap;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey};

use base64::Engine as _;

use crate::KeyError;

/// One verification key and the algorithms it may verify.
#[derive(Clone)]
pub(crate) struct Key {
    pub(crate) key: DecodingKey,
    pub(crate) algorithms: Vec<Algorithm>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

const RSA: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];
const HMAC: &[Algorithm] = &[Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];

/// The keys a verifier trusts: by `kid` (from a JWKS), and keys without
/// an id (a PEM key, a shared secret) tried for tokens that name none.
#[derive(Debug, Clone, Default)]
pub struct Keys {
    by_kid: HashMap<String, Key>,
    unnamed: Vec<Key>,
}

impl Keys {
    /// The signing keys of a JWKS document (RFC 7517). Keys for
    /// encryption, symmetric keys (which a published set must not hold)
    /// and keys of unsupported types are skipped.
    pub fn from_jwks(json: &[u8]) -> Result<Self, KeyError> {
        let set: JwkSet = serde_json::from_slice(json)
            .map_err(|e| KeyError(format!("not a JWKS document: {e}")))?;
        let mut keys = Self::default();
        for jwk in &set.keys {
            let Some(key) = jwk_key(jwk) else { continue };
            match &jwk.common.key_id {
                Some(kid) => {
                    keys.by_kid.insert(kid.clone(), key);
                }
                None => keys.unnamed.push(key),
            }
        }
        if keys.by_kid.is_empty() && keys.unnamed.is_empty() {
            return Err(KeyError("the JWKS holds no usable signing key".into()));
        }
        Ok(keys)
    }

    /// A PEM public key (RSA, EC P-256/P-384 or Ed25519, SPKI or PKCS#1).
    pub fn from_pem(pem: &[u8]) -> Result<Self, KeyError> {
        let text = std::str::from_utf8(pem).map_err(|_| KeyError("the PEM is not text".into()))?;
        let key = if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
            Key {
                key,
                algorithms: RSA.to_vec(),
            }
        } else if let Ok(key) = DecodingKey::from_ed_pem(pem) {
            Key {
                key,
                algorithms: vec![Algorithm::EdDSA],
            }
        } else if let Ok(key) = DecodingKey::from_ec_pem(pem) {
            let algorithm = match ec_curve(text) {
                Some(EllipticCurve::P256) => Algorithm::ES256,
                Some(EllipticCurve::P384) => Algorithm::ES384,
                _ => {
                    return Err(KeyError(
                        "only P-256 and P-384 EC keys are supported".into(),
                    ));
                }
            };
            Key {
                key,
                algorithms: vec![algorithm],
            }
        } else {
            return Err(KeyError(
                "not an RSA, EC or Ed25519 public key in PEM form".into(),
            ));
        };
        Ok(Self {
            by_kid: HashMap::new(),
            unnamed: vec![key],
        })
    }

    /// A shared HS256/384/512 secret. It must be at least 32 bytes: a
    /// shorter one can be guessed offline from any token.
    pub fn from_secret(secret: &[u8]) -> Result<Self, KeyError> {
        if secret.len() < 32 {
            return Err(KeyError(format!(
                "the HMAC secret has {} bytes; use at least 32 random bytes",
                secret.len()
            )));
        }
        Ok(Self {
            by_kid: HashMap::new(),
            unnamed: vec![Key {
                key: DecodingKey::from_secret(secret),
                algorithms: HMAC.to_vec(),
            }],
        })
    }

    /// The candidates for a token naming `kid` (or none) with `alg`.
    /// `None` when `kid` is named but unknown: the caller may refresh.
    pub(crate) fn candidates(&self, kid: Option<&str>, alg: Algorithm) -> Option<Vec<&Key>> {
        let pinned = |key: &&Key| key.algorithms.contains(&alg);
        match kid {
            Some(kid) => self
                .by_kid
                .get(kid)
                .map(|key| std::iter::once(key).filter(pinned).collect()),
            None => Some(self.unnamed.iter().filter(pinned).collect()),
        }
    }

    /// How many keys there are.
    pub fn len(&self) -> usize {
        self.by_kid.len() + self.unnamed.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn jwk_key(jwk: &Jwk) -> Option<Key> {
    use jsonwebtoken::jwk::PublicKeyUse;
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return None;
    }
    let by_type: Vec<Algorithm> = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => RSA.to_vec(),
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => vec![Algorithm::ES256],
            EllipticCurve::P384 => vec![Algorithm::ES384],
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(_) => vec![Algorithm::EdDSA],
        _ => return None,
    };
    // A key that declares its algorithm verifies only that one.
    let algorithms = match jwk
        .common
        .key_algorithm
        .and_then(|declared| Algorithm::try_from(declared).ok())
    {
        Some(declared) if by_type.contains(&declared) => vec![declared],
        Some(_) => return None,
        None => by_type,
    };
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(Key { key, algorithms })
}

/// The curve of an EC public key in PEM, from its SPKI's named-curve OID.
fn ec_curve(pem: &str) -> Option<EllipticCurve> {
    const P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    const P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
    let body: String = pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .ok()?;
    let has = |oid: &[u8]| der.windows(oid.len()).any(|w| w == oid);
    if has(P256) {
        Some(EllipticCurve::P256)
    } else if has(P384) {
        Some(EllipticCurve::P384)
    } else {
        None
    }
}
