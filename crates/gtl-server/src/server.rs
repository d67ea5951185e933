//! Listeners, the accept loops and graceful shutdown.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use gtl_core::{Engine, EngineConfig, MemoryStore, RedbStore, SessionStore};
use gtl_providers::Registry;
use gtl_transport::{Connection, Listener};
use gtl_transport_tcp::TcpListener;
use gtl_transport_uds::UdsListener;
use tokio::task::JoinSet;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::pipeline::{self, Context};

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// A listener could not be bound.
    #[error("cannot listen on {endpoint}: {source}")]
    Bind {
        /// What was being bound.
        endpoint: String,
        /// Why it failed.
        source: gtl_transport::TransportError,
    },
    /// The session store could not be opened.
    #[error("cannot open the session store {path}: {message}")]
    Store {
        /// The database file.
        path: PathBuf,
        /// Why it failed (another server using the same data dir, a
        /// corrupt file, permissions).
        message: String,
    },
}

/// A handle to the gateway's call pipeline, for connections that do not come
/// from a listener: stdio, and in-process (embedded) clients.
#[derive(Debug, Clone)]
pub struct Gateway {
    ctx: Arc<Context>,
}

impl Gateway {
    /// Serves one connection until it closes.
    pub async fn serve(&self, conn: Connection) {
        pipeline::serve(self.ctx.clone(), conn).await;
    }

    /// The engine holding the sessions.
    pub fn engine(&self) -> &Engine {
        &self.ctx.engine
    }
}

/// A bound, ready server.
#[allow(missing_debug_implementations, reason = "holds listener trait objects")]
pub struct Server {
    gateway: Gateway,
    listeners: Vec<Box<dyn Listener>>,
}

impl Server {
    /// Opens the session store, restores persisted sessions and binds the
    /// configured listeners. Must run inside a tokio runtime.
    pub async fn bind(config: &Config, registry: Registry) -> Result<Self, ServerError> {
        let store: Arc<dyn SessionStore> = if config.sessions.persist {
            let path = config.data_dir.join("sessions.redb");
            let opened = std::fs::create_dir_all(&config.data_dir)
                .map_err(|e| e.to_string())
                .and_then(|()| RedbStore::open(&path).map_err(|e| e.to_string()));
            Arc::new(opened.map_err(|message| ServerError::Store { path, message })?)
        } else {
            Arc::new(MemoryStore::new())
        };
        let engine = Engine::new(
            store,
            EngineConfig::default()
                .with_session(config.session_config())
                .with_persist(config.sessions.persist),
        );
        match engine.restore().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(sessions = n, "restored sessions for resume"),
            Err(e) => tracing::warn!(error = %e, "persisted sessions could not be restored"),
        }
        let ctx = Context {
            engine,
            registry,
            auth: Authenticator::new(config.auth.trust_same_host),
            max_frame_bytes: config.limits.max_frame_bytes,
            max_calls: config.limits.max_calls_per_connection,
        };
        let mut listeners: Vec<Box<dyn Listener>> = Vec::new();
        if config.listen.uds.enabled {
            let path = &config.listen.uds.path;
            let listener = UdsListener::bind(path).map_err(|source| ServerError::Bind {
                endpoint: format!("unix://{}", path.display()),
                source,
            })?;
            listeners.push(Box::new(listener));
        }
        if config.listen.tcp.enabled {
            let addr = config.listen.tcp.addr;
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| ServerError::Bind {
                    endpoint: format!("tcp://{addr}"),
                    source,
                })?;
            listeners.push(Box::new(listener));
        }
        Ok(Self {
            gateway: Gateway { ctx: Arc::new(ctx) },
            listeners,
        })
    }

    /// The endpoints the server listens on, as client URLs (with the real
    /// port when port 0 was configured).
    pub fn endpoints(&self) -> Vec<String> {
        self.listeners.iter().map(|l| l.local_endpoint()).collect()
    }

    /// The gateway, for stdio and in-process connections.
    pub fn gateway(&self) -> Gateway {
        self.gateway.clone()
    }

    /// Serves until `shutdown` completes, then stops accepting, persists
    /// every session's events and returns. The Unix socket file is removed.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let mut tasks = JoinSet::new();
        for mut listener in self.listeners {
            let gateway = self.gateway.clone();
            tasks.spawn(async move {
                tracing::info!(endpoint = %listener.local_endpoint(), "listening");
                let mut connections = JoinSet::new();
                loop {
                    tokio::select! {
                        accepted = listener.accept() => match accepted {
                            Ok(conn) => {
                                let gateway = gateway.clone();
                                connections.spawn(async move { gateway.serve(conn).await });
                            }
                            // Out of descriptors and the like: keep serving
                            // the connections we have.
                            Err(e) => tracing::warn!(error = %e, "accept failed"),
                        },
                        Some(_) = connections.join_next(), if !connections.is_empty() => {}
                    }
                }
            });
        }
        shutdown.await;
        tracing::info!("shutting down");
        // Dropping the accept loops closes the listeners (and their
        // connections); then the sessions are written out for a restart.
        tasks.shutdown().await;
        if let Err(e) = self.gateway.ctx.engine.shutdown().await {
            tracing::warn!(error = %e, "sessions not persisted at shutdown");
        }
    }
}
