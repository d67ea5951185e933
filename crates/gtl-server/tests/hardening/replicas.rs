//! Two `gtl-server` replicas sharing sessions through a real `redis-server`:
//! a client cut from one resumes on the other, live; a replica killed
//! mid-stream is ended by the other; Redis itself restarting.

use std::path::Path;

use gtl_test::RedisServer;
use serde_json::Value;

use crate::crash::resume;
use crate::support::{PATIENCE, Raw, ServerProcess, error_code, is_terminal, stream_request};

/// A replica on `dir` sharing sessions through `redis`, with a short claim
/// lease so a killed replica is noticed quickly.
async fn replica(dir: &Path, redis: &RedisServer) -> ServerProcess {
    let extra = format!(
        "[sessions]\nbackend = \"{}\"\nlease_ms = 400\n",
        redis.url()
    );
    ServerProcess::start(dir, &extra).await
}

/// An event without its call id, to compare across connections.
fn event(mut frame: Value) -> Value {
    frame.as_object_mut().unwrap().remove("call_id");
    frame
}

/// Starts `model` on `raw` (call 1): the session id, its resume token, and
/// the first `take` events.
async fn start(raw: &mut Raw, model: &str, take: usize) -> (String, String, Vec<Value>) {
    raw.send(stream_request(1, model)).await;
    let accepted = raw.recv_call(1).await.unwrap();
    assert_eq!(accepted["type"], "accepted", "{accepted}");
    let mut events = Vec::new();
    while events.len() < take {
        let frame = raw.recv_call(1).await.expect("events");
        events.push(event(frame));
    }
    (
        accepted["session_id"].as_str().unwrap().to_owned(),
        accepted["resume_token"].as_str().unwrap().to_owned(),
        events,
    )
}

