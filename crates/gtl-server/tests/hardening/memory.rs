//! Clients that do not read cannot grow the server's memory.

use std::time::Duration;

use serde_json::json;

use crate::support::{PATIENCE, Raw, ServerProcess, error_code, stream_request};

const MIB: u64 = 1 << 20;

/// Samples the server's RSS every 100 ms for `span`, returning the peak.
async fn peak_rss(server: &ServerProcess, span: Duration) -> u64 {
    let mut peak = 0;
    let samples = span.as_millis() / 100;
    for _ in 0..samples {
        peak = peak.max(server.rss_bytes());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    peak
}

/// A request and its whole answer on a fresh connection: the server is
/// still serving others.
async fn others_are_served(server: &ServerProcess) {
    let mut other = Raw::hello(&server.tcp, &server.token).await;
    other.send(stream_request(1, "echo")).await;
    let frames = other.until_terminal(1).await;
    let last = frames.last().unwrap();
    assert_eq!(last["type"], "done", "{frames:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_reading_streams_stay_within_the_connection_budget() {
    let dir = tempfile::tempdir().unwrap();
    let budget = 32 * MIB;
    let server = ServerProcess::start(
        dir.path(),
        &format!("[limits]\nconnection_memory_bytes = {budget}\n"),
    )
    .await;
    let baseline = server.rss_bytes();
    let mut greedy = Raw::hello(&server.tcp, &server.token).await;
    for call in 1..=200 {
        greedy
            .send(stream_request(call, "echo:tokens=100000"))
            .await;
    }
    // Never read. Unbounded, this grew by gigabytes within seconds.
    let peak = peak_rss(&server, Duration::from_secs(6)).await;
    let growth = peak.saturating_sub(baseline);
    eprintln!("RSS growth with 200 unread streams: {} MiB", growth / MIB);
    // The budget counts each kept event at what it costs; the allowance
    // covers the store's cache, the write buffers and the allocator.
    let allowed = budget + 160 * MIB;
    assert!(
        growth < allowed,
        "RSS grew {} MiB (budget {} MiB, allowed {} MiB)",
        growth / MIB,
        budget / MIB,
        allowed / MIB
    );
    others_are_served(&server).await;
    drop(greedy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_flood_without_reading_is_slowed_then_closed() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), "[limits]\nsend_timeout_secs = 2\n").await;
    let baseline = server.rss_bytes();
    let mut flood = Raw::hello(&server.tcp, &server.token).await;
    let chunk: String = (0..1000)
        .map(|i| format!("{{\"type\":\"ping\",\"nonce\":{i}}}\n"))
        .collect();
    let mut sent = 0u64;
    let mut peak = 0;
    // Write pings and never read the pongs, until the server stops taking
    // them and then hangs up (bounded: 2M pings or the test's patience).
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let closed = loop {
        if tokio::time::Instant::now() > deadline || sent >= 2_000_000 {
            break false;
        }
        let write = tokio::io::AsyncWriteExt::write_all(&mut flood.write, chunk.as_bytes());
        match tokio::time::timeout(Duration::from_millis(500), write).await {
            Ok(Ok(())) => sent += 1000,
            Ok(Err(_)) => break true,
            // The server stopped reading: we are slowed down.
            Err(_) => {}
        }
        peak = peak.max(server.rss_bytes());
    };
    assert!(closed, "the server never closed a flood of {sent} pings");
    let growth = peak.saturating_sub(baseline);
    eprintln!("{sent} pings written; RSS growth {} MiB", growth / MIB);
    assert!(growth < 64 * MIB, "RSS grew {} MiB", growth / MIB);
    others_are_served(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_calls_are_refused_when_the_server_budget_is_spent() {
    let dir = tempfile::tempdir().unwrap();
    // A tiny server budget: one greedy stream spends it.
    let server = ServerProcess::start(
        dir.path(),
        "[sessions]\nmemory_budget_bytes = 1048576\nmax_pending_bytes = 4194304\n",
    )
    .await;
    let mut greedy = Raw::hello(&server.tcp, &server.token).await;
    greedy.send(stream_request(1, "echo:tokens=100000")).await;
    let accepted = greedy.recv_call(1).await.unwrap();
    assert_eq!(accepted["type"], "accepted");
    // Not reading: the stream fills the budget and pauses. A new call gets
    // a clear, retryable refusal (polling: the budget fills asynchronously).
    let mut other = Raw::hello(&server.tcp, &server.token).await;
    let mut call = 1;
    let refusal = loop {
        call += 1;
        other.send(stream_request(call, "echo:tokens=1")).await;
        let first = other.recv_call(call).await.unwrap();
        if first["type"] == "error" {
            break first;
        }
        other.until_terminal(call).await;
        assert!(call < 10_000, "the budget never filled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(error_code(&refusal), "RATE_LIMIT");
    assert_eq!(refusal["retryable"], json!(true));
    assert!(
        refusal["message"]
            .as_str()
            .unwrap()
            .contains("memory budget"),
        "{refusal}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_of_millions_of_empty_messages_is_refused_before_decoding() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), "").await;
    let baseline = server.rss_bytes();
    let mut raw = Raw::hello(&server.tcp, &server.token).await;
    // 7.9 MB of `{},`: under the frame limit, millions of messages.
    let mut line = String::from(
        r#"{"type":"completion_request","call_id":1,"model":"echo","stream":true,"messages":["#,
    );
    line.push_str(&"{},".repeat(2_600_000));
    line.push_str(r#"{"role":"user","content":"hi"}]}"#);
    line.push('\n');
    raw.send_bytes(line.as_bytes()).await;
    let refusal = raw.recv().await.unwrap();
    assert_eq!(error_code(&refusal), "FRAME_TOO_LARGE", "{refusal}");
    assert!(refusal["message"].as_str().unwrap().contains("memory"));
    let growth = server.rss_bytes().saturating_sub(baseline);
    eprintln!("RSS growth after the refused request: {} MiB", growth / MIB);
    assert!(growth < 64 * MIB, "RSS grew {} MiB", growth / MIB);
    // The connection goes on.
    raw.send(stream_request(2, "echo")).await;
    assert_eq!(raw.until_terminal(2).await.last().unwrap()["type"], "done");
}
