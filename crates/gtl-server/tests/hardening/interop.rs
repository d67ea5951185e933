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
    // The local token, as `gtl token show` prints it for curl.
    let bearer = format!("Authorization: Bearer {}", server.token);

    // Without it, loopback is refused, with the documented error.
    let refused = curl(&[
        "--write-out",
        "\n%{http_code}",
        &format!("{base}/gtl/v1/complete"),
        "-d",
        r#"{"model":"echo","messages":[{"role":"user","content":"Hello from curl"}]}"#,
    ])
    .await;
    let (body, status) = refused.rsplit_once('\n').unwrap();
    assert_eq!(status, "401", "{refused}");
    assert!(body.contains("UNAUTHENTICATED"), "{body}");

    let complete = curl(&[
        &format!("{base}/gtl/v1/complete"),
        "-H",
        &bearer,
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
        "-H",
        &bearer,
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
        &bearer,
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

/// A stock client's path: on `PATH`, or in the tools environment `.ci/run`
/// installs (`~/.cache/gtl/venv/bin`). `None` (with a note) when neither has
/// it outside CI; in CI a missing tool fails the test.
pub(crate) fn tool(name: &str) -> Option<std::path::PathBuf> {
    let venv = std::env::var_os("HOME")
        .map(|home| std::path::PathBuf::from(home).join(".cache/gtl/venv/bin"));
    let paths = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&paths)
        .chain(venv)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{name} is missing: .ci/run installs it"
        );
        eprintln!("skipped: {name} is not installed (bash .ci/run installs it)");
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcurl_lists_by_reflection_and_calls_complete() {
    let Some(grpcurl) = tool("grpcurl") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), "").await;
    let run = |args: Vec<String>| {
        let grpcurl = grpcurl.clone();
        async move {
            let out = Command::new(&grpcurl)
                .args(["-plaintext", "-max-time", "60"])
                .args(&args)
                .output()
                .await
                .unwrap();
            assert!(
                out.status.success(),
                "grpcurl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        }
    };
    let services = run(vec![server.http.clone(), "list".into()]).await;
    assert!(services.contains("gtl.v1.Gtl"), "{services}");
    assert!(services.contains("grpc.health.v1.Health"), "{services}");
    let methods = run(vec![
        server.http.clone(),
        "list".into(),
        "gtl.v1.Gtl".into(),
    ])
    .await;
    for method in ["Complete", "Stream", "Pipe", "Resume", "Models"] {
        assert!(
            methods.contains(&format!("gtl.v1.Gtl.{method}")),
            "{methods}"
        );
    }
    let answer = run(vec![
        "-H".into(),
        format!("authorization: Bearer {}", server.token),
        "-d".into(),
        r#"{"request":{"model":"echo","messages":[{"role":"ROLE_USER","text":"Hello over gRPC"}]}}"#
            .into(),
        server.http.clone(),
        "gtl.v1.Gtl/Complete".into(),
    ])
    .await;
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["text"], "Hello over gRPC");
    let health = run(vec![
        server.http.clone(),
        "grpc.health.v1.Health/Check".into(),
    ])
    .await;
    assert!(health.contains("SERVING"), "{health}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocat_chats_over_the_websocket() {
    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
    let Some(websocat) = tool("websocat") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), "").await;
    let mut child = Command::new(websocat)
        // With `=`: a bare -H takes every argument after it.
        .arg(format!("-H=Authorization: Bearer {}", server.token))
        .arg(format!("ws://{}/gtl/v1/ws", server.http))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(
            concat!(
                r#"{"type":"hello","versions":["1.0"]}"#,
                "\n",
                r#"{"type":"completion_request","call_id":1,"model":"echo","stream":true,"messages":[{"role":"user","content":"Hello over WebSocket"}]}"#,
                "\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    stdin.flush().await.unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut text = String::new();
    let mut types = Vec::new();
    loop {
        let line = tokio::time::timeout(crate::support::PATIENCE, lines.next_line())
            .await
            .expect("websocat answers")
            .unwrap()
            .expect("the connection stays open until done");
        let frame: serde_json::Value = serde_json::from_str(&line).unwrap();
        let ty = frame["type"].as_str().unwrap().to_owned();
        if ty == "token" {
            text.push_str(frame["text"].as_str().unwrap());
        }
        let end = ty == "done";
        types.push(ty);
        if end {
            break;
        }
    }
    assert_eq!(types[..2], ["welcome", "accepted"]);
    assert_eq!(text, "Hello over WebSocket");
}
