//! GTL over standard input and output, the way a language server talks to
//! its editor.
//!
//! The server side is the process's own stdin/stdout ([`stdio_connection`]);
//! the client side spawns the server command and talks to its pipes
//! ([`StdioConnector`]). Frames are NDJSON, one per line: JSON only, so a
//! person can read the conversation. The child's stderr is left to the
//! parent's, where the server's logs belong.
//!
//! # Example
//!
//! ```no_run
//! use gtl_transport::Connector as _;
//! use gtl_transport_stdio::StdioConnector;
//!
//! # async fn run() -> Result<(), gtl_transport::TransportError> {
//! let connector = StdioConnector::new("gtl-server", ["--stdio"]);
//! let conn = connector.connect().await?;
//! # let _ = conn;
//! # Ok(()) }
//! ```

use std::ffi::OsString;
use std::process::Stdio;

use async_trait::async_trait;
use gtl_proto::Encoding;
use gtl_transport::{Connection, Connector, PeerInfo, TransportError, stream_connection};

/// This process's stdin and stdout as one connection (the server side).
///
/// The peer is whoever started this process, so it has this process's user.
pub fn stdio_connection() -> Connection {
    let mut conn = stream_connection(
        tokio::io::stdin(),
        tokio::io::stdout(),
        PeerInfo::new("stdio", "stdin/stdout").with_uid(own_uid()),
        Encoding::Json,
    );
    conn.encodings = vec![Encoding::Json];
    conn
}

/// This process's user id, where the OS tells.
fn own_uid() -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        // The owner of a process's /proc entry is its user.
        std::fs::metadata("/proc/self").ok().map(|m| m.uid())
    }
    #[cfg(not(unix))]
    None
}

/// Spawns a server command per connection and talks to its stdin/stdout.
#[derive(Debug, Clone)]
pub struct StdioConnector {
    program: OsString,
    args: Vec<OsString>,
}

impl StdioConnector {
    /// A connector that runs `program args…`.
    pub fn new(
        program: impl Into<OsString>,
        args: impl IntoIterator<Item = impl Into<OsString>>,
    ) -> Self {
        Self {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
        }
    }

    /// Parses a command line as in `stdio://gtl-server --stdio` (split on
    /// whitespace; no shell quoting).
    pub fn from_command_line(command: &str) -> Result<Self, TransportError> {
        let mut words = command.split_whitespace();
        let program = words.next().ok_or_else(|| TransportError::Endpoint {
            endpoint: format!("stdio://{command}"),
            reason: "no command to run".into(),
        })?;
        Ok(Self::new(program, words))
    }
}

#[async_trait]
impl Connector for StdioConnector {
    async fn connect(&self) -> Result<Connection, TransportError> {
        let mut child = tokio::process::Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            // The server goes when its client does.
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| TransportError::Endpoint {
                endpoint: self.endpoint(),
                reason: format!("cannot run {}: {e}", self.program.to_string_lossy()),
            })?;
        let stdin = child.stdin.take().expect("stdin is piped");
        let stdout = child.stdout.take().expect("stdout is piped");
        let pid = child.id().map_or_else(|| "?".into(), |p| p.to_string());
        let peer = PeerInfo::new("stdio", format!("pid {pid}"));
        let mut conn = stream_connection(
            ChildStdout {
                stdout,
                _child: child,
            },
            stdin,
            peer,
            Encoding::Json,
        );
        conn.encodings = vec![Encoding::Json];
        Ok(conn)
    }

    fn endpoint(&self) -> String {
        let mut url = format!("stdio://{}", self.program.to_string_lossy());
        for arg in &self.args {
            url.push(' ');
            url.push_str(&arg.to_string_lossy());
        }
        url
    }
}

/// The child's stdout, owning the child so it lives (and is killed) with the
/// connection's reading half.
struct ChildStdout {
    stdout: tokio::process::ChildStdout,
    _child: tokio::process::Child,
}

impl tokio::io::AsyncRead for ChildStdout {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stdout).poll_read(cx, buf)
    }
}
