//! GTL over Unix domain sockets.
//!
//! The fastest same-host transport. The listener reports each peer's user id
//! (from `SO_PEERCRED`), so a server may trust the OS instead of a token, and
//! creates its socket file with owner-only permissions. The socket file is
//! removed when the listener is dropped.
//!
//! # Example
//!
//! ```no_run
//! use gtl_transport::{Connector as _, Listener as _};
//! use gtl_transport_uds::{UdsConnector, UdsListener};
//!
//! # async fn run() -> Result<(), gtl_transport::TransportError> {
//! let mut listener = UdsListener::bind("/tmp/gtl.sock")?;
//! let connector = UdsConnector::new("/tmp/gtl.sock");
//! let (client, server) = tokio::join!(connector.connect(), listener.accept());
//! # let _ = (client?, server?);
//! # Ok(()) }
//! ```

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use gtl_proto::Encoding;
use gtl_transport::{Connection, Connector, Listener, PeerInfo, TransportError, stream_connection};

/// Accepts GTL connections on a Unix socket.
#[derive(Debug)]
pub struct UdsListener {
    inner: tokio::net::UnixListener,
    path: PathBuf,
}

impl UdsListener {
    /// Binds a socket at `path`, replacing a stale socket file left by a
    /// crashed server, and makes it accessible to its owner only.
    pub fn bind(path: impl AsRef<Path>) -> Result<Self, TransportError> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        if std::os::unix::net::UnixStream::connect(&path).is_ok() {
            return Err(TransportError::Io(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("{} is in use by a running server", path.display()),
            )));
        }
        // Nobody answers: a leftover from a crash.
        let _ = std::fs::remove_file(&path);
        let inner = tokio::net::UnixListener::bind(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        Ok(Self { inner, path })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for UdsListener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[async_trait]
impl Listener for UdsListener {
    async fn accept(&mut self) -> Result<Connection, TransportError> {
        let (stream, _) = self.inner.accept().await?;
        let cred = stream.peer_cred().ok();
        let peer = PeerInfo::new("uds", self.path.display().to_string())
            .with_uid(cred.map(|c| c.uid()))
            .with_gid(cred.map(|c| c.gid()));
        let (read, write) = stream.into_split();
        Ok(stream_connection(read, write, peer, Encoding::Json))
    }

    fn local_endpoint(&self) -> String {
        format!("unix://{}", self.path.display())
    }
}

/// Opens GTL connections to a Unix socket.
#[derive(Debug, Clone)]
pub struct UdsConnector {
    path: PathBuf,
}

impl UdsConnector {
    /// A connector for the socket at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }
}

#[async_trait]
impl Connector for UdsConnector {
    async fn connect(&self) -> Result<Connection, TransportError> {
        let stream = tokio::net::UnixStream::connect(&self.path).await?;
        let cred = stream.peer_cred().ok();
        let peer = PeerInfo::new("uds", self.path.display().to_string())
            .with_uid(cred.map(|c| c.uid()))
            .with_gid(cred.map(|c| c.gid()));
        let (read, write) = stream.into_split();
        Ok(stream_connection(read, write, peer, Encoding::Json))
    }

    fn endpoint(&self) -> String {
        format!("unix://{}", self.path.display())
    }
}
