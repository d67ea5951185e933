//! What every GTL transport shares.
//!
//! A transport's job is only to move frames: a server-side [`Listener`]
//! yields [`Connection`]s, a client-side [`Connector`] opens one. Each
//! connection is a [`FrameRead`] half and a [`FrameWrite`] half; everything
//! above them — handshake, auth, routing, sessions — is the same for every
//! transport and lives in the server and client crates.
//!
//! Byte-stream transports (stdio, Unix sockets, TCP) need no code of their
//! own beyond opening the stream: [`stream_connection`] frames any
//! `AsyncRead`/`AsyncWrite` pair with a [`gtl_proto::Codec`].
//!
//! This crate does not open sockets; the `gtl-transport-*` crates do.
//!
//! # Example
//!
//! ```
//! use gtl_proto::{Body, Encoding, Frame, Ping};
//! use gtl_transport::{stream_connection, PeerInfo};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), gtl_transport::TransportError> {
//! let (a, b) = tokio::io::duplex(1024);
//! let (ar, aw) = tokio::io::split(a);
//! let (br, bw) = tokio::io::split(b);
//! let mut client = stream_connection(ar, aw, PeerInfo::new("memory", "a"), Encoding::Json);
//! let mut server = stream_connection(br, bw, PeerInfo::new("memory", "b"), Encoding::Json);
//! let ping = Frame::control(0, Body::Ping(Ping { nonce: 7 }));
//! client.write.write_frame(ping.as_ref())?;
//! client.write.flush().await?;
//! assert_eq!(server.read.read_frame().await?, Some(ping));
//! # Ok(()) }
//! ```

#![doc(test(no_crate_inject, attr(deny(warnings))))]

mod accept;
mod handshake;
mod origin;
pub mod peer_uid;
mod stream;

use async_trait::async_trait;
use gtl_proto::{CodecError, Encoding, ErrorCode, Frame, FrameRef};

pub use accept::{ACCEPT_BACKOFF, ACCEPT_LOG_INTERVAL, AcceptFailures};
pub use handshake::{
    HandshakeError, ServerHandshake, answer_hello, client_handshake, negotiate_encoding,
    server_handshake,
};
pub use origin::is_local_origin;
pub use stream::{StreamReader, StreamWriter, stream_connection};

/// A transport failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The socket or pipe failed.
    #[error("connection failed: {0}")]
    Io(#[from] std::io::Error),
    /// One frame could not be decoded or encoded. The connection is still
    /// usable, the bad frame skipped, unless the error is
    /// [fatal](CodecError::is_fatal): then the byte stream cannot be framed
    /// again.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The peer closed the connection.
    #[error("connection closed by peer")]
    Closed,
    /// The endpoint is not something this transport can reach.
    #[error("invalid endpoint `{endpoint}`: {reason}")]
    Endpoint {
        /// The endpoint as given.
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl TransportError {
    /// Whether the connection can go on after this error: a codec error
    /// about one frame, which the peer should be told about.
    pub fn is_recoverable(&self) -> bool {
        matches!(self, Self::Codec(e) if !e.is_fatal())
    }

    /// Whether the connection must close, but the peer can still be told
    /// why first: a [fatal](CodecError::is_fatal) decoding error, after
    /// which the receiving direction is unusable while the sending one still
    /// works. False for IO errors and a closed connection, where nothing can
    /// be sent, and for recoverable errors, after which the connection goes
    /// on.
    ///
    /// A server answers with an `error` frame (`call_id` 0, `seq` 0, code
    /// [`code`](Self::code), message the error's `Display`), flushes, and
    /// closes:
    ///
    /// ```
    /// use gtl_proto::{Body, Encoding, Error, ErrorCode, Frame};
    /// use gtl_transport::{PeerInfo, stream_connection};
    /// use tokio::io::AsyncWriteExt;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), gtl_transport::TransportError> {
    /// let (client, server) = tokio::io::duplex(1024);
    /// let (sr, sw) = tokio::io::split(server);
    /// let mut conn = stream_connection(sr, sw, PeerInfo::new("memory", "c"), Encoding::Protobuf);
    /// let (_client_read, mut client_write) = tokio::io::split(client);
    /// // A length prefix of 2^63: no frame is ever that large.
    /// client_write.write_all(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]).await?;
    ///
    /// let e = conn.read.read_frame().await.unwrap_err();
    /// assert!(!e.is_recoverable() && e.reply_before_close());
    /// assert_eq!(e.code(), ErrorCode::FrameTooLarge);
    /// let error = Error {
    ///     code: e.code() as i32,
    ///     message: e.to_string(),
    ///     ..Error::default()
    /// };
    /// conn.write.write_frame(Frame::control(0, Body::Error(error)).as_ref())?;
    /// conn.write.close().await?;
    /// # Ok(()) }
    /// ```
    pub fn reply_before_close(&self) -> bool {
        matches!(self, Self::Codec(e) if e.is_fatal())
    }

    /// The `call_id` of the frame the error is about
    /// ([`CodecError::call_id`]); 0 when it concerns the connection.
    pub fn call_id(&self) -> u64 {
        match self {
            Self::Codec(e) => e.call_id(),
            _ => 0,
        }
    }

    /// The GTL code to report this error with.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Codec(e) => e.code(),
            Self::Endpoint { .. } => ErrorCode::InvalidRequest,
            Self::Io(_) | Self::Closed => ErrorCode::ProviderUnavailable,
        }
    }
}

