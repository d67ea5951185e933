//! The WebTransport server: [`WtGateway`] accepts HTTP/3 connections,
//! checks each WebTransport `CONNECT` (path, `Origin`, admission), and
//! serves the session exactly as a native QUIC connection
//! ([`session`](crate::session)): control stream, then a stream per call.

use std::net::SocketAddr;
use std::sync::Arc;

use gtl_service::CallService;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tracing::Instrument as _;
use wtransport::endpoint::IncomingSessionFuture;

use crate::QuicError;
use crate::conn::WebTransport;

/// Serves GTL over WebTransport (HTTP/3) on a [`CallService`], for
/// browsers (`new WebTransport("https://127.0.0.1:7300/gtl/v1/wt", …)`)
/// and [`WtConnector`](crate::WtConnector).
///
/// A session is accepted only at [`WT_PATH`](crate::WT_PATH) (other paths
/// get `404`). A `CONNECT` whose `Origin` is a page not on this host makes
/// the peer a remote one, which needs a credential in its `hello`, as on
/// the HTTP port's routes; one over the connection caps gets `429`.
#[derive(Debug, Clone)]
pub struct WtGateway {
    service: Arc<CallService>,
}

impl WtGateway {
    /// A gateway for `service`.
    pub fn new(service: Arc<CallService>) -> Self {
        Self { service }
    }

    /// A quinn server configuration for HTTP/3 presenting `cert_chain`
    /// (TLS 1.3, ALPN `h3`, no 0-RTT), with GTL's keep-alive and idle
    /// timeout and room for the service's calls per session. Bind it with
    /// [`quinn::Endpoint::server`] and pass the endpoint to
    /// [`serve`](Self::serve).
    ///
    /// Browsers accept a certificate pinned by `serverCertificateHashes`
    /// only if it is ECDSA P-256 (or another non-RSA key) and valid for at
    /// most 14 days.
    pub fn server_config(
        &self,
        cert_chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<quinn::ServerConfig, QuicError> {
        self.server_config_with(crate::tls::single_cert(cert_chain, key)?)
    }

    /// [`server_config`](Self::server_config) presenting whatever
    /// `certificates` resolves at each handshake: a certificate rotated
    /// there is used by the next connection, with no restart.
    pub fn server_config_with(
        &self,
        certificates: Arc<dyn rustls::server::ResolvesServerCert>,
    ) -> Result<quinn::ServerConfig, QuicError> {
        let alpn = wtransport::tls::WEBTRANSPORT_ALPN;
        let crypto = crate::tls::server_crypto(certificates, alpn)?;
        let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        config.transport_config(Arc::new(crate::h3_transport_config(
            self.service.limits().max_calls,
        )));
        config.migration(true);
        Ok(config)
    }

    /// Accepts connections on `endpoint` until it is closed, serving each in
    /// its own task.
    pub async fn serve(self, endpoint: quinn::Endpoint) {
        while let Some(incoming) = endpoint.accept().await {
            if self.service.is_draining() {
                // Refused at once, so the client tries its next endpoint.
                incoming.refuse();
                continue;
            }
            tokio::spawn(self.clone().serve_connection(incoming));
        }
    }

    /// Serves one incoming connection (one WebTransport session) until it
    /// closes.
    pub async fn serve_connection(self, incoming: quinn::Incoming) {
        let addr = incoming.remote_address();
        let span = tracing::info_span!("conn", transport = "wt", peer = %addr);
        self.run(incoming, addr).instrument(span).await;
    }

    async fn run(self, incoming: quinn::Incoming, addr: SocketAddr) {
        let limits = self.service.limits().clone();
        // The QUIC handshake, HTTP/3 settings and the CONNECT request, in
        // the handshake's time.
        let request = IncomingSessionFuture::with_quic_incoming(incoming);
        let request = match tokio::time::timeout(limits.handshake_timeout, request).await {
            Ok(Ok(request)) => request,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "WebTransport session not established");
                return;
            }
            Err(_) => {
                tracing::debug!("WebTransport session not requested in time");
                return;
            }
        };
        let path = request.path();
        let path = path.split_once('?').map_or(path, |(path, _)| path);
        if path != crate::WT_PATH {
            tracing::debug!(path, "no WebTransport endpoint at this path");
            request.not_found().await;
            return;
        }
        let mut peer = crate::session::peer_info("wt", addr);
        //= docs/protocol.md#13.8
        //# A page from any other origin (and `null`) is a remote peer
        if let Some(origin) = request.origin()
            && !gtl_transport::is_local_origin(origin)
        {
            tracing::debug!(origin, "page from another origin: a remote peer");
            peer = peer.with_same_host(false);
        }
        let _admission = match self.service.admit(&peer) {
            Ok(admission) => admission,
            Err(e) => {
                tracing::info!(code = %e.code, "session refused: {}", e.message);
                request.too_many_requests().await;
                return;
            }
        };
        let connection = match request.accept().await {
            Ok(connection) => connection,
            Err(e) => {
                tracing::debug!(error = %e, "WebTransport session not accepted");
                return;
            }
        };
        let connection = WebTransport {
            connection: Arc::new(connection),
            endpoint: None,
        };
        crate::session::serve(self.service.clone(), connection, peer).await;
    }
}
