//! Listeners, the accept loops and graceful shutdown.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gtl_core::{Engine, EngineConfig, MemoryStore, RedbStore, SessionStore};
use gtl_providers::Registry;
use gtl_transport::{ACCEPT_BACKOFF, AcceptFailures, Connection, Listener, TransportError};
use gtl_transport_tcp::TcpListener;
use gtl_transport_uds::UdsListener;
use tokio::task::JoinSet;
use tracing::Instrument as _;

use gtl_service::{Authenticator, CallService, serve_framed};
use gtl_transport_http::{HttpGateway, WebTransportInfo};
use gtl_transport_quic::{QuicGateway, WtGateway};

use crate::tls::LocalCertificate;

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
    /// The configuration cannot be served (see [`Config::validate`]).
    #[error(transparent)]
    Config(#[from] crate::ConfigError),
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
    /// The HTTP port (SSE, plain HTTP, WebSocket).
    http: Option<tokio::net::TcpListener>,
    /// Native QUIC, and its certificate's SHA-256 for the endpoint URL.
    quic: Option<(quinn::Endpoint, [u8; 32])>,
    /// HTTP/3 + WebTransport, and its certificate's SHA-256.
    h3: Option<(quinn::Endpoint, [u8; 32])>,
    shutdown_timeout: Duration,
}

impl Server {
    /// Opens the session store, restores persisted sessions and binds the
    /// configured listeners. Must run inside a tokio runtime.
    pub async fn bind(config: &Config, registry: Registry) -> Result<Self, ServerError> {
        config.validate()?;
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
        let service = Arc::new(service);
        let mut http = None;
        if config.listen.http.enabled {
            let addr = config.listen.http.addr;
            let listener =
                tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|e| ServerError::Bind {
                        endpoint: format!("http://{addr}"),
                        source: e.into(),
                    })?;
            http = Some(listener);
        }
        let mut quic = None;
        if config.listen.quic.enabled {
            let gateway = QuicGateway::new(service.clone());
            quic = Some(bind_udp(
                config,
                "quic",
                config.listen.quic.addr,
                |cert, key| gateway.server_config(cert, key),
            )?);
        }
        let mut h3 = None;
        if config.listen.h3.enabled {
            let gateway = WtGateway::new(service.clone());
            h3 = Some(bind_udp(
                config,
                "wt",
                config.listen.h3.addr,
                |cert, key| gateway.server_config(cert, key),
            )?);
        }
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
            gateway: Gateway { service },
            listeners,
            http,
            quic,
            h3,
            shutdown_timeout: Duration::from_secs(config.limits.shutdown_timeout_secs),
        })
    }

    /// The endpoints the server listens on, as client URLs (with the real
    /// port when port 0 was configured).
    pub fn endpoints(&self) -> Vec<String> {
        let http = self.http.iter().map(|l| {
            l.local_addr()
                .map_or_else(|_| "http://?".into(), |a| format!("http://{a}"))
        });
        let quic = self.quic.iter().map(|(endpoint, sha256)| {
            endpoint.local_addr().map_or_else(
                |_| "quic://?".into(),
                |a| format!("quic://{a}?cert_sha256={}", crate::tls::hex(sha256)),
            )
        });
        let wt = self.h3.iter().map(|(endpoint, sha256)| {
            endpoint.local_addr().map_or_else(
                |_| "wt://?".into(),
                |a| {
                    format!(
                        "wt://{a}{}?cert_sha256={}",
                        gtl_transport_quic::WT_PATH,
                        crate::tls::hex(sha256)
                    )
                },
            )
        });
        self.listeners
            .iter()
            .map(|l| l.local_endpoint())
            .chain(http)
            .chain(quic)
            .chain(wt)
            .collect()
    }

    /// The WebTransport endpoint (its `https://` URL for browsers) and its
    /// certificate's SHA-256, when HTTP/3 is on: what the HTTP port's routes
    /// are told (and advertise with `Alt-Svc`), for a page to pass to
    /// `new WebTransport(url, { serverCertificateHashes })`.
    pub fn webtransport(&self) -> Option<WebTransportInfo> {
        let (endpoint, sha256) = self.h3.as_ref()?;
        let addr = endpoint.local_addr().ok()?;
        Some(WebTransportInfo::new(
            addr,
            gtl_transport_quic::WT_PATH,
            *sha256,
        ))
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
        let webtransport = self.webtransport();
        let mut tasks = JoinSet::new();
        for listener in self.listeners {
            let span = tracing::info_span!("listener", endpoint = %listener.local_endpoint());
            let acceptor = Framed {
                listener,
                gateway: self.gateway.clone(),
            };
            tasks.spawn(accept_loop(acceptor).instrument(span));
        }
        if let Some(listener) = self.http {
            let endpoint = listener
                .local_addr()
                .map_or_else(|_| "http://?".into(), |a| format!("http://{a}"));
            let span = tracing::info_span!("listener", %endpoint);
            let mut gateway = HttpGateway::new(self.gateway.service.clone());
            if let Some(info) = webtransport {
                gateway = gateway.with_webtransport(info);
            }
            let acceptor = Http { listener, gateway };
            tasks.spawn(accept_loop(acceptor).instrument(span));
        }
        let quic = self.quic.map(|(endpoint, _)| endpoint);
        if let Some(endpoint) = &quic {
            let gateway = QuicGateway::new(self.gateway.service.clone());
            let span = tracing::info_span!("listener", endpoint = %udp_url("quic", endpoint));
            tasks.spawn(gateway.serve(endpoint.clone()).instrument(span));
        }
        let h3 = self.h3.map(|(endpoint, _)| endpoint);
        if let Some(endpoint) = &h3 {
            let gateway = WtGateway::new(self.gateway.service.clone());
            let span = tracing::info_span!("listener", endpoint = %udp_url("wt", endpoint));
            tasks.spawn(gateway.serve(endpoint.clone()).instrument(span));
        }
        shutdown.await;
        tracing::info!("shutting down");
        for endpoint in quic.iter().chain(&h3) {
            endpoint.close(
                gtl_transport_quic::close_code::DONE.into(),
                b"server shutting down",
            );
        }
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

/// Binds a UDP listener (native QUIC, or HTTP/3 for WebTransport) at
/// `addr` with the data dir's certificate (created on first start), whose
/// SHA-256 comes back for the endpoint URL.
fn bind_udp(
    config: &Config,
    scheme: &str,
    addr: std::net::SocketAddr,
    server_config: impl FnOnce(
        Vec<rustls::pki_types::CertificateDer<'static>>,
        rustls::pki_types::PrivateKeyDer<'static>,
    ) -> Result<quinn::ServerConfig, gtl_transport_quic::QuicError>,
) -> Result<(quinn::Endpoint, [u8; 32]), ServerError> {
    let bind_error = |source: TransportError| ServerError::Bind {
        endpoint: format!("{scheme}://{addr}"),
        source,
    };
    let other = |message: String| bind_error(TransportError::Io(std::io::Error::other(message)));
    let certificate =
        LocalCertificate::load_or_create(&config.data_dir).map_err(|e| other(e.to_string()))?;
    let server_config =
        server_config(vec![certificate.cert], certificate.key).map_err(|e| other(e.to_string()))?;
    let endpoint =
        quinn::Endpoint::server(server_config, addr).map_err(|e| bind_error(e.into()))?;
    Ok((endpoint, certificate.sha256))
}

fn udp_url(scheme: &str, endpoint: &quinn::Endpoint) -> String {
    endpoint
        .local_addr()
        .map_or_else(|_| format!("{scheme}://?"), |a| format!("{scheme}://{a}"))
}

/// A listener and what serves its connections.
trait Acceptor: Send + 'static {
    /// Accepts one connection and returns the task that serves it.
    fn accept(&mut self) -> impl Future<Output = Result<Serve, String>> + Send;
}

