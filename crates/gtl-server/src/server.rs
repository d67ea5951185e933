//! Listeners, the accept loops and graceful shutdown.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gtl_core::counters::Counters;
use gtl_core::{Engine, EngineConfig, MemoryStore, RedbStore, SessionStore};
use gtl_providers::Registry;
use gtl_store_redis::{RedisConfig, RedisStore};
use gtl_transport::{ACCEPT_BACKOFF, AcceptFailures, Connection, Listener, TransportError};
use gtl_transport_tcp::TcpListener;
use gtl_transport_uds::UdsListener;
use tokio::task::JoinSet;
use tracing::Instrument as _;

use gtl_service::{CallService, serve_framed};
use gtl_transport_http::{HttpGateway, WebTransportInfo};
use gtl_transport_quic::{QuicGateway, WtGateway};

use crate::metrics::PrometheusMetrics;
use crate::tls::ServerIdentity;

use crate::config::{Config, SessionBackend};

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
    /// `[auth]` could not be set up (a key source missing or unusable).
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthConfigError),
    /// The identity that opens callers' provider keys is unusable.
    #[error("provider-key identity: {0}")]
    ProviderKeys(String),
    /// The local token's key could not be read or created.
    #[error("local token: {0}")]
    LocalToken(String),
    /// The TLS certificate could not be created or loaded.
    #[error("TLS: {0}")]
    Tls(String),
    /// The configuration cannot be served (see [`Config::validate`]).
    #[error(transparent)]
    Config(#[from] crate::ConfigError),
    /// The response cache could not be opened.
    #[error("cannot open the response cache {path}: {source}")]
    Cache {
        /// The database file.
        path: PathBuf,
        /// Why it failed.
        source: gtl_router::CacheError,
    },
    /// `[[routes]]` or `[router]` cannot be set up (an unknown provider,
    /// a duplicate name).
    #[error("routes: {0}")]
    Routes(#[from] gtl_router::RouterError),
    /// The Redis/Valkey session store could not be reached.
    #[error(
        "cannot reach the session store at {server}: {message} (is Redis or Valkey running there, \
         and the URL's password right?)"
    )]
    SharedStore {
        /// The server, without credentials.
        server: String,
        /// Why.
        message: String,
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

    /// Waits until the audit records of the calls so far are written:
    /// what stopping does last.
    pub async fn flush_audit(&self) {
        let service = self.service.clone();
        let _ = tokio::task::spawn_blocking(move || service.flush_audit()).await;
    }
}

/// A bound, ready server.
#[allow(missing_debug_implementations, reason = "holds listener trait objects")]
pub struct Server {
    gateway: Gateway,
    listeners: Vec<Box<dyn Listener>>,
    /// The HTTP port (SSE, plain HTTP, WebSocket, gRPC), and its TLS when
    /// `[listen.http] tls` is set.
    http: Option<(tokio::net::TcpListener, Option<tokio_rustls::TlsAcceptor>)>,
    /// The TCP port over TLS (`[listen.tcp] tls`).
    tcp_tls: Option<(tokio::net::TcpListener, tokio_rustls::TlsAcceptor)>,
    /// Native QUIC.
    quic: Option<quinn::Endpoint>,
    /// HTTP/3 + WebTransport.
    h3: Option<quinn::Endpoint>,
    /// The certificate every TLS listener presents, when one is on.
    identity: Option<Arc<ServerIdentity>>,
    /// Renewed while the server runs, when it writes one.
    local_token: Option<crate::local_token::LocalToken>,
    /// The configuration it was bound with, for reloads.
    config: Config,
    drain_timeout: Duration,
    /// The process's metrics recorder, when this server serves `/metrics`.
    metrics: Option<Arc<PrometheusMetrics>>,
    /// The `[listen.metrics]` port.
    ops: Option<tokio::net::TcpListener>,
    shutdown_timeout: Duration,
}

