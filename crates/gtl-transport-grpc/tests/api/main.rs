//! Integration tests of gtl-transport-grpc: the status mapping, the
//! generated server and client over a loopback HTTP/2 connection, and the
//! `grpc://` client transport against the gateway.

#[cfg(all(feature = "client", feature = "server"))]
mod connector;
mod loopback;
mod status;
#[cfg(all(feature = "tls", feature = "server"))]
mod tls;
