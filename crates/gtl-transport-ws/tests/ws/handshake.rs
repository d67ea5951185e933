//! The shared hello/welcome handshake over WebSocket.

use gtl_proto::{Body, Encoding, ErrorCode, Frame, Hello};
use gtl_transport::{client_handshake, server_handshake};
use prost::Message as _;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::util::{next, pair, raw_pair, send, token};

fn hello(encodings: &[Encoding]) -> Hello {
    Hello {
        versions: vec!["1.0".into()],
        encodings: encodings.iter().map(|e| *e as i32).collect(),
        ..Hello::default()
    }
}

#[tokio::test]
async fn the_handshake_switches_both_ends_to_protobuf() {
    let (mut client, mut server) = pair().await;
    let (welcome, accepted) = tokio::join!(
        client_handshake(&mut client, hello(&[Encoding::Json, Encoding::Protobuf])),
        server_handshake(&mut server, "test", 4096)
    );
    let welcome = welcome.unwrap();
    assert_eq!(welcome.encoding(), Encoding::Protobuf);
    assert_eq!(accepted.unwrap().welcome, welcome);

    let frame = token(1, "protobuf now");
    server.write.write_frame(frame.as_ref()).unwrap();
    server.write.flush().await.unwrap();
    assert_eq!(client.read.read_frame().await.unwrap(), Some(frame.clone()));
    client.write.write_frame(frame.as_ref()).unwrap();
    client.write.flush().await.unwrap();
    assert_eq!(server.read.read_frame().await.unwrap(), Some(frame));
}

#[tokio::test]
async fn hello_and_welcome_are_text_then_frames_are_binary() {
    let (mut raw, mut server) = raw_pair(4096).await;
    let hello = Frame::control(0, Body::Hello(Box::new(hello(&[Encoding::Protobuf]))));
    send(&mut raw, Message::text(hello.to_json().unwrap())).await;
    let accepted = server_handshake(&mut server, "test", 4096).await.unwrap();
    assert_eq!(accepted.welcome.encoding(), Encoding::Protobuf);
    let Message::Text(welcome) = next(&mut raw).await else {
        panic!("welcome is not text");
    };
    let welcome = Frame::from_json(welcome.as_bytes()).unwrap();
    assert!(matches!(welcome.body, Some(Body::Welcome(w)) if *w == accepted.welcome));

    let frame = token(1, "x");
    server.write.write_frame(frame.as_ref()).unwrap();
    server.write.flush().await.unwrap();
    assert_eq!(
        next(&mut raw).await,
        Message::Binary(frame.encode_to_vec().into())
    );
}

#[tokio::test]
async fn a_refused_hello_closes_with_a_protocol_error() {
    let (mut raw, mut server) = raw_pair(4096).await;
    let hello = Hello {
        versions: vec!["2.0".into()],
        ..Hello::default()
    };
    let hello = Frame::control(0, Body::Hello(Box::new(hello)));
    send(&mut raw, Message::text(hello.to_json().unwrap())).await;
    let err = server_handshake(&mut server, "test", 4096)
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::VersionUnsupported);
    let Message::Text(reply) = next(&mut raw).await else {
        panic!("no error frame");
    };
    let reply = Frame::from_json(reply.as_bytes()).unwrap();
    assert!(
        matches!(reply.body, Some(Body::Error(e)) if e.code() == ErrorCode::VersionUnsupported)
    );
    let Message::Close(Some(close)) = next(&mut raw).await else {
        panic!("no close");
    };
    assert_eq!(close.code, CloseCode::Protocol);
}
