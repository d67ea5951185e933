//! `wss://` with a self-signed certificate for `localhost` (a test-only
//! key pair checked in under `certs/`).

use std::sync::Arc;

use gtl_proto::DEFAULT_MAX_FRAME_BYTES;
use gtl_transport::{Connector as _, PeerInfo};
use gtl_transport_ws::WsConnector;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;

use crate::util::token;

const CERT: &[u8] = include_bytes!("certs/cert.pem");
const KEY: &[u8] = include_bytes!("certs/key.pem");

#[tokio::test]
async fn wss_round_trip() {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cert = CertificateDer::from_pem_slice(CERT).unwrap();
    let key = PrivateKeyDer::from_pem_slice(KEY).unwrap();
    let server_config = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let client_config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
    let server = async {
        let (stream, addr) = listener.accept().await.unwrap();
        let stream = acceptor.accept(stream).await.unwrap();
        gtl_transport_ws::accept(
            stream,
            PeerInfo::new("ws", addr.to_string()),
            DEFAULT_MAX_FRAME_BYTES,
        )
        .await
        .unwrap()
    };
    let connector = WsConnector::new(&format!("wss://localhost:{port}"))
        .unwrap()
        .with_tls_config(Arc::new(client_config));
    assert_eq!(
        connector.endpoint(),
        format!("wss://localhost:{port}/gtl/v1/ws")
    );
    let (client, mut server) = tokio::join!(connector.connect(), server);
    let mut client = client.unwrap();
    let frame = token(1, "secure");
    client.write.write_frame(frame.as_ref()).unwrap();
    client.write.flush().await.unwrap();
    assert_eq!(server.read.read_frame().await.unwrap(), Some(frame));
}
