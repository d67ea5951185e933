//! From a response body to a GTL event stream.
//!
//! A provider adapter writes a [`StreamDecoder`]: IO-free, fed the body's
//! bytes as they arrive (split anywhere), appending GTL events. Most
//! decoders sit on a framer: [`Sse`] (over [`gtl_proto::sse::Parser`]) with
//! an [`SseHandler`], [`Ndjson`] with an [`NdjsonHandler`], or [`JsonBody`]
//! for a unary JSON answer. [`drive`] runs a decoder over a body stream and
//! enforces the event-stream contract:
//!
//! - the optional `status` event first;
//! - `usage` events are merged (see [`merge_usage`]), priced, and sent once,
//!   just before the terminal event;
//! - empty `token`s are dropped;
//! - the first `done` or `error` ends the stream; the rest of the body (an
//!   OpenAI `[DONE]`, the end of the HTTP/2 stream) is read in the
//!   background, bounded, so that the connection is not reset;
//! - an `error`'s phase is set from what was sent: `AFTER_FIRST_TOKEN` once
//!   a token, tool call or patch went out;
//! - no chunk within the idle timeout: `PROVIDER_TIMEOUT`; the connection
//!   lost mid-body: `PROVIDER_UNAVAILABLE`; the body ending without a
//!   terminal event (a cut stream): `PROVIDER_ERROR`; each after the usage
//!   known so far;
//! - dropped before its end (a cancel), the usage known so far is logged.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt as _};
use gtl_core::{EventStream, ProviderError};
use gtl_proto::{Body, ErrorCode, Phase, Status, Usage, sse};

use crate::usage::{Price, merge_usage};

/// Turns a provider's response body into GTL events, without IO.
///
/// Contract: append events as they become known; `usage` whenever the
/// provider reports some (partial counts are fine, zeros mean unknown); a
/// `done` or `error` when the provider's own terminal arrives (or, in
/// [`on_end`](Self::on_end), when the format ends implicitly). Leave error
/// phases to the driver.
pub(crate) trait StreamDecoder: Send + 'static {
    /// Decodes the next piece of the body.
    fn on_chunk(&mut self, chunk: &[u8], out: &mut Vec<Body>);

    /// The body ended cleanly: append what remains. Appending no terminal
    /// event means the stream was cut.
    fn on_end(&mut self, out: &mut Vec<Body>);
}

/// What a driven stream adds around the decoder's events.
#[derive(Debug, Clone, Default)]
pub(crate) struct StreamMeta {
    /// Sent before everything else.
    pub(crate) status: Option<Status>,
    /// Prices the merged usage (its `cost`), unless the provider reported
    /// a cost itself.
    pub(crate) price: Option<Price>,
}

impl StreamMeta {
    /// A `status {state: "streaming", provider, model}` first.
    pub(crate) fn streaming(provider: &str, model: &str) -> Self {
        Self {
            status: Some(Status {
                state: "streaming".to_owned(),
                provider: provider.to_owned(),
                model: model.to_owned(),
                reason: String::new(),
            }),
            price: None,
        }
    }

    /// Sets the price.
    #[must_use]
    pub(crate) fn with_price(mut self, price: Option<Price>) -> Self {
        self.price = price;
        self
    }
}

/// Handles the events of a `text/event-stream` body.
pub(crate) trait SseHandler: Send + 'static {
    /// One complete event (comments are already dropped).
    fn on_event(&mut self, event: &sse::Event, out: &mut Vec<Body>);

    /// The body ended (an unterminated last event was discarded, as the
    /// SSE standard says).
    fn on_end(&mut self, out: &mut Vec<Body>) {
        let _ = out;
    }
}

/// A [`StreamDecoder`] for SSE bodies: frames events with
/// [`gtl_proto::sse::Parser`] and hands them to an [`SseHandler`].
#[derive(Debug)]
pub(crate) struct Sse<H> {
    parser: sse::Parser,
    events: Vec<sse::Event>,
    handler: H,
    failed: bool,
}

