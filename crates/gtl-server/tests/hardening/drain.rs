//! SIGTERM drains the real server: clients are told, streams that end
//! within `drain_secs` end there, the others are cut at the deadline and
//! resume on the next server over the same data, with no event lost or
//! renumbered; the server exits 0 and leaves no socket file. A second
//! SIGTERM stops at once.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::crash::resume;
use crate::support::{Raw, ServerProcess, error_code, is_terminal, socket, stream_request};

const STREAMS: u64 = 50;

/// Even calls end within the drain; odd ones would run for minutes.
fn model(call: u64) -> &'static str {
    if call.is_multiple_of(2) {
        "echo:tokens=5,delay_ms=100"
    } else {
        "echo:tokens=3000,delay_ms=100"
    }
}

/// The `seq`s of `frames` (events only), in order.
fn seqs(frames: &[Value]) -> Vec<u64> {
    frames
        .iter()
        .filter_map(|f| f["seq"].as_u64())
        .filter(|seq| *seq > 0)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_fifty_streams_loses_no_event() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(dir.path(), "[limits]\ndrain_secs = 2\n").await;
    let mut raw = Raw::hello(&server.tcp, &server.token).await;
    for call in 1..=STREAMS {
        raw.send(stream_request(call, model(call))).await;
    }
    // Every stream running: accepted and its first event seen.
    let mut frames: BTreeMap<u64, Vec<Value>> = BTreeMap::new();
    while frames.len() < STREAMS as usize || frames.values().any(|f| f.len() < 2) {
        let frame = raw.recv().await.expect("events before the signal");
        frames
            .entry(frame["call_id"].as_u64().unwrap())
            .or_default()
            .push(frame);
    }
    server.signal("TERM");
    let mut told = false;
    while let Some(frame) = raw.recv().await {
        // Connection frames leave call_id 0 out.
        match frame["call_id"].as_u64().unwrap_or(0) {
            0 => {
                assert_eq!(frame["type"], "status", "{frame}");
                assert_eq!(frame["state"], "draining", "{frame}");
                told = true;
            }
            call => frames.entry(call).or_default().push(frame),
        }
    }
    assert!(told, "the client was told the gateway drains");
    let status = server.wait().await;
    assert!(status.success(), "{status}: {:#?}", server.log());
    assert!(!socket(dir.path()).exists(), "the socket file is gone");

    let server = ServerProcess::start(dir.path(), "").await;
    let mut raw = Raw::hello(&server.tcp, &server.token).await;
    for (call, seen) in &frames {
        let accepted = &seen[0];
        assert_eq!(accepted["type"], "accepted", "{accepted}");
        let events = seqs(seen);
        assert_eq!(events, (1..=events.len() as u64).collect::<Vec<_>>());
        let last = seen.last().unwrap();
        if call.is_multiple_of(2) {
            assert_eq!(last["type"], "done", "call {call} ended in the drain");
            continue;
        }
        assert!(!is_terminal(last), "call {call} was cut at the deadline");
        let session = accepted["session_id"].as_str().unwrap();
        let token = accepted["resume_token"].as_str().unwrap();
        let after = *events.last().unwrap();
        raw.send(resume(100 + call, session, after, token)).await;
        let rest = raw.until_terminal(100 + call).await;
        assert_eq!(rest[0]["type"], "accepted", "call {call}: {}", rest[0]);
        let tail = seqs(&rest[1..]);
        assert_eq!(
            tail,
            (after + 1..=after + tail.len() as u64).collect::<Vec<_>>(),
            "call {call} goes on right after {after}"
        );
        let end = rest.last().unwrap();
        assert_eq!(error_code(end), "INTERNAL", "{end}");
        assert!(
            end["message"].as_str().unwrap().contains("restart"),
            "{end}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigterm_stops_at_once() {
    let dir = tempfile::tempdir().unwrap();
    // The default drain (30 s) would outlast the test's patience.
    let mut server = ServerProcess::start(
        dir.path(),
        "[limits]\ndrain_secs = 600\nshutdown_timeout_secs = 3\n",
    )
    .await;
    let mut busy = Raw::hello(&server.tcp, &server.token).await;
    busy.send(stream_request(1, "echo:tokens=3000,delay_ms=100"))
        .await;
    assert_eq!(busy.recv_call(1).await.unwrap()["type"], "accepted");
    server.signal("TERM");
    // The first signal was taken: the draining status says so.
    loop {
        let frame = busy.recv().await.expect("the draining status");
        if frame["type"] == "status" && frame.get("call_id").is_none() {
            assert_eq!(frame["state"], "draining", "{frame}");
            break;
        }
    }
    server.signal("TERM");
    let status = server.wait().await;
    assert!(status.success(), "{status}: {:#?}", server.log());
    let log = server.log().join("\n");
    assert!(log.contains("stopping at once"), "{log}");
}