impl Server {
    /// Opens the session store, restores persisted sessions and binds the
    /// configured listeners. Must run inside a tokio runtime.
    pub async fn bind(config: &Config, registry: Registry) -> Result<Self, ServerError> {
        config.validate()?;
        // Allowed, but said plainly: cleartext reachable from the network.
        for (listener, enabled, addr, tls) in [
            (
                "tcp",
                config.listen.tcp.enabled,
                config.listen.tcp.addr,
                config.listen.tcp.tls,
            ),
            (
                "http",
                config.listen.http.enabled,
                config.listen.http.addr,
                config.listen.http.tls,
            ),
        ] {
            if enabled && !tls && !addr.ip().is_loopback() {
                tracing::warn!(
                    %addr,
                    "[listen.{listener}] serves cleartext beyond this host (insecure = true): only \
                     a TLS-terminating proxy on this host should reach it; set tls = true otherwise"
                );
            }
        }
        let stores = session_store(config).await?;
        let engine = Engine::new(
            stores.sessions,
            EngineConfig::default()
                .with_session(config.session_config())
                .with_persist(config.sessions.persists())
                .with_memory_budget(config.sessions.memory_budget_bytes)
                .with_max_sessions(config.sessions.max_sessions),
        );
        match engine.restore().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(sessions = n, "restored sessions for resume"),
            Err(e) => tracing::warn!(error = %e, "persisted sessions could not be restored"),
        }
        let mut router_builder = router_builder(config, registry, None)?;
        if let Some(counters) = &stores.counters {
            router_builder = router_builder.counters(counters.clone());
        }
        let router = built(router_builder)?;
        let listen = &config.listen;
        // The loopback network listeners trust no peer without a token, so
        // the server's own user gets one.
        let local_token = if config.auth.local_token
            && (listen.tcp.enabled
                || listen.http.enabled
                || listen.quic.enabled
                || listen.h3.enabled)
        {
            Some(
                crate::local_token::LocalToken::set_up(&config.data_dir)
                    .map_err(ServerError::LocalToken)?,
            )
        } else {
            None
        };
        let service = CallService::new(
            engine,
            router,
            crate::auth::authenticator(config, local_token.as_ref()).await?,
            config.connection_limits(),
        );
        let service = match stores.counters {
            Some(counters) => service.with_shared_counters(counters),
            None => service,
        };
        let service = match crate::audit::sink(config) {
            Some(sink) => service.with_audit(sink),
            None => service,
        };
        // Calls get spans when they are exported (OTEL_EXPORTER_OTLP_ENDPOINT
        // is set), parented by a request's `traceparent`.
        let service = if crate::telemetry::requested() {
            service.with_trace_parent(crate::telemetry::parent_link())
        } else {
            service
        };
        // Callers' own provider keys arrive in tokens, so only with tokens.
        let service = if config.auth.verifies_tokens() {
            let keys = crate::provider_keys::ProviderKeys::load_or_create(&config.data_dir)
                .map_err(ServerError::ProviderKeys)?;
            service.with_key_opener(Arc::new(keys))
        } else {
            service
        };
        let service = Arc::new(service);
        let metrics = if listen.http.enabled || listen.metrics.enabled {
            PrometheusMetrics::install()
        } else {
            None
        };
        let mut ops = None;
        if listen.metrics.enabled {
            let addr = listen.metrics.addr;
            let listener =
                tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|e| ServerError::Bind {
                        endpoint: format!("http://{addr}/metrics"),
                        source: e.into(),
                    })?;
            ops = Some(listener);
        }
        let identity = if listen.quic.enabled
            || listen.h3.enabled
            || (listen.tcp.enabled && listen.tcp.tls)
            || (listen.http.enabled && listen.http.tls)
        {
            Some(identity(config)?)
        } else {
            None
        };
        let tls_acceptor = |alpn: &[&[u8]]| {
            let identity = identity.as_ref().expect("created for every TLS listener");
            tokio_rustls::TlsAcceptor::from(Arc::new(identity.server_config(alpn)))
        };
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
            let tls = config
                .listen
                .http
                .tls
                .then(|| tls_acceptor(&[b"h2", b"http/1.1"]));
            http = Some((listener, tls));
        }
        let mut quic = None;
        if config.listen.quic.enabled {
            let gateway = QuicGateway::new(service.clone());
            quic = Some(bind_udp(
                "quic",
                config.listen.quic.addr,
                gateway.server_config_with(identity.clone().expect("created for QUIC")),
            )?);
        }
        let mut h3 = None;
        if config.listen.h3.enabled {
            let gateway = WtGateway::new(service.clone());
            h3 = Some(bind_udp(
                "wt",
                config.listen.h3.addr,
                gateway.server_config_with(identity.clone().expect("created for HTTP/3")),
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
        let mut tcp_tls = None;
        if config.listen.tcp.enabled && config.listen.tcp.tls {
            let addr = config.listen.tcp.addr;
            let listener =
                tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|e| ServerError::Bind {
                        endpoint: format!("tcps://{addr}"),
                        source: e.into(),
                    })?;
            tcp_tls = Some((listener, tls_acceptor(&[gtl_transport_quic::ALPN])));
        } else if config.listen.tcp.enabled {
            let addr = config.listen.tcp.addr;
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| ServerError::Bind {
                    endpoint: format!("tcp://{addr}"),
                    source,
                })?;
            listeners.push(Box::new(listener));
        }
        // With listeners, ready once they accept (see `run`).
        if !listeners.is_empty()
            || http.is_some()
            || tcp_tls.is_some()
            || quic.is_some()
            || h3.is_some()
            || ops.is_some()
        {
            service.set_listening(false);
        }
        Ok(Self {
            gateway: Gateway { service },
            listeners,
            http,
            tcp_tls,
            quic,
            h3,
            identity,
            local_token,
            config: config.clone(),
            drain_timeout: Duration::from_secs(config.limits.drain_secs),
            metrics,
            ops,
            shutdown_timeout: Duration::from_secs(config.limits.shutdown_timeout_secs),
        })
    }

    /// The endpoints the server listens on, as client URLs (with the real
    /// port when port 0 was configured).
    pub fn endpoints(&self) -> Vec<String> {
        // A client pins the certificate by this, when it trusts no CA for it.
        let pin = self
            .identity
            .as_ref()
            .map(|identity| format!("?cert_sha256={}", crate::tls::hex(&identity.sha256())))
            .unwrap_or_default();
        let url = |scheme: &str, addr: std::io::Result<std::net::SocketAddr>, rest: &str| {
            addr.map_or_else(
                |_| format!("{scheme}://?"),
                |a| format!("{scheme}://{a}{rest}"),
            )
        };
        let http = self.http.iter().map(|(listener, tls)| match tls {
            Some(_) => url("https", listener.local_addr(), &pin),
            None => url("http", listener.local_addr(), ""),
        });
        let tcp_tls = self
            .tcp_tls
            .iter()
            .map(|(listener, _)| url("tcps", listener.local_addr(), &pin));
        let quic = self
            .quic
            .iter()
            .map(|endpoint| url("quic", endpoint.local_addr(), &pin));
        let wt_rest = format!("{}{pin}", gtl_transport_quic::WT_PATH);
        let wt = self
            .h3
            .iter()
            .map(|endpoint| url("wt", endpoint.local_addr(), &wt_rest));
        self.listeners
            .iter()
            .map(|l| l.local_endpoint())
            .chain(tcp_tls)
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
        let endpoint = self.h3.as_ref()?;
        let addr = endpoint.local_addr().ok()?;
        let sha256 = self.identity.as_ref()?.sha256();
        Some(WebTransportInfo::new(
            addr,
            gtl_transport_quic::WT_PATH,
            sha256,
        ))
    }

    /// The certificate the TLS listeners present, when one is on: its
    /// hash, and [`ServerIdentity::refresh`] (which the server also runs
    /// every [`REFRESH_EVERY`](crate::tls::REFRESH_EVERY)).
    pub fn tls_identity(&self) -> Option<Arc<ServerIdentity>> {
        self.identity.clone()
    }

    /// The local token's file (`<data dir>/local.token`), when the server
    /// writes one: the credential of its own user's tools on the loopback
    /// network listeners.
    pub fn local_token_path(&self) -> Option<&std::path::Path> {
        self.local_token.as_ref().map(|local| local.path())
    }

    /// Applies changed configurations to this server once it runs
    /// (SIGHUP, or the file changing: `gtl-server` does both).
    pub fn reloader(&self) -> crate::reload::Reloader {
        crate::reload::Reloader::new(
            self.gateway.service.clone(),
            self.local_token.clone(),
            self.identity.clone(),
            self.webtransport(),
            self.config.clone(),
        )
    }

    /// The `[listen.metrics]` port's address, when it is on.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.ops.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The gateway, for stdio and in-process connections.
    pub fn gateway(&self) -> Gateway {
        self.gateway.clone()
    }

    /// Serves until `shutdown` completes, then drains (see
    /// [`run_draining`](Self::run_draining)) with no way to cut it short.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        self.run_draining(shutdown, std::future::pending()).await;
    }

    /// Serves until `drain` completes; then drains: stops accepting, tells
    /// every connection (`status {state: "draining"}`, HTTP/2 GOAWAY),
    /// refuses new calls and lets running ones finish, for at most
    /// `limits.drain_secs` or until `stop` completes. Then it closes what
    /// is left, persists every session's events and returns, within
    /// `limits.shutdown_timeout_secs` even if the store is slow. The Unix
    /// socket file is removed.
    pub async fn run_draining(
        self,
        drain: impl Future<Output = ()>,
        stop: impl Future<Output = ()>,
    ) {
        let webtransport = self.webtransport();
        let service = self.gateway.service.clone();
        // The listeners were bound by `bind` and accept from here on; set
        // first, so no probe they answer can see them not ready.
        self.gateway.service.set_listening(true);
        let mut tasks = JoinSet::new();
        // Accept loops end once drained; the server's own tasks do not.
        let mut accepting = JoinSet::new();
        for listener in self.listeners {
            let span = tracing::info_span!("listener", endpoint = %listener.local_endpoint());
            let acceptor = Framed {
                listener,
                gateway: self.gateway.clone(),
            };
            accepting.spawn(accept_loop(acceptor, service.draining()).instrument(span));
        }
        if let Some((listener, tls)) = self.http {
            let scheme = if tls.is_some() { "https" } else { "http" };
            let endpoint = listener
                .local_addr()
                .map_or_else(|_| format!("{scheme}://?"), |a| format!("{scheme}://{a}"));
            let span = tracing::info_span!("listener", %endpoint);
            let mut gateway = HttpGateway::new(self.gateway.service.clone());
            if let Some(info) = &webtransport {
                gateway = gateway.with_webtransport(info.clone());
            }
            if let Some(metrics) = &self.metrics {
                gateway = gateway.with_metrics(metrics.clone());
            }
            let acceptor = Http {
                listener,
                tls,
                gateway,
                handshake_timeout: self.gateway.service.limits().handshake_timeout,
            };
            accepting.spawn(accept_loop(acceptor, service.draining()).instrument(span));
        }
        if let Some((listener, tls)) = self.tcp_tls {
            let endpoint = listener
                .local_addr()
                .map_or_else(|_| "tcps://?".into(), |a| format!("tcps://{a}"));
            let span = tracing::info_span!("listener", %endpoint);
            let acceptor = TlsFramed {
                listener,
                tls,
                gateway: self.gateway.clone(),
                handshake_timeout: self.gateway.service.limits().handshake_timeout,
            };
            accepting.spawn(accept_loop(acceptor, service.draining()).instrument(span));
        }
        if let Some(listener) = self.ops {
            let endpoint = listener
                .local_addr()
                .map_or_else(|_| "http://?".into(), |a| format!("http://{a}/metrics"));
            let span = tracing::info_span!("listener", %endpoint);
            let mut gateway = HttpGateway::new(self.gateway.service.clone());
            if let Some(metrics) = &self.metrics {
                gateway = gateway.with_metrics(metrics.clone());
            }
            // Probes and scrapes go on through the drain: not ready, not gone.
            let serving = accept_loop(Ops { listener, gateway }, std::future::pending());
            tasks.spawn(serving.instrument(span));
        }
        if let Some(metrics) = self.metrics.clone() {
            tasks.spawn(async move {
                let mut ticks = tokio::time::interval(crate::metrics::UPKEEP_EVERY);
                loop {
                    ticks.tick().await;
                    metrics.upkeep();
                }
            });
        }
        if let Some(identity) = self.identity.clone() {
            tasks.spawn(refresh_identity(identity, webtransport));
        }
        if let Some(local) = self.local_token {
            tasks.spawn(local.renew());
        }
        let quic = self.quic;
        if let Some(endpoint) = &quic {
            let gateway = QuicGateway::new(self.gateway.service.clone());
            let span = tracing::info_span!("listener", endpoint = %udp_url("quic", endpoint));
            tasks.spawn(gateway.serve(endpoint.clone()).instrument(span));
        }
        let h3 = self.h3;
        if let Some(endpoint) = &h3 {
            let gateway = WtGateway::new(self.gateway.service.clone());
            let span = tracing::info_span!("listener", endpoint = %udp_url("wt", endpoint));
            tasks.spawn(gateway.serve(endpoint.clone()).instrument(span));
        }
        tokio::pin!(stop);
        tokio::select! {
            () = drain => {}
            () = &mut stop => {}
        }
        service.drain();
        // Not ready while draining: a balancer's probe sends traffic elsewhere.
        service.set_listening(false);
        let drained = async {
            while accepting.join_next().await.is_some() {}
            service.drained().await;
        };
        tokio::select! {
            () = drained => tracing::info!("drained: every call finished"),
            () = tokio::time::sleep(self.drain_timeout) => tracing::info!(
                drain_secs = self.drain_timeout.as_secs(),
                "drain deadline reached: the calls still running are cut (resumable after a \
                 restart)"
            ),
            () = &mut stop => tracing::info!("stopping at once"),
        }
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
        accepting.shutdown().await;
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
        self.gateway.flush_audit().await;
    }
}

