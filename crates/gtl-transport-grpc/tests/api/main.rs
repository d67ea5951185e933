//! Integration tests of gtl-transport-grpc: the status mapping, and the
//! generated server and client over a loopback HTTP/2 connection.

mod loopback;
mod status;
