//! [`HttpGateway`]: one accepted connection, HTTP/1.1 or h2c, served with
//! the routes.

use std::convert::Infallible;
use std::sync::Arc;

use gtl_proto::{Body as FrameBody, Error, Frame, Phase};
use gtl_service::CallService;
use gtl_transport::PeerInfo;
use gtl_transport_grpc::GrpcGateway;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tracing::Instrument as _;

use crate::{grpc, respond, routes};

/// Serves the HTTP routes, and gRPC by content type, over a
/// [`CallService`]. Cheap to clone.
///
/// # Example
///
/// ```no_run
/// use std::sync::Arc;
/// use gtl_core::{Engine, EngineConfig, MemoryStore};
/// use gtl_providers::{EchoProvider, Registry};
/// use gtl_service::{Authenticator, CallService, ConnectionLimits};
/// use gtl_transport_http::HttpGateway;
///
/// # #[tokio::main] async fn main() -> std::io::Result<()> {
/// let mut registry = Registry::new();
/// registry.add(Arc::new(EchoProvider::new()));
/// let engine = Engine::new(Arc::new(MemoryStore::new()), EngineConfig::default());
/// let service = CallService::new(engine, registry, Authenticator::new(true), ConnectionLimits::default());
/// let gateway = HttpGateway::new(Arc::new(service));
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:7300").await?;
/// loop {
///     let (stream, addr) = listener.accept().await?;
///     let peer = gtl_transport_tcp::peer_info(&stream, addr, "http");
///     tokio::spawn(gateway.clone().serve_connection(stream, peer));
/// }
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct HttpGateway {
    pub(crate) service: Arc<CallService>,
    pub(crate) grpc: tonic::service::Routes,
    /// The WebTransport endpoint beside this port, if there is one.
    pub(crate) webtransport: Option<Arc<WebTransportInfo>>,
    /// What `GET /metrics` answers, if the server records metrics.
    pub(crate) metrics: Option<Arc<dyn crate::MetricsRender>>,
}

/// Where the gateway's WebTransport (HTTP/3) endpoint is, and the
/// certificate it presents: what a page needs for
/// `new WebTransport(url, { serverCertificateHashes: [{ algorithm: "sha-256", value }] })`.
///
/// Clones share the certificate hash: a server that rotates its
/// certificate calls [`set_cert_sha256`](Self::set_cert_sha256) once and
/// every route sees the new one.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WebTransportInfo {
    /// The session's URL, e.g. `https://127.0.0.1:7300/gtl/v1/wt`.
    pub url: String,
    /// The UDP port (what `Alt-Svc: h3=":PORT"` advertises).
    pub port: u16,
    cert_sha256: Arc<std::sync::RwLock<[u8; 32]>>,
}

impl WebTransportInfo {
    /// The endpoint bound at `addr` (UDP) serving `path`, presenting the
    /// certificate whose SHA-256 is `cert_sha256`. An unspecified address
    /// (`0.0.0.0`, `::`) is given as the loopback one in the URL.
    pub fn new(addr: std::net::SocketAddr, path: &str, cert_sha256: [u8; 32]) -> Self {
        let ip = match addr.ip() {
            ip if !ip.is_unspecified() => ip,
            std::net::IpAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::IpAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        };
        let authority = std::net::SocketAddr::new(ip, addr.port());
        Self {
            url: format!("https://{authority}{path}"),
            port: addr.port(),
            cert_sha256: Arc::new(std::sync::RwLock::new(cert_sha256)),
        }
    }

