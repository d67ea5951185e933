//! The operators' routes and the gRPC health service follow the call
//! service's readiness, without a credential.

use std::sync::Arc;

use futures::StreamExt as _;
use gtl_core::{Engine, EngineConfig, MemoryStore};
use gtl_providers::{EchoProvider, Registry};
use gtl_service::{Authenticator, CallService, ConnectionLimits};
use gtl_transport_http::HttpGateway;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

use crate::{client, serve};

#[tokio::test]
async fn readiness_over_http_and_grpc_health_follows_the_service() {
    let mut registry = Registry::new();
    registry.add(Arc::new(EchoProvider::new()));
    let engine = Engine::new(Arc::new(MemoryStore::new()), EngineConfig::default());
    // Trusting nobody: the probes need no token all the same.
    let service = Arc::new(CallService::new(
        engine,
        registry,
        Authenticator::new(false),
        ConnectionLimits::default(),
    ));
    let addr = serve(HttpGateway::new(service.clone())).await;
    let readyz = || async {
        let response = client()
            .get(format!("http://{addr}/readyz"))
            .send()
            .await
            .unwrap();
        response.status().as_u16()
    };
    assert_eq!(readyz().await, 200);
    // Without a recorder the server did not hand one over: no metrics.
    let metrics = client()
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status().as_u16(), 404);

    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    let check = |service: &str| HealthCheckRequest {
        service: service.to_owned(),
    };
    let status = health.check(check("")).await.unwrap().into_inner().status;
    assert_eq!(status, ServingStatus::Serving as i32);
    let unknown = health.check(check("no.such.Service")).await.unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    let mut watch = health
        .watch(check("gtl.v1.Gtl"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next(&mut watch).await, ServingStatus::Serving as i32);

    // The listeners stop accepting (as when a server shuts down).
    service.set_listening(false);
    assert_eq!(readyz().await, 503);
    let status = health
        .check(check("gtl.v1.Gtl"))
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(status, ServingStatus::NotServing as i32);
    assert_eq!(next(&mut watch).await, ServingStatus::NotServing as i32);
}

/// The status a health `Watch` sends next.
async fn next(watch: &mut tonic::Streaming<HealthCheckResponse>) -> i32 {
    watch.next().await.unwrap().unwrap().status
}
