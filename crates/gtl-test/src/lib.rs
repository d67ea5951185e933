//! Test support for GTL (`publish = false`).
//!
//! What a provider adapter's tests need to run against the real wire format
//! without the real provider:
//!
//! - [`ReplayServer`]: a local HTTP server on `127.0.0.1:0`. It records every
//!   request it receives ([`RecordedRequest`]: method, path and query,
//!   headers, body) and answers each with a [`Reply`]: a status, headers and
//!   a body (a string, bytes or a file), streamed in chunks of a chosen size
//!   (down to 1 byte), optionally cut early (the connection is aborted
//!   mid-body), stalled (no more bytes until the client gives up) or with
//!   the headers never sent, or dripped slowly. It speaks HTTP/1.1 and h2c.
//! - [`SseAnswer`]: a streamed answer in OpenAI's or Anthropic's wire
//!   format that a [`Reply`] can break at an exact piece (cut, stall,
//!   malformed event) or drip, for fault-injection tests.
//! - [`OpenApi`]: validates a JSON value against a component schema of an
//!   OpenAPI 3.x document (`#/components/schemas/Name`), resolving the
//!   document's internal `$ref`s, after rewriting OpenAPI 3.0's
//!   `nullable: true` into JSON Schema type unions.
//! - [`RedisServer`]: a `redis-server` of the test's own on a free port,
//!   killed (or restarted, empty) on demand.
//! - [`shared_dir`], [`provider_fixture`], [`provider_spec`]: where the
//!   shared provider specs and recorded streams are (`shared/providers/`
//!   beside the workspace, or `$GTL_SHARED_DIR`); [`read`] reads a test
//!   file or panics naming it.
//!
//! The server needs a tokio runtime with IO enabled (`#[tokio::test]`).
//! Requests are recorded before their reply is sent, so once a client has
//! the response status, [`ReplayServer::requests`] includes its request:
//! no waiting needed.
//!
//! # Example
//!
//! ```
//! use gtl_test::{ReplayServer, Reply};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // Every request gets this SSE body, one byte per chunk.
//! let server = ReplayServer::start(Reply::sse("data: hello\n\ndata: [DONE]\n\n").chunked(1)).await;
//! let url = format!("{}/v1/chat/completions", server.url());
//! assert!(url.starts_with("http://127.0.0.1:"));
//! // ... point the adapter at `server.url()`, call it, then:
//! assert!(server.requests().is_empty());
//! # }
//! ```

#![doc(test(no_crate_inject, attr(deny(warnings))))]

mod openapi;
mod paths;
mod redis;
mod replay;
mod upstream;

pub use openapi::{OpenApi, OpenApiError, SchemaViolations};
pub use paths::{provider_fixture, provider_spec, read, served_sse, shared_dir};
pub use redis::RedisServer;
pub use replay::{RecordedRequest, ReplayServer, Reply};
pub use upstream::SseAnswer;
