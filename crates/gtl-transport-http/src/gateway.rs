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
    pub(crate) web: Arc<crate::WebPage>,
}

impl HttpGateway {
    /// A gateway calling `service`.
    pub fn new(service: Arc<CallService>) -> Self {
        let grpc = grpc::routes(GrpcGateway::new(service.clone()).into_server());
        Self {
            service,
            grpc,
            web: Arc::new(crate::WebPage::new()),
        }
    }

    /// Serves the web chat page with what `page` tells it (by default, no
    /// WebTransport).
    pub fn with_web_page(mut self, page: crate::WebPage) -> Self {
        self.web = Arc::new(page);
        self
    }

    /// Serves one accepted connection (HTTP/1.1 or h2c, detected from its
    /// first bytes) until it closes. The connection takes a place among the
    /// service's connections; over the caps, every request on it is answered
    /// `429 RATE_LIMIT`.
    pub async fn serve_connection(self, stream: tokio::net::TcpStream, peer: PeerInfo) {
        let span = tracing::info_span!("http", peer = %peer.addr);
        async move {
            let admission = self.service.admit(&peer);
            let peer = Arc::new(peer);
            let gateway = self.clone();
            let refusal = admission.as_ref().err().cloned();
            let handler = service_fn(move |request| {
                let gateway = gateway.clone();
                let peer = peer.clone();
                let refusal = refusal.clone();
                async move {
                    let response = match refusal {
                        Some(e) => respond::error(&e, ""),
                        None => routes::handle(&gateway, peer, request).await,
                    };
                    Ok::<_, Infallible>(response)
                }
            });
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(self.service.limits().handshake_timeout);
            let served = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), handler)
                .await;
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