/// The certificate of the TLS listeners: `[tls] cert` and `key`, or the
/// data dir's self-signed one (created on first start).
fn identity(config: &Config) -> Result<Arc<ServerIdentity>, ServerError> {
    let identity = match (&config.tls.cert, &config.tls.key) {
        (Some(cert), Some(key)) => ServerIdentity::from_files(cert, key),
        _ => ServerIdentity::self_signed(&config.data_dir),
    };
    identity.map_err(|e| ServerError::Tls(e.to_string()))
}

/// Binds a UDP listener (native QUIC, or HTTP/3 for WebTransport) at
/// `addr` with `server_config`.
fn bind_udp(
    scheme: &str,
    addr: std::net::SocketAddr,
    server_config: Result<quinn::ServerConfig, gtl_transport_quic::QuicError>,
) -> Result<quinn::Endpoint, ServerError> {
    let bind_error = |source: TransportError| ServerError::Bind {
        endpoint: format!("{scheme}://{addr}"),
        source,
    };
    let server_config = server_config
        .map_err(|e| bind_error(TransportError::Io(std::io::Error::other(e.to_string()))))?;
    quinn::Endpoint::server(server_config, addr).map_err(|e| bind_error(e.into()))
}

/// Rotates or reloads the certificate while the server runs; the TLS
/// listeners resolve it per handshake, the web page learns the new hash.
async fn refresh_identity(identity: Arc<ServerIdentity>, webtransport: Option<WebTransportInfo>) {
    let mut ticks = tokio::time::interval(crate::tls::REFRESH_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match identity.refresh(std::time::SystemTime::now()) {
            Ok(true) => {
                if let Some(info) = &webtransport {
                    info.set_cert_sha256(identity.sha256());
                }
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "the TLS certificate could not be replaced; the current one stays")
            }
        }
    }
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

