//! The GTL reference server.
//!
//! One call service ([`CallService`], from `gtl-service`) serves every
//! transport: authenticate → route to a provider → session machine, with
//! the owner checks and limits in one place. This crate owns the
//! configuration, the listeners and their accept loops, and shutdown.
//!
//! With no configuration it listens on a Unix socket and on TCP at
//! `127.0.0.1:7301`, keeps sessions in a redb file in the data dir, and
//! serves the built-in `echo` provider.
//!
//! # Example
//!
//! ```no_run
//! use gtl_providers::{EchoProvider, Registry};
//! use gtl_server::{Config, Server};
//! use std::sync::Arc;
//!
//! # #[tokio::main] async fn main() -> Result<(), gtl_server::ServerError> {
//! let mut registry = Registry::new();
//! registry.add(Arc::new(EchoProvider::new()));
//! let server = Server::bind(&Config::default(), registry).await?;
//! println!("listening on {:?}", server.endpoints());
//! server.run(async { let _ = tokio::signal::ctrl_c().await; }).await;
//! # Ok(()) }
//! ```

#![doc(test(no_crate_inject, attr(deny(warnings))))]

mod audit;
mod auth;
pub mod config;
pub mod local_token;
mod metrics;
pub mod provider_keys;
mod providers;
mod reload;
mod server;
pub mod telemetry;
pub mod tls;

pub use auth::{AuthConfigError, token_verifier};
pub use config::{Config, ConfigError, LogFormat, SessionBackend};
pub use gtl_service::{
    Admission, AuthError, Authenticator, CallError, CallService, ConnectionLimits, KeyOpener,
    Principal,
};
pub use metrics::PrometheusMetrics;
pub use providers::{ProviderEntry, ProvidersError, registry};
pub use reload::Reloader;
pub use server::{Gateway, Server, ServerError};

/// The providers `config` and this process's environment switch on, with
/// the built-in echo provider unless `[echo] enabled = false`.
pub fn default_registry(config: &Config) -> Result<gtl_providers::Registry, ProvidersError> {
    providers::build(
        &config.providers,
        &config.aliases,
        &gtl_providers::Env::from_process(),
        config.echo.enabled,
    )
}
