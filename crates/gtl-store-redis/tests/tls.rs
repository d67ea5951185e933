//! `rediss://` and a password, against a real `redis-server` serving TLS
//! with a certificate from a CA of the test's own (`[sessions]
//! redis_ca_file`).

use std::time::Duration;

use gtl_core::SessionStore as _;
use gtl_core::store_conformance::{meta, token};
use gtl_store_redis::{RedisConfig, RedisStore};
use gtl_test::RedisServer;

#[tokio::test]
async fn rediss_with_a_private_ca_and_a_password_wrong_password_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "gtl test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".into()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let (ca_pem, cert_pem, key_pem) = (
        dir.path().join("ca.pem"),
        dir.path().join("cert.pem"),
        dir.path().join("key.pem"),
    );
    std::fs::write(&ca_pem, ca_cert.pem()).unwrap();
    std::fs::write(&cert_pem, leaf.pem()).unwrap();
    std::fs::write(&key_pem, key.serialize_pem()).unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();

    let server = RedisServer::start_tls(&cert_pem, &key_pem).unwrap();
    let url = server.url();
    assert!(url.starts_with("rediss://"), "{url}");
    // The system's roots do not know the test's CA.
    assert!(
        RedisStore::connect(RedisConfig::new(url.clone()))
            .await
            .is_err()
    );
    let store = RedisStore::connect(RedisConfig::new(url.clone()).with_ca_file(&ca_pem))
        .await
        .unwrap();
    store.create(&meta("s_1", 1)).await.unwrap();
    store
        .append("s_1", &[(1, token("over TLS"))])
        .await
        .unwrap();
    let loaded = store.load("s_1").await.unwrap().unwrap();
    assert_eq!(loaded.events, [(1, token("over TLS"))]);
    let tail = store
        .tail("s_1", 0, Duration::from_millis(100))
        .await
        .unwrap();
    assert_eq!(tail.len(), 1);
    // Plain TCP to the TLS port fails fast; it does not hang.
    let plain = url.replace("rediss://", "redis://");
    assert!(RedisStore::connect(RedisConfig::new(plain)).await.is_err());

    let guarded = RedisServer::start_with_password("s3cret-pass").unwrap();
    let with = guarded.url().replace("redis://", "redis://:s3cret-pass@");
    let store = RedisStore::connect(RedisConfig::new(with)).await.unwrap();
    store.create(&meta("s_2", 2)).await.unwrap();
    let wrong = guarded.url().replace("redis://", "redis://:wrong@");
    let refused = RedisStore::connect(RedisConfig::new(wrong))
        .await
        .unwrap_err();
    // The store error does not carry the password.
    assert!(!format!("{refused:?}").contains("wrong@"), "{refused:?}");
}
