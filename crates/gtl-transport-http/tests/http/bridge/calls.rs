//! The handshake, calls and models over the bridge.

use std::collections::HashMap;

use gtl_core::Completion;
use gtl_proto::{
    Ack, Body, CompletionRequest, Encoding, ErrorCode, Frame, Hello, ModelsRequest, Ping,
};
use gtl_service::ConnectionLimits;
use gtl_transport::{Connector as _, HandshakeError, client_handshake};

use super::{
    accepted, connector, error, next, open, request, send, seqs, terminal, text, until, user,
};
use crate::{start, start_with};

#[tokio::test]
async fn hello_gets_the_gateways_own_welcome() {
    let mut limits = ConnectionLimits::default();
    limits.max_frame_bytes = 100_000;
    let addr = start_with(limits).await;
    let connector = connector(&addr);
    let (_conn, welcome) = open(&connector).await;
    assert_eq!(welcome.version, "1.0");
    // HTTP carries JSON only, so the negotiation picks it.
    assert_eq!(welcome.encoding(), Encoding::Json);
    assert_eq!(welcome.server, gtl_service::SERVER_NAME);
    assert_eq!(welcome.max_frame_bytes, 100_000);

    // Refusals come from the gateway's negotiation, as error frames.
    let mut conn = connector.connect().await.unwrap();
    let hello = Hello {
        versions: vec!["2.0".into()],
        ..Hello::default()
    };
    let refused = client_handshake(&mut conn, hello).await.unwrap_err();
    assert_eq!(refused.code(), ErrorCode::VersionUnsupported);
    assert!(
        matches!(refused, HandshakeError::Rejected { .. }),
        "{refused}"
    );
    let hello = Hello {
        token: "not-configured".into(),
        ..Hello::default()
    };
    let mut strict = super::connector(&crate::start_trusting_nobody().await)
        .connect()
        .await
        .unwrap();
    let refused = client_handshake(&mut strict, hello).await.unwrap_err();
    assert_eq!(refused.code(), ErrorCode::Unauthenticated);
}

#[tokio::test]
async fn an_unreachable_gateway_fails_the_handshake_as_a_connection_failure() {
    // A port that was free a moment ago: nobody listens there.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    let mut conn = connector(&addr).connect().await.unwrap();
    let failed = client_handshake(&mut conn, Hello::default())
        .await
        .unwrap_err();
    assert!(matches!(failed, HandshakeError::Transport(_)), "{failed}");
    assert!(failed.to_string().contains("/gtl/v1/hello"), "{failed}");
}

#[tokio::test]
async fn a_stream_arrives_in_order_and_ends_with_done() {
    let addr = start().await;
    let (mut conn, _) = open(&connector(&addr)).await;
    let words = "one two three four five six seven eight";
    send(&mut conn, [request(1, "echo", words)]).await;
    let frames = until(&mut conn, terminal).await;
    assert!(frames.iter().all(|f| f.call_id == 1));
    let (session, token) = accepted(&frames[0]);
    assert!(session.starts_with("s_") && !token.is_empty());
    let expected: Vec<u64> = (1..frames.len() as u64).collect();
    assert_eq!(seqs(&frames), expected);
    assert!(frames[1..].iter().all(|f| f.session_id == session));
    assert_eq!(text(&frames), words);
    assert!(matches!(frames.last().unwrap().body, Some(Body::Done(_))));
}

#[tokio::test]
async fn complete_is_the_same_events_folded() {
    let addr = start().await;
    let (mut conn, _) = open(&connector(&addr)).await;
    let Body::CompletionRequest(mut call) = request(3, "echo", "Hello, GTL").body.unwrap() else {
        unreachable!()
    };
    call.stream = false;
    send(
        &mut conn,
        [Frame::control(3, Body::CompletionRequest(call))],
    )
    .await;
    let frames = until(&mut conn, terminal).await;
    let mut completion = Completion::default();
    for frame in &frames[1..] {
        completion.push(frame.body.as_ref().unwrap());
    }
    let completion = completion.into_result().unwrap();
    assert_eq!(completion.text, "Hello, GTL");
    assert_eq!(completion.finish_reason, "stop");
    assert_eq!(completion.usage.unwrap().tokens_out, 2);
}

#[tokio::test]
async fn an_unknown_model_is_the_error_frame_with_its_code() {
    let addr = start().await;
    let (mut conn, _) = open(&connector(&addr)).await;
    // The provider refuses the model: the session's first event.
    send(&mut conn, [request(4, "nope", "hi")]).await;
    let frames = until(&mut conn, terminal).await;
    accepted(&frames[0]);
    let last = frames.last().unwrap();
    assert_eq!((last.call_id, last.seq), (4, 1));
    assert_eq!(error(last).code(), ErrorCode::ModelNotFound);

    // No such provider: refused before a session exists, with the HTTP
    // answer's error frame.
    let Body::CompletionRequest(mut call) = request(5, "echo", "hi").body.unwrap() else {
        unreachable!()
    };
    call.provider = "nope".into();
    send(
        &mut conn,
        [Frame::control(5, Body::CompletionRequest(call))],
    )
    .await;
    let refusal = next(&mut conn).await;
    assert_eq!((refusal.call_id, refusal.seq), (5, 0));
    let error = error(&refusal);
    assert_eq!(error.code(), ErrorCode::ModelNotFound);
    assert!(
        error.message.contains("unknown provider `nope`"),
        "{}",
        error.message
    );

    // The connection goes on.
    send(&mut conn, [request(6, "echo", "still here")]).await;
    let frames = until(&mut conn, terminal).await;
    assert_eq!(text(&frames), "still here");
}

