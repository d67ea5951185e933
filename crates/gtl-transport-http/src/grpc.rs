//! gRPC on the HTTP port: requests with an `application/grpc*` content
//! type go to the `gtl.v1.Gtl` service (`gtl-transport-grpc`), with the
//! peer in their extensions so it authenticates as on every transport.

use gtl_transport::PeerInfo;
use gtl_transport_grpc::{GrpcGateway, GtlServer};
use http::{Request, Response};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use tonic::codegen::Service as _;

use crate::respond::{Body, BoxError};

/// Answers one gRPC request.
pub(crate) async fn call(
    mut server: GtlServer<GrpcGateway>,
    peer: &PeerInfo,
    mut request: Request<Incoming>,
) -> Response<Body> {
    request.extensions_mut().insert(peer.clone());
    match server.call(request).await {
        Ok(response) => {
            response.map(|body| body.map_err(|s| Box::new(s) as BoxError).boxed_unsync())
        }
        Err(never) => match never {},
    }
}
