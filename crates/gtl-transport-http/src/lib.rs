//! GTL's HTTP port, both ends of it.
//!
//! The server side, `HttpGateway` (feature `server`), serves on one
//! socket, HTTP/1.1 and h2c:
//!
//! - `POST /gtl/v1/hello`: the framed transports' handshake as one
//!   request, a `hello` in and the `welcome` out;
//! - `POST /gtl/v1/complete`: a `completion_request` JSON body in, the whole
//!   answer as one JSON object out;
//! - `POST /gtl/v1/stream`: the same body in, `text/event-stream` out
//!   (`event: <type>`, `id: <seq>`, `data: <frame JSON>`), starting with
//!   `accepted` (session id and resume token);
//! - `GET /gtl/v1/sessions/{id}/events`: resume, after the standard
//!   `Last-Event-ID` (or `?after_seq=`), with the token in `GTL-Resume-Token`
//!   (or `?resume_token=`);
//! - `POST /gtl/v1/sessions/{id}/input` and `…/cancel`;
//! - `GET /gtl/v1/models`;
//! - `GET /gtl/v1/ws`: the WebSocket transport (`gtl-transport-ws`);
//! - the OpenAI- and Anthropic-compatible APIs (`POST /v1/chat/completions`,
//!   `POST /v1/messages`, `POST /v1/messages/count_tokens`,
//!   `GET /v1/models[/{id}]`), translated by `gtl-compat`, each call an
//!   ordinary GTL session named in the `gtl-session-id` header;
//! - `GET /healthz`, `GET /readyz` and `GET /metrics` (with
//!   `HttpGateway::with_metrics`), without a credential, and the gRPC
//!   health service reporting the same readiness;
//! - `GET /`: a web chat page (embedded HTML, script and style sheet) that
//!   calls over WebTransport or WebSocket and resumes after a drop, and
//!   `GET /gtl/v1/web`, where it learns the transports.
//!
//! When the gateway also serves HTTP/3 and WebTransport (UDP, beside this
//! port), `HttpGateway::with_webtransport` tells the routes where (the web
//! page among them), and every response advertises it with
//! `Alt-Svc: h3=":PORT"`.
//!
//! Every route is a thin translation to the call service; errors are the
//! protocol's `error` frame as JSON with the code's HTTP status. The
//! `GTL-Version` header negotiates the version. docs/protocol.md §13.6 is
//! the exact specification.
//!
//! The client side, `HttpConnector` (feature `client`), is a
//! [`gtl_transport::Connector`] for `sse://`, `http://` and `https://`
//! endpoints: the [`Connection`](gtl_transport::Connection) it opens takes
//! the frames a framed client writes (hello, calls by `call_id`, cancel,
//! input, resume, models) and makes each the matching request on those
//! routes, and turns the answers (SSE events, error bodies) back into the
//! frames a framed server would send. A client written for stdio, Unix
//! sockets, TCP or WebSocket runs over HTTP unchanged.
//!
//! # Features
//!
//! - `server` (default): `HttpGateway`, with the call service, gRPC and
//!   the WebSocket upgrade.
//! - `client` (default): `HttpConnector`. It needs neither the call
//!   service nor gRPC: `--no-default-features --features client` links
//!   `gtl-proto`, `gtl-transport` and hyper's client only.
//! - `tls`: `https://` in `HttpConnector`, with rustls and the `ring`
//!   provider, trusting the system's roots.

#![doc(test(no_crate_inject, attr(deny(warnings))))]

#[cfg(feature = "client")]
mod client;
#[cfg(feature = "server")]
mod compat;
#[cfg(feature = "server")]
mod gateway;
#[cfg(feature = "server")]
mod grpc;
#[cfg(feature = "server")]
mod ops;
#[cfg(feature = "server")]
mod origin;
#[cfg(feature = "server")]
mod respond;
#[cfg(feature = "server")]
mod routes;
#[cfg(feature = "server")]
mod web;
#[cfg(feature = "server")]
mod ws;

#[cfg(feature = "client")]
pub use client::HttpConnector;
#[cfg(feature = "server")]
pub use compat::SESSION_HEADER;
#[cfg(feature = "server")]
pub(crate) use gateway::event_error;
#[cfg(feature = "server")]
pub use gateway::{HttpGateway, WebTransportInfo};
#[cfg(feature = "server")]
pub use ops::MetricsRender;

/// The header carrying protocol versions (a list in requests, the
/// negotiated one in responses).
pub const VERSION_HEADER: &str = "gtl-version";

/// The header carrying a session's resume token.
pub const RESUME_TOKEN_HEADER: &str = "gtl-resume-token";

/// The path of the handshake route.
#[cfg(any(feature = "server", feature = "client"))]
const HELLO_PATH: &str = "/gtl/v1/hello";
