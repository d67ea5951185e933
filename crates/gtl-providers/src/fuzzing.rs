//! The provider stream decoders, for the fuzz targets in `fuzz/` (style
//! point 20, as quinn-proto does it). Compiled only with `--cfg fuzzing`,
//! which cargo-fuzz sets; not part of the public API.
//!
//! Each adapter's body decoder is set up the way the adapter's `stream`
//! sets it up (framer, handler, provider and model names, price,
//! `StreamMeta`), then fed a body given as chunks:
//!
//! - [`Decoder::decode`] feeds the chunks directly, without IO or an async
//!   runtime, exactly as the driver does: `on_chunk` per chunk, `on_end`
//!   after the last one, and nothing more once the decoder has sent a
//!   `done` or `error` (the driver stops reading there). It returns the
//!   decoder's events up to and including that first terminal event, which
//!   is everything the driver looks at.
//! - [`Decoder::deliver`] runs the same decoder under the real driver
//!   (`http::drive`, on a current-thread runtime with a timer; the chunks
//!   are all ready, so the idle timeout never fires) and returns what a
//!   client receives: `status` first, usage merged and priced before the
//!   terminal event, a cut stream turned into an error, error phases set.
//!
//! The `*_stream` and `*_unary` functions are [`Decoder::decode`] for one
//! decoder each.
//!
//! The decoders are the adapters' own `pub(crate)` modules
//! (`openai::stream`, `bedrock::decode`, …): a change to a decoder is
//! fuzzed as soon as it is made.

#![cfg(feature = "__http")]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt as _;
use gtl_proto::{Body, Status};

#[cfg(feature = "ollama")]
use crate::http::Ndjson;
#[cfg(any(feature = "openai", feature = "anthropic", feature = "gemini"))]
use crate::http::Sse;
use crate::http::{JsonBody, StreamDecoder, StreamMeta, drive};
use crate::usage::Price;

// The adapters' IO-free decoders, used as the adapters use them.
#[cfg(feature = "anthropic")]
use crate::anthropic::stream as anthropic_stream;
#[cfg(feature = "bedrock")]
use crate::bedrock::decode as bedrock_decode;
#[cfg(feature = "gemini")]
use crate::gemini::stream as gemini_stream;
#[cfg(feature = "ollama")]
use crate::ollama::decode as ollama_decode;
#[cfg(feature = "openai")]
use crate::openai::stream as openai_stream;

/// The idle timeout given to the driver. Every chunk is ready at once, so
/// it never fires.
const IDLE: Duration = Duration::from_secs(60);

/// One provider body decoder, as its adapter sets it up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Decoder {
    /// OpenAI or Azure: a `text/event-stream` of `chat.completion.chunk`s
    /// that must end with `[DONE]`.
    #[cfg(feature = "openai")]
    OpenAi,
    /// An OpenAI-compatible server: the same, and a clean end of the body
    /// after a `finish_reason` counts as the end.
    #[cfg(feature = "openai")]
    OpenAiCompatible,
    /// A unary `chat.completion` body.
    #[cfg(feature = "openai")]
    OpenAiUnary,
    /// An Anthropic Messages event stream.
    #[cfg(feature = "anthropic")]
    Anthropic,
    /// A unary Anthropic Messages response.
    #[cfg(feature = "anthropic")]
    AnthropicUnary,
    /// A Gemini `streamGenerateContent?alt=sse` body.
    #[cfg(feature = "gemini")]
    Gemini,
    /// A unary Gemini `generateContent` response.
    #[cfg(feature = "gemini")]
    GeminiUnary,
    /// Ollama's streamed `/api/chat` NDJSON.
    #[cfg(feature = "ollama")]
    Ollama,
    /// Ollama's `"stream": false` answer.
    #[cfg(feature = "ollama")]
    OllamaUnary,
    /// A Bedrock ConverseStream body (AWS event-stream frames).
    #[cfg(feature = "bedrock")]
    Bedrock,
    /// A unary Bedrock Converse answer.
    #[cfg(feature = "bedrock")]
    BedrockUnary,
}

