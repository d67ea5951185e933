//! GTL over WebSocket.
//!
//! One GTL frame per WebSocket message: the frame's canonical JSON in a
//! **text** message, or — once the handshake picked protobuf — the frame's
//! protobuf bytes (`gtl.v1.Frame`, no length prefix) in a **binary**
//! message. `hello` and `welcome` are always JSON text. The URL path is
//! [`DEFAULT_PATH`] (`/gtl/v1/ws`); a client may offer the subprotocol
//! [`SUBPROTOCOL`] (`Sec-WebSocket-Protocol: gtl.v1`), which the server then
//! echoes; offering it is optional.
//!
//! This crate only moves frames. It does not run an HTTP server: the
//! server's router answers the upgrade ([`upgrade_response`]) and hands the
//! upgraded IO to [`server_connection`]. The client side is [`WsConnector`].
//!
//! # Reading
//!
//! - A text message on a protobuf connection, a binary message on a JSON
//!   one, and a message that does not decode are
//!   [recoverable](gtl_transport::TransportError::is_recoverable) codec
//!   errors (`INVALID_REQUEST`): the connection goes on, as after a bad
//!   NDJSON line.
//! - A message over the frame-size limit is refused with `FRAME_TOO_LARGE`.
//!   tungstenite is configured with the same limit ([`websocket_config`]),
//!   so it stops reading such a message at its header, without buffering
//!   it; the stream cannot be read past it, so the error is followed by
//!   `Ok(None)`, and [`close`](gtl_transport::FrameWrite::close) sends 1009.
//!   (A limit lowered later with `set_max_frame_bytes` refuses messages
//!   between the two limits after receiving them, and the connection goes
//!   on.)
//! - Pings are answered while a read is pending — and GTL endpoints always
//!   have one pending — even when no frame comes or goes.
//! - A close message ends the stream: `Ok(None)`, after the close reply.
//!
//! # Writing
//!
//! `write_frame` encodes a message and queues it; `flush` hands the batch to
//! tungstenite and writes it to the socket in one go.
//!
//! # Close codes
//!
//! | code | when |
//! |---|---|
//! | 1000 | normal close: [`FrameWrite::close`](gtl_transport::FrameWrite::close) |
//! | 1001 | going away: the server shuts down |
//! | 1002 | protocol error: the peer broke the WebSocket protocol, or GTL's handshake (`INVALID_REQUEST`, `VERSION_UNSUPPORTED`) |
//! | 1008 | policy: the connection is refused (authentication, permissions, connection caps, rate limits) |
//! | 1009 | message too big: a message over the frame-size limit |
//! | 1011 | internal error |
//!
//! `close` sends 1000 unless the reader stopped on a protocol error (1002)
//! or an oversized message (1009), or the last frame written before it
//! (since the last flush) is a connection-level `error` frame: then
//! [`close_code::for_error`] maps its code, so a refusal written by the
//! shared handshake or server pipeline closes with the matching code.
//!
//! # Features
//!
//! - `tls` (off by default): `wss://` in [`WsConnector`], with rustls and
//!   the `ring` provider, trusting the system's roots.
//!
//! # Example
//!
//! ```
//! use gtl_proto::{Body, DEFAULT_MAX_FRAME_BYTES, Frame, Ping};
//! use gtl_transport::{Connector as _, PeerInfo};
//! use gtl_transport_ws::{WsConnector, accept};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), gtl_transport::TransportError> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let url = format!("ws://{}/gtl/v1/ws", listener.local_addr()?);
//! let server = async {
//!     let (stream, addr) = listener.accept().await?;
//!     accept(stream, PeerInfo::new("ws", addr.to_string()), DEFAULT_MAX_FRAME_BYTES).await
//! };
//! let connector = WsConnector::new(&url)?;
//! let (client, server) = tokio::join!(connector.connect(), server);
//! let (mut client, mut server) = (client?, server?);
//! let ping = Frame::control(0, Body::Ping(Ping { nonce: 7 }));
//! client.write.write_frame(ping.as_ref())?;
//! client.write.flush().await?;
//! assert_eq!(server.read.read_frame().await?, Some(ping));
//! # Ok(()) }
//! ```

