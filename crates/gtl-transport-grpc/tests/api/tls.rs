//! `grpcs://` against the gateway behind tonic's TLS, with a self-signed
//! certificate for `localhost` (the test-only key pair of
//! gtl-transport-ws's tests).

use gtl_proto::Body;
use gtl_transport::{Connector as _, TransportError};
use gtl_transport_grpc::GrpcConnector;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};

use crate::connector::{gateway, handshake};

const CERT: &[u8] = include_bytes!("certs/cert.pem");
const KEY: &[u8] = include_bytes!("certs/key.pem");

/// The gateway over TLS on a free loopback port; its `grpcs://` URL.
async fn serve_tls() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "grpcs://localhost:{}",
        listener.local_addr().unwrap().port()
    );
    let tls = ServerTlsConfig::new().identity(Identity::from_pem(CERT, KEY));
    let server = Server::builder()
        .tls_config(tls)
        .unwrap()
        .add_service(gateway())
        .serve_with_incoming(TcpIncoming::from(listener));
    tokio::spawn(server);
    url
}

#[tokio::test]
async fn grpcs_round_trip() {
    let url = serve_tls().await;
    let connector = GrpcConnector::new(&url)
        .unwrap()
        .with_ca_certificates(CERT)
        .unwrap();
    assert_eq!(connector.endpoint(), url);
    let mut conn = connector.connect().await.unwrap();
    handshake(&mut conn).await;
    let ping = gtl_proto::Frame::control(7, Body::Ping(gtl_proto::Ping { nonce: 42 }));
    conn.write.write_frame(ping.as_ref()).unwrap();
    conn.write.flush().await.unwrap();
    let pong = conn.read.read_frame().await.unwrap().unwrap();
    assert_eq!(pong.call_id, 7);
    assert!(matches!(pong.body, Some(Body::Pong(p)) if p.nonce == 42));
}

#[tokio::test]
async fn an_untrusted_certificate_fails_the_connection() {
    // The system's roots do not know the test certificate.
    let url = serve_tls().await;
    let err = GrpcConnector::new(&url)
        .unwrap()
        .connect()
        .await
        .err()
        .expect("an untrusted server");
    assert!(matches!(err, TransportError::Io(_)), "{err:?}");
    assert!(err.to_string().contains("certificate"), "{err}");
}
