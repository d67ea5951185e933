//! A real `gtl-server` process on temp paths and a free port, and a raw
//! NDJSON client that does exactly what a hostile peer would.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// Bounds every wait in these tests, so a regression fails instead of hanging.
pub(crate) const PATIENCE: Duration = Duration::from_secs(60);

/// A `gtl-server` child process.
pub(crate) struct ServerProcess {
    child: Child,
    pub(crate) tcp: String,
    /// The HTTP port, `127.0.0.1:<port>`.
    pub(crate) http: String,
    /// The server's local token (`<data dir>/local.token`): what its own
    /// user's tools present on loopback TCP, HTTP and QUIC.
    pub(crate) token: String,
    log: Arc<Mutex<Vec<String>>>,
    /// Told of every new log line.
    logged: Arc<tokio::sync::Notify>,
    dir: PathBuf,
}

impl ServerProcess {
    /// Starts the server on `dir` with `extra` TOML appended to a config
    /// that puts everything in `dir` and TCP on a free loopback port.
    pub(crate) async fn start(dir: &Path, extra: &str) -> Self {
        Self::start_wrapped(dir, extra, &[]).await
    }

    /// As [`start`](Self::start), run through `wrapper` (e.g. `prlimit`).
    pub(crate) async fn start_wrapped(dir: &Path, extra: &str, wrapper: &[&str]) -> Self {
        Self::spawn(dir, extra, wrapper, &[]).await
    }

    /// As [`start`](Self::start), with `env` in the server's environment.
    pub(crate) async fn start_with_env(dir: &Path, extra: &str, env: &[(&str, &str)]) -> Self {
        Self::spawn(dir, extra, &[], env).await
    }

    async fn spawn(dir: &Path, extra: &str, wrapper: &[&str], env: &[(&str, &str)]) -> Self {
        let config = dir.join("gtl.toml");
        std::fs::write(&config, config_text(dir, extra)).unwrap();
        let server = env!("CARGO_BIN_EXE_gtl-server");
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(server);
                command
            }
            None => Command::new(server),
        };
        let mut child = command
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "info")
            // For `[[providers]]` entries of tests (`api_key_env`): a key
            // the replay servers accept, never a real one.
            .env("GTL_TEST_PROVIDER_KEY", "replay-key")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let logged = Arc::new(tokio::sync::Notify::new());
        let notify = logged.clone();
        let (found, endpoint) = tokio::sync::oneshot::channel();
        let (found_http, http_endpoint) = tokio::sync::oneshot::channel();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let sink = log.clone();
        // Keep reading stderr for the whole life of the process, so the
        // pipe never fills, and keep the lines for tests that count them.
        tokio::spawn(async move {
            let mut found = Some(found);
            let mut found_http = Some(found_http);
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(addr) = line.strip_prefix("gtl-server: listening on tcp://")
                    && let Some(found) = found.take()
                {
                    let _ = found.send(addr.to_owned());
                }
                if let Some(addr) = line.strip_prefix("gtl-server: listening on http://")
                    && let Some(found) = found_http.take()
                {
                    let _ = found.send(addr.to_owned());
                }
                sink.lock().unwrap().push(line);
                notify.notify_waiters();
            }
        });
        let tcp = tokio::time::timeout(PATIENCE, endpoint)
            .await
            .expect("the server starts")
            .expect("the server prints its TCP endpoint");
        let http = tokio::time::timeout(PATIENCE, http_endpoint)
            .await
            .expect("the server starts")
            .expect("the server prints its HTTP endpoint");
        // Written before the listeners bind, so before the lines above.
        let token = std::fs::read_to_string(dir.join("local.token"))
            .expect("the server writes its local token")
            .trim()
            .to_owned();
        Self {
            child,
            tcp,
            http,
            token,
            log,
            logged,
            dir: dir.to_owned(),
        }
    }

    /// Replaces the configuration file, with `extra` where `start` had its
    /// own (the server notices the change, or a SIGHUP tells it).
    pub(crate) fn rewrite_config(&self, extra: &str) {
        // Written whole, then renamed over: the server never reads half.
        let next = self.dir.join("gtl.toml.next");
        std::fs::write(&next, config_text(&self.dir, extra)).unwrap();
        std::fs::rename(next, self.dir.join("gtl.toml")).unwrap();
    }

    /// Waits for the first log line after the `skip` first ones that holds
    /// `needle`, and returns it.
    pub(crate) async fn log_line(&self, skip: usize, needle: &str) -> String {
        let found = async {
            loop {
                let logged = self.logged.notified();
                tokio::pin!(logged);
                logged.as_mut().enable();
                if let Some(line) = self
                    .log()
                    .into_iter()
                    .skip(skip)
                    .find(|line| line.contains(needle))
                {
                    return line;
                }
                logged.await;
            }
        };
        tokio::time::timeout(PATIENCE, found)
            .await
            .unwrap_or_else(|_| panic!("no log line with {needle:?}: {:#?}", self.log()))
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id().expect("the server is running")
    }

    /// Resident memory, from /proc.
    pub(crate) fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap();
        kb * 1024
    }

    /// CPU time used so far, in clock ticks (user + system), from /proc.
    pub(crate) fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        // Fields after the command name (which may hold spaces).
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    }

    /// The log lines so far.
    pub(crate) fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Sends a signal by name (`KILL`, `TERM`).
    pub(crate) fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit.
    pub(crate) async fn wait(&mut self) -> std::process::ExitStatus {
        tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .expect("the server exits")
            .unwrap()
    }

    /// Kills with SIGKILL and waits, as a crash would.
    pub(crate) async fn crash(mut self) {
        self.signal("KILL");
        self.wait().await;
    }
}