    /// The SHA-256 of the certificate presented now (DER).
    pub fn cert_sha256(&self) -> [u8; 32] {
        *self
            .cert_sha256
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The certificate was replaced (rotated or reloaded).
    pub fn set_cert_sha256(&self, sha256: [u8; 32]) {
        *self
            .cert_sha256
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = sha256;
    }

    /// [`cert_sha256`](Self::cert_sha256) as 64 lowercase hex digits.
    pub fn cert_sha256_hex(&self) -> String {
        self.cert_sha256()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The `Alt-Svc` header value advertising HTTP/3 on the port.
    pub fn alt_svc(&self) -> String {
        format!("h3=\":{}\"", self.port)
    }
}

impl HttpGateway {
    /// A gateway calling `service`.
    pub fn new(service: Arc<CallService>) -> Self {
        let grpc = grpc::routes(
            GrpcGateway::new(service.clone()).into_server(),
            service.clone(),
        );
        Self {
            service,
            grpc,
            webtransport: None,
            metrics: None,
        }
    }

    /// Answers `GET /metrics` with what `render` returns (the Prometheus
    /// text format); without it, `/metrics` is `404`.
    pub fn with_metrics(mut self, render: Arc<dyn crate::MetricsRender>) -> Self {
        self.metrics = Some(render);
        self
    }

    /// Serves one connection of a port that carries only the operators'
    /// routes (`/metrics`, `/healthz`, `/readyz`; anything else is `404`),
    /// without credentials: e.g. `[listen.metrics]`, for a Prometheus
    /// elsewhere.
    pub async fn serve_ops_connection<S>(self, stream: S, peer: PeerInfo)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        crate::ops::serve(self, stream, peer).await;
    }

    /// Tells the routes about the WebTransport endpoint beside this port:
    /// every response then advertises it with `Alt-Svc: h3=":PORT"`.
    pub fn with_webtransport(mut self, info: WebTransportInfo) -> Self {
        self.webtransport = Some(Arc::new(info));
        self
    }

    /// The WebTransport endpoint beside this port, if there is one.
    pub fn webtransport(&self) -> Option<&WebTransportInfo> {
        self.webtransport.as_deref()
    }

    /// Serves one accepted connection (HTTP/1.1 or HTTP/2, detected from
    /// its first bytes) until it closes: a TCP stream (h2c), or a TLS
    /// stream the server accepted over one. The connection takes a place
    /// among the service's connections; over the caps, every request on it
    /// is answered `429 RATE_LIMIT`.
    pub async fn serve_connection<S>(self, stream: S, peer: PeerInfo)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let span = tracing::info_span!("http", peer = %peer.addr);
        async move {
            let admission = self.service.admit(&peer);
            let peer = Arc::new(peer);
            let gateway = self.clone();
            let refusal = admission.as_ref().err().cloned();
            let alt_svc = self
                .webtransport
                .as_ref()
                .and_then(|info| http::HeaderValue::from_str(&info.alt_svc()).ok());
            let handler = service_fn(move |request| {
                let gateway = gateway.clone();
                let peer = peer.clone();
                let refusal = refusal.clone();
                let alt_svc = alt_svc.clone();
                async move {
                    let mut response = match refusal {
                        Some(e) => respond::error(&e, ""),
                        None => routes::handle(&gateway, peer, request).await,
                    };
                    if let Some(alt_svc) = &alt_svc {
                        response
                            .headers_mut()
                            .insert(http::header::ALT_SVC, alt_svc.clone());
                    }
                    Ok::<_, Infallible>(response)
                }
            });
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(self.service.limits().handshake_timeout);
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), handler);
            tokio::pin!(connection);
            let draining = self.service.draining();
            let served = tokio::select! {
                served = connection.as_mut() => served,
                () = draining => {
                    // HTTP/2 GOAWAY, or no keep-alive on HTTP/1.1: requests
                    // under way (an SSE stream among them) finish first.
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = served {
                tracing::debug!(error = %e, "http connection ended");
            }
            drop(admission);
        }
        .instrument(span)
        .await;
    }
}

/// The error that replaces an event too large to send.
pub(crate) fn event_error(seq: u64, session_id: &str, e: &gtl_proto::CodecError) -> Frame {
    Frame {
        call_id: 0,
        session_id: session_id.to_owned(),
        seq: 0,
        body: Some(FrameBody::Error(Error {
            code: e.code() as i32,
            message: format!("event {seq} could not be sent: {e}"),
            retryable: false,
            phase: Phase::AfterFirstToken as i32,
            retry_after_ms: 0,
        })),
    }
}
