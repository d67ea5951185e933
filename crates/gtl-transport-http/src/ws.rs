//! `GET /gtl/v1/ws`: the WebSocket upgrade, then the framed adapter.

use std::sync::Arc;

use gtl_service::{CallService, serve_framed_with_bearer};
use gtl_transport::PeerInfo;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use crate::respond::{self, Body};

/// Answers the upgrade request and, once the connection is switched, serves
/// it as a framed GTL connection (hello, welcome, calls multiplexed by
/// `call_id`).
pub(crate) fn upgrade(
    service: Arc<CallService>,
    peer: PeerInfo,
    mut request: Request<Incoming>,
) -> Response<Body> {
    let response = match gtl_transport_ws::upgrade_response(&request) {
        Ok(response) => response,
        Err(e) => {
            let mut response = Response::new(respond::full(e.to_string()));
            *response.status_mut() = e.status();
            return response;
        }
    };
    let max = service.limits().max_frame_bytes;
    // Browsers cannot set headers on a WebSocket (their token goes in the
    // hello); other clients may authenticate the upgrade instead.
    let bearer = respond::bearer(request.headers()).to_owned();
    tokio::spawn(async move {
        match hyper::upgrade::on(&mut request).await {
            Ok(upgraded) => {
                let mut peer = peer;
                peer.transport = "ws";
                let conn =
                    gtl_transport_ws::server_connection(TokioIo::new(upgraded), peer, max).await;
                serve_framed_with_bearer(service, conn, bearer).await;
            }
            Err(e) => tracing::debug!(error = %e, "websocket upgrade failed"),
        }
    });
    response.map(|()| respond::full(""))
}
