//! Transparent resume: a connection cut mid-stream, and the client falling
//! through to the next endpoint (TCP through a proxy, then the Unix socket)
//! without losing or repeating an event.

use futures::StreamExt as _;
use gtl_client::{ClientError, ErrorCode, ResumePoint, connect};

use crate::support::{
    Gateway, assert_complete, cutting_proxy, drain, fast_policy, proxy_cutting_first_call, request,
    text,
};

/// Enough events that the proxy's byte limit cuts the stream early on.
const KNOBS: &[(&str, &str)] = &[("tokens", "3000")];

/// Gateway bytes the proxy lets through: the welcome, `accepted` and some
/// events, then it cuts (most likely in the middle of a frame).
const CUT_AFTER: usize = 4000;

#[tokio::test]
async fn a_cut_stream_resumes_on_the_next_endpoint() {
    let gateway = Gateway::start().await;
    let proxy = cutting_proxy(gateway.tcp_addr, CUT_AFTER).await;
    let opts = gateway
        .opts([proxy.as_str(), gateway.unix.as_str()])
        .with_reconnect(fast_policy());
    let client = connect(opts).await.unwrap();
    assert_eq!(client.endpoint(), proxy);

    let mut events = client.stream(request("x", KNOBS)).await.unwrap();
    let (seen, error) = drain(&mut events).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(
        client.endpoint(),
        gateway.unix,
        "fell through to the Unix socket"
    );
    assert_complete(&seen);

    // The same text as an uncut call.
    let direct = connect(gateway.opts([gateway.unix.as_str()]))
        .await
        .unwrap();
    let expected = direct.complete(request("x", KNOBS)).await.unwrap();
    assert_eq!(text(&seen), expected.text);
    assert_eq!(expected.usage.unwrap().tokens_out, 3000);
}

#[tokio::test]
async fn streams_of_a_cut_connection_share_one_reconnect() {
    let gateway = Gateway::start().await;
    let proxy = cutting_proxy(gateway.tcp_addr, CUT_AFTER).await;
    let opts = gateway
        .opts([proxy.as_str(), gateway.unix.as_str()])
        .with_reconnect(fast_policy());
    let client = connect(opts).await.unwrap();

    // Paced, so that all three calls are usually accepted before the cut
    // (the outcome is the same either way: a call cut before `accepted` is
    // asked for again).
    let knobs = &[("tokens", "400"), ("delay_ms", "1")];
    let mut first = client.stream(request("x", knobs)).await.unwrap();
    let mut second = client.stream(request("y", knobs)).await.unwrap();
    let unary = client.complete(request("x", knobs));
    let ((a, a_err), (b, b_err), c) = tokio::join!(drain(&mut first), drain(&mut second), unary);
    assert!(a_err.is_none() && b_err.is_none(), "{a_err:?} {b_err:?}");
    assert_complete(&a);
    assert_complete(&b);
    let c = c.unwrap();
    assert_eq!(c.usage.unwrap().tokens_out, 400);
    assert_eq!(text(&a), c.text);
    assert_eq!(text(&b), c.text);
    assert_eq!(client.endpoint(), gateway.unix);
}

#[tokio::test]
async fn complete_survives_a_cut() {
    let gateway = Gateway::start().await;
    let proxy = cutting_proxy(gateway.tcp_addr, CUT_AFTER).await;
    let opts = gateway
        .opts([proxy.as_str(), gateway.unix.as_str()])
        .with_reconnect(fast_policy());
    let client = connect(opts).await.unwrap();
    let completion = client.complete(request("x", KNOBS)).await.unwrap();
    assert_eq!(completion.usage.unwrap().tokens_out, 3000);
    assert_eq!(completion.text.len(), 3000 * 4);
    assert_eq!(client.endpoint(), gateway.unix);
}