/// Who is on the other end of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerInfo {
    /// The transport's name: "stdio", "uds", "tcp", ...
    pub transport: &'static str,
    /// The peer's address as the transport sees it.
    pub addr: String,
    /// The peer process's user id, where the OS tells (Unix sockets).
    pub uid: Option<u32>,
    /// The peer process's group id, where the OS tells (Unix sockets).
    pub gid: Option<u32>,
    /// Whether the peer is on this host (stdio, Unix sockets, loopback).
    pub same_host: bool,
}

impl PeerInfo {
    /// A peer on this host with no credentials attached.
    pub fn new(transport: &'static str, addr: impl Into<String>) -> Self {
        Self {
            transport,
            addr: addr.into(),
            uid: None,
            gid: None,
            same_host: true,
        }
    }

    /// Sets the peer's user id.
    pub fn with_uid(mut self, uid: Option<u32>) -> Self {
        self.uid = uid;
        self
    }

    /// Sets the peer's group id.
    pub fn with_gid(mut self, gid: Option<u32>) -> Self {
        self.gid = gid;
        self
    }

    /// Sets whether the peer is on this host.
    pub fn with_same_host(mut self, same_host: bool) -> Self {
        self.same_host = same_host;
        self
    }
}

/// The receiving half of a connection.
#[async_trait]
pub trait FrameRead: Send {
    /// The next frame; `Ok(None)` when the peer closed the connection.
    ///
    /// A [recoverable](TransportError::is_recoverable) error concerns one
    /// frame only: call again for the next one. After any other error the
    /// connection is done (answer first if
    /// [`reply_before_close`](TransportError::reply_before_close)).
    async fn read_frame(&mut self) -> Result<Option<Frame>, TransportError>;

    /// Switches the decoding, after the handshake picked an encoding.
    fn set_encoding(&mut self, encoding: Encoding);

    /// Sets the largest frame accepted; larger ones are skipped with a
    /// `FRAME_TOO_LARGE` error (fatal for a protobuf length prefix over
    /// [`gtl_proto::SKIP_LIMIT_FACTOR`] times the limit).
    fn set_max_frame_bytes(&mut self, max: usize);
}

/// The sending half of a connection. Frames are buffered by `write_frame`
/// and sent by `flush`, so a batch of events costs one write.
#[async_trait]
pub trait FrameWrite: Send {
    /// Buffers one frame. On error nothing was buffered.
    fn write_frame(&mut self, frame: FrameRef<'_>) -> Result<(), TransportError>;

    /// Sends everything buffered.
    async fn flush(&mut self) -> Result<(), TransportError>;

    /// Bytes buffered and not yet flushed.
    fn buffered(&self) -> usize;

    /// Switches the encoding, after the handshake picked one.
    fn set_encoding(&mut self, encoding: Encoding);

    /// Closes the sending direction (after a flush).
    async fn close(&mut self) -> Result<(), TransportError>;
}

/// One connection: both halves and who the peer is.
#[allow(missing_debug_implementations, reason = "holds trait objects")]
pub struct Connection {
    /// Frames from the peer.
    pub read: Box<dyn FrameRead>,
    /// Frames to the peer.
    pub write: Box<dyn FrameWrite>,
    /// The peer.
    pub peer: PeerInfo,
    /// Encodings this transport can carry besides JSON.
    pub encodings: Vec<Encoding>,
}

/// The server side of a transport.
#[async_trait]
pub trait Listener: Send {
    /// Waits for the next connection.
    async fn accept(&mut self) -> Result<Connection, TransportError>;

    /// Where the listener listens, for logs (`unix:///run/gtl.sock`, ...).
    fn local_endpoint(&self) -> String;
}

/// The client side of a transport.
#[async_trait]
pub trait Connector: Send + Sync {
    /// Opens a new connection.
    async fn connect(&self) -> Result<Connection, TransportError>;

    /// The endpoint this connector reaches, as a URL.
    fn endpoint(&self) -> String;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_and_close_are_not_answered() {
        let errors = [
            TransportError::Closed,
            TransportError::Io(std::io::ErrorKind::BrokenPipe.into()),
        ];
        for err in errors {
            assert!(!err.is_recoverable(), "{err}");
            assert!(!err.reply_before_close(), "{err}");
        }
    }
}