type Serve = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// A framed transport (Unix socket, TCP).
struct Framed {
    listener: Box<dyn Listener>,
    gateway: Gateway,
}

impl Acceptor for Framed {
    async fn accept(&mut self) -> Result<Serve, String> {
        let conn = self.listener.accept().await.map_err(|e| e.to_string())?;
        let gateway = self.gateway.clone();
        Ok(Box::pin(async move { gateway.serve(conn).await }))
    }
}

/// The HTTP port.
struct Http {
    listener: tokio::net::TcpListener,
    gateway: HttpGateway,
}

impl Acceptor for Http {
    async fn accept(&mut self) -> Result<Serve, String> {
        let (stream, addr) = self.listener.accept().await.map_err(|e| e.to_string())?;
        let _ = stream.set_nodelay(true);
        let peer = gtl_transport_tcp::peer_info(&stream, addr, "http");
        Ok(Box::pin(
            self.gateway.clone().serve_connection(stream, peer),
        ))
    }
}

async fn accept_loop(mut acceptor: impl Acceptor) {
    tracing::info!("listening");
    let mut connections = JoinSet::new();
    let mut failures = AcceptFailures::default();
    loop {
        tokio::select! {
            accepted = acceptor.accept() => match accepted {
                Ok(serve) => {
                    connections.spawn(serve);
                }
                Err(e) => {
                    log_accept_failure(&mut failures, &e);
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

/// Logs an accept failure when one is due (see [`AcceptFailures`]).
fn log_accept_failure(failures: &mut AcceptFailures, e: &str) {
    if let Some(count) = failures.record() {
        tracing::warn!(
            error = %e,
            failures = count,
            "accept failed; pausing {} ms between attempts",
            ACCEPT_BACKOFF.as_millis()
        );
    }
}