impl<H: SseHandler> Sse<H> {
    /// A decoder handing events to `handler`.
    pub(crate) fn new(handler: H) -> Self {
        Self {
            parser: sse::Parser::default(),
            events: Vec::new(),
            handler,
            failed: false,
        }
    }
}

impl<H: SseHandler> StreamDecoder for Sse<H> {
    fn on_chunk(&mut self, chunk: &[u8], out: &mut Vec<Body>) {
        if self.failed {
            return;
        }
        let fed = self.parser.feed(chunk, &mut self.events);
        for event in self.events.drain(..) {
            self.handler.on_event(&event, out);
        }
        if let Err(error) = fed {
            self.failed = true;
            out.push(malformed(format!("{error}")));
        }
    }

    fn on_end(&mut self, out: &mut Vec<Body>) {
        if self.failed {
            return;
        }
        self.parser.finish();
        self.handler.on_end(out);
    }
}

/// Handles the lines of a newline-delimited JSON body.
pub(crate) trait NdjsonHandler: Send + 'static {
    /// One non-blank line, without its line end.
    fn on_line(&mut self, line: &[u8], out: &mut Vec<Body>);

    /// The body ended.
    fn on_end(&mut self, out: &mut Vec<Body>) {
        let _ = out;
    }
}

/// A [`StreamDecoder`] for NDJSON bodies: splits lines (`\n` or `\r\n`;
/// blank lines skipped; a last line without a line end still counts) and
/// hands them to an [`NdjsonHandler`].
#[derive(Debug)]
pub(crate) struct Ndjson<H> {
    line: Vec<u8>,
    max_line: usize,
    handler: H,
    failed: bool,
}

impl<H: NdjsonHandler> Ndjson<H> {
    /// A decoder handing lines to `handler`, each at most
    /// [`gtl_proto::DEFAULT_MAX_FRAME_BYTES`] long.
    pub(crate) fn new(handler: H) -> Self {
        Self {
            line: Vec::new(),
            max_line: gtl_proto::DEFAULT_MAX_FRAME_BYTES,
            handler,
            failed: false,
        }
    }

    fn take_line(&mut self, out: &mut Vec<Body>) {
        let line = std::mem::take(&mut self.line);
        let line = line.strip_suffix(b"\r").unwrap_or(&line);
        if !line.iter().all(u8::is_ascii_whitespace) {
            self.handler.on_line(line, out);
        }
    }
}

impl<H: NdjsonHandler> StreamDecoder for Ndjson<H> {
    fn on_chunk(&mut self, mut chunk: &[u8], out: &mut Vec<Body>) {
        if self.failed {
            return;
        }
        while let Some(end) = chunk.iter().position(|&b| b == b'\n') {
            self.line.extend_from_slice(&chunk[..end]);
            chunk = &chunk[end + 1..];
            self.take_line(out);
        }
        if self.line.len() + chunk.len() > self.max_line {
            self.failed = true;
            out.push(malformed(format!(
                "NDJSON line longer than {} bytes",
                self.max_line
            )));
            return;
        }
        self.line.extend_from_slice(chunk);
    }

    fn on_end(&mut self, out: &mut Vec<Body>) {
        if self.failed {
            return;
        }
        self.take_line(out);
        self.handler.on_end(out);
    }
}

/// A [`StreamDecoder`] for a unary JSON answer: buffers the body (up to a
/// limit) and decodes it whole at the end with `decode`, which appends the
/// answer's events including its terminal one.
pub(crate) struct JsonBody<F> {
    body: Vec<u8>,
    max: usize,
    decode: F,
    failed: bool,
}

impl<F> std::fmt::Debug for JsonBody<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonBody")
            .field("buffered", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl<F: FnMut(&[u8], &mut Vec<Body>) + Send + 'static> JsonBody<F> {
    /// Buffers up to 64 MiB, then calls `decode`.
    pub(crate) fn new(decode: F) -> Self {
        Self {
            body: Vec::new(),
            max: 64 << 20,
            decode,
            failed: false,
        }
    }
}

