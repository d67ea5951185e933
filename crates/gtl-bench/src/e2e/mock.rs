//! The mock upstream: a bare hyper server speaking OpenAI's
//! `/v1/chat/completions` and Anthropic's `/v1/messages`, unary and
//! streamed, HTTP/1.1 and h2c on one port. No gateway code: it is what
//! both the direct and the through-GTL runs call, so it costs them the same.
//!
//! The model name sets the answer: `mock-<chunks>x<ms>` streams `<chunks>`
//! content chunks, the first at once and one every `<ms>` milliseconds
//! after it (a unary answer is the same text at once). Every content chunk
//! carries the text [`TOKEN`], so a client counts tokens by counting it.
//! Bytes that do not vary are rendered once per request.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Result;
use bytes::Bytes;
use futures::StreamExt as _;
use http_body_util::{BodyExt as _, Full, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::Deserialize;
use tokio::net::TcpListener;

/// The text of every content chunk.
pub(crate) const TOKEN: &str = "tok ";

/// Starts the mock on a free loopback port; it serves until the runtime
/// ends.
pub(crate) async fn start() -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let mut builder =
                    hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                // One h2c connection from the gateway carries every stream
                // of the concurrency run.
                builder
                    .http2()
                    .max_concurrent_streams(1_000_000)
                    .initial_connection_window_size(16 << 20)
                    .initial_stream_window_size(1 << 20);
                let _ = builder
                    .serve_connection(TokioIo::new(stream), hyper::service::service_fn(answer))
                    .await;
            });
        }
    });
    Ok(addr)
}

#[derive(Deserialize)]
struct Ask {
    model: String,
    #[serde(default)]
    stream: bool,
}

type Body = UnsyncBoxBody<Bytes, Infallible>;

async fn answer(request: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let anthropic = request.uri().path().ends_with("/messages");
    let Ok(body) = request.into_body().collect().await.map(|b| b.to_bytes()) else {
        return Ok(status(StatusCode::BAD_REQUEST));
    };
    let Ok(ask) = serde_json::from_slice::<Ask>(&body) else {
        return Ok(status(StatusCode::BAD_REQUEST));
    };
    let (chunks, every) = pacing(&ask.model);
    let wire = if anthropic {
        Wire::anthropic(&ask.model, chunks)
    } else {
        Wire::openai(&ask.model, chunks)
    };
    if !ask.stream {
        return Ok(json(wire.whole));
    }
    let body = if every.is_zero() {
        // Everything at once: one frame per chunk, no timer.
        let frames = std::iter::once(wire.head.clone())
            .chain(std::iter::repeat_n(wire.chunk.clone(), chunks))
            .chain(std::iter::once(wire.tail.clone()))
            .map(|b| Ok(Frame::data(b)));
        http_body_util::BodyExt::boxed_unsync(StreamBody::new(futures::stream::iter(frames)))
    } else {
        let paced = futures::stream::unfold(0usize, move |sent| {
            let wire_chunk = wire.chunk.clone();
            let head = wire.head.clone();
            let tail = wire.tail.clone();
            async move {
                if sent > chunks + 1 {
                    return None;
                }
                if sent >= 2 {
                    tokio::time::sleep(every).await;
                }
                let bytes = match sent {
                    0 => head,
                    n if n <= chunks => wire_chunk,
                    _ => tail,
                };
                Some((Ok(Frame::data(bytes)), sent + 1))
            }
        });
        http_body_util::BodyExt::boxed_unsync(StreamBody::new(paced.boxed()))
    };
    let mut response = Response::new(body);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/event-stream"),
    );
    Ok(response)
}

/// `mock-<chunks>x<ms>`; anything else is 16 chunks at once.
fn pacing(model: &str) -> (usize, Duration) {
    let parsed = model
        .rsplit('/')
        .next()
        .and_then(|m| m.strip_prefix("mock-"))
        .and_then(|rest| rest.split_once('x'))
        .and_then(|(n, ms)| Some((n.parse().ok()?, ms.parse().ok()?)));
    let (chunks, ms) = parsed.unwrap_or((16, 0));
    (chunks, Duration::from_millis(ms))
}

fn status(code: StatusCode) -> Response<Body> {
    let mut response = Response::new(http_body_util::BodyExt::boxed_unsync(Full::new(
        Bytes::new(),
    )));
    *response.status_mut() = code;
    response
}

