//! Sessions only their owner can touch: another connection needs the
//! resume token, another user cannot reach them at all, and nobody can
//! tell a session that exists from one that does not.

use serde_json::{Value, json};

use crate::support::{Raw, ServerProcess, error_code};

/// Starts a session.pipe call on `raw` and returns (session id, token).
async fn pipe_session(raw: &mut Raw) -> (String, String) {
    raw.send(json!({
        "type": "completion_request",
        "call_id": 1,
        "model": "echo",
        "stream": true,
        "pipe": true,
        "messages": [{"role": "user", "content": "first turn"}],
    }))
    .await;
    let accepted = raw.recv_call(1).await.unwrap();
    assert_eq!(accepted["type"], "accepted", "{accepted}");
    (
        accepted["session_id"].as_str().unwrap().to_owned(),
        accepted["resume_token"].as_str().unwrap().to_owned(),
    )
}

fn input(session: &str, token: &str, text: &str) -> Value {
    json!({
        "type": "input",
        "call_id": 9,
        "session_id": session,
        "resume_token": token,
        "messages": [{"role": "user", "content": text}],
    })
}

fn cancel(session: &str, token: &str) -> Value {
    json!({"type": "cancel", "call_id": 9, "session_id": session, "resume_token": token})
}

fn resume(session: &str, token: &str) -> Value {
    json!({"type": "resume", "call_id": 9, "session_id": session, "after_seq": 0, "resume_token": token})
}

/// The answer to `frame`, with the session id taken out so answers about
/// different sessions compare.
async fn answer(raw: &mut Raw, frame: Value) -> Value {
    let session = frame["session_id"].as_str().unwrap().to_owned();
    raw.send(frame).await;
    let mut reply = raw.recv_call(9).await.unwrap();
    for field in ["message", "msg"] {
        let text = reply[field].as_str().unwrap().replace(&session, "<id>");
        reply[field] = json!(text);
    }
    reply["session_id"] = json!("<id>");
    reply
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_connection_needs_the_resume_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), "").await;
    let mut owner = Raw::hello(&server.tcp, &server.token).await;
    let (session, token) = pipe_session(&mut owner).await;

    let mut other = Raw::hello(&server.tcp, &server.token).await;
    let unknown = answer(&mut other, input("s_does_not_exist", "", "x")).await;
    assert_eq!(error_code(&unknown), "RESUME_NOT_FOUND");
    for frame in [
        input(&session, "", "injected"),
        input(&session, "wrong-token", "injected"),
        cancel(&session, ""),
        cancel(&session, "wrong-token"),
        cancel("s_does_not_exist", "wrong-token"),
        resume(&session, "wrong-token"),
        resume("s_does_not_exist", "wrong-token"),
    ] {
        // The same answer whether or not the session exists: ids cannot be
        // probed.
        assert_eq!(answer(&mut other, frame).await, unknown);
    }

    // The owner's session saw none of it: its next input starts the next
    // turn, echoed as sent.
    owner
        .send(json!({"type": "input", "call_id": 1, "messages": [{"role": "user", "content": "second"}]}))
        .await;
    let mut texts = String::new();
    let mut dones = 0;
    while dones < 2 {
        let frame = owner.recv_call(1).await.unwrap();
        match frame["type"].as_str().unwrap() {
            "token" => texts.push_str(frame["text"].as_str().unwrap()),
            "done" => dones += 1,
            "error" => panic!("{frame}"),
            _ => {}
        }
    }
    assert_eq!(texts, "first turnsecond");

    // With the token, the owner's other connection may cancel it.
    other.send(cancel(&session, &token)).await;
    let end = loop {
        let frame = owner.recv_call(1).await.unwrap();
        if frame["type"] == "error" {
            break frame;
        }
    };
    assert_eq!(error_code(&end), "CANCELLED");
}

/// `runuser` as root makes a second local user; elsewhere this test says so
/// and checks nothing.
fn second_user_available() -> bool {
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    root && std::process::Command::new("runuser")
        .args(["-u", "nobody", "--", "true"])
        .status()
        .is_ok_and(|s| s.success())
}

