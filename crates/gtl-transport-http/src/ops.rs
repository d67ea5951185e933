//! What operators' tools ask the HTTP port: `GET /healthz` (the process
//! answers), `GET /readyz` (it can serve calls: [`Readiness`]), `GET
//! /metrics` (the Prometheus text the server renders), and the standard
//! gRPC health service reporting the same readiness.
//!
//! None of them needs a credential: they reveal no secret, no session and
//! no caller (docs/security.md), and monitoring systems scrape without one.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use gtl_service::{CallService, Readiness};
use gtl_transport::PeerInfo;
use gtl_transport_grpc::SERVICE_NAME;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

use crate::HttpGateway;
use crate::respond::{self, Body};

/// Renders the metrics in the Prometheus text format: the server's
/// recorder (libraries only record, through the `metrics` facade).
pub trait MetricsRender: std::fmt::Debug + Send + Sync {
    /// The metrics now, in the Prometheus text format.
    fn render(&self) -> String;
}

/// The content type of the Prometheus text format.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How often a gRPC health `Watch` looks at the readiness again.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// The answer to an operators' route, or `None` for other requests.
pub(crate) fn respond<B>(gateway: &HttpGateway, request: &Request<B>) -> Option<Response<Body>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return None;
    }
    match request.uri().path() {
        "/healthz" => Some(text(StatusCode::OK, "text/plain", "ok\n".into())),
        "/readyz" => Some(readyz(gateway.service.readiness())),
        "/metrics" => Some(match &gateway.metrics {
            Some(render) => {
                gateway.service.record_state();
                text(StatusCode::OK, PROMETHEUS_TEXT, render.render())
            }
            None => text(
                StatusCode::NOT_FOUND,
                "text/plain",
                "this gateway records no metrics\n".into(),
            ),
        }),
        _ => None,
    }
}

fn readyz(readiness: Readiness) -> Response<Body> {
    let status = if readiness.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    respond::json(
        status,
        &json!({
            "ready": readiness.is_ready(),
            "store": readiness.store,
            "listening": readiness.listening,
            "providers": readiness.providers,
            "problems": readiness.problems(),
        }),
    )
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let mut response = Response::new(respond::full(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Serves one connection of the `[listen.metrics]` port: the operators'
/// routes only, everything else `404`.
pub(crate) async fn serve<S>(gateway: HttpGateway, stream: S, peer: PeerInfo)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let timeout = gateway.service.limits().handshake_timeout;
    let handler = service_fn(move |request: Request<hyper::body::Incoming>| {
        let answer = respond(&gateway, &request).unwrap_or_else(|| {
            text(
                StatusCode::NOT_FOUND,
                "text/plain",
                "this port serves /metrics, /healthz and /readyz\n".into(),
            )
        });
        std::future::ready(Ok::<_, Infallible>(answer))
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(timeout);
    if let Err(e) = builder
        .serve_connection(TokioIo::new(stream), handler)
        .await
    {
        tracing::debug!(peer = %peer.addr, error = %e, "metrics connection ended");
    }
}

/// `grpc.health.v1.Health` over the call service's readiness: the server
/// as a whole (service `""`) and `gtl.v1.Gtl` are `SERVING` exactly when
/// `/readyz` says ready.
#[derive(Debug, Clone)]
pub(crate) struct HealthService {
    service: Arc<CallService>,
}

impl HealthService {
    pub(crate) fn server(service: Arc<CallService>) -> HealthServer<Self> {
        HealthServer::new(Self { service })
    }

    /// The status of `name`, `None` for a service this server does not have.
    fn status(&self, name: &str) -> Option<ServingStatus> {
        if !name.is_empty() && name != SERVICE_NAME {
            return None;
        }
        Some(if self.service.readiness().is_ready() {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        })
    }
}

type WatchStream = futures::stream::BoxStream<'static, Result<HealthCheckResponse, tonic::Status>>;

#[tonic::async_trait]
impl Health for HealthService {
    async fn check(
        &self,
        request: tonic::Request<HealthCheckRequest>,
    ) -> Result<tonic::Response<HealthCheckResponse>, tonic::Status> {
        let name = request.into_inner().service;
        let status = self
            .status(&name)
            .ok_or_else(|| tonic::Status::not_found(format!("no service `{name}` here")))?;
        Ok(tonic::Response::new(HealthCheckResponse {
            status: status as i32,
        }))
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: tonic::Request<HealthCheckRequest>,
    ) -> Result<tonic::Response<WatchStream>, tonic::Status> {
        let name = request.into_inner().service;
        let health = self.clone();
        let mut ticks = tokio::time::interval(WATCH_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The current status at once, then each change.
        let stream = futures::stream::unfold(
            (health, name, ticks, None),
            |(health, name, mut ticks, last)| async move {
                loop {
                    ticks.tick().await;
                    let now = health
                        .status(&name)
                        .unwrap_or(ServingStatus::ServiceUnknown);
                    if last != Some(now) {
                        let answer = HealthCheckResponse { status: now as i32 };
                        return Some((Ok(answer), (health, name, ticks, Some(now))));
                    }
                }
            },
        );
        Ok(tonic::Response::new(Box::pin(stream)))
    }
}
