//! End-to-end: the `gtl-client` against `gtl-server` over every transport.
//!
//! Each scenario is an `async fn(Transport)`; `per_transport!` makes one
//! test per transport, so a new transport adds one line to `Transport` and
//! one to the macro, not a copy of the suite.

mod auth;
mod calls;
mod drain;
mod faults;
mod harness;
mod resume;
mod routing;
mod tls;
mod webtransport;

/// Runs each scenario once per transport.
macro_rules! per_transport {
    ($($scenario:ident),* $(,)?) => {
        crate::per_framed_transport!($($scenario),*);
        mod sse {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $scenario() { super::$scenario(crate::harness::Transport::Sse).await } )*
        }
        mod grpc {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $scenario() { super::$scenario(crate::harness::Transport::Grpc).await } )*
        }
        mod quic {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $scenario() { super::$scenario(crate::harness::Transport::Quic).await } )*
        }
        mod wt {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $scenario() { super::$scenario(crate::harness::Transport::Wt).await } )*
        }
    };
}
pub(crate) use per_transport;

/// Runs each scenario once per transport that carries the byte-level
/// framing of §6 (malformed input is written below the client there; the
/// HTTP, gRPC, QUIC and WebTransport surfaces have their own bad-input tests in their
/// crates).
macro_rules! per_framed_transport {
    ($($scenario:ident),* $(,)?) => {
        mod uds {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $scenario() { super::$scenario(crate::harness::Transport::Uds).await } )*
        }
        mod tcp {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $scenario() { super::$scenario(crate::harness::Transport::Tcp).await } )*
        }
        mod stdio {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $scenario() { super::$scenario(crate::harness::Transport::Stdio).await } )*
        }
        mod ws {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $scenario() { super::$scenario(crate::harness::Transport::Ws).await } )*
        }
    };
}
pub(crate) use per_framed_transport;
