//! `gtl conformance` against a real gateway on every transport: the kit
//! other implementations run, and the proof that this server passes it.

use std::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_passes_gtl_conformance_on_every_transport() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    // A frame limit below the client's own, so that the frame-limit check
    // runs.
    let (endpoints, _stop) = crate::on_every_transport(dir.path(), |config| {
        config.limits.max_frame_bytes = 256 * 1024;
    })
    .await;
    let find = |scheme: &str| endpoints.find(scheme);
    let http = find("http://").trim_start_matches("http://").to_owned();
    // Every transport of one server: a session started on each is resumed
    // on the next.
    let urls = vec![
        find("unix://"),
        find("tcp://"),
        format!("ws://{http}/gtl/v1/ws"),
        format!("sse://{http}"),
        format!("grpc://{http}"),
        find("quic://"),
        find("wt://"),
    ];
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_gtl"))
            .arg("conformance")
            .args(&urls)
            .env_remove("GTL_ENDPOINT")
            .env_remove("GTL_TOKEN")
            .env("GTL_DATA_DIR", data_dir)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{report}\n{stderr}");
    let summary = report.lines().last().unwrap();
    assert!(summary.contains(" 0 failed"), "{report}");
    // Every check ran somewhere: none is skipped on every transport.
    let passed: Vec<&str> = report
        .lines()
        .filter_map(|l| l.strip_prefix("pass "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    for check in [
        "hello.version_unsupported",
        "encoding.protobuf",
        "limits.frame_too_large",
        "limits.calls",
        "refusal.undecodable",
        "vectors",
        "chat.stream",
        "resume.across_transports",
        "resume.at_terminal_seq",
        "takeover",
        "ack",
        "pipe.input_after_end",
    ] {
        assert!(passed.contains(&check), "{check} never passed:\n{report}");
    }
}

#[test]
fn a_failed_check_is_exit_status_4_and_a_dead_endpoint_fails_every_check() {
    // Nothing listens on port 9 of loopback (discard).
    let output = Command::new(env!("CARGO_BIN_EXE_gtl"))
        .args(["conformance", "--json", "tcp://127.0.0.1:9"])
        .env_remove("GTL_ENDPOINT")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(4));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["passed"], false);
    let checks = report["checks"].as_array().unwrap();
    assert!(!checks.is_empty());
    assert!(checks.iter().all(|c| c["result"] != "pass"), "{report}");
}