#[tokio::test]
async fn models_are_provider_infos_then_done() {
    let addr = start().await;
    let (mut conn, _) = open(&connector(&addr)).await;
    let all = ModelsRequest {
        provider: String::new(),
    };
    send(&mut conn, [Frame::control(6, Body::ModelsRequest(all))]).await;
    let frames = until(&mut conn, terminal).await;
    assert!(frames.iter().all(|f| f.call_id == 6));
    let Some(Body::ProviderInfo(info)) = &frames[0].body else {
        panic!("{frames:?}")
    };
    assert_eq!(info.provider, "echo");
    assert_eq!(info.models[0].name, "echo");
    assert!(matches!(frames.last().unwrap().body, Some(Body::Done(_))));

    let unknown = ModelsRequest {
        provider: "nope".into(),
    };
    send(&mut conn, [Frame::control(7, Body::ModelsRequest(unknown))]).await;
    let refusal = next(&mut conn).await;
    assert_eq!(refusal.call_id, 7);
    assert_eq!(error(&refusal).code(), ErrorCode::ModelNotFound);
}

#[tokio::test]
async fn pings_are_answered_acks_dropped_and_server_frames_refused() {
    let addr = start().await;
    let (mut conn, _) = open(&connector(&addr)).await;
    let ack = Frame {
        call_id: 1,
        session_id: "s_x".into(),
        seq: 3,
        body: Some(Body::Ack(Ack {})),
    };
    let welcome = Frame::control(2, Body::Welcome(Box::default()));
    let ping = Frame::control(3, Body::Ping(Ping { nonce: 42 }));
    send(&mut conn, [ack, welcome, ping]).await;
    // Nothing for the ack; the refusal, then the pong, in order.
    let refusal = next(&mut conn).await;
    assert_eq!(refusal.call_id, 2);
    assert_eq!(error(&refusal).code(), ErrorCode::InvalidRequest);
    let pong = next(&mut conn).await;
    assert_eq!(pong.call_id, 3);
    assert!(matches!(pong.body, Some(Body::Pong(p)) if p.nonce == 42));
}

/// Eight calls at once on one connection, each with its own words and
/// pace: every call's events arrive complete and in order.
async fn concurrent_calls(connector: gtl_transport_http::HttpConnector) {
    let (mut conn, _) = open(&connector).await;
    let calls: Vec<(u64, String)> = (1..=8)
        .map(|i| (i, (0..20).map(|w| format!("c{i}w{w} ")).collect()))
        .collect();
    let requests = calls.iter().map(|(id, words)| {
        let model = format!("echo:delay_ms={}", id % 3);
        request(*id, &model, words)
    });
    send(&mut conn, requests).await;
    let mut by_call: HashMap<u64, Vec<Frame>> = HashMap::new();
    let mut open_calls = calls.len();
    while open_calls > 0 {
        let frame = next(&mut conn).await;
        if terminal(&frame) {
            open_calls -= 1;
        }
        by_call.entry(frame.call_id).or_default().push(frame);
    }
    for (id, words) in &calls {
        let frames = &by_call[id];
        assert!(
            matches!(frames[0].body, Some(Body::Accepted(_))),
            "call {id}"
        );
        let expected: Vec<u64> = (1..frames.len() as u64).collect();
        assert_eq!(seqs(frames), expected, "call {id}");
        assert_eq!(&text(frames), words, "call {id}");
    }
}

#[tokio::test]
async fn concurrent_calls_share_one_connection_over_http1() {
    let addr = start().await;
    concurrent_calls(connector(&addr)).await;
}

#[tokio::test]
async fn concurrent_calls_share_one_connection_over_h2c() {
    let addr = start().await;
    concurrent_calls(connector(&addr).with_http2_prior_knowledge()).await;
}

#[tokio::test]
async fn a_call_before_any_hello_runs_with_the_defaults() {
    let addr = start().await;
    let mut conn = connector(&addr).connect().await.unwrap();
    let call = CompletionRequest {
        model: "echo".into(),
        messages: vec![user("no hello")],
        ..CompletionRequest::default()
    };
    send(
        &mut conn,
        [Frame::control(1, Body::CompletionRequest(Box::new(call)))],
    )
    .await;
    assert_eq!(text(&until(&mut conn, terminal).await), "no hello");
}

#[tokio::test]
async fn closing_the_writing_half_ends_the_connection() {
    let addr = start().await;
    let (mut conn, _) = open(&connector(&addr)).await;
    send(
        &mut conn,
        [request(1, "echo:tokens=100000,delay_ms=1", "x")],
    )
    .await;
    accepted(&next(&mut conn).await);
    conn.write.close().await.unwrap();
    // What was bridged already may still come; then the end, not a failure.
    while conn.read.read_frame().await.unwrap().is_some() {}
    assert!(conn.write.flush().await.is_err());
}