impl Decoder {
    /// The provider name the decoder reports (in `status`, error messages,
    /// and the driver's cut-stream error).
    pub fn provider(self) -> &'static str {
        match self {
            #[cfg(feature = "openai")]
            Self::OpenAi | Self::OpenAiUnary => "openai",
            #[cfg(feature = "openai")]
            Self::OpenAiCompatible => "openrouter",
            #[cfg(feature = "anthropic")]
            Self::Anthropic | Self::AnthropicUnary => "anthropic",
            #[cfg(feature = "gemini")]
            Self::Gemini | Self::GeminiUnary => "gemini",
            #[cfg(feature = "ollama")]
            Self::Ollama | Self::OllamaUnary => "ollama",
            #[cfg(feature = "bedrock")]
            Self::Bedrock | Self::BedrockUnary => "bedrock",
        }
    }

    /// The model the call is made to.
    pub fn model(self) -> &'static str {
        match self {
            #[cfg(feature = "openai")]
            Self::OpenAi | Self::OpenAiUnary => "gpt-4o-mini",
            #[cfg(feature = "openai")]
            Self::OpenAiCompatible => "openai/gpt-4o-mini",
            #[cfg(feature = "anthropic")]
            Self::Anthropic | Self::AnthropicUnary => "claude-sonnet-4-5",
            #[cfg(feature = "gemini")]
            Self::Gemini | Self::GeminiUnary => "gemini-2.5-flash",
            #[cfg(feature = "ollama")]
            Self::Ollama | Self::OllamaUnary => "llama3.2",
            #[cfg(feature = "bedrock")]
            Self::Bedrock | Self::BedrockUnary => "anthropic.claude-3-5-haiku-20241022-v1:0",
        }
    }

    /// The price of the call (a fixed one: the decoders and the driver
    /// only multiply by it).
    pub fn price(self) -> Price {
        Price::per_1m(3.0, 15.0)
    }

    /// The `status` event the driver sends before the decoder's events:
    /// adapters whose decoders do not send one themselves (OpenAI, Ollama,
    /// Bedrock) give the driver `status {state: "streaming"}`.
    pub fn status(self) -> Option<Status> {
        self.meta().status
    }

    /// The price the driver applies to the merged usage when the decoder's
    /// usage has no cost: the same adapters give the driver the price, the
    /// others price usage in their decoder.
    pub fn driver_price(self) -> Option<Price> {
        self.meta().price
    }

    fn meta(self) -> StreamMeta {
        match self {
            #[cfg(feature = "anthropic")]
            Self::Anthropic | Self::AnthropicUnary => StreamMeta::default(),
            #[cfg(feature = "gemini")]
            Self::Gemini | Self::GeminiUnary => StreamMeta::default(),
            #[allow(unreachable_patterns, reason = "depends on the features")]
            _ => {
                StreamMeta::streaming(self.provider(), self.model()).with_price(Some(self.price()))
            }
        }
    }

    /// The decoder's events for a body arriving in `chunks`, fed as the
    /// driver feeds them, without IO: up to and including the first `done`
    /// or `error`, or all of them (none terminal) when the decoder sent
    /// none, which the driver reports as a cut stream.
    pub fn decode(self, chunks: &[&[u8]]) -> Vec<Body> {
        self.with_decoder(Feed(chunks))
    }

    /// What a client receives for a body arriving in `chunks`: the decoder
    /// run by the driver, `drive`.
    pub fn deliver(self, chunks: &[&[u8]]) -> Vec<Body> {
        self.with_decoder(Deliver {
            chunks,
            meta: self.meta(),
            provider: self.provider(),
        })
    }

    /// Builds the decoder as the adapter does and hands it to `run`.
    fn with_decoder<R: Run>(self, run: R) -> Vec<Body> {
        let provider = self.provider();
        match self {
            #[cfg(feature = "openai")]
            Self::OpenAi => run.run(Sse::new(openai_stream::ChunkHandler::new(provider, false))),
            #[cfg(feature = "openai")]
            Self::OpenAiCompatible => {
                run.run(Sse::new(openai_stream::ChunkHandler::new(provider, true)))
            }
            #[cfg(feature = "openai")]
            Self::OpenAiUnary => run.run(JsonBody::new(move |body: &[u8], out: &mut Vec<Body>| {
                openai_stream::decode_unary(provider, body, out);
            })),
            #[cfg(feature = "anthropic")]
            Self::Anthropic => run.run(Sse::new(anthropic_stream::Decoder::new(
                provider,
                self.model(),
                Some(self.price()),
            ))),
            #[cfg(feature = "anthropic")]
            Self::AnthropicUnary => {
                let decoder =
                    anthropic_stream::Decoder::new(provider, self.model(), Some(self.price()));
                run.run(JsonBody::new(move |body: &[u8], out: &mut Vec<Body>| {
                    anthropic_stream::message(&decoder, body, out);
                }))
            }
            #[cfg(feature = "gemini")]
            Self::Gemini => run.run(Sse::new(gemini_stream::Decoder::new(
                provider,
                self.model(),
                Some(self.price()),
            ))),
            #[cfg(feature = "gemini")]
            Self::GeminiUnary => {
                let mut decoder =
                    gemini_stream::Decoder::new(provider, self.model(), Some(self.price()));
                run.run(JsonBody::new(move |body: &[u8], out: &mut Vec<Body>| {
                    decoder.frame(body, out);
                    decoder.finish(out);
                }))
            }
            #[cfg(feature = "ollama")]
            Self::Ollama => run.run(Ndjson::new(ollama_decode::ChatDecoder::new(Arc::from(
                provider,
            )))),
            #[cfg(feature = "ollama")]
            Self::OllamaUnary => run.run(JsonBody::new(move |body: &[u8], out: &mut Vec<Body>| {
                ollama_decode::ChatDecoder::unary(Arc::from(provider), body, out);
            })),
            #[cfg(feature = "bedrock")]
            Self::Bedrock => run.run(bedrock_decode::ConverseStreamDecoder::new(Arc::from(
                provider,
            ))),
            #[cfg(feature = "bedrock")]
            Self::BedrockUnary => {
                run.run(JsonBody::new(move |body: &[u8], out: &mut Vec<Body>| {
                    bedrock_decode::converse_response(provider, body, out);
                }))
            }
        }
    }
}

