//! The WebSocket transport over loopback TCP: framing, the GTL handshake,
//! refusals, control messages and close codes.

mod control;
mod errors;
mod frames;
mod handshake;
#[cfg(feature = "tls")]
mod tls;
mod util;
