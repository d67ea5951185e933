//! HTTP/3 and WebTransport beside the HTTP port: advertised with
//! `Alt-Svc`, reachable at the URL the HTTP port knows, and closed to pages
//! from other origins as the HTTP routes are.

use gtl_client::proto::{Body, ErrorCode};
use gtl_transport::{Connector as _, client_handshake};
use gtl_transport_quic::WtConnector;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::harness::{Gateway, Transport};

/// The response head of `GET path` on the gateway's HTTP port, with its
/// local token.
async fn get_head(gateway: &Gateway, path: &str) -> String {
    let http_addr = gateway.http_addr();
    let mut stream = tokio::net::TcpStream::connect(http_addr).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {http_addr}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        gateway.token
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response);
    let (head, _) = response.split_once("\r\n\r\n").unwrap();
    head.to_ascii_lowercase()
}

/// A hello with the gateway's local token.
fn with_token(gateway: &Gateway) -> gtl_client::proto::Hello {
    gtl_client::proto::Hello {
        token: gateway.token.clone(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_port_advertises_h3_with_alt_svc() {
    let gateway = Gateway::start().await;
    let info = gateway.webtransport.as_ref().unwrap();
    let wt = gateway.endpoint(Transport::Wt);
    let port = wt
        .split(['/', '?'])
        .nth(2)
        .unwrap()
        .rsplit_once(':')
        .unwrap()
        .1;
    assert_eq!(info.port.to_string(), port);
    let head = get_head(&gateway, "/gtl/v1/models").await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(
        head.contains(&format!("\r\nalt-svc: h3=\":{port}\"")),
        "{head}"
    );
    // Errors advertise it too.
    let head = get_head(&gateway, "/gtl/v1/nowhere").await;
    assert!(head.contains("\r\nalt-svc: h3="), "{head}");
    // What a page is handed: the https:// URL and the certificate's hash,
    // the same certificate the wt:// endpoint pins.
    assert_eq!(info.url, format!("https://127.0.0.1:{port}/gtl/v1/wt"));
    assert!(wt.ends_with(&format!("?cert_sha256={}", info.cert_sha256_hex())));
    let pem = gateway.dir.path().join("data/tls/cert.pem");
    let pinned = WtConnector::new(&format!("wt://127.0.0.1:{port}"))
        .unwrap()
        .with_pinned_cert_file(&pem)
        .unwrap();
    let mut conn = pinned.connect().await.unwrap();
    client_handshake(&mut conn, with_token(&gateway))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_h3_there_is_no_alt_svc() {
    let gateway = Gateway::start_without_h3().await;
    assert!(gateway.webtransport.is_none() && gateway.wt.is_none());
    let head = get_head(&gateway, "/gtl/v1/models").await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(!head.contains("alt-svc"), "{head}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_from_another_origin_is_refused() {
    let gateway = Gateway::start().await;
    let url = gateway.endpoint(Transport::Wt);
    let foreign = WtConnector::new(&url)
        .unwrap()
        .with_origin("https://evil.example");
    let mut conn = foreign.connect().await.unwrap();
    // The version is settled, then the peer is refused and the session
    // closes, as a foreign page's request to the HTTP routes gets 401:
    // even with the local token, which only this host's pages may use.
    client_handshake(&mut conn, with_token(&gateway))
        .await
        .unwrap();
    let refusal = conn.read.read_frame().await.unwrap().unwrap();
    let Some(Body::Error(error)) = refusal.body else {
        panic!("{refusal:?}")
    };
    assert_eq!(error.code(), ErrorCode::Unauthenticated, "{error:?}");
    let head = {
        let mut stream = tokio::net::TcpStream::connect(gateway.http_addr())
            .await
            .unwrap();
        let request = format!(
            "GET /gtl/v1/models HTTP/1.1\r\nHost: {}\r\nOrigin: https://evil.example\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
            gateway.http_addr(),
            gateway.token
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        String::from_utf8_lossy(&response).into_owned()
    };
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    // Pages served from this host are let in.
    for origin in [
        format!("http://{}", gateway.http_addr()),
        format!(
            "http://localhost:{}",
            gateway.webtransport.as_ref().unwrap().port
        ),
    ] {
        let local = WtConnector::new(&url).unwrap().with_origin(origin);
        let mut conn = local.connect().await.unwrap();
        client_handshake(&mut conn, with_token(&gateway))
            .await
            .unwrap();
        let client_call =
            gtl_client::proto::Frame::control(1, Body::ModelsRequest(Default::default()));
        conn.write.write_frame(client_call.as_ref()).unwrap();
        conn.write.flush().await.unwrap();
        let first = conn.read.read_frame().await.unwrap().unwrap();
        assert!(
            matches!(first.body, Some(Body::ProviderInfo(_))),
            "{first:?}"
        );
    }
}
