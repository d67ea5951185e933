//! The HTTP port against a real engine over loopback: every route, its
//! errors in HTTP's own convention, SSE resume with `Last-Event-ID`, h2c,
//! and the WebSocket upgrade; and the client bridge, `HttpConnector`,
//! driving them with frames.

use std::sync::Arc;

use futures::StreamExt as _;
use gtl_core::{Engine, EngineConfig, MemoryStore};
use gtl_proto::sse::{Event, Parser};
use gtl_providers::{EchoProvider, Registry};
use gtl_service::{Authenticator, CallService, ConnectionLimits};
use gtl_transport_http::HttpGateway;
use serde_json::{Value, json};

#[cfg(feature = "client")]
mod bridge;
mod calls;
mod compat;
mod errors;
mod grpc;
mod grpc_web;
mod ops;
mod resume;
mod web;
mod ws;

/// A gateway on a free loopback port; the address to reach it.
pub(crate) async fn start() -> String {
    start_with(ConnectionLimits::default()).await
}

pub(crate) async fn start_with(limits: ConnectionLimits) -> String {
    serve(gateway(limits)).await
}

/// A gateway over the echo provider, not yet listening.
pub(crate) fn gateway(limits: ConnectionLimits) -> HttpGateway {
    let mut registry = Registry::new();
    registry.add(Arc::new(EchoProvider::new()));
    gateway_for(registry, limits)
}

/// A gateway routing with `registry`, not yet listening.
pub(crate) fn gateway_for(registry: Registry, limits: ConnectionLimits) -> HttpGateway {
    gateway_authenticating(registry, limits, Authenticator::new(true))
}

/// A gateway over the echo provider that trusts no peer without a token
/// (and, verifying none, refuses every token), on a free loopback port.
pub(crate) async fn start_trusting_nobody() -> String {
    let mut registry = Registry::new();
    registry.add(Arc::new(EchoProvider::new()));
    let limits = ConnectionLimits::default();
    serve(gateway_authenticating(
        registry,
        limits,
        Authenticator::new(false),
    ))
    .await
}

fn gateway_authenticating(
    registry: Registry,
    limits: ConnectionLimits,
    auth: Authenticator,
) -> HttpGateway {
    // Persisted (to memory) as by default: events wait for their commit.
    let engine = Engine::new(Arc::new(MemoryStore::new()), EngineConfig::default());
    let service = CallService::new(engine, registry, auth, limits);
    HttpGateway::new(Arc::new(service))
}

/// A gateway routing with `registry`, on a free loopback port.
pub(crate) async fn start_serving(registry: Registry, limits: ConnectionLimits) -> String {
    serve(gateway_for(registry, limits)).await
}

/// Serves `gateway` on a free loopback port; the address to reach it.
pub(crate) async fn serve(gateway: HttpGateway) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, addr) = listener.accept().await.unwrap();
            let peer = gtl_transport_tcp::peer_info(&stream, addr, "http");
            tokio::spawn(gateway.clone().serve_connection(stream, peer));
        }
    });
    addr.to_string()
}

pub(crate) fn client() -> reqwest::Client {
    builder().build().unwrap()
}

/// reqwest needs a TLS provider installed even for plain HTTP.
pub(crate) fn builder() -> reqwest::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}

pub(crate) fn chat(model: &str, text: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": text}]})
}

/// Reads SSE events from a response until `stop` says so or it ends.
pub(crate) async fn events(
    response: reqwest::Response,
    mut stop: impl FnMut(&Event) -> bool,
) -> Vec<Event> {
    let mut parser = Parser::new(1 << 20);
    let mut out = Vec::new();
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let mut batch = Vec::new();
        parser.feed(&chunk.unwrap(), &mut batch).unwrap();
        for event in batch {
            let end = stop(&event);
            out.push(event);
            if end {
                return out;
            }
        }
    }
    out
}

/// Reads a response's SSE events one at a time, so a test can act between
/// them.
pub(crate) struct SseReader {
    body: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    parser: Parser,
    ready: std::collections::VecDeque<Event>,
}

impl SseReader {
    pub(crate) fn new(response: reqwest::Response) -> Self {
        Self {
            body: Box::pin(response.bytes_stream()),
            parser: Parser::new(1 << 20),
            ready: std::collections::VecDeque::new(),
        }
    }

    /// The next event; `None` when the response ended.
    pub(crate) async fn next(&mut self) -> Option<Event> {
        while self.ready.is_empty() {
            let chunk = self.body.next().await?.unwrap();
            let mut batch = Vec::new();
            self.parser.feed(&chunk, &mut batch).unwrap();
            self.ready.extend(batch);
        }
        self.ready.pop_front()
    }

    /// Events up to and including the first for which `stop` holds.
    pub(crate) async fn until(&mut self, mut stop: impl FnMut(&Event) -> bool) -> Vec<Event> {
        let mut out = Vec::new();
        while let Some(event) = self.next().await {
            let end = stop(&event);
            out.push(event);
            if end {
                break;
            }
        }
        out
    }
}

/// An event's `data` as JSON.
pub(crate) fn data(event: &Event) -> Value {
    serde_json::from_str(&event.data).unwrap()
}

/// Whether an event ends its call.
pub(crate) fn terminal(event: &Event) -> bool {
    matches!(event.event.as_str(), "done" | "error")
}

/// The concatenated text of `token` events.
pub(crate) fn text(events: &[Event]) -> String {
    events
        .iter()
        .filter(|e| e.event == "token")
        .map(|e| data(e)["text"].as_str().unwrap().to_owned())
        .collect()
}