impl<F: FnMut(&[u8], &mut Vec<Body>) + Send + 'static> StreamDecoder for JsonBody<F> {
    fn on_chunk(&mut self, chunk: &[u8], out: &mut Vec<Body>) {
        if self.failed {
            return;
        }
        if self.body.len() + chunk.len() > self.max {
            self.failed = true;
            out.push(malformed(format!(
                "response larger than {} bytes",
                self.max
            )));
            return;
        }
        self.body.extend_from_slice(chunk);
    }

    fn on_end(&mut self, out: &mut Vec<Body>) {
        if !self.failed {
            (self.decode)(&self.body, out);
        }
    }
}

/// A `PROVIDER_ERROR` event for a body the decoder cannot read.
pub(crate) fn malformed(message: impl Into<String>) -> Body {
    ProviderError::new(ErrorCode::ProviderError, message).to_event()
}

/// Runs `decoder` over `body` (chunks, or the transport's error), with an
/// idle timeout between chunks. See the module docs for the contract.
pub(crate) fn drive<S, D>(
    body: S,
    decoder: D,
    meta: StreamMeta,
    provider: Arc<str>,
    idle: Duration,
) -> EventStream
where
    S: Stream<Item = Result<Bytes, ProviderError>> + Send + 'static,
    D: StreamDecoder,
{
    let driver = Driver {
        body: Some(Box::pin(body)),
        decoder,
        pending: meta.status.map(Body::Status).into_iter().collect(),
        usage: None,
        price: meta.price,
        output_sent: false,
        finished: false,
        provider,
        idle,
    };
    Box::pin(futures::stream::unfold(driver, |mut driver| async move {
        let body = driver.next().await?;
        Some((body, driver))
    }))
}

type BodyStream = std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, ProviderError>> + Send>>;

struct Driver<D> {
    /// `None` once the body ended, failed or timed out.
    body: Option<BodyStream>,
    decoder: D,
    pending: VecDeque<Body>,
    /// Usage merged so far and not sent yet.
    usage: Option<Usage>,
    price: Option<Price>,
    output_sent: bool,
    finished: bool,
    provider: Arc<str>,
    idle: Duration,
}

impl<D: StreamDecoder> Driver<D> {
    async fn next(&mut self) -> Option<Body> {
        loop {
            if self.finished {
                return None;
            }
            if let Some(body) = self.pending.pop_front() {
                match body {
                    Body::Usage(usage) => {
                        merge_usage(self.usage.get_or_insert_with(Usage::default), &usage);
                    }
                    Body::Token(ref token) if token.text.is_empty() => {}
                    Body::Token(_) | Body::ToolCall(_) | Body::Patch(_) => {
                        self.output_sent = true;
                        return Some(body);
                    }
                    Body::Done(_) | Body::Error(_) => {
                        if let Some(usage) = self.take_usage() {
                            self.pending.push_front(body);
                            return Some(usage);
                        }
                        self.finished = true;
                        return Some(self.with_phase(body));
                    }
                    other => return Some(other),
                }
                continue;
            }
            let Some(stream) = self.body.as_mut() else {
                // The body is over and the decoder sent no terminal event.
                let error = ProviderError::new(
                    ErrorCode::ProviderError,
                    format!("{}: stream ended before its final event", self.provider),
                );
                self.pending.push_back(error.to_event());
                continue;
            };
            let mut out = Vec::new();
            match tokio::time::timeout(self.idle, stream.next()).await {
                Ok(Some(Ok(chunk))) => self.decoder.on_chunk(&chunk, &mut out),
                Ok(Some(Err(error))) => {
                    self.body = None;
                    out.push(error.to_event());
                }
                Ok(None) => {
                    self.body = None;
                    self.decoder.on_end(&mut out);
                }
                Err(_) => {
                    self.body = None;
                    let error = ProviderError::new(
                        ErrorCode::ProviderTimeout,
                        format!(
                            "{}: no data for {} s (idle timeout)",
                            self.provider,
                            self.idle.as_secs_f64()
                        ),
                    );
                    out.push(error.to_event());
                }
            }
            self.pending.extend(out);
        }
    }

    fn take_usage(&mut self) -> Option<Body> {
        let mut usage = self.usage.take()?;
        if usage.cost == 0.0
            && let Some(price) = self.price
        {
            usage.cost = price.cost(&usage);
        }
        Some(Body::Usage(usage))
    }

