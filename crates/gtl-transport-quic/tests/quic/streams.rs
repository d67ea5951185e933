//! Below the multiplexed connection: raw QUIC streams, to show that one
//! call's unread stream holds back no other call, and a client that moves
//! to another address keeps its calls.

use std::sync::Arc;

use gtl_proto::{Body, Encoding, Frame, Hello};
use gtl_transport::{Connector as _, PeerInfo, stream_connection};

use crate::{assert_contiguous, echo, send, start, start_frame, text, until_end};

/// A raw client connection: the control stream after its handshake.
async fn raw(server: &crate::Server) -> (quinn::Endpoint, quinn::Connection) {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(server.cert.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![gtl_transport_quic::ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    let connection = endpoint
        .connect(server.addr, "localhost")
        .unwrap()
        .await
        .unwrap();
    (endpoint, connection)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unread_call_does_not_hold_back_another() {
    let server = start().await;
    let (_endpoint, connection) = raw(&server).await;
    let (send_half, recv_half) = connection.open_bi().await.unwrap();
    let peer = PeerInfo::new("quic", "test");
    let mut control = stream_connection(recv_half, send_half, peer.clone(), Encoding::Json);
    control.encodings = vec![Encoding::Protobuf];
    let hello = Hello {
        encodings: vec![Encoding::Json as i32, Encoding::Protobuf as i32],
        ..Hello::default()
    };
    gtl_transport::client_handshake(&mut control, hello)
        .await
        .unwrap();

    // A call whose events are never read: its stream's flow-control window
    // fills and the server's writer for it waits.
    let (s, r) = connection.open_bi().await.unwrap();
    let mut stalled = stream_connection(r, s, peer.clone(), Encoding::Protobuf);
    send(
        &mut stalled,
        start_frame(1, echo("x", &[("tokens", "200000")])),
    )
    .await;

    // Another call on the same connection runs to its end meanwhile.
    for call_id in 2..=4 {
        let (s, r) = connection.open_bi().await.unwrap();
        let mut call = stream_connection(r, s, peer.clone(), Encoding::Protobuf);
        send(
            &mut call,
            start_frame(call_id, echo("not blocked", &[("tokens", "2000")])),
        )
        .await;
        let mut frames = Vec::new();
        while let Some(frame) = call.read.read_frame().await.unwrap() {
            frames.push(frame);
        }
        assert!(matches!(frames.last().unwrap().body, Some(Body::Done(_))));
        assert_contiguous(&frames[1..], 1);
    }

    // The stalled call was only waiting: it is all there when read.
    let mut tokens = 0;
    loop {
        let frame: Frame = stalled.read.read_frame().await.unwrap().unwrap();
        match frame.body {
            Some(Body::Token(_)) => tokens += 1,
            Some(Body::Done(_)) => break,
            _ => {}
        }
    }
    assert_eq!(tokens, 200_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_changes_address_keeps_its_calls() {
    let server = start().await;
    let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let before_addr = endpoint.local_addr().unwrap();
    let connector = server.connector().with_endpoint(endpoint.clone());
    let mut conn = crate::handshake(connector.connect().await.unwrap()).await;
    let request = echo("migrate", &[("tokens", "400"), ("delay_ms", "1")]);
    send(&mut conn, start_frame(1, request.clone())).await;
    let mut frames = Vec::new();
    while frames.len() < 50 {
        frames.push(conn.read.read_frame().await.unwrap().unwrap());
    }

    // The client's address changes mid-stream (a phone moving networks).
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    endpoint.rebind(socket).unwrap();
    assert_ne!(endpoint.local_addr().unwrap(), before_addr);

    frames.extend(until_end(&mut conn, 1).await);
    assert_contiguous(&frames[1..], 1);
    assert!(matches!(frames.last().unwrap().body, Some(Body::Done(_))));

    // New calls go on from the new address too.
    send(&mut conn, start_frame(2, echo("after the move", &[]))).await;
    assert_eq!(text(&until_end(&mut conn, 2).await), "after the move");
}
