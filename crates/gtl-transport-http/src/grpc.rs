//! gRPC on the HTTP port: requests with an `application/grpc*` content
//! type go to the gRPC services, with the peer in their extensions so they
//! authenticate as on every transport: `gtl.v1.Gtl`
//! (`gtl-transport-grpc`), server reflection (v1 and v1alpha, so grpcurl
//! lists and calls it with no .proto at hand) and `grpc.health.v1.Health`.

use gtl_transport::PeerInfo;
use gtl_transport_grpc::{FILE_DESCRIPTOR_SET, GrpcGateway, GtlServer};
use http::{Request, Response};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use tonic::codegen::Service as _;
use tonic::service::Routes;

use crate::respond::{Body, BoxError};

/// The gRPC services of the HTTP port.
pub(crate) fn routes(gtl: GtlServer<GrpcGateway>) -> Routes {
    // Every service served here is listed by reflection.
    let described = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
    };
    let reflection = described()
        .build_v1()
        .expect("the built-in descriptor sets are valid");
    let reflection_alpha = described()
        .build_v1alpha()
        .expect("the built-in descriptor sets are valid");
    let (reporter, health) = tonic_health::server::health_reporter();
    // The reporter's lock is free here: this completes at once.
    futures::executor::block_on(reporter.set_serving::<GtlServer<GrpcGateway>>());
    Routes::new(gtl)
        .add_service(reflection)
        .add_service(reflection_alpha)
        .add_service(health)
        .prepare()
}

/// Answers one gRPC request.
pub(crate) async fn call(
    mut routes: Routes,
    peer: &PeerInfo,
    mut request: Request<Incoming>,
) -> Response<Body> {
    request.extensions_mut().insert(peer.clone());
    match routes.call(request).await {
        Ok(response) => {
            response.map(|body| body.map_err(|s| Box::new(s) as BoxError).boxed_unsync())
        }
        Err(never) => match never {},
    }
}
