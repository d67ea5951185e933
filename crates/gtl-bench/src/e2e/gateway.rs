//! The gateway under test: the release `gtl-server` binary in a process of
//! its own (or the floor proxy, [`super::floor`], in one of its own), so that its CPU time and memory can be read from /proc apart
//! from the load generator's and the mock's.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

/// File descriptors the gateway may hold (`ulimit -n` before exec; the
/// harness runs as a user allowed to raise it, else the soft limit stays).
const OPEN_FILES: u32 = 1_048_576;

/// How the gateway keeps its sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sessions {
    /// The default: redb, every event stored before a client sees it.
    Durable,
    /// `[sessions] persist = false`.
    Memory,
}

/// How the gateway reaches the mock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Upstream {
    /// HTTP/2 without TLS (`h2c = true`): what a real provider's HTTPS
    /// endpoint negotiates (ALPN h2), without the TLS.
    H2c,
    /// HTTP/1.1, what a plain `http://` base URL gets by default.
    Http1,
}

pub(crate) struct Gateway {
    child: Child,
    pub(crate) endpoints: Vec<String>,
    pub(crate) token: String,
    /// Spawn → every listener bound.
    pub(crate) bound_after: Duration,
    pub(crate) spawned: Instant,
    _dir: tempfile::TempDir,
}

impl Gateway {
    /// Starts `binary` with the mock at `upstream` as its `openai` and
    /// `anthropic` providers (reached over `protocol`), every listener on a free
    /// loopback port, and limits raised past the load the harness puts on
    /// it. Returns once every listener is bound.
    pub(crate) fn start(
        binary: &Path,
        upstream: SocketAddr,
        sessions: Sessions,
        protocol: Upstream,
    ) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let config = dir.path().join("gtl.toml");
        let h2c = protocol == Upstream::H2c;
        std::fs::write(&config, render(dir.path(), upstream, sessions, h2c))?;
        let spawned = Instant::now();
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "ulimit -n {OPEN_FILES} 2>/dev/null; exec \"$0\" --config \"$1\""
            ))
            .arg(binary)
            .arg(&config)
            .env("GTL_BENCH_UPSTREAM_KEY", "mock-key")
            .envs(std::env::var("GTL_E2E_GATEWAY_WORKERS").map(|n| ("TOKIO_WORKER_THREADS", n)))
            .env_remove("OPENAI_API_KEY")
            .env_remove("ANTHROPIC_API_KEY")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let stderr = child.stderr.take().context("no stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        let mut endpoints = Vec::new();
        // uds, tcp, http, quic, wt.
        while endpoints.len() < 5 {
            let Some(line) = lines.next() else {
                bail!("gtl-server exited before listening: {:?}", child.wait()?);
            };
            let line = line?;
            if let Some(endpoint) = line.strip_prefix("gtl-server: listening on ") {
                endpoints.push(endpoint.to_owned());
            } else if line.contains("ERROR") || line.starts_with("gtl-server:") {
                eprintln!("{line}");
            }
        }
        let bound_after = spawned.elapsed();
        // Keep draining its log so that it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let token = std::fs::read_to_string(dir.path().join("data/local.token"))
            .context("reading the gateway's local token")?
            .trim()
            .to_owned();
        Ok(Self {
            child,
            endpoints,
            token,
            bound_after,
            spawned,
            _dir: dir,
        })
    }

    /// Starts the bare proxy ([`super::floor`]) in front of `upstream`, from
    /// this very binary, and returns once it listens.
    pub(crate) fn floor(upstream: SocketAddr) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let spawned = Instant::now();
        let mut child = Command::new(std::env::current_exe()?)
            .arg("--floor-proxy")
            .arg(upstream.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting the floor proxy")?;
        let stderr = child.stderr.take().context("no stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        let addr = loop {
            let Some(line) = lines.next() else {
                bail!(
                    "the floor proxy exited before listening: {:?}",
                    child.wait()?
                );
            };
            if let Some(addr) = line?.strip_prefix(super::floor::LISTENING) {
                break addr.to_owned();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Ok(Self {
            child,
            endpoints: vec![format!("http://{addr}")],
            token: "mock-key".into(),
            bound_after: spawned.elapsed(),
            spawned,
            _dir: dir,
        })
    }

    pub(crate) fn endpoint(&self, scheme: &str) -> Result<&str> {
        self.endpoints
            .iter()
            .find(|e| e.starts_with(scheme))
            .map(String::as_str)
            .with_context(|| format!("the gateway has no {scheme} endpoint"))
    }

    /// The HTTP port's address.
    pub(crate) fn http_addr(&self) -> Result<SocketAddr> {
        Ok(self
            .endpoint("http://")?
            .trim_start_matches("http://")
            .parse()?)
    }

    /// CPU time the process has used (user + system).
    pub(crate) fn cpu(&self) -> Result<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))?;
        // Fields after the parenthesised command name; utime and stime are
        // the 14th and 15th of the whole line, in clock ticks (100 Hz).
        let rest = stat.rsplit_once(')').context("odd /proc stat")?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
        Ok(Duration::from_millis(ticks * 10))
    }

    /// Resident memory, in bytes.
    pub(crate) fn rss(&self) -> Result<u64> {
        self.status("VmRSS:")
    }

    /// Resident memory of the process's own (anonymous) pages, in bytes:
    /// the RSS without the binary's code and data mapped from the page
    /// cache, which other processes running it share.
    pub(crate) fn rss_anon(&self) -> Result<u64> {
        self.status("RssAnon:")
    }

    fn status(&self, field: &str) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let kib = status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .with_context(|| format!("no {field} in /proc status"))?;
        Ok(kib * 1024)
    }

    /// Open file descriptors.
    pub(crate) fn open_files(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id())).map_or(0, |d| d.count())
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn render(dir: &Path, upstream: SocketAddr, sessions: Sessions, h2c: bool) -> String {
    let data: PathBuf = dir.join("data");
    let persist = sessions == Sessions::Durable;
    // Loopback listeners on free ports; the per-subject limits (everything
    // here is one subject, the local token's) and the session caps raised
    // past the harness's load; everything else is the default.
    format!(
        r#"data_dir = "{data}"

[listen.uds]
path = "{sock}"
[listen.tcp]
addr = "127.0.0.1:0"
[listen.http]
addr = "127.0.0.1:0"
[listen.quic]
addr = "127.0.0.1:0"
[listen.h3]
addr = "127.0.0.1:0"

[sessions]
persist = {persist}
max_sessions = 400000
memory_budget_bytes = 4294967296

[limits]
max_calls_per_connection = 100000
max_connections = 100000
max_connections_per_peer = 100000
max_connections_per_subject = 100000
max_calls_per_subject = 400000
calls_per_minute_per_subject = 100000000

[[providers]]
kind = "openai"
base_url = "http://{upstream}/v1"
api_key_env = "GTL_BENCH_UPSTREAM_KEY"
h2c = {h2c}

[[providers]]
kind = "anthropic"
base_url = "http://{upstream}"
api_key_env = "GTL_BENCH_UPSTREAM_KEY"
h2c = {h2c}
"#,
        data = data.display(),
        sock = dir.join("gtl.sock").display(),
    )
}
