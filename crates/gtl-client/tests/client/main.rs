//! gtl-client against real gateways: in-process (`embedded://`), and a
//! `gtl-server` listening on a Unix socket and TCP, with a TCP proxy that
//! cuts the connection mid-stream.

mod support;

mod connect;
#[cfg(feature = "embedded")]
mod embedded;
mod resume;