/// The HTTP port, cleartext (h2c) or TLS.
struct Http {
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    gateway: HttpGateway,
    handshake_timeout: Duration,
}

impl Acceptor for Http {
    async fn accept(&mut self) -> Result<Serve, String> {
        let (stream, addr) = self.listener.accept().await.map_err(|e| e.to_string())?;
        let _ = stream.set_nodelay(true);
        let peer = gtl_transport_tcp::peer_info(&stream, addr, "http");
        let gateway = self.gateway.clone();
        let Some(tls) = self.tls.clone() else {
            return Ok(Box::pin(gateway.serve_connection(stream, peer)));
        };
        // The handshake runs in the connection's task, so a slow client
        // never holds up the accept loop.
        let timeout = self.handshake_timeout;
        Ok(Box::pin(async move {
            if let Some(stream) = tls_handshake(&tls, stream, timeout, &peer).await {
                gateway.serve_connection(stream, peer).await;
            }
        }))
    }
}

/// The `[listen.metrics]` port: the operators' routes only.
struct Ops {
    listener: tokio::net::TcpListener,
    gateway: HttpGateway,
}

impl Acceptor for Ops {
    async fn accept(&mut self) -> Result<Serve, String> {
        let (stream, addr) = self.listener.accept().await.map_err(|e| e.to_string())?;
        let peer = gtl_transport_tcp::peer_info(&stream, addr, "metrics");
        let gateway = self.gateway.clone();
        Ok(Box::pin(gateway.serve_ops_connection(stream, peer)))
    }
}

