//! GTL over native QUIC and WebTransport (quinn, TLS 1.3 with ring).
//!
//! One QUIC connection carries many calls without head-of-line blocking
//! between them, and survives a change of the client's address
//! (connection migration). The framing (docs/protocol.md §13.7):
//!
//! - ALPN `gtl/1`. 0-RTT is off: a `completion_request` is not safe to
//!   replay (it would start a second generation).
//! - The **control stream** is the first bidirectional stream the client
//!   opens. It starts exactly like a framed connection: `hello` and
//!   `welcome` as JSON lines, then frames in the negotiated encoding
//!   (length-delimited protobuf when both offer it). After the handshake it
//!   carries only `ping`/`pong`. Authentication and version negotiation
//!   happen here, once per connection.
//! - Every other client-opened bidirectional stream is **one call**: its
//!   first frame is `completion_request`, `resume` or `models_request`;
//!   later client frames on it are `ack`, `cancel` and `input`. The server
//!   answers on the same stream (`accepted`, the session's events, or the
//!   models answer) and finishes it after the call's last frame. A call's
//!   slow reader holds back only its own stream.
//!
//! [`QuicGateway`] (feature `server`) serves connections on a
//! `gtl-service` [`CallService`](gtl_service::CallService);
//! [`QuicConnector`] (feature `client`) opens them for `quic://` URLs and
//! presents them as an ordinary multiplexed [`Connection`](gtl_transport::Connection).
//!
//! **WebTransport** (feature `webtransport`, docs/protocol.md §13.8) is the
//! same control stream and streams per call inside an HTTP/3 session at
//! [`WT_PATH`] (`https://127.0.0.1:7300/gtl/v1/wt` by default), which is how
//! browsers reach GTL. `WtGateway` serves it with the very code that serves
//! native QUIC (only the session set-up differs: ALPN `h3`, the `CONNECT`'s
//! path and `Origin`); `WtConnector` opens `wt://` URLs.
//!
//! # Features
//!
//! - `server` (default): `QuicGateway`, and with `webtransport`, `WtGateway`.
//! - `client` (default): `QuicConnector`, and with `webtransport`,
//!   `WtConnector`.
//! - `webtransport` (default): HTTP/3 and WebTransport, with `wtransport`.
//!
//! # Example
//!
//! ```no_run
//! # #![allow(dead_code)]
//! # #[cfg(all(feature = "server", feature = "client"))]
//! # async fn demo(
//! #     service: std::sync::Arc<gtl_service::CallService>,
//! #     cert: Vec<rustls::pki_types::CertificateDer<'static>>,
//! #     key: rustls::pki_types::PrivateKeyDer<'static>,
//! # ) -> Result<(), Box<dyn std::error::Error>> {
//! use gtl_transport::Connector as _;
//! use gtl_transport_quic::{QuicConnector, QuicGateway, cert_sha256};
//!
//! let gateway = QuicGateway::new(service);
//! let pin = cert_sha256(&cert[0]);
//! let config = gateway.server_config(cert, key)?;
//! let endpoint = quinn::Endpoint::server(config, "127.0.0.1:7302".parse()?)?;
//! tokio::spawn(gateway.serve(endpoint));
//!
//! let connector = QuicConnector::new("quic://127.0.0.1:7302")?.with_cert_sha256(pin);
//! let connection = connector.connect().await?;
//! # let _ = connection; Ok(()) }
//! ```

#![doc(test(no_crate_inject, attr(deny(warnings))))]

#[cfg(feature = "client")]
mod client;
#[cfg(any(feature = "client", feature = "server"))]
mod conn;
#[cfg(feature = "client")]
mod mux;
#[cfg(feature = "server")]
mod server;
#[cfg(feature = "server")]
mod session;
mod tls;
mod validity;
#[cfg(all(feature = "webtransport", feature = "client"))]
mod wt_client;
#[cfg(all(feature = "webtransport", feature = "server"))]
mod wt_server;

use std::time::Duration;

#[cfg(feature = "client")]
pub use client::QuicConnector;
#[cfg(feature = "server")]
pub use server::QuicGateway;
pub use tls::{QuicError, cert_sha256};
#[cfg(feature = "client")]
pub use tls::{Trust, tls_client_config};
#[cfg(all(feature = "webtransport", feature = "client"))]
pub use wt_client::WtConnector;
#[cfg(all(feature = "webtransport", feature = "server"))]
pub use wt_server::WtGateway;

/// A certificate's validity period, `(notBefore, notAfter)` in Unix
/// seconds; `None` when it cannot be read.
pub fn cert_validity(cert: &rustls::pki_types::CertificateDer<'_>) -> Option<(i64, i64)> {
    validity::validity(cert.as_ref())
}

/// The ALPN protocol id of GTL over QUIC.
pub const ALPN: &[u8] = b"gtl/1";

/// The default UDP port of native QUIC.
pub const DEFAULT_PORT: u16 = 7302;

/// The path of GTL's WebTransport session:
/// `https://127.0.0.1:7300/gtl/v1/wt` by default.
pub const WT_PATH: &str = "/gtl/v1/wt";

/// The default UDP port of HTTP/3 and WebTransport (the TCP HTTP port's
/// number).
pub const WT_DEFAULT_PORT: u16 = 7300;

/// How often each end sends a keep-alive while a connection is idle.
pub const KEEP_ALIVE: Duration = Duration::from_secs(10);

/// A connection silent for this long (no packets at all, not even
/// keep-alives: the peer is gone) is closed; its sessions stay resumable.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// QUIC application error codes this transport closes connections with.
pub mod close_code {
    /// Normal close.
    pub const DONE: u32 = 0;
    /// The handshake was refused (the error frame on the control stream
    /// says why).
    pub const REFUSED: u32 = 1;
    /// The peer broke the framing rules.
    pub const PROTOCOL: u32 = 2;
}

/// A quinn transport configuration with GTL's keep-alive and idle timeout
/// and room for `max_calls` concurrent calls plus the control stream.
pub(crate) fn transport_config(max_calls: usize) -> quinn::TransportConfig {
    let mut config = quinn::TransportConfig::default();
    config.keep_alive_interval(Some(KEEP_ALIVE));
    config.max_idle_timeout(Some(
        quinn::IdleTimeout::try_from(IDLE_TIMEOUT).expect("idle timeout fits QUIC's varint"),
    ));
    let streams = u32::try_from(max_calls.saturating_add(1)).unwrap_or(u32::MAX);
    config.max_concurrent_bidi_streams(streams.into());
    // Clients never open unidirectional streams.
    config.max_concurrent_uni_streams(0u8.into());
    config
}

/// [`transport_config`] for HTTP/3 and WebTransport: one more
/// bidirectional stream (the session's `CONNECT`) and HTTP/3's own
/// unidirectional streams (control, QPACK encoder and decoder) with room to
/// spare.
#[cfg(feature = "webtransport")]
pub(crate) fn h3_transport_config(max_calls: usize) -> quinn::TransportConfig {
    let mut config = transport_config(max_calls.saturating_add(1));
    config.max_concurrent_uni_streams(8u8.into());
    config
}
