//! Bad and oversized messages.

use gtl_proto::{Body, Encoding, Error, ErrorCode, Frame};
use gtl_transport::TransportError;
use prost::Message as _;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::util::{next, raw_pair, send, token};

fn assert_recoverable(err: &TransportError, code: ErrorCode) {
    assert!(err.is_recoverable(), "{err}");
    assert_eq!(err.code(), code, "{err}");
}

#[tokio::test]
async fn a_bad_message_is_recoverable_and_the_next_frame_arrives() {
    let (mut raw, mut server) = raw_pair(1024).await;
    let frame = token(1, "after");
    send(&mut raw, Message::text("{not json")).await;
    send(&mut raw, Message::text(r#"{"type":"no_such_frame"}"#)).await;
    // Protobuf on a JSON connection.
    send(&mut raw, Message::Binary(frame.encode_to_vec().into())).await;
    send(&mut raw, Message::text(frame.to_json().unwrap())).await;
    for _ in 0..3 {
        let err = server.read.read_frame().await.unwrap_err();
        assert_recoverable(&err, ErrorCode::InvalidRequest);
    }
    assert_eq!(server.read.read_frame().await.unwrap(), Some(frame.clone()));

    server.read.set_encoding(Encoding::Protobuf);
    // JSON on a protobuf connection, bytes that are no frame, and a frame
    // without a known body.
    send(&mut raw, Message::text(frame.to_json().unwrap())).await;
    send(&mut raw, Message::Binary(vec![0xff; 4].into())).await;
    send(&mut raw, Message::Binary(vec![0x08, 0x01].into())).await;
    send(&mut raw, Message::Binary(frame.encode_to_vec().into())).await;
    for _ in 0..3 {
        let err = server.read.read_frame().await.unwrap_err();
        assert_recoverable(&err, ErrorCode::InvalidRequest);
    }
    assert_eq!(server.read.read_frame().await.unwrap(), Some(frame));
}

/// Over tungstenite's limit: refused at the header, then the connection is
/// closed with 1009 after the application's error frame.
#[tokio::test]
async fn an_oversized_message_is_refused_and_closed_with_1009() {
    let (mut raw, mut server) = raw_pair(1024).await;
    send(&mut raw, Message::text("x".repeat(1025))).await;
    let err = server.read.read_frame().await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::FrameTooLarge);
    assert!(err.to_string().contains("1025"), "{err}");
    assert_eq!(server.read.read_frame().await.unwrap(), None);

    // What the server pipeline does with it: an error frame, then close.
    let error = Error {
        code: ErrorCode::FrameTooLarge as i32,
        message: err.to_string(),
        ..Error::default()
    };
    let reply = Frame::control(0, Body::Error(error));
    server.write.write_frame(reply.as_ref()).unwrap();
    server.write.flush().await.unwrap();
    server.write.close().await.unwrap();
    assert_eq!(
        next(&mut raw).await,
        Message::text(reply.to_json().unwrap())
    );
    let Message::Close(Some(close)) = next(&mut raw).await else {
        panic!("no close");
    };
    assert_eq!(close.code, CloseCode::Size);
}

/// Under tungstenite's limit but over a lower limit set later: refused
/// after it arrived, and the connection goes on.
#[tokio::test]
async fn a_message_over_a_lowered_limit_is_skipped() {
    let (mut raw, mut server) = raw_pair(4096).await;
    server.read.set_max_frame_bytes(100);
    let big = token(1, &"y".repeat(200));
    let small = token(2, "z");
    send(&mut raw, Message::text(big.to_json().unwrap())).await;
    send(&mut raw, Message::text(small.to_json().unwrap())).await;
    let err = server.read.read_frame().await.unwrap_err();
    assert_recoverable(&err, ErrorCode::FrameTooLarge);
    assert_eq!(server.read.read_frame().await.unwrap(), Some(small));
}