/// The TCP port over TLS: the framed protocol inside the TLS stream.
struct TlsFramed {
    listener: tokio::net::TcpListener,
    tls: tokio_rustls::TlsAcceptor,
    gateway: Gateway,
    handshake_timeout: Duration,
}

impl Acceptor for TlsFramed {
    async fn accept(&mut self) -> Result<Serve, String> {
        let (stream, addr) = self.listener.accept().await.map_err(|e| e.to_string())?;
        let _ = stream.set_nodelay(true);
        let peer = gtl_transport_tcp::peer_info(&stream, addr, "tcp");
        let (tls, gateway, timeout) = (
            self.tls.clone(),
            self.gateway.clone(),
            self.handshake_timeout,
        );
        Ok(Box::pin(async move {
            if let Some(stream) = tls_handshake(&tls, stream, timeout, &peer).await {
                let (read, write) = tokio::io::split(stream);
                let conn =
                    gtl_transport::stream_connection(read, write, peer, gtl_proto::Encoding::Json);
                gateway.serve(conn).await;
            }
        }))
    }
}

/// The server side of a TLS handshake, within `timeout`; `None` (logged)
/// when it fails.
async fn tls_handshake(
    tls: &tokio_rustls::TlsAcceptor,
    stream: tokio::net::TcpStream,
    timeout: Duration,
    peer: &gtl_transport::PeerInfo,
) -> Option<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
    match tokio::time::timeout(timeout, tls.accept(stream)).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(e)) => {
            tracing::debug!(peer = %peer.addr, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(peer = %peer.addr, "TLS handshake timed out");
            None
        }
    }
}

