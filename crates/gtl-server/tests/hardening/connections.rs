//! Connections that never say hello, go silent, crowd the server, send
//! nonsense first, or arrive when descriptors are gone; and shutdown with
//! clients that do not read.

use std::time::Duration;

use bytes::BytesMut;
use gtl_proto::{Body, Codec, Encoding, ErrorCode, Frame, Ping};
use serde_json::json;

use crate::support::{Raw, ServerProcess, error_code, stream_request};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_without_hello_is_answered_then_closed() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), "[limits]\nhandshake_timeout_secs = 1\n").await;
    let mut silent = Raw::connect(&server.tcp).await;
    let frames = silent.until_closed().await;
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(error_code(&frames[0]), "INVALID_REQUEST");
    assert!(frames[0]["message"].as_str().unwrap().contains("no hello"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_is_closed_but_one_with_a_call_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), "[limits]\nidle_timeout_secs = 1\n").await;
    let mut idle = Raw::hello(&server.tcp, &server.token).await;
    assert!(idle.until_closed().await.is_empty());
    // A slow stream outlives the idle timeout: its connection stays.
    let mut busy = Raw::hello(&server.tcp, &server.token).await;
    busy.send(stream_request(1, "echo:tokens=30,delay_ms=100"))
        .await;
    let frames = busy.until_terminal(1).await;
    assert_eq!(frames.last().unwrap()["type"], "done", "{frames:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_per_peer_cap_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), "[limits]\nmax_connections_per_peer = 3\n").await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(Raw::hello(&server.tcp, &server.token).await);
    }
    let mut extra = Raw::connect(&server.tcp).await;
    let frames = extra.until_closed().await;
    assert_eq!(error_code(&frames[0]), "RATE_LIMIT", "{frames:?}");
    // A place frees when a connection closes; the held ones still work.
    drop(held.pop());
    let mut again = loop {
        let mut raw = Raw::connect(&server.tcp).await;
        raw.send(json!({"type": "hello", "versions": ["1.0"], "token": server.token}))
            .await;
        match raw.recv().await {
            Some(frame) if frame["type"] == "welcome" => break raw,
            // The server may not have noticed the close yet.
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    again.send(stream_request(1, "echo")).await;
    assert_eq!(
        again.until_terminal(1).await.last().unwrap()["type"],
        "done"
    );
    held[0].send(stream_request(1, "echo")).await;
    assert_eq!(
        held[0].until_terminal(1).await.last().unwrap()["type"],
        "done"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_edge_cases_get_their_documented_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), "").await;

    // Garbage instead of hello: an error frame, then close.
    let mut garbage = Raw::connect(&server.tcp).await;
    garbage.send_bytes(b"GET / HTTP/1.1\r\n\r\n").await;
    let frames = garbage.until_closed().await;
    assert_eq!(error_code(&frames[0]), "INVALID_REQUEST", "{frames:?}");

    // A call with call_id 0 is refused; the connection goes on.
    let mut raw = Raw::hello(&server.tcp, &server.token).await;
    raw.send(stream_request(0, "echo")).await;
    let refusal = raw.recv().await.unwrap();
    assert_eq!(error_code(&refusal), "INVALID_REQUEST");
    assert!(refusal["message"].as_str().unwrap().contains("call_id"));
    raw.send(json!({"type": "ping", "call_id": 0, "nonce": 7}))
        .await;
    assert_eq!(raw.recv().await.unwrap()["type"], "pong");

    // Protobuf framing: an impossible length prefix and an invalid varint
    // are answered, then the connection closes.
    for (bytes, code) in [
        (
            vec![0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01],
            "FRAME_TOO_LARGE",
        ),
        (vec![0xff; 11], "INVALID_REQUEST"),
    ] {
        let mut raw = Raw::connect(&server.tcp).await;
        raw.send(json!({"type": "hello", "versions": ["1.0"], "encodings": ["protobuf"], "token": server.token}))
            .await;
        let welcome = raw.recv().await.unwrap();
        assert_eq!(welcome["encoding"], "protobuf", "{welcome}");
        raw.send_bytes(&bytes).await;
        let rest = raw.read_to_end().await;
        let mut buf = BytesMut::from(&rest[..]);
        let frame = Codec::new(Encoding::Protobuf)
            .decode(&mut buf)
            .unwrap()
            .expect("an error frame before the close");
        let Some(Body::Error(error)) = frame.body else {
            panic!("{frame:?}")
        };
        assert_eq!(error.code().as_str_name(), format!("ERROR_CODE_{code}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn descriptor_exhaustion_neither_spins_nor_floods_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let server =
        ServerProcess::start_wrapped(dir.path(), "", &["prlimit", "--nofile=48:48", "--"]).await;
    // Far more connections than descriptors: the kernel queues them, the
    // server cannot accept them.
    let mut crowd = Vec::new();
    for _ in 0..80 {
        crowd.push(tokio::net::TcpStream::connect(&server.tcp).await.unwrap());
    }
    let ticks_before = server.cpu_ticks();
    let lines_before = server.log().len();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ticks = server.cpu_ticks() - ticks_before;
    // The listeners' start-up lines may still be arriving (the test goes on
    // once TCP and HTTP are up): only what came after counts.
    let lines = server.log()[lines_before..]
        .iter()
        .filter(|line| !line.contains("listening"))
        .count();
    // 2 s of wall time is ~200 ticks; a spinning accept loop burns them all.
    assert!(ticks < 60, "accept loop used {ticks} ticks in 2 s");
    assert!(lines <= 4, "{lines} log lines in 2 s: {:?}", server.log());
    // Descriptors free up: the server serves again.
    drop(crowd);
    let mut raw = loop {
        let mut raw = Raw::connect(&server.tcp).await;
        raw.send(json!({"type": "hello", "versions": ["1.0"], "token": server.token}))
            .await;
        match raw.recv().await {
            Some(frame) if frame["type"] == "welcome" => break raw,
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    raw.send(stream_request(1, "echo")).await;
    assert_eq!(raw.until_terminal(1).await.last().unwrap()["type"], "done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_unread_streams_exits_within_the_shutdown_timeout() {
    let dir = tempfile::tempdir().unwrap();
    // Streams nobody reads never finish: the drain runs to its deadline.
    let mut server = ServerProcess::start(
        dir.path(),
        "[limits]\ndrain_secs = 1\nshutdown_timeout_secs = 3\n",
    )
    .await;
    let mut greedy = Raw::hello(&server.tcp, &server.token).await;
    for call in 1..=200 {
        greedy
            .send(stream_request(call, "echo:tokens=100000"))
            .await;
    }
    // Let the streams fill what they can.
    let accepted = greedy.recv_call(200).await.unwrap();
    assert_eq!(accepted["type"], "accepted");
    server.signal("TERM");
    let started = std::time::Instant::now();
    let status = server.wait().await;
    assert!(status.success(), "{status}: {:#?}", server.log());
    // The deadlines plus a generous allowance for a loaded CI machine.
    assert!(
        started.elapsed() < Duration::from_secs(1 + 3 + 7),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seed_client_without_hello_is_served_with_the_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), "").await;
    // Without a hello there is no token: on loopback TCP the call is
    // refused, saying what to do.
    let mut raw = Raw::connect(&server.tcp).await;
    raw.send(stream_request(1, "echo")).await;
    let frames = raw.until_closed().await;
    assert_eq!(error_code(&frames[0]), "UNAUTHENTICATED", "{frames:?}");
    assert!(
        frames[0]["message"]
            .as_str()
            .unwrap()
            .contains("gtl token show")
    );
    // Written from the seeds alone: the call first, no hello, on the Unix
    // socket, where the server's own user needs no token.
    let mut raw = Raw::connect_unix(dir.path()).await;
    raw.send(stream_request(1, "echo")).await;
    let frames = raw.until_terminal(1).await;
    assert_eq!(
        frames[0]["type"], "accepted",
        "no welcome, the call at once"
    );
    assert_eq!(frames.last().unwrap()["type"], "done", "{frames:?}");
    // The connection goes on in JSON, with more calls.
    raw.send(stream_request(2, "echo")).await;
    assert_eq!(raw.until_terminal(2).await.last().unwrap()["type"], "done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ack_by_session_trims_and_a_bodiless_frame_is_answered_on_its_call() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), "").await;

    // §2.1: an ack may name the session instead of the call (call_id 0).
    let mut raw = Raw::hello(&server.tcp, &server.token).await;
    raw.send(stream_request(1, "echo:tokens=10")).await;
    let frames = raw.until_terminal(1).await;
    let session = frames[0]["session_id"].as_str().unwrap().to_owned();
    let token = frames[0]["resume_token"].as_str().unwrap().to_owned();
    raw.send(json!({"type": "ack", "call_id": 0, "session_id": session, "seq": 5}))
        .await;
    let resume = |call_id: u64, after_seq: u64| {
        json!({"type": "resume", "call_id": call_id, "session_id": session,
               "after_seq": after_seq, "resume_token": token})
    };
    raw.send(resume(2, 2)).await;
    let refusal = raw.recv_call(2).await.unwrap();
    assert_eq!(error_code(&refusal), "RESUME_WINDOW_EXCEEDED", "{refusal}");
    raw.send(resume(3, 5)).await;
    let replay = raw.until_terminal(3).await;
    assert_eq!(replay[0]["type"], "accepted");
    assert_eq!(replay[1]["seq"], 6, "{replay:?}");

    // §3: a protobuf frame with no body is refused on its own call_id, and
    // the connection goes on.
    let mut raw = Raw::connect(&server.tcp).await;
    raw.send(json!({"type": "hello", "versions": ["1.0"], "encodings": ["protobuf"], "token": server.token}))
        .await;
    assert_eq!(raw.recv().await.unwrap()["encoding"], "protobuf");
    let mut codec = Codec::new(Encoding::Protobuf);
    // Length 2, then field 1 (call_id) = 7, and nothing else.
    raw.send_bytes(&[0x02, 0x08, 0x07]).await;
    let ping = Frame::control(9, Body::Ping(Ping { nonce: 1 }));
    let mut bytes = BytesMut::new();
    codec.encode(ping.as_ref(), &mut bytes).unwrap();
    raw.send_bytes(&bytes).await;
    let mut buf = BytesMut::new();
    let mut answers = Vec::new();
    while answers.len() < 2 {
        if let Some(frame) = codec.decode(&mut buf).unwrap() {
            answers.push(frame);
            continue;
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(
            Duration::from_secs(10),
            tokio::io::AsyncReadExt::read(raw.reader(), &mut chunk),
        )
        .await
        .unwrap()
        .unwrap();
        assert!(n > 0, "closed after {answers:?}");
        buf.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(answers[0].call_id, 7, "{answers:?}");
    assert!(
        matches!(&answers[0].body, Some(Body::Error(e)) if e.code() == ErrorCode::InvalidRequest),
        "{answers:?}"
    );
    assert!(
        matches!(answers[1].body, Some(Body::Pong(_))),
        "{answers:?}"
    );
}
