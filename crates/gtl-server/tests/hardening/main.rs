//! The server against hostile and unlucky clients: each test runs the real
//! `gtl-server` binary and attacks it as a script would (never read, flood,
//! hold connections, touch others' sessions, kill -9 under load, exhaust
//! descriptors). Memory and CPU figures are read from /proc and checked
//! against generous bounds: they are limits, not benchmarks. The
//! operators' view of the same process (`/metrics`, `/readyz`, gRPC health)
//! is checked here too, since the metrics recorder is per process.

mod balanced;
mod connections;
mod crash;
mod drain;
mod interop;
mod logs;
mod memory;
mod metrics;
mod ownership;
mod reload;
mod replicas;
mod sdk;
mod support;
mod telemetry;
mod transcript;