    fn with_phase(&self, body: Body) -> Body {
        match body {
            Body::Error(mut error) => {
                let phase = if self.output_sent {
                    Phase::AfterFirstToken
                } else {
                    Phase::BeforeFirstToken
                };
                error.phase = phase as i32;
                Body::Error(error)
            }
            other => other,
        }
    }
}

/// What is read of a body after its terminal event, at most.
const DRAIN_BYTES: usize = 64 << 10;
const DRAIN_TIME: Duration = Duration::from_secs(2);

/// Reads the rest of a finished stream's body. Dropping it unread resets
/// the HTTP/2 stream (or closes the HTTP/1.1 connection); thousands of
/// such resets on one shared HTTP/2 connection make the client library
/// tear the connection down, with every call on it (h2's
/// `too_many_internal_resets`).
async fn drain(mut body: BodyStream) {
    let rest = async {
        let mut read = 0;
        while let Some(Ok(chunk)) = body.next().await {
            read += chunk.len();
            if read > DRAIN_BYTES {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, rest).await;
}

impl<D> Drop for Driver<D> {
    fn drop(&mut self) {
        if self.finished
            && let Some(body) = self.body.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(drain(body));
        }
        if !self.finished {
            let usage = self.usage.unwrap_or_default();
            tracing::debug!(
                provider = %self.provider,
                tokens_in = usage.tokens_in,
                tokens_out = usage.tokens_out,
                "provider stream dropped before its end (cancelled)"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use gtl_proto::{Done, Token};

    use super::*;

    /// Echoes each SSE event's data as a token; `[END]` is `done`.
    #[derive(Debug, Default)]
    struct Echo;

    impl SseHandler for Echo {
        fn on_event(&mut self, event: &sse::Event, out: &mut Vec<Body>) {
            match event.data.as_str() {
                "[END]" => out.push(Body::Done(Done {
                    finish_reason: "stop".into(),
                })),
                "[USAGE]" => out.push(Body::Usage(Usage {
                    tokens_in: 3,
                    ..Usage::default()
                })),
                text => out.push(Body::Token(Token { text: text.into() })),
            }
        }
    }

    async fn run(chunks: Vec<Result<Bytes, ProviderError>>, meta: StreamMeta) -> Vec<Body> {
        drive(
            futures::stream::iter(chunks),
            Sse::new(Echo),
            meta,
            Arc::from("p"),
            Duration::from_secs(60),
        )
        .collect()
        .await
    }

    fn ok(text: &str) -> Result<Bytes, ProviderError> {
        Ok(Bytes::copy_from_slice(text.as_bytes()))
    }

    fn error_of(body: &Body) -> &gtl_proto::Error {
        match body {
            Body::Error(error) => error,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn status_first_usage_merged_and_priced_before_done() {
        let meta = StreamMeta::streaming("p", "m").with_price(Some(Price::per_1k(1.0, 2.0)));
        let events = run(
            vec![ok(
                "data: [USAGE]\n\ndata: a\n\ndata: \n\ndata: [END]\n\ndata: after\n\n",
            )],
            meta,
        )
        .await;
        assert!(matches!(&events[0], Body::Status(s) if s.model == "m"));
        assert_eq!(events[1], Body::Token(Token { text: "a".into() }));
        let Body::Usage(usage) = &events[2] else {
            panic!("usage before done: {events:?}");
        };
        assert_eq!(usage.tokens_in, 3);
        assert!((usage.cost - 0.003).abs() < 1e-12);
        assert!(matches!(events[3], Body::Done(_)));
        assert_eq!(events.len(), 4);
    }

    #[tokio::test]
    async fn the_body_after_done_is_read_to_its_end_not_dropped() {
        let (tail, read_to_end) = tokio::sync::oneshot::channel();
        let mut tail = Some(tail);
        let rest = futures::stream::poll_fn(move |_| {
            // Reached only when the body is read past `[END]`.
            if let Some(tail) = tail.take() {
                let _ = tail.send(());
            }
            std::task::Poll::Ready(None)
        });
        let body =
            futures::stream::iter([ok("data: a\n\ndata: [END]\n\n"), ok("data: [DONE]\n\n")])
                .chain(rest);
        let events: Vec<Body> = drive(
            body,
            Sse::new(Echo),
            StreamMeta::default(),
            Arc::from("p"),
            Duration::from_secs(60),
        )
        .collect()
        .await;
        assert!(matches!(events.last(), Some(Body::Done(_))), "{events:?}");
        tokio::time::timeout(Duration::from_secs(5), read_to_end)
            .await
            .expect("the rest of the body is read")
            .unwrap();
    }

    #[tokio::test]
    async fn a_cut_stream_ends_with_usage_then_an_error_after_first_token() {
        let events = run(
            vec![ok("data: [USAGE]\n\ndata: a\n\ndata: trunc")],
            StreamMeta::default(),
        )
        .await;
        assert!(matches!(events[1], Body::Usage(_)));
        let error = error_of(&events[2]);
        assert_eq!(error.code(), ErrorCode::ProviderError);
        assert_eq!(error.phase(), Phase::AfterFirstToken);
    }

    #[tokio::test]
    async fn a_transport_error_before_output_is_before_first_token() {
        let lost = ProviderError::new(ErrorCode::ProviderUnavailable, "connection lost");
        let events = run(vec![ok("data: [USA"), Err(lost)], StreamMeta::default()).await;
        let error = error_of(&events[0]);
        assert_eq!(error.code(), ErrorCode::ProviderUnavailable);
        assert_eq!(error.phase(), Phase::BeforeFirstToken);
    }

    #[tokio::test(start_paused = true)]
    async fn silence_is_an_idle_timeout() {
        let body = futures::stream::iter([ok("data: a\n\n")]).chain(futures::stream::pending());
        let events: Vec<Body> = drive(
            body,
            Sse::new(Echo),
            StreamMeta::default(),
            Arc::from("p"),
            Duration::from_secs(5),
        )
        .collect()
        .await;
        let error = error_of(&events[1]);
        assert_eq!(error.code(), ErrorCode::ProviderTimeout);
        assert_eq!(error.phase(), Phase::AfterFirstToken);
    }

    #[derive(Debug, Default)]
    struct Lines(Vec<String>);

    impl NdjsonHandler for Lines {
        fn on_line(&mut self, line: &[u8], out: &mut Vec<Body>) {
            self.0.push(String::from_utf8_lossy(line).into_owned());
            out.push(Body::Token(Token {
                text: String::from_utf8_lossy(line).into_owned(),
            }));
        }

        fn on_end(&mut self, out: &mut Vec<Body>) {
            out.push(Body::Done(Done::default()));
        }
    }

    #[test]
    fn ndjson_lines_split_anywhere() {
        let input = b"{\"a\":1}\r\n\n  \n{\"b\":\"\xc3\xa9\"}\n{\"c\":3}";
        for cut in 0..=input.len() {
            let mut decoder = Ndjson::new(Lines::default());
            let mut out = Vec::new();
            decoder.on_chunk(&input[..cut], &mut out);
            decoder.on_chunk(&input[cut..], &mut out);
            decoder.on_end(&mut out);
            assert_eq!(
                decoder.handler.0,
                ["{\"a\":1}", "{\"b\":\"é\"}", "{\"c\":3}"],
                "cut at {cut}"
            );
            assert_eq!(out.len(), 4);
        }
    }

    #[test]
    fn json_bodies_are_decoded_whole() {
        let mut decoder = JsonBody::new(|body: &[u8], out: &mut Vec<Body>| {
            out.push(Body::Token(Token {
                text: String::from_utf8_lossy(body).into_owned(),
            }));
        });
        let mut out = Vec::new();
        decoder.on_chunk(b"{\"a\":", &mut out);
        decoder.on_chunk(b"1}", &mut out);
        assert!(out.is_empty());
        decoder.on_end(&mut out);
        assert_eq!(
            out,
            [Body::Token(Token {
                text: "{\"a\":1}".into()
            })]
        );
    }
}
