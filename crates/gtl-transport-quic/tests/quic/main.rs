//! Native QUIC against a real engine over loopback: the handshake once per
//! connection, one stream per call, no head-of-line blocking between calls,
//! cancel, resume on a new connection, connection migration, and trust
//! (pinning, roots, expired certificates); and the same streams over
//! WebTransport.

use std::sync::Arc;

use gtl_core::{Engine, EngineConfig, MemoryStore};
use gtl_proto::{Body, CompletionRequest, Encoding, Frame, Hello, Message, Role};
use gtl_providers::{EchoProvider, Registry};
use gtl_service::{Authenticator, CallService, ConnectionLimits};
use gtl_transport::{Connection, Connector as _, client_handshake};
use gtl_transport_quic::{QuicConnector, QuicGateway, cert_sha256};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

mod calls;
mod streams;
mod trust;
#[cfg(feature = "webtransport")]
mod wt;

/// A running QUIC gateway.
pub(crate) struct Server {
    pub(crate) url: String,
    pub(crate) addr: std::net::SocketAddr,
    pub(crate) cert: CertificateDer<'static>,
}

impl Server {
    pub(crate) fn pin(&self) -> [u8; 32] {
        cert_sha256(&self.cert)
    }

    /// A connector that trusts this server by its certificate's hash.
    pub(crate) fn connector(&self) -> QuicConnector {
        QuicConnector::new(&self.url)
            .unwrap()
            .with_cert_sha256(self.pin())
    }

    /// A connection after the hello/welcome handshake, in protobuf.
    pub(crate) async fn connect(&self) -> Connection {
        handshake(self.connector().connect().await.unwrap()).await
    }
}

pub(crate) async fn handshake(mut conn: Connection) -> Connection {
    let hello = Hello {
        encodings: vec![Encoding::Json as i32, Encoding::Protobuf as i32],
        ..Hello::default()
    };
    let welcome = client_handshake(&mut conn, hello).await.unwrap();
    assert_eq!(welcome.encoding(), Encoding::Protobuf);
    conn
}

/// A self-signed certificate for localhost and 127.0.0.1, valid from
/// `not_before` to `not_after` (days from now).
pub(crate) fn certificate(
    not_before: i64,
    not_after: i64,
) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let now = std::time::SystemTime::now();
    let day = std::time::Duration::from_secs(86_400);
    let at = |days: i64| {
        if days >= 0 {
            now + day * days as u32
        } else {
            now - day * (-days) as u32
        }
    };
    params.not_before = at(not_before).into();
    params.not_after = at(not_after).into();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    (cert.der().clone(), key)
}

pub(crate) async fn start() -> Server {
    start_with(certificate(-1, 14)).await
}

/// A call service with the echo provider, trusting same-host peers.
pub(crate) fn service() -> Arc<CallService> {
    let mut registry = Registry::new();
    registry.add(Arc::new(EchoProvider::new()));
    let engine = Engine::new(Arc::new(MemoryStore::new()), EngineConfig::default());
    let service = CallService::new(
        engine,
        registry,
        Authenticator::new(true),
        ConnectionLimits::default(),
    );
    Arc::new(service)
}

pub(crate) async fn start_with(
    (cert, key): (CertificateDer<'static>, PrivateKeyDer<'static>),
) -> Server {
    let gateway = QuicGateway::new(service());
    let config = gateway.server_config(vec![cert.clone()], key).unwrap();
    let endpoint = quinn::Endpoint::server(config, "127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = endpoint.local_addr().unwrap();
    tokio::spawn(gateway.serve(endpoint));
    Server {
        url: format!("quic://{addr}"),
        addr,
        cert,
    }
}

/// An echo request for `text` with `echo.` knobs.
pub(crate) fn echo(text: &str, knobs: &[(&str, &str)]) -> CompletionRequest {
    CompletionRequest {
        model: "echo".into(),
        messages: vec![Message {
            role: Role::User as i32,
            content: Some(gtl_proto::types::Content::Text(text.into())),
            ..Message::default()
        }],
        metadata: knobs
            .iter()
            .map(|(k, v)| (format!("echo.{k}"), (*v).to_owned()))
            .collect(),
        stream: true,
        ..CompletionRequest::default()
    }
}

pub(crate) fn start_frame(call_id: u64, request: CompletionRequest) -> Frame {
    Frame::control(call_id, Body::CompletionRequest(Box::new(request)))
}

pub(crate) async fn send(conn: &mut Connection, frame: Frame) {
    conn.write.write_frame(frame.as_ref()).unwrap();
    conn.write.flush().await.unwrap();
}

/// Reads frames of every call until `call_id`'s `done` or error event;
/// returns that call's frames.
pub(crate) async fn until_end(conn: &mut Connection, call_id: u64) -> Vec<Frame> {
    let mut frames = Vec::new();
    loop {
        let frame = conn
            .read
            .read_frame()
            .await
            .unwrap()
            .expect("connection open");
        if frame.call_id != call_id {
            continue;
        }
        let end = matches!(frame.body, Some(Body::Done(_) | Body::Error(_)));
        frames.push(frame);
        if end {
            return frames;
        }
    }
}

/// The concatenated token text.
pub(crate) fn text(frames: &[Frame]) -> String {
    frames
        .iter()
        .filter_map(|f| match &f.body {
            Some(Body::Token(t)) => Some(t.text.as_str()),
            _ => None,
        })
        .collect()
}

/// The events' seqs are 1, 2, 3, … after `accepted`.
pub(crate) fn assert_contiguous(frames: &[Frame], first: u64) {
    let seqs: Vec<u64> = frames.iter().filter(|f| f.seq > 0).map(|f| f.seq).collect();
    let expected: Vec<u64> = (first..first + seqs.len() as u64).collect();
    assert_eq!(seqs, expected);
}
