//! The server's log as a collector reads it: with `[log] format = "json"`
//! every line is a JSON object, and each finished call has one info line
//! with the audit record's fields and never the conversation's text.

use serde_json::Value;

use crate::support::{Raw, ServerProcess, error_code, stream_request};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_one_line_per_call_and_no_text() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(dir.path(), "[log]\nformat = \"json\"\n").await;
    let mut raw = Raw::hello(&server.tcp, &server.token).await;
    raw.send(stream_request(1, "echo")).await;
    assert_eq!(raw.until_terminal(1).await.last().unwrap()["type"], "done");
    raw.send(stream_request(2, "echo:error=PROVIDER_UNAVAILABLE"))
        .await;
    let refused = raw.until_terminal(2).await;
    assert_eq!(error_code(refused.last().unwrap()), "PROVIDER_UNAVAILABLE");
    drop(raw);
    // Every line is out once the server has exited.
    server.signal("TERM");
    assert!(server.wait().await.success());

    let mut calls = Vec::new();
    for line in server.log() {
        // The endpoints are printed for people and scripts, not logged.
        if line.starts_with("gtl-server: ") {
            continue;
        }
        let entry: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        if entry["target"] == "gtl::call" {
            assert!(!line.contains("hello"), "a call line holds no text: {line}");
            calls.push(entry["fields"].clone());
        }
    }
    assert_eq!(calls.len(), 2, "{calls:#?}");
    let (ok, failed) = (&calls[0], &calls[1]);
    assert_eq!(ok["message"], "call finished");
    assert_eq!(
        (&ok["outcome"], &ok["provider"], &ok["model"], &ok["api"]),
        (
            &Value::from("ok"),
            &Value::from("echo"),
            &Value::from("echo"),
            &Value::from("chat.stream")
        )
    );
    assert_eq!(
        (&ok["tokens_in"], &ok["tokens_out"]),
        (&1.into(), &1.into())
    );
    assert_eq!(ok["transport"], "tcp");
    assert!(ok["subject"].as_str().unwrap().starts_with("uid:"), "{ok}");
    assert_eq!(failed["outcome"], "error");
    assert_eq!(failed["error_code"], "PROVIDER_UNAVAILABLE");
}