fn json(body: Bytes) -> Response<Body> {
    let mut response = Response::new(http_body_util::BodyExt::boxed_unsync(Full::new(body)));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

/// One answer in a provider's wire format.
struct Wire {
    /// The unary response body.
    whole: Bytes,
    /// Stream events before the first content chunk.
    head: Bytes,
    /// One content chunk.
    chunk: Bytes,
    /// Stream events after the last one.
    tail: Bytes,
}

impl Wire {
    fn openai(model: &str, chunks: usize) -> Self {
        let model = serde_json::to_string(model).unwrap_or_default();
        let text = TOKEN.repeat(chunks);
        let chunk = |choice: &str| {
            format!(
                "data: {{\"id\":\"chatcmpl-mock\",\"object\":\"chat.completion.chunk\",\"created\":1767225600,\"model\":{model},\"choices\":[{choice}]}}\n\n"
            )
        };
        let usage = format!(
            "\"usage\":{{\"prompt_tokens\":9,\"completion_tokens\":{chunks},\"total_tokens\":{}}}",
            chunks + 9
        );
        Self {
            whole: format!(
                "{{\"id\":\"chatcmpl-mock\",\"object\":\"chat.completion\",\"created\":1767225600,\"model\":{model},\"choices\":[{{\"index\":0,\"message\":{{\"role\":\"assistant\",\"content\":\"{text}\"}},\"finish_reason\":\"stop\"}}],{usage}}}"
            )
            .into(),
            head: chunk("{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}").into(),
            chunk: chunk(&format!(
                "{{\"index\":0,\"delta\":{{\"content\":\"{TOKEN}\"}},\"finish_reason\":null}}"
            ))
            .into(),
            tail: format!(
                "{}data: {{\"id\":\"chatcmpl-mock\",\"object\":\"chat.completion.chunk\",\"created\":1767225600,\"model\":{model},\"choices\":[],{usage}}}\n\ndata: [DONE]\n\n",
                chunk("{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}")
            )
            .into(),
        }
    }

    fn anthropic(model: &str, chunks: usize) -> Self {
        let model = serde_json::to_string(model).unwrap_or_default();
        let text = TOKEN.repeat(chunks);
        Self {
            whole: format!(
                "{{\"id\":\"msg_mock\",\"type\":\"message\",\"role\":\"assistant\",\"model\":{model},\"content\":[{{\"type\":\"text\",\"text\":\"{text}\"}}],\"stop_reason\":\"end_turn\",\"stop_sequence\":null,\"usage\":{{\"input_tokens\":9,\"output_tokens\":{chunks}}}}}"
            )
            .into(),
            head: format!(
                "event: message_start\ndata: {{\"type\":\"message_start\",\"message\":{{\"id\":\"msg_mock\",\"type\":\"message\",\"role\":\"assistant\",\"model\":{model},\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{{\"input_tokens\":9,\"output_tokens\":1}}}}}}\n\n\
                 event: content_block_start\ndata: {{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{{\"type\":\"text\",\"text\":\"\"}}}}\n\n"
            )
            .into(),
            chunk: format!(
                "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"{TOKEN}\"}}}}\n\n"
            )
            .into(),
            tail: format!(
                "event: content_block_stop\ndata: {{\"type\":\"content_block_stop\",\"index\":0}}\n\n\
                 event: message_delta\ndata: {{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":\"end_turn\",\"stop_sequence\":null}},\"usage\":{{\"output_tokens\":{chunks}}}}}\n\n\
                 event: message_stop\ndata: {{\"type\":\"message_stop\"}}\n\n"
            )
            .into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_name_sets_the_pacing() {
        assert_eq!(pacing("mock-20x5"), (20, Duration::from_millis(5)));
        assert_eq!(pacing("openai/mock-3x0"), (3, Duration::ZERO));
        assert_eq!(pacing("gpt-4o"), (16, Duration::ZERO));
    }

    #[test]
    fn every_event_is_json() {
        for wire in [Wire::openai("m", 2), Wire::anthropic("m", 2)] {
            serde_json::from_slice::<serde_json::Value>(&wire.whole).unwrap();
            for part in [&wire.head, &wire.chunk, &wire.tail] {
                let text = std::str::from_utf8(part).unwrap();
                for line in text.lines().filter_map(|l| l.strip_prefix("data: ")) {
                    if line != "[DONE]" {
                        serde_json::from_str::<serde_json::Value>(line).unwrap();
                    }
                }
            }
        }
    }
}
