//! The floor: what any HTTP proxy costs on this machine. A bare hyper
//! reverse proxy with no gateway logic — no body parsed, no auth, no
//! session, no log line — forwards each request to the mock over one h2c
//! connection (as the gateway reaches it) and streams the answer back.
//!
//! It runs as a process of its own, like the gateway, so it shares the two
//! cores with the load generator and the mock the same way and its CPU time
//! is read from /proc. No proxy can add less between the same client and
//! the same upstream here; what a gateway adds above this row is its own
//! work, and what this row adds over direct is the price of a second hop.

use std::net::SocketAddr;

use anyhow::{Context as _, Result};
use bytes::Bytes;
use http_body_util::{Either, Empty};
use hyper::body::Incoming;
use hyper::header::{CONNECTION, HOST};
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

/// The line the proxy prints once it listens; the harness reads the
/// address after it.
pub(crate) const LISTENING: &str = "gtl-load: floor proxy listening on http://";

type Upstream = Client<HttpConnector, Incoming>;
type Answer = Response<Either<Incoming, Empty<Bytes>>>;

/// `gtl-load --floor-proxy UPSTREAM`: serves until killed.
pub(crate) fn main(args: &[String]) -> Result<()> {
    let upstream: SocketAddr = args
        .first()
        .context("usage: gtl-load --floor-proxy UPSTREAM_ADDR")?
        .parse()?;
    // The gateway's runtime: a worker per core.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(upstream))
}

async fn serve(upstream: SocketAddr) -> Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    eprintln!("{LISTENING}{}", listener.local_addr()?);
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    // The windows the gateway's provider client uses for h2c.
    let client: Upstream = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .http2_initial_connection_window_size(16 << 20)
        .http2_initial_stream_window_size(1 << 20)
        .build(connector);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let client = client.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                forward(client.clone(), upstream, request)
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn forward(
    client: Upstream,
    upstream: SocketAddr,
    request: Request<Incoming>,
) -> Result<Answer, hyper::Error> {
    let (mut parts, body) = request.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let Ok(uri) = format!("http://{upstream}{path}").parse::<Uri>() else {
        return Ok(status(StatusCode::BAD_REQUEST));
    };
    parts.uri = uri;
    // HTTP/1.1's connection headers mean nothing on HTTP/2.
    parts.headers.remove(CONNECTION);
    parts.headers.remove(HOST);
    match client.request(Request::from_parts(parts, body)).await {
        Ok(answer) => Ok(answer.map(Either::Left)),
        Err(_) => Ok(status(StatusCode::BAD_GATEWAY)),
    }
}

fn status(code: StatusCode) -> Answer {
    let mut answer = Response::new(Either::Right(Empty::new()));
    *answer.status_mut() = code;
    answer
}