#[tokio::test]
async fn a_cut_during_the_handshake_falls_through() {
    let gateway = Gateway::start().await;
    // Nothing of the welcome gets through.
    let proxy = cutting_proxy(gateway.tcp_addr, 0).await;
    let opts = gateway
        .opts([proxy.as_str(), gateway.unix.as_str()])
        .with_reconnect(fast_policy());
    let client = connect(opts).await.unwrap();
    assert_eq!(client.endpoint(), gateway.unix);
    let completion = client.complete(request("hello", &[])).await.unwrap();
    assert_eq!(completion.text, "hello");
}

#[tokio::test]
async fn a_call_cut_before_accepted_is_sent_again() {
    let gateway = Gateway::start().await;
    let proxy = proxy_cutting_first_call(gateway.tcp_addr).await;
    let opts = gateway
        .opts([proxy.as_str(), gateway.unix.as_str()])
        .with_reconnect(fast_policy());
    let client = connect(opts).await.unwrap();
    assert_eq!(client.endpoint(), proxy);
    // The request reached the gateway but its `accepted` never came back:
    // nothing reached the caller, so the client asks again elsewhere.
    let mut events = client.stream(request("hello again", &[])).await.unwrap();
    let (seen, error) = drain(&mut events).await;
    assert!(error.is_none(), "{error:?}");
    assert_complete(&seen);
    assert_eq!(text(&seen), "hello again");
    assert_eq!(client.endpoint(), gateway.unix);
}

#[tokio::test]
async fn when_no_endpoint_is_left_the_stream_ends_with_a_typed_error() {
    let gateway = Gateway::start().await;
    let proxy = cutting_proxy(gateway.tcp_addr, CUT_AFTER).await;
    let opts = gateway.opts([proxy.as_str()]).with_reconnect(fast_policy());
    let client = connect(opts).await.unwrap();
    let mut events = client.stream(request("x", KNOBS)).await.unwrap();
    let (seen, error) = drain(&mut events).await;
    let error = error.expect("the stream cannot be restored");
    assert!(
        matches!(error, ClientError::Disconnected { .. }),
        "{error:?}"
    );
    assert!(error.is_connect());
    assert!(error.to_string().contains(&proxy), "{error}");
    // What was delivered before the cut is still in order.
    let seqs: Vec<u64> = seen.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=seen.len() as u64).collect::<Vec<_>>());
    assert!(seqs.len() < 3000);
}

/// An editor that reloads: one client reads part of a stream and lets go
/// of it, a new client (another connection, as another process would have)
/// picks it up from the resume point and gets exactly the rest.
#[tokio::test]
async fn a_new_client_picks_up_a_session_from_its_resume_point() {
    let gateway = Gateway::start().await;
    let knobs = &[("tokens", "200")];
    let first = connect(gateway.opts([gateway.tcp.as_str()])).await.unwrap();
    let mut events = first.stream(request("x", knobs)).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..25 {
        seen.push(events.next().await.unwrap().unwrap());
    }
    let point = events.detach();
    assert_eq!(point.after_seq, 25);
    assert!(!point.resume_token.is_empty());
    drop(first);

    let second = connect(gateway.opts([gateway.unix.as_str()]))
        .await
        .unwrap();
    let mut rest = second.resume(point.clone()).await.unwrap();
    assert_eq!(rest.session_id(), point.session_id);
    let (tail, error) = drain(&mut rest).await;
    assert!(error.is_none(), "{error:?}");
    seen.extend(tail);
    assert_complete(&seen);
    let expected = second.complete(request("x", knobs)).await.unwrap();
    assert_eq!(text(&seen), expected.text);

    // What the reader acked is forgotten: it cannot be asked for again.
    let forgotten = second
        .resume(ResumePoint {
            after_seq: 190,
            ..point.clone()
        })
        .await
        .unwrap_err();
    assert_eq!(forgotten.code(), Some(ErrorCode::ResumeWindowExceeded));

    // A wrong token is refused like an unknown session.
    let refused = second
        .resume(ResumePoint {
            resume_token: "not-the-token".into(),
            ..point
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::ResumeNotFound));
}
