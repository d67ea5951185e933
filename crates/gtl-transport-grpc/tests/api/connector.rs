//! `GrpcConnector` against a real `GrpcGateway` with the echo provider,
//! served by tonic on loopback: the handshake over `Pipe`, calls, cancel,
//! resume on a new connection, and how failures reach the reader.

use std::collections::HashMap;
use std::sync::Arc;

use gtl_core::{Engine, EngineConfig, MemoryStore};
use gtl_proto::types::Content;
use gtl_proto::{
    Accepted, Body, Cancel, CompletionRequest, Encoding, ErrorCode, Frame, Hello, Message, Resume,
    Role,
};
use gtl_providers::{EchoProvider, Registry};
use gtl_service::{Authenticator, CallService, ConnectionLimits};
use gtl_transport::{
    Connection, Connector as _, HandshakeError, PeerInfo, TransportError, client_handshake,
};
use gtl_transport_grpc::{GrpcConnector, GrpcGateway, GtlServer};
use tokio::net::{TcpListener, TcpStream};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

/// A gateway with the echo provider on a free loopback port; its URL.
pub(crate) async fn serve() -> String {
    serve_with(gateway()).await
}

/// A gateway that sees every caller as a remote peer.
async fn serve_remote() -> String {
    serve_with(gateway_seeing(remote_peer)).await
}

async fn serve_with(gateway: InterceptedService<GtlServer<GrpcGateway>, LocalPeer>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("grpc://{}", listener.local_addr().unwrap());
    let server = Server::builder()
        .add_service(gateway)
        .serve_with_incoming(TcpIncoming::from(listener));
    tokio::spawn(server);
    url
}

/// The gateway's gRPC service, trusting loopback callers.
pub(crate) fn gateway() -> InterceptedService<GtlServer<GrpcGateway>, LocalPeer> {
    gateway_seeing(local_peer)
}

/// The gateway's gRPC service, seeing its callers as `peer` says.
fn gateway_seeing(peer: LocalPeer) -> InterceptedService<GtlServer<GrpcGateway>, LocalPeer> {
    let mut registry = Registry::new();
    registry.add(Arc::new(EchoProvider::new()));
    let engine = Engine::new(Arc::new(MemoryStore::new()), EngineConfig::default());
    let service = CallService::new(
        engine,
        registry,
        Authenticator::new(true),
        ConnectionLimits::default(),
    );
    let gtl = GrpcGateway::new(Arc::new(service)).into_server();
    InterceptedService::new(gtl, peer)
}

type LocalPeer = fn(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status>;

/// Puts the caller in the request's extensions, as the HTTP port does, so
/// a loopback caller is trusted as a same-host one.
#[allow(
    clippy::result_large_err,
    reason = "the signature of a tonic interceptor"
)]
fn local_peer(mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
    let addr = request.remote_addr().expect("served over TCP");
    let peer = PeerInfo::new("grpc", addr.to_string()).with_same_host(addr.ip().is_loopback());
    request.extensions_mut().insert(peer);
    Ok(request)
}

/// Marks every caller as a peer on another host.
#[allow(
    clippy::result_large_err,
    reason = "the signature of a tonic interceptor"
)]
fn remote_peer(mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
    let addr = request.remote_addr().expect("served over TCP");
    let peer = PeerInfo::new("grpc", addr.to_string()).with_same_host(false);
    request.extensions_mut().insert(peer);
    Ok(request)
}

/// A connection to `url` after the hello / welcome exchange.
async fn connect(url: &str) -> Connection {
    let mut conn = GrpcConnector::new(url).unwrap().connect().await.unwrap();
    handshake(&mut conn).await;
    conn
}

/// The hello / welcome exchange.
pub(crate) async fn handshake(conn: &mut Connection) {
    let hello = hello(conn);
    client_handshake(conn, hello).await.unwrap();
}

fn hello(conn: &Connection) -> Hello {
    Hello {
        encodings: conn.encodings.iter().map(|e| *e as i32).collect(),
        client: "gtl-transport-grpc tests".into(),
        ..Hello::default()
    }
}

/// A streamed call to the echo provider.
fn call(call_id: u64, model: &str, text: &str) -> Frame {
    let request = CompletionRequest {
        model: model.into(),
        stream: true,
        messages: vec![Message {
            role: Role::User as i32,
            content: Some(Content::Text(text.into())),
            ..Message::default()
        }],
        ..CompletionRequest::default()
    };
    Frame::control(call_id, Body::CompletionRequest(Box::new(request)))
}

async fn send(conn: &mut Connection, frames: &[Frame]) {
    for frame in frames {
        conn.write.write_frame(frame.as_ref()).unwrap();
    }
    conn.write.flush().await.unwrap();
}