/// What to do with a decoder once built: generic over the decoder's type,
/// which a closure cannot be.
trait Run {
    fn run<D: StreamDecoder>(self, decoder: D) -> Vec<Body>;
}

/// [`Decoder::decode`].
struct Feed<'a>(&'a [&'a [u8]]);

impl Run for Feed<'_> {
    fn run<D: StreamDecoder>(self, mut decoder: D) -> Vec<Body> {
        let mut out = Vec::new();
        for chunk in self.0 {
            decoder.on_chunk(chunk, &mut out);
            if let Some(end) = out.iter().position(is_terminal) {
                out.truncate(end + 1);
                return out;
            }
        }
        decoder.on_end(&mut out);
        if let Some(end) = out.iter().position(is_terminal) {
            out.truncate(end + 1);
        }
        out
    }
}

/// [`Decoder::deliver`].
struct Deliver<'a> {
    chunks: &'a [&'a [u8]],
    meta: StreamMeta,
    provider: &'static str,
}

impl Run for Deliver<'_> {
    fn run<D: StreamDecoder>(self, decoder: D) -> Vec<Body> {
        let body: Vec<Result<Bytes, gtl_core::ProviderError>> = self
            .chunks
            .iter()
            .map(|chunk| Ok(Bytes::copy_from_slice(chunk)))
            .collect();
        let events = drive(
            futures::stream::iter(body),
            decoder,
            self.meta,
            Arc::from(self.provider),
            IDLE,
        );
        RUNTIME.with(|runtime| runtime.block_on(events.collect()))
    }
}

thread_local! {
    /// The driver's idle timeout needs a runtime with a timer; one per
    /// thread, built once (libFuzzer runs an input millions of times).
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a current-thread runtime");
}

/// Whether `body` ends a stream.
pub fn is_terminal(body: &Body) -> bool {
    matches!(body, Body::Done(_) | Body::Error(_))
}

/// [`Decoder::OpenAi`]'s events for `chunks`.
#[cfg(feature = "openai")]
pub fn openai_stream(chunks: &[&[u8]]) -> Vec<Body> {
    Decoder::OpenAi.decode(chunks)
}

/// [`Decoder::OpenAiCompatible`]'s events for `chunks`.
#[cfg(feature = "openai")]
pub fn openai_compatible_stream(chunks: &[&[u8]]) -> Vec<Body> {
    Decoder::OpenAiCompatible.decode(chunks)
}

/// [`Decoder::OpenAiUnary`]'s events for `chunks`.
#[cfg(feature = "openai")]
pub fn openai_unary(chunks: &[&[u8]]) -> Vec<Body> {
    Decoder::OpenAiUnary.decode(chunks)
}

/// [`Decoder::Anthropic`]'s events for `chunks`.
#[cfg(feature = "anthropic")]
pub fn anthropic_stream(chunks: &[&[u8]]) -> Vec<Body> {
    Decoder::Anthropic.decode(chunks)
}

/// [`Decoder::AnthropicUnary`]'s events for `chunks`.
#[cfg(feature = "anthropic")]
pub fn anthropic_unary(chunks: &[&[u8]]) -> Vec<Body> {
    Decoder::AnthropicUnary.decode(chunks)
}

/// [`Decoder::Gemini`]'s events for `chunks`.
#[cfg(feature = "gemini")]
pub fn gemini_stream(chunks: &[&[u8]]) -> Vec<Body> {
    Decoder::Gemini.decode(chunks)
}

/// [`Decoder::GeminiUnary`]'s events for `chunks`.
#[cfg(feature = "gemini")]
pub fn gemini_unary(chunks: &[&[u8]]) -> Vec<Body> {
    Decoder::GeminiUnary.decode(chunks)
}

/// [`Decoder::Ollama`]'s events for `chunks`.
#[cfg(feature = "ollama")]
pub fn ollama_stream(chunks: &[&[u8]]) -> Vec<Body> {
    Decoder::Ollama.decode(chunks)
}

/// [`Decoder::OllamaUnary`]'s events for `chunks`.
#[cfg(feature = "ollama")]
pub fn ollama_unary(chunks: &[&[u8]]) -> Vec<Body> {
    Decoder::OllamaUnary.decode(chunks)
}

/// [`Decoder::Bedrock`]'s events for `chunks`.
#[cfg(feature = "bedrock")]
pub fn bedrock_stream(chunks: &[&[u8]]) -> Vec<Body> {
    Decoder::Bedrock.decode(chunks)
}

/// [`Decoder::BedrockUnary`]'s events for `chunks`.
#[cfg(feature = "bedrock")]
pub fn bedrock_unary(chunks: &[&[u8]]) -> Vec<Body> {
    Decoder::BedrockUnary.decode(chunks)
}
