//! The local replay HTTP server.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt as _;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// A request the server received.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RecordedRequest {
    /// The method, e.g. `"POST"`.
    pub method: String,
    /// The path and query, e.g. `"/openai/deployments/d/chat/completions?api-version=2024-10-21"`.
    pub path: String,
    /// The headers in arrival order, names lowercase.
    pub headers: Vec<(String, String)>,
    /// The whole body.
    pub body: Bytes,
}

impl RecordedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    /// Whether the request asks for a streamed answer, by each API's rule:
    /// Gemini by its method (`:streamGenerateContent`), the others by the
    /// body's `stream`, which Ollama (`/api/…`) takes as true when absent.
    pub fn wants_stream(&self) -> bool {
        if self.path.contains(":streamGenerateContent") {
            return true;
        }
        if self.path.contains(":generateContent") {
            return false;
        }
        let stream = self
            .json()
            .ok()
            .and_then(|body| body.get("stream").and_then(serde_json::Value::as_bool));
        stream.unwrap_or(self.path.starts_with("/api/"))
    }
}

/// What the server answers to one request.
///
/// Build one with [`Reply::new`], [`Reply::sse`], [`Reply::ndjson`] or
/// [`Reply::json`], then adjust it with the builder methods. By default the
/// body is sent in one piece.
#[derive(Debug, Clone)]
pub struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Bytes,
    chunk_size: usize,
    end: End,
    stall_headers: bool,
    /// Explicit chunk boundaries (offsets into the body), sorted.
    splits: Vec<usize>,
    /// Waited before each chunk after the first.
    delay: std::time::Duration,
}

/// How a reply's body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The whole body, then a proper end of message.
    Complete,
    /// The first `n` bytes, then the connection is aborted (a cut stream).
    CutAfter(usize),
    /// The first `n` bytes, then nothing more until the client goes away.
    StallAfter(usize),
}

impl Reply {
    /// A reply with `status`, no headers and an empty body.
    pub fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
            chunk_size: 0,
            end: End::Complete,
            stall_headers: false,
            splits: Vec::new(),
            delay: std::time::Duration::ZERO,
        }
    }

    /// `200` with `content-type: text/event-stream` and `body`.
    pub fn sse(body: impl Into<Bytes>) -> Self {
        Self::new(200)
            .header("content-type", "text/event-stream")
            .body(body)
    }

    /// `200` with `content-type: application/x-ndjson` and `body`.
    pub fn ndjson(body: impl Into<Bytes>) -> Self {
        Self::new(200)
            .header("content-type", "application/x-ndjson")
            .body(body)
    }

    /// `status` with `content-type: application/json` and `body`.
    pub fn json(status: u16, body: impl Into<Bytes>) -> Self {
        Self::new(status)
            .header("content-type", "application/json")
            .body(body)
    }

    /// Sets the body.
    #[must_use]
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets the body to a file's bytes (see [`crate::read`]).
    #[must_use]
    pub fn body_file(self, path: impl AsRef<Path>) -> Self {
        self.body(crate::read(path))
    }

    /// Adds a header.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Streams the body in chunks of `size` bytes, each its own HTTP/1.1
    /// chunk written on its own (TCP may still merge them on the way: for
    /// every split offset, feed the decoder directly); 0 sends it whole.
    #[must_use]
    pub fn chunked(mut self, size: usize) -> Self {
        self.chunk_size = size;
        self
    }

    /// Sends only the first `bytes` of the body, then aborts the connection
    /// without ending the message, as a dropped upstream connection does.
    #[must_use]
    pub fn cut_after(mut self, bytes: usize) -> Self {
        self.end = End::CutAfter(bytes);
        self
    }

    /// Sends the first `bytes` of the body, then nothing more until the
    /// client closes the connection (for idle timeouts).
    #[must_use]
    pub fn stall_after(mut self, bytes: usize) -> Self {
        self.end = End::StallAfter(bytes);
        self
    }

    /// Sends the body in chunks that end at these offsets (and at its end),
    /// each written on its own.
    #[must_use]
    pub fn split_at(mut self, offsets: impl IntoIterator<Item = usize>) -> Self {
        self.splits = offsets.into_iter().collect();
        self.splits.sort_unstable();
        self.splits.dedup();
        self
    }

    /// Waits `delay` before each chunk after the first (a slow upstream).
    #[must_use]
    pub fn delay(mut self, delay: std::time::Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Never sends the response headers (for first-byte timeouts).
    #[must_use]
    pub fn stall_headers(mut self) -> Self {
        self.stall_headers = true;
        self
    }

    async fn into_response(self) -> Response<UnsyncBoxBody<Bytes, std::io::Error>> {
        if self.stall_headers {
            std::future::pending::<()>().await;
        }
        let mut builder = Response::builder().status(
            StatusCode::from_u16(self.status).expect("replay status is a valid HTTP status"),
        );
        for (name, value) in &self.headers {
            builder = builder.header(name, value);
        }
        let (limit, end) = match self.end {
            End::Complete => (self.body.len(), End::Complete),
            End::CutAfter(n) | End::StallAfter(n) => (n.min(self.body.len()), self.end),
        };
        let body = self.body.slice(..limit);
        let body = if self.chunk_size == 0 && self.splits.is_empty() && end == End::Complete {
            Full::new(body)
                .map_err(|never| match never {})
                .boxed_unsync()
        } else {
            let size = if self.chunk_size == 0 {
                body.len().max(1)
            } else {
                self.chunk_size
            };
            let chunks: Vec<Bytes> = if self.splits.is_empty() {
                (0..body.len())
                    .step_by(size)
                    .map(|start| body.slice(start..(start + size).min(body.len())))
                    .collect()
            } else {
                let mut cuts: Vec<usize> = std::iter::once(0)
                    .chain(
                        self.splits
                            .iter()
                            .copied()
                            .filter(|&at| at > 0 && at < body.len()),
                    )
                    .collect();
                cuts.push(body.len());
                cuts.windows(2).map(|w| body.slice(w[0]..w[1])).collect()
            };
            let delay = self.delay;
            let head = futures::stream::iter(chunks.into_iter().enumerate()).then(
                move |(i, chunk)| async move {
                    if i > 0 && !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    } else {
                        // Let the connection write each chunk on its own.
                        tokio::task::yield_now().await;
                    }
                    Ok::<_, std::io::Error>(Frame::data(chunk))
                },
            );
            let tail = futures::stream::once(async move {
                match end {
                    End::Complete => None,
                    End::CutAfter(_) => {
                        // Let the connection write what was sent before
                        // the cut, so the client receives all of it.
                        tokio::task::yield_now().await;
                        Some(Err(std::io::Error::new(
                            std::io::ErrorKind::ConnectionAborted,
                            "replay: body cut",
                        )))
                    }
                    End::StallAfter(_) => std::future::pending().await,
                }
            })
            .filter_map(std::future::ready);
            StreamBody::new(head.chain(tail)).boxed_unsync()
        };
        builder
            .body(body)
            .expect("replay headers are valid HTTP headers")
    }
}

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<Reply>,
    fallback: Option<Reply>,
    /// The fallback for requests that do not ask for a stream, if it differs.
    unary: Option<Reply>,
    requests: Vec<RecordedRequest>,
}

