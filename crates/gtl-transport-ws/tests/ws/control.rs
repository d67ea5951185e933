//! Pings, close and close codes.

use std::time::Duration;

use gtl_proto::{Body, DEFAULT_MAX_FRAME_BYTES, Error, ErrorCode, Frame};
use gtl_transport::{Connection, PeerInfo};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::{Bytes, Message};

use crate::util::{next, pair, raw_pair, send, token};

#[tokio::test]
async fn a_ping_is_answered_while_the_gtl_side_is_idle() {
    let (mut raw, server) = raw_pair(1024).await;
    // The server only waits for a frame; it writes nothing.
    let Connection { mut read, .. } = server;
    let reader = tokio::spawn(async move { read.read_frame().await });
    send(
        &mut raw,
        Message::Ping(Bytes::from_static(b"are you there")),
    )
    .await;
    assert_eq!(
        next(&mut raw).await,
        Message::Pong(Bytes::from_static(b"are you there"))
    );
    // The pending read is still waiting, and gets the next frame.
    let frame = token(1, "still here");
    send(&mut raw, Message::text(frame.to_json().unwrap())).await;
    assert_eq!(reader.await.unwrap().unwrap(), Some(frame));
}

#[tokio::test]
async fn close_ends_the_peers_stream() {
    let (mut client, mut server) = pair().await;
    client.write.write_frame(token(1, "last").as_ref()).unwrap();
    client.write.close().await.unwrap();
    assert_eq!(
        server.read.read_frame().await.unwrap(),
        Some(token(1, "last"))
    );
    assert_eq!(server.read.read_frame().await.unwrap(), None);
    assert_eq!(server.read.read_frame().await.unwrap(), None);
    // The close was answered: the client's reader ends too.
    assert_eq!(client.read.read_frame().await.unwrap(), None);
    // Closing the answering side as well is not an error.
    server.write.close().await.unwrap();
}

#[tokio::test]
async fn a_normal_close_is_1000() {
    let (mut raw, mut server) = raw_pair(1024).await;
    server.write.close().await.unwrap();
    let Message::Close(Some(close)) = next(&mut raw).await else {
        panic!("no close");
    };
    assert_eq!(close.code, CloseCode::Normal);
}

#[tokio::test]
async fn a_peers_close_code_gives_ok_none() {
    let (mut raw, mut server) = raw_pair(1024).await;
    let close = CloseFrame {
        code: CloseCode::Away,
        reason: "bye".into(),
    };
    send(&mut raw, Message::Close(Some(close))).await;
    assert_eq!(server.read.read_frame().await.unwrap(), None);
    // The reply was sent without waiting for anything else.
    assert!(matches!(next(&mut raw).await, Message::Close(Some(c)) if c.code == CloseCode::Away));
}

/// A refusal (authentication, caps) written as a connection-level error
/// frame before `close` closes with 1008.
#[tokio::test]
async fn a_refusal_closes_with_policy() {
    for (code, close_code) in [
        (ErrorCode::Unauthenticated, CloseCode::Policy),
        (ErrorCode::RateLimit, CloseCode::Policy),
        (ErrorCode::Internal, CloseCode::Error),
        (ErrorCode::ProviderUnavailable, CloseCode::Away),
    ] {
        let (mut raw, mut server) = raw_pair(1024).await;
        let error = Error {
            code: code as i32,
            message: "refused".into(),
            ..Error::default()
        };
        let refusal = Frame::control(0, Body::Error(error));
        server.write.write_frame(refusal.as_ref()).unwrap();
        server.write.close().await.unwrap();
        assert!(matches!(next(&mut raw).await, Message::Text(_)));
        let Message::Close(Some(close)) = next(&mut raw).await else {
            panic!("no close");
        };
        assert_eq!(close.code, close_code, "{code:?}");
    }
}

/// The hyper path: an upgraded byte stream handed to `server_connection`.
#[tokio::test]
async fn server_connection_frames_an_upgraded_stream() {
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let mut server = gtl_transport_ws::server_connection(
        server_io,
        PeerInfo::new("ws", "memory"),
        DEFAULT_MAX_FRAME_BYTES,
    )
    .await;
    let mut raw = WebSocketStream::from_raw_socket(client_io, Role::Client, None).await;
    let frame = token(1, "upgraded");
    futures::SinkExt::send(&mut raw, Message::text(frame.to_json().unwrap()))
        .await
        .unwrap();
    let read = tokio::time::timeout(Duration::from_secs(10), server.read.read_frame());
    assert_eq!(read.await.unwrap().unwrap(), Some(frame));
}
