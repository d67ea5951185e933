//! WebTransport: the same control stream and call streams as native QUIC,
//! inside an HTTP/3 session at `/gtl/v1/wt`, with browsers' `Origin` rule.

use gtl_proto::{Body, ErrorCode, Frame};
use gtl_transport::{Connection, Connector as _, client_handshake};
use gtl_transport_quic::{WT_PATH, WtConnector, WtGateway, cert_sha256};
use tokio::io::AsyncBufReadExt as _;

use crate::{certificate, echo, handshake, send, service, start_frame, text, until_end};

/// A running WebTransport gateway: its `wt://` URL and certificate pin.
struct WtServer {
    addr: std::net::SocketAddr,
    pin: [u8; 32],
}

impl WtServer {
    fn url(&self, path: &str) -> String {
        format!("wt://{}{path}", self.addr)
    }

    fn connector(&self) -> WtConnector {
        WtConnector::new(&self.url(WT_PATH))
            .unwrap()
            .with_cert_sha256(self.pin)
    }
}

fn start_wt() -> WtServer {
    let (cert, key) = certificate(-1, 13);
    let pin = cert_sha256(&cert);
    let gateway = WtGateway::new(service());
    let config = gateway.server_config(vec![cert], key).unwrap();
    let endpoint = quinn::Endpoint::server(config, "127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = endpoint.local_addr().unwrap();
    tokio::spawn(gateway.serve(endpoint));
    WtServer { addr, pin }
}

fn is_end(frame: &Frame) -> bool {
    matches!(frame.body, Some(Body::Done(_) | Body::Error(_)))
}

async fn hello(conn: &mut Connection) -> Result<(), gtl_transport::HandshakeError> {
    client_handshake(conn, gtl_proto::Hello::default())
        .await
        .map(drop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_run_over_webtransport_as_over_quic() {
    let server = start_wt();
    let mut conn = handshake(server.connector().connect().await.unwrap()).await;
    send(&mut conn, start_frame(1, echo("one two three", &[]))).await;
    send(&mut conn, start_frame(2, echo("four five", &[]))).await;
    // Both calls run at once, each on its own stream.
    let mut frames: [Vec<Frame>; 2] = Default::default();
    while frames.iter().any(|f| !f.last().is_some_and(is_end)) {
        let frame = conn.read.read_frame().await.unwrap().unwrap();
        frames[frame.call_id as usize - 1].push(frame);
    }
    assert_eq!(text(&frames[0]), "one two three");
    assert_eq!(text(&frames[1]), "four five");
    assert!(matches!(frames[0][0].body, Some(Body::Accepted(_))));
    // Then one after another on the same session.
    send(&mut conn, start_frame(3, echo("six", &[]))).await;
    assert_eq!(text(&until_end(&mut conn, 3).await), "six");
}

/// What a browser does, byte for byte: the first bidirectional stream is
/// the control stream (`hello` and `welcome` as JSON lines); each call is
/// a new bidirectional stream, here in JSON (NDJSON) because the hello
/// offered only JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_speaks_json_lines_on_the_streams() {
    let server = start_wt();
    let connector = server.connector().with_origin("http://localhost:5173");
    // The connector opens the session and the control stream; drive the
    // streams by hand below it.
    let mut conn = connector.connect().await.unwrap();
    let hello = br#"{"type":"hello","versions":["1.0"],"encodings":["json"]}"#;
    let frame = Frame::from_json(hello).unwrap();
    conn.write.write_frame(frame.as_ref()).unwrap();
    conn.write.flush().await.unwrap();
    let welcome = conn.read.read_frame().await.unwrap().unwrap();
    let Some(Body::Welcome(welcome)) = welcome.body else {
        panic!("{welcome:?}")
    };
    assert_eq!(welcome.encoding(), gtl_proto::Encoding::Json);
    // A call frame in JSON, as a page would write it on a new stream.
    let request = r#"{"type":"completion_request","call_id":1,"model":"echo","messages":[{"role":"user","content":"hi there"}],"stream":true}"#;
    let frame = Frame::from_json(request.as_bytes()).unwrap();
    conn.write.write_frame(frame.as_ref()).unwrap();
    conn.write.flush().await.unwrap();
    let frames = until_end(&mut conn, 1).await;
    assert_eq!(text(&frames), "hi there");
    // And the wire form of one call, with wtransport alone.
    let raw = raw_session(&server, "http://127.0.0.1:7300").await;
    let (mut control_send, control_recv) = raw.open_bi().await.unwrap().await.unwrap();
    control_send.write_all(hello).await.unwrap();
    control_send.write_all(b"\n").await.unwrap();
    let mut control = tokio::io::BufReader::new(control_recv).lines();
    let line = control.next_line().await.unwrap().unwrap();
    assert!(line.starts_with(r#"{"type":"welcome""#), "{line}");
    let (mut call_send, call_recv) = raw.open_bi().await.unwrap().await.unwrap();
    call_send.write_all(request.as_bytes()).await.unwrap();
    call_send.write_all(b"\n").await.unwrap();
    let mut lines = tokio::io::BufReader::new(call_recv).lines();
    let mut types = Vec::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        let frame = Frame::from_json(line.as_bytes()).unwrap();
        types.push(frame.body.unwrap().frame_type().as_str().to_owned());
    }
    // The server finishes the call's stream after its last frame.
    assert_eq!(types.first().map(String::as_str), Some("accepted"));
    assert_eq!(types.last().map(String::as_str), Some("done"));
}

/// A session opened with wtransport alone, sending `origin`.
async fn raw_session(server: &WtServer, origin: &str) -> wtransport::Connection {
    let (cert_hash, addr) = (server.pin, server.addr);
    let config = wtransport::ClientConfig::builder()
        .with_bind_default()
        .with_server_certificate_hashes([wtransport::tls::Sha256Digest::new(cert_hash)])
        .build();
    let endpoint = wtransport::Endpoint::client(config).unwrap();
    let options = wtransport::endpoint::ConnectOptions::builder(format!("https://{addr}{WT_PATH}"))
        .add_header("origin", origin)
        .build();
    endpoint.connect(options).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_from_another_origin_is_refused() {
    let server = start_wt();
    let mut conn = server
        .connector()
        .with_origin("https://example.com")
        .connect()
        .await
        .unwrap();
    // As on every framed transport, the welcome settles the version and
    // the error frame that follows refuses the peer; then the session
    // closes.
    hello(&mut conn).await.unwrap();
    let refusal = conn.read.read_frame().await.unwrap().unwrap();
    let Some(Body::Error(error)) = refusal.body else {
        panic!("{refusal:?}")
    };
    assert_eq!(error.code(), ErrorCode::Unauthenticated, "{error:?}");
    // The same page on this host is trusted.
    for origin in ["http://127.0.0.1:7300", "http://localhost:7300"] {
        let mut conn = server
            .connector()
            .with_origin(origin)
            .connect()
            .await
            .unwrap();
        hello(&mut conn).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_paths_are_not_found() {
    let server = start_wt();
    let connector = WtConnector::new(&server.url("/gtl/v1/other"))
        .unwrap()
        .with_cert_sha256(server.pin);
    let error = connector.connect().await.err().unwrap();
    assert!(error.to_string().contains("rejected"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_pin_is_refused() {
    let server = start_wt();
    let error = WtConnector::new(&server.url(WT_PATH))
        .unwrap()
        .with_cert_sha256([7; 32])
        .connect()
        .await
        .err()
        .unwrap();
    assert!(error.to_string().contains("certificate"), "{error}");
}
