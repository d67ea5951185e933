//! Bad input gets a clear error, and the gateway keeps serving.

use gtl_client::proto::{Body, ErrorCode, Frame};

use crate::harness::{Gateway, Raw, Transport, echo};

crate::per_framed_transport!(malformed_and_oversized_frames, unsupported_version);

const MAX_FRAME: usize = 64 * 1024;

fn error_code(frame: &Frame) -> ErrorCode {
    match &frame.body {
        Some(Body::Error(error)) => error.code(),
        other => panic!("expected an error frame, got {other:?}"),
    }
}

async fn malformed_and_oversized_frames(transport: Transport) {
    let gateway = Gateway::start_with(|c| c.limits.max_frame_bytes = MAX_FRAME).await;
    let mut raw = Raw::open(&gateway, transport).await;
    raw.hello("1.0").await;
    assert!(matches!(raw.recv().await.body, Some(Body::Welcome(_))));

    // Not JSON at all.
    raw.send(b"{\"type\": tok\n").await;
    let error = raw.recv().await;
    assert_eq!(error_code(&error), ErrorCode::InvalidRequest);

    // JSON, but no frame GTL knows.
    raw.send(b"{\"type\":\"teleport\",\"call_id\":4}\n").await;
    assert_eq!(error_code(&raw.recv().await), ErrorCode::InvalidRequest);

    // Larger than the limit: refused, skipped, and the connection goes on.
    let mut big = br#"{"type":"ping","nonce":1,"pad":""#.to_vec();
    big.resize(MAX_FRAME * 3, b'x');
    big.extend_from_slice(b"\"}\n");
    raw.send(&big).await;
    let error = raw.recv().await;
    assert_eq!(error_code(&error), ErrorCode::FrameTooLarge);
    if transport == Transport::Ws {
        // A WebSocket message cannot be skipped unread: the connection is
        // closed (1009) after the error (docs/protocol.md §13.4).
        assert!(raw.at_end().await, "the WebSocket is closed");
        raw = Raw::open(&gateway, transport).await;
        raw.hello("1.0").await;
        assert!(matches!(raw.recv().await.body, Some(Body::Welcome(_))));
    }

    raw.send(b"{\"type\":\"ping\",\"nonce\":7}\n").await;
    assert!(matches!(raw.recv().await.body, Some(Body::Pong(p)) if p.nonce == 7));

    // Other connections were served all along.
    let client = gateway.client(transport).await;
    assert_eq!(
        client.complete(echo("unaffected", &[])).await.unwrap().text,
        "unaffected"
    );
}

async fn unsupported_version(transport: Transport) {
    let gateway = Gateway::start().await;
    let mut raw = Raw::open(&gateway, transport).await;
    raw.hello("2.0").await;
    let error = raw.recv().await;
    assert_eq!(error_code(&error), ErrorCode::VersionUnsupported);
    let client = gateway.client(transport).await;
    assert_eq!(
        client.complete(echo("fine", &[])).await.unwrap().text,
        "fine"
    );
}
