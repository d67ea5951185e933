//! Calls through the multiplexed client connection.

use gtl_proto::{Ack, Body, Cancel, ErrorCode, Frame, ModelsRequest, Resume};

use crate::{assert_contiguous, echo, send, start, start_frame, text, until_end};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_arrives_in_order_on_its_own_stream() {
    let server = start().await;
    let mut conn = server.connect().await;
    send(&mut conn, start_frame(1, echo("hello over quic", &[]))).await;
    let frames = until_end(&mut conn, 1).await;
    let Some(Body::Accepted(accepted)) = &frames[0].body else {
        panic!("{:?}", frames[0]);
    };
    assert!(!accepted.resume_token.is_empty());
    assert!(frames[0].session_id.starts_with("s_"));
    assert_contiguous(&frames[1..], 1);
    assert_eq!(text(&frames), "hello over quic");
    assert!(matches!(frames.last().unwrap().body, Some(Body::Done(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_calls_share_one_connection() {
    let server = start().await;
    let mut conn = server.connect().await;
    for call_id in 1..=20 {
        let request = echo(&format!("call {call_id}"), &[("tokens", "50")]);
        conn.write
            .write_frame(start_frame(call_id, request).as_ref())
            .unwrap();
    }
    conn.write.flush().await.unwrap();
    let mut done = std::collections::BTreeMap::new();
    while done.len() < 20 {
        let frame = conn.read.read_frame().await.unwrap().unwrap();
        if let Some(Body::Done(_)) = frame.body {
            done.insert(frame.call_id, frame.seq);
        }
    }
    assert_eq!(
        done.keys().copied().collect::<Vec<_>>(),
        (1..=20).collect::<Vec<_>>()
    );
    // Many more calls than the stream limit in a row: finished streams are
    // given back.
    for call_id in 100..1200u64 {
        send(&mut conn, start_frame(call_id, echo("x", &[]))).await;
        let frames = until_end(&mut conn, call_id).await;
        assert!(matches!(frames.last().unwrap().body, Some(Body::Done(_))));
        let ack = Frame {
            call_id,
            session_id: frames[0].session_id.clone(),
            seq: frames.last().unwrap().seq,
            body: Some(Body::Ack(Ack {})),
        };
        send(&mut conn, ack).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_and_refusals_answer_on_their_stream() {
    let server = start().await;
    let mut conn = server.connect().await;
    send(
        &mut conn,
        Frame::control(1, Body::ModelsRequest(ModelsRequest::default())),
    )
    .await;
    let frames = until_end(&mut conn, 1).await;
    assert!(matches!(&frames[0].body, Some(Body::ProviderInfo(p)) if p.provider == "echo"));

    let mut unknown = echo("x", &[]);
    unknown.model = "nowhere/none".into();
    send(&mut conn, start_frame(2, unknown)).await;
    let frames = until_end(&mut conn, 2).await;
    let Some(Body::Error(error)) = &frames.last().unwrap().body else {
        panic!("{frames:?}");
    };
    assert_eq!(error.code(), ErrorCode::ModelNotFound);

    // The connection serves on.
    send(&mut conn, start_frame(3, echo("still here", &[]))).await;
    assert_eq!(text(&until_end(&mut conn, 3).await), "still here");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_on_the_call_stream_ends_it() {
    let server = start().await;
    let mut conn = server.connect().await;
    let request = echo("x", &[("tokens", "100000"), ("delay_ms", "1")]);
    send(&mut conn, start_frame(1, request)).await;
    let accepted = conn.read.read_frame().await.unwrap().unwrap();
    let cancel = Frame {
        call_id: 1,
        session_id: accepted.session_id.clone(),
        seq: 0,
        body: Some(Body::Cancel(Cancel {
            reason: "enough".into(),
            ..Cancel::default()
        })),
    };
    send(&mut conn, cancel).await;
    let frames = until_end(&mut conn, 1).await;
    let Some(Body::Error(error)) = &frames.last().unwrap().body else {
        panic!("{:?}", frames.last());
    };
    assert_eq!(error.code(), ErrorCode::Cancelled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_resumes_on_a_new_one() {
    let server = start().await;
    let request = echo("resume me please", &[("tokens", "300"), ("delay_ms", "1")]);
    let mut first = server.connect().await;
    send(&mut first, start_frame(1, request.clone())).await;
    let mut before = Vec::new();
    while before.len() < 40 {
        before.push(first.read.read_frame().await.unwrap().unwrap());
    }
    drop(first);
    let Some(Body::Accepted(accepted)) = &before[0].body else {
        panic!("{:?}", before[0]);
    };
    let last = before.last().unwrap().seq;

    let mut second = server.connect().await;
    let resume = Frame {
        call_id: 7,
        session_id: before[0].session_id.clone(),
        seq: 0,
        body: Some(Body::Resume(Resume {
            after_seq: last,
            resume_token: accepted.resume_token.clone(),
        })),
    };
    send(&mut second, resume).await;
    let after = until_end(&mut second, 7).await;
    assert!(matches!(after[0].body, Some(Body::Accepted(_))));
    let all: Vec<Frame> = before[1..].iter().chain(&after[1..]).cloned().collect();
    assert_contiguous(&all, 1);

    let mut direct = server.connect().await;
    send(&mut direct, start_frame(1, request)).await;
    assert_eq!(text(&all), text(&until_end(&mut direct, 1).await));
}
