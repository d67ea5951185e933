//! Whom a client trusts: a pinned certificate hash, its CA, never a wrong
//! pin or an expired certificate.

use gtl_transport::Connector as _;
use gtl_transport_quic::QuicConnector;

use crate::{certificate, start, start_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_pin_is_refused() {
    let server = start().await;
    let connector = QuicConnector::new(&server.url)
        .unwrap()
        .with_cert_sha256([7; 32]);
    let error = connector.connect().await.err().unwrap();
    assert!(error.to_string().contains("certificate"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_certificate_is_refused_even_when_pinned() {
    let server = start_with(certificate(-30, -1)).await;
    let error = server.connector().connect().await.err().unwrap();
    assert!(
        error.to_string().to_lowercase().contains("expired"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_the_given_roots_is_trusted() {
    let server = start().await;
    let url = format!("quic://localhost:{}", server.addr.port());
    let connector = QuicConnector::new(&url)
        .unwrap()
        .with_roots(vec![server.cert.clone()])
        .unwrap();
    let conn = crate::handshake(connector.connect().await.unwrap()).await;
    drop(conn);

    // The system's roots do not know a self-signed certificate.
    let error = QuicConnector::new(&server.url)
        .unwrap()
        .connect()
        .await
        .err()
        .unwrap();
    assert!(error.to_string().contains("certificate"), "{error}");
}
