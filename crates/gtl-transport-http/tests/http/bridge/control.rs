//! cancel and session.pipe input over the bridge: by `call_id` (the
//! bridge knows the session from `accepted`) or by session id and token.

use gtl_proto::{Body, Cancel, CompletionRequest, ErrorCode, Frame, Input};

use super::{accepted, connector, error, next, open, request, send, terminal, text, until, user};
use crate::start;

fn cancel(call_id: u64, session_id: &str, token: &str, reason: &str) -> Frame {
    Frame {
        call_id,
        session_id: session_id.into(),
        seq: 0,
        body: Some(Body::Cancel(Cancel {
            reason: reason.into(),
            resume_token: token.into(),
        })),
    }
}

#[tokio::test]
async fn cancel_by_call_id_mid_stream_ends_with_cancelled() {
    let addr = start().await;
    let (mut conn, _) = open(&connector(&addr)).await;
    send(
        &mut conn,
        [request(1, "echo:tokens=100000,delay_ms=1", "x")],
    )
    .await;
    let (session, _) = accepted(&next(&mut conn).await);
    let started = until(&mut conn, |f| f.seq == 5).await;
    assert!(started.iter().all(|f| !terminal(f)));
    // No session or token in the frame: the bridge uses the call's.
    send(&mut conn, [cancel(1, "", "", "enough")]).await;
    let end = until(&mut conn, terminal).await;
    let last = end.last().unwrap();
    assert_eq!(
        (last.call_id, last.session_id.as_str()),
        (1, session.as_str())
    );
    assert!(last.seq > 5);
    let error = error(last);
    assert_eq!(error.code(), ErrorCode::Cancelled);
    assert_eq!(error.message, "enough");
}

#[tokio::test]
async fn cancel_by_session_id_reaches_a_call_of_another_connection() {
    let addr = start().await;
    let connector = connector(&addr);
    let (mut first, _) = open(&connector).await;
    send(
        &mut first,
        [request(1, "echo:tokens=100000,delay_ms=1", "x")],
    )
    .await;
    let (session, token) = accepted(&next(&mut first).await);
    next(&mut first).await;

    let (mut second, _) = open(&connector).await;
    // Without the token it is refused as an unknown session would be.
    send(&mut second, [cancel(9, &session, "wrong", "no")]).await;
    let refusal = next(&mut second).await;
    assert_eq!(refusal.call_id, 9);
    assert_eq!(error(&refusal).code(), ErrorCode::ResumeNotFound);
    send(&mut second, [cancel(9, &session, &token, "from elsewhere")]).await;
    let end = until(&mut first, terminal).await;
    let error = error(end.last().unwrap());
    assert_eq!(error.code(), ErrorCode::Cancelled);
    assert_eq!(error.message, "from elsewhere");
}

#[tokio::test]
async fn a_pipe_session_takes_input_between_turns() {
    let addr = start().await;
    let (mut conn, _) = open(&connector(&addr)).await;
    let call = CompletionRequest {
        model: "echo".into(),
        messages: vec![user("first")],
        stream: true,
        pipe: true,
        ..CompletionRequest::default()
    };
    send(
        &mut conn,
        [Frame::control(2, Body::CompletionRequest(Box::new(call)))],
    )
    .await;
    let first = until(&mut conn, terminal).await;
    let (session, _) = accepted(&first[0]);
    assert_eq!(text(&first), "first");
    assert!(matches!(first.last().unwrap().body, Some(Body::Done(_))));

    // As gtl-client sends it: the call's id and session, no token.
    let input = Frame {
        call_id: 2,
        session_id: session,
        seq: 0,
        body: Some(Body::Input(Input {
            messages: vec![user("second")],
            end: true,
            ..Input::default()
        })),
    };
    send(&mut conn, [input]).await;
    let second = until(&mut conn, terminal).await;
    assert_eq!(text(&second), "second");
    let done = second.last().unwrap();
    assert!(matches!(done.body, Some(Body::Done(_))), "{done:?}");
    let last_first = first.last().unwrap().seq;
    assert_eq!(
        second[0].seq,
        last_first + 1,
        "the turn goes on the same session"
    );
}

#[tokio::test]
async fn controls_naming_no_call_and_no_session_are_refused() {
    let addr = start().await;
    let (mut conn, _) = open(&connector(&addr)).await;
    send(&mut conn, [cancel(5, "", "", "who?")]).await;
    let refusal = next(&mut conn).await;
    assert_eq!(refusal.call_id, 5);
    let error = error(&refusal);
    assert_eq!(error.code(), ErrorCode::InvalidRequest);
    assert_eq!(
        error.message,
        "cancel names no call on this connection and no session"
    );
}
