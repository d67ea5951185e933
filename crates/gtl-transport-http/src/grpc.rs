//! gRPC on the HTTP port: requests with an `application/grpc*` content
//! type go to the gRPC services, with the peer in their extensions so they
//! authenticate as on every transport: `gtl.v1.Gtl`
//! (`gtl-transport-grpc`), server reflection (v1 and v1alpha, so grpcurl
//! lists and calls it with no .proto at hand) and `grpc.health.v1.Health`.
//!
//! # gRPC-Web
//!
//! Browsers cannot speak gRPC (no trailers, no control over HTTP/2), so
//! the same services also answer gRPC-Web (`application/grpc-web`,
//! `…+proto`, `…-text`), over HTTP/1.1 and h2: `tonic-web` translates each
//! request to gRPC and each answer back, the trailers becoming a last
//! message-like frame (flag `0x80`). gRPC-Web has no client streaming, so
//! `Pipe` is refused there (`INVALID_REQUEST`); everything else is the same
//! RPC.
//!
//! CORS lets a page on another origin call it: preflights (`OPTIONS` with
//! `Access-Control-Request-Method` on a `/package.Service/Method` path) are
//! answered here, and answers expose the status headers to scripts.
//!
//! A browser's request carries the page's `Origin`. Same-host trust
//! (`auth.trust_same_host`) is for this machine's users, not for whatever
//! page their browser shows: a request from an origin that is not itself
//! on this host (`localhost`, `*.localhost`, a loopback address) is taken
//! as a remote peer's, which must present a token.

use std::convert::Infallible;
use std::future::poll_fn;
use std::sync::LazyLock;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use gtl_proto::ErrorCode;
use gtl_transport::PeerInfo;
use gtl_transport_grpc::{
    ERROR_CODE_METADATA, ERROR_METADATA, FILE_DESCRIPTOR_SET, GrpcGateway, GtlServer, SERVICE_NAME,
    VERSION_METADATA, status_from,
};
use http::header::{ACCESS_CONTROL_REQUEST_METHOD, CONTENT_TYPE, HeaderName};
use http::{Method, Request, Response};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use tonic::codegen::Service;
use tonic::service::Routes;
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};
use tower_layer::Layer as _;

use crate::respond::{Body, BoxError};

/// How long a browser may cache a preflight's answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// The CORS policy of gRPC-Web: any origin may call (same-host trust is
/// withdrawn from foreign origins in [`caller`] instead), with any request
/// headers (`authorization` and `gtl-version` among them), and scripts may
/// read the status headers of trailers-only answers.
static CORS: LazyLock<CorsLayer> = LazyLock::new(|| {
    let exposed = [
        "grpc-status",
        "grpc-message",
        "grpc-status-details-bin",
        ERROR_CODE_METADATA,
        ERROR_METADATA,
        VERSION_METADATA,
    ];
    CorsLayer::new()
        .allow_origin(AllowOrigin::any())
        .allow_methods([Method::POST])
        .allow_headers(AllowHeaders::mirror_request())
        .expose_headers(exposed.map(HeaderName::from_static))
        .max_age(PREFLIGHT_MAX_AGE)
});

/// The gRPC services of the HTTP port.
pub(crate) fn routes(
    gtl: GtlServer<GrpcGateway>,
    service: std::sync::Arc<gtl_service::CallService>,
) -> Routes {
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
    // Reports the same readiness as `/readyz`, looked up per request.
    let health = crate::ops::HealthService::server(service);
    Routes::new(gtl)
        .add_service(reflection)
        .add_service(reflection_alpha)
        .add_service(health)
        .prepare()
}

/// Whether a request is a CORS preflight for a gRPC path. gRPC paths are
/// `/package.Service/Method`, and every service here has a package, while
/// the HTTP routes are under `/gtl/`: the dot tells them apart.
pub(crate) fn is_preflight<B>(request: &Request<B>) -> bool {
    request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(ACCESS_CONTROL_REQUEST_METHOD)
        && request
            .uri()
            .path()
            .split('/')
            .nth(1)
            .is_some_and(|service| service.contains('.'))
}

/// Whether a request comes from a gRPC-Web client (or is its preflight).
fn is_grpc_web<B>(request: &Request<B>) -> bool {
    is_preflight(request)
        || request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/grpc-web"))
}

/// Answers one gRPC or gRPC-Web request, or a gRPC-Web preflight.
pub(crate) async fn call(
    routes: Routes,
    peer: &PeerInfo,
    mut request: Request<Incoming>,
) -> Response<Body> {
    request.extensions_mut().insert(peer.clone());
    let answer = if is_grpc_web(&request) {
        let service = CORS
            .clone()
            .layer(tonic_web::GrpcWebLayer::new().layer(WebRoutes(routes)));
        ready_call(service, request).await
    } else {
        ready_call(routes, request).await
    };
    match answer {
        Ok(response) => {
            response.map(|body| body.map_err(|s| Box::new(s) as BoxError).boxed_unsync())
        }
        Err(never) => match never {},
    }
}

/// Calls a service once it is ready.
async fn ready_call<S, B>(mut service: S, request: Request<B>) -> Result<S::Response, S::Error>
where
    S: Service<Request<B>>,
{
    poll_fn(|cx| service.poll_ready(cx)).await?;
    service.call(request).await
}

/// The services as gRPC-Web reaches them: as over gRPC, except `Pipe`.
#[derive(Clone)]
struct WebRoutes(Routes);

impl Service<Request<tonic::body::Body>> for WebRoutes {
    type Response = Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Service::<Request<tonic::body::Body>>::poll_ready(&mut self.0, cx)
    }

    fn call(&mut self, request: Request<tonic::body::Body>) -> Self::Future {
        let method = request
            .uri()
            .path()
            .strip_prefix('/')
            .and_then(|path| path.strip_prefix(SERVICE_NAME));
        if method == Some("/Pipe") {
            //= spec#13.5
            //# gRPC-Web has no client streaming: `Pipe` is refused
            let status = status_from(
                ErrorCode::InvalidRequest,
                "Pipe needs a bidirectional stream, which gRPC-Web cannot carry: use Stream \
                 or Resume, and the HTTP routes for input and cancel",
            );
            return Box::pin(std::future::ready(Ok(status.into_http())));
        }
        Box::pin(self.0.call(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preflights_for_grpc_paths_only() {
        let preflight = |path: &str| {
            Request::builder()
                .method(Method::OPTIONS)
                .uri(path)
                .header(ACCESS_CONTROL_REQUEST_METHOD, "POST")
                .body(())
                .unwrap()
        };
        assert!(is_preflight(&preflight("/gtl.v1.Gtl/Stream")));
        assert!(is_preflight(&preflight("/grpc.health.v1.Health/Check")));
        assert!(!is_preflight(&preflight("/gtl/v1/stream")));
        assert!(!is_preflight(&preflight("/")));
        let plain_options = Request::builder()
            .method(Method::OPTIONS)
            .uri("/gtl.v1.Gtl/Stream")
            .body(())
            .unwrap();
        assert!(!is_preflight(&plain_options));
    }
}