fn seqs(events: &[Value]) -> Vec<u64> {
    events.iter().map(|e| e["seq"].as_u64().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_cut_from_one_replica_resumes_on_the_other_while_it_generates() {
    let redis = RedisServer::start().unwrap();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = replica(dir_a.path(), &redis).await;
    let b = replica(dir_b.path(), &redis).await;
    let model = "echo:tokens=60,delay_ms=10";

    // What the session says when nothing is cut.
    let mut whole = Raw::hello(&a.tcp, &a.token).await;
    whole.send(stream_request(1, model)).await;
    let reference: Vec<Value> = whole.until_terminal(1).await[1..]
        .iter()
        .cloned()
        .map(event)
        .collect();
    assert_eq!(reference.last().unwrap()["type"], "done");

    // Cut on A after a few events, while A still generates.
    let mut on_a = Raw::hello(&a.tcp, &a.token).await;
    let (session, token, mut seen) = start(&mut on_a, model, 8).await;
    drop(on_a);
    let last = seen.last().unwrap()["seq"].as_u64().unwrap();

    // Resume on B: the rest, live as A writes it, no gap, no duplicate.
    let mut on_b = Raw::hello(&b.tcp, &b.token).await;
    on_b.send(resume(2, &session, last, &token)).await;
    let rest = on_b.until_terminal(2).await;
    assert_eq!(rest[0]["type"], "accepted", "{}", rest[0]);
    seen.extend(rest[1..].iter().cloned().map(event));
    let expected: Vec<Value> = reference
        .iter()
        .map(|e| {
            let mut e = e.clone();
            e["session_id"] = session.clone().into();
            e
        })
        .collect();
    assert_eq!(seqs(&seen), seqs(&expected));
    assert_eq!(seen, expected);

    // And back to A, from the start: A replays its own copy.
    let mut again = Raw::hello(&a.tcp, &a.token).await;
    again.send(resume(3, &session, 0, &token)).await;
    let replay: Vec<Value> = again.until_terminal(3).await[1..]
        .iter()
        .cloned()
        .map(event)
        .collect();
    assert_eq!(replay, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_stream_is_ended_by_the_other_with_the_documented_error() {
    let redis = RedisServer::start().unwrap();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = replica(dir_a.path(), &redis).await;
    let b = replica(dir_b.path(), &redis).await;

    let mut on_a = Raw::hello(&a.tcp, &a.token).await;
    let (session, token, seen) = start(&mut on_a, "echo:tokens=100000,delay_ms=20", 5).await;
    a.crash().await;
    drop(on_a);
    let last = seen.last().unwrap()["seq"].as_u64().unwrap();

    let mut on_b = Raw::hello(&b.tcp, &b.token).await;
    on_b.send(resume(2, &session, last, &token)).await;
    let rest = tokio::time::timeout(PATIENCE, on_b.until_terminal(2))
        .await
        .expect("B ends the generation A left");
    assert_eq!(rest[0]["type"], "accepted", "{}", rest[0]);
    let events = &rest[1..];
    // Everything A stored after what the client saw, in order, then the end.
    for (i, frame) in events.iter().enumerate() {
        assert_eq!(
            frame["seq"].as_u64().unwrap(),
            last + 1 + i as u64,
            "{frame}"
        );
    }
    let end = events.last().unwrap();
    assert_eq!(error_code(end), "INTERNAL");
    assert_eq!(end["phase"], "after_first_token", "{end}");
    assert!(
        end["message"].as_str().unwrap().contains("interrupted"),
        "{end}"
    );

    // The end is in the store: a third look (B again, from 0) agrees.
    let mut again = Raw::hello(&b.tcp, &b.token).await;
    again.send(resume(3, &session, 0, &token)).await;
    let replay = again.until_terminal(3).await;
    assert_eq!(replay.last().unwrap()["seq"], end["seq"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_running_calls_go_on_new_ones_fail_fast_and_all_recovers() {
    let mut redis = RedisServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let a = replica(dir.path(), &redis).await;

    let mut running = Raw::hello(&a.tcp, &a.token).await;
    let (_, _, _) = start(&mut running, "echo:tokens=150,delay_ms=10", 3).await;
    redis.kill();

    // The running call streams on to its client, to its end.
    let rest = tokio::time::timeout(PATIENCE, running.until_terminal(1))
        .await
        .expect("the running call ends");
    assert_eq!(rest.last().unwrap()["type"], "done", "{:?}", rest.last());

    // New calls are refused with a clear error, not left hanging.
    let refused = async {
        loop {
            let mut raw = Raw::hello(&a.tcp, &a.token).await;
            raw.send(stream_request(1, "echo")).await;
            let answer = raw.recv_call(1).await.unwrap();
            if answer["type"] == "error" {
                return answer;
            }
            // Accepted before the replica saw the store go: that call is
            // served, and the next one is asked.
            raw.until_terminal(1).await;
        }
    };
    let refused = tokio::time::timeout(PATIENCE, refused)
        .await
        .expect("a refusal");
    assert_eq!(error_code(&refused), "INTERNAL");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("session store is out of reach"),
        "{refused}"
    );

    // Redis back (empty): new calls are served again.
    redis.restart().unwrap();
    let served = async {
        loop {
            let mut raw = Raw::hello(&a.tcp, &a.token).await;
            raw.send(stream_request(1, "echo")).await;
            let answer = raw.until_terminal(1).await;
            if answer.last().unwrap()["type"] == "done" {
                return answer;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    };
    let served = tokio::time::timeout(PATIENCE, served)
        .await
        .expect("served again");
    assert!(is_terminal(served.last().unwrap()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_enforce_one_call_rate_limit_not_one_each() {
    const SECRET: &[u8] = b"a shared test secret of at least 32 bytes, used nowhere else";
    let redis = RedisServer::start().unwrap();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let secret = dir_a.path().join("hs256.secret");
    std::fs::write(&secret, SECRET).unwrap();
    // Both replicas verify the same tokens; limits apply to token subjects.
    let extra = format!(
        "[sessions]\nbackend = \"{}\"\n[limits]\ncalls_per_minute_per_subject = 4\n\
         [auth]\nhs256_secret_file = {:?}\n",
        redis.url(),
        secret.display().to_string()
    );
    let a = ServerProcess::start(dir_a.path(), &extra).await;
    let b = ServerProcess::start(dir_b.path(), &extra).await;
    let now = gtl_core::counters::unix_now();
    let token = gtl_auth::mint(
        &gtl_auth::SigningKey::Hs256(SECRET.to_vec()),
        &gtl_auth::Mint::new("alice", &["chat:*"], now, 600),
    )
    .unwrap();
    let call = |server: &ServerProcess| {
        let (tcp, token) = (server.tcp.clone(), token.clone());
        async move {
            let mut raw = Raw::hello(&tcp, &token).await;
            raw.send(stream_request(1, "echo")).await;
            raw.until_terminal(1).await.pop().unwrap()
        }
    };
    // A minute boundary between the calls would reset the count: start
    // right after one if it is close.
    if now % 60 > 55 {
        tokio::time::sleep(std::time::Duration::from_secs(61 - now % 60)).await;
    }
    for _ in 0..4 {
        let end = call(&a).await;
        assert_eq!(end["type"], "done", "{end}");
    }
    // The counters sync every 100 ms: after a few syncs, B knows A's calls.
    tokio::time::sleep(gtl_core::counters::SYNC_EVERY * 5).await;
    let refused = call(&b).await;
    assert_eq!(error_code(&refused), "RATE_LIMIT");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("on all servers"),
        "{refused}"
    );
    let refused = call(&a).await;
    assert_eq!(error_code(&refused), "RATE_LIMIT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_on_the_other_replica_reaches_the_one_generating() {
    let redis = RedisServer::start().unwrap();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = replica(dir_a.path(), &redis).await;
    let b = replica(dir_b.path(), &redis).await;

    let mut on_a = Raw::hello(&a.tcp, &a.token).await;
    let (session, token, seen) = start(&mut on_a, "echo:tokens=100000,delay_ms=5", 3).await;
    drop(on_a);
    let last = seen.last().unwrap()["seq"].as_u64().unwrap();
    let mut on_b = Raw::hello(&b.tcp, &b.token).await;
    on_b.send(resume(2, &session, last, &token)).await;
    let accepted = on_b.recv_call(2).await.unwrap();
    assert_eq!(accepted["type"], "accepted", "{accepted}");
    on_b.send(serde_json::json!({"type": "cancel", "call_id": 2, "reason": "enough"}))
        .await;
    let rest = tokio::time::timeout(PATIENCE, on_b.until_terminal(2))
        .await
        .expect("the cancel ends the call");
    let end = rest.last().unwrap();
    assert_eq!(error_code(end), "CANCELLED", "{end}");
    // Contiguous to the end: nothing lost or doubled on the way.
    for pair in rest.windows(2) {
        assert_eq!(
            pair[1]["seq"].as_u64(),
            pair[0]["seq"].as_u64().map(|s| s + 1)
        );
    }
}

/// The chaos harness at CI size: hundreds of swaps over every transport
/// and both replicas while replicas are killed; nothing lost, doubled or
/// changed (`cargo xtask chaos` runs it at full size).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_small_loses_and_doubles_nothing() {
    let config = gtl_chaos::ChaosConfig::small(env!("CARGO_BIN_EXE_gtl-server").into());
    eprintln!("chaos seed {}", config.seed);
    let report = gtl_chaos::run(config).await.unwrap();
    eprintln!("{report}");
    assert!(report.passed(), "{report}");
    assert!(report.swaps >= 300, "{report}");
    assert!(report.kills > 0, "{report}");
}
