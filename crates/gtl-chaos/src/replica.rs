//! `gtl-server` replica processes sharing one Redis.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

/// How long a replica may take to start.
const START_WITHIN: Duration = Duration::from_secs(60);

/// One running replica and the endpoints it printed.
#[derive(Debug)]
pub(crate) struct Replica {
    child: Child,
    /// Client URLs, one per transport the harness uses.
    pub(crate) endpoints: Vec<String>,
    /// Its local token, for the network transports.
    pub(crate) token: String,
}

impl Replica {
    /// Starts `server` on `dir` (kept across restarts: the same local token
    /// key), keeping sessions in `backend` (`redb`, or a Redis URL shared
    /// with other replicas).
    pub(crate) async fn start(
        server: &Path,
        dir: &Path,
        backend: &str,
        resume_window: Option<Duration>,
    ) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let config = dir.join("gtl.toml");
        let socket: PathBuf = dir.join("gtl.sock");
        let _ = std::fs::remove_file(&socket);
        std::fs::write(
            &config,
            format!(
                "data_dir = {dir:?}\n[sessions]\nbackend = {backend:?}\nlease_ms = 300\n{window}\
                 [limits]\nmax_calls_per_subject = 100000\nmax_connections_per_peer = 100000\n\
                 [listen.tcp]\naddr = \"127.0.0.1:0\"\n[listen.http]\naddr = \"127.0.0.1:0\"\n\
                 [listen.quic]\naddr = \"127.0.0.1:0\"\n[listen.h3]\nenabled = false\n\
                 [listen.uds]\npath = {socket:?}\n",
                dir = dir.display().to_string(),
                socket = socket.display().to_string(),
                window = resume_window
                    .map(|w| format!("resume_window_secs = {}\n", w.as_secs()))
                    .unwrap_or_default(),
            ),
        )?;
        let mut child = Command::new(server)
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot run {}", server.display()))?;
        let mut lines = BufReader::new(child.stderr.take().expect("piped")).lines();
        let mut printed = Vec::new();
        let found = tokio::time::timeout(START_WITHIN, async {
            while let Some(line) = lines.next_line().await? {
                if let Some(url) = line.strip_prefix("gtl-server: listening on ") {
                    printed.push(url.to_owned());
                    // QUIC is printed last when HTTP/3 is off.
                    if url.starts_with("quic://") {
                        return Ok(true);
                    }
                }
            }
            Ok::<_, std::io::Error>(false)
        })
        .await;
        if !matches!(found, Ok(Ok(true))) {
            bail!(
                "the replica in {} did not start: {printed:?}",
                dir.display()
            );
        }
        // Keep draining its log, so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let token = std::fs::read_to_string(dir.join("local.token"))
            .context("the replica's local token")?
            .trim()
            .to_owned();
        let mut endpoints = Vec::new();
        for url in printed {
            if let Some(addr) = url.strip_prefix("http://") {
                endpoints.push(format!("ws://{addr}/gtl/v1/ws"));
                endpoints.push(format!("sse://{addr}"));
                endpoints.push(format!("grpc://{addr}"));
            } else if url.starts_with("unix://")
                || url.starts_with("tcp://")
                || url.starts_with("quic://")
            {
                endpoints.push(url);
            }
        }
        Ok(Self {
            child,
            endpoints,
            token,
        })
    }

    /// The process id.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Kills the process at once (SIGKILL), as a crash would.
    pub(crate) async fn kill(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}