/// Accepts until `draining` resolves, then closes the listener and returns
/// once its connections have ended.
async fn accept_loop(acceptor: impl Acceptor, draining: impl Future<Output = ()>) {
    tracing::info!("listening");
    let mut acceptor = Some(acceptor);
    let mut connections = JoinSet::new();
    let mut failures = AcceptFailures::default();
    tokio::pin!(draining);
    loop {
        if acceptor.is_none() && connections.is_empty() {
            return;
        }
        tokio::select! {
            () = &mut draining, if acceptor.is_some() => {
                // The port closes (the Unix socket file goes) now: clients
                // connecting meet a refusal and try their next endpoint.
                acceptor = None;
            }
            accepted = accept_some(&mut acceptor) => match accepted {
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

/// `acceptor`'s next connection; never, once it is gone.
async fn accept_some(acceptor: &mut Option<impl Acceptor>) -> Result<Serve, String> {
    match acceptor {
        Some(acceptor) => acceptor.accept().await,
        None => std::future::pending().await,
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

/// The router `config` describes over `registry`; when it replaces `old`
/// (a reload), with `old`'s target health, budget spend and response cache.
pub(crate) fn router(
    config: &Config,
    registry: Registry,
    old: Option<&gtl_router::Router>,
) -> Result<gtl_router::Router, ServerError> {
    built(router_builder(config, registry, old)?)
}

/// The router `config` describes, carrying `old`'s state, not built yet.
fn router_builder(
    config: &Config,
    registry: Registry,
    old: Option<&gtl_router::Router>,
) -> Result<gtl_router::RouterBuilder, ServerError> {
    let mut router = gtl_router::Router::builder(registry)
        .config(config.router.clone())
        .routes(config.routes.iter().cloned());
    if let Some(old) = old {
        router = router.carrying_state_of(old);
    }
    if config.router.cache.enabled {
        // The cache's file is open already when a reload keeps it on.
        let cache = match old.and_then(|old| old.response_cache()) {
            Some(cache) => cache.clone(),
            None => Arc::new(response_cache(config)?),
        };
        router = router.cache(cache);
    }
    Ok(router)
}

fn built(router: gtl_router::RouterBuilder) -> Result<gtl_router::Router, ServerError> {
    let router = router.build()?;
    for route in router.route_names() {
        tracing::info!(route, "route configured");
    }
    Ok(router)
}

/// Opens the store `[sessions]` names.
async fn session_store(config: &Config) -> Result<Stores, ServerError> {
    let local = |store: Arc<dyn SessionStore>| Stores {
        sessions: store,
        counters: None,
    };
    Ok(match config.sessions.store()? {
        SessionBackend::Memory => local(Arc::new(MemoryStore::new())),
        SessionBackend::Redb => {
            let path = config.data_dir.join("sessions.redb");
            let opened = std::fs::create_dir_all(&config.data_dir)
                .map_err(|e| e.to_string())
                .and_then(|()| RedbStore::open(&path).map_err(|e| e.to_string()));
            local(Arc::new(
                opened.map_err(|message| ServerError::Store { path, message })?,
            ))
        }
        SessionBackend::Redis(url) => {
            // rediss:// needs a process-wide rustls provider; the server's
            // listeners use ring too.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let sessions = &config.sessions;
            // Keys outlive the resume window a little, so a session a
            // replica still holds is never gone from the store first.
            let ttl = Duration::from_secs(sessions.resume_window_secs) + Duration::from_secs(30);
            let mut settings = RedisConfig::new(url.clone())
                .with_ttl(ttl)
                .with_lease(Duration::from_millis(sessions.lease_ms.max(100)));
            if let Some(ca) = &sessions.redis_ca_file {
                settings = settings.with_ca_file(ca);
            }
            let store = RedisStore::connect(settings).await.map_err(|e| {
                let reason = std::error::Error::source(&e).map_or(e.to_string(), |s| s.to_string());
                ServerError::SharedStore {
                    // The URL's password stays out of logs.
                    server: url.rsplit('@').next().unwrap_or_default().to_owned(),
                    message: reason,
                }
            })?;
            tracing::info!(
                replica = store.replica(),
                "sessions and limits shared through Redis"
            );
            let store = Arc::new(store);
            Stores {
                sessions: store.clone(),
                counters: Some(Counters::shared(store)),
            }
        }
    })
}

/// The stores `[sessions]` names: the sessions', and with a shared backend
/// the limits' and budgets' counters every replica adds to.
struct Stores {
    sessions: Arc<dyn SessionStore>,
    counters: Option<Arc<Counters>>,
}

/// The response cache: in the data dir when sessions persist, else in
/// memory (nothing written for an embedded or ephemeral gateway).
fn response_cache(config: &Config) -> Result<gtl_router::ResponseCache, ServerError> {
    let settings = config.router.cache;
    if !config.sessions.persists() {
        return gtl_router::ResponseCache::in_memory(settings).map_err(|source| {
            ServerError::Cache {
                path: PathBuf::from(":memory:"),
                source,
            }
        });
    }
    let path = config.data_dir.join("cache.redb");
    gtl_router::ResponseCache::open(&path, settings)
        .map_err(|source| ServerError::Cache { path, source })
}
