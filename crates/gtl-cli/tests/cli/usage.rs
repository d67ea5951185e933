//! The `gtl` binary, against the in-process gateway and missing ones.

use std::process::{Command, Output};

fn gtl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gtl"))
        .args(args)
        .env_remove("GTL_ENDPOINT")
        .env_remove("GTL_TOKEN")
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn chat_streams_the_reply_and_reports_usage() {
    let output = gtl(&[
        "chat",
        "--endpoint",
        "embedded://",
        "hello",
        "from",
        "the CLI",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "hello from the CLI\n");
    let err = stderr(&output);
    assert!(
        err.starts_with("[echo/echo] 4 tokens in, 4 out, $0.000000, "),
        "{err}"
    );
    assert!(err.trim_end().ends_with(" ms"), "{err}");
}

#[test]
fn chat_reads_the_prompt_from_stdin() {
    use std::io::Write as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_gtl"))
        .args(["chat", "-e", "embedded://"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"piped prompt\n")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "piped prompt\n");
}

#[test]
fn json_prints_one_frame_per_line() {
    let output = gtl(&["chat", "-e", "embedded://", "--json", "hi"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let lines: Vec<gtl_client::proto::Frame> = stdout(&output)
        .lines()
        .map(|line| gtl_client::proto::Frame::from_json(line.as_bytes()).unwrap())
        .collect();
    // First `accepted`, with what `--resume` needs, then the events.
    assert!(matches!(
        &lines[0].body,
        Some(gtl_client::proto::Body::Accepted(a)) if !a.resume_token.is_empty()
    ));
    let seqs: Vec<u64> = lines[1..].iter().map(|f| f.seq).collect();
    assert_eq!(seqs, (1..lines.len() as u64).collect::<Vec<_>>());
    assert!(lines.iter().all(|f| !f.session_id.is_empty()));
    assert!(matches!(
        lines.last().unwrap().body,
        Some(gtl_client::proto::Body::Done(_))
    ));
}

#[test]
fn models_prints_a_table() {
    let output = gtl(&["models", "-e", "embedded://"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let out = stdout(&output);
    let mut lines = out.lines();
    assert!(
        lines.next().unwrap().starts_with("PROVIDER  MODEL"),
        "{out}"
    );
    assert!(lines.any(|l| l.starts_with("echo ")), "{out}");
}

#[test]
fn a_gtl_error_exits_3() {
    let output = gtl(&[
        "chat",
        "-e",
        "embedded://",
        "--model",
        "no-such-model",
        "hi",
    ]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("MODEL_NOT_FOUND"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn no_gateway_exits_2_and_says_how_to_start_one() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("unix://{}", dir.path().join("gtl.sock").display());
    let output = gtl(&["chat", "--endpoint", &url, "hi"]);
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(err.contains("no such socket file"), "{err}");
    assert!(err.contains("cargo run --release -p gtl-server"), "{err}");
}

#[test]
fn usage_errors_exit_1_and_help_documents_exit_codes() {
    let output = gtl(&["chat", "--endpoint", "gopher://somewhere", "hi"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("unsupported endpoint scheme"));
    assert_eq!(gtl(&["frobnicate"]).status.code(), Some(1));

    let help = gtl(&["--help"]);
    assert!(help.status.success());
    let text = stdout(&help);
    for line in [
        "0  success",
        "2  cannot connect",
        "3  the call failed with a GTL error",
    ] {
        assert!(text.contains(line), "{text}");
    }
}

#[test]
fn gtl_endpoint_overrides_the_defaults() {
    let output = Command::new(env!("CARGO_BIN_EXE_gtl"))
        .args(["models", "--json"])
        .env("GTL_ENDPOINT", "unix:///nonexistent/gtl.sock, embedded://")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let frame =
        gtl_client::proto::Frame::from_json(stdout(&output).lines().next().unwrap().as_bytes())
            .unwrap();
    assert!(matches!(
        frame.body,
        Some(gtl_client::proto::Body::ProviderInfo(_))
    ));
}