#![doc(test(no_crate_inject, attr(deny(warnings))))]

mod client;
pub mod close_code;
mod conn;
mod upgrade;

use gtl_proto::{DEFAULT_MAX_FRAME_BYTES, Encoding};
use gtl_transport::{Connection, PeerInfo, TransportError};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::{
    Callback, ErrorResponse, Request, Response,
};
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

pub use client::WsConnector;
pub use upgrade::{UpgradeError, echo_subprotocol, upgrade_response};

/// The URL path of the GTL WebSocket endpoint.
pub const DEFAULT_PATH: &str = "/gtl/v1/ws";

/// The WebSocket subprotocol a client may offer (`Sec-WebSocket-Protocol`).
pub const SUBPROTOCOL: &str = "gtl.v1";

/// tungstenite's read buffer: the size of the byte-stream transports'.
const READ_BUFFER: usize = 16 * 1024;

/// The tungstenite configuration for a frame-size limit: no message or
/// WebSocket frame over `max_frame_bytes` is buffered, so a connection's
/// reading memory is bounded by the limit.
pub fn websocket_config(max_frame_bytes: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .max_message_size(Some(max_frame_bytes))
        .max_frame_size(Some(max_frame_bytes))
}

/// Frames an established WebSocket (after the HTTP upgrade, either role).
///
/// The connection starts in JSON and carries JSON and protobuf. Incoming
/// messages are limited by the smaller of the stream's
/// `max_message_size` and [`DEFAULT_MAX_FRAME_BYTES`] until
/// `set_max_frame_bytes`; build the stream with [`websocket_config`] so
/// tungstenite's limit is the connection's.
pub fn ws_connection<S>(ws: WebSocketStream<S>, peer: PeerInfo) -> Connection
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let configured = ws.get_config().max_message_size.unwrap_or(usize::MAX);
    connection(ws, peer, configured.min(DEFAULT_MAX_FRAME_BYTES))
}

/// The server side of an upgraded HTTP connection: wraps `io` (hyper's
/// upgraded connection, e.g. `TokioIo::new(hyper::upgrade::on(req).await?)`)
/// as a server-role WebSocket limited to `max_frame_bytes` per message, and
/// frames it. Answer the upgrade request with [`upgrade_response`] first.
pub async fn server_connection<S>(io: S, peer: PeerInfo, max_frame_bytes: usize) -> Connection
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let config = websocket_config(max_frame_bytes);
    let ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
    connection(ws, peer, max_frame_bytes)
}

/// Runs the server's side of the opening handshake on a raw byte stream
/// (for a WebSocket listener without an HTTP router, and for tests), then
/// frames the WebSocket as [`server_connection`] does. Any path is
/// accepted; the `gtl.v1` subprotocol is echoed when offered.
pub async fn accept<S>(
    io: S,
    peer: PeerInfo,
    max_frame_bytes: usize,
) -> Result<Connection, TransportError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let config = websocket_config(max_frame_bytes);
    let ws = tokio_tungstenite::accept_hdr_async_with_config(io, EchoSubprotocol, Some(config))
        .await
        .map_err(|e| match e {
            tokio_tungstenite::tungstenite::Error::Io(e) => TransportError::Io(e),
            other => TransportError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("websocket handshake failed: {other}"),
            )),
        })?;
    Ok(connection(ws, peer, max_frame_bytes))
}

/// tungstenite's handshake callback for [`echo_subprotocol`].
struct EchoSubprotocol;

impl Callback for EchoSubprotocol {
    fn on_request(
        self,
        request: &Request,
        mut response: Response,
    ) -> Result<Response, ErrorResponse> {
        echo_subprotocol(request.headers(), response.headers_mut());
        Ok(response)
    }
}

/// Frames `ws`, reading messages of at most `read_max` bytes.
fn connection<S>(ws: WebSocketStream<S>, peer: PeerInfo, read_max: usize) -> Connection
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (read, write) = conn::split(ws, read_max, DEFAULT_MAX_FRAME_BYTES);
    Connection {
        read: Box::new(read),
        write: Box::new(write),
        peer,
        encodings: vec![Encoding::Json, Encoding::Protobuf],
    }
}