async fn next(conn: &mut Connection) -> Frame {
    conn.read.read_frame().await.unwrap().expect("a frame")
}

/// Frames until (and with) one for which `stop` holds.
async fn until(conn: &mut Connection, mut stop: impl FnMut(&Frame) -> bool) -> Vec<Frame> {
    let mut frames = Vec::new();
    loop {
        let frame = next(conn).await;
        let end = stop(&frame);
        frames.push(frame);
        if end {
            return frames;
        }
    }
}

fn terminal(frame: &Frame) -> bool {
    frame.body.as_ref().is_some_and(Body::is_terminal)
}

fn text<'a>(frames: impl IntoIterator<Item = &'a Frame>) -> String {
    frames
        .into_iter()
        .filter_map(|f| match &f.body {
            Some(Body::Token(t)) => Some(t.text.as_str()),
            _ => None,
        })
        .collect()
}

/// The session events among `frames` (not `accepted`).
fn events(frames: &[Frame]) -> Vec<&Frame> {
    frames.iter().filter(|f| f.seq > 0).collect()
}

#[tokio::test]
async fn the_handshake_goes_over_pipe() {
    let url = serve().await;
    let connector = GrpcConnector::new(&url).unwrap();
    assert_eq!(connector.endpoint(), url);
    let mut conn = connector.connect().await.unwrap();
    assert_eq!(conn.peer.transport, "grpc");
    assert!(conn.peer.same_host);
    assert_eq!(conn.encodings, [Encoding::Protobuf]);

    let hello = hello(&conn);
    let welcome = client_handshake(&mut conn, hello).await.unwrap();
    assert_eq!(welcome.version, "1.0");
    assert_eq!(welcome.encoding(), Encoding::Protobuf);
    assert!(welcome.server.starts_with("gtl-server/"), "{welcome:?}");
    assert!(welcome.max_frame_bytes > 0);
}