/// `nobody`'s uid, for `auth.trusted_uids`.
fn nobody_uid() -> u32 {
    let out = std::process::Command::new("id")
        .args(["-u", "nobody"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Lets other users reach the socket in `dir` (the check under test is
/// the server's, not the file system's); the data files stay the
/// server user's own (0600).
fn open_socket_to_everyone(dir: &std::path::Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let socket = crate::support::socket(dir);
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o777)).unwrap();
    socket
}

/// Runs `script` as `nobody` with `args`; its stdout lines.
async fn as_nobody(script: &str, args: &[&str]) -> Vec<String> {
    let out = tokio::process::Command::new("runuser")
        .args(["-u", "nobody", "--", "python3", "-c", script])
        .args(args)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Another local user cannot read the server's local token, so loopback
/// TCP refuses it; trusted on the Unix socket as its own subject
/// (`trusted_uids`), it still cannot reach a session whose id and resume
/// token it stole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_user_cannot_reach_a_session_even_with_its_token() {
    if !second_user_available() {
        eprintln!("skipped: needs root and runuser to act as a second user");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(
        dir.path(),
        &format!("[auth]\ntrusted_uids = [{}]\n", nobody_uid()),
    )
    .await;
    let socket = open_socket_to_everyone(dir.path());
    let mut owner = Raw::hello(&server.tcp, &server.token).await;
    let (session, token) = pipe_session(&mut owner).await;
    let script = r#"
import json, socket, sys
path, tcp, token_file, session, token = sys.argv[1:6]
try:
    open(token_file).read()
    print("read the local token")
except PermissionError:
    print("no local token")
host, port = tcp.rsplit(":", 1)
t = socket.create_connection((host, int(port))).makefile("rw")
t.write(json.dumps({"type": "hello", "versions": ["1.0"]}) + "\n"); t.flush()
# The version is settled (welcome), then the refusal, then the close.
print([json.loads(line) for line in t][-1].get("code"))
s = socket.socket(socket.AF_UNIX)
s.connect(path)
f = s.makefile("rw")
def send(frame):
    f.write(json.dumps(frame) + "\n"); f.flush()
def recv():
    return json.loads(f.readline())
send({"type": "hello", "versions": ["1.0"]})
assert recv()["type"] == "welcome"
for frame in [
    {"type": "input", "call_id": 9, "session_id": session, "resume_token": token,
     "messages": [{"role": "user", "content": "injected"}]},
    {"type": "cancel", "call_id": 9, "session_id": session, "resume_token": token},
    {"type": "resume", "call_id": 9, "session_id": session, "after_seq": 0, "resume_token": token},
]:
    send(frame)
    print(recv()["code"])
"#;
    let token_file = dir.path().join("local.token");
    let lines = as_nobody(
        script,
        &[
            socket.to_str().unwrap(),
            &server.tcp,
            token_file.to_str().unwrap(),
            &session,
            &token,
        ],
    )
    .await;
    assert_eq!(
        lines,
        [
            "no local token",
            "UNAUTHENTICATED",
            "RESUME_NOT_FOUND",
            "RESUME_NOT_FOUND",
            "RESUME_NOT_FOUND"
        ],
        "another user reached the session"
    );
    // The owner's session goes on untouched.
    owner
        .send(json!({"type": "input", "call_id": 1, "messages": [{"role": "user", "content": "mine"}], "end": true}))
        .await;
    let mut dones = 0;
    while dones < 2 {
        let frame = owner.recv_call(1).await.unwrap();
        assert_ne!(frame["type"], "error", "{frame}");
        dones += usize::from(frame["type"] == "done");
    }
}

/// A Unix-socket peer is trusted without a token only when it runs as the
/// server's own user (or a configured one): another local user who can
/// open the socket is refused until it presents a token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_users_socket_peer_needs_a_token() {
    if !second_user_available() {
        eprintln!("skipped: needs root and runuser to act as a second user");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let _server = ServerProcess::start(dir.path(), "").await;
    let socket = open_socket_to_everyone(dir.path());
    let script = r#"
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = s.makefile("rw")
f.write(json.dumps({"type": "hello", "versions": ["1.0"]}) + "\n"); f.flush()
frames = [json.loads(line) for line in f]
print(frames[-1].get("code", frames[-1]["type"]))
"#;
    let lines = as_nobody(script, &[socket.to_str().unwrap()]).await;
    assert_eq!(lines, ["UNAUTHENTICATED"]);
    // The server's own user is still trusted on the same socket.
    let mut own = tokio::net::UnixStream::connect(&socket).await.unwrap();
    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
    own.write_all(b"{\"type\":\"hello\",\"versions\":[\"1.0\"]}\n{\"type\":\"models_request\",\"call_id\":1}\n")
        .await
        .unwrap();
    let mut lines = tokio::io::BufReader::new(own).lines();
    let welcome = lines.next_line().await.unwrap().unwrap();
    assert!(welcome.contains("welcome"), "{welcome}");
    let answer = lines.next_line().await.unwrap().unwrap();
    assert!(answer.contains("provider_info"), "{answer}");
}
