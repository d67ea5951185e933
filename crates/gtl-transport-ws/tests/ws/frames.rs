//! Frames in both encodings, and batches.

use gtl_proto::{Body, Encoding, Frame, Ping};
use gtl_transport::Connection;
use prost::Message as _;
use tokio_tungstenite::tungstenite::Message;

use crate::util::{next, pair, raw_pair, send, token};

async fn round_trip(from: &mut Connection, to: &mut Connection, frame: &Frame) {
    from.write.write_frame(frame.as_ref()).unwrap();
    from.write.flush().await.unwrap();
    assert_eq!(to.read.read_frame().await.unwrap().as_ref(), Some(frame));
}

#[tokio::test]
async fn json_and_protobuf_frames_round_trip() {
    let (mut client, mut server) = pair().await;
    assert_eq!(client.encodings, [Encoding::Json, Encoding::Protobuf]);
    round_trip(
        &mut client,
        &mut server,
        &Frame::control(1, Body::Ping(Ping { nonce: 9 })),
    )
    .await;
    round_trip(&mut server, &mut client, &token(1, "Hel")).await;
    for conn in [&mut client, &mut server] {
        conn.read.set_encoding(Encoding::Protobuf);
        conn.write.set_encoding(Encoding::Protobuf);
    }
    round_trip(
        &mut client,
        &mut server,
        &Frame::control(2, Body::Ping(Ping { nonce: 10 })),
    )
    .await;
    round_trip(&mut server, &mut client, &token(2, "lo ✓")).await;
}

#[tokio::test]
async fn json_travels_as_text_and_protobuf_as_binary() {
    let (mut raw, mut server) = raw_pair(1024).await;
    let frame = token(1, "Hel");
    server.write.write_frame(frame.as_ref()).unwrap();
    server.write.flush().await.unwrap();
    let Message::Text(text) = next(&mut raw).await else {
        panic!("not a text message");
    };
    assert_eq!(text.as_str(), frame.to_json().unwrap());

    server.write.set_encoding(Encoding::Protobuf);
    server.write.write_frame(frame.as_ref()).unwrap();
    server.write.flush().await.unwrap();
    let Message::Binary(bytes) = next(&mut raw).await else {
        panic!("not a binary message");
    };
    // The frame's protobuf bytes, without a length prefix.
    assert_eq!(bytes, frame.encode_to_vec());

    server.read.set_encoding(Encoding::Protobuf);
    send(&mut raw, Message::Binary(frame.encode_to_vec().into())).await;
    assert_eq!(server.read.read_frame().await.unwrap(), Some(frame));
}

#[tokio::test]
async fn a_batch_is_buffered_and_sent_by_one_flush() {
    let (mut client, mut server) = pair().await;
    let frames: Vec<Frame> = (1..=500).map(|seq| token(seq, "tok")).collect();
    for frame in &frames {
        server.write.write_frame(frame.as_ref()).unwrap();
    }
    let buffered = server.write.buffered();
    let one = token(1, "tok").to_json().unwrap().len();
    assert!(buffered >= 500 * one, "{buffered}");
    server.write.flush().await.unwrap();
    assert_eq!(server.write.buffered(), 0);
    for frame in frames {
        assert_eq!(client.read.read_frame().await.unwrap(), Some(frame));
    }
}

#[tokio::test]
async fn frames_over_the_senders_limit_are_not_buffered() {
    let (mut client, _server) = pair().await;
    let big = token(1, &"x".repeat(gtl_proto::DEFAULT_MAX_FRAME_BYTES));
    let err = client.write.write_frame(big.as_ref()).unwrap_err();
    assert_eq!(err.code(), gtl_proto::ErrorCode::FrameTooLarge);
    assert_eq!(client.write.buffered(), 0);
}