/// The configuration `start` writes: everything in `dir`, every listener on
/// a free loopback port, and `extra` first.
fn config_text(dir: &Path, extra: &str) -> String {
    format!(
        "data_dir = {:?}\n{extra}\n[listen.tcp]\naddr = \"127.0.0.1:0\"\n[listen.http]\naddr = \"127.0.0.1:0\"\n[listen.quic]\naddr = \"127.0.0.1:0\"\n[listen.h3]\naddr = \"127.0.0.1:0\"\n[listen.uds]\npath = {:?}\n",
        dir.display().to_string(),
        socket(dir).display().to_string(),
    )
}

pub(crate) fn socket(dir: &Path) -> PathBuf {
    dir.join("gtl.sock")
}

/// A hand-driven NDJSON connection.
pub(crate) struct Raw {
    read: BufReader<Box<dyn tokio::io::AsyncRead + Send + Unpin>>,
    pub(crate) write: Box<dyn tokio::io::AsyncWrite + Send + Unpin>,
}

impl Raw {
    pub(crate) async fn connect(addr: &str) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let (read, write) = stream.into_split();
        Self {
            read: BufReader::new(Box::new(read)),
            write: Box::new(write),
        }
    }

    /// Connects to the server's Unix socket in `dir`.
    pub(crate) async fn connect_unix(dir: &Path) -> Self {
        let stream = tokio::net::UnixStream::connect(socket(dir)).await.unwrap();
        let (read, write) = stream.into_split();
        Self {
            read: BufReader::new(Box::new(read)),
            write: Box::new(write),
        }
    }

    /// Connects and completes the handshake (JSON) with `token`.
    pub(crate) async fn hello(addr: &str, token: &str) -> Self {
        let mut raw = Self::connect(addr).await;
        raw.send(json!({"type": "hello", "versions": ["1.0"], "token": token}))
            .await;
        let welcome = raw.recv().await.expect("welcome");
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        raw
    }

    pub(crate) async fn send(&mut self, frame: Value) {
        let mut line = frame.to_string();
        line.push('\n');
        self.write.write_all(line.as_bytes()).await.unwrap();
    }

    /// The receiving half, for bytes that are not JSON lines.
    pub(crate) fn reader(&mut self) -> &mut (impl tokio::io::AsyncRead + Unpin) {
        &mut self.read
    }

    pub(crate) async fn send_bytes(&mut self, bytes: &[u8]) {
        self.write.write_all(bytes).await.unwrap();
    }

    /// The next frame; `None` once the server closed the connection.
    pub(crate) async fn recv(&mut self) -> Option<Value> {
        let mut line = String::new();
        let read = tokio::time::timeout(PATIENCE, self.read.read_line(&mut line))
            .await
            .expect("a frame or a close within the test's patience");
        match read {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(serde_json::from_str(&line).unwrap()),
        }
    }

    /// The next frame of call `call_id`, skipping others.
    pub(crate) async fn recv_call(&mut self, call_id: u64) -> Option<Value> {
        loop {
            let frame = self.recv().await?;
            if frame["call_id"] == call_id {
                return Some(frame);
            }
        }
    }

    /// Frames of call `call_id` up to and including its terminal event.
    pub(crate) async fn until_terminal(&mut self, call_id: u64) -> Vec<Value> {
        let mut frames = Vec::new();
        while let Some(frame) = self.recv_call(call_id).await {
            let end = is_terminal(&frame);
            frames.push(frame);
            if end {
                break;
            }
        }
        frames
    }

    /// Every byte until the server closes (for non-JSON encodings).
    pub(crate) async fn read_to_end(&mut self) -> Vec<u8> {
        let mut bytes = Vec::new();
        let read = tokio::io::AsyncReadExt::read_to_end(&mut self.read, &mut bytes);
        tokio::time::timeout(PATIENCE, read)
            .await
            .expect("the server closes")
            .unwrap();
        bytes
    }

    /// Reads until the server closes; returns the frames it sent meanwhile.
    pub(crate) async fn until_closed(&mut self) -> Vec<Value> {
        let mut frames = Vec::new();
        while let Some(frame) = self.recv().await {
            frames.push(frame);
        }
        frames
    }
}

pub(crate) fn is_terminal(frame: &Value) -> bool {
    matches!(frame["type"].as_str(), Some("done" | "error")) && frame["seq"].as_u64() > Some(0)
        || (frame["type"] == "error" && frame.get("seq").is_none())
}

/// A stream request frame for `model` on call `call_id`.
pub(crate) fn stream_request(call_id: u64, model: &str) -> Value {
    json!({
        "type": "completion_request",
        "call_id": call_id,
        "model": model,
        "stream": true,
        "messages": [{"role": "user", "content": "hello"}],
    })
}

/// The error code of an error frame.
pub(crate) fn error_code(frame: &Value) -> &str {
    assert_eq!(frame["type"], "error", "{frame}");
    frame["code"].as_str().unwrap()
}
