//! A `redis-server` of the test's own, on a free loopback port.

use std::io::{self, BufRead as _, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A `redis-server` process (Debian's `redis-server` package, or Valkey's
/// `valkey-server` named by `$GTL_REDIS_SERVER`) started for one test and
/// killed when dropped. It keeps nothing on disk.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    /// Extra `redis-server` arguments (TLS, a password), kept for restarts.
    args: Vec<String>,
    tls: bool,
}

/// How long a starting server may take to say it is ready.
const READY_WITHIN: Duration = Duration::from_secs(20);

impl RedisServer {
    /// Starts a server on a free port of 127.0.0.1 and returns once it
    /// accepts connections.
    ///
    /// # Errors
    ///
    /// When the binary is missing (install Debian's `redis-server`) or the
    /// server does not start.
    pub fn start() -> io::Result<Self> {
        Self::start_with(&[])
    }

    /// As [`start`](Self::start), requiring `password` (`requirepass`).
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start).
    pub fn start_with_password(password: &str) -> io::Result<Self> {
        Self::start_with(&["--requirepass".into(), password.into()])
    }

    /// As [`start`](Self::start), serving TLS only, with the PEM files
    /// `cert` and `key` (clients are not asked for certificates); its URL
    /// is `rediss://`.
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start).
    pub fn start_tls(cert: &std::path::Path, key: &std::path::Path) -> io::Result<Self> {
        let path = |p: &std::path::Path| p.display().to_string();
        Self::start_with(&[
            "--tls-cert-file".into(),
            path(cert),
            "--tls-key-file".into(),
            path(key),
            "--tls-auth-clients".into(),
            "no".into(),
            "--tls-port".into(),
        ])
    }

    fn start_with(args: &[String]) -> io::Result<Self> {
        let tls = args.last().is_some_and(|a| a == "--tls-port");
        let mut last = None;
        // The free port is found by binding it and letting go: another
        // process may take it in between, so try a few.
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            match spawn(port, args, tls) {
                Ok(child) => {
                    return Ok(Self {
                        child: Some(child),
                        port,
                        args: args.to_vec(),
                        tls,
                    });
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("redis-server did not start")))
    }

    /// `redis://127.0.0.1:PORT/`, or `rediss://localhost:PORT/` with TLS.
    pub fn url(&self) -> String {
        if self.tls {
            format!("rediss://localhost:{}/", self.port)
        } else {
            format!("redis://127.0.0.1:{}/", self.port)
        }
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server at once (SIGKILL): its data is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, empty, after [`kill`](Self::kill).
    ///
    /// # Errors
    ///
    /// When it does not start (the port was taken meanwhile).
    pub fn restart(&mut self) -> io::Result<()> {
        self.kill();
        self.child = Some(spawn(self.port, &self.args, self.tls)?);
        Ok(())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn(port: u16, args: &[String], tls: bool) -> io::Result<Child> {
    let binary = std::env::var("GTL_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
    let mut command = Command::new(&binary);
    if tls {
        // The TLS port takes the free port; plain TCP is off.
        command
            .args(args)
            .arg(port.to_string())
            .args(["--port", "0"]);
    } else {
        command.args(args).args(["--port", &port.to_string()]);
    }
    let mut child = command
        .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .args(["--logfile", "", "--daemonize", "no"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("{binary}: {e} (install Debian's redis-server package)"),
            )
        })?;
    let stdout = child.stdout.take().expect("piped stdout");
    let (ready, is_ready) = mpsc::channel();
    // Reads the log to its end, so the server never blocks on a full pipe.
    std::thread::spawn(move || {
        let mut ready = Some(ready);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.contains("Ready to accept connections")
                && let Some(ready) = ready.take()
            {
                let _ = ready.send(());
            }
        }
    });
    match is_ready.recv_timeout(READY_WITHIN) {
        Ok(()) => Ok(child),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(io::Error::other(format!(
                "{binary} on port {port} did not become ready"
            )))
        }
    }
}
