//! End-to-end: the `gtl-client` against `gtl-server` over every transport.
//!
//! Each scenario is an `async fn(Transport)`; `per_transport!` makes one
//! test per transport, so a new transport adds one line to `Transport` and
//! one to the macro, not a copy of the suite.

mod calls;
mod faults;
mod harness;
mod resume;

/// Runs each scenario once per transport.
macro_rules! per_transport {
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
pub(crate) use per_transport;
