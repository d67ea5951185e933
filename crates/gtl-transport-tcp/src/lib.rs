//! GTL over TCP.
//!
//! Frames are NDJSON until the handshake switches both ends to
//! varint-length-delimited protobuf. `TCP_NODELAY` is set: tokens are small
//! and latency matters more than packet count.
//!
//! A loopback peer's user id is looked up (on Linux, in `/proc/net/tcp`),
//! so a same-host client is known by its user on TCP as on a Unix socket.
//!
//! # Example
//!
//! ```no_run
//! use gtl_transport::{Connector as _, Listener as _};
//! use gtl_transport_tcp::{TcpConnector, TcpListener};
//!
//! # async fn run() -> Result<(), gtl_transport::TransportError> {
//! let mut listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).await?;
//! let connector = TcpConnector::new(listener.local_addr()?.to_string());
//! let (client, server) = tokio::join!(connector.connect(), listener.accept());
//! # let _ = (client?, server?);
//! # Ok(()) }
//! ```

use std::net::SocketAddr;

use async_trait::async_trait;
use gtl_proto::Encoding;
use gtl_transport::{Connection, Connector, Listener, PeerInfo, TransportError, stream_connection};

/// Accepts GTL connections on a TCP socket.
#[derive(Debug)]
pub struct TcpListener {
    inner: tokio::net::TcpListener,
}

impl TcpListener {
    /// Binds to `addr` (port 0 picks a free port).
    pub async fn bind(addr: SocketAddr) -> Result<Self, TransportError> {
        Ok(Self {
            inner: tokio::net::TcpListener::bind(addr).await?,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> Result<SocketAddr, TransportError> {
        Ok(self.inner.local_addr()?)
    }
}

#[async_trait]
impl Listener for TcpListener {
    async fn accept(&mut self) -> Result<Connection, TransportError> {
        let (stream, addr) = self.inner.accept().await?;
        stream.set_nodelay(true)?;
        let peer = peer_info(&stream, addr, "tcp");
        let (read, write) = stream.into_split();
        Ok(stream_connection(read, write, peer, Encoding::Json))
    }

    fn local_endpoint(&self) -> String {
        self.inner
            .local_addr()
            .map_or_else(|_| "tcp://?".into(), |a| format!("tcp://{a}"))
    }
}

/// Who is on the other end of an accepted TCP connection from `addr`, for
/// any transport over TCP (`transport` names it: "tcp", "http", …): its
/// address, whether it is on this host, and, for a loopback peer, its user.
pub fn peer_info(
    stream: &tokio::net::TcpStream,
    addr: SocketAddr,
    transport: &'static str,
) -> PeerInfo {
    let loopback = addr.ip().is_loopback();
    let uid = match stream.local_addr() {
        Ok(local) if loopback => gtl_transport::peer_uid::loopback_tcp_peer_uid(addr, local),
        _ => None,
    };
    PeerInfo::new(transport, addr.to_string())
        .with_same_host(loopback)
        .with_uid(uid)
}

/// Opens GTL connections to `host:port`, in cleartext or (feature `tls`)
/// inside TLS.
#[derive(Debug, Clone)]
pub struct TcpConnector {
    addr: String,
    #[cfg(feature = "tls")]
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

impl TcpConnector {
    /// A connector for `host:port`.
    pub fn new(addr: impl Into<String>) -> Self {
        Self {
            addr: addr.into(),
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// Speaks TLS with `config` (`tcps://`), checking the certificate
    /// against the host of `host:port`.
    #[cfg(feature = "tls")]
    pub fn with_tls(mut self, config: std::sync::Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(config);
        self
    }
}

#[async_trait]
impl Connector for TcpConnector {
    async fn connect(&self) -> Result<Connection, TransportError> {
        let stream = tokio::net::TcpStream::connect(&self.addr).await?;
        stream.set_nodelay(true)?;
        let addr = stream.peer_addr()?;
        let peer = PeerInfo::new("tcp", addr.to_string()).with_same_host(addr.ip().is_loopback());
        #[cfg(feature = "tls")]
        if let Some(config) = &self.tls {
            let host = self
                .addr
                .rsplit_once(':')
                .map_or(self.addr.as_str(), |(host, _)| host)
                .trim_start_matches('[')
                .trim_end_matches(']');
            let name = rustls::pki_types::ServerName::try_from(host.to_owned()).map_err(|e| {
                TransportError::Endpoint {
                    endpoint: self.endpoint(),
                    reason: format!("`{host}` is not a TLS server name: {e}"),
                }
            })?;
            let stream = tokio_rustls::TlsConnector::from(config.clone())
                .connect(name, stream)
                .await?;
            let (read, write) = tokio::io::split(stream);
            return Ok(stream_connection(read, write, peer, Encoding::Json));
        }
        let (read, write) = stream.into_split();
        Ok(stream_connection(read, write, peer, Encoding::Json))
    }

    fn endpoint(&self) -> String {
        #[cfg(feature = "tls")]
        if self.tls.is_some() {
            return format!("tcps://{}", self.addr);
        }
        format!("tcp://{}", self.addr)
    }
}
