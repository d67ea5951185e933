//! What the server and the client need of a QUIC-like connection: it
//! carries bidirectional streams, the client opens them, and either end
//! closes it with an application error code. Native QUIC connections
//! (quinn) and WebTransport sessions (wtransport) both are one, so the
//! control stream, the stream-per-call server and the client's stream
//! multiplexer are written once, over this trait.

use std::future::Future;

use tokio::io::{AsyncRead, AsyncWrite};

/// A connection that carries bidirectional streams.
pub(crate) trait BiStreams: Clone + Send + Sync + 'static {
    /// The sending half of a stream. Shutting it down finishes the stream.
    type Send: AsyncWrite + Send + Unpin + 'static;
    /// The receiving half of a stream.
    type Recv: AsyncRead + Send + Unpin + 'static;

    /// Waits for the peer to open a stream; an error once the connection
    /// is closed.
    #[cfg(feature = "server")]
    fn accept_bi(&self) -> impl Future<Output = Result<(Self::Send, Self::Recv), String>> + Send;

    /// Opens a stream; an error once the connection is closed.
    #[cfg(feature = "client")]
    fn open_bi(
        &self,
    ) -> impl Future<Output = Result<(Self::Send, Self::Recv), std::io::Error>> + Send;

    /// Closes the connection with an application error code (see
    /// [`close_code`](crate::close_code)).
    fn close(&self, code: u32, reason: &[u8]);

    /// Waits until the connection is closed, by either end.
    #[cfg(feature = "server")]
    fn closed(&self) -> impl Future<Output = ()> + Send;

    /// Why the connection closed, once it has.
    #[cfg(feature = "client")]
    fn close_reason(&self) -> Option<std::io::Error>;
}

/// A connection error as an I/O error that says the connection is gone.
#[cfg(feature = "client")]
pub(crate) fn aborted(e: impl std::error::Error + Send + Sync + 'static) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::ConnectionAborted, e)
}

/// A native QUIC connection, with the endpoint (UDP socket) it runs on
/// when the client owns it.
#[derive(Debug, Clone)]
pub(crate) struct Quic {
    pub(crate) connection: quinn::Connection,
    #[allow(
        dead_code,
        reason = "held so that the client's UDP socket lives as long"
    )]
    pub(crate) endpoint: Option<quinn::Endpoint>,
}

impl BiStreams for Quic {
    type Send = quinn::SendStream;
    type Recv = quinn::RecvStream;

    #[cfg(feature = "server")]
    async fn accept_bi(&self) -> Result<(Self::Send, Self::Recv), String> {
        self.connection.accept_bi().await.map_err(|e| e.to_string())
    }

    #[cfg(feature = "client")]
    async fn open_bi(&self) -> Result<(Self::Send, Self::Recv), std::io::Error> {
        self.connection.open_bi().await.map_err(aborted)
    }

    fn close(&self, code: u32, reason: &[u8]) {
        self.connection.close(code.into(), reason);
    }

    #[cfg(feature = "server")]
    async fn closed(&self) {
        self.connection.closed().await;
    }

    #[cfg(feature = "client")]
    fn close_reason(&self) -> Option<std::io::Error> {
        self.connection.close_reason().map(aborted)
    }
}

/// A WebTransport session (one per HTTP/3 connection), with the client's
/// endpoint when the client owns it.
#[cfg(feature = "webtransport")]
#[derive(Clone)]
pub(crate) struct WebTransport {
    pub(crate) connection: std::sync::Arc<wtransport::Connection>,
    #[allow(
        dead_code,
        reason = "held so that the client's UDP socket lives as long"
    )]
    pub(crate) endpoint:
        Option<std::sync::Arc<wtransport::Endpoint<wtransport::endpoint::endpoint_side::Client>>>,
}

#[cfg(feature = "webtransport")]
impl BiStreams for WebTransport {
    type Send = wtransport::SendStream;
    type Recv = wtransport::RecvStream;

    #[cfg(feature = "server")]
    async fn accept_bi(&self) -> Result<(Self::Send, Self::Recv), String> {
        self.connection.accept_bi().await.map_err(|e| e.to_string())
    }

    #[cfg(feature = "client")]
    async fn open_bi(&self) -> Result<(Self::Send, Self::Recv), std::io::Error> {
        let opening = self.connection.open_bi().await.map_err(aborted)?;
        opening.await.map_err(aborted)
    }

    fn close(&self, code: u32, reason: &[u8]) {
        self.connection.close(code.into(), reason);
    }

    #[cfg(feature = "server")]
    async fn closed(&self) {
        self.connection.closed().await;
    }

    #[cfg(feature = "client")]
    fn close_reason(&self) -> Option<std::io::Error> {
        self.connection
            .quic_connection()
            .close_reason()
            .map(aborted)
    }
}
