//! Tokens a verifier must accept and every kind it must refuse, for each
//! algorithm and key source. The keys in `keys/` exist only for these
//! tests.

use base64::Engine as _;
use gtl_auth::{Keys, Mint, Operation, Settings, SigningKey, TokenError, Verifier, mint};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

const SECRET: &[u8] = b"an HS256 secret of 32 bytes or more!";

fn key(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/auth/keys/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims() -> Value {
    json!({"sub": "alice", "aud": "gtl", "iss": "https://issuer.test",
           "scopes": ["chat:*"], "iat": now(), "exp": now() + 600})
}

fn signed(alg: Algorithm, private: &[u8], kid: Option<&str>, body: &Value) -> String {
    let key = match alg {
        Algorithm::HS256 => EncodingKey::from_secret(private),
        Algorithm::ES256 => EncodingKey::from_ec_pem(private).unwrap(),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(private).unwrap(),
        _ => EncodingKey::from_rsa_pem(private).unwrap(),
    };
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    encode(&header, body, &key).unwrap()
}

/// A JWKS of the public halves of `keys` (private PEM, algorithm, kid).
fn jwks(keys: &[(&str, Algorithm, &str)]) -> Vec<u8> {
    let set = JwkSet {
        keys: keys
            .iter()
            .map(|(name, alg, kid)| {
                let private = key(name);
                let encoding = match alg {
                    Algorithm::ES256 => EncodingKey::from_ec_pem(&private).unwrap(),
                    Algorithm::EdDSA => EncodingKey::from_ed_pem(&private).unwrap(),
                    _ => EncodingKey::from_rsa_pem(&private).unwrap(),
                };
                let mut jwk = Jwk::from_encoding_key(&encoding, *alg).unwrap();
                jwk.common.key_id = Some((*kid).to_owned());
                jwk
            })
            .collect(),
    };
    serde_json::to_vec(&set).unwrap()
}

fn settings() -> Settings {
    let mut settings = Settings::default();
    settings.issuer = Some("https://issuer.test".into());
    settings
}

fn jwks_verifier() -> Verifier {
    let document = jwks(&[
        ("rsa.key", Algorithm::RS256, "rsa-1"),
        ("ec.key", Algorithm::ES256, "ec-1"),
        ("ed.key", Algorithm::EdDSA, "ed-1"),
    ]);
    Verifier::new(Keys::from_jwks(&document).unwrap(), settings())
}

#[test]
fn every_algorithm_verifies_against_its_key() {
    let verifier = jwks_verifier();
    for (alg, private, kid) in [
        (Algorithm::RS256, "rsa.key", "rsa-1"),
        (Algorithm::ES256, "ec.key", "ec-1"),
        (Algorithm::EdDSA, "ed.key", "ed-1"),
    ] {
        let token = signed(alg, &key(private), Some(kid), &claims());
        let verified = verifier
            .verify(&token)
            .unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        assert_eq!(verified.subject, "alice");
        assert!(verified.scopes.allows(Operation::Chat));
    }
    // PS256 with the same RSA key when the JWKS does not pin RS256.
    let mut unpinned: Value =
        serde_json::from_slice(&jwks(&[("rsa.key", Algorithm::RS256, "r")])).unwrap();
    unpinned["keys"][0].as_object_mut().unwrap().remove("alg");
    let verifier = Verifier::new(
        Keys::from_jwks(unpinned.to_string().as_bytes()).unwrap(),
        settings(),
    );
    let token = signed(Algorithm::PS256, &key("rsa.key"), Some("r"), &claims());
    assert_eq!(verifier.verify(&token).unwrap().subject, "alice");

    // PEM public keys and a shared secret.
    for (alg, private, public) in [
        (Algorithm::RS256, "rsa.key", "rsa.pub"),
        (Algorithm::ES256, "ec.key", "ec.pub"),
        (Algorithm::EdDSA, "ed.key", "ed.pub"),
    ] {
        let verifier = Verifier::new(Keys::from_pem(&key(public)).unwrap(), settings());
        let token = signed(alg, &key(private), None, &claims());
        verifier
            .verify(&token)
            .unwrap_or_else(|e| panic!("{alg:?}: {e}"));
    }
    let verifier = Verifier::new(Keys::from_secret(SECRET).unwrap(), settings());
    verifier
        .verify(&signed(Algorithm::HS256, SECRET, None, &claims()))
        .unwrap();
}

/// What a refused token's error must be.
type Expect = fn(&TokenError) -> bool;

#[test]
fn each_bad_token_is_refused_for_its_own_reason() {
    let verifier = jwks_verifier();
    let rsa = key("rsa.key");
    let good = signed(Algorithm::RS256, &rsa, Some("rsa-1"), &claims());
    let with = |change: &dyn Fn(&mut Value)| {
        let mut body = claims();
        change(&mut body);
        signed(Algorithm::RS256, &rsa, Some("rsa-1"), &body)
    };
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let parts: Vec<&str> = good.split('.').collect();

    // `alg: none`, unsigned.
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        parts[1]
    );
    // HS256 "signed" with the RSA public key as the secret.
    let public_pem = key("rsa.pub");
    let confused = signed(Algorithm::HS256, &public_pem, Some("rsa-1"), &claims());
    // A payload changed after signing.
    let mut tampered_claims = claims();
    tampered_claims["sub"] = json!("mallory");
    let tampered = format!("{}.{}.{}", parts[0], b64(&tampered_claims), parts[2]);
    // Signed by a key the issuer never published, under a known kid.
    let forged = signed(Algorithm::RS256, &key("rsa2.key"), Some("rsa-1"), &claims());

    let cases: Vec<(&str, String, Expect)> = vec![
        ("garbage", "not-a-token".into(), |e| {
            matches!(e, TokenError::Malformed(_))
        }),
        ("alg none", none, |e| matches!(e, TokenError::Malformed(_))),
        ("HS256 with the RSA public key", confused, |e| {
            matches!(e, TokenError::Algorithm(_))
        }),
        ("tampered payload", tampered, |e| {
            matches!(e, TokenError::Signature)
        }),
        ("another key under a known kid", forged, |e| {
            matches!(e, TokenError::Signature)
        }),
        ("expired", with(&|c| c["exp"] = json!(now() - 3600)), |e| {
            matches!(e, TokenError::Expired)
        }),
        (
            "not yet valid",
            with(&|c| c["nbf"] = json!(now() + 3600)),
            |e| matches!(e, TokenError::NotYetValid),
        ),
        (
            "wrong issuer",
            with(&|c| c["iss"] = json!("https://elsewhere.test")),
            |e| matches!(e, TokenError::Issuer),
        ),
        (
            "no issuer",
            with(&|c| {
                c.as_object_mut().unwrap().remove("iss");
            }),
            |e| matches!(e, TokenError::Claim(_)),
        ),
        (
            "wrong audience",
            with(&|c| c["aud"] = json!("someone-else")),
            |e| matches!(e, TokenError::Audience(_)),
        ),
        (
            "no subject",
            with(&|c| {
                c.as_object_mut().unwrap().remove("sub");
            }),
            |e| matches!(e, TokenError::Claim(_)),
        ),
        (
            "no expiry",
            with(&|c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
            |e| matches!(e, TokenError::Claim(_)),
        ),
        (
            "scopes of the wrong type",
            with(&|c| c["scopes"] = json!(7)),
            |e| matches!(e, TokenError::Claim(_)),
        ),
        (
            "unknown kid",
            signed(Algorithm::RS256, &rsa, Some("rotated-out"), &claims()),
            |e| matches!(e, TokenError::UnknownKey(kid) if kid == "rotated-out"),
        ),
        (
            "ES256 header on the RSA key",
            signed(Algorithm::ES256, &key("ec.key"), Some("rsa-1"), &claims()),
            |e| matches!(e, TokenError::Algorithm(_)),
        ),
    ];
    for (name, token, expected) in cases {
        let error = verifier.verify(&token).expect_err(name);
        assert!(expected(&error), "{name}: {error:?}");
        assert!(!error.to_string().is_empty());
    }
    verifier.verify(&good).unwrap();
}

#[test]
fn a_small_leeway_absorbs_clock_skew() {
    let verifier = jwks_verifier();
    let mut body = claims();
    body["exp"] = json!(now() - 5);
    let token = signed(Algorithm::RS256, &key("rsa.key"), Some("rsa-1"), &body);
    verifier.verify(&token).unwrap();
}

#[test]
fn scopes_come_from_the_configured_claim_or_the_standard_scope_string() {
    let mut settings = settings();
    settings.scopes_claim = "permissions".into();
    let verifier = Verifier::new(Keys::from_secret(SECRET).unwrap(), settings);
    let mut body = claims();
    body["permissions"] = json!("session:read tools:*");
    let token = signed(Algorithm::HS256, SECRET, None, &body);
    let scopes = verifier.verify(&token).unwrap().scopes;
    assert!(scopes.allows(Operation::ReadSession) && scopes.allows(Operation::Tools));
    assert!(
        !scopes.allows(Operation::Chat),
        "the other claim is not read"
    );

    // A token naming no scopes gets the configured defaults, else none.
    let mut defaults = Settings::default();
    defaults.default_scopes = vec!["chat:write".into()];
    let bare = json!({"sub": "ci", "aud": "gtl", "exp": now() + 60});
    let token = signed(Algorithm::HS256, SECRET, None, &bare);
    let granted = Verifier::new(Keys::from_secret(SECRET).unwrap(), defaults)
        .verify(&token)
        .unwrap();
    assert!(granted.scopes.allows(Operation::Chat));
    let none = Verifier::new(Keys::from_secret(SECRET).unwrap(), Settings::default())
        .verify(&token)
        .unwrap();
    assert!(!none.scopes.allows(Operation::Chat));

    let verifier = Verifier::new(Keys::from_secret(SECRET).unwrap(), Settings::default());
    let body = json!({"sub": "bob", "aud": ["gtl", "other"], "scope": "chat:read",
                      "exp": now() + 60});
    let claims = verifier
        .verify(&signed(Algorithm::HS256, SECRET, None, &body))
        .unwrap();
    assert!(claims.scopes.allows(Operation::Models));
    assert!(!claims.scopes.allows(Operation::Chat));
}

#[test]
fn minted_tokens_verify_and_carry_provider_keys() {
    let now = now();
    let mut request = Mint::new("carol", &["chat:write", "session:read"], now, 300);
    request.issuer = Some("https://issuer.test".into());
    request
        .provider_keys
        .insert("openai".into(), "age1-encrypted".into());
    for (signing, keys) in [
        (
            SigningKey::Hs256(SECRET.to_vec()),
            Keys::from_secret(SECRET).unwrap(),
        ),
        (
            SigningKey::Pem {
                pem: key("ec.key"),
                kid: None,
            },
            Keys::from_pem(&key("ec.pub")).unwrap(),
        ),
        (
            SigningKey::Pem {
                pem: key("ed.key"),
                kid: None,
            },
            Keys::from_pem(&key("ed.pub")).unwrap(),
        ),
        (
            SigningKey::Pem {
                pem: key("rsa.key"),
                kid: None,
            },
            Keys::from_pem(&key("rsa.pub")).unwrap(),
        ),
    ] {
        let token = mint(&signing, &request).unwrap();
        let claims = Verifier::new(keys, settings()).verify(&token).unwrap();
        assert_eq!(claims.subject, "carol");
        assert_eq!(claims.provider_keys["openai"], "age1-encrypted");
        assert_eq!(claims.expires_at, now + 300);
    }
    assert!(mint(&SigningKey::Hs256(b"short".to_vec()), &request).is_err());
}

#[test]
fn unusable_keys_are_refused_with_a_reason() {
    assert!(Keys::from_secret(b"too short").is_err());
    assert!(
        Keys::from_pem(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n").is_err()
    );
    assert!(Keys::from_jwks(b"{\"keys\": []}").is_err());
    assert!(Keys::from_jwks(b"not json").is_err());
    // A published symmetric key is not trusted.
    let oct = json!({"keys": [{"kty": "oct", "kid": "s", "k": "c2VjcmV0"}]});
    assert!(Keys::from_jwks(oct.to_string().as_bytes()).is_err());
}
