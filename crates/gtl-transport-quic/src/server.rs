//! The server side: [`QuicGateway`] serves native QUIC connections on the
//! call service. It sets a connection up (QUIC handshake, admission); the
//! control stream and the call streams are served by
//! [`session`](crate::session), as for WebTransport.

use std::net::SocketAddr;
use std::sync::Arc;

use gtl_service::CallService;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tracing::Instrument as _;

use crate::conn::Quic;
use crate::{QuicError, close_code};

/// Serves GTL over QUIC on a [`CallService`].
#[derive(Debug, Clone)]
pub struct QuicGateway {
    service: Arc<CallService>,
}

impl QuicGateway {
    /// A gateway for `service`.
    pub fn new(service: Arc<CallService>) -> Self {
        Self { service }
    }

    /// A quinn server configuration presenting `cert_chain` (TLS 1.3, ALPN
    /// `gtl/1`, no 0-RTT), with GTL's keep-alive, idle timeout, and room for
    /// the service's calls per connection. Connection migration is on.
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
        let crypto = crate::tls::server_crypto(certificates, crate::ALPN)?;
        let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        config.transport_config(Arc::new(crate::transport_config(
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

    /// Serves one incoming connection until it closes.
    pub async fn serve_connection(self, incoming: quinn::Incoming) {
        let addr = incoming.remote_address();
        let span = tracing::info_span!("conn", transport = "quic", peer = %addr);
        self.run(incoming, addr).instrument(span).await;
    }

    async fn run(self, incoming: quinn::Incoming, addr: SocketAddr) {
        let limits = self.service.limits().clone();
        let connection = match tokio::time::timeout(limits.handshake_timeout, incoming).await {
            Ok(Ok(connection)) => connection,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "QUIC handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!("QUIC handshake timed out");
                return;
            }
        };
        let peer = crate::session::peer_info("quic", addr);
        let _admission = match self.service.admit(&peer) {
            Ok(admission) => admission,
            Err(e) => {
                tracing::info!(code = %e.code, "connection refused: {}", e.message);
                connection.close(close_code::REFUSED.into(), e.message.as_bytes());
                return;
            }
        };
        let connection = Quic {
            connection,
            endpoint: None,
        };
        crate::session::serve(self.service.clone(), connection, peer).await;
    }
}
