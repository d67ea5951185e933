//! Listeners, the accept loops and graceful shutdown.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gtl_core::{Engine, EngineConfig, MemoryStore, RedbStore, SessionStore};
use gtl_providers::Registry;
use gtl_transport::{Connection, Listener, TransportError};
use gtl_transport_tcp::TcpListener;
use gtl_transport_uds::UdsListener;
use tokio::task::JoinSet;
use tracing::Instrument as _;

use gtl_service::{Authenticator, CallService, serve_framed};

use crate::config::Config;

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
        source: TransportError,
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

/// A handle to the gateway's call service, for connections that do not
/// come from a listener: stdio, and in-process (embedded) clients.
#[derive(Debug, Clone)]
pub struct Gateway {
    service: Arc<CallService>,
}

impl Gateway {
    /// Serves one framed connection until it closes.
    pub async fn serve(&self, conn: Connection) {
        serve_framed(self.service.clone(), conn).await;
    }

    /// The engine holding the sessions.
    pub fn engine(&self) -> &Engine {
        self.service.engine()
    }

    /// The transport-neutral call service.
    pub fn service(&self) -> &Arc<CallService> {
        &self.service
    }
}

/// A bound, ready server.
#[allow(missing_debug_implementations, reason = "holds listener trait objects")]
pub struct Server {
    gateway: Gateway,
    listeners: Vec<Box<dyn Listener>>,
    shutdown_timeout: Duration,
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
                .with_persist(config.sessions.persist)
                .with_memory_budget(config.sessions.memory_budget_bytes)
                .with_max_sessions(config.sessions.max_sessions),
        );
        match engine.restore().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(sessions = n, "restored sessions for resume"),
            Err(e) => tracing::warn!(error = %e, "persisted sessions could not be restored"),
        }
        let service = CallService::new(
            engine,
            registry,
            Authenticator::new(config.auth.trust_same_host),
            config.connection_limits(),
        );
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
            gateway: Gateway {
                service: Arc::new(service),
            },
            listeners,
            shutdown_timeout: Duration::from_secs(config.limits.shutdown_timeout_secs),
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

    /// Serves until `shutdown` completes, then stops accepting, closes the
    /// connections, persists every session's events and returns, within
    /// `limits.shutdown_timeout_secs` even if the store is slow. The Unix
    /// socket file is removed.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let mut tasks = JoinSet::new();
        for listener in self.listeners {
            let gateway = self.gateway.clone();
            let span = tracing::info_span!("listener", endpoint = %listener.local_endpoint());
            tasks.spawn(accept_loop(listener, gateway).instrument(span));
        }
        shutdown.await;
        tracing::info!("shutting down");
        // Dropping the accept loops closes the listeners and their
        // connections (however much they have unread); then the sessions
        // are written out for a restart.
        tasks.shutdown().await;
        let engine = self.gateway.engine();
        match tokio::time::timeout(self.shutdown_timeout, engine.shutdown()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "sessions not persisted at shutdown"),
            Err(_) => tracing::warn!(
                timeout_secs = self.shutdown_timeout.as_secs(),
                "sessions not all persisted within the shutdown timeout; events already \
                 delivered were stored"
            ),
        }
    }
}

/// How long accepting pauses when the process is out of descriptors or
/// memory: the connections being served can free some meanwhile.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Accept failures are logged at most once per this interval.
const ACCEPT_LOG_INTERVAL: Duration = Duration::from_secs(5);

async fn accept_loop(mut listener: Box<dyn Listener>, gateway: Gateway) {
    tracing::info!("listening");
    let mut connections = JoinSet::new();
    let mut failures = AcceptFailures::default();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => {
                    let gateway = gateway.clone();
                    connections.spawn(async move { gateway.serve(conn).await });
                }
                Err(e) => {
                    failures.record(&e);
                    // Out of descriptors and the like: retrying at once would
                    // spin. Keep serving the connections we have meanwhile.
                    let pause = tokio::time::sleep(ACCEPT_BACKOFF);
                    tokio::pin!(pause);
                    loop {
                        tokio::select! {
                            () = &mut pause => break,
                            Some(_) = connections.join_next(), if !connections.is_empty() => {}
                        }
                    }
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Counts accept failures and logs them once per interval, not per attempt.
#[derive(Debug, Default)]
struct AcceptFailures {
    since_log: u64,
    last_log: Option<Instant>,
}

impl AcceptFailures {
    fn record(&mut self, e: &TransportError) {
        self.since_log += 1;
        let due = self
            .last_log
            .is_none_or(|at| at.elapsed() >= ACCEPT_LOG_INTERVAL);
        if due {
            tracing::warn!(
                error = %e,
                failures = self.since_log,
                "accept failed; pausing {} ms between attempts",
                ACCEPT_BACKOFF.as_millis()
            );
            self.since_log = 0;
            self.last_log = Some(Instant::now());
        }
    }
}