/// A local HTTP server that records requests and replays canned replies.
///
/// Dropping it stops the server and its connections.
#[derive(Debug)]
pub struct ReplayServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    tasks: JoinSet<()>,
}

impl ReplayServer {
    /// Starts a server answering every request with `reply`.
    pub async fn start(reply: Reply) -> Self {
        Self::bind(State {
            fallback: Some(reply),
            ..State::default()
        })
        .await
    }

    /// Starts a server answering requests that ask for a stream with
    /// `stream` and the others with `unary`
    /// ([`RecordedRequest::wants_stream`]).
    pub async fn start_by_mode(stream: Reply, unary: Reply) -> Self {
        Self::bind(State {
            fallback: Some(stream),
            unary: Some(unary),
            ..State::default()
        })
        .await
    }

    /// Starts a server answering the n-th request with the n-th reply; once
    /// they are used up it answers `500` with a plain-text explanation.
    pub async fn sequence(replies: impl IntoIterator<Item = Reply>) -> Self {
        Self::bind(State {
            queue: replies.into_iter().collect(),
            ..State::default()
        })
        .await
    }

    async fn bind(state: State) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("bound address");
        let state = Arc::new(Mutex::new(state));
        let mut tasks = JoinSet::new();
        let shared = Arc::clone(&state);
        tasks.spawn(async move {
            // Connections live in this set: aborting the accept loop (on
            // drop) drops the set, which aborts them too.
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = Arc::clone(&shared);
                connections.spawn(async move {
                    let service = service_fn(move |request| {
                        let state = Arc::clone(&state);
                        async move { Ok::<_, Infallible>(answer(&state, request).await) }
                    });
                    // A client going away mid-reply is an expected outcome.
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                // Reap finished connections so the set does not grow.
                while connections.try_join_next().is_some() {}
            }
        });
        Self { addr, state, tasks }
    }

    /// The base URL, `http://127.0.0.1:<port>` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Queues `reply` for the next request, before the fallback reply.
    pub fn push(&self, reply: Reply) {
        self.lock().queue.push_back(reply);
    }

    /// The requests received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    /// The only request received; panics when there were none or several.
    pub fn single_request(&self) -> RecordedRequest {
        let requests = self.requests();
        assert_eq!(
            requests.len(),
            1,
            "expected exactly one request, got {requests:#?}"
        );
        requests.into_iter().next().expect("one request")
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for ReplayServer {
    fn drop(&mut self) {
        self.tasks.abort_all();
    }
}

async fn answer(
    state: &Mutex<State>,
    request: Request<Incoming>,
) -> Response<UnsyncBoxBody<Bytes, std::io::Error>> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .unwrap_or_default();
    let recorded = RecordedRequest {
        method: parts.method.to_string(),
        path: parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_owned(), ToString::to_string),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
    };
    let reply = {
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        let unary = (!recorded.wants_stream()).then(|| state.unary.clone());
        state.requests.push(recorded);
        state
            .queue
            .pop_front()
            .or_else(|| unary.flatten())
            .or_else(|| state.fallback.clone())
    };
    reply
        .unwrap_or_else(|| {
            Reply::new(500)
                .header("content-type", "text/plain")
                .body("replay server: no reply queued for this request")
        })
        .into_response()
        .await
}
