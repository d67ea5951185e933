//! Stock clients against the real server: curl streams SSE and resumes
//! with `Last-Event-ID`, exactly as a user would type it.

use tokio::process::Command;

use crate::support::ServerProcess;

/// Runs curl and returns its stdout; curl is part of every CI machine.
async fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "60"])
        .args(args)
        .output()
        .await
        .expect("curl is installed");
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `(event, id, data)` of each SSE event in `text`.
fn events(text: &str) -> Vec<(String, Option<u64>, serde_json::Value)> {
    text.split("\n\n")
        .filter(|block| !block.trim().is_empty() && !block.starts_with(':'))
        .map(|block| {
            let field = |name: &str| {
                block
                    .lines()
                    .find_map(|l| l.strip_prefix(name).map(str::to_owned))
            };
            (
                field("event: ").unwrap(),
                field("id: ").map(|id| id.parse().unwrap()),
                serde_json::from_str(&field("data: ").unwrap()).unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_streams_sse_and_resumes_with_last_event_id() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), "").await;
    let base = format!("http://{}", server.http);

    let complete = curl(&[
        &format!("{base}/gtl/v1/complete"),
        "-H",
        "content-type: application/json",
        "-d",
        r#"{"model":"echo","messages":[{"role":"user","content":"Hello from curl"}]}"#,
    ])
    .await;
    let answer: serde_json::Value = serde_json::from_str(&complete).unwrap();
    assert_eq!(answer["text"], "Hello from curl");

    let streamed = curl(&[
        "-N",
        &format!("{base}/gtl/v1/stream"),
        "-d",
        r#"{"model":"echo","messages":[{"role":"user","content":"one two three four"}]}"#,
    ])
    .await;
    let all = events(&streamed);
    assert_eq!(all[0].0, "accepted");
    let session = all[0].2["session_id"].as_str().unwrap().to_owned();
    let token = all[0].2["resume_token"].as_str().unwrap().to_owned();
    assert_eq!(all.last().unwrap().0, "done");

    // Resume after event 2: exactly the events after it.
    let resumed = curl(&[
        "-N",
        &format!("{base}/gtl/v1/sessions/{session}/events"),
        "-H",
        "Last-Event-ID: 2",
        "-H",
        &format!("GTL-Resume-Token: {token}"),
    ])
    .await;
    let rest = events(&resumed);
    assert_eq!(rest[0].0, "accepted");
    let expected: Vec<_> = all.iter().filter(|e| e.1 > Some(2)).collect();
    let got: Vec<_> = rest[1..].iter().collect();
    assert_eq!(got, expected);
}
