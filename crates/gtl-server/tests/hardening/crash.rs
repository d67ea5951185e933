//! kill -9 under fast, large tokens: every event a client received survives
//! the crash with its seq, and no seq is ever given to another event.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::support::{Raw, ServerProcess, error_code, is_terminal, stream_request};

/// A small deterministic generator; the seed is printed so a failure can be
/// replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

pub(crate) fn resume(call_id: u64, session: &str, after_seq: u64, token: &str) -> Value {
    json!({
        "type": "resume",
        "call_id": call_id,
        "session_id": session,
        "after_seq": after_seq,
        "resume_token": token,
    })
}

/// An event without its call id, to compare across connections.
fn event(mut frame: Value) -> (u64, Value) {
    frame.as_object_mut().unwrap().remove("call_id");
    (frame["seq"].as_u64().unwrap(), frame)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_never_takes_back_or_renumbers_a_delivered_event() {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("seed {seed}");
    let mut rng = Rng(seed);
    for round in 0..6 {
        let dir = tempfile::tempdir().unwrap();
        let server = ServerProcess::start(dir.path(), "").await;
        let mut raw = Raw::hello(&server.tcp, &server.token).await;
        raw.send(stream_request(1, "echo:tokens=3000,token_bytes=2000"))
            .await;
        let accepted = raw.recv_call(1).await.unwrap();
        assert_eq!(accepted["type"], "accepted", "{accepted}");
        let session = accepted["session_id"].as_str().unwrap().to_owned();
        let token = accepted["resume_token"].as_str().unwrap().to_owned();
        let kill_after = 1 + rng.below(2500);
        let mut received = BTreeMap::new();
        while (received.len() as u64) < kill_after {
            let frame = raw.recv_call(1).await.expect("events until the kill");
            let end = is_terminal(&frame);
            let (seq, frame) = event(frame);
            received.insert(seq, frame);
            if end {
                break;
            }
        }
        server.crash().await;
        drop(raw);
        let last = received.keys().next_back().copied().unwrap_or(0);

        let server = ServerProcess::start(dir.path(), "").await;
        let mut raw = Raw::hello(&server.tcp, &server.token).await;
        // Resuming after the last event received is accepted and continues
        // right after it, to a terminal event.
        raw.send(resume(2, &session, last, &token)).await;
        let answer = raw.until_terminal(2).await;
        let (first, rest) = answer.split_first().unwrap();
        assert_eq!(
            first["type"], "accepted",
            "round {round}: resume after {last} refused: {first}"
        );
        let seqs: Vec<u64> = rest.iter().map(|f| f["seq"].as_u64().unwrap()).collect();
        let expected: Vec<u64> = (last + 1..last + 1 + seqs.len() as u64).collect();
        assert_eq!(seqs, expected, "round {round}: the tail after {last}");
        let end = rest.last().expect("a terminal event");
        if end["type"] == "error" {
            assert_eq!(error_code(end), "INTERNAL", "{end}");
            assert!(end["message"].as_str().unwrap().contains("restart"));
        } else {
            assert_eq!(end["type"], "done", "{end}");
        }

        // Replaying everything gives back exactly the events received,
        // under the same seqs.
        raw.send(resume(3, &session, 0, &token)).await;
        let replay: BTreeMap<u64, Value> = raw
            .until_terminal(3)
            .await
            .into_iter()
            .skip(1)
            .map(event)
            .collect();
        for (seq, frame) in &received {
            assert_eq!(
                replay.get(seq),
                Some(frame),
                "round {round}: event {seq} changed or vanished after the crash"
            );
        }
        server.crash().await;
    }
}