#[tokio::test]
async fn echo_tokens_arrive_in_order_and_end_with_done() {
    let mut conn = connect(&serve().await).await;
    send(&mut conn, &[call(1, "echo", "one two three four five")]).await;
    let frames = until(&mut conn, terminal).await;

    assert!(frames.iter().all(|f| f.call_id == 1), "{frames:?}");
    assert!(matches!(frames[0].body, Some(Body::Accepted(_))));
    assert_eq!(text(&frames), "one two three four five");
    let seqs: Vec<u64> = events(&frames).iter().map(|f| f.seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    assert!(matches!(frames.last().unwrap().body, Some(Body::Done(_))));
}

#[tokio::test]
async fn concurrent_calls_share_one_connection() {
    let mut conn = connect(&serve().await).await;
    let calls: Vec<Frame> = (1..=4)
        .map(|id| call(id, "echo", &format!("call {id} says hello")))
        .collect();
    send(&mut conn, &calls).await;

    let mut frames: HashMap<u64, Vec<Frame>> = HashMap::new();
    let mut open = 4;
    while open > 0 {
        let frame = next(&mut conn).await;
        open -= usize::from(terminal(&frame));
        frames.entry(frame.call_id).or_default().push(frame);
    }
    assert_eq!(frames.len(), 4);
    for (id, frames) in frames {
        assert_eq!(text(&frames), format!("call {id} says hello"));
        assert!(matches!(frames.last().unwrap().body, Some(Body::Done(_))));
    }
}

#[tokio::test]
async fn cancel_ends_the_call_with_cancelled() {
    let mut conn = connect(&serve().await).await;
    // The stream stalls after its first token, until cancelled.
    send(
        &mut conn,
        &[call(1, "echo:stall_after=1", "never finished")],
    )
    .await;
    until(&mut conn, |f| matches!(f.body, Some(Body::Token(_)))).await;

    let cancel = Cancel {
        reason: "the user pressed stop".into(),
        ..Cancel::default()
    };
    send(&mut conn, &[Frame::control(1, Body::Cancel(cancel))]).await;
    let last = until(&mut conn, terminal).await.pop().unwrap();
    let Some(Body::Error(error)) = last.body else {
        panic!("{last:?}")
    };
    assert_eq!(error.code(), ErrorCode::Cancelled);
}

#[tokio::test]
async fn a_new_connection_resumes_with_exactly_the_remaining_events() {
    let url = serve().await;
    let mut first = connect(&url).await;
    // Paced, so the provider is still streaming when the connection goes.
    send(&mut first, &[call(1, "echo:tokens=40,delay_ms=1", "")]).await;
    let accepted = next(&mut first).await;
    let Some(Body::Accepted(Accepted { resume_token })) = &accepted.body else {
        panic!("{accepted:?}")
    };
    // The status event and two tokens; then the connection is gone.
    let seen = until(&mut first, |f| f.seq == 3).await;
    drop(first);

    let resume = |call_id, after_seq| Frame {
        call_id,
        session_id: accepted.session_id.clone(),
        seq: 0,
        body: Some(Body::Resume(Resume {
            after_seq,
            resume_token: resume_token.clone(),
        })),
    };
    let mut second = connect(&url).await;
    send(&mut second, &[resume(1, 3)]).await;
    let rest = until(&mut second, terminal).await;
    // And the whole session, for comparison.
    send(&mut second, &[resume(2, 0)]).await;
    let all = until(&mut second, terminal).await;

    let rest = events(&rest);
    let unseen: Vec<&Frame> = events(&all).into_iter().filter(|f| f.seq > 3).collect();
    assert_eq!(rest.first().unwrap().seq, 4);
    assert_eq!(rest.len(), unseen.len());
    for (got, want) in rest.iter().zip(&unseen) {
        assert_eq!((got.seq, &got.body), (want.seq, &want.body));
    }
    assert!(matches!(rest.last().unwrap().body, Some(Body::Done(_))));
    assert_eq!(
        text(seen.iter().chain(rest)),
        text(&all),
        "the cut lost or repeated no token"
    );
}

#[tokio::test]
async fn a_refused_pipe_reads_as_the_gateways_error_frame() {
    let url = serve_remote().await;
    let mut conn = GrpcConnector::new(&url).unwrap().connect().await.unwrap();
    // This gateway has no token authentication: a token is refused (from
    // a peer that is not on this host; a same-host one is trusted anyway),
    // and the RPC fails with UNAUTHENTICATED before any message.
    let hello = Hello {
        token: "eyJ.not.configured".into(),
        ..hello(&conn)
    };
    match client_handshake(&mut conn, hello).await {
        Err(HandshakeError::Rejected { code, message }) => {
            assert_eq!(code, ErrorCode::Unauthenticated);
            assert!(message.contains("token"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(conn.read.read_frame().await.unwrap().is_none());
}

#[tokio::test]
async fn a_version_the_gateway_lacks_is_refused_in_the_handshake() {
    let mut conn = GrpcConnector::new(&serve().await)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let hello = Hello {
        versions: vec!["2.0".into()],
        ..hello(&conn)
    };
    let err = client_handshake(&mut conn, hello).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::VersionUnsupported);
}

#[tokio::test]
async fn a_cut_connection_is_an_io_error_not_an_end() {
    let url = serve().await;
    let target = url.strip_prefix("grpc://").unwrap().to_owned();
    // A proxy the test can cut, in front of the gateway.
    let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = format!("grpc://{}", proxy.local_addr().unwrap());
    let relay = tokio::spawn(async move {
        let (mut client, _) = proxy.accept().await.unwrap();
        let mut server = TcpStream::connect(target).await.unwrap();
        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
    });

    let mut conn = connect(&proxy_url).await;
    send(&mut conn, &[call(1, "echo:stall_after=1", "cut short")]).await;
    until(&mut conn, |f| matches!(f.body, Some(Body::Token(_)))).await;
    relay.abort();

    let err = conn.read.read_frame().await.unwrap_err();
    assert!(matches!(err, TransportError::Io(_)), "{err:?}");
    assert!(!err.is_recoverable());
}

#[tokio::test]
async fn nothing_listening_is_an_io_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("grpc://{}", listener.local_addr().unwrap());
    drop(listener);
    let err = GrpcConnector::new(&url)
        .unwrap()
        .connect()
        .await
        .err()
        .expect("no server");
    let TransportError::Io(e) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}");
}

#[tokio::test]
async fn an_oversized_frame_is_refused_and_the_connection_goes_on() {
    let url = serve().await;
    let mut conn = GrpcConnector::new(&url)
        .unwrap()
        .with_max_frame_bytes(1024)
        .connect()
        .await
        .unwrap();
    let hello = hello(&conn);
    client_handshake(&mut conn, hello).await.unwrap();

    let big = call(1, "echo", &"x".repeat(2000));
    let err = conn.write.write_frame(big.as_ref()).unwrap_err();
    assert_eq!(err.code(), ErrorCode::FrameTooLarge);
    assert!(err.is_recoverable());
    assert_eq!(conn.write.buffered(), 0);

    send(&mut conn, &[call(2, "echo", "small")]).await;
    assert_eq!(text(&until(&mut conn, terminal).await), "small");
}
